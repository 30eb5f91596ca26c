//! Which providers may take a job, best first, and why each other one may not.
//!
//! A provider may take a job when its offer, less what this solver has already proposed to it and
//! the provider has not yet reported as taken ([`Bookings`]):
//! - serves the job's chain and Lilypad contract,
//! - runs the job's module (name and version, or for a Lilypad module from git: a prefix of its
//!   repository's URL),
//! - has the CPU, memory and GPUs (count, each with enough memory) the module needs free,
//! - asks at most the job's max price,
//! - has free collateral on that chain for the larger of the timeout collateral the deal locks and
//!   the results collateral the result will lock in its place,
//! - is one of the providers the request names, if it names any, and has the least record it asks
//!   (as `agreeDeal` checks them: a deal with another would be refused on-chain).
//!
//! Candidates are ordered by their price weighted by their on-chain record
//! ([`ProviderRecord::weight_bps`]: a provider whose jobs time out, fail on its side or are
//! overturned costs more than its price says), then oldest offer (`since`), then by address, so
//! the order is total and the same on every solver that reads the same records.

use std::collections::BTreeMap;
use std::fmt;

use alloy_primitives::{Address, U256};
use lilypad_types::{Capacity, GitModulesPrice, JobRequested, MinRecord, ModuleId, Offer};

const BPS: u64 = 10_000;

/// What a job needs, from its request and its module's definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobNeeds {
    /// The chain the job is on.
    pub chain_id: u64,
    /// The Lilypad contract there.
    pub lilypad: Address,
    /// The module.
    pub module: ModuleId,
    /// CPU in thousandths of a core.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Number of GPUs.
    pub gpus: u32,
    /// Memory each GPU needs, in bytes.
    pub vram_bytes: u64,
    /// The most the client pays.
    pub max_price: U256,
    /// Timeout collateral as basis points of the price (fixed on-chain when the job was requested).
    pub timeout_collateral_bps: u32,
    /// Results collateral as basis points of the price (the client's choice).
    pub results_collateral_bps: u32,
    /// The providers the request accepts; empty: any.
    pub providers: Vec<Address>,
    /// The least record the request asks of its provider.
    pub min_record: MinRecord,
}

impl JobNeeds {
    /// Needs of `job`, given its module's resources and the chain's timeout collateral rate.
    pub fn of(
        job: &JobRequested,
        cpu_millis: u64,
        memory_bytes: u64,
        gpus: u32,
        vram_bytes: u64,
        timeout_collateral_bps: u32,
    ) -> Self {
        Self {
            chain_id: job.key.chain_id,
            lilypad: job.lilypad,
            module: ModuleId {
                name: job.spec.module.clone(),
                version: job.spec.version.clone(),
            },
            cpu_millis,
            memory_bytes,
            gpus,
            vram_bytes,
            max_price: job.spec.max_price,
            timeout_collateral_bps,
            results_collateral_bps: job.spec.results_collateral_multiplier_bps,
            providers: job.spec.providers.clone(),
            min_record: job.spec.min_record,
        }
    }

    /// Whether the request lets `provider`, whose record on the job's chain is `record` (none
    /// read yet), take the job.
    pub fn admits(
        &self,
        provider: Address,
        record: Option<ProviderRecord>,
    ) -> Result<(), Rejection> {
        if !self.providers.is_empty() && !self.providers.contains(&provider) {
            return Err(Rejection::NotNamed);
        }
        if self.min_record.is_empty() {
            return Ok(());
        }
        let r = record.ok_or(Rejection::RecordUnknown)?;
        self.min_record
            .check(r.results, r.provider_errors, r.timed_out, r.overturned)
            .map_err(|(delivered, reliability_bps)| Rejection::Record {
                delivered,
                reliability_bps,
                asked: self.min_record,
            })
    }

    /// The collateral a deal at `price` locks until the result, as the contract computes it.
    pub fn timeout_collateral(&self, price: U256) -> U256 {
        price * U256::from(self.timeout_collateral_bps) / U256::from(BPS)
    }

    /// The collateral a deal at `price` locks during the challenge window.
    pub fn results_collateral(&self, price: U256) -> U256 {
        price * U256::from(self.results_collateral_bps) / U256::from(BPS)
    }
}

