//! CARv1, the format of a trustless gateway's `?format=car` response: a varint-prefixed DAG-CBOR
//! header `{roots: [CID], version: 1}`, then sections, each a varint length followed by a CID and
//! the block's bytes.
//!
//! No CAR crate is among the packages this workspace may use, so this is the small subset needed:
//! writing a CARv1 with one root, and reading one block by block, checking every block against
//! its CID's multihash. The header's roots are read but not trusted: the reader is told which
//! root it asked for.

use std::io::{Read, Write};

use cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

/// The media type of a CAR response, with the parameters this server's answers have:
/// CARv1, blocks in no particular order, no block twice.
pub const CAR_CONTENT_TYPE: &str = "application/vnd.ipld.car; version=1; order=unk; dups=n";
/// What a client accepts.
pub const CAR_ACCEPT: &str = "application/vnd.ipld.car; version=1";

/// The longest header or block section accepted: a UnixFS block is at most 1 MiB (the
/// bitswap limit every IPFS implementation keeps to), plus room for its CID.
pub const MAX_SECTION_BYTES: u64 = (1 << 20) + 1024;

/// multihash code of the identity "hash" (the digest is the data).
const IDENTITY: u64 = 0x00;

/// Why a CAR stream is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    /// Reading the stream failed.
    #[error("reading the CAR: {0}")]
    Io(#[from] std::io::Error),
    /// The stream is not a well-formed CARv1.
    #[error("not a CARv1 stream: {0}")]
    Malformed(String),
    /// A block's bytes do not hash to its CID: the sender altered or corrupted it.
    #[error(
        "block {cid} does not match its CID (its bytes hash to something else): the gateway sent altered data"
    )]
    Tampered {
        /// The block's CID.
        cid: String,
    },
    /// A block's CID uses a hash function this reader cannot check.
    #[error(
        "block {cid} uses multihash code {code:#x}, which cannot be verified here (only sha2-256 and identity are)"
    )]
    UnsupportedHash {
        /// The block's CID.
        cid: String,
        /// Its multihash code.
        code: u64,
    },
}

fn write_varint(out: &mut impl Write, mut n: u64) -> std::io::Result<()> {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            return out.write_all(&[byte]);
        }
        out.write_all(&[byte | 0x80])?;
    }
}

/// Reads an unsigned LEB128 varint; `None` at a clean end of stream.
fn read_varint(input: &mut impl Read) -> Result<Option<u64>, CarError> {
    let mut n = 0u64;
    for i in 0..10 {
        let mut byte = [0u8];
        if input.read(&mut byte)? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(CarError::Malformed(
                "the stream ends inside a varint".into(),
            ));
        }
        n |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return Ok(Some(n));
        }
    }
    Err(CarError::Malformed("a varint longer than 10 bytes".into()))
}

/// The DAG-CBOR header `{"roots": [root], "version": 1}`.
fn header(root: &Cid) -> Vec<u8> {
    let cid = root.to_bytes();
    let mut h = vec![0xa2, 0x65];
    h.extend_from_slice(b"roots");
    h.push(0x81); // array(1)
    h.extend_from_slice(&[0xd8, 0x2a]); // tag 42: a CID
    // byte string of the CID with the multibase identity prefix 0x00
    let len = cid.len() + 1;
    if len < 24 {
        h.push(0x40 | len as u8);
    } else if len < 256 {
        h.extend_from_slice(&[0x58, len as u8]);
    } else {
        h.push(0x59);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    }
    h.push(0x00);
    h.extend_from_slice(&cid);
    h.push(0x67);
    h.extend_from_slice(b"version");
    h.push(0x01);
    h
}

/// Writes a CARv1 with one root, block by block.
#[derive(Debug)]
pub struct CarWriter<W> {
    out: W,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header naming `root`.
    pub fn new(mut out: W, root: &Cid) -> std::io::Result<Self> {
        let h = header(root);
        write_varint(&mut out, h.len() as u64)?;
        out.write_all(&h)?;
        Ok(Self { out })
    }

