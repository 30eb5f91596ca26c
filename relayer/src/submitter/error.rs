//! What can go wrong landing a transaction, and the pure decisions over a node's answer: is a
//! failed estimate a revert (the contract refuses: drop or retry, by which error) or only a call
//! that could not be made (retry, never drop); did a broadcast reach the node.

use alloy::primitives::B256;
use alloy::sol_types::SolInterface;
use alloy::transports::{RpcError, TransportError};
use lilypad_bindings::Lilypad::LilypadErrors;
use lilypad_bus::BusError;
use lilypad_store::StoreError;
use lilypad_types::JobKey;

/// A submission that failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The RPC endpoint failed (no answer, an HTTP error, a garbled answer): nothing was decided;
    /// retried later.
    #[error("RPC {op} failed: {reason}")]
    Rpc {
        /// What was asked.
        op: String,
        /// The error.
        reason: String,
    },
    /// The contract refuses the transaction (gas estimation reverted). `verdict` says whether the
    /// message is dropped or tried again later.
    #[error("job {key}: {call} would revert: {reason}")]
    Reverts {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// The revert, decoded by name when it is one of Lilypad's errors.
        reason: String,
        /// What to do with the message.
        verdict: Verdict,
        /// The chain time the contract says to come back at (`DeadlineNotReached`'s deadline).
        not_before: Option<u64>,
    },
    /// Mined but reverted (someone else changed the job in between).
    #[error("job {key}: {call} was mined in {tx} but reverted")]
    MinedReverted {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// The transaction.
        tx: B256,
    },
    /// Not mined even after every fee bump up to the cap. The transaction stays pending under its
    /// nonce; the next try waits for it again rather than signing another.
    #[error(
        "job {key}: {call} (nonce {nonce}) not mined after {attempts} attempts at up to the fee cap; raise gas.max_fee_gwei"
    )]
    Stuck {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// Its nonce.
        nonce: u64,
        /// How many times it was sent.
        attempts: u32,
    },
    /// The nonce was used by a transaction that is none of this action's attempts (another
    /// process sends with the same key).
    #[error(
        "job {key}: nonce {nonce} of {call} was used by another transaction (fix: let only Lilypad relayers send with the relayer key)"
    )]
    NonceTaken {
        /// The job.
        key: JobKey,
        /// The function.
        call: &'static str,
        /// The nonce.
        nonce: u64,
    },
    /// The submit lease was lost (or the relayer is stopping) while the round ran: nothing more is
    /// sent; what is in flight stays recorded and whoever holds the lease next waits for it.
    #[error(
        "the submit lease for chain {chain} was lost or the relayer is stopping; nothing more is sent by this relayer"
    )]
    LeaseLost {
        /// The chain.
        chain: u64,
    },
    /// The job is not ready for this message yet (e.g. a result whose deal is not mined): the
    /// message is kept and tried again.
    #[error("job {key}: not yet: {reason}")]
    NotYet {
        /// The job.
        key: JobKey,
        /// What it waits for.
        reason: String,
    },
    /// Redis failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

pub(super) fn rpc(op: impl Into<String>) -> impl FnOnce(String) -> SubmitError {
    let op = op.into();
    move |reason| SubmitError::Rpc { op, reason }
}

/// What to do with a message or action the contract refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It can never succeed (a bad signature, terms that do not match): drop it.
    Drop,
    /// It may succeed later (a deadline not reached yet, a state not reached yet, a revert this
    /// build cannot name): try again later; the job's state decides when to stop.
    Retry,
}

/// A failed `eth_estimateGas` (or `eth_call`), classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The node ran the call and it reverted.
    Reverted {
        /// The revert, by name when it is one of Lilypad's errors.
        reason: String,
        /// Drop or retry.
        verdict: Verdict,
    },
    /// The call could not be made or its answer could not be read: retry, never drop.
    Unavailable(String),
}

/// Classifies a failed estimate. Only a JSON-RPC error response that says the execution
/// reverted (by its message, with or without revert data) is a revert; a transport error, an HTTP
/// error status, a timeout, a garbled body and any other error response (rate limits, "header
/// not found", internal errors) only mean the call could not be made.
pub fn classify_call(e: &TransportError) -> CallFailure {
    let RpcError::ErrorResp(payload) = e else {
        return CallFailure::Unavailable(e.to_string());
    };
    let message = payload.message.to_lowercase();
    // geth, reth, anvil and Erigon say "execution reverted"; Nethermind and some providers
    // "reverted" or "revert"; code 3 is geth's revert code.
    let says_revert = payload.code == 3 || message.contains("revert");
    if !says_revert {
        return CallFailure::Unavailable(e.to_string());
    }
    match payload.as_revert_data() {
        Some(data) => match LilypadErrors::abi_decode(&data) {
            Ok(decoded) => CallFailure::Reverted {
                reason: lilypad_bindings::decode_error(&data)
                    .unwrap_or_else(|| format!("{decoded:?}")),
                verdict: verdict(&decoded),
            },
            Err(_) => CallFailure::Reverted {
                // The token's (OpenZeppelin's) and mediation's errors by name; anything else by
                // its selector.
                reason: match (lilypad_bindings::decode_error(&data), data.get(..4)) {
                    (Some(named), _) => named,
                    (None, Some(selector)) => format!(
                        "custom error 0x{} (not one of Lilypad's): {}",
                        alloy::primitives::hex::encode(selector),
                        payload.message
                    ),
                    (None, None) => payload.message.to_string(),
                },
                verdict: Verdict::Retry,
            },
        },
        None => CallFailure::Reverted {
            reason: payload.message.to_string(),
            verdict: Verdict::Retry,
        },
    }
}

