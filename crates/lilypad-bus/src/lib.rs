//! Lilypad's messaging over NATS JetStream.
//!
//! | what | subject | stream / bucket | semantics |
//! |---|---|---|---|
//! | job requests | `lilypad.jobs.<chainId>` | `LILYPAD_JOBS` | durable work queue, deduplicated by message id |
//! | signed deals | `lilypad.deals.<chainId>` | `LILYPAD_DEALS` | durable work queue |
//! | signed results | `lilypad.results.<chainId>` | `LILYPAD_RESULTS` | durable work queue |
//! | resource offers | key = provider | bucket `lilypad-offers` | each entry lives for the bucket's TTL unless refreshed |
//! | the solver's order book | key = `<chainId>.<jobId>.<requestHash>` | bucket `lilypad-book` | jobs open to a deal that no provider could take yet; compare-and-set claims |
//! | deal proposals | `lilypad.provider.<provider>.deal` | none | request/reply |
//!
//! Bodies are JSON. A body that does not decode is never retried forever and never crashes a
//! consumer: it is terminated in JetStream and handed back as [`Received::Malformed`] with the
//! subject, sequence and reason, for the caller to log.
//!
//! ## NATS outages
//!
//! Once connected, the client reconnects for as long as it takes, and subscriptions (deal
//! proposals, watches) are renewed by it. The outage is logged once when the connection is lost
//! and once when it is back, with how long it lasted; not once per reconnection attempt.
//! [`Consumer::fetch`] asks the server for nothing while the connection is down (it waits up to its
//! `wait` for the connection, then fails with [`BusError::Disconnected`]), and a fetch cut before
//! the server ended it keeps listening in the background: whatever the server still hands it is
//! given back at once for redelivery. Without that, a pull request sent on reconnection for a
//! fetch its caller had given up swallowed the messages it was served until their ack wait ran
//! out (a job requested during a solver's outage was dealt a minute late).

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::jetstream::{self, consumer::pull, kv, message::PublishMessage, stream};
use async_nats::{Event, StatusCode};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long JetStream remembers message ids to drop duplicates. A relayer that re-publishes a
/// request after a restart within this window is deduplicated by the server; after it, the
/// consumer's own on-chain state check catches the repeat.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

/// The key-value bucket holding resource offers.
pub const OFFERS_BUCKET: &str = "lilypad-offers";

/// The key-value bucket holding the solver's order book: jobs open to a deal that no provider
/// could take yet, kept until they are dealt, closed or past their match deadline.
pub const BOOK_BUCKET: &str = "lilypad-book";

/// A messaging failure.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// NATS could not be reached.
    #[error(
        "cannot connect to NATS at {url}: {reason} (fix: check that nats-server runs with -js and the URL is right)"
    )]
    Connect {
        /// The URL tried.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// A JetStream or NATS operation failed.
    #[error("NATS {op} failed: {reason}")]
    Nats {
        /// What was being done.
        op: String,
        /// The client's error.
        reason: String,
    },
    /// A message could not be encoded.
    #[error("cannot encode a message for {subject}: {reason}")]
    Encode {
        /// Where it was going.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A reply did not decode.
    #[error("malformed reply on {subject}: {reason}")]
    MalformedReply {
        /// The request subject.
        subject: String,
        /// Why it did not decode.
        reason: String,
    },
    /// Nobody listens on the request subject.
    #[error("no one answers on {0}")]
    NoResponders(String),
    /// The responder did not answer in time.
    #[error("no answer on {subject} within {timeout:?}")]
    Timeout {
        /// The request subject.
        subject: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The responder answered with an error.
    #[error("{subject} refused: {reason}")]
    Refused {
        /// The request subject.
        subject: String,
        /// The responder's reason.
        reason: String,
    },
    /// The connection to NATS is down (the client is reconnecting), so nothing was asked.
    #[error(
        "NATS {op} not attempted: the connection to NATS is down and the client is reconnecting (fix: check that nats-server is up and reachable; work resumes by itself once it is)"
    )]
    Disconnected {
        /// What was to be done.
        op: String,
    },
}

