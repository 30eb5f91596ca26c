//! Adding (and pinning) a result directory to an IPFS node through its HTTP RPC API (Kubo's
//! `/api/v0/add`), and checking the node computed the same root CID as we did.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cid::Cid;
use reqwest::multipart::{Form, Part};

/// Why pinning failed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The configured API address is not usable.
    #[error(
        "IPFS API address {url:?} {problem} (fix: give the node's RPC API as http://HOST:PORT, e.g. http://127.0.0.1:5001)"
    )]
    BadUrl {
        /// What was configured.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Reading the result directory failed.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request did not complete.
    #[error(
        "IPFS node at {url} did not answer: {source} (fix: check the node is running and its API listens there)"
    )]
    Request {
        /// The API address.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The node answered with an error.
    #[error("IPFS node at {url} refused the add with {status}: {message}")]
    Api {
        /// The API address.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The node's message.
        message: String,
    },
    /// The node's answer could not be understood.
    #[error("IPFS node at {url} gave an answer without a root CID: {body}")]
    BadAnswer {
        /// The API address.
        url: String,
        /// What it said (cut short).
        body: String,
    },
    /// The node computed a different root CID, so the result it holds is not the one we report.
    #[error(
        "IPFS node at {url} computed root {theirs} but the result's CID is {ours} (fix: check the node adds with default settings: chunker size-262144, no trickle, no inline, no fscache)"
    )]
    CidMismatch {
        /// The API address.
        url: String,
        /// Ours.
        ours: String,
        /// The node's.
        theirs: String,
    },
}

/// A client of one IPFS node's RPC API.
#[derive(Debug, Clone)]
pub struct IpfsPinner {
    url: String,
    client: reqwest::Client,
}

/// `url.QueryEscape` as Go writes it, which is how Kubo reads multipart file names.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

enum Item {
    Dir(String),
    File(String, PathBuf, u64),
    Symlink(String, String),
}

/// Depth first, sorted, each directory before its contents: the order Kubo's multipart reader
/// expects.
fn walk(dir: &Path, prefix: &str, items: &mut Vec<Item>) -> Result<(), PinError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| PinError::Io { path, source }
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            items.push(Item::Dir(rel.clone()));
            walk(&path, &rel, items)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io(&path))?;
            items.push(Item::Symlink(rel, target.to_string_lossy().into_owned()));
        } else {
            items.push(Item::File(rel, path, meta.len()));
        }
    }
    Ok(())
}

impl IpfsPinner {
    /// A client for the node whose RPC API is at `url` (e.g. `http://127.0.0.1:5001`). Adding a
    /// large result can take a while: requests time out after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PinError> {
        let bad = |problem| PinError::BadUrl {
            url: url.to_owned(),
            problem,
        };
        let rest = if let Some(rest) = url.strip_prefix("http://") {
            rest
        } else if url.starts_with("https://") {
            return Err(bad(
                "uses https, which this build does not speak; the RPC API is unauthenticated and belongs on loopback or a private network",
            ));
        } else {
            return Err(bad("does not start with http://"));
        };
        if rest.trim_end_matches('/').is_empty() || rest.contains(char::is_whitespace) {
            return Err(bad("has no host"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| PinError::Request {
                url: url.to_owned(),
                source,
            })?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// The API address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds the result directory `dir` (pinned), as `ipfs add -r --cid-version=1 --raw-leaves`
    /// would, and checks the node's root CID is `expected`. Files are streamed, not loaded.
    pub async fn add_dir(&self, dir: &Path, expected: &Cid) -> Result<Cid, PinError> {
        let mut items = Vec::new();
        {
            let owned = dir.to_owned();
            let walked = tokio::task::spawn_blocking(move || {
                let mut items = Vec::new();
                walk(&owned, "", &mut items).map(|()| items)
            })
            .await;
            match walked {
                Ok(r) => items.extend(r?),
                Err(e) => {
                    return Err(PinError::Io {
                        path: dir.to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
            }
        }
        let mut form = Form::new().percent_encode_noop();
        for item in items {
            let part = match item {
                Item::Dir(rel) => Part::bytes(Vec::new())
                    .file_name(query_escape(&rel))
                    .mime_str("application/x-directory"),
                Item::Symlink(rel, target) => Part::bytes(target.into_bytes())
                    .file_name(query_escape(&rel))
                    .mime_str("application/symlink"),
                Item::File(rel, path, len) => {
                    let file = tokio::fs::File::open(&path)
                        .await
                        .map_err(|source| PinError::Io { path, source })?;
                    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
                    Part::stream_with_length(body, len)
                        .file_name(query_escape(&rel))
                        .mime_str("application/octet-stream")
                }
            };
            let part = part.map_err(|source| PinError::Request {
                url: self.url.clone(),
                source,
            })?;
            form = form.part("file", part);
        }
        let endpoint = format!(
            "{}/api/v0/add?cid-version=1&raw-leaves=true&wrap-with-directory=true&pin=true&chunker=size-262144&progress=false",
            self.url
        );
        let response = self
            .client
            .post(&endpoint)
            .multipart(form)
            .send()
            .await
            .map_err(|source| PinError::Request {
                url: self.url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|source| PinError::Request {
            url: self.url.clone(),
            source,
        })?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("Message")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| body.trim().chars().take(500).collect());
            return Err(PinError::Api {
                url: self.url.clone(),
                status: status.as_u16(),
                message,
            });
        }
        // One JSON object per line; the wrapping directory (the result's root) has Name "".
        let root = body
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("Name").and_then(|n| n.as_str()) == Some(""))
            .filter_map(|v| v.get("Hash")?.as_str().map(str::to_owned))
            .next_back()
            .ok_or_else(|| PinError::BadAnswer {
                url: self.url.clone(),
                body: body.chars().take(500).collect(),
            })?;
        match Cid::try_from(root.as_str()) {
            Ok(cid) if cid == *expected => Ok(cid),
            _ => Err(PinError::CidMismatch {
                url: self.url.clone(),
                ours: expected.to_string(),
                theirs: root,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_as_go_does() {
        assert_eq!(query_escape("outputs/a b+c.txt"), "outputs%2Fa+b%2Bc.txt");
        assert_eq!(query_escape("exitCode"), "exitCode");
        assert_eq!(query_escape("ü"), "%C3%BC");
    }

    #[test]
    fn refuses_urls_it_cannot_use() {
        let t = Duration::from_secs(1);
        for (url, says) in [
            ("https://ipfs.example", "https"),
            ("127.0.0.1:5001", "http://"),
            ("http://", "no host"),
        ] {
            let err = IpfsPinner::new(url, t).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert_eq!(
            IpfsPinner::new("http://127.0.0.1:5001/", t).unwrap().url(),
            "http://127.0.0.1:5001"
        );
    }
}
