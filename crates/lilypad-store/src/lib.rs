//! Relayer state in Redis, so a relayer can restart, or several can share the work, without losing
//! or repeating anything.
//!
//! | key (under the prefix, `lilypad` by default) | holds |
//! |---|---|
//! | `chain:<id>:cursor` | the last block fully indexed, its hash, and the last request sequence published |
//! | `lease:<name>` | who holds a lease (e.g. the right to submit for one chain and signer), with a TTL |
//! | `chain:<id>:due` | actions due at a time (expire, time out, settle a job), as a sorted set |
//! | `chain:<id>:nonce:<signer>` | the next nonce this signer will use on the chain |
//! | `chain:<id>:pending:<signer>` | transactions sent and not yet mined, by nonce |
//! | `chain:<id>:landed:<signer>` | landed deals and results (signed message, transaction, block), by call, job and request hash, until deep enough that no reorganisation undoes them ([`landed`]) |
//! | `chain:<id>:reorgs` | how many reorganisations the indexer noticed (the submitter re-checks what it landed when it changes) |
//!
//! Every read-modify-write is one Lua script, so two relayers never interleave inside one.

use std::fmt;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub mod landed;

/// A Redis operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or refused the command.
    #[error("redis {op} failed: {source} (fix: check that Redis runs and the URL is right)")]
    Redis {
        /// What was being done.
        op: &'static str,
        /// The client's error.
        source: redis::RedisError,
    },
    /// A stored value is not what this version of Lilypad wrote.
    #[error(
        "redis key {key} holds an unreadable value: {detail} (fix: delete the key; the relayer rebuilds it from the chain)"
    )]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl Store {
    /// Stores `value` as JSON in field `field` of the hash at the full key `key`.
    pub(crate) async fn hset_json<T: Serialize>(
        &self,
        key: String,
        field: &str,
        value: &T,
        op: &'static str,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            detail: e.to_string(),
        })?;
        let _: i64 = self
            .conn
            .clone()
            .hset(key, field, json)
            .await
            .map_err(redis_err(op))?;
        Ok(())
    }

    /// Every field of the hash at the full key `key`, its JSON value decoded.
    pub(crate) async fn hgetall_json<T: DeserializeOwned>(
        &self,
        key: &str,
        op: &'static str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let all: Vec<(String, String)> = self
            .conn
            .clone()
            .hgetall(key)
            .await
            .map_err(redis_err(op))?;
        all.into_iter()
            .map(|(field, json)| {
                let value = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    key: key.to_owned(),
                    detail: format!("field {field}: {e}"),
                })?;
                Ok((field, value))
            })
            .collect()
    }
}

fn redis_err(op: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { op, source }
}

/// Where a chain's indexer has got to (the sequence is the last request sequence published).
pub use lilypad_follow::Cursor;

/// An action the relayer takes on a job when it falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// No deal by the match deadline: refund the client.
    Expire,
    /// A deal but no result by the execution deadline: refund, slash timeout collateral.
    Timeout,
    /// The challenge window is over: pay the provider.
    Settle,
    /// The result's audit draw can be decided: open the audit, or record that it passed over.
    Audit,
}

impl Action {
    /// The action's name in Redis and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expire => "expire",
            Self::Timeout => "timeout",
            Self::Settle => "settle",
            Self::Audit => "audit",
        }
    }

    /// The action named `s` (as [`Action::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "expire" => Some(Self::Expire),
            "timeout" => Some(Self::Timeout),
            "settle" => Some(Self::Settle),
            "audit" => Some(Self::Audit),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A held lease. It lapses by itself after its TTL unless renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is for.
    pub name: String,
    /// Who holds it.
    pub holder: String,
    /// How long it lasts from the last acquire or renew.
    pub ttl: Duration,
}

const ADVANCE_CURSOR: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'block', 'hash')
if ARGV[1] == '' then
  if cur[1] then return 0 end