/// Creates the stream `config` names unless it exists. Services starting together race to
/// create the same stream: the loser's create fails ("subjects overlap with an existing stream"
/// on nats-server 2.9), and then finds the winner's stream, which is what it asked for.
async fn ensure_stream(js: &jetstream::Context, config: stream::Config) -> Result<(), BusError> {
    let name = config.name.clone();
    match js.get_or_create_stream(config).await {
        Ok(_) => Ok(()),
        Err(e) => match js.get_stream(&name).await {
            Ok(_) => Ok(()),
            Err(_) => Err(nats(format!("creating stream {name}"))(e.to_string())),
        },
    }
}

fn nats(op: impl Into<String>) -> impl FnOnce(String) -> BusError {
    let op = op.into();
    move |reason| BusError::Nats { op, reason }
}

/// The three durable streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Job requests indexed from chains (relayer -> solver).
    Jobs,
    /// Deals signed by providers (solver -> relayer).
    Deals,
    /// Results signed by providers (provider -> relayer).
    Results,
}

impl Topic {
    /// All topics.
    pub const ALL: [Topic; 3] = [Topic::Jobs, Topic::Deals, Topic::Results];

    /// The JetStream stream name.
    pub fn stream(self) -> &'static str {
        match self {
            Self::Jobs => "LILYPAD_JOBS",
            Self::Deals => "LILYPAD_DEALS",
            Self::Results => "LILYPAD_RESULTS",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Deals => "deals",
            Self::Results => "results",
        }
    }

    /// The subject for one chain, e.g. `lilypad.jobs.31337`.
    pub fn subject(self, chain_id: u64) -> String {
        format!("lilypad.{}.{chain_id}", self.word())
    }

    /// The subject that matches every chain, e.g. `lilypad.jobs.*`.
    pub fn all_chains(self) -> String {
        format!("lilypad.{}.*", self.word())
    }
}

/// Subject on which a provider answers deal proposals.
pub fn deal_subject(provider: &str) -> String {
    format!("lilypad.provider.{}.deal", provider.to_ascii_lowercase())
}

/// Settings for [`Bus::connect`].
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// How long an offer lives without a heartbeat.
    pub offer_ttl: Duration,
    /// How long a delivered, unacknowledged message waits before it is delivered again.
    pub ack_wait: Duration,
    /// Name this client shows to the server (appears in `nats-server` monitoring).
    pub client_name: String,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            offer_ttl: Duration::from_secs(30),
            ack_wait: Duration::from_secs(60),
            client_name: "lilypad".into(),
        }
    }
}

/// The outcome of publishing to a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's sequence in its stream (the original's, for a duplicate).
    pub sequence: u64,
    /// True when the server already had a message with this id and dropped this one.
    pub duplicate: bool,
}

/// A connection to NATS with Lilypad's streams and offers bucket set up.
#[derive(Debug, Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    offers: kv::Store,
    book: kv::Store,
    options: BusOptions,
}

/// One entry of a key-value bucket with its revision, for a compare-and-set update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The entry's key.
    pub key: String,
    /// Its revision: an update naming it fails if the entry changed since.
    pub revision: u64,
    /// The decoded value.
    pub value: T,
}