/// The chain time a failed estimate says to try again at: the deadline of Lilypad's
/// `DeadlineNotReached` (a node whose clock lags the one the deadline was checked against), or 0
/// (as soon as the caller allows, a second later) for `AuditPending`, whose block is two blocks
/// after the result's.
pub fn not_before(e: &TransportError) -> Option<u64> {
    let RpcError::ErrorResp(payload) = e else {
        return None;
    };
    match LilypadErrors::abi_decode(&payload.as_revert_data()?).ok()? {
        LilypadErrors::DeadlineNotReached(d) => u64::try_from(d.deadline).ok(),
        LilypadErrors::AuditPending(_) => Some(0),
        _ => None,
    }
}

/// Whether a refusal by Lilypad's error `e` is final. Errors about what was signed (signature,
/// terms, result fields) and a passed deadline are final; errors about time or state that has
/// not come yet, or a job not visible yet, may pass: the job's on-chain state, read again before
/// the next try, decides when to stop.
pub fn verdict(e: &LilypadErrors) -> Verdict {
    use LilypadErrors as E;
    match e {
        E::DeadlineNotReached(_)
        | E::InvalidJobStatus(_)
        | E::JobNotFound(_)
        | E::InsufficientGasForCallback(_)
        | E::AuditPending(_) => Verdict::Retry,
        _ => Verdict::Drop,
    }
}

/// What a node's answer to `eth_sendRawTransaction` means for the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The node took it (now, or it had it already).
    Taken,
    /// The node says the nonce is used: this transaction (or an earlier attempt) may be the one
    /// mined; confirmation finds out from the receipts.
    NonceUsed,
    /// The node refused it and does not hold it (underpriced, insufficient funds, ...); why.
    Refused(String),
    /// No answer could be read: the node may hold it. The nonce is kept and the same signed
    /// bytes are sent again; never re-signed with another nonce.
    Unknown(String),
}

