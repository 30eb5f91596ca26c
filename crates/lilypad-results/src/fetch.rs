//! Fetching content by CID from IPFS trustless gateways (`GET /ipfs/<cid>?format=car`), checking
//! every block against its CID, rebuilding the UnixFS file or directory and keeping it in the
//! [`ResultStore`], so the same CID is fetched once.
//!
//! Nothing the gateway says is trusted: a block whose bytes do not hash to its CID, a block that
//! is missing, a name that could leave the tree, more bytes than the limit, or a download that
//! takes longer than the limit each fail the fetch with a [`FetchError`] naming the gateway.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use rust_unixfs::walk::{ContinuedWalk, Walker};

use crate::car::{CAR_ACCEPT, CarError, CarReader};
use crate::store::{ResultStore, StoreError, remove_any};

/// How much a fetch may bring in, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Most bytes of one CID: of the gateway's CAR response, and of the file or directory it
    /// unpacks to (so a CAR that repeats one block cannot unpack to more).
    pub max_bytes: u64,
    /// Longest one gateway may take to send the whole CAR.
    pub timeout: Duration,
}

impl Default for FetchLimits {
    /// 1 GiB and 10 minutes.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(600),
        }
    }
}

/// Why content could not be fetched by CID.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No gateway is configured and the CID is not stored here.
    #[error(
        "{cid} is not stored here and no IPFS gateway is configured (fix: start the provider with --ipfs-gateway URL)"
    )]
    NoGateway {
        /// The CID.
        cid: String,
    },
    /// More bytes than the limit.
    #[error(
        "{cid} from {gateway} is larger than the limit of {} (fix: raise --ipfs-max-bytes, or use a smaller input)",
        lilypad_toml::format_bytes(*max_bytes)
    )]
    TooLarge {
        /// The CID.
        cid: String,
        /// The gateway.
        gateway: String,
        /// The limit.
        max_bytes: u64,
    },
    /// The gateway did not send everything in time.
    #[error(
        "{cid} from {gateway} did not arrive within {after:?} (fix: raise --ipfs-timeout, or use a faster gateway)"
    )]
    TimedOut {
        /// The CID.
        cid: String,
        /// The gateway.
        gateway: String,
        /// The limit.
        after: Duration,
    },
    /// The request failed or the gateway answered with an error status.
    #[error(
        "{cid} from {gateway}: {message} (fix: check the gateway URL and that it holds the CID)"
    )]
    Gateway {
        /// The CID.
        cid: String,
        /// The gateway.
        gateway: String,
        /// What went wrong.
        message: String,
    },
    /// The gateway's CAR is malformed, or a block in it does not match its CID.
    #[error("{cid} from {gateway}: {source} (fix: use another gateway; this one sent bad data)")]
    BadCar {
        /// The CID.
        cid: String,
        /// The gateway.
        gateway: String,
        /// What was wrong.
        source: CarError,
    },
    /// The CAR lacks a block the DAG links to, or the DAG is not a UnixFS file or directory.
    #[error(
        "{cid} from {gateway}: {message} (fix: use another gateway; this one sent an incomplete or unusable DAG)"
    )]
    BadDag {
        /// The CID.
        cid: String,
        /// The gateway.
        gateway: String,
        /// What was wrong.
        message: String,
    },
    /// Writing what was fetched failed.
    #[error("storing {cid}: {message}")]
    Local {
        /// The CID.
        cid: String,
        /// What went wrong.
        message: String,
    },
    /// Every gateway failed; each one's reason.
    #[error("{cid} could not be fetched from any gateway:{}", list(errors))]
    AllFailed {
        /// The CID.
        cid: String,
        /// Each gateway's failure, in the order tried.
        errors: Vec<FetchError>,
    },
}

fn list(errors: &[FetchError]) -> String {
    errors.iter().map(|e| format!("\n  - {e}")).collect()
}

/// Fetches by CID from trustless gateways into a [`ResultStore`].
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    gateways: Vec<String>,
    limits: FetchLimits,
    store: Arc<ResultStore>,
}

impl Fetcher {
    /// A fetcher trying `gateways` (base URLs such as `http://127.0.0.1:8080`) in order.
    pub fn new(store: Arc<ResultStore>, gateways: Vec<String>, limits: FetchLimits) -> Self {
        Self {
            client: reqwest::Client::new(),
            gateways: gateways
                .into_iter()
                .map(|g| g.trim_end_matches('/').to_owned())
                .collect(),
            limits,
            store,
        }
    }