impl Bus {
    /// Connects and creates the streams and the offers bucket when missing (idempotent, so every
    /// service may call it at start).
    pub async fn connect(url: &str, options: BusOptions) -> Result<Self, BusError> {
        // The first connection is tried once, so a wrong URL fails here; once connected, the
        // client reconnects for as long as it takes (with async-nats' backoff, up to 4 s
        // apart): a NATS outage must not leave a long-running service deaf for good, and what
        // was published meanwhile is retried by its publisher.
        let outage = Arc::new(Outage {
            url: without_credentials(url),
            since: Mutex::new(None),
        });
        let client = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(move |event| {
                let outage = outage.clone();
                async move { outage.on(event) }
            })
            .connect(url)
            .await
            .map_err(|e| BusError::Connect {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        // A quick round trip, so a wrong URL fails here rather than at first use.
        client.flush().await.map_err(|e| BusError::Connect {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let js = jetstream::new(client.clone());
        for topic in Topic::ALL {
            ensure_stream(
                &js,
                stream::Config {
                    name: topic.stream().to_owned(),
                    subjects: vec![topic.all_chains()],
                    retention: stream::RetentionPolicy::WorkQueue,
                    storage: stream::StorageType::File,
                    duplicate_window: DUPLICATE_WINDOW,
                    ..Default::default()
                },
            )
            .await?;
        }
        // The bucket's stream is created directly, with the settings the client library would
        // use: its create_key_value first queries account info, which it cannot parse from
        // nats-server 2.9 (Debian's).
        ensure_stream(
            &js,
            stream::Config {
                name: format!("KV_{OFFERS_BUCKET}"),
                description: Some(
                    "resource offers; each expires unless its provider refreshes it".into(),
                ),
                subjects: vec![format!("$KV.{OFFERS_BUCKET}.>")],
                max_messages_per_subject: 1,
                max_age: options.offer_ttl,
                storage: stream::StorageType::Memory,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                duplicate_window: options.offer_ttl.min(Duration::from_secs(120)),
                ..Default::default()
            },
        )
        .await?;
        let offers = js
            .get_key_value(OFFERS_BUCKET)
            .await
            .map_err(|e| nats("opening the offers bucket")(e.to_string()))?;
        // The book is durable (on disk, no age limit): a solver restart must find every job it
        // left waiting. Entries are removed by the solver, subject and all, so nothing piles up.
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{BOOK_BUCKET}"),
            description: Some(
                "the solver's order book: jobs open to a deal that no provider could take yet"
                    .into(),
            ),
            subjects: vec![format!("$KV.{BOOK_BUCKET}.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| nats("creating the book bucket")(e.to_string()))?;
        let book = js
            .get_key_value(BOOK_BUCKET)
            .await
            .map_err(|e| nats("opening the book bucket")(e.to_string()))?;
        Ok(Self {
            client,
            js,
            offers,
            book,
            options,
        })
    }

    /// Publishes `body` to `topic` for `chain_id` and waits for the server to store it. `msg_id`
    /// deduplicates: a second message with the same id within [`DUPLICATE_WINDOW`] is dropped.
    pub async fn publish<T: Serialize>(
        &self,
        topic: Topic,
        chain_id: u64,
        msg_id: &str,
        body: &T,
    ) -> Result<Published, BusError> {
        let subject = topic.subject(chain_id);
        let payload = encode(&subject, body)?;
        let ack = self
            .js
            .send_publish(
                subject.clone(),
                PublishMessage::build().payload(payload).message_id(msg_id),
            )
            .await
            .map_err(|e| nats(format!("publishing to {subject}"))(e.to_string()))?
            .await
            .map_err(|e| nats(format!("storing on {subject}"))(e.to_string()))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// A durable consumer of `topic`, for one chain or (with `None`) all. Every client that opens
    /// the same `durable` name shares its messages: each message goes to one of them, and comes
    /// back to another if it is not acknowledged within the ack wait.
    pub async fn consumer<T: DeserializeOwned>(
        &self,
        topic: Topic,
        chain_id: Option<u64>,
        durable: &str,
    ) -> Result<Consumer<T>, BusError> {
        let stream = self
            .js
            .get_stream(topic.stream())
            .await
            .map_err(|e| nats(format!("opening stream {}", topic.stream()))(e.to_string()))?;
        let filter = chain_id.map_or_else(|| topic.all_chains(), |c| topic.subject(c));
        let inner = stream
            .get_or_create_consumer(
                durable,
                pull::Config {
                    durable_name: Some(durable.to_owned()),
                    filter_subject: filter,
                    ack_wait: self.options.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats(format!("creating consumer {durable}"))(e.to_string()))?;
        Ok(Consumer {
            inner,
            client: self.client.clone(),
            js: self.js.clone(),
            _body: PhantomData,
        })
    }

    /// Puts (or refreshes) `provider`'s offer; it expires after the offer TTL unless put again.
    pub async fn put_offer<T: Serialize>(&self, provider: &str, offer: &T) -> Result<(), BusError> {
        let key = provider.to_ascii_lowercase();
        let payload = encode(&format!("offer {key}"), offer)?;
        self.offers
            .put(&key, payload)
            .await
            .map_err(|e| nats(format!("putting offer {key}"))(e.to_string()))?;
        Ok(())
    }

    /// Removes `provider`'s offer at once (a provider shutting down cleanly).
    pub async fn remove_offer(&self, provider: &str) -> Result<(), BusError> {
        let key = provider.to_ascii_lowercase();
        self.offers
            .purge(&key)
            .await
            .map_err(|e| nats(format!("removing offer {key}"))(e.to_string()))
    }

    /// Every live offer, by provider, and the entries that did not decode (with the reason).
    pub async fn offers<T: DeserializeOwned>(
        &self,
    ) -> Result<(Vec<(String, T)>, Vec<(String, String)>), BusError> {
        // See read_bucket for how the keys are listed; the whole listing is bounded too, so a
        // stalled server cannot stall the solver.
        tokio::time::timeout(OFFERS_LIST_TIMEOUT, self.read_offers())
            .await
            .map_err(|_| {
                nats("listing offers")(format!(
                    "no answer within {OFFERS_LIST_TIMEOUT:?}; is the NATS server overloaded?"
                ))
            })?
    }

    async fn read_offers<T: DeserializeOwned>(
        &self,
    ) -> Result<(Vec<(String, T)>, Vec<(String, String)>), BusError> {
        let (good, bad) = read_bucket(&self.offers, "offers").await?;
        Ok((good.into_iter().map(|v| (v.key, v.value)).collect(), bad))
    }

    /// A signal for every change to an offer (put, refreshed or removed; an offer that expires
    /// gives none). The stream ends at the watch's first error: open another.
    pub async fn offer_changes(
        &self,
    ) -> Result<impl futures_util::Stream<Item = ()> + Send + Unpin + 'static, BusError> {
        let watch = self
            .offers
            .watch_all()
            .await
            .map_err(|e| nats("watching offers")(e.to_string()))?;
        Ok(watch
            .take_while(|change| std::future::ready(change.is_ok()))
            .map(|_| ()))
    }

    /// Adds `value` to the book under `key` unless the key is there already (then returns false
    /// and leaves the entry as it is).
    pub async fn book_add<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, BusError> {
        let payload = encode(&format!("book entry {key}"), value)?;
        match self.book.create(key, payload).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(nats(format!("adding {key} to the book"))(e.to_string())),
        }
    }

    /// Every entry in the book, by key, with its revision; and the entries that did not decode
    /// (with the reason).
    pub async fn book<T: DeserializeOwned>(
        &self,
    ) -> Result<(Vec<Versioned<T>>, Vec<(String, String)>), BusError> {
        tokio::time::timeout(OFFERS_LIST_TIMEOUT, read_bucket(&self.book, "book"))
            .await
            .map_err(|_| {
                nats("listing the book")(format!(
                    "no answer within {OFFERS_LIST_TIMEOUT:?}; is the NATS server overloaded?"
                ))
            })?
    }

    /// Replaces the book entry `key` with `value` if it is still at `revision`: the new revision,
    /// or None when the entry changed (or went) since, e.g. because another solver claimed it.
    pub async fn book_update<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        revision: u64,
    ) -> Result<Option<u64>, BusError> {
        let payload = encode(&format!("book entry {key}"), value)?;
        match self.book.update(key, payload, revision).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(nats(format!("updating {key} in the book"))(e.to_string())),
        }
    }

    /// Removes the book entry `key`, history and all (no delete marker is left behind).
    pub async fn book_remove(&self, key: &str) -> Result<(), BusError> {
        let subject = format!("{}{key}", self.book.prefix);
        self.book
            .stream
            .purge()
            .filter(subject)
            .await
            .map_err(|e| nats(format!("removing {key} from the book"))(e.to_string()))?;
        Ok(())
    }

    /// Sends `body` to `subject` and waits up to `timeout` for the answer.
    pub async fn request<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, BusError> {
        let payload = encode(subject, body)?;
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        let answer = self
            .client
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    BusError::NoResponders(subject.to_owned())
                }
                async_nats::RequestErrorKind::TimedOut => BusError::Timeout {
                    subject: subject.to_owned(),
                    timeout,
                },
                _ => nats(format!("request on {subject}"))(e.to_string()),
            })?;
        let reply: Reply<Resp> =
            serde_json::from_slice(&answer.payload).map_err(|e| BusError::MalformedReply {
                subject: subject.to_owned(),
                reason: e.to_string(),
            })?;
        match reply {
            Reply::Ok(r) => Ok(r),
            Reply::Error(reason) => Err(BusError::Refused {
                subject: subject.to_owned(),
                reason,
            }),
        }
    }

    /// Listens for requests on `subject`.
    pub async fn serve<Req: DeserializeOwned>(
        &self,
        subject: &str,
    ) -> Result<Requests<Req>, BusError> {
        let sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| nats(format!("subscribing to {subject}"))(e.to_string()))?;
        Ok(Requests {
            sub,
            client: self.client.clone(),
            _body: PhantomData,
        })
    }

