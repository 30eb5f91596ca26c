//! Whether a deal, a result or a due action may be sent, from the job's on-chain state alone:
//! pure decisions, unit-tested, that the submitter takes after one `getJob` read. Nothing is sent
//! for a job that is not in the state its transaction needs, so nothing lands twice.

use alloy::primitives::B256;
use lilypad_store::Action;
use lilypad_types::JobStatus;

/// What to do with a signed deal or result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Send it.
    Send,
    /// The job is past it (done by someone else, or never applicable): drop it; why.
    Skip(String),
    /// The job is not ready for it yet: keep it and try again; what it waits for.
    NotYet(&'static str),
}

/// What to do with a due action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionGate {
    /// Send it.
    Send,
    /// The job is no longer in the state the action needs: mark it done; why.
    Done(String),
    /// The chain's clock has not reached the deadline: schedule it again at `deadline`.
    Wait {
        /// The job's deadline in chain time.
        deadline: u64,
        /// Why.
        why: String,
    },
}

/// A deal lands only on a `Requested` job.
pub fn deal(state: Option<JobStatus>) -> Gate {
    if state == Some(JobStatus::Requested) {
        Gate::Send
    } else {
        Gate::Skip(format!("job is in state {}, not Requested", show(state)))
    }
}

/// A result lands only on an `Agreed` job made by the request it was computed for (`signed_for`,
/// the request hash the provider's result names; `on_chain`, the job's): a job id reused after a
/// reorganisation names another request, and the result of the old one is dropped rather than
/// handed to the new job's client (the contract binds a result to the job id only). A `Requested`
/// job waits for its deal to be mined.
pub fn result(state: Option<JobStatus>, signed_for: B256, on_chain: B256) -> Gate {
    if state.is_some() && signed_for != on_chain {
        return Gate::Skip(format!(
            "the result is for request {signed_for}, but the job on-chain was made by request \
             {on_chain} (its id was reused after a reorganisation)"
        ));
    }
    match state {
        Some(JobStatus::Agreed) => Gate::Send,
        Some(JobStatus::Requested) => Gate::NotYet("its deal is not on-chain yet"),
        _ => Gate::Skip(format!("job is in state {}, not Agreed", show(state))),
    }
}

/// The state each due action needs.
pub fn needed(action: Action) -> JobStatus {
    match action {
        Action::Expire => JobStatus::Requested,
        Action::Timeout => JobStatus::Agreed,
        Action::Settle | Action::Audit => JobStatus::ResultSubmitted,
    }
}

/// A due action is sent when the job is in the state it needs and the chain's clock `now` has
/// reached the job's `deadline`.
pub fn action(action: Action, state: Option<JobStatus>, deadline: u64, now: u64) -> ActionGate {
    let needed = needed(action);
    if state != Some(needed) {
        return ActionGate::Done(format!(
            "job is in state {}; {action} needs {needed}",
            show(state)
        ));
    }
    // An audit is decided by blocks, not by the job's deadline (the end of the challenge
    // window): the submitter asks the contract whether its draw block exists.
    if now < deadline && action != Action::Audit {
        // The chain's clock lags ours: come back at the deadline.
        return ActionGate::Wait {
            deadline,
            why: format!("deadline {deadline} not reached at chain time {now}"),
        };
    }
    ActionGate::Send
}

/// How many blocks back the EVM keeps block hashes: an audit draw must be read within them
/// (`Lilypad.BLOCKHASH_WINDOW`).
pub const BLOCKHASH_WINDOW: u64 = 256;
/// Blocks between a result and the block whose hash draws its audit (`Lilypad.AUDIT_SEED_DELAY`).
pub const AUDIT_SEED_DELAY: u64 = 2;
/// How many block hashes the EIP-2935 history contract keeps: on a chain that has it, the draw
/// is read from it that long (`Lilypad.HISTORY_WINDOW`).
pub const HISTORY_WINDOW: u64 = 8_191;
/// The EIP-2935 history contract (`Lilypad.BLOCK_HISTORY`).
pub const BLOCK_HISTORY: alloy::primitives::Address =
    alloy::primitives::address!("0000F90827F1C53a10cb7A02335B175320002935");

/// Whether a result the audit draw passed over can be left to `settle`, which reads the draw
/// itself, rather than recorded with `audit` (a transaction): true when the challenge
/// `deadline` (chain time, `now` being the `head` block's) comes while at most half of the
/// blocks that still keep the seed block's hash (`window`: [`BLOCKHASH_WINDOW`], or
/// [`HISTORY_WINDOW`] on a chain with the history contract) have passed, at `ms_per_block` (an
/// estimate from recent blocks; 0: unknown, so recorded). A settle after the hash is gone would
/// audit it.
pub fn settle_reads_the_draw(
    seed_block: u64,
    head: u64,
    ms_per_block: u64,
    now: u64,
    deadline: u64,
    window: u64,
) -> bool {
    if ms_per_block == 0 {
        return false;
    }
    let blocks_left = (seed_block + window).saturating_sub(head);
    let blocks_to_deadline = deadline
        .saturating_sub(now)
        .saturating_mul(1_000)
        .div_ceil(ms_per_block);
    blocks_to_deadline.saturating_mul(2) <= blocks_left
}

