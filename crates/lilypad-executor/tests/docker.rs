//! The executor against the real Docker engine, with module images built locally from
//! busybox-static (no image is ever pulled from a registry here).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lilypad_e2e::{ensure_module_images, eventually, job_modules_dir, ok_if, test_modules_dir};
use lilypad_executor::{
    ErrorKind, Executor, ExecutorConfig, JobSpec, Outcome, PullPolicy, Status, run_job,
};
use lilypad_modules::{Module, ModuleRegistry};
use lilypad_results::{ResultStore, cid_of_path};

struct Env {
    executor: Executor,
    store: Arc<ResultStore>,
    registry: ModuleRegistry,
    provider: String,
    _scratch: tempfile::TempDir,
}

async fn env_with(test: &str, tweak: impl FnOnce(&mut ExecutorConfig)) -> Env {
    ensure_module_images().expect("the module images build from busybox-static");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let store = Arc::new(ResultStore::open(scratch.path().join("store")).expect("store"));
    let provider = format!("test-{test}-{}", std::process::id());
    let mut config = ExecutorConfig::new(&provider, scratch.path().join("work"));
    config.pull_policy = PullPolicy::Never; // tests never pull
    tweak(&mut config);
    let executor = Executor::connect(config, store.clone(), Vec::new())
        .await
        .expect("Docker answers (run ./script/setup)");
    let registry = ModuleRegistry::load_dirs(&[&job_modules_dir(), &test_modules_dir()])
        .expect("the shipped modules load");
    Env {
        executor,
        store,
        registry,
        provider,
        _scratch: scratch,
    }
}

async fn env(test: &str) -> Env {
    env_with(test, |_| {}).await
}

fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Env {
    async fn run(&self, module: &str, pairs: &[(&str, &str)], max_output: u64) -> Outcome {
        let (name, version) = module.split_once(':').expect("name:version");
        run_job(
            &self.executor,
            &self.registry,
            &format!("job-{name}"),
            name,
            version,
            &inputs(pairs),
            max_output,
        )
        .await
    }

    fn add_module(&mut self, name: &str, toml: &str) -> Module {
        let module = ModuleRegistry::parse_module(name, "1.0.0", Path::new("inline.toml"), toml)
            .unwrap_or_else(|e| panic!("{e}"));
        self.registry.insert(module.clone());
        module
    }

    /// Containers of this test's provider that still exist.
    async fn containers(&self) -> Vec<String> {
        let out = tokio::process::Command::new("docker")
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("label=lilypad.provider={}", self.provider),
                "--format",
                "{{.Names}}",
            ])
            .output()
            .await
            .expect("docker ps runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stored result holds what the outcome says, and its CID is the directory's.
fn check_result(outcome: &Outcome) -> std::path::PathBuf {
    let dir = outcome.result_dir.clone().expect("a result directory");
    let cid = outcome.result_cid.expect("a result CID");
    assert_eq!(cid_of_path(&dir).expect("CID"), cid);
    assert_eq!(
        std::fs::read(dir.join("stdout")).expect("stdout"),
        outcome.stdout
    );
    assert_eq!(
        std::fs::read(dir.join("stderr")).expect("stderr"),
        outcome.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("exitCode")).expect("exitCode"),
        outcome.exit_code.expect("an exit code").to_string()
    );
    assert!(dir.join("outputs").is_dir());
    dir
}

#[tokio::test]
async fn cowsay_draws_the_message_exactly_as_given() {
    let env = env("cowsay").await;
    let message = "hello $(id); `uname` \"quoted\" a=b";
    let outcome = env.run("cowsay:1.0.0", &[("message", message)], 4096).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.error, None);
    let stdout = text(&outcome.stdout);
    assert!(stdout.contains(&format!("< {message} >")), "{stdout}");
    assert!(stdout.contains("(oo)"), "{stdout}");
    assert_eq!(outcome.inline_output, outcome.stdout);
    assert!(!outcome.inline_truncated);
    check_result(&outcome);
    assert_eq!(env.containers().await, Vec::<String>::new(), "removed");
}

