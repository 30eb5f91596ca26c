//! What the provider keeps on disk so that a restart loses nothing it signed: each signed deal
//! until it is agreed and run (or can no longer be), and each signed result until the chain shows
//! it submitted (or the job can no longer take it). One small JSON file per job request, written
//! atomically (a temporary file, synced, renamed over the old one, the directory synced):
//!
//! ```text
//! <state dir>/signed/deals/<chainId>-<jobId>-<requestHash>.json     a signed deal: the job, terms, signature
//! <state dir>/signed/results/<chainId>-<jobId>-<requestHash>.json   a signed result, the job's result deadline
//! ```
//!
//! The request hash (0x and 64 hex digits) is in the name because a reorganisation can put
//! another request under a job id: the two are different jobs, and neither's file replaces the
//! other's.
//!
//! A file that does not decode is renamed to `*.json.bad` and reported, never silently dropped
//! nor retried at every start.
//!
//! A mediator keeps each vote it committed, with its salt, until the case resolves
//! ([`VoteStore`]): the commitment on-chain is blinded, so without the salt a restarted mediator
//! could not reveal and would be slashed.
//!
//! ```text
//! <state dir>/votes/<chainId>-<jobId>-<mediator>.json   the result hash and salt committed
//! ```
//!
//! It also keeps, per chain, how far it has read the mediation's `MediationStarted` events and
//! the cases it still follows ([`CaseStore`]), so a restarted mediator resumes from there instead
//! of the deployment block (see [`crate::intake`]).
//!
//! ```text
//! <state dir>/mediation/<chainId>-<mediation>-<mediator>.json   the cursor and the open cases
//! ```

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use alloy::primitives::{Address, B256, U256};
use lilypad_follow::Cursor;
use lilypad_types::{JobRef, JobRequested, SignedDeal, SignedResult};
use serde::{Deserialize, Serialize};

/// A state file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error(
        "{what} {path}: {source} (fix: check that the provider's state directory exists, is writable and its disk is not full)"
    )]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record could not be encoded (a bug, not an operator's problem).
    #[error("cannot encode the record for {path}: {reason}")]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A deal this provider signed, with what it needs to run the job after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealRecord {
    /// The job as the relayer published it (its inputs are needed to run it).
    pub job: JobRequested,
    /// The signed deal as it was handed out.
    pub deal: SignedDeal,
    /// The deal's expiry (unix seconds).
    pub expiry: u64,
    /// The job's match deadline on-chain (unix seconds).
    pub match_deadline: u64,
    /// The timeout collateral the deal locks.
    pub timeout_collateral: U256,
}

/// A result this provider signed, kept until the chain has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// The signed result as it is published.
    pub result: SignedResult,
    /// The job's result deadline on-chain (unix seconds): `submitResult` refuses it after that.
    /// After a restart, the result is published only for the job on-chain with the result's
    /// request hash (a reorganisation or a dev chain started afresh reuses job ids).
    pub deadline: u64,
}

/// The provider's state directory: where deal and result records live.
#[derive(Debug, Clone)]
pub struct StateDir {
    deals: PathBuf,
    results: PathBuf,
}

/// Records found at start, and the files that could not be read.
#[derive(Debug, Default)]
pub struct Loaded<T> {
    /// The records that decoded.
    pub records: Vec<T>,
    /// Files that could not be read, each with the reason (renamed to `*.bad` when they did
    /// not decode).
    pub bad: Vec<String>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_owned();
    move |source| StateError::Io { what, path, source }
}

fn file_name(job: JobRef) -> String {
    format!(
        "{}-{}-{}.json",
        job.key.chain_id, job.key.job_id, job.request_hash
    )
}