    /// The underlying client, for subscriptions this crate does not wrap.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Whether the connection to NATS is up now (false while the client reconnects).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// How many times `client` has connected, the first time included.
fn connections(client: &async_nats::Client) -> u64 {
    client
        .statistics()
        .connects
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Logs a NATS outage once when it starts and once when it ends (the client's reconnection
/// attempts, one every few seconds, only at debug level).
#[derive(Debug)]
struct Outage {
    url: String,
    since: Mutex<Option<Instant>>,
}

impl Outage {
    fn on(&self, event: Event) {
        let url = self.url.as_str();
        let mut since = self
            .since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Disconnected => {
                if since.is_none() {
                    *since = Some(Instant::now());
                    tracing::warn!(%url, "lost the connection to NATS; reconnecting until it is back");
                }
            }
            Event::Connected => {
                if let Some(start) = since.take() {
                    tracing::info!(%url, down_for = ?start.elapsed(), "reconnected to NATS");
                }
            }
            Event::ClientError(e) => tracing::debug!(%url, error = %e, "NATS client error"),
            Event::ServerError(e) => {
                tracing::warn!(%url, error = %e, "the NATS server reported an error")
            }
            Event::SlowConsumer(sid) => {
                tracing::warn!(%url, sid, "a NATS subscription fell behind; the client dropped messages to it")
            }
            Event::LameDuckMode => {
                tracing::warn!(%url, "the NATS server is shutting down (lame duck mode); expect a reconnection")
            }
            Event::Draining | Event::Closed => tracing::debug!(%url, %event, "NATS connection"),
        }
    }
}

/// `url` as it may be logged: without a user name or password.
fn without_credentials(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        (None, Some((_, host))) => host.to_owned(),
        _ => url.to_owned(),
    }
}

/// Waits up to `wait` for `client` to be connected; false if it is not by then.
async fn connected_within(client: &async_nats::Client, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if client.connection_state() == State::Connected {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep((deadline - now).min(RECONNECT_POLL)).await;
    }
}

/// How often a fetch waiting for the connection looks at it.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

/// Every live entry of `store` with its revision, sorted by key, and those that did not decode.
async fn read_bucket<T: DeserializeOwned>(
    store: &kv::Store,
    what: &str,
) -> Result<(Vec<Versioned<T>>, Vec<(String, String)>), BusError> {
    // The keys come from the stream's subjects (STREAM.INFO with a subject filter), not from
    // kv::Store::keys: its ordered consumer can wait forever when the bucket's last entries have
    // just expired.
    let prefix = store.prefix.clone();
    let mut subjects = store
        .stream
        .info_with_subjects(format!("{prefix}>"))
        .await
        .map_err(|e| nats(format!("listing {what}"))(e.to_string()))?;
    let mut keys = Vec::new();
    while let Some(subject) = subjects.next().await {
        let (subject, _) = subject.map_err(|e| nats(format!("listing {what}"))(e.to_string()))?;
        if let Some(key) = subject.strip_prefix(&prefix) {
            keys.push(key.to_owned());
        }
    }
    keys.sort();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for key in keys {
        let Some(entry) = store
            .entry(key.as_str())
            .await
            .map_err(|e| nats(format!("reading {what} entry {key}"))(e.to_string()))?
        else {
            continue; // expired or removed between listing and reading
        };
        if entry.operation != kv::Operation::Put {
            continue; // deleted
        }
        match serde_json::from_slice(&entry.value) {
            Ok(value) => good.push(Versioned {
                key,
                revision: entry.revision,
                value,
            }),
            Err(e) => bad.push((key, e.to_string())),
        }
    }
    Ok((good, bad))
}

fn encode<T: Serialize>(subject: &str, body: &T) -> Result<bytes::Bytes, BusError> {
    serde_json::to_vec(body)
        .map(Into::into)
        .map_err(|e| BusError::Encode {
            subject: subject.to_owned(),
            reason: e.to_string(),
        })
}

/// An answer to a request: the response, or why it was refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    /// The request was handled.
    Ok(T),
    /// The request was refused, with the reason.
    Error(String),
}

