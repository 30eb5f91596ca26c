//! `lilypad stake`: a mediator's stake in the mediation contract, and taking it out in the
//! contract's two steps (`requestUnbond`, then `completeUnbond` once the unbonding delay passed).

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use anyhow::{Result, bail};
use lilypad_bindings::ConsortiumMediation;

use crate::client::Session;
use crate::{Global, StakeAction, UnbondAmount};

/// A Unix time as UTC, e.g. `2026-12-17 06:10:00 UTC`.
fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("unix time {secs}"),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// A span of seconds as days, hours and minutes, e.g. `13d 23h 59m`.
fn span(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m {}s", secs % 60),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// What the mediation contract holds for one mediator.
struct Stake {
    registered: bool,
    drawable: bool,
    free: U256,
    locked: U256,
    unbonding: U256,
    ready_at: u64,
    credited: U256,
    required: U256,
}

async fn read(
    mediation: &ConsortiumMediation::ConsortiumMediationInstance<&DynProvider>,
    me: Address,
) -> Result<Stake> {
    let stake = mediation.stakeOf(me).call().await?;
    let unbonding = mediation.unbondingOf(me).call().await?;
    Ok(Stake {
        registered: mediation.isMediator(me).call().await?,
        drawable: mediation.isDrawable(me).call().await?,
        free: stake.free,
        locked: stake.locked,
        unbonding: unbonding.amount,
        ready_at: unbonding.readyAt.saturating_to(),
        credited: mediation.balanceOf(me).call().await?,
        required: U256::from(mediation.mediatorStake().call().await?),
    })
}

/// Sends `tx` and returns its hash once it is mined without reverting.
async fn send(
    session: &Session,
    tx: alloy::rpc::types::TransactionRequest,
    what: &str,
) -> Result<alloy::primitives::B256> {
    Ok(session.send_succeeded(tx, what).await?.transaction_hash)
}

/// `lilypad stake show|unbond|complete|withdraw <chain>`.
pub async fn stake(global: &Global, action: &StakeAction) -> Result<()> {
    let target = action.target();
    let session = Session::open(
        global,
        &target.chain,
        target.key_env.as_deref(),
        target.key_file.as_deref(),
        "mediator",
    )
    .await?;
    let (chain, me) = (&session.chain.name, session.me);
    let address = session.lilypad().mediation().call().await?;
    if address == Address::ZERO {
        bail!(
            "the Lilypad contract on {chain} has no mediation configured: there is no stake to manage"
        );
    }
    let mediation = ConsortiumMediation::new(address, &session.provider);
    let s = read(&mediation, me).await?;
    let now = lilypad_chain::chain_time(&session.provider).await?;
    match action {
        StakeAction::Show(_) => {
            println!("mediator:   {me} on {chain} (mediation {address})");
            println!("registered: {}", if s.registered { "yes" } else { "no" });
            println!(
                "drawable:   {} (needs {} free, not leaving)",
                if s.drawable { "yes" } else { "no" },
                s.required
            );
            println!("free:       {}", s.free);
            println!("locked:     {} (in cases it was drawn for)", s.locked);
            if s.unbonding.is_zero() {
                println!("unbonding:  0");
            } else if now >= s.ready_at {
                println!(
                    "unbonding:  {}, ready since {} (lilypad stake complete {chain})",
                    s.unbonding,
                    utc(s.ready_at)
                );
            } else {
                println!(
                    "unbonding:  {}, paid from {} (in {})",
                    s.unbonding,
                    utc(s.ready_at),
                    span(s.ready_at - now)
                );
            }
            println!(
                "credited:   {} (slashed stakes won; lilypad stake withdraw {chain})",
                s.credited
            );
            let r = mediation.recordOf(me).call().await?;
            println!(
                "record:     drawn {} times; rewarded {}, slashed {} (lost {}), open {}",
                r.drawn,
                r.rewarded,
                r.slashes,
                r.slashedAmount,
                r.drawn.saturating_sub(r.rewarded).saturating_sub(r.slashes)
            );
        }
        StakeAction::Unbond { amount, .. } => {
            let amount = match amount {
                UnbondAmount::All => s.free,
                UnbondAmount::Amount(a) => U256::from(*a),
            };
            if amount.is_zero() {
                bail!(
                    "{me} has no free stake on {chain} to unbond (locked in cases: {})",
                    s.locked
                );
            }
            if amount > s.free {
                bail!(
                    "cannot unbond {amount}: only {} of {me}'s stake on {chain} is free ({} is locked in cases it was drawn for and is released when they resolve)",
                    s.free,
                    s.locked
                );
            }
            let tx = send(
                &session,
                mediation.requestUnbond(amount).into_transaction_request(),
                "the unbonding request",
            )
            .await?;
            let after = read(&mediation, me).await?;
            println!(
                "{amount} set aside on {chain} (tx {}); {} unbonding in all, paid from {} by lilypad stake complete {chain}",
                tx,
                after.unbonding,
                utc(after.ready_at)
            );
            if !after.drawable {
                println!(
                    "{me} is no longer drawn for cases opened from now on; it still votes in the cases it was drawn for"
                );
            }
        }
        StakeAction::Complete(_) => {
            if s.unbonding.is_zero() {
                bail!(
                    "{me} has nothing unbonding on {chain} (first: lilypad stake unbond {chain} <amount|all>)"
                );
            }
            if now < s.ready_at {
                bail!(
                    "the unbonding of {} is not ready (UnbondingNotReady): it is paid from {} (chain time {}), in {}",
                    s.unbonding,
                    utc(s.ready_at),
                    s.ready_at,
                    span(s.ready_at - now)
                );
            }
            let tx = send(
                &session,
                mediation.completeUnbond().into_transaction_request(),
                "the unbonding completion",
            )
            .await?;
            println!("{} paid to {me} on {chain} (tx {})", s.unbonding, tx);
        }
        StakeAction::Withdraw(_) => {
            if s.credited.is_zero() {
                bail!(
                    "nothing is credited to {me} on {chain}'s mediation (credits are slashed stakes won by voting with the decision; free stake leaves by lilypad stake unbond)"
                );
            }
            let tx = send(
                &session,
                mediation.withdraw().into_transaction_request(),
                "the withdrawal",
            )
            .await?;
            println!("{} withdrawn to {me} on {chain} (tx {})", s.credited, tx);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_spans_read_as_a_person_would_write_them() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_765_000_000), "2025-12-06 05:46:40 UTC");
        assert_eq!(span(14 * 86_400 - 60), "13d 23h 59m");
        assert_eq!(span(3_700), "1h 1m");
        assert_eq!(span(61), "1m 1s");
    }
}
