//! A JSON-RPC endpoint that fails the way public ones do: an HTTP proxy on a loopback port in
//! front of a real node (anvil), which answers a chosen share of requests badly.
//!
//! ```no_run
//! # fn f(anvil: &lilypad_e2e::Anvil) -> Result<(), lilypad_e2e::HarnessError> {
//! use lilypad_e2e::{Fault, FaultPlan, FaultyRpc};
//! // 5% of requests fail, each with one of the five faults, in an order fixed by the seed.
//! let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::random(0.05, 7))?;
//! let url = proxy.url(); // give this to the code under test
//! proxy.set_rate(0.25);
//! proxy.fail_method("eth_estimateGas", Fault::Http503, 3); // the next three estimates fail
//! let stats = proxy.stats();
//! println!("{} requests, {} faulted", stats.seen(), stats.faulted());
//! # Ok(()) }
//! ```
//!
//! The faults ([`Fault`]): HTTP 503 with an empty body; a delay (0.5 to 3 s by default) before the
//! request is forwarded; a connection reset before anything is forwarded; HTTP 200 with a body
//! that is not JSON; and a request forwarded to the node whose answer is then lost (the request
//! takes effect on the node, the client sees a reset): the one a client cannot tell from a reset,
//! and the reason a sent transaction must be recognised when it is sent again.
//!
//! A JSON-RPC batch is one HTTP request: it is faulted (or not) as a whole, and counted once for
//! each method in it. Methods named in [`FaultPlan::spare`] are never faulted at random (targeted
//! rules still apply).

use std::collections::BTreeMap;
use std::fmt;
use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::process::HarnessError;

/// One way an answer goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// HTTP 503 with an empty body; nothing reaches the node.
    Http503,
    /// The request waits (0.5 to 3 s unless [`FaultPlan::delays`] says otherwise), then is
    /// forwarded and answered normally.
    Delay,
    /// The connection is reset before anything reaches the node.
    Reset,
    /// HTTP 200 with a body that is not JSON; nothing reaches the node.
    Garbage,
    /// The request is forwarded and takes effect on the node; its answer is dropped and the
    /// connection reset.
    LoseAnswer,
    /// The request is forwarded at once and takes effect on the node; its answer is held as long
    /// as [`Fault::Delay`] waits. Only by [`FaultyRpc::fail_method`]: not one of [`Fault::ALL`].
    DelayAnswer,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 5] = [
        Fault::Http503,
        Fault::Delay,
        Fault::Reset,
        Fault::Garbage,
        Fault::LoseAnswer,
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Http503 => "http-503",
            Fault::Delay => "delay",
            Fault::Reset => "reset",
            Fault::Garbage => "garbage",
            Fault::LoseAnswer => "lose-answer",
            Fault::DelayAnswer => "delay-answer",
        })
    }
}

/// Which requests fail, and how, when nothing targeted applies.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    rate: f64,
    seed: u64,
    kinds: Vec<Fault>,
    spared: Vec<String>,
    delay: (Duration, Duration),
}

impl FaultPlan {
    /// No random faults (targeted ones can still be set on the proxy).
    pub fn none() -> Self {
        Self::random(0.0, 0)
    }

    /// A share `rate` (0 to 1) of requests fail, each with one of [`Fault::ALL`] picked at random;
    /// which requests and which faults follow from `seed`.
    pub fn random(rate: f64, seed: u64) -> Self {
        Self {
            rate: rate.clamp(0.0, 1.0),
            seed,
            kinds: Fault::ALL.to_vec(),
            spared: Vec::new(),
            delay: (Duration::from_millis(500), Duration::from_secs(3)),
        }
    }

    /// Random faults are picked among `kinds` only (an empty list means none).
    pub fn only(mut self, kinds: &[Fault]) -> Self {
        self.kinds = kinds.to_vec();
        self
    }

    /// `method` is never faulted at random (e.g. a test's own `evm_mine`).
    pub fn spare(mut self, method: &str) -> Self {
        self.spared.push(method.to_owned());
        self
    }

    /// [`Fault::Delay`] waits between `min` and `max`.
    pub fn delays(mut self, min: Duration, max: Duration) -> Self {
        self.delay = (min, max.max(min));
        self
    }
}

/// What the proxy saw of one method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MethodStats {
    /// Requests (or batch members) for the method.
    pub seen: u64,
    /// Of those, how many were faulted, by fault.
    pub faulted: BTreeMap<Fault, u64>,
}

