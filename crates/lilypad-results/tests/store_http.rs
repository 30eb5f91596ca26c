//! The result store on disk and over HTTP: results are found by CID, paths inside them resolve,
//! and nothing outside a result can be reached.

use std::path::Path;
use std::sync::Arc;

use lilypad_results::{Entry, LookupError, ResultStore, cid_of_path, layout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn make_result(parent: &Path, stdout: &[u8]) -> std::path::PathBuf {
    let dir = parent.join(format!("job-{}", stdout.len()));
    std::fs::create_dir_all(dir.join("outputs/sub/empty")).expect("mkdir");
    std::fs::write(dir.join("outputs/sub/answer.txt"), b"42\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("outputs/escape")).expect("symlink");
    std::os::unix::fs::symlink("/etc", dir.join("outputs/etc")).expect("symlink");
    layout::write_result_files(&dir, stdout, b"warning\n", 0).expect("result files");
    dir
}

#[test]
fn put_moves_a_result_in_and_finds_it_by_cid() {
    let scratch = tempfile::tempdir().unwrap();
    let store = ResultStore::open(scratch.path().join("store")).unwrap();
    let dir = make_result(scratch.path(), b"hello\n");
    let expected = cid_of_path(&dir).unwrap();

    let cid = store.put(&dir).unwrap();
    assert_eq!(cid, expected);
    assert!(!dir.exists(), "the result was moved into the store");
    let stored = store.get(&cid).expect("stored");
    assert_eq!(std::fs::read(stored.join("stdout")).unwrap(), b"hello\n");
    assert_eq!(std::fs::read(stored.join("exitCode")).unwrap(), b"0");
    assert_eq!(cid_of_path(&stored).unwrap(), cid, "content unchanged");

    // The same content again: one copy, same CID, the new directory consumed.
    let again = make_result(scratch.path(), b"hello\n");
    assert_eq!(store.put(&again).unwrap(), cid);
    assert!(!again.exists());
    let entries = std::fs::read_dir(store.root()).unwrap().count();
    assert_eq!(entries, 1);
}

#[test]
fn lookup_resolves_paths_and_refuses_to_leave_the_result() {
    let scratch = tempfile::tempdir().unwrap();
    let store = ResultStore::open(scratch.path().join("store")).unwrap();
    let cid = store.put(&make_result(scratch.path(), b"out")).unwrap();
    let c = cid.to_string();

    match store.lookup(&c, "outputs/sub/answer.txt").unwrap() {
        Entry::File { size, path } => {
            assert_eq!(size, 3);
            assert_eq!(std::fs::read(path).unwrap(), b"42\n");
        }
        other => panic!("expected a file, got {other:?}"),
    }
    match store.lookup(&c, "").unwrap() {
        Entry::Directory { entries } => {
            let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, ["exitCode", "outputs", "stderr", "stdout"]);
        }
        other => panic!("expected a directory, got {other:?}"),
    }
    assert_eq!(
        store.lookup(&c, "outputs/escape").unwrap(),
        Entry::Symlink {
            target: "/etc/passwd".into()
        },
        "a symlink is reported, not followed"
    );
    assert!(matches!(
        store.lookup(&c, "outputs/etc/passwd"),
        Err(LookupError::ThroughSymlink { .. })
    ));
    assert!(matches!(
        store.lookup(&c, "outputs/../../../etc/passwd"),
        Err(LookupError::BadPath { .. })
    ));
    assert!(matches!(
        store.lookup(&c, "outputs/nothing"),
        Err(LookupError::NotFound { .. })
    ));
    assert!(matches!(
        store.lookup(&c, "stdout/below-a-file"),
        Err(LookupError::NotFound { .. })
    ));
    assert!(matches!(
        store.lookup("../etc", ""),
        Err(LookupError::BadCid { .. })
    ));
    let other = lilypad_results::cid_of_bytes(b"never stored").to_string();
    let err = store.lookup(&other, "").unwrap_err();
    assert!(matches!(err, LookupError::UnknownCid { .. }));
    assert!(err.to_string().contains(&other), "{err}");
}

/// Sends one raw HTTP/1.1 request (so the path reaches the server exactly as written) and
/// returns the status code, the headers and the body.
async fn raw_get(port: u16, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    s.read_to_end(&mut response).await.expect("read");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().expect("status code");
    (status, head, response[split + 4..].to_vec())
}

#[tokio::test]
async fn http_serves_results_by_cid_and_path() {
    let scratch = tempfile::tempdir().unwrap();
    let store = Arc::new(ResultStore::open(scratch.path().join("store")).unwrap());
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let dir = make_result(scratch.path(), &big);
    let cid = store.put(&dir).unwrap().to_string();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(lilypad_results::server::serve(listener, store.clone()));

    let (status, head, body) = raw_get(port, &format!("/ipfs/{cid}")).await;
    assert_eq!(status, 200, "{head}");
    let listing: serde_json::Value = serde_json::from_slice(&body).expect("JSON listing");
    let names: Vec<_> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["exitCode", "outputs", "stderr", "stdout"]);

    let (status, _, body) = raw_get(port, &format!("/ipfs/{cid}/stdout")).await;
    assert_eq!(status, 200);
    assert_eq!(body, big, "a multi-megabyte file comes back byte for byte");

    let (status, _, body) = raw_get(port, &format!("/ipfs/{cid}/outputs/sub/answer.txt")).await;
    assert_eq!((status, body.as_slice()), (200, b"42\n".as_slice()));

    // The symlink to /etc/passwd: its target, never the file.
    let (status, _, body) = raw_get(port, &format!("/ipfs/{cid}/outputs/escape")).await;
    assert_eq!((status, body.as_slice()), (200, b"/etc/passwd".as_slice()));
    let (status, _, body) = raw_get(port, &format!("/ipfs/{cid}/outputs/etc/passwd")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("never followed"));

    for traversal in [
        format!("/ipfs/{cid}/../../../../etc/passwd"),
        format!("/ipfs/{cid}/outputs/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("/ipfs/{cid}/outputs/..%2f..%2f..%2fetc%2fpasswd"),
    ] {
        let (status, _, body) = raw_get(port, &traversal).await;
        let body = String::from_utf8_lossy(&body);
        assert!(
            status == 400 || status == 404,
            "{traversal}: {status} {body}"
        );
        assert!(!body.contains("root:"), "{traversal} leaked /etc/passwd");
    }
    let (status, _, body) = raw_get(
        port,
        &format!("/ipfs/{cid}/outputs/%2e%2e/%2e%2e/etc/passwd"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains(".. segment"));

    let unknown = lilypad_results::cid_of_bytes(b"absent").to_string();
    let (status, _, body) = raw_get(port, &format!("/ipfs/{unknown}")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains(&format!("no result with CID {unknown}")));
    let (status, _, body) = raw_get(port, &format!("/ipfs/{cid}/outputs/missing.txt")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("has nothing at"));
    let (status, _, body) = raw_get(port, "/ipfs/not-a-cid").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("is not a CID"));
    let (status, _, _) = raw_get(port, "/elsewhere").await;
    assert_eq!(status, 404);

    server.abort();
}
