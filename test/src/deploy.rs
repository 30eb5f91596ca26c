//! Deploys the Lilypad contracts to a test chain with the project's own deploy script
//! (`contracts/script/Deploy.s.sol`), exactly as an operator would.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{Anvil, HarnessError, foundry_tool};

/// anvil's well-known dev keys (the default mnemonic), funded with ETH on every anvil chain.
pub mod dev_keys {
    /// Account 0: deploys and owns the contracts in tests.
    pub const DEPLOYER: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    /// Account 1: a client.
    pub const CLIENT: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    /// Account 2: a resource provider.
    pub const PROVIDER: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
    /// Account 3: a relayer.
    pub const RELAYER: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
    /// Account 4: a mediator.
    pub const MEDIATOR: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
    /// Account 5: a second provider, for tests that run beside another provider's.
    pub const PROVIDER_2: &str =
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
    /// Account 6: a second client.
    pub const CLIENT_2: &str = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";
    /// The addresses of accounts 5 and 6 ([`PROVIDER_2`], [`CLIENT_2`]).
    pub const MORE_ADDRESSES: [&str; 2] = [
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    ];
    /// The addresses of accounts 0 to 4, in that order.
    pub const ADDRESSES: [&str; 5] = [
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    ];
}

fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts")
}

/// Deploys the whole suite to `anvil` (dev token, Lilypad, mediation, example clients), mints
/// dev tokens to `fund`, and returns the deployments JSON the script wrote. Runs of forge are
/// serialised across test processes with a lock file, as they share `contracts/out` and `cache`.
pub fn deploy_contracts(anvil: &Anvil, fund: &[&str]) -> Result<serde_json::Value, HarnessError> {
    deploy_contracts_with(anvil, fund, &[])
}

/// [`deploy_contracts`] with more settings for `Deploy.s.sol` as environment variables (e.g.
/// `("MEDIATORS_PER_CASE", "1")`; the script's header lists them).
pub fn deploy_contracts_with(
    anvil: &Anvil,
    fund: &[&str],
    settings: &[(&str, &str)],
) -> Result<serde_json::Value, HarnessError> {
    let dir = contracts_dir();
    let file = dir.join(format!("deployments/test-{}.json", anvil.service.port()));
    let file_text = file.display().to_string();
    let mut env: Vec<(&str, &str)> = vec![
        ("DEPLOYER_PRIVATE_KEY", dev_keys::DEPLOYER),
        ("DEPLOYMENT_FILE", &file_text),
    ];
    let fund = fund.join(",");
    env.push(("FUND_ADDRESSES", &fund));
    env.extend(settings.iter().copied());
    forge_script(
        &[
            "script/Deploy.s.sol",
            "--rpc-url",
            &anvil.url(),
            "--broadcast",
            "--slow",
        ],
        &env,
    )?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| HarnessError::Io { what, source }
    };
    let text = std::fs::read_to_string(&file).map_err(io("reading the deployments JSON"))?;
    let _ = std::fs::remove_file(&file);
    serde_json::from_str(&text).map_err(|e| HarnessError::Io {
        what: format!("parsing {}", file.display()),
        source: std::io::Error::other(e),
    })
}

/// How long one `forge script` may take (a deployment takes seconds; compiling from a cold cache
/// with solcjs up to a few minutes).
pub const FORGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `forge script <args>` in contracts/ with `env`, and returns its standard output; fails
/// with forge's whole output when it exits non-zero (a `require` or custom error in the script
/// makes it do so). Runs of forge are serialised across test processes with a lock file, as they
/// share `contracts/out` and `cache`.
pub fn forge_script(args: &[&str], env: &[(&str, &str)]) -> Result<String, HarnessError> {
    let forge = foundry_tool("forge")?;
    let dir = contracts_dir();
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| HarnessError::Io { what, source }
    };
    std::fs::create_dir_all(dir.join("deployments"))
        .map_err(io("creating contracts/deployments"))?;
    let lock = std::fs::File::create(dir.join("deployments/.forge-test.lock"))
        .map_err(io("creating the forge lock file"))?;
    lock.lock().map_err(io("locking the forge lock file"))?;
    let child = Command::new(&forge)
        .current_dir(&dir)
        .arg("script")
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(io("running forge script"))?;
    // A broadcast that waits for a transaction that never comes would hang the test: give up
    // after FORGE_TIMEOUT, killing forge, and say so.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(FORGE_TIMEOUT).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            true
        } else {
            false
        }
    });
    let output = child
        .wait_with_output()
        .map_err(io("waiting for forge script"))?;
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    drop(lock);
    if timed_out {
        return Err(HarnessError::Io {
            what: format!("forge script {}", args.join(" ")),
            source: std::io::Error::other(format!(
                "killed after {FORGE_TIMEOUT:?} without finishing; its output so far:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )),
        });
    }
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(HarnessError::Io {
            what: format!("forge script {}", args.join(" ")),
            source: std::io::Error::other(text),
        });
    }
    Ok(text)
}

/// The contracts/ directory, for files a forge script writes (under `deployments/`).
pub fn contracts_path() -> PathBuf {
    contracts_dir()
}