/// What the solver weighs of a provider's on-chain record (`Lilypad.reputationOf` on the job's
/// chain): the outcomes that are the provider's fault, against all it took on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderRecord {
    /// Results submitted (succeeded, failed and provider errors).
    pub results: u64,
    /// Results it submitted as ProviderError (it could not run the job).
    pub provider_errors: u64,
    /// Deals it did not deliver in time.
    pub timed_out: u64,
    /// Results mediation overturned (proven wrong).
    pub overturned: u64,
}

impl ProviderRecord {
    /// Weight of an overturned result against a timeout or provider error: a proven lie.
    pub const OVERTURNED_WEIGHT: u64 = 5;

    /// The factor its price is weighed by, in basis points: `10000 + 20000 * bad / (taken + 1)`
    /// with `bad = provider_errors + timed_out + 5 * overturned` and `taken = results +
    /// timed_out`. A provider without a record, or with a clean one, weighs its price alone; one
    /// timeout in ten jobs weighs it 1.18x; one overturned result out of one, 6x.
    pub fn weight_bps(&self) -> u64 {
        let bad = self
            .provider_errors
            .saturating_add(self.timed_out)
            .saturating_add(self.overturned.saturating_mul(Self::OVERTURNED_WEIGHT));
        let taken = self.results.saturating_add(self.timed_out);
        BPS.saturating_add(bad.saturating_mul(2 * BPS) / taken.saturating_add(1))
    }
}

/// A provider that may take the job, with the terms it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The provider.
    pub provider: Address,
    /// Where it answers proposals.
    pub deal_subject: String,
    /// Its price for the module.
    pub price: U256,
    /// Collateral the deal locks until the result.
    pub timeout_collateral: U256,
    /// Collateral the deal locks during the challenge window.
    pub results_collateral: U256,
}

/// Why a provider may not take a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// It does not serve the job's chain (or serves another Lilypad contract there).
    OtherChain,
    /// It does not run the module.
    NoModule,
    /// Its price is above the job's max price.
    TooExpensive {
        /// Its price.
        price: U256,
        /// The job's max price.
        max_price: U256,
    },
    /// Not enough CPU free.
    Cpu {
        /// Needed, in thousandths of a core.
        needed: u64,
        /// Free.
        free: u64,
    },
    /// Not enough memory free.
    Memory {
        /// Needed, in bytes.
        needed: u64,
        /// Free.
        free: u64,
    },
    /// Not enough GPUs with enough memory free.
    Gpus {
        /// GPUs needed.
        needed: u32,
        /// Memory each needs, in bytes.
        vram_bytes: u64,
        /// Free GPUs with that much memory.
        free: u32,
    },
    /// The request names the providers it accepts, and not this one.
    NotNamed,
    /// The request asks a least record and this provider's has not been read yet.
    RecordUnknown,
    /// Its record is below the least the request asks.
    Record {
        /// Results it delivered (Succeeded or JobFailed).
        delivered: u64,
        /// Basis points of its deals that ended without its fault.
        reliability_bps: u64,
        /// What the request asks.
        asked: MinRecord,
    },
    /// Not enough free collateral on the chain for the deal's collateral.
    Collateral {
        /// The deal's timeout collateral.
        needed: U256,
        /// Free collateral.
        free: U256,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherChain => write!(f, "does not serve this chain's Lilypad contract"),
            Self::NoModule => write!(f, "does not run the module"),
            Self::TooExpensive { price, max_price } => {
                write!(f, "asks {price}, above the job's max price {max_price}")
            }
            Self::Cpu { needed, free } => write!(f, "needs {needed} CPU millis, {free} free"),
            Self::Memory { needed, free } => {
                write!(f, "needs {needed} bytes of memory, {free} free")
            }
            Self::Gpus {
                needed,
                vram_bytes,
                free,
            } => write!(
                f,
                "needs {needed} GPUs with {vram_bytes} bytes of memory each, {free} such GPUs free"
            ),
            Self::NotNamed => write!(f, "is not one of the providers the request names"),
            Self::RecordUnknown => write!(
                f,
                "has no record read yet, and the request asks for a least record"
            ),
            Self::Record {
                delivered,
                reliability_bps,
                asked,
            } => write!(
                f,
                "delivered {delivered} results with {reliability_bps} bps of its deals without a fault; the request asks {} and {} bps",
                asked.min_delivered, asked.min_reliability_bps
            ),
            Self::Collateral { needed, free } => {
                write!(
                    f,
                    "needs {needed} free collateral (the larger of timeout and results collateral), has {free}"
                )
            }
        }
    }
}

