//! Running one job: image, container, output, result.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ImageInspect;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, KillContainerOptions,
    ListContainersOptions, RemoveContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;
use lilypad_modules::{InlineOutput, Module, PreparedJob};
use lilypad_results::{FetchLimits, Fetcher, ResultStore, layout};
use tokio_util::task::TaskTracker;

use crate::container::{LABEL_MANAGED, LABEL_PROVIDER, Sandbox, container_config};
use crate::gpu::{Gpu, GpuPool};
use crate::outcome::{ErrorKind, Outcome, Status};

/// When to pull a module's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull when the image is not present (the default).
    #[default]
    IfNotPresent,
    /// Never pull: a missing image is an `ImageUnavailable` outcome.
    Never,
}

/// How the executor runs jobs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// This provider's id; every container is labelled with it, and
    /// [`Executor::cleanup_leftovers`] removes only containers that carry it.
    pub provider_id: String,
    /// Where job scratch directories are made (each job gets its own, removed after the job).
    pub work_dir: PathBuf,
    /// When to pull images.
    pub pull_policy: PullPolicy,
    /// How long a pull may take before the job is reported `ImageUnavailable`.
    pub pull_timeout: Duration,
    /// Most processes and threads one container may have.
    pub pids_limit: i64,
    /// Most bytes kept of each of stdout and stderr; the rest is read and dropped, and the
    /// outcome says it was truncated.
    pub max_log_bytes: usize,
    /// Run containers as this user (`uid[:gid]`) instead of the image's.
    pub user: Option<String>,
    /// How long to wait for Docker to confirm a killed container has stopped.
    pub kill_grace: Duration,
    /// IPFS trustless gateways (base URLs) inputs given by CID are fetched from, in order.
    pub ipfs_gateways: Vec<String>,
    /// How large an input fetched by CID may be, and how long its download may take.
    pub fetch_limits: FetchLimits,
}

impl ExecutorConfig {
    /// Defaults for a provider called `provider_id` working in `work_dir`: pull if not present
    /// (10 minute limit), 1024 processes, 10 MiB of each output stream, the image's user; no IPFS
    /// gateway (inputs by CID must already be in the store), 1 GiB and 10 minutes per CID.
    pub fn new(provider_id: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        Self {
            provider_id: provider_id.into(),
            work_dir: work_dir.into(),
            pull_policy: PullPolicy::IfNotPresent,
            pull_timeout: Duration::from_secs(600),
            pids_limit: 1024,
            max_log_bytes: 10 << 20,
            user: None,
            kill_grace: Duration::from_secs(30),
            ipfs_gateways: Vec::new(),
            fetch_limits: FetchLimits::default(),
        }
    }
}

/// Why the executor itself could not be set up or could not clean up.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The Docker engine did not answer.
    #[error(
        "cannot reach the Docker engine: {0} (fix: start Docker, e.g. ./script/setup, and check this user may use /var/run/docker.sock)"
    )]
    Docker(#[from] bollard::errors::Error),
    /// The work directory could not be created.
    #[error("cannot create the work directory {}: {source} (fix: choose a writable directory)", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The provider id cannot be used as a label value.
    #[error(
        "provider id {0:?} is empty or has control characters (fix: use a plain name such as the provider's address)"
    )]
    BadProviderId(String),
}

/// One job to run: a module, inputs already checked and rendered by
/// [`lilypad_modules::Module::prepare`], and the inline output limit.
#[derive(Debug, Clone)]
pub struct JobSpec<'a> {
    /// The job's id (a label, and in the outcome).
    pub job_id: &'a str,
    /// Its module.
    pub module: &'a Module,
    /// Its rendered command, environment and input files.
    pub prepared: &'a PreparedJob,
    /// Most bytes of inline output.
    pub max_output_bytes: u64,
}

/// Runs jobs in Docker containers. Cheap to share: every method takes `&self`, and jobs may run
/// concurrently.
#[derive(Debug, Clone)]
pub struct Executor {
    docker: Docker,
    config: ExecutorConfig,
    store: std::sync::Arc<ResultStore>,
    fetcher: Fetcher,
    gpus: GpuPool,
    /// Every container's life and every removal it starts (shared by clones).
    tasks: TaskTracker,
}