/// What the proxy saw, by method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// Per JSON-RPC method (`"<not json-rpc>"` for bodies that were not).
    pub methods: BTreeMap<String, MethodStats>,
}

impl RpcStats {
    /// Every request (batch members counted one by one).
    pub fn seen(&self) -> u64 {
        self.methods.values().map(|m| m.seen).sum()
    }

    /// Every faulted request (batch members counted one by one).
    pub fn faulted(&self) -> u64 {
        self.methods.values().flat_map(|m| m.faulted.values()).sum()
    }

    /// Requests for `method`.
    pub fn seen_of(&self, method: &str) -> u64 {
        self.methods.get(method).map_or(0, |m| m.seen)
    }

    /// Faulted requests for `method`.
    pub fn faulted_of(&self, method: &str) -> u64 {
        self.methods
            .get(method)
            .map_or(0, |m| m.faulted.values().sum())
    }

    /// Faulted requests of any method with `fault`.
    pub fn faulted_with(&self, fault: Fault) -> u64 {
        self.methods
            .values()
            .filter_map(|m| m.faulted.get(&fault))
            .sum()
    }
}

impl fmt::Display for RpcStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requests, {} faulted", self.seen(), self.faulted())?;
        for fault in Fault::ALL {
            let n = self.faulted_with(fault);
            if n > 0 {
                write!(f, ", {fault} {n}")?;
            }
        }
        Ok(())
    }
}

/// A rule a test sets at run time: `method` fails with `fault` a number of times, or until a
/// moment.
#[derive(Debug, Clone)]
struct Rule {
    method: String,
    fault: Fault,
    left: Option<u32>,
    until: Option<Instant>,
}

struct State {
    plan: FaultPlan,
    rng: fastrand::Rng,
    rules: Vec<Rule>,
    stats: RpcStats,
}

impl State {
    /// The fault for a request carrying `methods`, if any, counting it.
    fn decide(&mut self, methods: &[String]) -> Option<Fault> {
        let now = Instant::now();
        self.rules
            .retain(|r| r.left != Some(0) && r.until.is_none_or(|t| t > now));
        let targeted = self
            .rules
            .iter_mut()
            .find(|r| methods.contains(&r.method))
            .map(|r| {
                if let Some(left) = &mut r.left {
                    *left -= 1;
                }
                r.fault
            });
        let fault = targeted.or_else(|| {
            let spared = methods.iter().any(|m| self.plan.spared.contains(m));
            // The draw is made for every request, spared or not, so a seed gives the same
            // sequence whatever the methods.
            let hit = self.rng.f64() < self.plan.rate;
            let kind = self.rng.usize(..self.plan.kinds.len().max(1));
            (hit && !spared)
                .then(|| self.plan.kinds.get(kind).copied())
                .flatten()
        });
        for m in methods {
            let entry = self.stats.methods.entry(m.clone()).or_default();
            entry.seen += 1;
            if let Some(f) = fault {
                *entry.faulted.entry(f).or_default() += 1;
            }
        }
        fault
    }

    fn delay(&mut self) -> Duration {
        let (min, max) = self.plan.delay;
        let span = (max - min).as_millis() as u64;
        min + Duration::from_millis(self.rng.u64(0..=span))
    }
}