#[tokio::test]
async fn sha256_is_deterministic_and_its_inline_output_comes_from_its_file() {
    let env = env("sha256").await;
    let a = env.run("sha256:1.0.0", &[("text", "abc")], 100).await;
    let b = env.run("sha256:1.0.0", &[("text", "abc")], 100).await;
    assert_eq!(a.status, Status::Succeeded, "{a:?}");
    let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
    assert_eq!(text(&a.inline_output), hash);
    assert_eq!(text(&a.stdout), hash);
    let dir = check_result(&a);
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/sha256.txt")).unwrap(),
        hash
    );
    assert_eq!(a.result_cid, b.result_cid, "same inputs, same result CID");
    let c = env.run("sha256:1.0.0", &[("text", "abd")], 100).await;
    assert_ne!(a.result_cid, c.result_cid);
}

#[tokio::test]
async fn inputs_arrive_verbatim_as_arguments_environment_and_files() {
    let env = env("echo").await;
    let hostile = "x'; rm -rf /outputs; echo \"$(id)\" `id` > /outputs/pwned #";
    let outcome = env
        .run(
            "echo:1.0.0",
            &[
                ("text", hostile),
                ("extra", "two words = three"),
                ("greeting", "hi there"),
                ("notes", "line one\nline two"),
            ],
            3,
        )
        .await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    assert_eq!(
        text(&outcome.stdout),
        format!(
            "[{hostile}]\n[--count=1]\n[--extra]\n[two words = three]\n[--notes]\n[/inputs/notes]\n\
             GREETING=[hi there]\nnotes=[line one\nline two]\nuser=0\n"
        )
    );
    assert_eq!(text(&outcome.stderr), "to stderr\n");
    let dir = check_result(&outcome);
    assert!(
        !dir.join("outputs/pwned").exists(),
        "no input ran as a command"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/nested/deeper/first-arg.txt")).unwrap(),
        hostile
    );
    assert!(dir.join("outputs/empty").is_dir());
    // The inline output is the module's file, cut to max_output_bytes.
    assert_eq!(outcome.inline_output, b"don");
    assert!(outcome.inline_truncated);
}

#[tokio::test]
async fn a_job_that_exits_non_zero_is_job_failed_with_its_output() {
    let env = env("fail").await;
    let outcome = env.run("fail:1.0.0", &[("code", "42")], 100).await;
    assert_eq!(
        outcome.status,
        Status::JobFailed { exit_code: 42 },
        "{outcome:?}"
    );
    assert_eq!(outcome.exit_code, Some(42));
    assert_eq!(
        outcome.error.as_deref(),
        Some("the job exited with code 42")
    );
    assert_eq!(text(&outcome.stdout), "about to fail\n");
    assert_eq!(text(&outcome.stderr), "something went wrong\n");
    check_result(&outcome);
    assert!(env.containers().await.is_empty());
}

#[tokio::test]
async fn a_job_that_exhausts_its_memory_is_out_of_memory() {
    let env = env("oom").await;
    if !env
        .executor
        .memory_limit_supported()
        .await
        .expect("docker info")
    {
        println!(
            "SKIPPED: this Docker engine reports no memory-limit support (docker info: MemoryLimit=false), so no job can run out of memory"
        );
        return;
    }
    let outcome = env.run("oom:1.0.0", &[], 100).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::OutOfMemory),
        "{outcome:?}"
    );
    let error = outcome.error.clone().unwrap();
    assert!(error.contains("memory limit of 16 MiB"), "{error}");
    assert_eq!(outcome.exit_code, Some(137), "killed by SIGKILL");
    check_result(&outcome);
    assert!(env.containers().await.is_empty());
}

