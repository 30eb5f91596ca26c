//! The twin cannot drift from the contracts: one scenario is run on the twin with
//! [`lilypad_twin::Chain::recording`] on from its deployment, then every transaction it executed
//! (the deployment included) is sent again, from
//! the same senders, in the same blocks at the same times, to anvil running the same compiled
//! contracts.
//! Each transaction must succeed or revert alike (and land in the same block), and afterwards
//! every balance the market keeps must be equal on both: Lilypad's credit, collateral and
//! reputation records, its audit fund and jackpot, the token's balances and supply, the
//! consortium's stakes, records and balances, and every job as stored.
//!
//! The scenario: a 1% protocol fee and a mediation fee, a funded client, a provider with
//! collateral, five jobs requested, agreed, delivered and settled (two of them in the same blocks,
//! one refused a settlement before its deadline: `DeadlineNotReached`), withdrawals; then a
//! consortium of exactly three mediators, a cheating result, the client's challenge and the
//! mediators' votes overturning it.
//!
//! What differs on purpose: block hashes (the twin's are not anvil's). No protocol audits run
//! here, since whether a result is drawn depends on a block hash; the consortium draws all three of
//! its three mediators whatever the hash, so the challenge's outcome and every balance do not
//! depend on it, only the order of `mediatorsOf` does (compared sorted). Ether is not compared:
//! the twin charges no gas, and anvil here runs with a zero base fee and gas price.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fmt::Debug;

use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use lilypad_bindings::{ConsortiumMediation, Lilypad, LilypadToken};
use lilypad_e2e::{Anvil, json_rpc};
use lilypad_twin::evm::CHAIN_ID;
use lilypad_twin::market::{OWNER, TREASURY, cowsay_request};
use lilypad_twin::scenario::{ConsortiumConfig, MarketConfig, Strategy};
use lilypad_twin::sim::{Checked, JobRecord, World};
use lilypad_twin::{Chain, Job, Market, Sent, TwinError};
use serde_json::{Value, json};

/// The twin's first block and its time ([`lilypad_twin::Chain::new`]).
const FIRST_BLOCK: u64 = 1;
const FIRST_TIME: u64 = 1_700_000_000;
/// The gas limit the twin gives each transaction.
const TX_GAS: u64 = 30_000_000;

const MAX_PRICE: u64 = 1_000_000;
const MEDIATION_FEE: u64 = 50_000;

/// anvil on the twin's chain id, mining only when told, every sender impersonated, no fees, Prague
/// (the twin's rules), a genesis just before the twin's first block, and transactions kept in the
/// order they are sent.
struct Node {
    _anvil: Anvil,
    port: u16,
}

impl Node {
    fn start() -> Self {
        let genesis = (FIRST_TIME - 1).to_string();
        let anvil = Anvil::start_with(
            CHAIN_ID,
            &[
                "--no-mining",
                "--auto-impersonate",
                "--hardfork",
                "prague",
                "--timestamp",
                &genesis,
                "--base-fee",
                "0",
                "--gas-price",
                "0",
                "--gas-limit",
                "1000000000000",
                "--order",
                "fifo",
            ],
        )
        .unwrap_or_else(|e| panic!("anvil: {e}"));
        let port = anvil.service.port();
        Self {
            _anvil: anvil,
            port,
        }
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        json_rpc(self.port, method, &params.to_string())
            .unwrap_or_else(|e| panic!("anvil {method} {params}: {e}"))
    }

    /// Queues a transaction for the next block; its hash.
    fn send(&self, from: Address, to: TxKind, data: &Bytes) -> String {
        let mut tx = json!({
            "from": from,
            "data": data,
            "gas": format!("{TX_GAS:#x}"),
            "gasPrice": "0x0",
        });
        if let TxKind::Call(to) = to {
            tx["to"] = json!(to);
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx]));
        hash.as_str().unwrap().to_owned()
    }

    /// Mines the next block, with every queued transaction, at `time`.
    fn mine(&self, time: u64) {
        self.rpc("evm_mine", json!([time]));
    }

    fn block_number(&self) -> u64 {
        quantity(&self.rpc("eth_blockNumber", json!([])))
    }

    fn receipt(&self, hash: &str) -> Value {
        let receipt = self.rpc("eth_getTransactionReceipt", json!([hash]));
        assert!(!receipt.is_null(), "anvil never mined {hash}");
        receipt
    }

    /// Reads `call` from `to` at the latest block, as the twin's views do (from the zero address).
    fn view<C: SolCall>(&self, to: Address, call: &C) -> C::Return {
        let data = Bytes::from(call.abi_encode());
        let out = self.rpc("eth_call", json!([{ "to": to, "data": data }, "latest"]));
        let out: Bytes = serde_json::from_value(out).unwrap();
        C::abi_decode_returns(&out)
            .unwrap_or_else(|e| panic!("decoding {} from anvil: {e}", C::SIGNATURE))
    }
}