/// The longest [`Bus::offers`] may take before it fails.
pub const OFFERS_LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long past its `wait` a fetch may take before it is cut (see [`Consumer::fetch`]).
pub const FETCH_GRACE: Duration = Duration::from_millis(100);

/// How long past its `wait` a cut fetch goes on listening, with the connection up all along,
/// before it is sure the server has dropped its pull request (see [`Consumer::fetch`]).
pub const LATE_DELIVERY_WATCH: Duration = Duration::from_secs(5);

/// A durable pull consumer of one topic.
#[derive(Debug)]
pub struct Consumer<T> {
    inner: jetstream::consumer::Consumer<pull::Config>,
    client: async_nats::Client,
    js: jetstream::Context,
    _body: PhantomData<fn() -> T>,
}

/// What a consumer received.
#[derive(Debug)]
pub enum Received<T> {
    /// A message that decoded.
    Message(Box<Delivery<T>>),
    /// A message that did not decode. It has already been terminated in JetStream, so it is not
    /// delivered again; log it.
    Malformed(Malformed),
}

/// A message that did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Its subject.
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// Why it did not decode.
    pub reason: String,
}

impl<T: DeserializeOwned> Consumer<T> {
    /// Waits up to `wait` for at most `max` messages.
    ///
    /// While the connection to NATS is down nothing is asked: the fetch waits up to `wait` for it
    /// to come back, and fails with [`BusError::Disconnected`] if it does not. (A pull request made
    /// while disconnected would only be sent on reconnection, for a fetch long given up.)
    ///
    /// The server ends a fetch with a status message at `wait`; when it does not (nats-server 2.9
    /// sometimes omits it after delivering part of a batch, and a pull request held up by an
    /// outage reaches it late), the fetch is cut at `wait` + [`FETCH_GRACE`] and returns what it
    /// has. Its subscription lives on in the background until the server ends the pull request
    /// (or the connection has been up for `wait` + [`LATE_DELIVERY_WATCH`]): a message the server
    /// still delivers to it is handed back at once for redelivery, rather than left unacknowledged
    /// until its ack wait runs out.
    pub async fn fetch(&self, max: usize, wait: Duration) -> Result<Vec<Received<T>>, BusError> {
        if !connected_within(&self.client, wait).await {
            return Err(BusError::Disconnected {
                op: "fetching messages".into(),
            });
        }
        let deadline = tokio::time::Instant::now() + wait + FETCH_GRACE;
        let inbox = async_nats::Subject::from(self.client.new_inbox());
        let mut sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| nats("fetching messages")(e.to_string()))?;
        self.inner
            .request_batch(
                pull::BatchConfig {
                    batch: max,
                    expires: Some(wait),
                    no_wait: true,
                    ..Default::default()
                },
                inbox,
            )
            .await
            .map_err(|e| nats("fetching messages")(e.to_string()))?;
        let mut out = Vec::new();
        let mut count = 0;
        while count < max {
            let msg = match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => break, // the client is closing
                Err(_) => {
                    hand_back_late(sub, self.client.clone(), self.js.clone(), wait);
                    break;
                }
            };
            match msg.status {
                None | Some(StatusCode::OK) => {}
                Some(StatusCode::IDLE_HEARTBEAT) => continue,
                Some(StatusCode::TIMEOUT | StatusCode::NOT_FOUND) => break, // the pull is over
                Some(status) => {
                    let reason = format!(
                        "the server ended the fetch with status {status} ({})",
                        msg.description.as_deref().unwrap_or("no description")
                    );
                    if out.is_empty() {
                        return Err(nats("fetching messages")(reason));
                    }
                    tracing::warn!(%reason, "fetch ended early; returning what it received");
                    break;
                }
            }
            count += 1;
            let msg = jetstream::Message {
                message: msg,
                context: self.js.clone(),
            };
            let (sequence, delivered) = msg
                .info()
                .map(|i| (i.stream_sequence, i.delivered))
                .unwrap_or((0, 1));
            let subject = msg.subject.to_string();
            match serde_json::from_slice::<T>(&msg.payload) {
                Ok(body) => out.push(Received::Message(Box::new(Delivery {
                    body,
                    subject,
                    sequence,
                    delivered,
                    msg,
                }))),
                Err(e) => {
                    msg.ack_with(jetstream::AckKind::Term)
                        .await
                        .map_err(|e| nats("terminating a malformed message")(e.to_string()))?;
                    out.push(Received::Malformed(Malformed {
                        subject,
                        sequence,
                        reason: e.to_string(),
                    }));
                }
            }
        }
        Ok(out)
    }
}