elseif cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'block', ARGV[3], 'hash', ARGV[4], 'sequence', ARGV[5])
return 1
";

const RENEW_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE_LEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

const CLAIM_DUE: &str = r"
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, item in ipairs(items) do
  redis.call('ZADD', KEYS[1], ARGV[3], item)
end
return items
";

const NEXT_NONCE: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local chain = tonumber(ARGV[1])
if chain > n then n = chain end
redis.call('SET', KEYS[1], n + 1)
return n
";

const RELEASE_NONCE: &str = r"
if tonumber(redis.call('GET', KEYS[1]) or '-1') == tonumber(ARGV[1]) + 1 then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// Relayer state in one Redis database.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` (`redis://host:port/db`). Keys are put under `prefix` (e.g. `lilypad`), so
    /// several deployments can share one Redis. The first connection is tried a few times over
    /// about a second before giving up; after that the connection reconnects by itself, and a
    /// command that cannot reach Redis fails within 5 seconds.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(redis_err("open"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(3)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(redis_err("connect"))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    // ---------------------------------------------------------------- cursors

    /// The chain's cursor, if indexing has started.
    pub async fn cursor(&self, chain_id: u64) -> Result<Option<Cursor>, StoreError> {
        let key = self.key(&format!("chain:{chain_id}:cursor"));
        let (block, hash, sequence): (Option<String>, Option<String>, Option<String>) =
            redis::cmd("HMGET")
                .arg(&key)
                .arg("block")
                .arg("hash")
                .arg("sequence")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(redis_err("HMGET cursor"))?;
        let (Some(block), Some(hash), Some(sequence)) = (block, hash, sequence) else {
            return Ok(None);
        };
        let corrupt = |detail: String| StoreError::Corrupt {
            key: key.clone(),
            detail,
        };
        Ok(Some(Cursor {
            block: block
                .parse()
                .map_err(|_| corrupt(format!("block {block:?}")))?,
            hash: hash
                .parse()
                .map_err(|_| corrupt(format!("hash {hash:?}")))?,
            sequence: sequence
                .parse()
                .map_err(|_| corrupt(format!("sequence {sequence:?}")))?,
        }))
    }

    /// Moves the cursor from `expected` (None: no cursor yet) to `next`, atomically. Returns false,
    /// changing nothing, when the stored cursor is not `expected` (another relayer moved it): the
    /// caller re-reads and carries on from there. Moving backwards (after a reorganisation) is
    /// allowed the same way.
    pub async fn advance_cursor(
        &self,
        chain_id: u64,
        expected: Option<&Cursor>,
        next: &Cursor,
    ) -> Result<bool, StoreError> {
        let (eb, eh) = expected.map_or((String::new(), String::new()), |c| {
            (c.block.to_string(), c.hash.to_string())
        });
        let moved: i64 = redis::Script::new(ADVANCE_CURSOR)
            .key(self.key(&format!("chain:{chain_id}:cursor")))
            .arg(eb)
            .arg(eh)
            .arg(next.block.to_string())
            .arg(next.hash.to_string())
            .arg(next.sequence.to_string())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("advance cursor"))?;
        Ok(moved == 1)
    }

    // ---------------------------------------------------------------- leases

    /// Takes the lease `name` for `holder` unless someone else holds it. Re-acquiring one's own
    /// lease renews it.
    pub async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let lease = Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        };
        if self.renew_lease(&lease).await? {
            return Ok(Some(lease));
        }
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("lease:{name}")))
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms(ttl))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("SET NX lease"))?;
        Ok(set.map(|_| lease))
    }

    /// Extends a lease still held. False when it lapsed and may now be someone else's: stop the
    /// work it guarded.
    pub async fn renew_lease(&self, lease: &Lease) -> Result<bool, StoreError> {
        let renewed: i64 = redis::Script::new(RENEW_LEASE)
            .key(self.key(&format!("lease:{}", lease.name)))
            .arg(&lease.holder)
            .arg(ttl_ms(lease.ttl))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("renew lease"))?;
        Ok(renewed == 1)
    }

    /// Gives a lease up at once (a lease held by someone else is left alone).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let _: i64 = redis::Script::new(RELEASE_LEASE)
            .key(self.key(&format!("lease:{}", lease.name)))
            .arg(&lease.holder)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("release lease"))?;
        Ok(())
    }

    // ---------------------------------------------------------------- scheduled actions

    /// Schedules `action` on `job_id`, for the job's request `request` (a job id a reorganisation
    /// gave to another request is another job), at unix time `due` (re-scheduling moves it).
    pub async fn schedule(
        &self,
        chain_id: u64,
        job_id: U256,
        request: B256,
        action: Action,
        due: u64,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .clone()
            .zadd(
                self.key(&format!("chain:{chain_id}:due")),
                member(action, job_id, request),
                due,
            )
            .await
            .map_err(redis_err("ZADD due"))?;
        Ok(())
    }

    /// Takes up to `limit` actions due at or before `now`, and pushes each one's time to
    /// `now + retry_after`, so another relayer does not take it too; if the taker dies, the action
    /// comes due again then. Call [`Store::done`] once an action is carried out. Each comes with
    /// the request it was scheduled for (zero for one scheduled before requests were recorded).
    pub async fn claim_due(
        &self,
        chain_id: u64,
        now: u64,
        limit: usize,
        retry_after: Duration,
    ) -> Result<Vec<(U256, B256, Action)>, StoreError> {
        let key = self.key(&format!("chain:{chain_id}:due"));
        let items: Vec<String> = redis::Script::new(CLAIM_DUE)
            .key(&key)
            .arg(now)
            .arg(limit)
            .arg(now.saturating_add(retry_after.as_secs().max(1)))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("claim due"))?;
        items
            .into_iter()
            .map(|item| {
                parse_member(&item).ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    detail: format!("member {item:?} is not <action>:<jobId>:<requestHash>"),
                })
            })
            .collect()
    }

    /// Removes a scheduled action of `job_id` for request `request` (carried out, or no longer
    /// needed).
    pub async fn done(
        &self,
        chain_id: u64,
        job_id: U256,
        request: B256,
        action: Action,
    ) -> Result<(), StoreError> {
        // The member as earlier builds wrote it goes too: it can only be for this job.
        let _: i64 = self
            .conn
            .clone()
            .zrem(
                self.key(&format!("chain:{chain_id}:due")),
                &[
                    member(action, job_id, request),
                    format!("{action}:{job_id}"),
                ],
            )
            .await
            .map_err(redis_err("ZREM due"))?;
        Ok(())
    }

    // ---------------------------------------------------------------- nonces and pending txs

    /// The nonce to use for the next transaction of `signer`: the larger of the stored next nonce
    /// and `chain_nonce` (the chain's pending nonce), reserved atomically.
    pub async fn next_nonce(
        &self,
        chain_id: u64,
        signer: Address,
        chain_nonce: u64,
    ) -> Result<u64, StoreError> {
        redis::Script::new(NEXT_NONCE)
            .key(self.key(&format!("chain:{chain_id}:nonce:{signer}")))
            .arg(chain_nonce)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("reserve nonce"))
    }

    /// The nonce the next reservation starts from (every nonce below it was handed out), or
    /// `None` before the first reservation. Reserves nothing.
    pub async fn reserved_up_to(
        &self,
        chain_id: u64,
        signer: Address,
    ) -> Result<Option<u64>, StoreError> {
        self.conn
            .clone()
            .get(self.key(&format!("chain:{chain_id}:nonce:{signer}")))
            .await
            .map_err(redis_err("GET nonce"))
    }

    /// Sets the next nonce outright, e.g. back to the chain's after transactions were dropped.
    pub async fn reset_nonce(
        &self,
        chain_id: u64,
        signer: Address,
        next: u64,
    ) -> Result<(), StoreError> {
        let _: () = self
            .conn
            .clone()
            .set(self.key(&format!("chain:{chain_id}:nonce:{signer}")), next)
            .await
            .map_err(redis_err("SET nonce"))?;
        Ok(())
    }

    /// Gives `nonce` back (the next reservation returns it again) if it is still the last one
    /// reserved; returns whether it was. A nonce with later ones reserved after it is kept.
    pub async fn release_nonce(
        &self,
        chain_id: u64,
        signer: Address,
        nonce: u64,
    ) -> Result<bool, StoreError> {
        let released: i64 = redis::Script::new(RELEASE_NONCE)
            .key(self.key(&format!("chain:{chain_id}:nonce:{signer}")))
            .arg(nonce)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("release nonce"))?;
        Ok(released == 1)
    }

    /// Records a transaction sent with `nonce` and not yet mined (replacing an earlier one).
    pub async fn record_pending<T: Serialize>(
        &self,
        chain_id: u64,
        signer: Address,
        nonce: u64,
        tx: &T,
    ) -> Result<(), StoreError> {
        let key = self.key(&format!("chain:{chain_id}:pending:{signer}"));
        self.hset_json(key, &nonce.to_string(), tx, "HSET pending")
            .await
    }

    /// Every pending transaction of `signer`, by nonce, lowest first.
    pub async fn pending<T: DeserializeOwned>(
        &self,
        chain_id: u64,
        signer: Address,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let key = self.key(&format!("chain:{chain_id}:pending:{signer}"));
        let mut out = self
            .hgetall_json::<T>(&key, "HGETALL pending")
            .await?
            .into_iter()
            .map(|(nonce, tx)| {
                let n = nonce.parse().map_err(|_| StoreError::Corrupt {
                    key: key.clone(),
                    detail: format!("field {nonce:?}"),
                })?;
                Ok((n, tx))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|(n, _)| *n);
        Ok(out)
    }

    /// Forgets the pending transaction with `nonce` (mined, or replaced for good).
    pub async fn clear_pending(
        &self,
        chain_id: u64,
        signer: Address,
        nonce: u64,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .conn
            .clone()
            .hdel(
                self.key(&format!("chain:{chain_id}:pending:{signer}")),
                nonce,
            )
            .await
            .map_err(redis_err("HDEL pending"))?;
        Ok(())
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn member(action: Action, job_id: U256, request: B256) -> String {
    format!("{action}:{job_id}:{request}")
}

/// A member as [`member`] writes it, or as earlier builds did (`<action>:<jobId>`, read with a
/// zero request).
fn parse_member(item: &str) -> Option<(U256, B256, Action)> {
    let mut parts = item.splitn(3, ':');
    let action = Action::parse(parts.next()?)?;
    let job = parts.next()?.parse().ok()?;
    let request = match parts.next() {
        Some(hash) => hash.parse().ok()?,
        None => B256::ZERO,
    };
    Some((job, request, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_members_round_trip() {
        let request = B256::repeat_byte(0xab);
        for action in [
            Action::Expire,
            Action::Timeout,
            Action::Settle,
            Action::Audit,
        ] {
            let id = U256::from(123_456_789u64) << 100;
            assert_eq!(
                parse_member(&member(action, id, request)),
                Some((id, request, action))
            );
        }
        assert_eq!(parse_member("explode:1"), None);
        assert_eq!(parse_member("settle:x"), None);
        assert_eq!(parse_member("settle"), None);
        assert_eq!(parse_member("settle:1:0x12"), None);
    }

    #[test]
    fn a_member_written_before_requests_were_recorded_reads_with_a_zero_request() {
        assert_eq!(
            parse_member("timeout:7"),
            Some((U256::from(7), B256::ZERO, Action::Timeout))
        );
    }
}