/// Bytes kept up to a cap; the rest counted and dropped.
#[derive(Debug, Default)]
struct Capped {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, data: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// Removes the container when dropped, unless disarmed: covers errors, timeouts, panics and a
/// caller that drops the job's future.
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
    /// The executor's tasks: the removal a drop starts is one of them.
    tasks: TaskTracker,
}

impl ContainerGuard {
    async fn remove(mut self) -> Result<(), bollard::errors::Error> {
        match self.id.take() {
            Some(id) => remove(&self.docker, &id).await,
            None => Ok(()),
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let docker = self.docker.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                self.tasks.spawn_on(
                    async move {
                        let _ = remove(&docker, &id).await;
                    },
                    &handle,
                );
            }
        }
    }
}

async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn docker_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// What the run of a container produced before the result is assembled.
struct Ran {
    exit_code: i64,
    stdout: Capped,
    stderr: Capped,
    oom_killed: bool,
    timed_out: bool,
    run_time: Duration,
}

impl Executor {
    /// Connects to the local Docker engine (`DOCKER_HOST` or the default socket), agreeing on an
    /// API version it speaks, and checks it answers. Results are stored in `store`; `gpus` are
    /// the GPUs jobs may be given (see [`crate::detect_gpus`]).
    pub async fn connect(
        config: ExecutorConfig,
        store: std::sync::Arc<ResultStore>,
        gpus: Vec<Gpu>,
    ) -> Result<Self, ExecutorError> {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        docker.ping().await?;
        Self::with_docker(docker, config, store, gpus)
    }

    /// An executor over an existing Docker client.
    pub fn with_docker(
        docker: Docker,
        config: ExecutorConfig,
        store: std::sync::Arc<ResultStore>,
        gpus: Vec<Gpu>,
    ) -> Result<Self, ExecutorError> {
        if config.provider_id.is_empty() || config.provider_id.chars().any(char::is_control) {
            return Err(ExecutorError::BadProviderId(config.provider_id));
        }
        std::fs::create_dir_all(&config.work_dir).map_err(|source| ExecutorError::WorkDir {
            path: config.work_dir.clone(),
            source,
        })?;
        let fetcher = Fetcher::new(
            store.clone(),
            config.ipfs_gateways.clone(),
            config.fetch_limits,
        );
        Ok(Self {
            docker,
            config,
            store,
            fetcher,
            gpus: GpuPool::new(gpus),
            tasks: TaskTracker::new(),
        })
    }

    /// Waits until no container this executor (or a clone of it) started is left running or
    /// unremoved: a job whose caller gave up (dropped its future) has its container killed and
    /// removed in the background, and a clean shutdown waits for that here.
    pub async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// The Docker client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Its configuration.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Where results are stored.
    pub fn store(&self) -> &ResultStore {
        &self.store
    }

    /// Whether the engine can enforce memory limits (some sandboxes' cgroups cannot, and then
    /// out-of-memory cannot happen or be detected).
    pub async fn memory_limit_supported(&self) -> Result<bool, ExecutorError> {
        Ok(self.docker.info().await?.memory_limit.unwrap_or(false))
    }