/// A job state as the skip messages name it.
fn show(state: Option<JobStatus>) -> String {
    state.map_or_else(|| "unknown to this build".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deal_is_sent_only_to_a_requested_job() {
        assert_eq!(deal(Some(JobStatus::Requested)), Gate::Send);
        assert_eq!(
            deal(Some(JobStatus::Agreed)),
            Gate::Skip("job is in state Agreed, not Requested".into())
        );
        assert_eq!(
            deal(None),
            Gate::Skip("job is in state unknown to this build, not Requested".into())
        );
    }

    #[test]
    fn a_result_waits_for_its_deal_and_is_dropped_past_agreed() {
        let h = B256::repeat_byte(1);
        assert_eq!(result(Some(JobStatus::Agreed), h, h), Gate::Send);
        assert!(matches!(
            result(Some(JobStatus::Requested), h, h),
            Gate::NotYet(_)
        ));
        assert_eq!(
            result(Some(JobStatus::TimedOut), h, h),
            Gate::Skip("job is in state TimedOut, not Agreed".into())
        );
    }

    #[test]
    fn a_result_for_another_request_under_the_same_job_id_is_dropped() {
        let (old, new) = (B256::repeat_byte(1), B256::repeat_byte(2));
        for state in [JobStatus::Agreed, JobStatus::Requested] {
            let Gate::Skip(why) = result(Some(state), old, new) else {
                panic!("a result for request {old} sent to job of request {new} in {state}");
            };
            assert!(why.contains("reused after a reorganisation"), "{why}");
        }
    }

    #[test]
    fn each_action_needs_its_state() {
        assert_eq!(
            action(Action::Expire, Some(JobStatus::Requested), 10, 10),
            ActionGate::Send
        );
        assert_eq!(
            action(Action::Timeout, Some(JobStatus::Agreed), 10, 11),
            ActionGate::Send
        );
        assert_eq!(
            action(Action::Settle, Some(JobStatus::ResultSubmitted), 10, 10),
            ActionGate::Send
        );
        assert_eq!(
            action(Action::Expire, Some(JobStatus::Agreed), 10, 10),
            ActionGate::Done("job is in state Agreed; expire needs Requested".into())
        );
    }

    #[test]
    fn an_action_before_its_deadline_in_chain_time_waits_for_it() {
        assert_eq!(
            action(Action::Settle, Some(JobStatus::ResultSubmitted), 100, 99),
            ActionGate::Wait {
                deadline: 100,
                why: "deadline 100 not reached at chain time 99".into()
            }
        );
    }

    #[test]
    fn an_audit_goes_before_the_challenge_window_ends_and_only_on_a_waiting_result() {
        assert_eq!(
            action(Action::Audit, Some(JobStatus::ResultSubmitted), 100, 10),
            ActionGate::Send
        );
        assert_eq!(
            action(Action::Audit, Some(JobStatus::Challenged), 100, 10),
            ActionGate::Done("job is in state Challenged; audit needs ResultSubmitted".into())
        );
    }

    #[test]
    fn a_passed_over_draw_is_left_to_settle_only_with_blocks_to_spare() {
        // 2 s blocks, seed block 100, head 102: 254 blocks keep the hash
        let w = BLOCKHASH_WINDOW;
        assert!(settle_reads_the_draw(
            100,
            102,
            2_000,
            1_000,
            1_000 + 254,
            w
        ));
        assert!(!settle_reads_the_draw(
            100,
            102,
            2_000,
            1_000,
            1_000 + 256,
            w
        ));
        // an hour's window on 12 s blocks is 300 blocks: recorded
        assert!(!settle_reads_the_draw(
            100,
            102,
            12_000,
            1_000,
            1_000 + 3_600,
            w
        ));
        // ... unless the chain keeps 8191 hashes in its history contract
        assert!(settle_reads_the_draw(
            100,
            102,
            12_000,
            1_000,
            1_000 + 3_600,
            HISTORY_WINDOW
        ));
        // a block time unknown: recorded
        assert!(!settle_reads_the_draw(100, 102, 0, 1_000, 1_000, w));
        // the window already closed: settle now
        assert!(settle_reads_the_draw(100, 102, 2_000, 1_000, 900, w));
    }

    #[test]
    fn the_audit_constants_are_the_contracts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../contracts/src/LilypadCore.sol"
        );
        let source = std::fs::read_to_string(path).expect("read LilypadCore.sol");
        for line in [
            format!("uint256 public constant AUDIT_SEED_DELAY = {AUDIT_SEED_DELAY};"),
            format!("uint256 public constant BLOCKHASH_WINDOW = {BLOCKHASH_WINDOW};"),
            "uint256 public constant HISTORY_WINDOW = 8_191;".to_owned(),
            format!(
                "address public constant BLOCK_HISTORY = {};",
                BLOCK_HISTORY.to_checksum(None)
            ),
        ] {
            assert!(source.contains(&line), "LilypadCore.sol has no `{line}`");
        }
    }
}
