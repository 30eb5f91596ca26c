//! The market as `Deploy.s.sol` deploys it (the two libraries linked into Lilypad, its token),
//! on a twin [`Chain`], and the steps of a job's life as the relayer sends them: a client's
//! `runJob`, a provider's signed deal and result, `settle`.

use alloy::dyn_abi::Eip712Domain;
use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolConstructor;
use lilypad_bindings::{Lilypad, LilypadToken, eip712};

use crate::TwinError;
use crate::evm::{CHAIN_ID, Chain, link};

const LILYPAD: &str = include_str!("../../lilypad-bindings/artifacts/Lilypad.json");
const TOKEN: &str = include_str!("../../lilypad-bindings/artifacts/LilypadToken.json");
const CHECKS: &str = include_str!("../../lilypad-bindings/artifacts/LilypadChecks.json");
const REGISTRY: &str = include_str!("../../lilypad-bindings/artifacts/LilypadRegistry.json");

/// The account that deploys and owns everything (anvil's first address).
pub const OWNER: Address = Address::new([0x0a; 20]);
/// Who is credited the protocol fee.
pub const TREASURY: Address = Address::new([0x0b; 20]);

/// A job as the twin tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: U256,
    /// Its request's hash (what the provider signs).
    pub request_hash: alloy::primitives::B256,
}

/// Lilypad and its token, deployed on a twin chain.
#[derive(Debug)]
pub struct Market {
    /// The chain they run on.
    pub chain: Chain,
    /// The Lilypad contract.
    pub lilypad: Address,
    /// Its token.
    pub token: Address,
    domain: Eip712Domain,
}

/// The creation bytecode of an exported artifact.
fn bytecode(artifact: &str) -> Result<String, TwinError> {
    let json: serde_json::Value =
        serde_json::from_str(artifact).map_err(|e| TwinError::Deploy(e.to_string()))?;
    json["bytecode"]["object"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| TwinError::Deploy("an artifact without bytecode".into()))
}

impl Market {
    /// Deploys the libraries, the token and Lilypad (whose constructor deploys its disputes
    /// code) with the default parameters, owned by [`OWNER`].
    pub fn deploy() -> Result<Self, TwinError> {
        let mut chain = Chain::new();
        let checks = chain.deploy(OWNER, link(&bytecode(CHECKS)?, &[])?)?;
        let registry = chain.deploy(OWNER, link(&bytecode(REGISTRY)?, &[])?)?;
        let token_args = LilypadToken::constructorCall {
            initialOwner: OWNER,
        }
        .abi_encode();
        let token = chain.deploy(OWNER, with_args(link(&bytecode(TOKEN)?, &[])?, &token_args))?;
        let code = link(
            &bytecode(LILYPAD)?,
            &[
                ("src/libraries/LilypadChecks.sol:LilypadChecks", checks),
                (
                    "src/libraries/LilypadRegistry.sol:LilypadRegistry",
                    registry,
                ),
            ],
        )?;
        let args = Lilypad::constructorCall {
            token_: token,
            initialOwner: OWNER,
            treasury_: TREASURY,
        }
        .abi_encode();
        let lilypad = chain.deploy(OWNER, with_args(code, &args))?;
        Ok(Self {
            chain,
            lilypad,
            token,
            domain: eip712::domain(CHAIN_ID, lilypad),
        })
    }

    /// Sets every protocol parameter (as the owner).
    pub fn set_params(&mut self, params: Lilypad::Params) -> Result<(), TwinError> {
        self.chain
            .call(OWNER, self.lilypad, &Lilypad::setParamsCall { p: params })?;
        Ok(())
    }

    /// The protocol parameters.
    pub fn params(&mut self) -> Result<Lilypad::Params, TwinError> {
        self.chain.view(self.lilypad, &Lilypad::paramsCall {})
    }

    /// Mints `amount` tokens to `to` and lets Lilypad take them from it.
    pub fn fund(&mut self, to: Address, amount: U256) -> Result<(), TwinError> {
        self.chain
            .call(OWNER, self.token, &LilypadToken::mintCall { to, amount })?;
        self.chain.call(
            to,
            self.token,
            &LilypadToken::approveCall {
                spender: self.lilypad,
                value: U256::MAX,
            },
        )?;
        Ok(())
    }

