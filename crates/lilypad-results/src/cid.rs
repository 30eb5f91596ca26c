//! The CID `ipfs add -r --cid-version=1 --raw-leaves` gives a file or a directory tree, computed
//! with rust-unixfs: CIDv1, sha2-256, raw leaves, 256 KiB fixed-size chunks, balanced DAG with at
//! most 174 links per node, directories HAMT-sharded above 256 KiB of links, no mode or mtime.
//! Symbolic links are recorded as UnixFS symlinks and never followed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use cid::Cid;
use cid::Version;
use rust_unixfs::Metadata;
use rust_unixfs::dir::builder::{BufferingTreeBuilder, TreeOptions};
use rust_unixfs::file::adder::{BalancedCollector, Chunker, FileAdder};

/// Chunk size of `ipfs add` (`--chunker=size-262144`).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Links per node of `ipfs add`'s balanced layout.
pub const MAX_LINKS_PER_NODE: usize = 174;

/// Why a CID could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CidError {
    /// Reading the tree failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Something that is not a file, directory or symbolic link (a FIFO, socket or device).
    #[error("{} is a {kind}; results may hold only files, directories and symbolic links (fix: remove it)", path.display())]
    Unsupported {
        /// Where it is.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A name that is not UTF-8, which UnixFS cannot hold.
    #[error("{} has a name that is not UTF-8, which IPFS cannot store (fix: rename it)", path.display())]
    NotUtf8 {
        /// Where it is.
        path: PathBuf,
    },
    /// The directory tree could not be built.
    #[error("building the directory tree for {}: {message}", path.display())]
    Tree {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CidError + '_ {
    move |source| CidError::Io {
        path: path.to_owned(),
        source,
    }
}

fn file_adder() -> FileAdder {
    FileAdder::builder()
        .with_cid_version(Version::V1)
        .with_raw_leaves(true)
        .with_chunker(Chunker::Size(CHUNK_SIZE))
        .with_collector(BalancedCollector::with_branching_factor(MAX_LINKS_PER_NODE))
        .build()
}

/// Where the blocks of a tree go as they are made: a CID and the block's bytes.
pub(crate) type BlockSink<'a> = &'a mut dyn FnMut(&Cid, &[u8]) -> std::io::Result<()>;

/// A file's CID and the cumulative size of its blocks (the `Tsize` its parent links with).
fn add_stream(
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    sink: BlockSink<'_>,
) -> std::io::Result<(Cid, u64)> {
    let mut adder = file_adder();
    let mut buffer = vec![0u8; CHUNK_SIZE];
    let mut total = 0u64;
    let mut last = None;
    loop {
        // Fill the buffer completely (short reads would not change the chunking, but full
        // buffers let the adder skip its own copy).
        let mut filled = 0;
        while filled < buffer.len() {
            let n = read(&mut buffer[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        let mut offset = 0;
        while offset < filled {
            let (blocks, used) = adder.push(&buffer[offset..filled]);
            for (cid, block) in blocks {
                sink(&cid, &block)?;
                total += block.len() as u64;
                last = Some(cid);
            }
            offset += used;
        }
        if filled < buffer.len() {
            break;
        }
    }
    for (cid, block) in adder.finish() {
        sink(&cid, &block)?;
        total += block.len() as u64;
        last = Some(cid);
    }
    last.map(|cid| (cid, total))
        .ok_or_else(|| std::io::Error::other("the file adder produced no block"))
}

/// The CID of some bytes, as a file.
pub fn cid_of_bytes(bytes: &[u8]) -> Cid {
    let mut rest = bytes;
    let result = add_stream(
        |buf| {
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            Ok(n)
        },
        &mut |_, _| Ok(()),
    );
    // Reading from a slice cannot fail, and an adder always yields a root block; should either
    // ever happen, the CID of nothing is still a valid answer for nothing read.
    match result {
        Ok((cid, _)) => cid,
        Err(_) => raw_empty(),
    }
}

fn raw_empty() -> Cid {
    use multihash_codetable::{Code, MultihashDigest};
    Cid::new_v1(0x55, Code::Sha2_256.digest(&[]))
}

fn cid_of_file(path: &Path, sink: BlockSink<'_>) -> Result<(Cid, u64), CidError> {
    let mut file = File::open(path).map_err(io(path))?;
    add_stream(|buf| file.read(buf), sink).map_err(io(path))
}

fn cid_of_symlink(path: &Path, sink: BlockSink<'_>) -> Result<(Cid, u64), CidError> {
    let target = std::fs::read_link(path).map_err(io(path))?;
    let target = target.to_str().ok_or_else(|| CidError::NotUtf8 {
        path: path.to_owned(),
    })?;
    let (cid, block) = rust_unixfs::symlink::symlink_block(
        target,
        &Metadata::default(),
        Version::V1,
        multihash_codetable::Code::Sha2_256,
    );
    sink(&cid, &block).map_err(io(path))?;
    Ok((cid, block.len() as u64))
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// The CID `ipfs add -r --cid-version=1 --raw-leaves PATH` prints for `path`: a file, a
/// directory (with everything in it, empty directories included) or a symbolic link (recorded,
/// not followed).
pub fn cid_of_path(path: &Path) -> Result<Cid, CidError> {
    blocks_of_path(path, &mut |_, _| Ok(()))
}

/// Like [`cid_of_path`], handing every block of the DAG to `sink` as it is made (leaves before
/// the nodes that link to them; the root last). A block that occurs more than once (the same
/// chunk in two places) is handed over each time.
pub(crate) fn blocks_of_path(path: &Path, sink: BlockSink<'_>) -> Result<Cid, CidError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_file() {
        return Ok(cid_of_file(path, sink)?.0);
    }
    if meta.file_type().is_symlink() {
        return Ok(cid_of_symlink(path, sink)?.0);
    }
    if !meta.is_dir() {
        return Err(CidError::Unsupported {
            path: path.to_owned(),
            kind: kind_of(&meta),
        });
    }
    let mut opts = TreeOptions::default();
    opts.wrap_with_directory();
    opts.cid_version(Version::V1);
    let mut tree = BufferingTreeBuilder::new(opts);
    let tree_error = |message: String| CidError::Tree {
        path: path.to_owned(),
        message,
    };
    add_dir(path, "", &mut tree, &tree_error, sink)?;
    let mut root = None;
    for node in tree.build() {
        let node = node.map_err(|e| tree_error(e.to_string()))?;
        sink(&node.cid, &node.block).map_err(io(path))?;
        if node.path.is_empty() {
            root = Some(node.cid);
        }
    }
    // A directory with nothing in it builds no nodes at all: it is the empty UnixFS directory.
    match root {
        Some(root) => Ok(root),
        None => {
            sink(&empty_dir(), EMPTY_DIR_BLOCK).map_err(io(path))?;
            Ok(empty_dir())
        }
    }
}

/// The CID of an empty UnixFS directory.
fn empty_dir() -> Cid {
    use multihash_codetable::{Code, MultihashDigest};
    Cid::new_v1(0x70, Code::Sha2_256.digest(EMPTY_DIR_BLOCK))
}

/// The dag-pb node whose Data is UnixFS { Type: Directory }.
const EMPTY_DIR_BLOCK: &[u8] = &[0x0a, 0x02, 0x08, 0x01];

fn add_dir(
    dir: &Path,
    prefix: &str,
    tree: &mut BufferingTreeBuilder,
    tree_error: &dyn Fn(String) -> CidError,
    sink: BlockSink<'_>,
) -> Result<(), CidError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    if entries.is_empty() && !prefix.is_empty() {
        tree.set_metadata(prefix, Metadata::default())
            .map_err(|e| tree_error(e.to_string()))?;
    }
    for entry in entries {
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| CidError::NotUtf8 { path: path.clone() })?;
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        let (cid, size) = if meta.is_dir() {
            add_dir(&path, &full, tree, tree_error, sink)?;
            continue;
        } else if meta.is_file() {
            cid_of_file(&path, sink)?
        } else if meta.file_type().is_symlink() {
            cid_of_symlink(&path, sink)?
        } else {
            return Err(CidError::Unsupported {
                path,
                kind: kind_of(&meta),
            });
        };
        tree.put_link(&full, cid, size)
            .map_err(|e| tree_error(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_cids() {
        // `ipfs add --cid-version=1 --raw-leaves` of an empty file, and `ipfs object new
        // unixfs-dir` in CIDv1: both are fixed points every IPFS implementation agrees on.
        assert_eq!(
            cid_of_bytes(b"").to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        );
        assert_eq!(raw_empty(), cid_of_bytes(b""));
        assert_eq!(
            empty_dir().to_string(),
            "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
        );
    }

    #[test]
    fn an_empty_directory_is_the_empty_unixfs_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cid_of_path(dir.path()).unwrap(), empty_dir());
    }

    #[test]
    fn a_fifo_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = cid_of_path(dir.path()).unwrap_err();
        assert!(
            matches!(err, CidError::Unsupported { kind: "FIFO", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("pipe"), "{err}");
    }
}
