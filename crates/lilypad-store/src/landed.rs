//! What the relayer keeps to follow the chain through a reorganisation: the landed deals and
//! results of each signer until they are deep enough, a count of the reorganisations the indexer
//! noticed, and the resynchronisation of a signer's next nonce with the chain's.

use alloy_primitives::Address;
use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Store, StoreError, redis_err};

/// Moves the next nonce from ARGV[1] down to ARGV[2] only if it still is ARGV[1] and no pending
/// transaction (KEYS[2]) holds a nonce in between.
const RESYNC_NONCE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '-1')
if n ~= tonumber(ARGV[1]) then return 0 end
local to = tonumber(ARGV[2])
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  local k = tonumber(f)
  if k and k >= to and k < n then return 0 end
end
redis.call('SET', KEYS[1], to)
return 1
";

impl Store {
    /// Moves `signer`'s next nonce back from `from` to `to` (the chain's pending count), atomically
    /// and only if the next nonce is still `from` and no pending transaction holds a nonce in
    /// `to..from`: those nonces were handed out, and the chain no longer has them (mined and then
    /// removed by a reorganisation, or dropped from every pool). Returns whether it moved.
    pub async fn resync_nonce(
        &self,
        chain_id: u64,
        signer: Address,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let moved: i64 = redis::Script::new(RESYNC_NONCE)
            .key(self.key(&format!("chain:{chain_id}:nonce:{signer}")))
            .key(self.key(&format!("chain:{chain_id}:pending:{signer}")))
            .arg(from)
            .arg(to)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("resync nonce"))?;
        Ok(moved == 1)
    }

    /// Keeps a landed transaction's signed message as `id` (the caller names it by job, request
    /// hash and call), replacing an earlier copy, until [`Store::forget_landed`].
    pub async fn keep_landed<T: Serialize>(
        &self,
        chain_id: u64,
        signer: Address,
        id: &str,
        kept: &T,
    ) -> Result<(), StoreError> {
        let key = self.key(&format!("chain:{chain_id}:landed:{signer}"));
        self.hset_json(key, id, kept, "HSET landed").await
    }

    /// Every landed transaction kept for `signer`, by id (in no particular order).
    pub async fn landed<T: DeserializeOwned>(
        &self,
        chain_id: u64,
        signer: Address,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let key = self.key(&format!("chain:{chain_id}:landed:{signer}"));
        self.hgetall_json(&key, "HGETALL landed").await
    }

    /// Forgets the landed transaction kept as `id` (deep enough, or no longer wanted).
    pub async fn forget_landed(
        &self,
        chain_id: u64,
        signer: Address,
        id: &str,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .clone()
            .hdel(self.key(&format!("chain:{chain_id}:landed:{signer}")), id)
            .await
            .map_err(redis_err("HDEL landed"))?;
        Ok(())
    }

    /// Counts a reorganisation noticed on the chain (by the indexer); returns the new count.
    pub async fn note_reorg(&self, chain_id: u64) -> Result<u64, StoreError> {
        self.conn
            .clone()
            .incr(self.key(&format!("chain:{chain_id}:reorgs")), 1)
            .await
            .map_err(redis_err("INCR reorgs"))
    }

    /// How many reorganisations were noticed on the chain (0 before the first).
    pub async fn reorgs(&self, chain_id: u64) -> Result<u64, StoreError> {
        let n: Option<u64> = self
            .conn
            .clone()
            .get(self.key(&format!("chain:{chain_id}:reorgs")))
            .await
            .map_err(redis_err("GET reorgs"))?;
        Ok(n.unwrap_or(0))
    }
}