    /// Appends one block.
    pub fn block(&mut self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        let cid = cid.to_bytes();
        write_varint(&mut self.out, (cid.len() + data.len()) as u64)?;
        self.out.write_all(&cid)?;
        self.out.write_all(data)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Checks that `data` hashes to `cid`'s multihash.
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), CarError> {
    let hash = cid.hash();
    let ok = match hash.code() {
        IDENTITY => hash.digest() == data,
        code => match Code::try_from(code) {
            Ok(c @ Code::Sha2_256) => c.digest(data) == *hash,
            _ => {
                return Err(CarError::UnsupportedHash {
                    cid: cid.to_string(),
                    code,
                });
            }
        },
    };
    if ok {
        Ok(())
    } else {
        Err(CarError::Tampered {
            cid: cid.to_string(),
        })
    }
}

/// Reads a CARv1 section by section; every block is verified before it is handed out.
#[derive(Debug)]
pub struct CarReader<R> {
    input: R,
}

impl<R: Read> CarReader<R> {
    /// Reads (and skips) the header. Its roots are not trusted: the caller knows what it asked
    /// for, and the walk from that root finds out whether the blocks are there.
    pub fn new(mut input: R) -> Result<Self, CarError> {
        let len = read_varint(&mut input)?
            .ok_or_else(|| CarError::Malformed("the stream is empty".into()))?;
        if len == 0 || len > MAX_SECTION_BYTES {
            return Err(CarError::Malformed(format!(
                "a header of {len} bytes (expected 1 to {MAX_SECTION_BYTES})"
            )));
        }
        let mut h = vec![0u8; len as usize];
        input.read_exact(&mut h)?;
        // A map whose "version" is 1; a CARv2 starts with a different, fixed pragma.
        let version_1 = h.windows(9).any(|w| w == b"gversion\x01");
        if h.first().is_none_or(|b| b & 0xe0 != 0xa0) || !version_1 {
            return Err(CarError::Malformed(
                "the header is not a CARv1 header (a map with version 1)".into(),
            ));
        }
        Ok(Self { input })
    }

    /// The stream it reads.
    pub fn inner(&self) -> &R {
        &self.input
    }

    /// The next block, verified: its CID and bytes. `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some(len) = read_varint(&mut self.input)? else {
            return Ok(None);
        };
        if len == 0 || len > MAX_SECTION_BYTES {
            return Err(CarError::Malformed(format!(
                "a section of {len} bytes (expected 1 to {MAX_SECTION_BYTES})"
            )));
        }
        let mut section = vec![0u8; len as usize];
        self.input.read_exact(&mut section).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                CarError::Malformed("the stream ends inside a block".into())
            } else {
                CarError::Io(e)
            }
        })?;
        let mut cursor = std::io::Cursor::new(&section[..]);
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|e| CarError::Malformed(format!("a section that starts with no CID: {e}")))?;
        let data = section.split_off(cursor.position() as usize);
        verify_block(&cid, &data)?;
        Ok(Some((cid, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(data: &[u8]) -> Cid {
        Cid::new_v1(0x55, Code::Sha2_256.digest(data))
    }

    #[test]
    fn what_is_written_reads_back() {
        let (a, b) = (raw(b"a"), raw(b"bb"));
        let mut w = CarWriter::new(Vec::new(), &a).unwrap();
        w.block(&a, b"a").unwrap();
        w.block(&b, b"bb").unwrap();
        let bytes = w.into_inner();
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert_eq!(r.next_block().unwrap(), Some((a, b"a".to_vec())));
        assert_eq!(r.next_block().unwrap(), Some((b, b"bb".to_vec())));
        assert_eq!(r.next_block().unwrap(), None);
    }

    #[test]
    fn a_block_that_does_not_hash_to_its_cid_is_refused() {
        let a = raw(b"a");
        let mut w = CarWriter::new(Vec::new(), &a).unwrap();
        w.block(&a, b"x").unwrap();
        let bytes = w.into_inner();
        let mut r = CarReader::new(&bytes[..]).unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Tampered { cid }) if cid == a.to_string()));
    }

    #[test]
    fn a_truncated_block_is_malformed() {
        let a = raw(b"abc");
        let mut w = CarWriter::new(Vec::new(), &a).unwrap();
        w.block(&a, b"abc").unwrap();
        let bytes = w.into_inner();
        let mut r = CarReader::new(&bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(r.next_block(), Err(CarError::Malformed(_))));
    }
}
