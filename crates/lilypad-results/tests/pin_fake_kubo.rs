//! Pinning to an IPFS node, against a small fake of Kubo's `/api/v0/add` (no Kubo can be
//! installed here): the request must have the shape Kubo needs, and the node's root CID must be
//! checked against ours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::post;
use lilypad_results::{IpfsPinner, PinError, cid_of_path, layout};

#[derive(Default)]
struct Seen {
    query: String,
    content_type: String,
    body: Vec<u8>,
}

struct Fake {
    seen: Mutex<Option<Seen>>,
    status: StatusCode,
    answer: String,
}

async fn add(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    *fake.seen.lock().expect("not poisoned") = Some(Seen {
        query: uri.query().unwrap_or("").to_owned(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: body.to_vec(),
    });
    (fake.status, fake.answer.clone())
}

async fn start_fake(status: StatusCode, answer: String) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        seen: Mutex::new(None),
        status,
        answer,
    });
    let app = axum::Router::new()
        .route("/api/v0/add", post(add))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fake)
}

/// (filename, content type, body) of each multipart part, in order.
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut out = Vec::new();
    let positions: Vec<usize> = text
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &text[pair[0] + delimiter.len() + 2..pair[1] - 2];
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers");
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let filename = head
            .split("filename=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a filename")
            .to_owned();
        let ctype = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("content-type: ")
                    .or(l.strip_prefix("Content-Type: "))
            })
            .expect("a content type")
            .to_owned();
        assert!(head.contains("name=\"file\""), "{head}");
        out.push((filename, ctype, part[split + 4..].to_vec()));
    }
    out
}

fn result_dir(parent: &std::path::Path) -> std::path::PathBuf {
    let dir = parent.join("result");
    std::fs::create_dir_all(dir.join("outputs/a dir/empty")).expect("mkdir");
    std::fs::write(dir.join("outputs/a dir/x=1.txt"), b"one").expect("write");
    std::os::unix::fs::symlink("x=1.txt", dir.join("outputs/a dir/link")).expect("symlink");
    layout::write_result_files(&dir, b"out\n", b"", 3).expect("result files");
    dir
}

#[tokio::test]
async fn adds_the_directory_in_kubos_shape_and_accepts_a_matching_root() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = result_dir(scratch.path());
    let cid = cid_of_path(&dir).unwrap();
    let answer = format!(
        "{{\"Name\":\"stdout\",\"Hash\":\"bafkreia\",\"Size\":\"4\"}}\n{{\"Name\":\"\",\"Hash\":\"{cid}\",\"Size\":\"100\"}}\n"
    );
    let (url, fake) = start_fake(StatusCode::OK, answer).await;
    let pinner = IpfsPinner::new(&url, Duration::from_secs(10)).unwrap();
    assert_eq!(pinner.add_dir(&dir, &cid).await.unwrap(), cid);

    let seen = fake.seen.lock().unwrap().take().expect("a request");
    for param in [
        "cid-version=1",
        "raw-leaves=true",
        "wrap-with-directory=true",
        "pin=true",
        "chunker=size-262144",
    ] {
        assert!(
            seen.query.split('&').any(|p| p == param),
            "{param} in {}",
            seen.query
        );
    }
    assert!(
        seen.content_type.starts_with("multipart/form-data"),
        "{}",
        seen.content_type
    );
    let got = parts(&seen.content_type, &seen.body);
    let summary: Vec<(&str, &str)> = got
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("exitCode", "application/octet-stream"),
            ("outputs", "application/x-directory"),
            ("outputs%2Fa+dir", "application/x-directory"),
            ("outputs%2Fa+dir%2Fempty", "application/x-directory"),
            ("outputs%2Fa+dir%2Flink", "application/symlink"),
            ("outputs%2Fa+dir%2Fx%3D1.txt", "application/octet-stream"),
            ("stderr", "application/octet-stream"),
            ("stdout", "application/octet-stream"),
        ],
        "depth first, each directory before what it holds, names escaped as Kubo reads them"
    );
    assert_eq!(got[0].2, b"3");
    assert_eq!(got[4].2, b"x=1.txt");
    assert_eq!(got[5].2, b"one");
    assert_eq!(got[7].2, b"out\n");
}

#[tokio::test]
async fn a_different_root_from_the_node_is_an_error() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = result_dir(scratch.path());
    let cid = cid_of_path(&dir).unwrap();
    let wrong = lilypad_results::cid_of_bytes(b"something else");
    let (url, _) = start_fake(
        StatusCode::OK,
        format!("{{\"Name\":\"\",\"Hash\":\"{wrong}\"}}\n"),
    )
    .await;
    let err = IpfsPinner::new(&url, Duration::from_secs(10))
        .unwrap()
        .add_dir(&dir, &cid)
        .await
        .unwrap_err();
    assert!(matches!(err, PinError::CidMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&cid.to_string()) && text.contains(&wrong.to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn the_nodes_error_message_is_passed_on() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = result_dir(scratch.path());
    let cid = cid_of_path(&dir).unwrap();
    let (url, _) = start_fake(
        StatusCode::INTERNAL_SERVER_ERROR,
        "{\"Message\":\"repo is full\",\"Code\":0,\"Type\":\"error\"}".to_owned(),
    )
    .await;
    let err = IpfsPinner::new(&url, Duration::from_secs(10))
        .unwrap()
        .add_dir(&dir, &cid)
        .await
        .unwrap_err();
    assert!(matches!(err, PinError::Api { status: 500, .. }), "{err}");
    assert!(err.to_string().contains("repo is full"), "{err}");
}

#[tokio::test]
async fn an_unreachable_node_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = result_dir(scratch.path());
    let cid = cid_of_path(&dir).unwrap();
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = IpfsPinner::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10))
        .unwrap()
        .add_dir(&dir, &cid)
        .await
        .unwrap_err();
    assert!(matches!(err, PinError::Request { .. }), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");
}
