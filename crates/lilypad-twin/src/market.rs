//! The market as `Deploy.s.sol` deploys it (the two libraries linked into Lilypad, its token),
//! on a twin [`Chain`], and the steps of a job's life as the relayer sends them: a client's
//! `runJob`, a provider's signed deal and result, `settle`.

use alloy::dyn_abi::Eip712Domain;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolConstructor, SolValue};
use lilypad_bindings::{ConsortiumMediation, Lilypad, LilypadToken, eip712};
use lilypad_types::DealTerms;

use crate::TwinError;
use crate::evm::{CHAIN_ID, Chain, link};

const LILYPAD: &str = include_str!("../../lilypad-bindings/artifacts/Lilypad.json");
const TOKEN: &str = include_str!("../../lilypad-bindings/artifacts/LilypadToken.json");
const CHECKS: &str = include_str!("../../lilypad-bindings/artifacts/LilypadChecks.json");
const REGISTRY: &str = include_str!("../../lilypad-bindings/artifacts/LilypadRegistry.json");
const CONSORTIUM: &str = include_str!("../../lilypad-bindings/artifacts/ConsortiumMediation.json");

/// The account that deploys and owns everything (anvil's first address).
pub const OWNER: Address = Address::new([0x0a; 20]);
/// Who is credited the protocol fee.
pub const TREASURY: Address = Address::new([0x0b; 20]);

/// `JobStatus.Challenged`: a case is open.
pub const CHALLENGED: u8 = 4;
/// `JobStatus.Overturned`: mediation found the result wrong.
pub const OVERTURNED: u8 = 8;

/// A job as the twin tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: U256,
    /// Its request's hash (what the provider signs).
    pub request_hash: B256,
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
    /// The consortium mediating challenges and audits, once [`Market::add_mediation`] deployed it.
    pub mediation: Option<Address>,
    domain: Eip712Domain,
}