/// What this solver has proposed to providers and they have not yet reported as taken: held
/// against their offers so one offer is never booked twice.
#[derive(Debug, Clone, Default)]
pub struct Bookings {
    by_provider: BTreeMap<Address, Vec<Booking>>,
}

#[derive(Debug, Clone)]
struct Booking {
    /// Unix time in milliseconds the proposal was made.
    at_ms: u64,
    cpu_millis: u64,
    memory_bytes: u64,
    gpus: u32,
    vram_bytes: u64,
    collateral: U256,
}

impl Bookings {
    /// Records that `candidate` was proposed `needs` at unix time `at_ms` (milliseconds).
    pub fn book(&mut self, candidate: &Candidate, needs: &JobNeeds, at_ms: u64) {
        self.by_provider
            .entry(candidate.provider)
            .or_default()
            .push(Booking {
                at_ms,
                cpu_millis: needs.cpu_millis,
                memory_bytes: needs.memory_bytes,
                gpus: needs.gpus,
                vram_bytes: needs.vram_bytes,
                collateral: candidate
                    .timeout_collateral
                    .max(candidate.results_collateral),
            });
    }

    /// Forgets the booking of `provider` made at `at_ms` (the proposal was refused or went
    /// unanswered).
    pub fn release(&mut self, provider: Address, at_ms: u64) {
        if let Some(list) = self.by_provider.get_mut(&provider)
            && let Some(i) = list.iter().position(|b| b.at_ms == at_ms)
        {
            list.remove(i);
        }
    }

    /// The offer as it stands once this solver's bookings newer than it are taken off: a booking
    /// made before the provider's last refresh is already in the offer's figures. The refresh's
    /// time is `updated_ms` when the provider sends it, else `updated` (whole seconds: a booking
    /// in the refresh's second then counts against it until the next refresh).
    pub fn apply(&self, offer: &Offer, chain_id: u64) -> (Capacity, U256) {
        let refreshed_ms = if offer.updated_ms > 0 {
            offer.updated_ms
        } else {
            offer.updated.saturating_mul(1000)
        };
        let mut free = offer.free.clone();
        let mut collateral = offer
            .chains
            .iter()
            .find(|c| c.chain_id == chain_id)
            .map_or(U256::ZERO, |c| c.free_collateral);
        for b in self.by_provider.get(&offer.provider).into_iter().flatten() {
            if b.at_ms < refreshed_ms {
                continue;
            }
            free.cpu_millis = free.cpu_millis.saturating_sub(b.cpu_millis);
            free.memory_bytes = free.memory_bytes.saturating_sub(b.memory_bytes);
            for _ in 0..b.gpus {
                // Take the smallest GPU that fits, as the provider's pool would.
                let fit = free
                    .gpu_vram_bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v >= b.vram_bytes)
                    .min_by_key(|(_, v)| **v)
                    .map(|(i, _)| i);
                if let Some(i) = fit {
                    free.gpu_vram_bytes.remove(i);
                }
            }
            collateral = collateral.saturating_sub(b.collateral);
        }
        (free, collateral)
    }

    /// Drops bookings made before `before_ms` (their providers have long reported them).
    pub fn expire(&mut self, before_ms: u64) {
        for list in self.by_provider.values_mut() {
            list.retain(|b| b.at_ms >= before_ms);
        }
        self.by_provider.retain(|_, l| !l.is_empty());
    }
}

