//! A Lilypad module (`lilypad_module.json.tmpl`) from a git repository, run through the whole
//! stack with the real binaries: `lilypad run` names it by Lilypad's `name:tag` shortcut, binds
//! the tag to its commit, and the solver and provider fetch that commit, render it with the
//! job's inputs and run it on the locally built cowsay image.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::U256;
use common::{Options, Stack, text};
use lilypad_e2e::BareRepo;
use lilypad_modules::git::DEFAULT_TEMPLATE_PATH;
use lilypad_types::JobStatus;

/// Lilypad's cowsay module as its repository has it, on this project's locally built image
/// (which draws the cow with busybox) saying `{{.Message}}` or `greeting`.
fn cowsay(greeting: &str) -> String {
    format!(
        r#"{{
  "machine": {{ "gpu": 0, "cpu": 500, "ram": 32 }},
  "job": {{
    "APIVersion": "V1beta1",
    "Metadata": {{ "CreatedAt": "0001-01-01T00:00:00Z", "Requester": {{}} }},
    "Spec": {{
      "Deal": {{ "Concurrency": 1 }},
      "Docker": {{
        "Entrypoint": ["/usr/bin/cowsay", {{{{if .Message}}}}{{{{.Message}}}}{{{{else}}}}"{greeting}"{{{{end}}}}],
        "Image": "lilypad/cowsay:1.0.0"
      }},
      "Engine": "Docker",
      "Network": {{ "Type": "None" }},
      "PublisherSpec": {{ "Type": "IPFS" }},
      "Resources": {{ "GPU": "" }},
      "Timeout": 30,
      "Verifier": "Noop",
      "outputs": [{{ "Name": "outputs", "StorageSource": "IPFS", "path": "/outputs" }}]
    }}
  }}
}}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lilypad_module_from_git_runs_end_to_end_at_the_commit_its_tag_names() {
    let repo = BareRepo::new("lilypad-module-cowsay");
    let first = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &cowsay("moo"))], "cowsay");
    repo.tag("v0.0.4", &first);
    let base = repo.base_url();
    let stack = Stack::start(Options {
        git_modules: vec![format!("{base}/")],
        ..Options::default()
    })
    .await;
    let client_git = stack.dir.path().join("client-git").display().to_string();
    let run = |message: &str| {
        let mut args = vec![
            "run",
            "cowsay:v0.0.4",
            "--lilypad-module-base",
            &base,
            "--git-cache",
            &client_git,
            "--chain",
            "dev",
        ];
        let input = format!("Message={message}");
        if !message.is_empty() {
            args.extend(["-i", &input]);
        }
        stack.command(&args).output().unwrap()
    };

    let out = run("hello from git; $(id)");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("v0.0.4 is commit {first}")),
        "{said}"
    );
    assert!(said.contains("status:   succeeded"), "{said}");
    assert!(
        said.contains("< hello from git; $(id) >"),
        "the input arrived as one argument: {said}"
    );
    stack.wait_state(1, JobStatus::Settled).await;

    // The tag moves to a commit with another default; the next run binds and runs that one.
    let second = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &cowsay("second commit"))], "v2");
    repo.tag("v0.0.4", &second);
    let out = run("");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("v0.0.4 is commit {second}")),
        "{said}"
    );
    assert!(said.contains("< second commit >"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lilypad_module_that_does_not_render_is_refused_before_anything_is_escrowed() {
    let repo = BareRepo::new("lilypad-module-cowsay");
    let commit = repo.commit(
        &[(
            DEFAULT_TEMPLATE_PATH,
            &cowsay("moo").replace("\"Image\"", "\"Imgae\""),
        )],
        "typo",
    );
    repo.tag("v1", &commit);
    let base = repo.base_url();
    let stack = Stack::start(Options {
        git_modules: vec![format!("{base}/")],
        ..Options::default()
    })
    .await;
    let client_git = stack.dir.path().join("client-git").display().to_string();
    let out = stack
        .command(&[
            "run",
            "cowsay:v1",
            "--lilypad-module-base",
            &base,
            "--git-cache",
            &client_git,
            "--chain",
            "dev",
        ])
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("job.Spec.Docker.Imgae: unknown field (fix: did you mean Image?)"),
        "{said}"
    );
    assert_eq!(
        stack.state(1).await,
        JobStatus::None,
        "no job was requested"
    );
}

/// A Lilypad module from git declares no determinism, so its job is requested as not
/// deterministic and its result cannot be challenged: `lilypad challenge` refuses before paying
/// anything, and the contract would revert `NotDeterministic`.
#[tokio::test(flavor = "multi_thread")]
async fn a_lilypad_module_from_git_cannot_be_challenged() {
    let repo = BareRepo::new("lilypad-module-cowsay");
    let commit = repo.commit(&[(DEFAULT_TEMPLATE_PATH, &cowsay("moo"))], "cowsay");
    let base = repo.base_url();
    let stack = Stack::start(Options {
        git_modules: vec![format!("{base}/")],
        mediator: true,
        provider_args: vec!["--testing-alter-output".into(), "whole".into()],
        ..Options::default()
    })
    .await;
    let client_git = stack.dir.path().join("client-git").display().to_string();
    let named = format!("{}@{}", repo.url(), &commit[..12]);
    let t = stack.run_challengeable(&[
        &named,
        "--git-cache",
        &client_git,
        "-i",
        "Message=challenge me",
    ]);
    assert!(t.contains(&format!("is commit {commit}")), "{t}");
    assert_eq!(stack.state(1).await, JobStatus::ResultSubmitted);

    let out = stack.command(&["challenge", "dev", "1"]).output().unwrap();
    let c = text(&out);
    assert!(!out.status.success(), "{c}");
    assert!(
        c.contains("job 1 cannot be challenged: it was not requested as deterministic"),
        "{c}"
    );
    assert_eq!(stack.state(1).await, JobStatus::ResultSubmitted);
    let lilypad = stack.lilypad().await;
    assert!(
        !lilypad
            .getJob(U256::from(1))
            .call()
            .await
            .unwrap()
            .deterministic
    );
}