/// Listens on the subscription of a fetch that was cut before the server ended its pull request,
/// and hands every message still delivered to it back for redelivery at once. Ends when the server
/// ends the pull request, or when the connection has been up, without a reconnection, for `wait` +
/// [`LATE_DELIVERY_WATCH`] (the server has dropped the request by then).
fn hand_back_late(
    mut sub: async_nats::Subscriber,
    client: async_nats::Client,
    js: jetstream::Context,
    wait: Duration,
) {
    tokio::spawn(async move {
        let mut seen = connections(&client);
        loop {
            match tokio::time::timeout(wait + LATE_DELIVERY_WATCH, sub.next()).await {
                Ok(None) => return,
                Ok(Some(msg)) => match msg.status {
                    None | Some(StatusCode::OK) => {
                        let msg = jetstream::Message {
                            message: msg,
                            context: js.clone(),
                        };
                        tracing::debug!(subject = %msg.subject, "a message reached a fetch after it was cut; handed back for redelivery");
                        if let Err(e) = msg.ack_with(jetstream::AckKind::Nak(None)).await {
                            tracing::debug!(error = %e, "handing back a late message failed; it comes back after its ack wait");
                        }
                    }
                    Some(StatusCode::IDLE_HEARTBEAT) => {}
                    Some(_) => return, // the server ended the pull request
                },
                Err(_) => {
                    let now = connections(&client);
                    if client.connection_state() == State::Connected && now == seen {
                        return;
                    }
                    seen = now;
                }
            }
        }
    });
}