    /// Removes every container left by this provider (found by its label), e.g. after a crash.
    /// Returns the names of those removed.
    pub async fn cleanup_leftovers(&self) -> Result<Vec<String>, ExecutorError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_PROVIDER}={}", self.config.provider_id),
            ],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let mut removed = Vec::new();
        for c in self.docker.list_containers(Some(options)).await? {
            let Some(id) = c.id else { continue };
            remove(&self.docker, &id).await?;
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or(id);
            removed.push(name);
        }
        Ok(removed)
    }

    /// Runs the job and reports what happened. Never fails: every problem is an outcome.
    pub async fn run(&self, job: JobSpec<'_>) -> Outcome {
        let module_ref = job.module.reference.to_string();
        let fail = |kind, error: String| Outcome::rejected(job.job_id, &module_ref, kind, error);
        let resources = &job.module.resources;

        let lease = if resources.gpus > 0 {
            match self
                .gpus
                .lease(resources.gpus, resources.vram_bytes.div_ceil(1 << 20))
            {
                Ok(lease) => Some(lease),
                Err(why) => return fail(ErrorKind::InsufficientGpus, why),
            }
        } else {
            None
        };
        let gpus = lease.as_ref().map(|l| l.gpus()).unwrap_or_default();

        let image = match self.ensure_image(job.module).await {
            Ok(image) => image,
            Err(e) => return fail(ErrorKind::ImageUnavailable, e),
        };

        // Inputs by CID: from the store, else fetched and verified; each mounted read-only.
        let mut cid_mounts = Vec::new();
        for input in &job.prepared.cid_inputs {
            match self.fetcher.fetch(&input.cid).await {
                Ok(source) => cid_mounts.push((source, input.path.clone())),
                Err(e) => {
                    return fail(
                        ErrorKind::InputUnavailable,
                        format!("input {:?} ({}): {e}", input.name, input.cid),
                    );
                }
            }
        }

        // The job's scratch directory: inputs/ (read-only in the container) and result/outputs/.
        let scratch = match tempfile::Builder::new()
            .prefix("job-")
            .tempdir_in(&self.config.work_dir)
        {
            Ok(d) => d,
            Err(e) => {
                return fail(
                    ErrorKind::ResultFailed,
                    format!(
                        "cannot create a job directory in {}: {e}",
                        self.config.work_dir.display()
                    ),
                );
            }
        };
        let inputs_dir = scratch.path().join("inputs");
        let result_dir = scratch.path().join("result");
        let outputs_dir = result_dir.join(layout::OUTPUTS);
        if let Err(e) = prepare_dirs(&inputs_dir, &outputs_dir, job.prepared, &cid_mounts) {
            return fail(
                ErrorKind::ResultFailed,
                format!("cannot prepare the job directory: {e}"),
            );
        }

        let sandbox = Sandbox {
            image: &image,
            provider_id: &self.config.provider_id,
            job_id: job.job_id,
            inputs_dir: &inputs_dir,
            outputs_dir: &outputs_dir,
            pids_limit: self.config.pids_limit,
            user: self.config.user.as_deref(),
            gpus,
            cid_mounts: &cid_mounts,
        };
        let config = container_config(job.module, job.prepared, &sandbox);
        let ran = match self.run_container(job.job_id, job.module, config).await {
            Ok(ran) => ran,
            Err(e) => return fail(ErrorKind::ContainerFailed, e),
        };
        drop(lease);

        let mut outcome = Outcome::rejected(
            job.job_id,
            &module_ref,
            ErrorKind::ContainerFailed,
            String::new(),
        );
        outcome.exit_code = Some(ran.exit_code);
        outcome.run_time = ran.run_time;
        let timeout = job.module.timeout;
        (outcome.status, outcome.error) = if ran.timed_out {
            (
                Status::ProviderError(ErrorKind::TimedOut),
                Some(format!(
                    "the job ran longer than the module's timeout of {timeout:?} and was killed"
                )),
            )
        } else if ran.oom_killed {
            (
                Status::ProviderError(ErrorKind::OutOfMemory),
                Some(format!(
                    "the job used more than the module's memory limit of {} and was killed by the kernel (exit code {})",
                    lilypad_modules::format_bytes(resources.memory_bytes),
                    ran.exit_code
                )),
            )
        } else if ran.exit_code == 0 {
            (Status::Succeeded, None)
        } else {
            (
                Status::JobFailed {
                    exit_code: ran.exit_code,
                },
                Some(format!("the job exited with code {}", ran.exit_code)),
            )
        };

        // The result: stdout, stderr, exitCode and outputs/, hashed and stored.
        let stored = {
            let (stdout, stderr) = (ran.stdout.bytes.clone(), ran.stderr.bytes.clone());
            let store = self.store.clone();
            let dir = result_dir.clone();
            let exit_code = ran.exit_code;
            tokio::task::spawn_blocking(move || -> Result<_, String> {
                let warnings = sanitize_outputs(&dir.join(layout::OUTPUTS))
                    .map_err(|e| format!("cleaning the outputs: {e}"))?;
                layout::write_result_files(&dir, &stdout, &stderr, exit_code)
                    .map_err(|e| format!("writing the result files: {e}"))?;
                let cid = store.put(&dir).map_err(|e| e.to_string())?;
                Ok((cid, warnings))
            })
            .await
        };
        match stored {
            Ok(Ok((cid, warnings))) => {
                outcome.result_cid = Some(cid);
                outcome.result_dir = self.store.get(&cid);
                outcome.warnings = warnings;
            }
            Ok(Err(e)) => {
                outcome.status = Status::ProviderError(ErrorKind::ResultFailed);
                outcome.error = Some(format!("the result could not be stored: {e}"));
            }
            Err(e) => {
                outcome.status = Status::ProviderError(ErrorKind::ResultFailed);
                outcome.error = Some(format!("storing the result panicked: {e}"));
            }
        }

        // The inline output: the start of stdout, or of the module's output file.
        let limit = usize::try_from(job.max_output_bytes).unwrap_or(usize::MAX);
        let inline = match &job.module.output {
            InlineOutput::Stdout => Ok(ran.stdout.bytes.clone()),
            InlineOutput::File(rel) => match &outcome.result_dir {
                Some(dir) => read_inline_file(&dir.join(layout::OUTPUTS), rel, limit),
                None => Ok(Vec::new()),
            },
        };
        match inline {
            Ok(mut bytes) => {
                outcome.inline_truncated = bytes.len() > limit;
                bytes.truncate(limit);
                outcome.inline_output = bytes;
            }
            Err(warning) => {
                if outcome.succeeded() {
                    outcome.warnings.push(warning);
                }
            }
        }
        outcome.stdout = ran.stdout.bytes;
        outcome.stdout_truncated = ran.stdout.truncated;
        outcome.stderr = ran.stderr.bytes;
        outcome.stderr_truncated = ran.stderr.truncated;
        outcome
    }

    /// Makes sure the module's image is present, pulling it when allowed, and returns what to
    /// run. A module that pins a digest runs only that image, by its id: the local image of its
    /// name if that is the pinned one (its id, or a registry digest it was pulled by), else the
    /// image with the pinned id, else whatever pulling `name@digest` brings, checked again.
    async fn ensure_image(&self, module: &Module) -> Result<String, String> {
        let image = &module.image;
        let Some(digest) = &image.digest else {
            if self.inspect(&image.name).await?.is_none() {
                self.pull(&image.name).await?;
            }
            return Ok(image.name.clone());
        };
        let local = self.inspect(&image.name).await?;
        if let Some(found) = &local
            && let Some(id) = pinned_id(found, digest)
        {
            return Ok(id);
        }
        if let Some(found) = self.inspect(digest).await?
            && let Some(id) = pinned_id(&found, digest)
        {
            return Ok(id);
        }
        let mismatch = local.as_ref().and_then(|found| found.id.clone()).map(|id| {
            format!(
                "image {} here is {id}, not the {digest} the module pins",
                image.name
            )
        });
        if self.config.pull_policy == PullPolicy::Never {
            return Err(match mismatch {
                Some(m) => format!(
                    "{m}, and this provider never pulls (fix: the provider operator must build or pull the pinned image: job-modules/images/build for the shipped modules, docker pull {} for others)",
                    image.pull_reference()
                ),
                None => format!(
                    "image {} is not present and this provider never pulls (fix: the provider operator must pull or build it)",
                    image.pull_reference()
                ),
            });
        }
        let reference = image.pull_reference();
        self.pull(&reference).await.map_err(|e| match &mismatch {
            Some(m) => format!("{m}, and the pinned one: {e}"),
            None => e,
        })?;
        let pulled = self.inspect(&reference).await?;
        pulled
            .as_ref()
            .and_then(|found| pinned_id(found, digest))
            .ok_or_else(|| {
                format!("pulling {reference} did not bring an image with digest {digest}")
            })
    }

    /// The image `reference` names, or `None` when it is not present.
    async fn inspect(&self, reference: &str) -> Result<Option<ImageInspect>, String> {
        match self.docker.inspect_image(reference).await {
            Ok(found) => Ok(Some(found)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(format!(
                "cannot inspect image {reference}: {}",
                docker_message(&e)
            )),
        }
    }

    /// Pulls `reference` (unless the provider never pulls), within the pull timeout.
    async fn pull(&self, reference: &str) -> Result<(), String> {
        if self.config.pull_policy == PullPolicy::Never {
            return Err(format!(
                "image {reference} is not present and this provider never pulls (fix: the provider operator must pull or build it)"
            ));
        }
        let options = CreateImageOptions {
            from_image: Some(reference.to_owned()),
            ..Default::default()
        };
        let pull = async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(progress) = stream.next().await {
                let progress = progress.map_err(|e| docker_message(&e))?;
                if let Some(detail) = progress.error_detail.and_then(|d| d.message) {
                    return Err(detail);
                }
            }
            Ok(())
        };
        match tokio::time::timeout(self.config.pull_timeout, pull).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "image {reference} is not present and could not be pulled: {e}"
            )),
            Err(_) => Err(format!(
                "image {reference} is not present and pulling it took longer than {:?}",
                self.config.pull_timeout
            )),
        }
    }

    /// Runs the container's whole life in a task of its own, so that a caller who gives up on
    /// the job (drops this future) cannot interrupt it half way, e.g. between Docker creating the
    /// container and us learning its id: the task sees the caller is gone, kills the container
    /// and removes it.
    async fn run_container(
        &self,
        job_id: &str,
        module: &Module,
        config: bollard::models::ContainerCreateBody,
    ) -> Result<Ran, String> {
        let life = Lifecycle {
            docker: self.docker.clone(),
            tasks: self.tasks.clone(),
            name: format!("lilypad-{}-{:016x}", sanitize_name(job_id), unique()),
            timeout: module.timeout,
            kill_grace: self.config.kill_grace,
            max_log_bytes: self.config.max_log_bytes,
        };
        // Dropping the sender (with this future) tells the task the caller is gone.
        let (_caller, gone) = tokio::sync::oneshot::channel::<()>();
        match self.tasks.spawn(life.run(config, gone)).await {
            Ok(result) => result,
            Err(e) => Err(format!("the container's supervisor failed: {e}")),
        }
    }
}

