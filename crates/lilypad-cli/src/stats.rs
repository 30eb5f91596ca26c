//! `lilypad provider-stats`: a provider's on-chain record (`Lilypad.reputationOf`), with its
//! registration and collateral.

use alloy::primitives::Address;
use anyhow::Result;
use lilypad_bindings::Lilypad;

use crate::client::chain;
use crate::common::{check_chain_id, load_chains, reader};
use crate::{Global, ProviderStatsArgs};

/// Prints `args.address`'s record on `args.chain`.
pub async fn provider_stats(global: &Global, args: &ProviderStatsArgs) -> Result<()> {
    let config = load_chains(&global.chains)?;
    let chain = chain(&config, &args.chain)?;
    let provider = reader(chain)?;
    check_chain_id(chain, &provider).await?;
    let lilypad = Lilypad::new(chain.contracts()?.lilypad, &provider);
    let who: Address = args.address;
    let registered = lilypad.isProvider(who).call().await?;
    let collateral = lilypad.collateralOf(who).call().await?;
    let r = lilypad.reputationOf(who).call().await?;
    let results = u64::from(r.succeeded) + u64::from(r.failed) + u64::from(r.providerErrors);
    println!(
        "provider:    {who} on {} (chain {})",
        chain.name, chain.chain_id
    );
    if registered {
        let url = lilypad.metadataUrl(who).call().await?;
        println!("registered:  yes ({url})");
    } else {
        println!("registered:  no");
    }
    println!(
        "collateral:  {} free, {} locked",
        collateral.free, collateral.locked
    );
    println!(
        "results:     {results} ({} succeeded, {} failed, {} provider errors)",
        r.succeeded, r.failed, r.providerErrors
    );
    println!("timed out:   {}", r.timedOut);
    println!("challenged:  {} by clients", r.mediated);
    println!(
        "audited:     {} by the protocol ({} passed)",
        r.audited, r.passedAudits
    );
    let mediated = u64::from(r.mediated) + u64::from(r.audited);
    let decided = u64::from(r.upheld) + u64::from(r.overturned);
    println!(
        "verdicts:    {} upheld, {} overturned, {} open",
        r.upheld,
        r.overturned,
        mediated.saturating_sub(decided)
    );
    println!("slashed:     {}", r.slashed);
    Ok(())
}