/// A decoded message awaiting acknowledgement.
#[derive(Debug)]
pub struct Delivery<T> {
    /// The decoded body.
    pub body: T,
    /// Its subject (which carries the chain id).
    pub subject: String,
    /// Its sequence in the stream.
    pub sequence: u64,
    /// How many times it has been delivered, this time included.
    pub delivered: i64,
    msg: jetstream::Message,
}

impl<T> Delivery<T> {
    /// Done with it: it is removed from the work queue.
    pub async fn ack(self) -> Result<(), BusError> {
        self.msg
            .double_ack()
            .await
            .map_err(|e| nats("acknowledging a message")(e.to_string()))
    }

    /// Not now: deliver it again after `delay` (to this consumer or another).
    pub async fn retry_after(self, delay: Duration) -> Result<(), BusError> {
        self.msg
            .ack_with(jetstream::AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| nats("deferring a message")(e.to_string()))
    }

    /// Never: it will not be delivered again. Say why in the log.
    pub async fn reject(self) -> Result<(), BusError> {
        self.msg
            .ack_with(jetstream::AckKind::Term)
            .await
            .map_err(|e| nats("rejecting a message")(e.to_string()))
    }
}

/// Requests arriving on a subject.
#[derive(Debug)]
pub struct Requests<Req> {
    sub: async_nats::Subscriber,
    client: async_nats::Client,
    _body: PhantomData<fn() -> Req>,
}