/// Everything one container's life needs, owned, so it can run in its own task.
struct Lifecycle {
    docker: Docker,
    tasks: TaskTracker,
    name: String,
    timeout: Duration,
    kill_grace: Duration,
    max_log_bytes: usize,
}

impl Lifecycle {
    async fn kill(&self) {
        let _ = self
            .docker
            .kill_container(
                &self.name,
                Some(KillContainerOptions {
                    signal: "SIGKILL".to_owned(),
                }),
            )
            .await;
        let mut stream = self.docker.wait_container(
            &self.name,
            Some(WaitContainerOptions {
                condition: "not-running".to_owned(),
            }),
        );
        let _ = tokio::time::timeout(self.kill_grace, stream.next()).await;
    }

    /// Creates, attaches to, starts and waits for the container, killing it at the timeout or
    /// when the caller is gone; the container is removed on every path out of here (the guard
    /// covers errors and panics).
    async fn run(
        self,
        config: bollard::models::ContainerCreateBody,
        mut gone: tokio::sync::oneshot::Receiver<()>,
    ) -> Result<Ran, String> {
        // Armed before the container exists: removing a name Docker does not know is harmless.
        let guard = ContainerGuard {
            docker: self.docker.clone(),
            id: Some(self.name.clone()),
            tasks: self.tasks.clone(),
        };
        let fail = |what: &str, e: bollard::errors::Error| {
            format!(
                "Docker could not {what} the container: {}",
                docker_message(&e)
            )
        };
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(self.name.clone()),
                    ..Default::default()
                }),
                config,
            )
            .await
            .map_err(|e| fail("create", e))?;

        // Attach before starting, so no output is missed.
        let attached = self
            .docker
            .attach_container(
                &self.name,
                Some(AttachContainerOptions {
                    stdout: true,
                    stderr: true,
                    stream: true,
                    logs: false,
                    ..Default::default()
                }),
            )
            .await
            .map_err(|e| fail("attach to", e))?;
        let cap = self.max_log_bytes;
        let mut output = attached.output;
        let collector = tokio::spawn(async move {
            let (mut stdout, mut stderr) = (Capped::default(), Capped::default());
            while let Some(Ok(chunk)) = output.next().await {
                match chunk {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        stdout.push(&message, cap)
                    }
                    LogOutput::StdErr { message } => stderr.push(&message, cap),
                    LogOutput::StdIn { .. } => {}
                }
            }
            (stdout, stderr)
        });

        let started = Instant::now();
        if let Err(e) = self.docker.start_container(&self.name, None).await {
            collector.abort();
            guard.remove().await.ok();
            return Err(fail("start", e));
        }
        let wait = async {
            let mut stream = self.docker.wait_container(
                &self.name,
                Some(WaitContainerOptions {
                    condition: "not-running".to_owned(),
                }),
            );
            match stream.next().await {
                Some(Ok(_))
                | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => Ok(()),
                Some(Err(e)) => Err(docker_message(&e)),
                None => Err("the wait ended without an answer".to_owned()),
            }
        };
        let timed_out = tokio::select! {
            waited = tokio::time::timeout(self.timeout, wait) => match waited {
                Ok(Ok(())) => false,
                Ok(Err(e)) => {
                    collector.abort();
                    guard.remove().await.ok();
                    return Err(format!("lost the container while waiting for it: {e}"));
                }
                Err(_) => {
                    self.kill().await;
                    true
                }
            },
            _ = &mut gone => {
                self.kill().await;
                collector.abort();
                guard.remove().await.ok();
                return Err("the caller gave up on the job".to_owned());
            }
        };
        let run_time = started.elapsed();

        // The output stream ends when the container's stdio closes; do not wait forever for it
        // (a process the container leaked could hold it open).
        let (stdout, stderr) = match tokio::time::timeout(self.kill_grace, collector).await {
            Ok(Ok(streams)) => streams,
            _ => (Capped::default(), Capped::default()),
        };
        let inspected = self.docker.inspect_container(&self.name, None).await;
        // The job ran either way; a container Docker would not remove now is found again by
        // cleanup_leftovers.
        guard.remove().await.ok();
        let state = inspected
            .map_err(|e| fail("inspect the finished", e))?
            .state
            .unwrap_or_default();
        Ok(Ran {
            exit_code: state.exit_code.unwrap_or(-1),
            stdout,
            stderr,
            oom_killed: state.oom_killed.unwrap_or(false),
            timed_out,
            run_time,
        })
    }
}