    /// Registers `provider` and deposits `collateral` (funded first).
    pub fn add_provider(&mut self, provider: Address, collateral: U256) -> Result<(), TwinError> {
        self.fund(provider, collateral)?;
        self.chain.call(
            provider,
            self.lilypad,
            &Lilypad::registerProviderCall {
                metadataUrl_: "twin://provider".into(),
            },
        )?;
        self.chain.call(
            provider,
            self.lilypad,
            &Lilypad::depositCollateralCall { amount: collateral },
        )?;
        Ok(())
    }

    /// `client` requests `request`.
    pub fn run_job(
        &mut self,
        client: Address,
        request: Lilypad::JobRequest,
    ) -> Result<Job, TwinError> {
        use alloy::sol_types::SolValue;
        let request_hash = alloy::primitives::keccak256(request.abi_encode());
        let id = self
            .chain
            .call(client, self.lilypad, &Lilypad::runJobCall { request })?;
        Ok(Job { id, request_hash })
    }

    /// `provider` signs a deal at `price` for `job`, and it is agreed (sent by `provider`).
    pub fn agree(
        &mut self,
        job: Job,
        provider: &PrivateKeySigner,
        price: U256,
    ) -> Result<(), TwinError> {
        let on_chain = self.job(job.id)?;
        let bps = U256::from(10_000);
        let deal = eip712::Deal {
            jobId: job.id,
            requestHash: job.request_hash,
            provider: provider.address(),
            price,
            timeoutCollateral: price * U256::from(on_chain.timeoutCollateralBps) / bps,
            resultsCollateral: price * U256::from(on_chain.resultsCollateralBps) / bps,
            expiry: U256::from(self.chain.time() + 3_600),
        };
        let signature = eip712::sign_deal(provider, &self.domain, &deal)
            .map_err(|e| TwinError::Sign(e.to_string()))?;
        let call = Lilypad::agreeDealCall {
            deal: Lilypad::Deal {
                jobId: deal.jobId,
                requestHash: deal.requestHash,
                provider: deal.provider,
                price: deal.price,
                timeoutCollateral: deal.timeoutCollateral,
                resultsCollateral: deal.resultsCollateral,
                expiry: deal.expiry,
            },
            providerSignature: signature.as_bytes().to_vec().into(),
        };
        self.chain.call(provider.address(), self.lilypad, &call)?;
        Ok(())
    }

    /// `provider` signs and submits a Succeeded result for `job`: `cid` and `output`.
    pub fn submit(
        &mut self,
        job: Job,
        provider: &PrivateKeySigner,
        cid: &str,
        output: &[u8],
    ) -> Result<(), TwinError> {
        let message = eip712::result_message(job.id, 1, cid.as_bytes(), output, 0, "");
        let signature = eip712::sign_result(provider, &self.domain, &message)
            .map_err(|e| TwinError::Sign(e.to_string()))?;
        let call = Lilypad::submitResultCall {
            result: Lilypad::ResultData {
                jobId: job.id,
                status: 1,
                resultCid: Bytes::from(cid.as_bytes().to_vec()),
                exitCode: 0,
                error: String::new(),
            },
            inlineOutput: Bytes::from(output.to_vec()),
            providerSignature: signature.as_bytes().to_vec().into(),
        };
        self.chain.call(provider.address(), self.lilypad, &call)?;
        Ok(())
    }

    /// Settles `job` (sent by `from`).
    pub fn settle(&mut self, from: Address, job: Job) -> Result<(), TwinError> {
        self.chain
            .call(from, self.lilypad, &Lilypad::settleCall { jobId: job.id })?;
        Ok(())
    }

    /// Job `id` as stored.
    pub fn job(&mut self, id: U256) -> Result<Lilypad::Job, TwinError> {
        self.chain
            .view(self.lilypad, &Lilypad::getJobCall { jobId: id })
    }

    /// What `account` can withdraw.
    pub fn credited(&mut self, account: Address) -> Result<U256, TwinError> {
        self.chain
            .view(self.lilypad, &Lilypad::balanceOfCall { account })
    }
}

/// Creation code followed by its ABI-encoded constructor arguments.
fn with_args(code: Bytes, args: &[u8]) -> Bytes {
    let mut all = code.to_vec();
    all.extend_from_slice(args);
    all.into()
}