/// Checks one offer against a job.
pub fn check(needs: &JobNeeds, offer: &Offer, bookings: &Bookings) -> Result<Candidate, Rejection> {
    if !offer
        .chains
        .iter()
        .any(|c| c.chain_id == needs.chain_id && c.lilypad == needs.lilypad)
    {
        return Err(Rejection::OtherChain);
    }
    let price = offer
        .modules
        .iter()
        .find(|m| m.module == needs.module)
        .map(|m| m.price)
        .or_else(|| GitModulesPrice::price_of(&offer.git_modules, &needs.module.name))
        .ok_or(Rejection::NoModule)?;
    if price > needs.max_price {
        return Err(Rejection::TooExpensive {
            price,
            max_price: needs.max_price,
        });
    }
    let (free, collateral) = bookings.apply(offer, needs.chain_id);
    if free.cpu_millis < needs.cpu_millis {
        return Err(Rejection::Cpu {
            needed: needs.cpu_millis,
            free: free.cpu_millis,
        });
    }
    if free.memory_bytes < needs.memory_bytes {
        return Err(Rejection::Memory {
            needed: needs.memory_bytes,
            free: free.memory_bytes,
        });
    }
    let fitting = free
        .gpu_vram_bytes
        .iter()
        .filter(|v| **v >= needs.vram_bytes)
        .count();
    let fitting = u32::try_from(fitting).unwrap_or(u32::MAX);
    if fitting < needs.gpus {
        return Err(Rejection::Gpus {
            needed: needs.gpus,
            vram_bytes: needs.vram_bytes,
            free: fitting,
        });
    }
    let timeout_collateral = needs.timeout_collateral(price);
    let results_collateral = needs.results_collateral(price);
    let needed = timeout_collateral.max(results_collateral);
    if collateral < needed {
        return Err(Rejection::Collateral {
            needed,
            free: collateral,
        });
    }
    Ok(Candidate {
        provider: offer.provider,
        deal_subject: offer.deal_subject.clone(),
        price,
        timeout_collateral,
        results_collateral,
    })
}

/// Every provider that may take the job, best first, and every other one with its reason.
/// `record` gives each provider's record on the job's chain (none known: weighed as clean).
pub fn rank(
    needs: &JobNeeds,
    offers: &[Offer],
    bookings: &Bookings,
    record: impl Fn(Address) -> Option<ProviderRecord>,
) -> (Vec<Candidate>, Vec<(Address, Rejection)>) {
    let mut ok: Vec<(U256, u64, Candidate)> = Vec::new();
    let mut rejected = Vec::new();
    for offer in offers {
        let known = record(offer.provider);
        match needs
            .admits(offer.provider, known)
            .and_then(|()| check(needs, offer, bookings))
        {
            Ok(c) => {
                let weight = known.unwrap_or_default().weight_bps();
                ok.push((c.price.saturating_mul(U256::from(weight)), offer.since, c));
            }
            Err(r) => rejected.push((offer.provider, r)),
        }
    }
    ok.sort_by(|(weighed_a, since_a, a), (weighed_b, since_b, b)| {
        weighed_a
            .cmp(weighed_b)
            .then(since_a.cmp(since_b))
            .then(a.provider.cmp(&b.provider))
    });
    (ok.into_iter().map(|(_, _, c)| c).collect(), rejected)
}