fn quantity(v: &Value) -> u64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Sends the twin's transactions to anvil block by block: each of the twin's blocks is one of
/// anvil's, at the same number and time, holding the same transactions in the same order (the
/// blocks the twin passed with no transaction are mined empty). Every transaction must revert on
/// anvil exactly when it did on the twin, in the same block; the addresses anvil's creations got.
fn replay(node: &Node, log: &[Sent]) -> Vec<Address> {
    let mut sent: Vec<(String, &Sent)> = Vec::new();
    let (mut block, mut time) = (FIRST_BLOCK, FIRST_TIME);
    for tx in log {
        assert!(
            (tx.block, tx.time) >= (block, time),
            "the twin's log goes back in time at {tx:?}"
        );
        if tx.block > block {
            node.mine(time); // the block being filled
            for _ in block + 1..tx.block {
                node.mine(time); // the twin passed it empty; its time is not recorded
            }
            (block, time) = (tx.block, tx.time);
        }
        sent.push((node.send(tx.from, tx.to, &tx.data), tx));
    }
    node.mine(time);
    assert_eq!(node.block_number(), block, "anvil's last block");

    let mut created = Vec::new();
    let mut mismatches = Vec::new();
    for (i, (hash, tx)) in sent.iter().enumerate() {
        let receipt = node.receipt(hash);
        let reverted = quantity(&receipt["status"]) == 0;
        let mined_in = quantity(&receipt["blockNumber"]);
        if reverted != tx.reverted || mined_in != tx.block {
            mismatches.push(format!(
                "transaction {i}, {} from {}: twin {} in block {}, anvil {} in block {mined_in}",
                function(tx),
                tx.from,
                if tx.reverted { "reverted" } else { "succeeded" },
                tx.block,
                if reverted { "reverted" } else { "succeeded" },
            ));
        }
        if tx.to == TxKind::Create {
            created.push(serde_json::from_value(receipt["contractAddress"].clone()).unwrap());
        }
    }
    assert!(
        mismatches.is_empty(),
        "anvil did not execute the twin's transactions alike:\n{}",
        mismatches.join("\n")
    );
    created
}

/// What `tx` calls, by name, for a failure message.
fn function(tx: &Sent) -> String {
    let TxKind::Call(to) = tx.to else {
        return "a creation".into();
    };
    let selector: Option<[u8; 4]> = tx.data.get(..4).and_then(|s| s.try_into().ok());
    let name = selector.and_then(|s| {
        Lilypad::LilypadCalls::name_by_selector(s)
            .or_else(|| LilypadToken::LilypadTokenCalls::name_by_selector(s))
            .or_else(|| ConsortiumMediation::ConsortiumMediationCalls::name_by_selector(s))
    });
    format!("{} to {to}", name.unwrap_or("an unknown function"))
}

/// Reads the same values from the twin and from anvil: how many were compared, and the ones that
/// differ, each named.
struct Comparison<'a> {
    twin: &'a mut Market,
    anvil: &'a Node,
    compared: usize,
    differences: Vec<String>,
}

