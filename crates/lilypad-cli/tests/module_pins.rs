//! Modules addressed by content, end to end with the real binaries: `lilypad run` pins the id of
//! the client's module definition, and a provider or a mediator whose module file differs does
//! not run the job. Each scenario is a test of its own, on a stack of its own.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Options, Stack, text};
use lilypad_e2e::job_modules_dir;
use lilypad_types::JobStatus;

/// A modules directory holding `sha256 1.0.0` with a longer timeout than the shipped file: a
/// definition with another id under the same name and version.
fn look_alike_sha256(dir: &Path) -> String {
    let shipped = std::fs::read_to_string(job_modules_dir().join("sha256/1.0.0.toml")).unwrap();
    let changed = shipped.replace("timeout = \"30s\"", "timeout = \"31s\"");
    assert_ne!(
        shipped, changed,
        "the shipped sha256 module sets timeout = \"30s\""
    );
    std::fs::create_dir_all(dir.join("sha256")).unwrap();
    std::fs::write(dir.join("sha256/1.0.0.toml"), changed).unwrap();
    dir.display().to_string()
}

/// `lilypad run sha256` of a fixed text on the dev chain, with `extra` arguments; the client's
/// definition is the shipped one (`LILYPAD_MODULES`), so the job pins its id.
fn run_sha256<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "sha256", "-i", "text=pinned", "--chain", "dev"];
    args.extend_from_slice(extra);
    args
}

/// The client pins the shipped sha256 definition; the only provider has a look-alike file under
/// the same name and version. It refuses to sign the deal, naming both ids and the fix, and the
/// job finds no provider.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_with_a_different_module_file_refuses_the_job() {
    let modules = tempfile::tempdir().unwrap();
    let stack = Stack::start(Options {
        provider_args: vec!["--modules".into(), look_alike_sha256(modules.path())],
        ..Options::default()
    })
    .await;
    let id = stack.command(&["module", "id", "sha256"]).output().unwrap();
    assert!(id.status.success(), "{}", text(&id));
    let id = String::from_utf8(id.stdout).unwrap().trim().to_owned();
    let run = stack.background(&run_sha256(&["--match-timeout", "10"]), &[]);
    stack
        .wait_for_log(
            "provider",
            &format!(
                "module sha256:1.0.0: the request pins definition {id}, but the definition here"
            ),
        )
        .await;
    stack.wait_state(1, JobStatus::Expired).await;
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stack
            .log("provider")
            .contains("lilypad module id sha256 --version 1.0.0"),
        "the refusal names the fix:\n{}",
        stack.log("provider")
    );
}

/// The client pins the shipped sha256 definition and the provider runs it; the drawn mediator
/// has a look-alike file. When the client challenges, the mediator does not re-run a definition
/// the client did not pin (it would judge another module) and says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_mediator_with_a_different_module_file_refuses_to_rerun_the_job() {
    let modules = tempfile::tempdir().unwrap();
    let look_alike = look_alike_sha256(modules.path());
    let mut stack = Stack::start(Options {
        mediator: true,
        ..Options::default()
    })
    .await;
    stack.kill("mediator");
    stack
        .spawn_mediator("mediator", &["--modules", &look_alike])
        .await;
    stack
        .wait_for_log_times("mediator", "mediator running", 2)
        .await;
    let challengeable = [
        "--challenge-window",
        "600",
        "--results-collateral-bps",
        "20000",
    ];
    let out = stack.command(&run_sha256(&challengeable)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stack.state(1).await, JobStatus::ResultSubmitted);
    let mut challenge = stack.background(&["challenge", "dev", "1"], &[]);
    stack.wait_state(1, JobStatus::Challenged).await;
    stack
        .wait_for_log(
            "mediator",
            "is not re-run: module sha256:1.0.0: the request pins definition",
        )
        .await;
    assert!(
        !stack.log("mediator").contains("verdict submitted"),
        "{}",
        stack.log("mediator")
    );
    challenge.kill().unwrap();
    challenge.wait().unwrap();
}