/// One line for the log when no provider may take a job: each provider and why not.
pub fn explain(rejected: &[(Address, Rejection)]) -> String {
    if rejected.is_empty() {
        return "no provider is offering".into();
    }
    rejected
        .iter()
        .map(|(p, r)| format!("{p} {r}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use lilypad_types::{ChainCollateral, ModulePrice};

    use super::*;

    const CHAIN: u64 = 31337;
    const GIB: u64 = 1 << 30;

    fn lilypad() -> Address {
        Address::repeat_byte(0xaa)
    }

    fn needs() -> JobNeeds {
        JobNeeds {
            chain_id: CHAIN,
            lilypad: lilypad(),
            module: ModuleId {
                name: "cowsay".into(),
                version: "1.0.0".into(),
            },
            cpu_millis: 1000,
            memory_bytes: GIB,
            gpus: 0,
            vram_bytes: 0,
            max_price: U256::from(100),
            timeout_collateral_bps: 10_000,
            results_collateral_bps: 20_000,
            providers: vec![],
            min_record: MinRecord::default(),
        }
    }

    fn offer(byte: u8, price: u64, since: u64) -> Offer {
        Offer {
            provider: Address::repeat_byte(byte),
            deal_subject: format!("lilypad.provider.{byte}.deal"),
            since,
            updated: 100,
            updated_ms: 0,
            free: Capacity {
                cpu_millis: 4000,
                memory_bytes: 8 * GIB,
                gpu_vram_bytes: vec![],
            },
            modules: vec![ModulePrice {
                module: ModuleId {
                    name: "cowsay".into(),
                    version: "1.0.0".into(),
                },
                price: U256::from(price),
            }],
            git_modules: vec![],
            chains: vec![ChainCollateral {
                chain_id: CHAIN,
                lilypad: lilypad(),
                free_collateral: U256::from(1000),
            }],
        }
    }

    #[test]
    fn a_lilypad_module_from_git_matches_an_offer_of_a_prefix_of_its_repository() {
        let mut n = needs();
        n.module = ModuleId {
            name: "https://github.com/Lilypad-Tech/lilypad-module-cowsay".into(),
            version: "0123456789abcdef0123456789abcdef01234567".into(),
        };
        let b = Bookings::default();
        let mut o = offer(1, 10, 0);
        assert_eq!(
            check(&n, &o, &b),
            Err(Rejection::NoModule),
            "no git modules offered"
        );
        o.git_modules = vec![
            GitModulesPrice {
                prefix: "https://github.com/someone-else/".into(),
                price: U256::from(1),
            },
            GitModulesPrice {
                prefix: "https://github.com/Lilypad-Tech/".into(),
                price: U256::from(30),
            },
        ];
        assert_eq!(check(&n, &o, &b).map(|c| c.price), Ok(U256::from(30)));
        n.module.name = "cowsay".into();
        n.module.version = "9.9.9".into();
        assert_eq!(
            check(&n, &o, &b),
            Err(Rejection::NoModule),
            "a prefix offers git modules only, not this project's own names"
        );
    }

    #[test]
    fn cheapest_first_then_oldest_then_address() {
        let offers = [
            offer(1, 50, 10),
            offer(2, 40, 30),
            offer(3, 40, 20),
            offer(4, 40, 20),
        ];
        let (ok, rejected) = rank(&needs(), &offers, &Bookings::default(), |_| None);
        assert!(rejected.is_empty());
        let order: Vec<Address> = ok.iter().map(|c| c.provider).collect();
        assert_eq!(
            order,
            [3u8, 4, 2, 1].map(Address::repeat_byte),
            "price 40 before 50; among 40s the oldest; a tie on both goes by address"
        );
        assert_eq!(ok[0].price, U256::from(40));
        assert_eq!(ok[0].timeout_collateral, U256::from(40), "1x the price");
        assert_eq!(ok[0].results_collateral, U256::from(80), "the client's 2x");
    }

    #[test]
    fn at_equal_price_the_better_record_goes_first_and_a_bad_one_costs_more_than_its_price() {
        // 2 is the older offer, but it let one of its ten jobs time out.
        let offers = [offer(1, 40, 20), offer(2, 40, 10), offer(3, 45, 30)];
        let records = |p: Address| {
            (p == Address::repeat_byte(2)).then_some(ProviderRecord {
                results: 9,
                timed_out: 1,
                ..ProviderRecord::default()
            })
        };
        let (ok, _) = rank(&needs(), &offers, &Bookings::default(), records);
        let order: Vec<Address> = ok.iter().map(|c| c.provider).collect();
        assert_eq!(
            order,
            [1u8, 3, 2].map(Address::repeat_byte),
            "40 x 1.18 weighs more than 45 x 1"
        );
        assert_eq!(
            ok[2].price,
            U256::from(40),
            "it is still offered its own price"
        );
    }

    #[test]
    fn a_request_naming_providers_is_offered_to_those_only_even_when_another_is_cheaper() {
        let offers = [offer(1, 10, 0), offer(2, 40, 0), offer(3, 30, 0)];
        let mut n = needs();
        n.providers = vec![Address::repeat_byte(2), Address::repeat_byte(3)];
        let (ok, rejected) = rank(&n, &offers, &Bookings::default(), |_| None);
        let order: Vec<Address> = ok.iter().map(|c| c.provider).collect();
        assert_eq!(order, [3u8, 2].map(Address::repeat_byte));
        assert_eq!(
            rejected,
            vec![(Address::repeat_byte(1), Rejection::NotNamed)]
        );
    }

    #[test]
    fn a_request_asking_a_least_record_passes_over_providers_below_it_or_not_read_yet() {
        let offers = [offer(1, 10, 0), offer(2, 40, 0), offer(3, 30, 0)];
        let mut n = needs();
        n.min_record = MinRecord {
            min_delivered: 5,
            min_reliability_bps: 9_000,
        };
        let records = |p: Address| match p.0[0] {
            // five delivered, one timed out in six deals: 83% reliable
            1 => Some(ProviderRecord {
                results: 5,
                timed_out: 1,
                ..ProviderRecord::default()
            }),
            2 => Some(ProviderRecord {
                results: 20,
                ..ProviderRecord::default()
            }),
            _ => None,
        };
        let (ok, rejected) = rank(&n, &offers, &Bookings::default(), records);
        assert_eq!(
            ok.iter().map(|c| c.provider).collect::<Vec<_>>(),
            vec![Address::repeat_byte(2)]
        );
        assert_eq!(
            rejected,
            vec![
                (
                    Address::repeat_byte(1),
                    Rejection::Record {
                        delivered: 5,
                        reliability_bps: 8_333,
                        asked: n.min_record
                    }
                ),
                (Address::repeat_byte(3), Rejection::RecordUnknown)
            ]
        );
    }

    #[test]
    fn a_record_weighs_its_faults_against_what_it_took_on() {
        assert_eq!(
            ProviderRecord::default().weight_bps(),
            10_000,
            "no record: the price alone"
        );
        let clean = ProviderRecord {
            results: 100,
            ..ProviderRecord::default()
        };
        assert_eq!(clean.weight_bps(), 10_000);
        let one_timeout_in_ten = ProviderRecord {
            results: 9,
            timed_out: 1,
            ..ProviderRecord::default()
        };
        assert_eq!(one_timeout_in_ten.weight_bps(), 11_818);
        let caught_lying = ProviderRecord {
            results: 1,
            overturned: 1,
            ..ProviderRecord::default()
        };
        assert_eq!(caught_lying.weight_bps(), 60_000);
    }

    #[test]
    fn each_reason_to_refuse_is_named() {
        let n = needs();
        let b = Bookings::default();
        let mut o = offer(1, 10, 0);
        o.chains[0].lilypad = Address::repeat_byte(0xbb);
        assert_eq!(check(&n, &o, &b), Err(Rejection::OtherChain));

        let mut o = offer(1, 10, 0);
        o.modules[0].module.version = "2.0.0".into();
        assert_eq!(check(&n, &o, &b), Err(Rejection::NoModule));

        let o = offer(1, 101, 0);
        assert_eq!(
            check(&n, &o, &b),
            Err(Rejection::TooExpensive {
                price: U256::from(101),
                max_price: U256::from(100)
            })
        );

        let mut o = offer(1, 10, 0);
        o.free.cpu_millis = 999;
        assert_eq!(
            check(&n, &o, &b),
            Err(Rejection::Cpu {
                needed: 1000,
                free: 999
            })
        );

        let mut o = offer(1, 10, 0);
        o.free.memory_bytes = GIB - 1;
        assert!(matches!(check(&n, &o, &b), Err(Rejection::Memory { .. })));

        // Price 10: timeout collateral 10 (1x); results collateral 20 (the client's 2x) takes
        // its place when the result comes, so 20 must be free.
        let mut o = offer(1, 10, 0);
        o.chains[0].free_collateral = U256::from(19);
        let err = check(&n, &o, &b).unwrap_err();
        assert_eq!(
            err,
            Rejection::Collateral {
                needed: U256::from(20),
                free: U256::from(19)
            }
        );
        assert_eq!(
            err.to_string(),
            "needs 20 free collateral (the larger of timeout and results collateral), has 19"
        );
    }

    #[test]
    fn gpus_must_be_enough_and_each_big_enough() {
        let mut n = needs();
        n.gpus = 2;
        n.vram_bytes = 16 * GIB;
        let mut o = offer(1, 10, 0);
        o.free.gpu_vram_bytes = vec![24 * GIB, 8 * GIB];
        let err = check(&n, &o, &Bookings::default()).unwrap_err();
        assert_eq!(
            err,
            Rejection::Gpus {
                needed: 2,
                vram_bytes: 16 * GIB,
                free: 1
            }
        );
        o.free.gpu_vram_bytes = vec![24 * GIB, 8 * GIB, 16 * GIB];
        assert!(check(&n, &o, &Bookings::default()).is_ok());
    }

    #[test]
    fn an_offer_is_never_booked_twice_before_the_provider_reports() {
        let mut n = needs();
        n.cpu_millis = 3000; // the offer has 4000 free: room for one such job
        let o = offer(1, 10, 0);
        let mut bookings = Bookings::default();
        let first = check(&n, &o, &bookings).unwrap();
        bookings.book(&first, &n, 100_000);
        assert_eq!(
            check(&n, &o, &bookings),
            Err(Rejection::Cpu {
                needed: 3000,
                free: 1000
            }),
            "the same offer, seen again before the provider refreshed it, is booked already"
        );
        // The provider refreshes its offer after taking the job: its own figures now count it,
        // and the booking is not subtracted a second time.
        let mut refreshed = o.clone();
        refreshed.updated = 101;
        refreshed.free.cpu_millis = 1000;
        assert!(matches!(
            check(&n, &refreshed, &bookings),
            Err(Rejection::Cpu { free: 1000, .. })
        ));
        refreshed.free.cpu_millis = 4000; // the job finished
        assert!(check(&n, &refreshed, &bookings).is_ok());
        // A refused proposal gives the capacity back at once.
        bookings.release(o.provider, 100_000);
        assert!(check(&n, &o, &bookings).is_ok());
    }

    #[test]
    fn a_refresh_in_the_same_second_as_a_booking_is_told_apart_by_milliseconds() {
        let mut n = needs();
        n.cpu_millis = 3000; // room for one such job in the offer's 4000
        let o = offer(1, 10, 0); // refreshed at 100 s
        let mut bookings = Bookings::default();
        let c = check(&n, &o, &bookings).unwrap();
        bookings.book(&c, &n, 100_200); // proposed at 100.2 s
        // The provider took the job, ran it and refreshed again at 100.9 s: free again.
        let mut refreshed = o.clone();
        refreshed.updated_ms = 100_900;
        assert!(
            check(&n, &refreshed, &bookings).is_ok(),
            "the refresh counts the booking; it is not taken off a second time"
        );
        // A refresh stamped before the proposal does not count it.
        refreshed.updated_ms = 100_100;
        assert!(matches!(
            check(&n, &refreshed, &bookings),
            Err(Rejection::Cpu { free: 1000, .. })
        ));
    }

    #[test]
    fn bookings_also_hold_collateral_and_gpus() {
        let mut n = needs();
        n.gpus = 1;
        n.vram_bytes = 8 * GIB;
        let mut o = offer(1, 600, 0); // timeout collateral 600 of 1000 free
        o.free.gpu_vram_bytes = vec![8 * GIB, 8 * GIB];
        n.max_price = U256::from(1000);
        n.results_collateral_bps = 0; // no results collateral: the timeout collateral decides
        let mut bookings = Bookings::default();
        let c = check(&n, &o, &bookings).unwrap();
        bookings.book(&c, &n, 100_000);
        assert_eq!(
            check(&n, &o, &bookings),
            Err(Rejection::Collateral {
                needed: U256::from(600),
                free: U256::from(400)
            })
        );
        let (free, _) = bookings.apply(&o, CHAIN);
        assert_eq!(free.gpu_vram_bytes, vec![8 * GIB], "one GPU is booked");
        bookings.expire(100_001);
        assert!(
            check(&n, &o, &bookings).is_ok(),
            "expired bookings are forgotten"
        );
    }

    #[test]
    fn a_job_no_one_can_take_is_explained() {
        let mut expensive = offer(1, 500, 0);
        expensive.modules[0].price = U256::from(500);
        let (ok, rejected) = rank(&needs(), &[expensive], &Bookings::default(), |_| None);
        assert!(ok.is_empty());
        let line = explain(&rejected);
        assert!(
            line.contains("asks 500, above the job's max price 100"),
            "{line}"
        );
        assert_eq!(explain(&[]), "no provider is offering");
    }
}
