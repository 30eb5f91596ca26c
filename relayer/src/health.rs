//! What `/health` reports: per chain, when the indexer and submitter last succeeded and the last
//! error, so an operator (or a load balancer) sees a chain that stopped making progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One chain's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainHealth {
    /// Unix time of the last successful indexer pass.
    pub indexed_at: Option<u64>,
    /// Unix time of the last successful submitter round.
    pub submitted_at: Option<u64>,
    /// The last error, if the latest attempt failed.
    pub last_error: Option<String>,
}

/// Shared health of every chain a relayer serves.
#[derive(Debug, Clone, Default)]
pub struct Health {
    chains: Arc<Mutex<BTreeMap<String, ChainHealth>>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Health {
    fn update(&self, chain: &str, f: impl FnOnce(&mut ChainHealth)) {
        let mut map = self.chains.lock().unwrap_or_else(PoisonError::into_inner);
        f(map.entry(chain.to_owned()).or_default());
    }

    /// Records a chain the relayer serves, before anything happened on it.
    pub fn register(&self, chain: &str) {
        self.update(chain, |_| {});
    }

    /// The indexer finished a pass.
    pub fn indexed(&self, chain: &str) {
        self.update(chain, |h| {
            h.indexed_at = Some(now());
            h.last_error = None;
        });
    }

    /// The submitter finished a round.
    pub fn submitted(&self, chain: &str) {
        self.update(chain, |h| {
            h.submitted_at = Some(now());
            h.last_error = None;
        });
    }

    /// Something failed on a chain.
    pub fn failed(&self, chain: &str, error: &str) {
        self.update(chain, |h| h.last_error = Some(error.to_owned()));
    }

    /// Every chain's state, and whether all are healthy: each has indexed within `max_age`
    /// seconds and its latest attempt did not fail.
    pub fn report(&self, max_age: u64) -> (bool, BTreeMap<String, ChainHealth>) {
        let map = self
            .chains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let t = now();
        let healthy = map.values().all(|h| {
            h.last_error.is_none()
                && h.indexed_at
                    .is_some_and(|at| t.saturating_sub(at) <= max_age)
        });
        (healthy, map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_is_healthy_once_indexed_and_not_after_a_failure() {
        let h = Health::default();
        h.register("a");
        assert!(!h.report(60).0, "never indexed yet");
        h.indexed("a");
        assert!(h.report(60).0);
        h.failed("a", "RPC down");
        let (ok, map) = h.report(60);
        assert!(!ok);
        assert_eq!(map["a"].last_error.as_deref(), Some("RPC down"));
        h.indexed("a");
        assert!(h.report(60).0, "recovered");
    }
}