impl Comparison<'_> {
    /// Reads `call` from `to` on both; a difference is kept under `what`.
    fn read<C>(&mut self, to: Address, call: C, what: String)
    where
        C: SolCall,
        C::Return: PartialEq + Debug,
    {
        self.read_as(to, call, what, |r| r);
    }

    /// Reads `call` from `to` on both and compares what `normal` makes of each.
    fn read_as<C, T>(&mut self, to: Address, call: C, what: String, normal: impl Fn(C::Return) -> T)
    where
        C: SolCall,
        T: PartialEq + Debug,
    {
        let twin = self
            .twin
            .chain
            .view(to, &call)
            .unwrap_or_else(|e| panic!("the twin's {what}: {e}"));
        let (twin, anvil) = (normal(twin), normal(self.anvil.view(to, &call)));
        self.compared += 1;
        if twin != anvil {
            self.differences
                .push(format!("{what}:\n    twin  {twin:?}\n    anvil {anvil:?}"));
        }
    }
}

/// Reads every balance the market keeps for `accounts`, its totals, and every job of `jobs` (as
/// stored, its challenge, its case) from the twin and from anvil: how many values were compared,
/// and the ones that differ.
fn compare(
    m: &mut Market,
    node: &Node,
    accounts: &BTreeSet<Address>,
    jobs: &[Job],
) -> (usize, Vec<String>) {
    let (lilypad, token) = (m.lilypad, m.token);
    let consortium = m.mediation.unwrap();
    let mut c = Comparison {
        twin: m,
        anvil: node,
        compared: 0,
        differences: Vec::new(),
    };
    for &account in accounts {
        let a = account;
        c.read(
            lilypad,
            Lilypad::balanceOfCall { account },
            format!("Lilypad.balanceOf({a}) (credit)"),
        );
        c.read(
            lilypad,
            Lilypad::collateralOfCall { account },
            format!("Lilypad.collateralOf({a})"),
        );
        c.read(
            lilypad,
            Lilypad::reputationOfCall { provider: a },
            format!("Lilypad.reputationOf({a})"),
        );
        c.read(
            token,
            LilypadToken::balanceOfCall { account },
            format!("token.balanceOf({a})"),
        );
        c.read(
            consortium,
            ConsortiumMediation::balanceOfCall { account },
            format!("consortium.balanceOf({a})"),
        );
        c.read(
            consortium,
            ConsortiumMediation::stakeOfCall { mediator: a },
            format!("consortium.stakeOf({a})"),
        );
        c.read(
            consortium,
            ConsortiumMediation::recordOfCall { mediator: a },
            format!("consortium.recordOf({a})"),
        );
        c.read(
            consortium,
            ConsortiumMediation::unbondingOfCall { mediator: a },
            format!("consortium.unbondingOf({a})"),
        );
    }
    c.read(
        token,
        LilypadToken::totalSupplyCall {},
        "token.totalSupply".into(),
    );
    c.read(
        lilypad,
        Lilypad::auditFundCall {},
        "Lilypad.auditFund".into(),
    );
    c.read(lilypad, Lilypad::jackpotCall {}, "Lilypad.jackpot".into());
    c.read(
        lilypad,
        Lilypad::requestCountCall {},
        "Lilypad.requestCount".into(),
    );
    c.read(
        consortium,
        ConsortiumMediation::casesOpenedCall {},
        "consortium.casesOpened".into(),
    );
    for job in jobs {
        let id = job.id;
        c.read(
            lilypad,
            Lilypad::getJobCall { jobId: id },
            format!("Lilypad.getJob({id})"),
        );
        c.read(
            lilypad,
            Lilypad::getChallengeCall { jobId: id },
            format!("Lilypad.getChallenge({id})"),
        );
    }
    // the draw's order follows the seed block's hash, which differs; whom it drew does not
    let sorted = |mut drawn: Vec<Address>| {
        drawn.sort();
        drawn
    };
    for job in jobs {
        let id = job.id;
        c.read_as(
            consortium,
            ConsortiumMediation::caseOfCall { jobId: id },
            format!("consortium.caseOf({id})"),
            |mut case| {
                case.mediators = sorted(case.mediators);
                case
            },
        );
        c.read_as(
            consortium,
            ConsortiumMediation::mediatorsOfCall { jobId: id },
            format!("consortium.mediatorsOf({id}), sorted"),
            sorted,
        );
    }
    (c.compared, c.differences)
}

/// The whole scenario on the twin, recorded: the twin's transactions, the jobs, the client and
/// the provider, and the mediators.
struct Run {
    market: Market,
    log: Vec<Sent>,
    jobs: Vec<Job>,
    client: Address,
    provider: Address,
    mediators: Vec<Address>,
}

