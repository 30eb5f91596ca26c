//! The five-minute client in docs/solidity.md is the contract that `contracts/test/Docs.t.sol`
//! runs (`contracts/test/docs/MyClient.sol`), word for word: a developer who copies the docs gets
//! the code whose callback is tested to fit in `_newRequest`'s default gas.

#![allow(clippy::unwrap_used)]

fn read(relative: &str) -> String {
    let path = format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn the_five_minute_client_in_the_docs_is_the_tested_one() {
    let docs = read("docs/solidity.md");
    let section = &docs[docs
        .find("## In five minutes")
        .expect("the five-minute section")..];
    let block = &section[section.find("```solidity\n").expect("a solidity block") + 12..];
    let block = &block[..block.find("```").expect("the block's end")];
    let tested = read("contracts/test/docs/MyClient.sol");
    let tested = &tested[tested
        .find("import {LilypadClient}")
        .expect("MyClient.sol imports LilypadClient")..];
    assert_eq!(
        block, tested,
        "docs/solidity.md's five-minute client differs from contracts/test/docs/MyClient.sol; change both"
    );
}
