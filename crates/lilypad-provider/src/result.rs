//! From an executor outcome to the result a provider signs: always one the contract accepts.

use alloy::primitives::B256;
use lilypad_executor::{Outcome, Status};

/// Most bytes of error text the contract takes.
pub const MAX_ERROR_BYTES: usize = 1024;
/// Most bytes of result CID the contract takes.
pub const MAX_CID_BYTES: usize = 128;

/// `ResultData.status` values: the contract's `Outcome` numbers a provider may sign.
mod status {
    use lilypad_types::Outcome;

    /// The job ran and exited 0.
    pub const SUCCEEDED: u8 = Outcome::Succeeded as u8;
    /// The job ran and exited non-zero.
    pub const JOB_FAILED: u8 = Outcome::JobFailed as u8;
    /// The job could not run to its own end (bad input, out of memory, time-out, ...).
    pub const PROVIDER_ERROR: u8 = Outcome::ProviderError as u8;
}

/// The fields of a result as the contract checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFields {
    /// 1 Succeeded, 2 JobFailed, 3 ProviderError.
    pub status: u8,
    /// The result CID as text (empty only for a provider error with no result directory).
    pub result_cid: String,
    /// At most `max_output_bytes` of inline output.
    pub inline_output: Vec<u8>,
    /// 0 for Succeeded, non-zero for JobFailed.
    pub exit_code: i32,
    /// Empty for Succeeded; at most [`MAX_ERROR_BYTES`].
    pub error: String,
}

impl ResultFields {
    /// The commitment this result is judged by: what the contract stores as the job's
    /// `resultHash` and what mediators vote ([`lilypad_bindings::eip712::result_commitment`]).
    pub fn commitment(&self) -> B256 {
        lilypad_bindings::eip712::result_commitment(
            self.status,
            self.exit_code,
            self.result_cid.as_bytes(),
            &self.inline_output,
        )
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn truncate_utf8(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn provider_error(outcome: &Outcome, cid: String, message: String) -> ResultFields {
    let exit_code = outcome
        .exit_code
        .and_then(|c| i32::try_from(c).ok())
        .unwrap_or(0);
    ResultFields {
        status: status::PROVIDER_ERROR,
        result_cid: cid,
        inline_output: Vec::new(),
        exit_code,
        error: truncate_utf8(&message, MAX_ERROR_BYTES),
    }
}

/// The result for `outcome`, satisfying every rule of `submitResult`: Succeeded has exit code 0
/// and a CID; JobFailed a non-zero exit code; ProviderError a non-empty error text (the error
/// kind, e.g. `BadInput: ...`); error text at most 1024 bytes, CID at most 128 bytes, inline
/// output at most `max_output_bytes`. An outcome that cannot be reported as it is (a success
/// without a CID, an exit code outside `int32`) becomes a ProviderError saying so.
pub fn result_fields(outcome: &Outcome, max_output_bytes: u32) -> ResultFields {
    let cid = outcome
        .result_cid
        .map(|c| c.to_string())
        .unwrap_or_default();
    if cid.len() > MAX_CID_BYTES {
        return provider_error(
            outcome,
            String::new(),
            format!(
                "ResultFailed: the result CID {cid} is {} bytes, more than the {MAX_CID_BYTES} the contract takes",
                cid.len()
            ),
        );
    }
    let limit = usize::try_from(max_output_bytes).unwrap_or(usize::MAX);
    let inline: Vec<u8> = outcome.inline_output.iter().take(limit).copied().collect();
    match outcome.status {
        Status::Succeeded if !cid.is_empty() => ResultFields {
            status: status::SUCCEEDED,
            result_cid: cid,
            inline_output: inline,
            exit_code: 0,
            error: String::new(),
        },
        Status::Succeeded => provider_error(
            outcome,
            cid,
            "ResultFailed: the job exited 0 but its result has no CID".into(),
        ),
        Status::JobFailed { exit_code } => match i32::try_from(exit_code) {
            Ok(code) if code != 0 => {
                let error = outcome
                    .error
                    .clone()
                    .unwrap_or_else(|| format!("exit code {code}"));
                ResultFields {
                    status: status::JOB_FAILED,
                    result_cid: cid,
                    inline_output: inline,
                    exit_code: code,
                    error: truncate_utf8(&error, MAX_ERROR_BYTES),
                }
            }
            _ => provider_error(
                outcome,
                cid,
                format!("ContainerFailed: exit code {exit_code} cannot be reported as an int32"),
            ),
        },
        Status::ProviderError(kind) => {
            let detail = outcome.error.clone().unwrap_or_default();
            let message = if detail.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {detail}")
            };
            let mut fields = provider_error(outcome, cid, message);
            fields.inline_output = inline;
            fields
        }
    }
}

/// TESTING ONLY: which lie a dishonest provider tells ([`tamper`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Another inline output (`tampered: ` before the real one) and, as its CID, the CID of those
    /// altered bytes.
    Whole,
    /// Another inline output with the real CID: the lie an oracle client, which acts on the inline
    /// output, would believe if only the CID were checked.
    InlineOutput,
}

/// TESTING ONLY: the lie a dishonest provider tells, for tests of challenges and mediation: a
/// successful result altered as `how` says. A well-formed result, properly signed, that mediators
/// who re-run the job will not reproduce. Other results are left as they are.
pub fn tamper(fields: &mut ResultFields, how: Tamper) {
    if fields.status != status::SUCCEEDED {
        return;
    }
    let mut altered = b"tampered: ".to_vec();
    altered.extend_from_slice(&fields.inline_output);
    altered.truncate(fields.inline_output.len().max(1));
    if how == Tamper::Whole {
        fields.result_cid = lilypad_results::cid_of_bytes(&altered).to_string();
    }
    fields.inline_output = altered;
}

#[cfg(test)]
mod tests {
    use lilypad_executor::ErrorKind;