fn run_on_the_twin() -> Run {
    let mut chain = Chain::new();
    chain.recording(true); // the deployment is replayed too
    let mut m = Market::deploy_on(chain).unwrap();
    let mut params = m.params().unwrap();
    params.protocolFeeBps = 100;
    params.mediationFee = alloy::primitives::Uint::from(MEDIATION_FEE);
    m.set_params(params).unwrap();
    let client = Address::repeat_byte(0xc1);
    m.fund(client, U256::from(100 * MAX_PRICE)).unwrap();
    let provider = PrivateKeySigner::random();
    m.add_provider(provider.address(), U256::from(100 * MAX_PRICE))
        .unwrap();
    m.chain.mine(12);

    let request = || cowsay_request(U256::from(MAX_PRICE), 60);
    let price = |i: u64| U256::from(800_000 + 10_000 * i);
    let mut jobs = Vec::new();
    // three jobs one after another; the second is refused a settlement before its deadline
    for i in 0..3 {
        let job = m.run_job(client, request()).unwrap();
        m.chain.mine(12);
        m.agree(job, &provider, price(i)).unwrap();
        m.submit(job, &provider, "bafy-twin", b"moo").unwrap();
        if i == 1 {
            let early = m.settle(client, job).unwrap_err();
            let TwinError::Reverted { reason, .. } = &early else {
                panic!("{early}")
            };
            assert!(reason.contains("DeadlineNotReached"), "{early}");
        }
        m.chain.mine(61);
        m.settle(if i == 2 { provider.address() } else { client }, job)
            .unwrap();
        jobs.push(job);
    }
    // the provider takes its earnings and part of its collateral out
    m.chain
        .call(provider.address(), m.lilypad, &Lilypad::withdrawCall {})
        .unwrap();
    m.chain
        .call(
            provider.address(),
            m.lilypad,
            &Lilypad::withdrawCollateralCall {
                amount: U256::from(MAX_PRICE),
            },
        )
        .unwrap();
    // two jobs side by side, in the same blocks
    m.chain.mine(5);
    let pair = [
        m.run_job(client, request()).unwrap(),
        m.run_job(client, request()).unwrap(),
    ];
    m.chain.mine(5);
    for (i, job) in pair.iter().enumerate() {
        m.agree(*job, &provider, price(3 + i as u64)).unwrap();
    }
    for job in &pair {
        m.submit(*job, &provider, "bafy-twin", b"moo").unwrap();
    }
    m.chain.mine(61);
    for job in &pair {
        m.settle(client, *job).unwrap();
    }
    jobs.extend(pair);

    // a consortium of exactly three, all drawn whatever the seed block's hash
    m.add_mediation(3, 2, 1_000).unwrap();
    let mediators: Vec<Address> = (0..3).map(|i| Address::repeat_byte(0xd0 + i)).collect();
    for mediator in &mediators {
        m.add_mediator(*mediator, U256::from(10_000)).unwrap();
    }
    m.chain.mine(12);
    // a cheat, challenged by the client and overturned by the mediators
    let job = m.run_job(client, request()).unwrap();
    m.agree(job, &provider, price(5)).unwrap();
    m.submit(job, &provider, "bafy-twin", b"hacked").unwrap();
    m.chain.mine(12);
    m.challenge(client, job).unwrap();
    let truth = lilypad_bindings::eip712::result_commitment(1, 0, b"bafy-twin", b"moo");
    m.mediate(job, |_| truth).unwrap();
    assert_eq!(m.job(job.id).unwrap().status, 8, "Overturned");
    jobs.push(job);
    // everyone takes their credit out
    m.chain.mine(12);
    for who in [client, TREASURY] {
        m.chain
            .call(who, m.lilypad, &Lilypad::withdrawCall {})
            .unwrap();
    }

    let log = m.chain.log.take().unwrap();
    Run {
        market: m,
        log,
        jobs,
        client,
        provider: provider.address(),
        mediators,
    }
}