#[tokio::test]
async fn a_job_past_its_timeout_is_killed_and_reported() {
    let env = env("sleep").await;
    let outcome = env.run("sleep:1.0.0", &[], 100).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::TimedOut),
        "{outcome:?}"
    );
    assert!(outcome.error.clone().unwrap().contains("timeout of 2s"));
    assert_eq!(
        text(&outcome.stdout),
        "going to sleep\n",
        "output up to the kill is kept"
    );
    assert_eq!(outcome.exit_code, Some(137));
    check_result(&outcome);
    assert!(env.containers().await.is_empty(), "killed and removed");
}

#[tokio::test]
async fn unknown_modules_and_bad_inputs_are_outcomes_without_a_container() {
    let env = env("rejected").await;
    let outcome = env.run("cowsya:1.0.0", &[("message", "x")], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::UnknownModule)
    );
    assert!(
        outcome
            .error
            .clone()
            .unwrap()
            .contains("unknown module \"cowsya\"")
    );
    let outcome = env.run("cowsay:2.0.0", &[("message", "x")], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::UnknownModule)
    );
    assert!(
        outcome
            .error
            .clone()
            .unwrap()
            .contains("has no version \"2.0.0\"")
    );

    let long = "m".repeat(2000);
    for (pairs, says) in [
        (vec![], "input \"message\" (string) is required but missing"),
        (
            vec![("message", "x"), ("colour", "red")],
            "input \"colour\" is not one of the module's inputs",
        ),
        (
            vec![("message", long.as_str())],
            "is 2.0 KiB but at most 1 KiB",
        ),
    ] {
        let outcome = env.run("cowsay:1.0.0", &pairs, 10).await;
        assert_eq!(outcome.status, Status::ProviderError(ErrorKind::BadInput));
        let error = outcome.error.clone().unwrap();
        assert!(error.contains(says), "{error}");
        assert_eq!(outcome.result_cid, None);
    }
    let outcome = env.run("fail:1.0.0", &[("code", "three")], 10).await;
    assert_eq!(outcome.status, Status::ProviderError(ErrorKind::BadInput));
    assert!(
        outcome
            .error
            .clone()
            .unwrap()
            .contains("must be an integer")
    );
    assert!(env.containers().await.is_empty());
}

#[tokio::test]
async fn an_image_that_is_not_present_is_image_unavailable() {
    let mut env = env("noimage").await;
    env.add_module(
        "absent",
        r#"
image = "lilypad-test/absent:1.0.0"
entrypoint = ["true"]
timeout = "5s"
[resources]
cpu = 0.5
memory = "16MiB"
"#,
    );
    let outcome = env.run("absent:1.0.0", &[], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::ImageUnavailable)
    );
    let error = outcome.error.clone().unwrap();
    assert!(
        error.contains("lilypad-test/absent:1.0.0 is not present and this provider never pulls"),
        "{error}"
    );
    assert!(env.containers().await.is_empty());
}

/// The image id the shipped cowsay module pins (`digest` in job-modules/cowsay/1.0.0.toml).
fn cowsay_digest(env: &Env) -> String {
    let cowsay = env
        .registry
        .get("cowsay", "1.0.0")
        .expect("cowsay is shipped");
    cowsay
        .image
        .digest
        .clone()
        .expect("the shipped cowsay pins its image")
}

#[tokio::test]
async fn a_module_pinning_another_image_than_the_local_one_of_its_name_is_refused() {
    let mut env = env("pinmismatch").await;
    let local = cowsay_digest(&env);
    let pinned = format!("sha256:{}", "0".repeat(64));
    env.add_module(
        "lookalike",
        &format!(
            r#"
image = "lilypad/cowsay:1.0.0"
digest = "{pinned}"
entrypoint = ["/usr/bin/cowsay"]
args = ["hi"]
timeout = "5s"
[resources]
cpu = 0.5
memory = "16MiB"
"#
        ),
    );
    let outcome = env.run("lookalike:1.0.0", &[], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::ImageUnavailable)
    );
    let error = outcome.error.clone().unwrap();
    assert!(
        error.contains(&format!(
            "image lilypad/cowsay:1.0.0 here is {local}, not the {pinned} the module pins"
        )),
        "{error}"
    );
    assert!(error.contains("job-modules/images/build"), "{error}");
    assert!(env.containers().await.is_empty());
}