impl StateDir {
    /// Opens (creating when missing) the records under `root` (in `root/signed/`).
    pub fn open(root: &Path) -> Result<Self, StateError> {
        let deals = root.join("signed").join("deals");
        let results = root.join("signed").join("results");
        for dir in [&deals, &results] {
            fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        Ok(Self { deals, results })
    }

    /// Where deal records live.
    pub fn deals_dir(&self) -> &Path {
        &self.deals
    }

    /// Where result records live.
    pub fn results_dir(&self) -> &Path {
        &self.results
    }

    /// Writes (or replaces) the record of a signed deal.
    pub fn put_deal(&self, record: &DealRecord) -> Result<(), StateError> {
        write_atomic(&self.deals.join(file_name(record.job.job_ref())), record)
    }

    /// Removes the record of a deal (absent is fine).
    pub fn remove_deal(&self, job: JobRef) -> Result<(), StateError> {
        remove(&self.deals.join(file_name(job)))
    }

    /// Writes (or replaces) the record of a signed result.
    pub fn put_result(&self, record: &ResultRecord) -> Result<(), StateError> {
        write_atomic(
            &self.results.join(file_name(record.result.job_ref())),
            record,
        )
    }

    /// Removes the record of a result (absent is fine).
    pub fn remove_result(&self, job: JobRef) -> Result<(), StateError> {
        remove(&self.results.join(file_name(job)))
    }

    /// Every deal record signed by `provider`.
    pub fn deals(&self, provider: Address) -> Result<Loaded<DealRecord>, StateError> {
        let mut loaded = load::<DealRecord>(&self.deals)?;
        loaded.records.retain(|r| r.deal.terms.provider == provider);
        Ok(loaded)
    }

    /// Every result record signed by `provider`.
    pub fn results(&self, provider: Address) -> Result<Loaded<ResultRecord>, StateError> {
        let mut loaded = load::<ResultRecord>(&self.results)?;
        loaded.records.retain(|r| r.result.provider == provider);
        Ok(loaded)
    }
}

/// Writes `value` as JSON to `path` so that `path` holds either the old content or the new, never
/// a part: a temporary file beside it, synced, renamed over it, and the directory synced.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| StateError::Encode {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(&body).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io("renaming into place", path))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), StateError> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", dir))?;
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", path)(e)),
    }
}

