//! Results stored content-addressed on disk: `<root>/<cid>/` holds the result directory whose CID
//! is `<cid>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cid::Cid;

use crate::cid::{CidError, cid_of_path};

/// Why a result could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory's CID could not be computed.
    #[error(transparent)]
    Cid(#[from] CidError),
}

/// Why a lookup found nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    /// The text is not a CID.
    #[error(
        "{text:?} is not a CID (fix: use the result CID the provider reported, e.g. bafybei...)"
    )]
    BadCid {
        /// What was given.
        text: String,
    },
    /// No result with this CID is stored here.
    #[error(
        "no result with CID {cid} is stored here (fix: check the CID, or ask the provider that ran the job)"
    )]
    UnknownCid {
        /// The CID.
        cid: String,
    },
    /// The path is not a plain path inside the result.
    #[error(
        "{path:?} is not a path inside a result: {reason} (fix: use names from the directory listing, e.g. outputs/result.txt)"
    )]
    BadPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing at this path in the result.
    #[error("result {cid} has nothing at {path:?} (fix: GET /ipfs/{cid} lists what it holds)")]
    NotFound {
        /// The result.
        cid: String,
        /// The path.
        path: String,
    },
    /// The path goes through a symbolic link, which is never followed.
    #[error(
        "{link:?} in result {cid} is a symbolic link, which is never followed (fix: GET /ipfs/{cid}/{link} shows where it points)"
    )]
    ThroughSymlink {
        /// The result.
        cid: String,
        /// The link.
        link: String,
    },
    /// The filesystem failed.
    #[error("reading result {cid}: {message}")]
    Io {
        /// The result.
        cid: String,
        /// The OS error.
        message: String,
    },
}

