//! An in-process chain: revm over an in-memory database, with the clock and block number the twin
//! moves itself. Transactions are executed and committed one by one, as a node with instant
//! mining would; fees are off (gas is counted, never paid), so agents need no ether.

use alloy::primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy::sol_types::{SolCall, SolInterface};
use lilypad_bindings::Lilypad::LilypadErrors;
use revm::context::result::{ExecutionResult, Output};
use revm::context::{Context, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::MainnetContext;
use revm::primitives::hardfork::SpecId;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainnetEvm};

use crate::TwinError;

type Db = CacheDB<EmptyDB>;

/// The chain id the twin's contracts see (anvil's).
pub const CHAIN_ID: u64 = 31_337;
/// Gas each transaction may use.
const TX_GAS_LIMIT: u64 = 30_000_000;

/// A transaction the chain executed, as [`Chain::recording`] keeps it: enough to send it again
/// elsewhere (to anvil, to check the twin against it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its sender.
    pub from: Address,
    /// The contract called, or a creation.
    pub to: TxKind,
    /// Its calldata (creation code and arguments for a creation).
    pub data: Bytes,
    /// The block it was executed in.
    pub block: u64,
    /// That block's unix time.
    pub time: u64,
    /// Whether it reverted.
    pub reverted: bool,
}

/// One in-process chain.
pub struct Chain {
    evm: MainnetEvm<MainnetContext<Db>>,
    /// Gas used by every transaction so far.
    pub gas_used: u64,
    /// Gas the last transaction used.
    pub last_gas: u64,
    /// Transactions executed so far.
    pub transactions: u64,
    /// Every transaction executed while recording (views excluded), see [`Chain::recording`].
    pub log: Option<Vec<Sent>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("block", &self.block())
            .field("time", &self.time())
            .field("transactions", &self.transactions)
            .finish_non_exhaustive()
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// A fresh chain at block 1, unix time 1,700,000,000, Prague rules.
    pub fn new() -> Self {
        let ctx: MainnetContext<Db> = Context::new(CacheDB::new(EmptyDB::new()), SpecId::PRAGUE)
            .modify_cfg_chained(|cfg| {
                cfg.chain_id = CHAIN_ID;
                cfg.disable_nonce_check = true;
            })
            .modify_block_chained(|block: &mut revm::context::BlockEnv| {
                block.number = U256::from(1);
                block.timestamp = U256::from(1_700_000_000u64);
                block.gas_limit = u64::MAX;
                block.basefee = 0;
            });
        Self {
            evm: ctx.build_mainnet(),
            gas_used: 0,
            last_gas: 0,
            transactions: 0,
            log: None,
        }
    }

    /// Keeps every transaction from now on in [`Chain::log`] (`false`: stops and drops it).
    pub fn recording(&mut self, on: bool) {
        self.log = on.then(Vec::new);
    }

    /// The current block number.
    pub fn block(&self) -> u64 {
        self.evm.ctx.block.number.saturating_to()
    }

    /// The current block's unix time.
    pub fn time(&self) -> u64 {
        self.evm.ctx.block.timestamp.saturating_to()
    }

    /// Moves to the next block, `secs` seconds later.
    pub fn mine(&mut self, secs: u64) {
        let block = &mut self.evm.ctx.block;
        block.number += U256::from(1);
        block.timestamp += U256::from(secs);
    }

    /// Deploys `code` (creation bytecode with its constructor arguments appended) from `from`.
    pub fn deploy(&mut self, from: Address, code: Bytes) -> Result<Address, TwinError> {
        match self.execute(from, TxKind::Create, code, "deployment")? {
            Output::Create(_, Some(address)) => Ok(address),
            other => Err(TwinError::Deploy(format!("no address created: {other:?}"))),
        }
    }

    /// Calls `to` with `call` from `from` and commits it; its return value decoded. A revert is
    /// [`TwinError::Reverted`], with Lilypad's custom error decoded by name when it is one.
    pub fn call<C: SolCall>(
        &mut self,
        from: Address,
        to: Address,
        call: &C,
    ) -> Result<C::Return, TwinError> {
        let out = self.execute(
            from,
            TxKind::Call(to),
            call.abi_encode().into(),
            C::SIGNATURE,
        )?;
        decode_returns::<C>(&out)
    }