fn load<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Loaded<T>, StateError> {
    let mut loaded = Loaded {
        records: Vec::new(),
        bad: Vec::new(),
    };
    let entries = fs::read_dir(dir).map_err(io("listing", dir))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                loaded.bad.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match serde_json::from_slice::<T>(&body) {
            Ok(record) => loaded.records.push(record),
            Err(e) => {
                let aside = path.with_extension("json.bad");
                let moved = fs::rename(&path, &aside)
                    .map(|()| format!("moved to {}", aside.display()))
                    .unwrap_or_else(|e| format!("could not be moved aside: {e}"));
                loaded.bad.push(format!(
                    "{}: does not decode ({e}); {moved}",
                    path.display()
                ));
            }
        }
    }
    Ok(loaded)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use alloy::primitives::{B256, Bytes};
    use lilypad_types::{JobKey, SignedResult};

    use super::*;

    fn result(job: u64, provider: Address) -> ResultRecord {
        ResultRecord {
            result: SignedResult {
                key: JobKey {
                    chain_id: 31337,
                    job_id: U256::from(job),
                },
                request_hash: B256::repeat_byte(1),
                deal_expiry: U256::from(1_000),
                lilypad: Address::repeat_byte(0x11),
                provider,
                status: 1,
                result_cid: "bafkqaaa".into(),
                inline_output: Bytes::from_static(b"out"),
                exit_code: 0,
                error: String::new(),
                signature: Bytes::from(B256::repeat_byte(9).to_vec()),
            },
            deadline: 1_000,
        }
    }

    #[test]
    fn a_vote_outlives_a_restart_until_removed_and_a_corrupt_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let me = Address::repeat_byte(0x44);
        let vote = VoteRecord {
            chain_id: 31337,
            job_id: U256::from(7),
            mediator: me,
            result_hash: B256::repeat_byte(2),
            salt: B256::repeat_byte(3),
            sent: Some(SentVote {
                step: VoteStep::Reveal,
                tx_hash: B256::repeat_byte(4),
            }),
        };
        VoteStore::open(dir.path()).unwrap().put(&vote).unwrap();
        // a new process over the same directory reads the same vote back
        let votes = VoteStore::open(dir.path()).unwrap();
        assert_eq!(votes.get(31337, U256::from(7), me).unwrap(), Some(vote));
        assert_eq!(votes.get(31337, U256::from(8), me).unwrap(), None);
        assert_eq!(votes.get(31338, U256::from(7), me).unwrap(), None);
        votes.remove(31337, U256::from(7), me).unwrap();
        votes.remove(31337, U256::from(7), me).unwrap();
        assert_eq!(votes.get(31337, U256::from(7), me).unwrap(), None);
        std::fs::write(votes.dir().join(format!("31337-9-{me}.json")), b"{").unwrap();
        let err = votes.get(31337, U256::from(9), me).unwrap_err().to_string();
        assert!(err.contains("does not decode as a vote"), "{err}");
    }

    #[test]
    fn records_are_kept_replaced_removed_and_filtered_by_provider() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let me = Address::repeat_byte(0xaa);
        let a = result(1, me);
        state.put_result(&a).unwrap();
        let mut a2 = a.clone();
        a2.deadline = 2_000;
        state.put_result(&a2).unwrap();
        state
            .put_result(&result(2, Address::repeat_byte(0xbb)))
            .unwrap();
        // Reopened, as after a restart.
        let state = StateDir::open(dir.path()).unwrap();
        let loaded = state.results(me).unwrap();
        assert_eq!(loaded.records, vec![a2]);
        assert!(loaded.bad.is_empty(), "{:?}", loaded.bad);
        state.remove_result(a.result.job_ref()).unwrap();
        state.remove_result(a.result.job_ref()).unwrap();
        assert!(state.results(me).unwrap().records.is_empty());
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(state.results_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![format!("31337-2-{}.json", B256::repeat_byte(1))]
        );
    }

    #[test]
    fn a_job_id_reused_by_another_request_keeps_both_results() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let me = Address::repeat_byte(0xaa);
        let old = result(2, me);
        let mut new = result(2, me);
        new.result.request_hash = B256::repeat_byte(2);
        new.result.inline_output = Bytes::from_static(b"new");
        state.put_result(&old).unwrap();
        state.put_result(&new).unwrap();
        let mut kept = state.results(me).unwrap().records;
        kept.sort_by_key(|r| r.result.request_hash);
        assert_eq!(kept, vec![old.clone(), new.clone()]);
        // Forgetting the replaced request's result leaves the new one's.
        state.remove_result(old.result.job_ref()).unwrap();
        assert_eq!(state.results(me).unwrap().records, vec![new]);
    }

    #[test]
    fn a_file_that_does_not_decode_is_reported_and_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(state.results_dir().join("31337-9.json"), b"{ half").unwrap();
        let loaded = state.results(Address::ZERO).unwrap();
        assert!(loaded.records.is_empty());
        assert_eq!(loaded.bad.len(), 1);
        assert!(
            loaded.bad[0].contains("does not decode"),
            "{:?}",
            loaded.bad
        );
        assert!(state.results_dir().join("31337-9.json.bad").exists());
        // Not reported again at the next start.
        assert!(state.results(Address::ZERO).unwrap().bad.is_empty());
    }
}

/// A vote a mediator committed (blinded by `salt`) and must reveal in the reveal phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRecord {
    /// The chain of the case.
    pub chain_id: u64,
    /// The challenged job.
    pub job_id: U256,
    /// The mediator that committed it.
    pub mediator: Address,
    /// The commitment of the result its re-run got (what it reveals).
    pub result_hash: B256,
    /// The random salt that blinds the commitment.
    pub salt: B256,
    /// The commit or reveal this mediator signed and sent whose outcome it has not seen yet
    /// (written before it is sent): the next step looks at the chain, and at this transaction,
    /// before it sends anything again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<SentVote>,
}