/// A deterministic cowsay request (pinned to a stand-in module id) with no callback, 2x results
/// collateral and `challenge_window` seconds to challenge: what the twin's clients ask.
pub fn cowsay_request(max_price: U256, challenge_window: u32) -> Lilypad::JobRequest {
    Lilypad::JobRequest {
        module: "cowsay".into(),
        version: "1.0.0".into(),
        moduleId: B256::repeat_byte(1),
        deterministic: true,
        inputs: vec![Lilypad::InputParam {
            key: "message".into(),
            value: "moo".into(),
        }],
        maxPrice: max_price,
        matchTimeout: 600,
        executionTimeout: 600,
        callbackGasLimit: 0,
        maxOutputBytes: 256,
        resultsCollateralMultiplierBps: 20_000,
        challengeWindow: challenge_window,
        extraAuditBps: 0,
        providers: vec![],
        minDelivered: 0,
        minReliabilityBps: 0,
    }
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
        Self::deploy_on(Chain::new())
    }

    /// [`Market::deploy`] on `chain` (one already [`Chain::recording`], so the log holds the
    /// deployment too).
    pub fn deploy_on(mut chain: Chain) -> Result<Self, TwinError> {
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
            mediation: None,
            domain: eip712::domain(CHAIN_ID, lilypad),
        })
    }

    /// Deploys the consortium (`per_case` mediators drawn per case, `threshold` agreeing votes
    /// decide, `stake` locked by each drawn mediator, an hour to commit and one to reveal) and
    /// makes it Lilypad's mediation.
    pub fn add_mediation(
        &mut self,
        per_case: u8,
        threshold: u8,
        stake: u128,
    ) -> Result<Address, TwinError> {
        let args = ConsortiumMediation::constructorCall {
            lilypad_: self.lilypad,
            initialOwner: OWNER,
            mediatorsPerCase_: per_case,
            threshold_: threshold,
            mediatorStake_: stake,
            commitPeriod_: 3_600,
            revealPeriod_: 3_600,
        }
        .abi_encode();
        let consortium = self
            .chain
            .deploy(OWNER, with_args(link(&bytecode(CONSORTIUM)?, &[])?, &args))?;
        self.chain.call(
            OWNER,
            self.lilypad,
            &Lilypad::setMediationCall {
                mediation_: consortium,
            },
        )?;
        self.mediation = Some(consortium);
        Ok(consortium)
    }

    fn consortium(&self) -> Result<Address, TwinError> {
        self.mediation.ok_or_else(|| {
            TwinError::Deploy("no mediation deployed (Market::add_mediation)".into())
        })
    }

    /// Registers `mediator` with the consortium and deposits `stake` (funded first).
    pub fn add_mediator(&mut self, mediator: Address, stake: U256) -> Result<(), TwinError> {
        let consortium = self.consortium()?;
        self.chain.call(
            mediator,
            consortium,
            &ConsortiumMediation::registerMediatorCall {
                metadataUrl_: "twin://mediator".into(),
            },
        )?;
        self.add_stake(mediator, stake)
    }

    /// Decides `job`'s audit draw (sent by `auditor`) once its seed block exists; true when it
    /// was drawn and its case opened.
    pub fn audit(&mut self, auditor: Address, job: Job) -> Result<bool, TwinError> {
        // the draw's seed block is AUDIT_SEED_DELAY (2) blocks after the result's
        for _ in 0..3 {
            self.chain.mine(12);
        }
        self.chain
            .call(auditor, self.lilypad, &Lilypad::auditCall { jobId: job.id })
    }

    /// Draws `job`'s mediators and has each vote the commitment `vote(mediator)` returns: all
    /// commit, then all reveal. The case resolves on the last reveal. Returns the drawn
    /// mediators, each with the gas its commit and reveal used.
    pub fn mediate(
        &mut self,
        job: Job,
        mut vote: impl FnMut(Address) -> B256,
    ) -> Result<Vec<(Address, u64)>, TwinError> {
        let consortium = self.consortium()?;
        let case = self.chain.view(
            consortium,
            &ConsortiumMediation::caseOfCall { jobId: job.id },
        )?;
        while self.chain.block() <= case.seedBlock {
            self.chain.mine(12);
        }
        self.chain.call(
            OWNER,
            consortium,
            &ConsortiumMediation::drawCall { jobId: job.id },
        )?;
        let drawn = self.chain.view(
            consortium,
            &ConsortiumMediation::mediatorsOfCall { jobId: job.id },
        )?;
        let votes: Vec<(Address, B256, B256)> = drawn
            .iter()
            .map(|m| (*m, vote(*m), keccak256(m.as_slice())))
            .collect();
        let mut gas = Vec::with_capacity(votes.len());
        for (m, result_hash, salt) in &votes {
            let commitment = keccak256((*result_hash, *salt, *m).abi_encode());
            self.chain.call(
                *m,
                consortium,
                &ConsortiumMediation::commitCall {
                    jobId: job.id,
                    commitment,
                },
            )?;
            gas.push((*m, self.chain.last_gas));
        }
        for ((m, result_hash, salt), (_, used)) in votes.iter().zip(&mut gas) {
            if self.job(job.id)?.status != CHALLENGED {
                break; // resolved by the votes revealed so far
            }
            self.chain.call(
                *m,
                consortium,
                &ConsortiumMediation::revealCall {
                    jobId: job.id,
                    resultHash: *result_hash,
                    salt: *salt,
                },
            )?;
            *used += self.chain.last_gas;
        }
        Ok(gas)
    }

    /// Adds `amount` to `mediator`'s stake in the consortium (minted for it first).
    pub fn add_stake(&mut self, mediator: Address, amount: U256) -> Result<(), TwinError> {
        let consortium = self.consortium()?;
        self.mint_for(mediator, amount, consortium)?;
        self.chain.call(
            mediator,
            consortium,
            &ConsortiumMediation::depositStakeCall { amount },
        )?;
        Ok(())
    }

    /// `mediator`'s free stake in the consortium.
    pub fn free_stake(&mut self, mediator: Address) -> Result<U256, TwinError> {
        let consortium = self.consortium()?;
        Ok(self
            .chain
            .view(consortium, &ConsortiumMediation::stakeOfCall { mediator })?
            .free)
    }

    /// Adds `amount` to `provider`'s collateral (minted for it first).
    pub fn add_collateral(&mut self, provider: Address, amount: U256) -> Result<(), TwinError> {
        self.fund(provider, amount)?;
        self.chain.call(
            provider,
            self.lilypad,
            &Lilypad::depositCollateralCall { amount },
        )?;
        Ok(())
    }

    /// `provider`'s free collateral.
    pub fn free_collateral(&mut self, provider: Address) -> Result<U256, TwinError> {
        Ok(self
            .chain
            .view(
                self.lilypad,
                &Lilypad::collateralOfCall { account: provider },
            )?
            .free)
    }

    /// `account`'s tokens (not what Lilypad credits it).
    pub fn tokens(&mut self, account: Address) -> Result<U256, TwinError> {
        self.chain
            .view(self.token, &LilypadToken::balanceOfCall { account })
    }

    /// `provider`'s on-chain record.
    pub fn reputation(&mut self, provider: Address) -> Result<Lilypad::Reputation, TwinError> {
        self.chain
            .view(self.lilypad, &Lilypad::reputationOfCall { provider })
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
        self.mint_for(to, amount, self.lilypad)
    }

    /// Mints `amount` tokens to `to` and lets `spender` take them from it.
    fn mint_for(&mut self, to: Address, amount: U256, spender: Address) -> Result<(), TwinError> {
        self.chain
            .call(OWNER, self.token, &LilypadToken::mintCall { to, amount })?;
        self.chain.call(
            to,
            self.token,
            &LilypadToken::approveCall {
                spender,
                value: U256::MAX,
            },
        )?;
        Ok(())
    }

    /// Registers `provider` and deposits `collateral` (funded first).
    pub fn add_provider(&mut self, provider: Address, collateral: U256) -> Result<(), TwinError> {
        self.chain.call(
            provider,
            self.lilypad,
            &Lilypad::registerProviderCall {
                metadataUrl_: "twin://provider".into(),
            },
        )?;
        self.add_collateral(provider, collateral)
    }

    /// `client` requests `request`.
    pub fn run_job(
        &mut self,
        client: Address,
        request: Lilypad::JobRequest,
    ) -> Result<Job, TwinError> {
        let request_hash = keccak256(request.abi_encode());
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
        let terms = DealTerms {
            job_id: job.id,
            request_hash: job.request_hash,
            provider: provider.address(),
            price,
            timeout_collateral: price * U256::from(on_chain.timeoutCollateralBps) / bps,
            results_collateral: price * U256::from(on_chain.resultsCollateralBps) / bps,
            expiry: U256::from(self.chain.time() + 3_600),
        };
        let signature = eip712::sign_deal(provider, &self.domain, &(&terms).into())
            .map_err(|e| TwinError::Sign(e.to_string()))?;
        let call = Lilypad::agreeDealCall {
            deal: (&terms).into(),
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

    /// `client` challenges `job`'s result (paying the mediation fee): the case goes to the
    /// consortium, [`Market::mediate`] decides it.
    pub fn challenge(&mut self, client: Address, job: Job) -> Result<(), TwinError> {
        self.chain.call(
            client,
            self.lilypad,
            &Lilypad::challengeCall { jobId: job.id },
        )?;
        Ok(())
    }

    /// Everything `account` holds in the market: its tokens, what Lilypad credits it, its
    /// collateral (free and locked) and, with a consortium, its stake (free and locked) and what
    /// the consortium credits it. Profits are differences of this.
    pub fn wealth(&mut self, account: Address) -> Result<U256, TwinError> {
        let tokens = self.tokens(account)?;
        let credited = self.credited(account)?;
        let collateral = self
            .chain
            .view(self.lilypad, &Lilypad::collateralOfCall { account })?;
        let mut all = tokens + credited + collateral.free + collateral.locked;
        if let Some(consortium) = self.mediation {
            let stake = self.chain.view(
                consortium,
                &ConsortiumMediation::stakeOfCall { mediator: account },
            )?;
            let owed = self
                .chain
                .view(consortium, &ConsortiumMediation::balanceOfCall { account })?;
            all += stake.free + stake.locked + owed;
        }
        Ok(all)
    }

    /// Settles `job` (sent by `from`).
    pub fn settle(&mut self, from: Address, job: Job) -> Result<(), TwinError> {
        self.chain
            .call(from, self.lilypad, &Lilypad::settleCall { jobId: job.id })?;
        Ok(())
    }

    /// `account` withdraws everything Lilypad credits it (pull payments); the amount.
    pub fn withdraw(&mut self, account: Address) -> Result<U256, TwinError> {
        self.chain
            .call(account, self.lilypad, &Lilypad::withdrawCall {})
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