/// A random number for container names: several executors (in one process, or providers sharing
/// an engine) may run the same job id at once, and Docker names must be unique.
fn unique() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn sanitize_name(job_id: &str) -> String {
    let s: String = job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() { "job".to_owned() } else { s }
}

fn prepare_dirs(
    inputs: &Path,
    outputs: &Path,
    job: &PreparedJob,
    cid_mounts: &[(PathBuf, String)],
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(inputs)?;
    std::fs::create_dir_all(outputs)?;
    for file in &job.files {
        let path = inputs.join(&file.name);
        std::fs::write(&path, &file.contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    }
    // A CID mounted under /inputs needs its mount point made here: /inputs is read-only by the
    // time Docker would make it.
    for (source, target) in cid_mounts {
        let Some(rest) = target.strip_prefix(lilypad_modules::INPUTS_DIR) else {
            continue;
        };
        let point = inputs.join(rest.trim_start_matches('/'));
        if let Some(parent) = point.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::metadata(source)?.is_dir() {
            std::fs::create_dir_all(&point)?;
        } else {
            std::fs::write(&point, b"")?;
        }
    }
    // Read-only in the container whatever these modes say (the mount is read-only); writable
    // here so the provider can remove the directory afterwards.
    std::fs::set_permissions(inputs, std::fs::Permissions::from_mode(0o755))?;
    // Writable whatever user the image runs as; the job directory around it stays private
    // (0700) on the host.
    std::fs::set_permissions(outputs, std::fs::Permissions::from_mode(0o777))?;
    Ok(())
}

/// Removes what a result cannot hold (FIFOs, sockets, devices, names that are not UTF-8) from
/// the outputs, saying what was removed.
fn sanitize_outputs(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let shown = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            if entry.file_name().to_str().is_none() {
                warnings.push(format!(
                    "removed outputs/{shown}: its name is not UTF-8, which IPFS cannot store"
                ));
                if meta.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            } else if meta.is_dir() {
                stack.push(path);
            } else if !meta.is_file() && !meta.file_type().is_symlink() {
                warnings.push(format!(
                    "removed outputs/{shown}: not a file, directory or symbolic link"
                ));
                std::fs::remove_file(&path)?;
            }
        }
    }
    warnings.sort();
    Ok(warnings)
}