    use super::*;

    fn outcome(status: Status) -> Outcome {
        let mut o = Outcome::rejected("1", "m:1", ErrorKind::BadInput, String::new());
        o.status = status;
        o.error = None;
        o
    }

    fn a_cid() -> lilypad_results::Cid {
        lilypad_results::cid_of_bytes(b"hello")
    }

    #[test]
    fn tampering_changes_a_success_within_its_limits_and_leaves_failures_alone() {
        let mut o = outcome(Status::Succeeded);
        o.result_cid = Some(a_cid());
        o.inline_output = b"the real answer".to_vec();
        let honest = result_fields(&o, 1024);
        let mut lie = honest.clone();
        tamper(&mut lie, Tamper::Whole);
        assert_eq!(lie.status, status::SUCCEEDED);
        assert_ne!(lie.result_cid, honest.result_cid, "another CID");
        assert!(
            lie.result_cid.starts_with("bafk"),
            "a well-formed CID: {}",
            lie.result_cid
        );
        assert_ne!(lie.inline_output, honest.inline_output);
        assert!(
            lie.inline_output.len() <= honest.inline_output.len(),
            "still within the client's max output bytes"
        );

        let mut failed = result_fields(&outcome(Status::JobFailed { exit_code: 3 }), 1024);
        let before = failed.clone();
        tamper(&mut failed, Tamper::Whole);
        assert_eq!(failed, before);
    }

    #[test]
    fn a_lie_in_the_inline_output_alone_keeps_the_cid_and_changes_the_commitment() {
        let mut o = outcome(Status::Succeeded);
        o.result_cid = Some(a_cid());
        o.inline_output = b"the real answer".to_vec();
        let honest = result_fields(&o, 1024);
        let mut lie = honest.clone();
        tamper(&mut lie, Tamper::InlineOutput);
        assert_eq!(lie.result_cid, honest.result_cid, "the real CID");
        assert_ne!(lie.inline_output, honest.inline_output);
        assert_ne!(
            lie.commitment(),
            honest.commitment(),
            "what mediators compare tells the two apart"
        );
    }

    #[test]
    fn the_commitment_covers_status_exit_code_cid_and_inline_output_but_not_the_error_text() {
        let failed = result_fields(&outcome(Status::JobFailed { exit_code: 3 }), 1024);
        let base = failed.commitment();
        let mut other = failed.clone();
        other.exit_code = 4;
        assert_ne!(other.commitment(), base, "exit code");
        let mut other = failed.clone();
        other.status = status::PROVIDER_ERROR;
        assert_ne!(other.commitment(), base, "status");
        let mut other = failed.clone();
        other.result_cid = a_cid().to_string();
        assert_ne!(other.commitment(), base, "CID");
        let mut other = failed.clone();
        other.inline_output = b"x".to_vec();
        assert_ne!(other.commitment(), base, "inline output");
        let mut other = failed.clone();
        other.error = "worded otherwise".into();
        assert_eq!(
            other.commitment(),
            base,
            "the error text is the provider's wording"
        );
    }

    #[test]
    fn a_success_without_a_cid_becomes_a_provider_error() {
        let o = outcome(Status::Succeeded);
        let f = result_fields(&o, 10);
        assert_eq!(f.status, status::PROVIDER_ERROR);
        assert!(f.error.starts_with("ResultFailed"), "{}", f.error);
    }

    #[test]
    fn a_success_has_exit_code_zero_its_cid_and_capped_output() {
        let mut o = outcome(Status::Succeeded);
        o.result_cid = Some(a_cid());
        o.exit_code = Some(0);
        o.inline_output = b"0123456789".to_vec();
        let f = result_fields(&o, 4);
        assert_eq!(f.status, status::SUCCEEDED);
        assert_eq!(f.exit_code, 0);
        assert_eq!(f.result_cid, a_cid().to_string());
        assert_eq!(f.inline_output, b"0123");
        assert!(f.error.is_empty());
    }

    #[test]
    fn a_failure_keeps_its_non_zero_exit_code() {
        let mut o = outcome(Status::JobFailed { exit_code: 3 });
        o.result_cid = Some(a_cid());
        let f = result_fields(&o, 4);
        assert_eq!((f.status, f.exit_code), (status::JOB_FAILED, 3));
        assert_eq!(f.error, "exit code 3");
        let o = outcome(Status::JobFailed { exit_code: 1 << 32 });
        assert_eq!(result_fields(&o, 4).status, status::PROVIDER_ERROR);
    }

    #[test]
    fn provider_errors_name_their_kind_and_fit_in_1024_bytes() {
        let mut o = outcome(Status::ProviderError(ErrorKind::OutOfMemory));
        let f = result_fields(&o, 4);
        assert_eq!(f.error, "OutOfMemory");
        o.error = Some("é".repeat(2000));
        let f = result_fields(&o, 4);
        assert!(f.error.len() <= MAX_ERROR_BYTES);
        assert!(f.error.starts_with("OutOfMemory: é"));
        assert_eq!(f.status, status::PROVIDER_ERROR);
    }
}