/// Classifies the answer to `eth_sendRawTransaction`.
pub fn classify_send(result: Result<(), &TransportError>) -> SendOutcome {
    let e = match result {
        Ok(()) => return SendOutcome::Taken,
        Err(e) => e,
    };
    let RpcError::ErrorResp(payload) = e else {
        return SendOutcome::Unknown(e.to_string());
    };
    let message = payload.message.to_lowercase();
    if [
        "already known",
        "known transaction",
        "already imported",
        "already exists",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        SendOutcome::Taken
    } else if ["nonce too low", "nonce has already been used", "oldnonce"]
        .iter()
        .any(|m| message.contains(m))
    {
        SendOutcome::NonceUsed
    } else if payload.code == -32005 || message.contains("rate limit") || payload.code == -32603 {
        // A rate limit or an internal error of the endpoint (a proxy in front of the node
        // included) says nothing about whether the node holds the transaction.
        SendOutcome::Unknown(e.to_string())
    } else {
        SendOutcome::Refused(payload.message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, U256};
    use alloy::sol_types::SolError;
    use alloy::transports::{HttpError, TransportErrorKind};
    use lilypad_bindings::Lilypad;

    fn error_response(code: i64, message: &str, data: Option<&str>) -> TransportError {
        let data = data.map_or(String::new(), |d| format!(r#","data":{d}"#));
        let json = format!(r#"{{"code":{code},"message":{message:?}{data}}}"#);
        RpcError::ErrorResp(serde_json::from_str(&json).unwrap())
    }

    fn hex_data(bytes: &[u8]) -> String {
        format!("\"0x{}\"", alloy::primitives::hex::encode(bytes))
    }

    fn http(status: u16) -> TransportError {
        RpcError::Transport(TransportErrorKind::HttpError(HttpError {
            status,
            body: String::new(),
        }))
    }

    #[test]
    fn a_revert_with_lilypad_error_data_is_refused_by_name() {
        let data = Lilypad::InvalidSignature {
            expectedSigner: Address::repeat_byte(7),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&data)));
        let CallFailure::Reverted { reason, verdict } = classify_call(&e) else {
            panic!("a revert taken for an outage: {e}")
        };
        assert!(reason.contains("InvalidSignature"), "{reason}");
        assert_eq!(verdict, Verdict::Drop);
    }

    #[test]
    fn a_deadline_not_reached_yet_is_retried_not_dropped() {
        let data = Lilypad::DeadlineNotReached {
            jobId: U256::from(1),
            deadline: U256::from(100),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&data)));
        assert!(matches!(
            classify_call(&e),
            CallFailure::Reverted {
                verdict: Verdict::Retry,
                ..
            }
        ));
    }

    #[test]
    fn a_deadline_not_reached_names_when_to_come_back_and_nothing_else_does() {
        let data = Lilypad::DeadlineNotReached {
            jobId: U256::from(1),
            deadline: U256::from(1_700_000_100u64),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&data)));
        assert_eq!(not_before(&e), Some(1_700_000_100));
        let other = Lilypad::InvalidSignature {
            expectedSigner: Address::repeat_byte(7),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&other)));
        assert_eq!(not_before(&e), None);
        assert_eq!(not_before(&http(503)), None);
    }

    #[test]
    fn a_revert_this_build_cannot_name_is_retried_with_its_selector() {
        let e = error_response(
            3,
            "execution reverted",
            Some(&hex_data(&[0xfb, 0x8f, 0x41, 0xb2, 0, 0])),
        );
        let CallFailure::Reverted { reason, verdict } = classify_call(&e) else {
            panic!("{e}")
        };
        assert!(reason.contains("0xfb8f41b2"), "{reason}");
        assert_eq!(verdict, Verdict::Retry);
        let bare = error_response(-32000, "execution reverted", None);
        assert!(matches!(classify_call(&bare), CallFailure::Reverted { .. }));
    }

    #[test]
    fn a_settle_before_the_audit_draw_is_retried_and_one_the_draw_picked_is_not() {
        use alloy::sol_types::SolError;
        let pending = lilypad_bindings::Lilypad::AuditPending {
            jobId: alloy::primitives::U256::from(7),
            seedBlock: alloy::primitives::U256::from(102),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&pending)));
        let CallFailure::Reverted { verdict, .. } = classify_call(&e) else {
            panic!("{e}")
        };
        assert_eq!(verdict, Verdict::Retry, "the draw's block comes in seconds");
        assert_eq!(not_before(&e), Some(0), "tried again a second later");
        let required = lilypad_bindings::Lilypad::AuditRequired {
            jobId: alloy::primitives::U256::from(7),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&required)));
        let CallFailure::Reverted { verdict, .. } = classify_call(&e) else {
            panic!("{e}")
        };
        assert_eq!(
            verdict,
            Verdict::Drop,
            "only the audit's verdict settles it"
        );
    }

    #[test]
    fn a_revert_of_the_token_is_named_and_retried() {
        use alloy::sol_types::SolError;
        let data = lilypad_bindings::LilypadToken::ERC20InsufficientBalance {
            sender: alloy::primitives::Address::repeat_byte(1),
            balance: alloy::primitives::U256::from(1),
            needed: alloy::primitives::U256::from(2),
        }
        .abi_encode();
        let e = error_response(3, "execution reverted", Some(&hex_data(&data)));
        let CallFailure::Reverted { reason, verdict } = classify_call(&e) else {
            panic!("{e}")
        };
        assert!(
            reason.starts_with("ERC20InsufficientBalance { sender: 0x0101"),
            "{reason}"
        );
        assert_eq!(verdict, Verdict::Retry);
    }

    #[test]
    fn an_http_error_a_garbled_body_or_another_error_response_is_not_a_revert() {
        for e in [
            http(503),
            http(429),
            RpcError::DeserError {
                err: serde_json::from_str::<u8>("x").unwrap_err(),
                text: "<html>bad gateway</html>".into(),
            },
            RpcError::NullResp,
            TransportErrorKind::custom_str("connection reset"),
            error_response(-32005, "limit exceeded", None),
            error_response(-32000, "header not found", None),
            error_response(-32603, "internal error", Some("\"0x08c379a0\"")),
        ] {
            assert!(
                matches!(classify_call(&e), CallFailure::Unavailable(_)),
                "taken for a revert: {e}"
            );
        }
    }

    #[test]
    fn a_send_the_node_already_holds_or_mined_is_not_refused() {
        assert_eq!(classify_send(Ok(())), SendOutcome::Taken);
        for m in ["already known", "transaction already imported"] {
            assert_eq!(
                classify_send(Err(&error_response(-32000, m, None))),
                SendOutcome::Taken
            );
        }
        assert_eq!(
            classify_send(Err(&error_response(-32003, "nonce too low", None))),
            SendOutcome::NonceUsed
        );
    }

    #[test]
    fn a_lost_answer_to_a_send_is_unknown_and_a_refusal_is_refused() {
        assert!(matches!(
            classify_send(Err(&http(503))),
            SendOutcome::Unknown(_)
        ));
        assert!(matches!(
            classify_send(Err(&TransportErrorKind::custom_str(
                "connection closed before message completed"
            ))),
            SendOutcome::Unknown(_)
        ));
        assert!(matches!(
            classify_send(Err(&error_response(
                -32000,
                "insufficient funds for gas * price + value",
                None
            ))),
            SendOutcome::Refused(_)
        ));
    }
}
