//! A test chain with the contracts deployed, and the transactions tests make on it.

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use lilypad_bindings::{ConsortiumMediation, Lilypad, LilypadToken};
use lilypad_chain::RpcOptions;
use lilypad_e2e::{Anvil, deploy_contracts_with, json_rpc};

/// A provider on `url` that signs with `key` (a hex private key, e.g. one of
/// `lilypad_e2e::dev_keys`).
pub fn wallet(url: &str, key: &str) -> DynProvider {
    let signer: PrivateKeySigner = key
        .parse()
        .unwrap_or_else(|e| panic!("{key:?} is not a private key: {e}"));
    lilypad_chain::connect_with_signer(url, signer, &RpcOptions::default())
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A provider on `url` that only reads.
pub fn reader(url: &str) -> DynProvider {
    lilypad_chain::connect(url, &RpcOptions::default())
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// Sends `call`, waits until it is mined, and returns its receipt; panics if it is refused or
/// reverts.
pub async fn send<P, D>(call: CallBuilder<P, D>) -> TransactionReceipt
where
    P: Provider,
    D: CallDecoder,
{
    let selector = alloy::hex::encode(call.calldata().get(..4).unwrap_or_default());
    let receipt = call
        .send()
        .await
        .unwrap_or_else(|e| panic!("sending call 0x{selector}: {e}"))
        .get_receipt()
        .await
        .unwrap_or_else(|e| panic!("waiting for call 0x{selector} to be mined: {e}"));
    assert!(receipt.status(), "call 0x{selector} reverted: {receipt:?}");
    receipt
}

/// A new account nobody else uses: its private key (hex) and address. Fund it with
/// [`TestChain::fund_eth`] (and dev tokens by naming it in the deployment's `fund`).
pub fn fresh_key() -> (String, Address) {
    let signer = PrivateKeySigner::random();
    (signer.to_bytes().to_string(), signer.address())
}

/// A `runJob` request for `module`/`version` with `inputs`, no price, 600 s to match and to run,
/// 1024 output bytes, no callback, no results collateral and no challenge window; tests change
/// what they need with `Lilypad::JobRequest { maxPrice: ..., ..job_request(...) }`.
pub fn job_request(module: &str, version: &str, inputs: &[(&str, &str)]) -> Lilypad::JobRequest {
    Lilypad::JobRequest {
        module: module.into(),
        version: version.into(),
        moduleId: Default::default(),
        deterministic: false,
        inputs: inputs
            .iter()
            .map(|(key, value)| Lilypad::InputParam {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect(),
        maxPrice: U256::ZERO,
        matchTimeout: 600,
        executionTimeout: 600,
        callbackGasLimit: 0,
        maxOutputBytes: 1024,
        resultsCollateralMultiplierBps: 0,
        challengeWindow: 0,
        extraAuditBps: 0,
        providers: vec![],
        minDelivered: 0,
        minReliabilityBps: 0,
    }
}

/// A job requested on-chain.
#[derive(Debug, Clone)]
pub struct Requested {
    /// The job's id.
    pub job_id: U256,
    /// The request hash the contract stored for it.
    pub request_hash: B256,
    /// The `runJob` receipt (its logs hold the `JobRequested` event).
    pub receipt: TransactionReceipt,
}

/// anvil with the Lilypad suite deployed by `contracts/script/Deploy.s.sol`; dropped with it.
#[derive(Debug)]
pub struct TestChain {
    /// The chain.
    pub anvil: Anvil,
    /// The deployments JSON the script wrote.
    pub deployment: serde_json::Value,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// The dev token.
    pub token: Address,
    /// The mediation contract.
    pub mediation: Address,
    /// The block the deployment starts at.
    pub deployed_at: u64,
}

impl TestChain {
    /// Starts anvil with `chain_id`, deploys, and mints dev tokens to `fund` (addresses).
    pub fn deploy(chain_id: u64, fund: &[&str]) -> Self {
        let anvil = Anvil::start(chain_id).unwrap_or_else(|e| panic!("anvil: {e}"));
        Self::deploy_on(anvil, fund, &[])
    }

    /// Deploys to an anvil already started (e.g. with `Anvil::start_with`), with `settings` for
    /// the deploy script (see `lilypad_e2e::deploy_contracts_with`).
    pub fn deploy_on(anvil: Anvil, fund: &[&str], settings: &[(&str, &str)]) -> Self {
        let deployment = deploy_contracts_with(&anvil, fund, settings)
            .unwrap_or_else(|e| panic!("deploying the contracts: {e}"));
        let address = |key: &str| {
            deployment[key]
                .as_str()
                .and_then(|a| a.parse::<Address>().ok())
                .unwrap_or_else(|| panic!("no {key} address in the deployment: {deployment}"))
        };
        Self {
            lilypad: address("lilypad"),
            token: address("token"),
            mediation: address("mediation"),
            deployed_at: deployment["deploymentBlock"]
                .as_u64()
                .unwrap_or_else(|| panic!("no deploymentBlock in the deployment: {deployment}")),
            deployment,
            anvil,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.anvil.url()
    }

    /// A provider on this chain that signs with `key`.
    pub fn wallet(&self, key: &str) -> DynProvider {
        wallet(&self.url(), key)
    }

    /// The Lilypad contract, called with `key`'s account.
    pub fn lilypad_as(&self, key: &str) -> Lilypad::LilypadInstance<DynProvider> {
        Lilypad::new(self.lilypad, self.wallet(key))
    }

    /// The Lilypad contract, for reading.
    pub fn lilypad(&self) -> Lilypad::LilypadInstance<DynProvider> {
        Lilypad::new(self.lilypad, reader(&self.url()))
    }

    /// Calls an anvil JSON-RPC method (`params` as JSON) and returns its result.
    pub fn rpc(&self, method: &str, params: &str) -> serde_json::Value {
        json_rpc(self.anvil.service.port(), method, params)
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }

    /// Moves the chain's clock forward by `seconds` and mines a block.
    pub fn advance(&self, seconds: u64) {
        self.rpc("evm_increaseTime", &format!("[{seconds}]"));
        self.rpc("evm_mine", "[]");
    }

    /// The latest block's number.
    pub fn head(&self) -> u64 {
        let v = self.rpc("eth_blockNumber", "[]");
        hex_u64(&v)
    }

    /// The hash of block `number`.
    fn block_hash(&self, number: u64) -> Option<String> {
        let block = self.rpc(
            "eth_getBlockByNumber",
            &format!(r#"["0x{number:x}", false]"#),
        );
        block["hash"].as_str().map(str::to_owned)
    }

    /// Reorganises away every block after `block` (`anvil_reorg`: anvil replaces them with as many
    /// empty blocks), so their transactions are gone and the chain goes on from the new branch;
    /// the job ids of requests made in them are given out again. Repeated if a block mined
    /// meanwhile (interval mining) left the first of them in place.
    pub fn reorg_after(&self, block: u64) {
        let first = self.block_hash(block + 1);
        assert!(first.is_some(), "no block after {block} to reorganise away");
        loop {
            let depth = self.head() - block;
            self.rpc("anvil_reorg", &format!("[{depth}, []]"));
            if self.block_hash(block + 1) != first {
                return;
            }
        }
    }

    /// Stops mining altogether, instant and interval: sent transactions wait in the pool until
    /// `evm_mine` or [`Self::mine_instantly`].
    pub fn stop_mining(&self) {
        self.rpc("evm_setAutomine", "[false]");
        self.rpc("evm_setIntervalMining", "[0]");
    }

    /// Mines every transaction at once again, after [`Self::stop_mining`]. Anvil cannot go back to
    /// mixed mining: from now on the chain's clock stands still between transactions.
    pub fn mine_instantly(&self) {
        self.rpc("evm_setAutomine", "[true]");
    }

    /// Gives `who` 10,000 ETH for gas.
    pub fn fund_eth(&self, who: Address) {
        self.rpc(
            "anvil_setBalance",
            &format!(r#"["{who}", "0x21e19e0c9bab2400000"]"#),
        );
    }

    /// `key`'s account lets Lilypad take `amount` dev tokens (payments, collateral).
    pub async fn approve(&self, key: &str, amount: U256) {
        send(LilypadToken::new(self.token, self.wallet(key)).approve(self.lilypad, amount)).await;
    }

    /// `key`'s account approves Lilypad for all its tokens, registers as a provider with
    /// `metadata`, and deposits `collateral`.
    pub async fn register_provider(&self, key: &str, metadata: &str, collateral: U256) {
        self.approve(key, U256::MAX).await;
        let lilypad = self.lilypad_as(key);
        send(lilypad.registerProvider(metadata.into())).await;
        send(lilypad.depositCollateral(collateral)).await;
    }

    /// `key`'s account registers as a mediator of the mediation contract with `metadata` and
    /// stakes `stake` there (drawable once it is at least the contract's `mediatorStake`).
    pub async fn register_mediator(&self, key: &str, metadata: &str, stake: U256) {
        let wallet = self.wallet(key);
        send(LilypadToken::new(self.token, &wallet).approve(self.mediation, stake)).await;
        let mediation = ConsortiumMediation::new(self.mediation, &wallet);
        send(mediation.registerMediator(metadata.into())).await;
        send(mediation.depositStake(stake)).await;
    }

    /// `key`'s account requests `request` (it must have approved the payment); returns the job.
    pub async fn run_job(&self, key: &str, request: Lilypad::JobRequest) -> Requested {
        let receipt = send(self.lilypad_as(key).runJob(request)).await;
        let event = receipt
            .decoded_log::<Lilypad::JobRequested>()
            .unwrap_or_else(|| panic!("runJob emitted no JobRequested: {receipt:?}"));
        Requested {
            job_id: event.data.jobId,
            request_hash: event.data.requestHash,
            receipt,
        }
    }
}

/// A JSON-RPC quantity (`"0x1a"`) as a number.
fn hex_u64(v: &serde_json::Value) -> u64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON-RPC quantity: {v}"));
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("not a JSON-RPC quantity: {v}: {e}"))
}
