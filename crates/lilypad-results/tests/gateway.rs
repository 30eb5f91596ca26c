//! The results server as a trustless gateway, and fetching by CID from gateways: what one store
//! serves as a CAR, another fetches, verifies block by block and keeps; bad gateways are refused.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use lilypad_results::car::CarError;
use lilypad_results::{Cid, FetchError, FetchLimits, Fetcher, ResultStore, cid_of_path, layout};

/// A result holding a multi-chunk file (with `marker` in its second chunk), a small file, an
/// empty file, an empty directory and a symlink.
fn make_result(parent: &Path, marker: &[u8]) -> PathBuf {
    let dir = parent.join("job");
    std::fs::create_dir_all(dir.join("outputs/sub/empty")).unwrap();
    let mut big: Vec<u8> = (0..700 * 1024u32).map(|i| (i % 251) as u8).collect();
    let at = 300 * 1024;
    big[at..at + marker.len()].copy_from_slice(marker);
    std::fs::write(dir.join("outputs/big.bin"), &big).unwrap();
    std::fs::write(dir.join("outputs/sub/answer.txt"), b"42\n").unwrap();
    std::fs::write(dir.join("outputs/sub/nothing"), b"").unwrap();
    std::os::unix::fs::symlink("answer.txt", dir.join("outputs/sub/link")).unwrap();
    layout::write_result_files(&dir, b"hello\n", b"", 0).unwrap();
    dir
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A provider's store holding one result, served; and its CID.
async fn provider(scratch: &Path) -> (SocketAddr, Cid, Arc<ResultStore>) {
    let store = Arc::new(ResultStore::open(scratch.join("a-store")).unwrap());
    let cid = store.put(&make_result(scratch, b"MARKER-MARKER")).unwrap();
    let addr = serve(lilypad_results::server::router(store.clone())).await;
    (addr, cid, store)
}

fn fetcher(scratch: &Path, gateways: Vec<String>, limits: FetchLimits) -> Fetcher {
    let store = Arc::new(ResultStore::open(scratch.join("b-store")).unwrap());
    Fetcher::new(store, gateways, limits)
}

async fn car_of(addr: SocketAddr, cid: &Cid) -> Vec<u8> {
    let r = reqwest::get(format!("http://{addr}/ipfs/{cid}?format=car"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn the_results_server_answers_a_car_request_with_every_block_of_the_result() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{addr}/ipfs/{cid}"))
        .header(header::ACCEPT, "application/vnd.ipld.car")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/vnd.ipld.car; version=1"),
        "{content_type}"
    );
    let bytes = r.bytes().await.unwrap();
    let mut reader = lilypad_results::car::CarReader::new(&bytes[..]).unwrap();
    let mut cids = std::collections::HashSet::new();
    while let Some((c, _)) = reader.next_block().unwrap() {
        assert!(cids.insert(c), "block {c} sent twice");
    }
    assert!(cids.contains(&cid), "the root block is in the CAR");
    // 3 chunks of big.bin and its root, answer.txt, link, stdout, exitCode, one empty block
    // (nothing and stderr), and the directories root, outputs, sub and empty.
    assert_eq!(cids.len(), 13, "{cids:?}");
}

#[tokio::test]
async fn a_car_request_for_an_unknown_cid_is_404() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, _, _) = provider(scratch.path()).await;
    let unknown = lilypad_results::cid_of_bytes(b"never stored");
    let r = reqwest::get(format!("http://{addr}/ipfs/{unknown}?format=car"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no result with CID"));
}

#[tokio::test]
async fn a_cid_served_by_another_providers_results_server_is_fetched_verified_and_kept() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let f = fetcher(
        scratch.path(),
        vec![format!("http://{addr}")],
        FetchLimits::default(),
    );
    let path = f.fetch(&cid).await.unwrap();
    assert_eq!(
        cid_of_path(&path).unwrap(),
        cid,
        "the same tree, byte for byte"
    );
    assert_eq!(
        std::fs::read(path.join("outputs/sub/answer.txt")).unwrap(),
        b"42\n"
    );
    assert_eq!(
        std::fs::read_link(path.join("outputs/sub/link")).unwrap(),
        Path::new("answer.txt")
    );
}

#[tokio::test]
async fn the_same_cid_twice_is_read_from_the_store() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let counted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A gateway that counts requests and passes them on.
    let upstream = format!("http://{addr}");
    let counter = counted.clone();
    let proxy = axum::Router::new().route(
        "/ipfs/{cid}",
        axum::routing::get(move |axum::extract::Path(c): axum::extract::Path<String>| {
            let (upstream, counter) = (upstream.clone(), counter.clone());
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let bytes = reqwest::get(format!("{upstream}/ipfs/{c}?format=car"))
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                bytes.to_vec()
            }
        }),
    );
    let proxy = serve(proxy).await;
    let f = fetcher(
        scratch.path(),
        vec![format!("http://{proxy}")],
        FetchLimits::default(),
    );
    let first = f.fetch(&cid).await.unwrap();
    let second = f.fetch(&cid).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(counted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A gateway that answers every request with `body`.
async fn gateway_sending(body: Vec<u8>) -> String {
    let router = axum::Router::new().route(
        "/ipfs/{cid}",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    format!("http://{}", serve(router).await)
}

#[tokio::test]
async fn a_gateway_that_alters_a_block_is_refused_and_nothing_is_stored() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let mut car = car_of(addr, &cid).await;
    let at = car
        .windows(13)
        .position(|w| w == b"MARKER-MARKER")
        .expect("the marker is in a raw leaf");
    car[at] = b'X';
    let gateway = gateway_sending(car).await;
    let f = fetcher(scratch.path(), vec![gateway], FetchLimits::default());
    let err = f.fetch(&cid).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::BadCar {
                source: CarError::Tampered { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("altered"), "{err}");
    let b_store = scratch.path().join("b-store");
    assert!(
        !b_store.join(cid.to_string()).exists(),
        "nothing kept under the CID"
    );
    assert_eq!(
        std::fs::read_dir(&b_store).unwrap().count(),
        0,
        "no scratch left"
    );
}

#[tokio::test]
async fn a_car_missing_a_block_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let car = car_of(addr, &cid).await;
    // Keep the header and every block but the one holding the marker.
    let mut reader = lilypad_results::car::CarReader::new(&car[..]).unwrap();
    let mut writer = lilypad_results::car::CarWriter::new(Vec::new(), &cid).unwrap();
    while let Some((c, data)) = reader.next_block().unwrap() {
        if !data.windows(13).any(|w| w == b"MARKER-MARKER") {
            writer.block(&c, &data).unwrap();
        }
    }
    let gateway = gateway_sending(writer.into_inner()).await;
    let f = fetcher(scratch.path(), vec![gateway], FetchLimits::default());
    let err = f.fetch(&cid).await.unwrap_err();
    assert!(matches!(err, FetchError::BadDag { .. }), "{err}");
    assert!(err.to_string().contains("lacks block"), "{err}");
}

#[tokio::test]
async fn an_input_larger_than_the_limit_is_refused_with_the_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let limits = FetchLimits {
        max_bytes: 100 * 1024,
        ..FetchLimits::default()
    };
    let f = fetcher(scratch.path(), vec![format!("http://{addr}")], limits);
    let err = f.fetch(&cid).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("100 KiB"), "{err}");
}