/// A vote's transaction sent without its outcome seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentVote {
    /// Which step it is.
    pub step: VoteStep,
    /// Its hash.
    pub tx_hash: B256,
}

/// The two transactions of a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteStep {
    /// `ConsortiumMediation.commit` of the blinded vote.
    Commit,
    /// `ConsortiumMediation.reveal` of the vote and its salt.
    Reveal,
}

/// The votes a mediator committed and has not yet seen resolved, one file each, written
/// atomically before the commitment is sent.
#[derive(Debug, Clone)]
pub struct VoteStore {
    dir: PathBuf,
}

impl VoteStore {
    /// The vote store under `root` (`<root>/votes`, created if missing).
    pub fn open(root: &Path) -> Result<Self, StateError> {
        let dir = root.join("votes");
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Self { dir })
    }

    /// Where the votes are kept.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, chain_id: u64, job_id: U256, mediator: Address) -> PathBuf {
        self.dir
            .join(format!("{chain_id}-{job_id}-{mediator}.json"))
    }

    /// Writes (or replaces) a vote.
    pub fn put(&self, vote: &VoteRecord) -> Result<(), StateError> {
        write_atomic(&self.path(vote.chain_id, vote.job_id, vote.mediator), vote)
    }

    /// The vote kept for a case, if any. A file that does not decode is an error, not `None`: a
    /// fresh vote would not match the commitment already on-chain.
    pub fn get(
        &self,
        chain_id: u64,
        job_id: U256,
        mediator: Address,
    ) -> Result<Option<VoteRecord>, StateError> {
        let path = self.path(chain_id, job_id, mediator);
        let body = match fs::read(&path) {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e)),
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| StateError::Encode {
                path,
                reason: format!("does not decode as a vote: {e}"),
            })
    }

    /// Removes a case's vote (absent is fine).
    pub fn remove(&self, chain_id: u64, job_id: U256, mediator: Address) -> Result<(), StateError> {
        remove(&self.path(chain_id, job_id, mediator))
    }
}

/// What a mediator has read of one chain: its cursor over `MediationStarted` events and the cases
/// seen started and not yet known to be over for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFile {
    /// How far the events are read (none before the first chunk).
    pub cursor: Option<Cursor>,
    /// The open cases, by job id.
    pub open: BTreeSet<U256>,
}

/// A mediator's [`CaseFile`] for one chain and mediation contract, written atomically.
#[derive(Debug, Clone)]
pub struct CaseStore {
    path: PathBuf,
}

impl CaseStore {
    /// The case file of `mediator` for `mediation` on chain `chain_id`, under `root`
    /// (`<root>/mediation`, created if missing).
    pub fn open(
        root: &Path,
        chain_id: u64,
        mediation: Address,
        mediator: Address,
    ) -> Result<Self, StateError> {
        let dir = root.join("mediation");
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Self {
            path: dir.join(format!("{chain_id}-{mediation}-{mediator}.json")),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored state (empty before the first write). A file that does not decode is an error:
    /// starting over from the deployment block is what the operator should decide.
    pub fn load(&self) -> Result<CaseFile, StateError> {
        let body = match fs::read(&self.path) {
            Ok(body) => body,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CaseFile::default()),
            Err(e) => return Err(io("reading", &self.path)(e)),
        };
        serde_json::from_slice(&body).map_err(|e| StateError::Encode {
            path: self.path.clone(),
            reason: format!(
                "does not decode as a mediator's case file: {e}; delete it to read the cases again from the deployment block"
            ),
        })
    }

    /// Replaces the stored state.
    pub fn save(&self, file: &CaseFile) -> Result<(), StateError> {
        write_atomic(&self.path, file)
    }
}