/// The fault-injecting proxy. Stopped (its port closed, live connections cut) when dropped.
pub struct FaultyRpc {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultyRpc {
    /// Starts a proxy in front of the JSON-RPC endpoint `target` (an `http://host:port[/path]`
    /// URL, e.g. [`crate::Anvil::url`]), failing requests as `plan` says.
    pub fn start(target: &str, plan: FaultPlan) -> Result<Self, HarnessError> {
        let target = Target::parse(target)?;
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| HarnessError::Io { what, source }
        };
        let listener = StdListener::bind("127.0.0.1:0").map_err(io("binding the RPC proxy"))?;
        listener
            .set_nonblocking(true)
            .map_err(io("setting up the RPC proxy's port"))?;
        let port = listener
            .local_addr()
            .map_err(io("reading the RPC proxy's port"))?
            .port();
        let state = Arc::new(Mutex::new(State {
            rng: fastrand::Rng::with_seed(plan.seed),
            plan,
            rules: Vec::new(),
            stats: RpcStats::default(),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting the RPC proxy's runtime"))?;
        let (stop, mut stopped) = watch::channel(false);
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rpc-faults-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    let target = Arc::new(target);
                    loop {
                        tokio::select! {
                            _ = stopped.changed() => return,
                            accepted = listener.accept() => {
                                let Ok((client, _)) = accepted else { continue };
                                let _ = client.set_nodelay(true);
                                tokio::spawn(serve(client, target.clone(), shared.clone()));
                            }
                        }
                    }
                });
                // Dropping the runtime here cancels every connection's task.
            })
            .map_err(io("starting the RPC proxy's thread"))?;
        Ok(Self {
            port,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: the URL to give the code under test.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Fails a share `rate` (0 to 1) of requests from now on.
    pub fn set_rate(&self, rate: f64) {
        self.lock().plan.rate = rate.clamp(0.0, 1.0);
    }

    /// The next `times` requests carrying `method` fail with `fault` (before any random fault).
    pub fn fail_method(&self, method: &str, fault: Fault, times: u32) {
        self.lock().rules.push(Rule {
            method: method.to_owned(),
            fault,
            left: Some(times),
            until: None,
        });
    }

    /// Every request carrying `method` fails with `fault` for the next `period`.
    pub fn fail_method_for(&self, method: &str, fault: Fault, period: Duration) {
        self.lock().rules.push(Rule {
            method: method.to_owned(),
            fault,
            left: None,
            until: Some(Instant::now() + period),
        });
    }

    /// Drops every targeted rule (random faults go on at the plan's rate).
    pub fn clear_rules(&self) {
        self.lock().rules.clear();
    }

    /// What the proxy has seen and faulted so far.
    pub fn stats(&self) -> RpcStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock (none is expected) leaves the counters usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultyRpc {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where requests are forwarded.
#[derive(Debug)]
struct Target {
    /// `host:port`.
    authority: String,
    /// The request path (`/` when none).
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, HarnessError> {
        let bad = |why: &str| HarnessError::Io {
            what: format!("the RPC proxy's target {url:?}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// targets are proxied"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path: path.to_owned(),
        })
    }
}

/// One HTTP request as read from a client.
struct Request {
    body: Vec<u8>,
    close: bool,
}

/// Serves one client connection, request after request (HTTP/1.1 keep-alive).
async fn serve(mut client: TcpStream, target: Arc<Target>, state: Arc<Mutex<State>>) {
    let mut buffered = Vec::new();
    loop {
        let Ok(Some(request)) = read_request(&mut client, &mut buffered).await else {
            return;
        };
        let methods = methods_of(&request.body);
        let (fault, delay) = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let fault = s.decide(&methods);
            let delay = matches!(fault, Some(Fault::Delay | Fault::DelayAnswer)).then(|| s.delay());
            (fault, delay)
        };
        let answer = match fault {
            Some(Fault::Http503) => {
                Answer::Respond(response("503 Service Unavailable", "text/plain", b""))
            }
            Some(Fault::Garbage) => Answer::Respond(response(
                "200 OK",
                "application/json",
                b"<html><body>502 Bad Gateway: upstream hiccup</body></html>",
            )),
            Some(Fault::Reset) => Answer::Reset,
            Some(Fault::LoseAnswer) => {
                // The node acts on the request; the client never learns how.
                let _ = forward(&target, &request.body).await;
                Answer::Reset
            }
            Some(Fault::DelayAnswer) => match forward(&target, &request.body).await {
                Ok((status, body)) => {
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    Answer::Respond(response(&status, "application/json", &body))
                }
                Err(_) => Answer::Reset,
            },
            Some(Fault::Delay) | None => {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                match forward(&target, &request.body).await {
                    Ok((status, body)) => {
                        Answer::Respond(response(&status, "application/json", &body))
                    }
                    // The node itself is gone: the client sees what it would see without us.
                    Err(_) => Answer::Reset,
                }
            }
        };
        match answer {
            Answer::Reset => {
                let _ = client.set_zero_linger();
                return;
            }
            Answer::Respond(bytes) => {
                if client.write_all(&bytes).await.is_err() || request.close {
                    return;
                }
            }
        }
    }
}

enum Answer {
    Respond(Vec<u8>),
    Reset,
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The JSON-RPC methods a body carries (one, or a batch's).
fn methods_of(body: &[u8]) -> Vec<String> {
    let method = |v: &serde_json::Value| {
        v.get("method")
            .and_then(|m| m.as_str())
            .unwrap_or("<no method>")
            .to_owned()
    };
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => items.iter().map(method).collect(),
        Ok(v) => vec![method(&v)],
        Err(_) => vec!["<not json-rpc>".to_owned()],
    }
}

/// Most bytes of headers accepted from a client.
const MAX_HEADER: usize = 64 * 1024;

/// Reads one request; `None` when the client closed the connection between requests.
async fn read_request(
    client: &mut TcpStream,
    buffered: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let end = loop {
        if let Some(i) = find(buffered, b"\r\n\r\n") {
            break i;
        }
        if buffered.len() > MAX_HEADER {
            return Err(std::io::Error::other("request headers too long"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..end]).to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let body_start = end + 4;
    while buffered.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
    let body = buffered[body_start..body_start + length].to_vec();
    buffered.drain(..body_start + length);
    Ok(Some(Request { body, close }))
}

/// Sends `body` to the node on a connection of its own; returns the status line's code and
/// reason, and the body.
async fn forward(target: &Target, body: &[u8]) -> std::io::Result<(String, Vec<u8>)> {
    let mut node = TcpStream::connect(&target.authority).await?;
    let _ = node.set_nodelay(true);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        body.len()
    );
    node.write_all(head.as_bytes()).await?;
    node.write_all(body).await?;
    let mut raw = Vec::new();
    node.read_to_end(&mut raw).await?;
    let end = find(&raw, b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("the node's answer has no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(_, s)| s.trim().to_owned())
        .ok_or_else(|| std::io::Error::other("the node's answer has no status line"))?;
    let chunked = head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        let length = head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        });
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end =
            find(data, b"\r\n").ok_or_else(|| std::io::Error::other("a chunk has no size line"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("a chunk's size is not hex"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::{Read, Write};

    use super::*;
    use crate::Anvil;

    /// What a plain HTTP client sees for one request.
    #[derive(Debug)]
    enum Seen {
        Answer { status: u16, body: String },
        Cut,
    }

    fn post(port: u16, body: &str) -> Seen {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = Vec::new();
        match s.read_to_end(&mut raw) {
            Err(_) | Ok(0) => return Seen::Cut,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Seen::Answer {
            status,
            body: body.to_owned(),
        }
    }

    fn call(method: &str) -> String {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":[]}}"#)
    }

    fn block_number(anvil: &Anvil) -> u64 {
        let v = crate::json_rpc(anvil.service.port(), "eth_blockNumber", "[]").unwrap();
        u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    fn json_result(seen: &Seen) -> serde_json::Value {
        let Seen::Answer { status: 200, body } = seen else {
            panic!("expected an answer, got {seen:?}");
        };
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["result"].clone()
    }

    #[test]
    fn without_faults_every_request_is_answered_by_the_node() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        let seen = post(proxy.port(), &call("eth_chainId"));
        assert_eq!(json_result(&seen), "0x7a69");
        assert_eq!(proxy.stats().seen_of("eth_chainId"), 1);
        assert_eq!(proxy.stats().faulted(), 0);
    }

    #[test]
    fn http_503_comes_with_an_empty_body_and_never_reaches_the_node() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        proxy.fail_method("evm_mine", Fault::Http503, 1);
        let before = block_number(&anvil);
        let seen = post(proxy.port(), &call("evm_mine"));
        assert!(
            matches!(&seen, Seen::Answer { status: 503, body } if body.is_empty()),
            "{seen:?}"
        );
        assert_eq!(block_number(&anvil), before, "nothing was mined");
        // One time only: the next request goes through.
        json_result(&post(proxy.port(), &call("evm_mine")));
        assert_eq!(block_number(&anvil), before + 1);
        assert_eq!(proxy.stats().faulted_with(Fault::Http503), 1);
    }

    #[test]
    fn garbage_is_a_200_whose_body_is_not_json() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        proxy.fail_method("eth_chainId", Fault::Garbage, 1);
        let seen = post(proxy.port(), &call("eth_chainId"));
        let Seen::Answer { status: 200, body } = &seen else {
            panic!("{seen:?}")
        };
        assert!(
            serde_json::from_str::<serde_json::Value>(body).is_err(),
            "{body}"
        );
    }

    #[test]
    fn a_reset_cuts_the_connection_before_the_node_sees_the_request() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        proxy.fail_method("evm_mine", Fault::Reset, 1);
        let before = block_number(&anvil);
        let seen = post(proxy.port(), &call("evm_mine"));
        assert!(matches!(seen, Seen::Cut), "{seen:?}");
        assert_eq!(block_number(&anvil), before);
    }

    #[test]
    fn a_lost_answer_takes_effect_on_the_node_and_the_client_sees_a_cut() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        proxy.fail_method("evm_mine", Fault::LoseAnswer, 1);
        let before = block_number(&anvil);
        let seen = post(proxy.port(), &call("evm_mine"));
        assert!(matches!(seen, Seen::Cut), "{seen:?}");
        assert_eq!(block_number(&anvil), before + 1, "the block was mined");
        assert_eq!(proxy.stats().faulted_with(Fault::LoseAnswer), 1);
    }

    #[test]
    fn a_delayed_request_is_answered_by_the_node() {
        let anvil = Anvil::start(31337).unwrap();
        let plan = FaultPlan::none().delays(Duration::from_millis(50), Duration::from_millis(100));
        let proxy = FaultyRpc::start(&anvil.url(), plan).unwrap();
        proxy.fail_method("eth_chainId", Fault::Delay, 1);
        let seen = post(proxy.port(), &call("eth_chainId"));
        assert_eq!(json_result(&seen), "0x7a69");
        assert_eq!(proxy.stats().faulted_with(Fault::Delay), 1);
    }

    #[test]
    fn a_method_fails_for_a_while_then_recovers() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        proxy.fail_method_for("eth_chainId", Fault::Http503, Duration::from_secs(3600));
        for _ in 0..3 {
            let seen = post(proxy.port(), &call("eth_chainId"));
            assert!(matches!(seen, Seen::Answer { status: 503, .. }), "{seen:?}");
        }
        // Other methods are untouched.
        json_result(&post(proxy.port(), &call("eth_blockNumber")));
        proxy.clear_rules();
        json_result(&post(proxy.port(), &call("eth_chainId")));
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.seen_of("eth_chainId"),
                stats.faulted_of("eth_chainId")
            ),
            (4, 3)
        );
    }

    #[test]
    fn a_batch_is_faulted_whole_and_counted_per_method() {
        let anvil = Anvil::start(31337).unwrap();
        let proxy = FaultyRpc::start(&anvil.url(), FaultPlan::none()).unwrap();
        let batch = format!("[{},{}]", call("eth_chainId"), call("eth_blockNumber"));
        let seen = post(proxy.port(), &batch);
        let Seen::Answer { status: 200, body } = &seen else {
            panic!("{seen:?}")
        };
        let answers: Vec<serde_json::Value> = serde_json::from_str(body).unwrap();
        assert_eq!(answers.len(), 2);
        proxy.fail_method("eth_blockNumber", Fault::Http503, 1);
        let seen = post(proxy.port(), &batch);
        assert!(matches!(seen, Seen::Answer { status: 503, .. }), "{seen:?}");
        let stats = proxy.stats();
        assert_eq!(stats.seen_of("eth_chainId"), 2);
        assert_eq!(stats.faulted_of("eth_chainId"), 1);
        assert_eq!(stats.faulted_of("eth_blockNumber"), 1);
    }

    #[test]
    fn random_faults_follow_the_rate_and_the_seed_and_spare_what_they_are_told() {
        let anvil = Anvil::start(31337).unwrap();
        let run = |seed: u64| {
            let plan = FaultPlan::random(0.5, seed).only(&[Fault::Http503, Fault::Garbage]);
            let proxy = FaultyRpc::start(&anvil.url(), plan).unwrap();
            let outcomes: Vec<bool> = (0..40)
                .map(|_| {
                    matches!(
                        post(proxy.port(), &call("eth_chainId")),
                        Seen::Answer { status: 200, ref body } if body.contains("0x7a69")
                    )
                })
                .collect();
            (outcomes, proxy.stats())
        };
        let (a, stats) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b, "the same seed fails the same requests");
        let failed = a.iter().filter(|ok| !**ok).count() as u64;
        assert_eq!(stats.faulted(), failed);
        assert!((5..=35).contains(&failed), "about half of 40: {failed}");
        assert!(stats.faulted_with(Fault::Http503) > 0 && stats.faulted_with(Fault::Garbage) > 0);

        let plan = FaultPlan::random(1.0, 1).spare("eth_chainId");
        let proxy = FaultyRpc::start(&anvil.url(), plan).unwrap();
        json_result(&post(proxy.port(), &call("eth_chainId")));
        proxy.set_rate(0.0);
        let proxy2 = FaultyRpc::start(&anvil.url(), FaultPlan::random(1.0, 1)).unwrap();
        proxy2.set_rate(0.0);
        json_result(&post(proxy2.port(), &call("eth_blockNumber")));
        assert_eq!(
            proxy2.stats().faulted(),
            0,
            "set_rate(0) stops random faults"
        );
    }
}