#[tokio::test]
async fn a_car_that_unpacks_to_more_than_the_limit_is_refused() {
    // One 256 KiB block, linked many times: a small CAR (dups=n) for a large file.
    let scratch = tempfile::tempdir().unwrap();
    let store = Arc::new(ResultStore::open(scratch.path().join("a-store")).unwrap());
    let dir = scratch.path().join("zeros");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("zeros"), vec![0u8; 4 << 20]).unwrap();
    let cid = store.put(&dir).unwrap();
    let addr = serve(lilypad_results::server::router(store)).await;
    let car = car_of(addr, &cid).await;
    assert!(car.len() < 1 << 20, "the CAR holds the zero block once");
    let limits = FetchLimits {
        max_bytes: 1 << 20,
        ..FetchLimits::default()
    };
    let f = fetcher(scratch.path(), vec![format!("http://{addr}")], limits);
    let err = f.fetch(&cid).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
}

#[tokio::test]
async fn a_gateway_slower_than_the_limit_is_given_up_on() {
    let scratch = tempfile::tempdir().unwrap();
    let (_, cid, _) = provider(scratch.path()).await;
    // Accepts the connection and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let limits = FetchLimits {
        timeout: Duration::from_millis(200),
        ..FetchLimits::default()
    };
    let f = fetcher(scratch.path(), vec![format!("http://{addr}")], limits);
    let err = f.fetch(&cid).await.unwrap_err();
    assert!(matches!(err, FetchError::TimedOut { .. }), "{err}");
}

#[tokio::test]
async fn a_failing_gateway_is_skipped_for_the_next_one() {
    let scratch = tempfile::tempdir().unwrap();
    let (addr, cid, _) = provider(scratch.path()).await;
    let empty = tempfile::tempdir().unwrap();
    let nothing = serve(lilypad_results::server::router(Arc::new(
        ResultStore::open(empty.path()).unwrap(),
    )))
    .await;
    let f = fetcher(
        scratch.path(),
        vec![format!("http://{nothing}"), format!("http://{addr}")],
        FetchLimits::default(),
    );
    let path = f.fetch(&cid).await.unwrap();
    assert_eq!(cid_of_path(&path).unwrap(), cid);
}

#[tokio::test]
async fn no_gateway_and_not_stored_says_how_to_configure_one() {
    let scratch = tempfile::tempdir().unwrap();
    let f = fetcher(scratch.path(), Vec::new(), FetchLimits::default());
    let err = f
        .fetch(&lilypad_results::cid_of_bytes(b"x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--ipfs-gateway"), "{err}");
}

#[tokio::test]
async fn a_single_file_cid_is_fetched_as_a_file() {
    let scratch = tempfile::tempdir().unwrap();
    let store = Arc::new(ResultStore::open(scratch.path().join("a-store")).unwrap());
    let file = scratch.path().join("data.bin");
    let bytes: Vec<u8> = (0..600 * 1024u32).map(|i| (i % 13) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let cid = store.put(&file).unwrap();
    assert_eq!(cid, lilypad_results::cid_of_bytes(&bytes));
    let addr = serve(lilypad_results::server::router(store)).await;
    let f = fetcher(
        scratch.path(),
        vec![format!("http://{addr}")],
        FetchLimits::default(),
    );
    let path = f.fetch(&cid).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // Served at its CID by plain GET too.
    let served = reqwest::get(format!("http://{addr}/ipfs/{cid}"))
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), bytes);
}