#[tokio::test]
async fn a_pinned_image_present_under_another_name_runs_by_its_id() {
    let mut env = env("pinbyid").await;
    let digest = cowsay_digest(&env);
    env.add_module(
        "renamed",
        &format!(
            r#"
image = "lilypad-test/renamed-cowsay:1.0.0"
digest = "{digest}"
entrypoint = ["/usr/bin/cowsay"]
args = ["by id"]
timeout = "30s"
[resources]
cpu = 0.5
memory = "32MiB"
"#
        ),
    );
    let outcome = env.run("renamed:1.0.0", &[], 10).await;
    assert_eq!(outcome.status, Status::Succeeded, "{:?}", outcome.error);
    assert!(
        text(&outcome.stdout).contains("< by id >"),
        "{}",
        text(&outcome.stdout)
    );
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_image_unavailable_not_a_hang() {
    // Pulling is allowed, but the image's registry (a closed loopback port) refuses at once.
    let mut env = env_with("nopull", |c| {
        c.pull_policy = PullPolicy::IfNotPresent;
        c.pull_timeout = Duration::from_secs(60);
    })
    .await;
    env.add_module(
        "unpullable",
        r#"
image = "127.0.0.1:9/lilypad/absent:1.0.0"
entrypoint = ["true"]
timeout = "5s"
[resources]
cpu = 0.5
memory = "16MiB"
"#,
    );
    let outcome = env.run("unpullable:1.0.0", &[], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::ImageUnavailable)
    );
    let error = outcome.error.clone().unwrap();
    assert!(error.contains("could not be pulled"), "{error}");
}

#[tokio::test]
async fn a_container_that_cannot_start_is_container_failed_and_removed() {
    let mut env = env("nostart").await;
    env.add_module(
        "broken",
        r#"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["/no/such/program"]
timeout = "5s"
[resources]
cpu = 0.5
memory = "16MiB"
"#,
    );
    let outcome = env.run("broken:1.0.0", &[], 10).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::ContainerFailed),
        "{outcome:?}"
    );
    let error = outcome.error.clone().unwrap();
    assert!(error.contains("could not start the container"), "{error}");
    assert!(error.contains("/no/such/program"), "{error}");
    assert!(env.containers().await.is_empty());
}