    /// Reads `call` from `to` (a view: run like a call from the zero address as `eth_call` does,
    /// and dropped: nothing is committed, its gas and the transaction are not counted).
    pub fn view<C: SolCall>(&mut self, to: Address, call: &C) -> Result<C::Return, TwinError> {
        let tx = tx_env(Address::ZERO, TxKind::Call(to), call.abi_encode().into());
        let result = self
            .evm
            .transact(tx)
            .map_err(|e| TwinError::Evm(e.to_string()))?
            .result;
        decode_returns::<C>(&output(result, C::SIGNATURE)?)
    }

    fn execute(
        &mut self,
        from: Address,
        kind: TxKind,
        data: Bytes,
        what: &'static str,
    ) -> Result<Output, TwinError> {
        let (block, time) = (self.block(), self.time());
        if let Some(log) = &mut self.log {
            log.push(Sent {
                from,
                to: kind,
                data: data.clone(),
                block,
                time,
                reverted: false,
            });
        }
        let result = self
            .evm
            .transact_commit(tx_env(from, kind, data))
            .map_err(|e| TwinError::Evm(e.to_string()))?;
        self.transactions += 1;
        if !result.is_success()
            && let Some(sent) = self.log.as_mut().and_then(|log| log.last_mut())
        {
            sent.reverted = true;
        }
        if let ExecutionResult::Success { gas, .. } | ExecutionResult::Revert { gas, .. } = &result
        {
            self.last_gas = gas.tx_gas_used();
            self.gas_used += self.last_gas;
        }
        output(result, what)
    }
}

/// A transaction from `from`: fees off, the twin's gas limit and chain id.
fn tx_env(from: Address, kind: TxKind, data: Bytes) -> TxEnv {
    TxEnv {
        caller: from,
        kind,
        data,
        gas_limit: TX_GAS_LIMIT,
        gas_price: 0,
        chain_id: Some(CHAIN_ID),
        ..TxEnv::default()
    }
}

/// What a transaction returned, or its refusal: a revert with Lilypad's custom error by name, or
/// a halt.
fn output(result: ExecutionResult, what: &'static str) -> Result<Output, TwinError> {
    match result {
        ExecutionResult::Success { output, .. } => Ok(output),
        ExecutionResult::Revert { output, .. } => Err(TwinError::Reverted {
            call: what,
            reason: decode_revert(&output),
        }),
        ExecutionResult::Halt { reason, .. } => Err(TwinError::Reverted {
            call: what,
            reason: format!("halted: {reason:?}"),
        }),
    }
}

/// `call`'s return value decoded from a call's output.
fn decode_returns<C: SolCall>(out: &Output) -> Result<C::Return, TwinError> {
    C::abi_decode_returns(out.data()).map_err(|e| TwinError::Decode {
        call: C::SIGNATURE,
        reason: e.to_string(),
    })
}

/// A revert's data as a person reads it: Lilypad's custom error by name, else the raw bytes.
fn decode_revert(data: &[u8]) -> String {
    match LilypadErrors::abi_decode(data) {
        Ok(e) => format!("{e:?}"),
        Err(_) => format!("0x{}", alloy::primitives::hex::encode(data)),
    }
}

/// `bytecode` (hex, as Foundry writes it) with each library placeholder (`__$<34 hex>$__`, from
/// the keccak256 of the library's `<source path>:<name>`) replaced by that library's address.
pub fn link(bytecode: &str, libraries: &[(&str, Address)]) -> Result<Bytes, TwinError> {
    let mut hex = bytecode.trim_start_matches("0x").to_owned();
    for (name, address) in libraries {
        let id = keccak256(name.as_bytes());
        let placeholder = format!("__${}$__", &alloy::primitives::hex::encode(id)[..34]);
        hex = hex.replace(&placeholder, &alloy::primitives::hex::encode(address));
    }
    if let Some(at) = hex.find("__$") {
        return Err(TwinError::Deploy(format!(
            "an unlinked library is left at byte {}",
            at / 2
        )));
    }
    alloy::primitives::hex::decode(&hex)
        .map(Bytes::from)
        .map_err(|e| TwinError::Deploy(e.to_string()))
}