/// One request, decoded or not.
#[derive(Debug)]
pub struct Request<Req> {
    /// The body, or why it did not decode (answer with [`Request::refuse`]).
    pub body: Result<Req, String>,
    reply: Option<async_nats::Subject>,
    client: async_nats::Client,
}

impl<Req: DeserializeOwned> Requests<Req> {
    /// The next request, or None when the subscription ends.
    pub async fn next(&mut self) -> Option<Request<Req>> {
        let msg = self.sub.next().await?;
        let body = serde_json::from_slice(&msg.payload).map_err(|e| e.to_string());
        Some(Request {
            body,
            reply: msg.reply,
            client: self.client.clone(),
        })
    }
}

impl<Req> Request<Req> {
    async fn send<T: Serialize>(&self, reply: &Reply<T>) -> Result<(), BusError> {
        let Some(to) = &self.reply else { return Ok(()) }; // a publish, not a request
        let payload = encode(to.as_str(), reply)?;
        self.client
            .publish(to.clone(), payload)
            .await
            .map_err(|e| nats("answering a request")(e.to_string()))
    }

    /// Answers with a response.
    pub async fn respond<T: Serialize>(&self, response: T) -> Result<(), BusError> {
        self.send(&Reply::Ok(response)).await
    }

    /// Answers with a refusal and its reason.
    pub async fn refuse(&self, reason: impl Into<String>) -> Result<(), BusError> {
        self.send(&Reply::<()>::Error(reason.into())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_documented_scheme() {
        assert_eq!(Topic::Jobs.subject(31337), "lilypad.jobs.31337");
        assert_eq!(Topic::Deals.all_chains(), "lilypad.deals.*");
        assert_eq!(Topic::Results.stream(), "LILYPAD_RESULTS");
        assert_eq!(deal_subject("0xABCdef"), "lilypad.provider.0xabcdef.deal");
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(
            without_credentials("nats://user:secret@10.0.0.1:4222"),
            "nats://10.0.0.1:4222"
        );
        assert_eq!(without_credentials("token@host:4222"), "host:4222");
        assert_eq!(
            without_credentials("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
    }

    #[test]
    fn replies_encode_as_tagged_json() {
        assert_eq!(serde_json::to_string(&Reply::Ok(5)).unwrap(), r#"{"ok":5}"#);
        assert_eq!(
            serde_json::to_string(&Reply::<u8>::Error("busy".into())).unwrap(),
            r#"{"error":"busy"}"#
        );
    }
}