    /// Its limits.
    pub fn limits(&self) -> FetchLimits {
        self.limits
    }

    /// Where the content `cid` is on disk: from the store when it is there, else fetched from
    /// the first gateway that sends it whole and verified.
    pub async fn fetch(&self, cid: &Cid) -> Result<PathBuf, FetchError> {
        if let Some(path) = self.store.get_any(cid) {
            return Ok(path);
        }
        if self.gateways.is_empty() {
            return Err(FetchError::NoGateway {
                cid: cid.to_string(),
            });
        }
        let mut errors = Vec::new();
        for gateway in &self.gateways {
            match self.fetch_from(gateway, cid).await {
                Ok(path) => return Ok(path),
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == 1
            && let Some(e) = errors.pop()
        {
            return Err(e);
        }
        Err(FetchError::AllFailed {
            cid: cid.to_string(),
            errors,
        })
    }

    async fn fetch_from(&self, gateway: &str, cid: &Cid) -> Result<PathBuf, FetchError> {
        let car_path = self.store.staging_path();
        let downloaded =
            tokio::time::timeout(self.limits.timeout, self.download(gateway, cid, &car_path)).await;
        let result = match downloaded {
            Err(_) => Err(FetchError::TimedOut {
                cid: cid.to_string(),
                gateway: gateway.to_owned(),
                after: self.limits.timeout,
            }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => {
                let (store, cid, gateway, car, max) = (
                    self.store.clone(),
                    *cid,
                    gateway.to_owned(),
                    car_path.clone(),
                    self.limits.max_bytes,
                );
                tokio::task::spawn_blocking(move || unpack(&store, &cid, &gateway, &car, max))
                    .await
                    .unwrap_or_else(|e| {
                        Err(FetchError::Local {
                            cid: cid.to_string(),
                            message: format!("the unpacking task failed: {e}"),
                        })
                    })
            }
        };
        let _ = std::fs::remove_file(&car_path);
        result
    }

    /// Writes the gateway's CAR for `cid` to `to`, at most `max_bytes` of it.
    async fn download(&self, gateway: &str, cid: &Cid, to: &Path) -> Result<(), FetchError> {
        let failed = |message: String| FetchError::Gateway {
            cid: cid.to_string(),
            gateway: gateway.to_owned(),
            message,
        };
        let url = format!("{gateway}/ipfs/{cid}?format=car&dag-scope=all");
        let mut response = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, CAR_ACCEPT)
            .send()
            .await
            .map_err(|e| failed(format!("GET {url} failed: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(failed(format!(
                "GET {url} answered {status}: {}",
                body.trim().chars().take(300).collect::<String>()
            )));
        }
        let too_large = || FetchError::TooLarge {
            cid: cid.to_string(),
            gateway: gateway.to_owned(),
            max_bytes: self.limits.max_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.limits.max_bytes)
        {
            return Err(too_large());
        }
        let local = |e: std::io::Error| FetchError::Local {
            cid: cid.to_string(),
            message: format!("writing {}: {e}", to.display()),
        };
        // Buffered: each write to a tokio file is a trip to the blocking pool.
        let mut file = tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(to).await.map_err(local)?,
        );
        let mut total = 0u64;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| failed(format!("reading the answer to GET {url}: {e}")))?
        {
            total += chunk.len() as u64;
            if total > self.limits.max_bytes {
                return Err(too_large());
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(local)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(local)?;
        Ok(())
    }
}

/// Verifies every block of the CAR at `car`, rebuilds the DAG rooted at `cid` from them and
/// moves it into the store.
fn unpack(
    store: &ResultStore,
    cid: &Cid,
    gateway: &str,
    car: &Path,
    max_bytes: u64,
) -> Result<PathBuf, FetchError> {
    let staged = store.staging_path();
    let result = unpack_into(cid, gateway, car, &staged, max_bytes).and_then(|()| {
        store
            .put_verified(cid, &staged)
            .map_err(|e: StoreError| FetchError::Local {
                cid: cid.to_string(),
                message: e.to_string(),
            })
    });
    if result.is_err() {
        let _ = remove_any(&staged);
    }
    result
}

fn unpack_into(
    cid: &Cid,
    gateway: &str,
    car: &Path,
    dest: &Path,
    max_bytes: u64,
) -> Result<(), FetchError> {
    let local = |e: std::io::Error| FetchError::Local {
        cid: cid.to_string(),
        message: e.to_string(),
    };
    let bad_car = |source| FetchError::BadCar {
        cid: cid.to_string(),
        gateway: gateway.to_owned(),
        source,
    };
    let bad_dag = |message: String| FetchError::BadDag {
        cid: cid.to_string(),
        gateway: gateway.to_owned(),
        message,
    };

    // Every block verified, and where its bytes are in the CAR file.
    let mut index: HashMap<Cid, (u64, usize)> = HashMap::new();
    {
        let mut counting = CountingReader {
            inner: BufReader::new(File::open(car).map_err(local)?),
            read: 0,
        };
        let mut reader = CarReader::new(&mut counting).map_err(bad_car)?;
        loop {
            let block = reader.next_block().map_err(bad_car)?;
            let Some((block_cid, data)) = block else {
                break;
            };
            let end = reader_position(&reader);
            index.insert(block_cid, (end - data.len() as u64, data.len()));
        }
    }
    let mut blocks = File::open(car).map_err(local)?;
    let mut load = |c: &Cid| -> Result<Vec<u8>, FetchError> {
        let (offset, len) = *index
            .get(c)
            .ok_or_else(|| bad_dag(format!("the CAR lacks block {c}")))?;
        let mut buf = vec![0u8; len];
        blocks.seek(SeekFrom::Start(offset)).map_err(local)?;
        blocks.read_exact(&mut buf).map_err(local)?;
        Ok(buf)
    };

    let mut walker = Walker::new(*cid, String::new());
    let mut cache = None;
    let mut written = 0u64;
    let mut open: Option<BufWriter<File>> = None;
    while walker.should_continue() {
        let next = *walker.pending_links().0;
        let block = load(&next)?;
        let item = walker
            .next(&block, &mut cache)
            .map_err(|e| bad_dag(format!("block {next} is not UnixFS: {e}")))?;
        match item {
            ContinuedWalk::RootDirectory(_, path, _) | ContinuedWalk::Directory(_, path, _) => {
                let target = inside(dest, path).map_err(bad_dag)?;
                std::fs::create_dir_all(&target).map_err(local)?;
            }
            ContinuedWalk::Bucket(..) => {}
            ContinuedWalk::File(segment, _, path, _, _) => {
                if segment.is_first() {
                    let target = inside(dest, path).map_err(bad_dag)?;
                    open = Some(BufWriter::new(File::create(&target).map_err(local)?));
                }
                written += segment.as_bytes().len() as u64;
                if written > max_bytes {
                    return Err(FetchError::TooLarge {
                        cid: cid.to_string(),
                        gateway: gateway.to_owned(),
                        max_bytes,
                    });
                }
                let file = open
                    .as_mut()
                    .ok_or_else(|| bad_dag("a file continues that never began".into()))?;
                file.write_all(segment.as_bytes()).map_err(local)?;
                if segment.is_last()
                    && let Some(mut f) = open.take()
                {
                    f.flush().map_err(local)?;
                }
            }
            ContinuedWalk::Symlink(target, _, path, _) => {
                let link = inside(dest, path).map_err(bad_dag)?;
                let target = std::str::from_utf8(target)
                    .map_err(|_| bad_dag(format!("the symlink {} is not UTF-8", path.display())))?;
                std::os::unix::fs::symlink(target, &link).map_err(local)?;
            }
        }
    }
    if let Some(mut f) = open.take() {
        f.flush().map_err(local)?;
    }
    make_readable(dest).map_err(local)
}

/// Where `path` (relative, from the walk) is under `dest`; names that could leave it are
/// refused.
fn inside(dest: &Path, path: &Path) -> Result<PathBuf, String> {
    let mut out = dest.to_owned();
    for c in path.components() {
        match c {
            Component::Normal(name) if !name.as_encoded_bytes().contains(&0) => out.push(name),
            _ => {
                return Err(format!(
                    "the name {} could leave the directory (only plain names are allowed)",
                    path.display()
                ));
            }
        }
    }
    Ok(out)
}

/// Files 0644 and directories 0755, whatever user a container runs as (it sees them
/// read-only).
fn make_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(path)? {
            make_readable(&entry?.path())?;
        }
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

fn reader_position<R: Read>(reader: &CarReader<&mut CountingReader<R>>) -> u64 {
    reader.inner().read
}
