//! `lilypad_types::JobStatus` and `Outcome` number their variants as `ILilypad.sol` does: read
//! from the Solidity source, so adding or reordering a state on-chain fails here until Rust follows.

#![allow(clippy::unwrap_used)]

use lilypad_types::{JobStatus, Outcome};

/// The variant names of `enum NAME { ... }` in the interface, in order, comments left out.
fn solidity_enum(name: &str) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/src/interfaces/ILilypad.sol"
    );
    let source = std::fs::read_to_string(path).expect("read ILilypad.sol");
    let start = source
        .find(&format!("enum {name} {{"))
        .unwrap_or_else(|| panic!("no enum {name} in ILilypad.sol"));
    let body = &source[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    body.lines()
        .map(|l| l.split("//").next().unwrap().trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn job_status_matches_the_contract() {
    let ours: Vec<&str> = JobStatus::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(ours, solidity_enum("JobStatus"));
    for (i, s) in JobStatus::ALL.iter().enumerate() {
        assert_eq!(usize::from(s.as_u8()), i, "{s} is numbered by its place");
    }
}

#[test]
fn outcome_matches_the_contract() {
    let ours: Vec<&str> = Outcome::ALL.iter().map(|o| o.name()).collect();
    assert_eq!(ours, solidity_enum("Outcome"));
    for (i, o) in Outcome::ALL.iter().enumerate() {
        assert_eq!(usize::from(o.as_u8()), i, "{o} is numbered by its place");
    }
}
