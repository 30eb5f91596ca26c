//! Foundry drives the client: `script/OracleClient.s.sol` deploys a Sha256Oracle on the live
//! stack (anvil, NATS, Redis, Docker, `lilypad relayer`, `solver`, `provider`), requests sha256
//! of a text through it, and once the callback has landed and the job settled, a second run of the script checks on
//! chain that the oracle stored exactly what the EVM's sha256 precompile computes, and that the
//! job settled. A wrong answer makes the script revert and this test fail with forge's output.

#![allow(clippy::unwrap_used)]

mod common;

use alloy::primitives::{Address, U256};
use common::{Options, Stack};
use lilypad_bindings::Sha256Oracle;
use lilypad_e2e::{contracts_path, dev_keys, forge_script};
use lilypad_types::JobStatus;

#[tokio::test(flavor = "multi_thread")]
async fn a_forge_script_client_gets_a_verified_answer_from_the_live_stack() {
    let stack = Stack::start(Options::default()).await;
    let text = "Lilypad, from a forge script = sha256 off-chain";
    let lilypad = stack.lilypad.to_string();
    let out_file = contracts_path().join(format!(
        "deployments/oracle-client-{}.json",
        stack.chain.anvil.service.port()
    ));
    let out_path = out_file.display().to_string();
    let rpc = stack.chain.url();

    // 1. The developer's script deploys the oracle and requests a digest.
    forge_script(
        &[
            "script/OracleClient.s.sol",
            "--sig",
            "request(address,string)",
            &lilypad,
            text,
            "--rpc-url",
            &rpc,
            "--broadcast",
            "--slow",
        ],
        &[
            ("CLIENT_PRIVATE_KEY", dev_keys::CLIENT),
            ("ORACLE_CLIENT_FILE", &out_path),
        ],
    )
    .unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out_file);
    let oracle: Address = written["oracle"].as_str().unwrap().parse().unwrap();
    let job = written["jobId"].as_u64().unwrap();

    // 2. The stack matches, runs and calls back. The oracle asks for a one-hour challenge
    //    window (LilypadClient's default); once it has passed on the chain's clock, the relayer
    //    settles the job by itself.
    stack.wait_state(job, JobStatus::ResultSubmitted).await;
    stack.advance(3_601);
    stack.wait_state(job, JobStatus::Settled).await;
    let answer = Sha256Oracle::new(oracle, stack.lilypad().await.provider().clone())
        .answers(U256::from(job))
        .call()
        .await
        .unwrap();
    assert_eq!(answer.state, 2, "the callback stored an answer (Answered)");

    // 3. Foundry checks the callback's effect on-chain: settled, and the digest is sha256(text).
    let checked = forge_script(
        &[
            "script/OracleClient.s.sol",
            "--sig",
            "check(address,uint256,string)",
            &oracle.to_string(),
            &job.to_string(),
            text,
            "--rpc-url",
            &rpc,
        ],
        &[],
    )
    .unwrap();
    assert!(
        checked.contains("digest matches the EVM's sha256"),
        "{checked}"
    );

    // The check is not vacuous: the same script refuses another text's digest.
    let wrong = forge_script(
        &[
            "script/OracleClient.s.sol",
            "--sig",
            "check(address,uint256,string)",
            &oracle.to_string(),
            &job.to_string(),
            "another text",
            "--rpc-url",
            &rpc,
        ],
        &[],
    );
    let err = wrong.unwrap_err().to_string();
    assert!(err.contains("WrongDigest"), "{err}");
}
