//! Child processes for the services a test needs, each on a loopback port of its own.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::wire;

/// Why a service could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The program is not installed where it was looked for.
    #[error("{program} not found ({looked}); run ./script/setup, which installs it")]
    NotInstalled {
        /// The program.
        program: String,
        /// Where it was looked for.
        looked: String,
    },
    /// The operating system refused something (spawning, a temporary directory, a port).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program started but never became ready.
    #[error("{program} did not become ready on 127.0.0.1:{port} within {waited:?}: {last}; its log is {}", log.display())]
    NotReady {
        /// The program.
        program: String,
        /// The port it was given.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The last readiness check's failure.
        last: String,
        /// Its log file (kept for inspection).
        log: PathBuf,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

/// A loopback port that was free a moment ago. The service that takes it may still lose a race with
/// another process; [`Service::spawn`] retries on a new port when that happens.
pub fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding a loopback port"))?;
    Ok(listener
        .local_addr()
        .map_err(io("reading the bound port"))?
        .port())
}

fn on_path(program: &str) -> Result<PathBuf, HarnessError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::NotInstalled {
            program: program.to_owned(),
            looked: "on PATH".to_owned(),
        })
}

/// Path of a Foundry tool (`anvil`, `forge`, `cast`): `$LILYPAD_FOUNDRY_BIN/<tool>` when set, else
/// `contracts/node_modules/.bin/<tool>` in this repository.
pub fn foundry_tool(tool: &str) -> Result<PathBuf, HarnessError> {
    let dir = std::env::var_os("LILYPAD_FOUNDRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/node_modules/.bin")
        });
    let path = dir.join(tool);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::NotInstalled {
            program: tool.to_owned(),
            looked: format!("at {}", path.display()),
        })
    }
}

