//! The contract's enums, `JobStatus` (where a job is in its life), `Outcome` (what its client
//! learns in a callback) and `AuditState` (where its protocol audit stands), as Rust enums with the same numbering as `ILilypad.sol`. A test in
//! `lilypad-bindings` (`tests/enums_match_solidity.rs`) reads the Solidity source and fails when the
//! two disagree, so a state added on-chain cannot be forgotten here.

use std::fmt;

/// Declares a contract enum: the Rust enum with the contract's numbering, `ALL` in order,
/// `from_u8`, `as_u8`, `name` (the Solidity name, also its `Display`) and `describe` (for people).
macro_rules! contract_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $n:literal => $describe:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $n, )+
        }

        impl $name {
            /// Every variant, in the contract's order.
            pub const ALL: &'static [$name] = &[$( Self::$variant, )+];

            /// The variant with this number, as the contract returns it (`None` for a number
            /// it never uses, e.g. from a newer contract).
            pub fn from_u8(n: u8) -> Option<Self> {
                Self::ALL.get(usize::from(n)).copied()
            }

            /// The number the contract uses.
            pub fn as_u8(self) -> u8 {
                self as u8
            }

            /// The Solidity name.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => stringify!($variant), )+
                }
            }

            /// What it means to a person reading `lilypad job`.
            pub fn describe(self) -> &'static str {
                match self {
                    $( Self::$variant => $describe, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

contract_enum! {
    /// A job's on-chain state: `ILilypad.JobStatus`. Every transition moves to a higher number;
    /// `Settled` and above are terminal.
    JobStatus {
        /// No such job.
        None = 0 => "no such job",
        /// Escrowed, waiting for a deal.
        Requested = 1 => "requested: waiting for a provider",
        /// Dealt: the provider is running it.
        Agreed = 2 => "agreed: running",
        /// The result is in; the challenge window is open.
        ResultSubmitted = 3 => "result submitted",
        /// Challenged, in mediation.
        Challenged = 4 => "challenged: in mediation",
        /// Paid out.
        Settled = 5 => "settled",
        /// Nobody took it before the match deadline; refunded.
        Expired = 6 => "expired: no provider took it; refunded",
        /// The provider did not deliver before the execution deadline; refunded with its collateral.
        TimedOut = 7 => "timed out: the provider did not deliver; refunded with its collateral",
        /// Mediation overturned the provider's result.
        Overturned = 8 => "overturned by mediation",
    }
}

contract_enum! {
    /// What a callback tells the client: `ILilypad.Outcome`.
    Outcome {
        /// Not a callback value.
        None = 0 => "none",
        /// The job ran and exited 0.
        Succeeded = 1 => "succeeded",
        /// The job ran and exited non-zero.
        JobFailed = 2 => "job failed",
        /// The provider could not run the job.
        ProviderError = 3 => "provider error",
        /// No deal before the match deadline.
        Expired = 4 => "expired",
        /// No result before the execution deadline.
        TimedOut = 5 => "timed out",
        /// Challenged; mediation upheld the result.
        UpheldByMediation = 6 => "upheld by mediation",
        /// Challenged; mediation overturned the result.
        OverturnedByMediation = 7 => "overturned by mediation",
    }
}

contract_enum! {
    /// Where a job's protocol audit stands: `ILilypad.AuditState` (`Lilypad.auditState`).
    AuditState {
        /// Not to be audited (audits off when requested, not deterministic, passed over, or no
        /// result waiting).
        None = 0 => "not to be audited",
        /// The block whose hash draws it does not exist yet.
        Pending = 1 => "audit draw pending",
        /// Drawn for an audit: `audit` opens it; it does not settle before.
        Due = 2 => "drawn for an audit",
        /// Drawn and passed over: it settles as usual.
        Clear = 3 => "passed over by the audit draw",
    }
}

impl AuditState {
    /// The least results collateral multiplier, in basis points of the price, that a
    /// deterministic request must lock when results are audited with chance `audit_bps` / 10000:
    /// `(1/p - 1) x 10000`, rounded up, as `Lilypad.runJob` checks it (0 when audits are off).
    pub fn collateral_floor_bps(audit_bps: u16) -> u32 {
        let a = u64::from(audit_bps.min(10_000));
        if a == 0 {
            return 0;
        }
        let floor = (10_000 * (10_000 - a)).div_ceil(a);
        u32::try_from(floor).unwrap_or(u32::MAX)
    }
}

impl JobStatus {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_numbers_are_none() {
        for &s in JobStatus::ALL {
            assert_eq!(JobStatus::from_u8(s.as_u8()), Some(s));
        }
        for &o in Outcome::ALL {
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

    #[test]
    fn the_audit_collateral_floor_is_one_over_p_minus_one() {
        assert_eq!(AuditState::collateral_floor_bps(0), 0);
        assert_eq!(AuditState::collateral_floor_bps(10_000), 0);
        assert_eq!(AuditState::collateral_floor_bps(5_000), 10_000);
        assert_eq!(AuditState::collateral_floor_bps(1_000), 90_000);
        // 1/3 rounded to 3334 bps: 19,994.0... rounded up
        assert_eq!(AuditState::collateral_floor_bps(3_334), 19_995);
        assert_eq!(AuditState::collateral_floor_bps(100), 990_000);
    }
}