#[test]
fn the_twins_transactions_replayed_on_anvil_leave_the_same_balances() {
    let Run {
        market: mut m,
        log,
        jobs,
        client,
        provider,
        mediators,
    } = run_on_the_twin();
    let consortium = m.mediation.unwrap();
    assert!(
        log.iter().filter(|tx| tx.reverted).count() == 1,
        "the scenario has exactly one refused call"
    );

    let node = Node::start();
    let created = replay(&node, &log);
    // the libraries, the token, Lilypad (which creates its disputes code), the consortium
    assert_eq!(created.len(), 5, "{created:?}");
    assert_eq!(
        (created[2], created[3], created[4]),
        (m.token, m.lilypad, consortium),
        "anvil's token, Lilypad and consortium are at the twin's addresses"
    );

    // everyone the scenario touched
    let mut accounts: BTreeSet<Address> = log.iter().map(|tx| tx.from).collect();
    accounts.extend([
        OWNER, TREASURY, client, provider, m.lilypad, m.token, consortium,
    ]);
    accounts.extend(created);

    let (compared, differences) = compare(&mut m, &node, &accounts, &jobs);
    let id = jobs.last().unwrap().id;
    let sorted = |mut drawn: Vec<Address>| {
        drawn.sort();
        drawn
    };
    assert_eq!(
        sorted(
            m.chain
                .view(
                    consortium,
                    &ConsortiumMediation::mediatorsOfCall { jobId: id }
                )
                .unwrap()
        ),
        mediators,
        "all three mediators drawn"
    );

    assert!(
        differences.is_empty(),
        "{} of {compared} values differ between the twin and anvil:\n{}",
        differences.len(),
        differences.join("\n")
    );

    // and they are the scenario's, not zeros on both sides
    let fees = U256::from((0..5).map(|i| (800_000 + 10_000 * i) / 100).sum::<u64>());
    let treasury = m
        .chain
        .view(m.token, &LilypadToken::balanceOfCall { account: TREASURY })
        .unwrap();
    assert!(
        treasury >= fees,
        "the treasury withdrew {treasury}, less than the fees {fees}"
    );
    let record = m.reputation(provider).unwrap();
    assert_eq!((record.mediated, record.overturned), (1, 1), "{record:?}");
    assert!(record.slashed > 0, "{record:?}");
    assert!(
        !m.credited(provider).unwrap().is_zero(),
        "the provider earned after withdrawing"
    );
}

/// The agents' own sequence of transactions: a seeded run of an honest provider and a cheater
/// (q = 0.5), clients challenging 40% of results, a consortium of three (so all three are drawn
/// whatever the hash), replayed on anvil: the same balances, records and jobs.
///
/// What the mediators share splits evenly in three (a fee of 1.5 million; 15% of a 2 million
/// slash): `_split` gives a rounding remainder to the first mediator drawn, and the draw's order
/// follows the seed block's hash, which is not the same on the twin and on anvil.
#[test]
fn an_agents_run_replayed_on_anvil_leaves_the_same_balances() {
    let mut chain = Chain::new();
    chain.recording(true);
    let market = MarketConfig {
        challenge_bps: 4_000,
        mediation_fee: 1_500_000,
        mediator_share_bps: 1_500,
        ..MarketConfig::default()
    };
    let agents = [(Strategy::Honest, 0.0), (Strategy::Cheater, 0.5)];
    let mut world = World::on(chain, &market, &ConsortiumConfig::default(), &agents, 21).unwrap();
    let records: Vec<JobRecord> = (0..12)
        .map(|i| {
            let cheat = world.draws_cheat(i % 2);
            world.job(i % 2, cheat).unwrap()
        })
        .collect();
    assert!(
        records.iter().any(|r| r.overturned)
            && records
                .iter()
                .any(|r| r.checked == Checked::Challenge && !r.overturned),
        "the run has challenges overturned and upheld: {records:?}"
    );
    let log = world.market.chain.log.take().unwrap();

    let node = Node::start();
    let created = replay(&node, &log);
    let mut accounts: BTreeSet<Address> = log.iter().map(|tx| tx.from).collect();
    accounts.extend([OWNER, TREASURY]);
    accounts.extend(created);
    let jobs: Vec<Job> = records.iter().map(|r| r.job).collect();
    let (compared, differences) = compare(&mut world.market, &node, &accounts, &jobs);
    assert!(
        differences.is_empty(),
        "{} of {compared} values differ between the twin and anvil:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