const SANDBOX: &str = r#"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["sh", "-c", """
grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
echo "net=$(ls /sys/class/net | tr '\\n' ' ')"
echo "pids=$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d ' ' -f 1 /sys/fs/cgroup/cpu.max)"
if touch /inputs/x 2>/dev/null; then echo inputs=writable; else echo inputs=read-only; fi
if touch /outputs/x 2>/dev/null; then echo outputs=writable; else echo outputs=read-only; fi
if chown 1:1 /outputs/x 2>/dev/null; then echo chown=allowed; else echo chown=denied; fi
echo "uid=$(id -u)"
"""]
timeout = "20s"
[resources]
cpu = 0.5
memory = "48MiB"
"#;

#[tokio::test]
async fn the_container_is_locked_down_as_documented() {
    let mut env = env_with("sandbox", |c| c.pids_limit = 64).await;
    env.add_module("sandbox", SANDBOX);
    let outcome = env.run("sandbox:1.0.0", &[], 10).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    let stdout = text(&outcome.stdout);
    for line in [
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "net=lo ",
        "pids=64",
        "mem=50331648",
        "cpu=50000",
        "inputs=read-only",
        "outputs=writable",
        "chown=denied",
        "uid=0",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "expected {line:?} in:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn a_configured_user_runs_the_job_and_can_still_write_outputs() {
    let env = env_with("user", |c| c.user = Some("65534:65534".to_owned())).await;
    let outcome = env.run("echo:1.0.0", &[("text", "t")], 100).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    assert!(text(&outcome.stdout).contains("user=65534\n"));
    let dir = check_result(&outcome);
    assert!(dir.join("outputs/summary.txt").is_file());
}

#[tokio::test]
async fn stdout_and_stderr_are_capped_and_flagged() {
    let mut env = env_with("flood", |c| c.max_log_bytes = 1000).await;
    env.add_module(
        "flood",
        r#"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["sh", "-c", "yes out | head -c 200000; yes err | head -c 300 >&2"]
timeout = "20s"
[resources]
cpu = 0.5
memory = "32MiB"
"#,
    );
    let outcome = env.run("flood:1.0.0", &[], 10).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    assert_eq!(outcome.stdout.len(), 1000);
    assert!(outcome.stdout_truncated);
    assert!(outcome.stdout.starts_with(b"out\nout\n"));
    assert_eq!(outcome.stderr.len(), 300);
    assert!(!outcome.stderr_truncated);
    assert_eq!(outcome.inline_output.len(), 10);
    assert!(outcome.inline_truncated);
    check_result(&outcome);
}

#[tokio::test]
async fn jobs_run_concurrently_on_one_executor() {
    let env = env("concurrent").await;
    let texts = ["one", "two", "three", "four"];
    let outcomes = futures_util::future::join_all(
        texts
            .iter()
            .map(|t| async { env.run("sha256:1.0.0", &[("text", t)], 100).await }),
    )
    .await;
    for (t, outcome) in texts.iter().zip(&outcomes) {
        assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
        let expected = lilypad_e2e::docker_run("lilypad/sha256:1.0.0", &["sha256-text", t])
            .expect("docker run");
        assert_eq!(outcome.stdout, expected.stdout, "{t}");
    }
    assert!(env.containers().await.is_empty());
}

#[tokio::test]
async fn two_providers_on_one_engine_may_run_the_same_job_id_at_once() {
    let (a, b) = (env("same-id-a").await, env("same-id-b").await);
    let (x, y) = tokio::join!(
        a.run("sha256:1.0.0", &[("text", "x")], 100),
        b.run("sha256:1.0.0", &[("text", "y")], 100)
    );
    assert_eq!(x.job_id, y.job_id);
    assert_eq!(x.status, Status::Succeeded, "{x:?}");
    assert_eq!(y.status, Status::Succeeded, "{y:?}");
    assert_ne!(x.stdout, y.stdout);
}

#[tokio::test]
async fn leftovers_of_this_provider_are_removed_at_start_and_others_kept() {
    let env = env("leftovers").await;
    let create = |provider: &str, name: &str| {
        let status = std::process::Command::new("docker")
            .args([
                "create",
                "--name",
                name,
                "--network",
                "none",
                "--label",
                "lilypad.managed=true",
                "--label",
                &format!("lilypad.provider={provider}"),
                "lilypad/test-tools:1.0.0",
                "true",
            ])
            .output()
            .expect("docker create");
        assert!(status.status.success(), "{}", text(&status.stderr));
    };
    let pid = std::process::id();
    let mine = format!("leftover-mine-{pid}");
    let theirs = format!("leftover-theirs-{pid}");
    let other_provider = format!("someone-else-{pid}");
    create(&env.provider, &mine);
    create(&other_provider, &theirs);

    let removed = env.executor.cleanup_leftovers().await.expect("cleanup");
    assert_eq!(removed, [mine]);
    assert!(env.containers().await.is_empty());
    let kept = std::process::Command::new("docker")
        .args(["rm", "-f", &theirs])
        .output()
        .expect("docker rm");
    assert!(
        kept.status.success(),
        "the other provider's container was kept"
    );
}

#[tokio::test]
async fn a_job_abandoned_mid_run_still_has_its_container_removed() {
    let mut env = env("abandoned").await;
    let module = env.add_module(
        "long",
        r#"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["sleep", "600"]
timeout = "10m"
[resources]
cpu = 0.5
memory = "16MiB"
"#,
    );
    let prepared = module.prepare(&BTreeMap::new()).expect("no inputs");
    let job = JobSpec {
        job_id: "abandoned",
        module: &module,
        prepared: &prepared,
        max_output_bytes: 10,
    };
    // Give up on the job once its container exists (the caller's future is dropped).
    let mut run = Box::pin(env.executor.run(job));
    let created = eventually(
        Duration::from_secs(20),
        "the container was created",
        async || {
            let containers = env.containers().await;
            ok_if(!containers.is_empty(), format!("{containers:?}"))
        },
    );
    tokio::select! {
        _ = &mut run => panic!("a 600 s sleep cannot finish"),
        () = created => {}
    }
    drop(run); // the caller gives up: the job's future is dropped
    // Removal happens in the background: wait for it, up to a generous bound.
    eventually(
        Duration::from_secs(30),
        "the abandoned job's container is removed",
        async || {
            let containers = env.containers().await;
            ok_if(containers.is_empty(), format!("{containers:?}"))
        },
    )
    .await;
}

#[tokio::test]
async fn a_gpu_job_on_a_provider_without_gpus_says_so() {
    let env = env("nogpu").await;
    let outcome = env
        .run(
            "stable-diffusion:0.0.1",
            &[("prompt", "a frog on a lily pad")],
            100,
        )
        .await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::InsufficientGpus)
    );
    let error = outcome.error.clone().unwrap();
    assert!(
        error.contains("needs 1 GPU(s) with at least 8192 MiB"),
        "{error}"
    );
    assert!(env.containers().await.is_empty());
}

/// Provider A's sha256 result, served by A's results server: the address and the result CID.
async fn served_result(a: &Env) -> (String, cid::Cid) {
    let outcome = a.run("sha256:1.0.0", &[("text", "abc")], 100).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(lilypad_results::server::serve(listener, a.store.clone()));
    (format!("http://{addr}"), outcome.result_cid.expect("a CID"))
}

#[tokio::test]
async fn an_input_by_cid_is_fetched_from_another_providers_results_server_and_mounted_read_only() {
    let a = env("cid-a").await;
    let (gateway, cid) = served_result(&a).await;
    let b = env_with("cid-b", |c| c.ipfs_gateways = vec![gateway]).await;
    let data = format!("ipfs://{cid}");
    let outcome = b.run("read-cid:1.0.0", &[("data", &data)], 100).await;
    assert_eq!(outcome.status, Status::Succeeded, "{outcome:?}");
    let hash = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n";
    assert_eq!(text(&outcome.stdout), hash, "{}", text(&outcome.stderr));
    assert!(
        text(&outcome.stderr).contains("sha256.txt"),
        "{}",
        text(&outcome.stderr)
    );
    let kept = b.store.get_any(&cid).expect("B keeps what it fetched");
    assert_eq!(cid_of_path(&kept).expect("CID"), cid);
}

#[tokio::test]
async fn an_input_by_cid_that_no_gateway_has_is_input_unavailable() {
    let env = env("cid-none").await;
    let data = format!("ipfs://{}", lilypad_results::cid_of_bytes(b"nowhere"));
    let outcome = env.run("read-cid:1.0.0", &[("data", &data)], 100).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::InputUnavailable),
        "{outcome:?}"
    );
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("input \"data\""), "{error}");
    assert!(error.contains("--ipfs-gateway"), "{error}");
    assert_eq!(env.containers().await, Vec::<String>::new(), "none created");
}

#[tokio::test]
async fn an_input_by_cid_larger_than_the_limit_is_input_unavailable_naming_the_limit() {
    let a = env("cid-big-a").await;
    let (gateway, cid) = served_result(&a).await;
    let b = env_with("cid-big-b", |c| {
        c.ipfs_gateways = vec![gateway];
        c.fetch_limits.max_bytes = 100;
    })
    .await;
    let data = format!("ipfs://{cid}");
    let outcome = b.run("read-cid:1.0.0", &[("data", &data)], 100).await;
    assert_eq!(
        outcome.status,
        Status::ProviderError(ErrorKind::InputUnavailable),
        "{outcome:?}"
    );
    let error = outcome.error.unwrap_or_default();
    assert!(
        error.contains("larger than the limit of 100 bytes"),
        "{error}"
    );
}