/// A running service: killed, and its scratch directory removed, on drop. Its log stays in the
/// scratch directory while it runs; when a start fails the log is kept and its path reported.
#[derive(Debug)]
pub struct Service {
    name: String,
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Service {
    /// Starts `program` with the arguments `args(port, scratch_dir)` and waits until `ready(port)`
    /// succeeds. If the process dies early (most often: the port was taken in the meantime), it is
    /// tried again on another port, up to three times.
    pub fn spawn(
        program: &Path,
        args: impl Fn(u16, &Path) -> Vec<String>,
        ready: impl Fn(u16) -> Result<(), String>,
        timeout: Duration,
    ) -> Result<Self, HarnessError> {
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut last_error = None;
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("lilypad-{name}-"))
                .tempdir()
                .map_err(io("creating a scratch directory"))?;
            let port = free_port()?;
            let log_path = dir.path().join("log");
            let log = std::fs::File::create(&log_path).map_err(io("creating the log file"))?;
            let log_err = log.try_clone().map_err(io("opening the log file"))?;
            let child = Command::new(program)
                .args(args(port, dir.path()))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(io(format!("starting {}", program.display())))?;
            let mut service = Self {
                name: name.clone(),
                child,
                port,
                dir,
            };
            match service.wait_ready(&ready, timeout) {
                Ok(()) => return Ok(service),
                Err(e) => {
                    let exited = matches!(service.child.try_wait(), Ok(Some(_)));
                    let kept = service.keep_log();
                    last_error = Some(HarnessError::NotReady {
                        program: name.clone(),
                        port,
                        waited: timeout,
                        last: e,
                        log: kept,
                    });
                    if !exited {
                        break; // running but not answering: another port will not help
                    }
                }
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::NotInstalled {
            program: name,
            looked: "nowhere".into(),
        }))
    }

    fn wait_ready(
        &mut self,
        ready: &impl Fn(u16) -> Result<(), String>,
        timeout: Duration,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}"));
            }
            let last = match TcpStream::connect(("127.0.0.1", self.port)) {
                Ok(_) => match ready(self.port) {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                Err(e) => format!("connecting: {e}"),
            };
            if start.elapsed() > timeout {
                return Err(last);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Copies the log out of the scratch directory (which is removed on drop) and returns its path.
    fn keep_log(&self) -> PathBuf {
        let kept = std::env::temp_dir().join(format!("lilypad-{}-{}.log", self.name, self.port));
        match std::fs::copy(self.dir.path().join("log"), &kept) {
            Ok(_) => kept,
            Err(_) => self.dir.path().join("log"),
        }
    }

    /// The loopback port the service listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, e.g. to kill it in a test of what happens when a service dies.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The service's scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the service has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nats-server` with JetStream, storing in its scratch directory.
#[derive(Debug)]
pub struct Nats(pub Service);

impl Nats {
    /// Starts NATS with JetStream on a free loopback port.
    pub fn start() -> Result<Self, HarnessError> {
        let program = on_path("nats-server")?;
        let service = Service::spawn(
            &program,
            |port, dir| {
                vec![
                    "--jetstream".into(),
                    "--addr".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                    "--store_dir".into(),
                    dir.join("js").display().to_string(),
                ]
            },
            |port| match wire::nats_info(port) {
                Ok(info) if info.contains("\"jetstream\":true") => Ok(()),
                Ok(_) => Err("it answers without JetStream".into()),
                Err(e) => Err(e.to_string()),
            },
            Duration::from_secs(20),
        )?;
        Ok(Self(service))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port())
    }
}

/// `redis-server` with persistence off.
#[derive(Debug)]
pub struct Redis(pub Service);

impl Redis {
    /// Starts Redis on a free loopback port.
    pub fn start() -> Result<Self, HarnessError> {
        let program = on_path("redis-server")?;
        let service = Service::spawn(
            &program,
            |port, dir| {
                vec![
                    "--port".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--dir".into(),
                    dir.display().to_string(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                ]
            },
            |port| match wire::redis_command(port, &["PING"]) {
                Ok(reply) if reply == "+PONG" => Ok(()),
                Ok(reply) => Err(format!("PING answered {reply:?}")),
                Err(e) => Err(e.to_string()),
            },
            Duration::from_secs(20),
        )?;
        Ok(Self(service))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port())
    }
}

/// How often a dev chain makes a block when no transaction comes: with anvil's mixed mining a
/// transaction is still mined at once, and the chain's clock also moves between transactions, as
/// a real chain's does (so deadlines pass without another transaction to carry them).
pub const DEV_BLOCK_TIME_SECS: u64 = 1;

/// An anvil dev chain.
#[derive(Debug)]
pub struct Anvil {
    /// The process.
    pub service: Service,
    /// The chain id it was started with.
    pub chain_id: u64,
}

impl Anvil {
    /// Starts anvil with `chain_id` on a free loopback port, as the demo runs it: transactions
    /// mined at once, and a block every [`DEV_BLOCK_TIME_SECS`] besides (`--mixed-mining`).
    pub fn start(chain_id: u64) -> Result<Self, HarnessError> {
        let block_time = DEV_BLOCK_TIME_SECS.to_string();
        Self::start_with(chain_id, &["--block-time", &block_time, "--mixed-mining"])
    }

    /// Starts anvil with exactly these mining arguments (none: instant mining only, so the
    /// chain's clock stands still between transactions; or e.g. `--no-mining`).
    pub fn start_with(chain_id: u64, extra: &[&str]) -> Result<Self, HarnessError> {
        let program = foundry_tool("anvil")?;
        let service = Service::spawn(
            &program,
            |port, _| {
                let mut args: Vec<String> = vec![
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--port".into(),
                    port.to_string(),
                    "--chain-id".into(),
                    chain_id.to_string(),
                ];
                args.extend(extra.iter().map(|s| (*s).to_owned()));
                args
            },
            |port| {
                wire::json_rpc(port, "eth_chainId", "[]")
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            Duration::from_secs(30),
        )?;
        Ok(Self { service, chain_id })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.service.port())
    }
}