/// Reads up to `limit + 1` bytes of `outputs/<rel>`, refusing to follow symbolic links anywhere
/// on the way: the job controls the outputs, and a link could point at the provider's own files.
fn read_inline_file(outputs: &Path, rel: &str, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut path = outputs.to_owned();
    for part in rel.split('/') {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "the inline output /outputs/{rel} goes through a symbolic link, which is not followed; the inline output is empty"
                ));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(format!(
                    "the job did not write /outputs/{rel}, the module's inline output; the inline output is empty"
                ));
            }
        }
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("reading /outputs/{rel}: {e}"))?;
    if !file.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return Err(format!(
            "/outputs/{rel} is not a file; the inline output is empty"
        ));
    }
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading /outputs/{rel}: {e}"))?;
    Ok(bytes)
}

/// The id to run when `found` is the image `digest` pins: its own id, or one of the registry
/// digests it was pulled by (`name@digest`); `None` when it is another image.
fn pinned_id(found: &ImageInspect, digest: &str) -> Option<String> {
    let id = found.id.as_deref()?;
    let pulled_by = found
        .repo_digests
        .iter()
        .flatten()
        .any(|r| r.rsplit_once('@').is_some_and(|(_, d)| d == digest));
    (id == digest || pulled_by).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: &str = "sha256:869709f9cc4c347a4dfa1479d81695c1fb4f495eb082b6cdcab311b32ee0838e";
    const OTHER: &str = "sha256:4dc588e7fb9d99d07ac7969b01c76d8d30dbe82cfb0577948c32558ac976e6f4";

    fn image(id: &str, repo_digests: &[&str]) -> ImageInspect {
        ImageInspect {
            id: Some(id.to_owned()),
            repo_digests: Some(repo_digests.iter().map(|d| (*d).to_owned()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn a_pinned_image_is_run_by_its_id_whether_built_here_or_pulled_by_digest() {
        assert_eq!(
            pinned_id(&image(PINNED, &[]), PINNED).as_deref(),
            Some(PINNED)
        );
        let pulled = image(OTHER, &[&format!("registry.example/sd@{PINNED}")]);
        assert_eq!(pinned_id(&pulled, PINNED).as_deref(), Some(OTHER));
    }

    #[test]
    fn another_image_under_the_pinned_name_is_not_the_pinned_one() {
        assert_eq!(pinned_id(&image(OTHER, &[]), PINNED), None);
        let pulled = image(OTHER, &[&format!("registry.example/sd@{OTHER}")]);
        assert_eq!(pinned_id(&pulled, PINNED), None);
    }
}
