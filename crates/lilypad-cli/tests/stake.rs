//! `lilypad stake`: a mediator takes its stake out of the mediation contract in the contract's two
//! steps, with the real binary against anvil and the deployed contracts.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use lilypad_bindings::{ConsortiumMediation, LilypadToken};
use lilypad_testkit::{TestChain, fresh_key, reader};

/// 30 tokens: three times the deployment's mediatorStake (10 tokens).
const STAKE: u128 = 30_000_000_000_000_000_000;
/// ConsortiumMediation.UNBONDING_DELAY.
const UNBONDING_DELAY: u64 = 14 * 24 * 3600;

/// A deployment with one staked mediator, and the chains.toml `lilypad stake` reads.
struct World {
    chain: TestChain,
    key: String,
    me: Address,
    dir: tempfile::TempDir,
}

impl World {
    async fn start() -> Self {
        let (key, me) = fresh_key();
        let chain = TestChain::deploy(31337, &[&me.to_string()]);
        chain.fund_eth(me);
        chain
            .register_mediator(&key, "http://127.0.0.1/m", U256::from(STAKE))
            .await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("deploy.json"), chain.deployment.to_string()).unwrap();
        std::fs::write(
            dir.path().join("chains.toml"),
            format!(
                "[[chains]]\nname = \"dev\"\nchain_id = 31337\nrpc = \"{}\"\ndeployment = \"deploy.json\"\n\
                 confirmations = 0\npoll_interval = \"100ms\"\nsigner = {{ env = \"LILYPAD_RELAYER_KEY\" }}\n",
                chain.url()
            ),
        )
        .unwrap();
        Self {
            chain,
            key,
            me,
            dir,
        }
    }

    /// Runs `lilypad stake <args>` as the mediator.
    fn stake(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lilypad"))
            .arg("stake")
            .args(args)
            .env("LILYPAD_CHAINS", self.dir.path().join("chains.toml"))
            .env("LILYPAD_MEDIATOR_KEY", &self.key)
            .env("LILYPAD_RELAYER_KEY", &self.key)
            .output()
            .unwrap()
    }

    fn mediation(
        &self,
    ) -> ConsortiumMediation::ConsortiumMediationInstance<alloy::providers::DynProvider> {
        ConsortiumMediation::new(self.chain.mediation, reader(&self.chain.url()))
    }

    async fn tokens(&self) -> U256 {
        LilypadToken::new(self.chain.token, reader(&self.chain.url()))
            .balanceOf(self.me)
            .call()
            .await
            .unwrap()
    }

    async fn nonce(&self) -> u64 {
        reader(&self.chain.url())
            .get_transaction_count(self.me)
            .await
            .unwrap()
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_mediator_takes_all_its_stake_out_in_two_steps() {
    let w = World::start().await;
    let show = w.stake(&["show", "dev"]);
    assert!(show.status.success(), "{}", err(&show));
    assert!(out(&show).contains("drawable:   yes"), "{}", out(&show));
    assert!(
        out(&show).contains("record:     drawn 0 times; rewarded 0, slashed 0 (lost 0), open 0"),
        "{}",
        out(&show)
    );
    assert!(
        out(&show).contains(&format!("free:       {STAKE}")),
        "{}",
        out(&show)
    );

    let unbond = w.stake(&["unbond", "dev", "all"]);
    assert!(unbond.status.success(), "{}", err(&unbond));
    assert!(
        out(&unbond).contains("is no longer drawn for cases opened from now on"),
        "{}",
        out(&unbond)
    );
    assert!(!w.mediation().isDrawable(w.me).call().await.unwrap());
    let before = w.tokens().await;

    w.chain.advance(UNBONDING_DELAY);
    let complete = w.stake(&["complete", "dev"]);
    assert!(complete.status.success(), "{}", err(&complete));
    assert_eq!(w.tokens().await - before, U256::from(STAKE));
    let unbonding = w.mediation().unbondingOf(w.me).call().await.unwrap();
    assert_eq!(unbonding.amount, U256::ZERO);
}

#[tokio::test]
async fn completing_before_the_delay_is_refused_naming_when_it_is_due() {
    let w = World::start().await;
    assert!(w.stake(&["unbond", "dev", "1000"]).status.success());
    let ready_at = w
        .mediation()
        .unbondingOf(w.me)
        .call()
        .await
        .unwrap()
        .readyAt;
    let nonce = w.nonce().await;

    let early = w.stake(&["complete", "dev"]);
    assert!(!early.status.success());
    let shown = err(&early);
    assert!(shown.contains("not ready (UnbondingNotReady)"), "{shown}");
    assert!(
        shown.contains(&format!("(chain time {ready_at})")),
        "{shown}"
    );
    assert_eq!(w.nonce().await, nonce, "nothing was sent");
}

#[tokio::test]
async fn unbonding_more_than_the_free_stake_is_refused_before_sending() {
    let w = World::start().await;
    let nonce = w.nonce().await;
    let more = (STAKE + 1).to_string();
    let refused = w.stake(&["unbond", "dev", &more]);
    assert!(!refused.status.success());
    let shown = err(&refused);
    assert!(
        shown.contains(&format!("cannot unbond {more}: only {STAKE} of")),
        "{shown}"
    );
    assert_eq!(w.nonce().await, nonce, "nothing was sent");
    assert!(w.mediation().isDrawable(w.me).call().await.unwrap());
}
