//! The contract's two enums, `JobStatus` (where a job is in its life) and `Outcome` (what its
//! client learns in a callback), as Rust enums with the same numbering as `ILilypad.sol`. A test in
//! `lilypad-bindings` (`tests/enums_match_solidity.rs`) reads the Solidity source and fails when the
//! two disagree, so a state added on-chain cannot be forgotten here.

use std::fmt;

/// A job's on-chain state: `ILilypad.JobStatus`. Every transition moves to a higher number;
/// `Settled` and above are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum JobStatus {
    /// No such job.
    None = 0,
    /// Escrowed, waiting for a deal.
    Requested = 1,
    /// Dealt: the provider is running it.
    Agreed = 2,
    /// The result is in; the challenge window is open.
    ResultSubmitted = 3,
    /// Challenged, in mediation.
    Challenged = 4,
    /// Paid out.
    Settled = 5,
    /// Nobody took it before the match deadline; refunded.
    Expired = 6,
    /// The provider did not deliver before the execution deadline; refunded with its collateral.
    TimedOut = 7,
    /// Mediation overturned the provider's result.
    Overturned = 8,
}

impl JobStatus {
    /// Every state, in the contract's order.
    pub const ALL: [JobStatus; 9] = [
        Self::None,
        Self::Requested,
        Self::Agreed,
        Self::ResultSubmitted,
        Self::Challenged,
        Self::Settled,
        Self::Expired,
        Self::TimedOut,
        Self::Overturned,
    ];

    /// The state with this number, as the contract returns it (`None` for a number it never uses).
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }

    /// The number the contract uses.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The Solidity name (`ResultSubmitted`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Requested => "Requested",
            Self::Agreed => "Agreed",
            Self::ResultSubmitted => "ResultSubmitted",
            Self::Challenged => "Challenged",
            Self::Settled => "Settled",
            Self::Expired => "Expired",
            Self::TimedOut => "TimedOut",
            Self::Overturned => "Overturned",
        }
    }

    /// What the state means to a person reading `lilypad job`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "no such job",
            Self::Requested => "requested: waiting for a provider",
            Self::Agreed => "agreed: running",
            Self::ResultSubmitted => "result submitted",
            Self::Challenged => "challenged: in mediation",
            Self::Settled => "settled",
            Self::Expired => "expired: no provider took it; refunded",
            Self::TimedOut => {
                "timed out: the provider did not deliver; refunded with its collateral"
            }
            Self::Overturned => "overturned by mediation",
        }
    }

    /// A status number as a person reads it: `Agreed (2)`, or `unknown status 9` for a number this
    /// build does not know (a newer contract).
    pub fn label(n: u8) -> String {
        match Self::from_u8(n) {
            Some(s) => format!("{s} ({n})"),
            None => format!("unknown status {n}"),
        }
    }

    /// Whether the job's life is over (nothing more can happen to it on-chain).
    pub fn is_terminal(self) -> bool {
        self >= Self::Settled
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a callback tells the client: `ILilypad.Outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Outcome {
    /// Not a callback value.
    None = 0,
    /// The job ran and exited 0.
    Succeeded = 1,
    /// The job ran and exited non-zero.
    JobFailed = 2,
    /// The provider could not run the job.
    ProviderError = 3,
    /// No deal before the match deadline.
    Expired = 4,
    /// No result before the execution deadline.
    TimedOut = 5,
    /// Challenged; mediation upheld the result.
    UpheldByMediation = 6,
    /// Challenged; mediation overturned the result.
    OverturnedByMediation = 7,
}

impl Outcome {
    /// Every outcome, in the contract's order.
    pub const ALL: [Outcome; 8] = [
        Self::None,
        Self::Succeeded,
        Self::JobFailed,
        Self::ProviderError,
        Self::Expired,
        Self::TimedOut,
        Self::UpheldByMediation,
        Self::OverturnedByMediation,
    ];

    /// The outcome with this number (`None` for a number the contract never uses).
    pub fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.get(usize::from(n)).copied()
    }

    /// The number the contract uses.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The Solidity name (`JobFailed`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Succeeded => "Succeeded",
            Self::JobFailed => "JobFailed",
            Self::ProviderError => "ProviderError",
            Self::Expired => "Expired",
            Self::TimedOut => "TimedOut",
            Self::UpheldByMediation => "UpheldByMediation",
            Self::OverturnedByMediation => "OverturnedByMediation",
        }
    }

    /// What the outcome means to a person (`job failed`).
    pub fn describe(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Succeeded => "succeeded",
            Self::JobFailed => "job failed",
            Self::ProviderError => "provider error",
            Self::Expired => "expired",
            Self::TimedOut => "timed out",
            Self::UpheldByMediation => "upheld by mediation",
            Self::OverturnedByMediation => "overturned by mediation",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_are_none() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::from_u8(s.as_u8()), Some(s));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_u8(o.as_u8()), Some(o));
        }
        assert_eq!(JobStatus::from_u8(9), None);
        assert_eq!(Outcome::from_u8(8), None);
    }

    #[test]
    fn settled_and_later_are_terminal() {
        assert!(!JobStatus::Challenged.is_terminal());
        assert!(JobStatus::Settled.is_terminal());
        assert!(JobStatus::Overturned.is_terminal());
    }
}
