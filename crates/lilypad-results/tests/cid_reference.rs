//! Our CIDs against an independent implementation: js-ipfs's `ipfs-unixfs-importer`, configured as
//! `ipfs add -r --cid-version=1 --raw-leaves` (test/cid-reference/cid.mjs, installed by
//! ./script/setup with `npm ci`). Each case is a shape where implementations are known to differ.

use std::path::{Path, PathBuf};
use std::process::Command;

use lilypad_results::{CHUNK_SIZE, cid_of_bytes, cid_of_path};

fn reference_script() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/cid-reference");
    assert!(
        dir.join("node_modules/ipfs-unixfs-importer").is_dir(),
        "{} has no node_modules: run ./script/setup (it runs npm ci there)",
        dir.display()
    );
    dir.join("cid.mjs")
}

/// The CID the reference implementation gives `path`.
fn reference_cid(path: &Path) -> String {
    let out = Command::new("node")
        .arg(reference_script())
        .arg(path)
        .output()
        .expect("node runs (install Node.js 20; ./script/setup checks for it)");
    assert!(
        out.status.success(),
        "cid.mjs {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("cid.mjs prints UTF-8")
        .trim()
        .to_owned()
}

/// Deterministic bytes that do not repeat (so no two chunks are alike).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn assert_same(path: &Path) -> String {
    let ours = cid_of_path(path)
        .unwrap_or_else(|e| panic!("our CID of {}: {e}", path.display()))
        .to_string();
    let theirs = reference_cid(path);
    assert_eq!(ours, theirs, "CID of {}", path.display());
    ours
}

fn file_case(len: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("data");
    let bytes = pseudo_random(len, len as u64);
    std::fs::write(&file, &bytes).expect("write");
    let cid = assert_same(&file);
    assert_eq!(cid_of_bytes(&bytes).to_string(), cid, "cid_of_bytes({len})");
}

#[test]
fn empty_file() {
    file_case(0);
}

#[test]
fn one_chunk_file_is_its_own_raw_leaf() {
    file_case(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("hello");
    std::fs::write(&file, b"hello").expect("write");
    assert!(assert_same(&file).starts_with("bafkrei"), "a raw leaf");
}

#[test]
fn file_of_exactly_one_chunk() {
    file_case(CHUNK_SIZE);
}

#[test]
fn multi_chunk_file_over_one_mebibyte() {
    file_case(CHUNK_SIZE * 5 + 12_345);
}

#[test]
fn file_deep_enough_for_two_levels_of_links() {
    // More than 174 chunks: the balanced DAG needs a second level of link nodes.
    file_case(CHUNK_SIZE * 180 + 7);
}

#[test]
fn nested_directories_with_an_empty_one_and_odd_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("result");
    std::fs::create_dir_all(root.join("outputs/nested/deeper")).expect("mkdir");
    std::fs::create_dir_all(root.join("outputs/empty")).expect("mkdir");
    std::fs::create_dir_all(root.join("only-empty-inside/empty")).expect("mkdir");
    std::fs::write(root.join("stdout"), b"hello\n").expect("write");
    std::fs::write(root.join("stderr"), b"").expect("write");
    std::fs::write(root.join("exitCode"), b"0").expect("write");
    std::fs::write(root.join("outputs/nested/a b=c ü.txt"), b"spaces").expect("write");
    std::fs::write(
        root.join("outputs/nested/deeper/big.bin"),
        pseudo_random(CHUNK_SIZE * 2 + 1, 9),
    )
    .expect("write");
    std::os::unix::fs::symlink("../stdout", root.join("outputs/link")).expect("symlink");
    assert_same(&root);
    assert_same(&root.join("outputs/empty"));
    assert_same(&root.join("outputs"));
}

#[test]
fn directory_large_enough_to_be_sharded() {
    // Over 256 KiB of links (name + CID bytes): `ipfs add` writes a HAMT shard.
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("many");
    std::fs::create_dir(&root).expect("mkdir");
    for i in 0..4000 {
        std::fs::write(
            root.join(format!("file-with-a-fairly-long-name-{i:05}.txt")),
            i.to_string(),
        )
        .expect("write");
    }
    assert_same(&root);
}
