//! `lilypad_types::JobStatus`, `Outcome` and `AuditState` number their variants as `ILilypad.sol` does: read
//! from the Solidity source, so adding or reordering a state on-chain fails here until Rust follows.

#![allow(clippy::unwrap_used)]

use lilypad_types::{AuditState, JobStatus, Outcome};

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

/// `ours` (names and numbers, in Rust's order) is the Solidity enum `name`, numbered by place.
fn assert_matches(name: &str, ours: &[(&str, u8)]) {
    let names: Vec<&str> = ours.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, solidity_enum(name));
    for (i, (n, number)) in ours.iter().enumerate() {
        assert_eq!(
            usize::from(*number),
            i,
            "{name}.{n} is numbered by its place"
        );
    }
}

#[test]
fn job_status_matches_the_contract() {
    let ours: Vec<(&str, u8)> = JobStatus::ALL
        .iter()
        .map(|s| (s.name(), s.as_u8()))
        .collect();
    assert_matches("JobStatus", &ours);
}

#[test]
fn outcome_matches_the_contract() {
    let ours: Vec<(&str, u8)> = Outcome::ALL.iter().map(|o| (o.name(), o.as_u8())).collect();
    assert_matches("Outcome", &ours);
}

#[test]
fn audit_state_matches_the_contract() {
    let ours: Vec<(&str, u8)> = AuditState::ALL
        .iter()
        .map(|a| (a.name(), a.as_u8()))
        .collect();
    assert_matches("AuditState", &ours);
}