/// What a path in a stored result is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file.
    File {
        /// Where it is on disk.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// A directory, with what it holds.
    Directory {
        /// Its entries, by name.
        entries: Vec<DirEntry>,
    },
    /// A symbolic link (never followed).
    Symlink {
        /// Where it points.
        target: String,
    },
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DirEntry {
    /// Its name.
    pub name: String,
    /// `file`, `directory` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes (files only; 0 otherwise).
    pub size: u64,
}

/// A content-addressed store of result directories.
#[derive(Debug)]
pub struct ResultStore {
    root: PathBuf,
}

static STAGING: AtomicU64 = AtomicU64::new(0);

impl ResultStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| StoreError::Io {
            what: "creating the result store",
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    /// Where it keeps results.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores the result directory `dir`, which is moved into the store (or copied and removed
    /// when it is on another filesystem), and returns its CID. Storing the same content twice
    /// keeps one copy.
    pub fn put(&self, dir: &Path) -> Result<Cid, StoreError> {
        let cid = cid_of_path(dir)?;
        let dest = self.root.join(cid.to_string());
        let remove_source = |what| {
            std::fs::remove_dir_all(dir).map_err(|source| StoreError::Io {
                what,
                path: dir.to_owned(),
                source,
            })
        };
        if dest.exists() {
            remove_source("removing an already stored result")?;
            return Ok(cid);
        }
        match std::fs::rename(dir, &dest) {
            Ok(()) => return Ok(cid),
            Err(_) if dest.exists() => {
                // Stored by someone else in the meantime.
                remove_source("removing an already stored result")?;
                return Ok(cid);
            }
            Err(e) if e.raw_os_error() == Some(18) => {} // EXDEV: another filesystem; copy below
            Err(source) => {
                return Err(StoreError::Io {
                    what: "moving the result into the store",
                    path: dir.to_owned(),
                    source,
                });
            }
        }
        let staging = self.staging_path();
        copy_tree(dir, &staging).map_err(|source| StoreError::Io {
            what: "copying the result into the store",
            path: dir.to_owned(),
            source,
        })?;
        if std::fs::rename(&staging, &dest).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
            if !dest.exists() {
                return Err(StoreError::Io {
                    what: "moving the copied result into place",
                    path: dest,
                    source: std::io::Error::other("rename failed"),
                });
            }
        }
        remove_source("removing the copied result")?;
        Ok(cid)
    }

    /// Where the file, directory or symbolic link with this CID is, if stored (a result, or an
    /// input fetched from a gateway, which may be a single file).
    pub fn get_any(&self, cid: &Cid) -> Option<PathBuf> {
        let path = self.root.join(canonical(cid).to_string());
        std::fs::symlink_metadata(&path).is_ok().then_some(path)
    }

    /// A fresh path inside the store (not yet created) to build something in before
    /// [`ResultStore::put_verified`] moves it into place.
    pub fn staging_path(&self) -> PathBuf {
        self.root.join(format!(
            ".incoming-{}-{}",
            std::process::id(),
            STAGING.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Moves `staged` (from [`ResultStore::staging_path`]) into the store as `cid`, without
    /// recomputing its CID: for content whose every block was already checked against `cid`
    /// (a fetched input, whose DAG may have been built with other chunking than `ipfs add`'s).
    /// Something already stored as `cid` is kept and `staged` is removed.
    pub fn put_verified(&self, cid: &Cid, staged: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.root.join(canonical(cid).to_string());
        if std::fs::symlink_metadata(&dest).is_err()
            && let Err(source) = std::fs::rename(staged, &dest)
            && std::fs::symlink_metadata(&dest).is_err()
        {
            return Err(StoreError::Io {
                what: "moving the fetched content into the store",
                path: staged.to_owned(),
                source,
            });
        }
        remove_any(staged).map_err(|source| StoreError::Io {
            what: "removing already stored content",
            path: staged.to_owned(),
            source,
        })?;
        Ok(dest)
    }

    /// Where the result with this CID is, if stored.
    pub fn get(&self, cid: &Cid) -> Option<PathBuf> {
        let dir = self.root.join(canonical(cid).to_string());
        dir.is_dir().then_some(dir)
    }

    /// What `path` (slash-separated, relative to the result's root; empty for the root) is in the
    /// result named by the CID text `cid`. `.` and `..` segments are refused and symbolic links
    /// are never followed, so nothing outside the result can be reached.
    pub fn lookup(&self, cid: &str, path: &str) -> Result<Entry, LookupError> {
        let parsed = Cid::try_from(cid).map_err(|_| LookupError::BadCid {
            text: cid.to_owned(),
        })?;
        let cid = canonical(&parsed).to_string();
        let mut current = self.root.join(&cid);
        if !current.is_dir() {
            // A single file fetched by CID (an input) is served at its CID alone.
            if let Ok(meta) = std::fs::symlink_metadata(&current)
                && meta.is_file()
                && path.split('/').all(str::is_empty)
            {
                return Ok(Entry::File {
                    path: current,
                    size: meta.len(),
                });
            }
            return Err(LookupError::UnknownCid { cid });
        }
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for s in &segments {
            let reason = match *s {
                "." | ".." => Some("it has a . or .. segment"),
                s if s.contains('\0') => Some("it has a NUL character"),
                _ => None,
            };
            if let Some(reason) = reason {
                return Err(LookupError::BadPath {
                    path: path.to_owned(),
                    reason,
                });
            }
        }
        let io_err = |e: std::io::Error| LookupError::Io {
            cid: cid.clone(),
            message: e.to_string(),
        };
        for (i, s) in segments.iter().enumerate() {
            current.push(s);
            let meta = match std::fs::symlink_metadata(&current) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(LookupError::NotFound {
                        cid,
                        path: path.to_owned(),
                    });
                }
                Err(e) if e.raw_os_error() == Some(20) => {
                    // ENOTDIR: a file was used as a directory.
                    return Err(LookupError::NotFound {
                        cid,
                        path: path.to_owned(),
                    });
                }
                Err(e) => return Err(io_err(e)),
            };
            let last = i + 1 == segments.len();
            if meta.file_type().is_symlink() {
                if last {
                    let target = std::fs::read_link(&current).map_err(io_err)?;
                    return Ok(Entry::Symlink {
                        target: target.to_string_lossy().into_owned(),
                    });
                }
                return Err(LookupError::ThroughSymlink {
                    cid,
                    link: segments[..=i].join("/"),
                });
            }
            if !last && !meta.is_dir() {
                return Err(LookupError::NotFound {
                    cid,
                    path: path.to_owned(),
                });
            }
        }
        let meta = std::fs::symlink_metadata(&current).map_err(io_err)?;
        if meta.is_file() {
            return Ok(Entry::File {
                path: current,
                size: meta.len(),
            });
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&current).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let meta = std::fs::symlink_metadata(entry.path()).map_err(io_err)?;
            let kind = if meta.is_dir() {
                "directory"
            } else if meta.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            };
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
                size: if meta.is_file() { meta.len() } else { 0 },
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Entry::Directory { entries })
    }
}

/// The form a CID is stored under: version 1, base32 (`bafy...`). A CIDv0 (`Qm...`) names the
/// same content as its version-1 twin.
pub(crate) fn canonical(cid: &Cid) -> Cid {
    if cid.version() == cid::Version::V0 {
        Cid::new_v1(cid.codec(), *cid.hash())
    } else {
        *cid
    }
}

/// Removes a file, link or directory tree; nothing there is fine.
pub(crate) fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copies a tree, keeping symbolic links as links.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        let dest = to.join(entry.file_name());
        if meta.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}
