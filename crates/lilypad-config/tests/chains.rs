//! chains.toml as operators write it: the shipped file loads, overrides apply, and every mistake
//! in a file is reported at once with its path and a fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lilypad_config::{
    ChainsConfig, Confirmations, Deployment, GasPolicy, LoadError, SignerSource, defaults,
};

fn parse(text: &str) -> Result<ChainsConfig, LoadError> {
    parse_env(text, &[])
}

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<ChainsConfig, LoadError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ChainsConfig::parse(text, Path::new("/etc/lilypad/chains.toml"), &env)
}

/// The error lines, as `path: problem (fix: ...)`.
fn errors(text: &str) -> Vec<String> {
    errors_env(text, &[])
}

fn errors_env(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    match parse_env(text, env) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => {
            assert!(!e.errors().is_empty(), "expected entry errors, got: {e}");
            e.errors().iter().map(ToString::to_string).collect()
        }
    }
}

const MINIMAL: &str = r#"
[[chains]]
name = "base"
chain_id = 8453
rpc = "https://rpc.example.org"
deployment = "deployments/base.json"
signer = { env = "RELAYER_KEY" }
"#;

#[test]
fn the_shipped_chains_toml_serves_the_two_dev_chains() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../chains.toml");
    let config = ChainsConfig::load(&path).expect("the shipped chains.toml is valid");
    let ids: Vec<(&str, u64)> = config
        .chains
        .iter()
        .map(|c| (c.name.as_str(), c.chain_id))
        .collect();
    assert_eq!(ids, [("dev-a", 31337), ("dev-b", 31338)]);
    let a = config.chain("dev-a").unwrap();
    assert_eq!(a.rpc, ["http://127.0.0.1:8545"]);
    assert_eq!(a.confirmations, Confirmations::Blocks(0));
    assert_eq!(a.poll_interval, Duration::from_millis(250));
    assert_eq!(a.signer, SignerSource::Env("LILYPAD_RELAYER_KEY".into()));
    let Deployment::File(file) = &a.deployment else {
        panic!("dev chains use deployments JSON")
    };
    assert!(
        file.ends_with("contracts/deployments/31337.json"),
        "{}",
        file.display()
    );
    assert!(
        file.starts_with(path.parent().unwrap()),
        "resolved against chains.toml's directory"
    );
    assert_ne!(a.rpc, config.chain("dev-b").unwrap().rpc);
}

#[test]
fn omitted_fields_take_safe_defaults() {
    let config = parse(MINIMAL).unwrap();
    let c = &config.chains[0];
    assert_eq!(c.confirmations, defaults::CONFIRMATIONS);
    assert_eq!(c.confirmations, Confirmations::Finalized);
    assert_eq!(c.poll_interval, defaults::POLL_INTERVAL);
    assert_eq!(c.log_chunk_size, defaults::LOG_CHUNK_SIZE);
    assert_eq!(c.start_block, 0);
    assert_eq!(c.ws, None);
    assert_eq!(c.gas, GasPolicy::default());
    assert_eq!(
        c.deployment,
        Deployment::File("/etc/lilypad/deployments/base.json".into())
    );
}

#[test]
fn a_full_chain_entry_reads_every_field() {
    let config = parse(
        r#"
[[chains]]
name = "sepolia"
chain_id = 11155111
rpc = "https://rpc.example.org/v1"
ws = "wss://rpc.example.org/ws"
confirmations = "finalized"
start_block = 5_000_000
poll_interval = "12s"
log_chunk_size = 500
signer = { file = "keys/relayer.hex" }
gas = { max_fee_gwei = 80, priority_fee_gwei = 1.5, bump_percent = 20, replace_after = "1m" }
[chains.contracts]
lilypad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
token = "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"
"#,
    )
    .unwrap();
    let c = &config.chains[0];
    assert_eq!(c.ws.as_deref(), Some("wss://rpc.example.org/ws"));
    assert_eq!(c.start_block, 5_000_000);
    assert_eq!(c.poll_interval, Duration::from_secs(12));
    assert_eq!(c.log_chunk_size, 500);
    assert_eq!(
        c.signer,
        SignerSource::File("/etc/lilypad/keys/relayer.hex".into())
    );
    assert_eq!(
        c.gas,
        GasPolicy {
            max_fee_gwei: 80.0,
            priority_fee_gwei: 1.5,
            bump_percent: 20.0,
            replace_after: Duration::from_secs(60)
        }
    );
    let Deployment::Addresses(a) = &c.deployment else {
        panic!("inline addresses")
    };
    assert_eq!(
        a["lilypad"].to_string(),
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
    assert_eq!(a.len(), 2);
}

#[test]
fn every_error_in_a_file_is_reported_at_once_with_its_path() {
    let errs = errors(
        r#"
[[chains]]
name = "one"
chain_id = 1
rcp = "http://a"
deployment = "d.json"
signer = { env = "K" }
poll_interval = "fast"

[[chains]]
name = "two"
chain_id = -5
rpc = "ftp://b"
confirmations = "safe"
signer = { env = "K" }
contracts = { lilypad = "0x1234" }
"#,
    );
    let expect = [
        "chains[0].rcp: unknown key \"rcp\" (fix: did you mean rpc?)",
        "chains[0].rpc: missing",
        "chains[0].poll_interval: \"fast\" is not a duration",
        "chains[1].chain_id: -5 is negative",
        "chains[1].rpc: \"ftp://b\" has scheme \"ftp\"",
        "chains[1].confirmations: \"safe\" is not a confirmation count",
        "chains[1].contracts.lilypad: \"0x1234\" is not an address",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|line| line.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    assert!(
        errs.iter().all(|line| line.contains("(fix: ")),
        "every error says what to do"
    );
}

#[test]
fn the_whole_report_names_the_file_and_counts_errors() {
    let err = parse("[[chains]]\nname = \"x\"\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/lilypad/chains.toml has 4 errors:"),
        "{text}"
    );
    for field in ["chain_id", "rpc", "deployment", "signer"] {
        assert!(
            text.contains(&format!("chains[0].{field}: missing")),
            "{text}"
        );
    }
}

#[test]
fn keys_are_refused_in_the_file() {
    for text in [
        MINIMAL.replace("signer = { env = \"RELAYER_KEY\" }", "signer = \"0xac09\""),
        MINIMAL.replace(
            "signer = { env = \"RELAYER_KEY\" }",
            "private_key = \"0xac09\"\nsigner = { env = \"K\" }",
        ),
        MINIMAL.replace(
            "{ env = \"RELAYER_KEY\" }",
            "{ env = \"K\", key = \"0xac09\" }",
        ),
    ] {
        let errs = errors(&text);
        assert!(
            errs.iter()
                .any(|e| e.contains("keys never go in chains.toml")),
            "{text}\n{errs:#?}"
        );
        assert!(
            errs.iter().all(|e| !e.contains("0xac09")),
            "an error must not echo a key"
        );
    }
}

#[test]
fn environment_overrides_win_and_are_named_in_errors() {
    let config = parse_env(
        MINIMAL,
        &[
            ("LILYPAD_CHAINS_BASE_RPC", "http://10.0.0.5:8545"),
            ("LILYPAD_CHAINS_BASE_CONFIRMATIONS", "3"),
            ("LILYPAD_CHAINS_BASE_GAS_MAX_FEE_GWEI", "7.5"),
            ("LILYPAD_CHAINS_BASE_SIGNER_FILE", "/run/secrets/key"),
            ("UNRELATED", "ignored"),
        ],
    )
    .unwrap();
    let c = &config.chains[0];
    assert_eq!(c.rpc, ["http://10.0.0.5:8545"]);
    assert_eq!(c.confirmations, Confirmations::Blocks(3));
    assert_eq!(c.gas.max_fee_gwei, 7.5);
    // The environment chose a file; the file's env source is not also set.
    assert_eq!(c.signer, SignerSource::File("/run/secrets/key".into()));
    let errs = errors_env(MINIMAL, &[("LILYPAD_CHAINS_BASE_START_BLOCK", "soon")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "chains[0].start_block (from LILYPAD_CHAINS_BASE_START_BLOCK): \"soon\" is not a whole number"
        ),
        "{errs:#?}"
    );
}

#[test]
fn a_mistyped_override_is_an_error_not_a_silent_no_op() {
    let errs = errors_env(MINIMAL, &[("LILYPAD_CHAINS_BASE_RCP", "http://x")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("LILYPAD_CHAINS_BASE_RCP: this environment variable matches no"));
    assert!(
        errs[0].contains("LILYPAD_CHAINS_BASE_"),
        "lists the valid prefixes: {}",
        errs[0]
    );
}

#[test]
fn overrides_pick_the_longest_matching_chain_name() {
    let text = format!(
        "{MINIMAL}\n[[chains]]\nname = \"base-b\"\nchain_id = 2\nrpc = \"http://b\"\ndeployment = \"b.json\"\nsigner = {{ env = \"K\" }}\n"
    );
    let config = parse_env(&text, &[("LILYPAD_CHAINS_BASE_B_RPC", "http://override")]).unwrap();
    assert_eq!(
        config.chain("base").unwrap().rpc,
        ["https://rpc.example.org"]
    );
    assert_eq!(config.chain("base-b").unwrap().rpc, ["http://override"]);
}

#[test]
fn defaults_apply_unless_a_chain_sets_its_own() {
    let text = format!(
        "[defaults]\nconfirmations = 12\ngas = {{ max_fee_gwei = 50 }}\n{}",
        MINIMAL.replace("signer", "confirmations = 2\nsigner")
    ) + "\n[[chains]]\nname = \"op\"\nchain_id = 10\nrpc = \"http://o\"\ndeployment = \"o.json\"\nsigner = { env = \"K\" }\n";
    let config = parse(&text).unwrap();
    assert_eq!(
        config.chain("base").unwrap().confirmations,
        Confirmations::Blocks(2)
    );
    assert_eq!(
        config.chain("op").unwrap().confirmations,
        Confirmations::Blocks(12)
    );
    assert_eq!(config.chain("op").unwrap().gas.max_fee_gwei, 50.0);
    assert_eq!(
        config.chain("op").unwrap().gas.bump_percent,
        GasPolicy::default().bump_percent
    );
}

#[test]
fn per_chain_identity_cannot_be_a_default() {
    let errs = errors(&format!("[defaults]\nrpc = \"http://x\"\n{MINIMAL}"));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("defaults.rpc: rpc differs from chain to chain"),
        "{errs:#?}"
    );
}

#[test]
fn duplicate_names_and_chain_ids_are_refused() {
    let errs = errors(&format!("{MINIMAL}{MINIMAL}"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chains[1].name: \"base\" is already the name"))
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chains[1].chain_id: chain id 8453 is already used"))
    );
}

#[test]
fn gas_policy_is_checked() {
    let errs = errors(&MINIMAL.replace(
        "signer",
        "gas = { max_fee_gwei = 1, priority_fee_gwei = 2, bump_percent = 5, cap = 3 }\nsigner",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chains[0].gas.cap: unknown key")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chains[0].gas.bump_percent: 5 is out of range"))
    );
    let errs = errors(&MINIMAL.replace(
        "signer",
        "gas = { max_fee_gwei = 1, priority_fee_gwei = 2 }\nsigner",
    ));
    assert!(
        errs[0].contains("the tip (2 gwei) is above the fee cap (1 gwei)"),
        "{errs:#?}"
    );
}

#[test]
fn structural_mistakes_are_explained() {
    let errs = errors("chain = 1\n");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chain: unknown key \"chain\" (fix: did you mean chains?)"))
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("chains: no chains are configured"))
    );
    assert!(errors("chains = []\n")[0].starts_with("chains: the chain list is empty"));
    assert!(errors("chains = [1]\n")[0].starts_with("chains[0]: expected a table"));
    let bad_name = errors(&MINIMAL.replace("\"base\"", "\"Base Mainnet\""));
    assert!(bad_name[0].starts_with("chains[0].name: \"Base Mainnet\" is not a valid chain name"));
    let both = errors(&MINIMAL.replace(
        "signer",
        "contracts = { lilypad = \"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed\" }\nsigner",
    ));
    assert!(both[0].starts_with("chains[0].deployment: both deployment and contracts are set"));
}

#[test]
fn syntax_errors_carry_the_parsers_position() {
    let err = parse("[[chains]\nname = \"x\"").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Syntax { .. }), "{text}");
    assert!(
        text.contains("is not valid TOML") && text.contains("line 1"),
        "{text}"
    );
}

#[test]
fn a_missing_file_says_what_to_do() {
    let err = ChainsConfig::load(Path::new("/nonexistent/chains.toml")).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/chains.toml"),
        "{err}"
    );
}

#[test]
fn a_signer_comes_whole_from_one_layer() {
    // The chain's own file signer replaces the default env signer; the two never mix.
    let text = format!(
        "[defaults]\nsigner = {{ env = \"SHARED_KEY\" }}\n{}",
        MINIMAL.replace("{ env = \"RELAYER_KEY\" }", "{ file = \"own.key\" }")
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.chains[0].signer,
        SignerSource::File("/etc/lilypad/own.key".into())
    );
    // And an environment override replaces both.
    let config = parse_env(&text, &[("LILYPAD_CHAINS_BASE_SIGNER_ENV", "OTHER")]).unwrap();
    assert_eq!(config.chains[0].signer, SignerSource::Env("OTHER".into()));
}

#[test]
fn relayer_settings_default_and_are_set_in_defaults_per_chain_or_from_the_environment() {
    let c = &parse(MINIMAL).unwrap().chains[0];
    assert_eq!(c.reorg_rewind, defaults::REORG_REWIND);
    assert_eq!(c.reorg_rewind, 64);
    assert_eq!(c.max_attempts, 8);
    assert_eq!(c.claim_retry, Duration::from_secs(30));
    assert_eq!(c.lease_ttl, Duration::from_secs(15));
    assert_eq!(
        (
            defaults::MAX_ATTEMPTS,
            defaults::CLAIM_RETRY,
            defaults::LEASE_TTL
        ),
        (c.max_attempts, c.claim_retry, c.lease_ttl)
    );

    let text = format!(
        "[defaults]\nreorg_rewind = 128\nmax_attempts = 3\nclaim_retry = \"1m\"\nlease_ttl = \"20s\"\n{}",
        MINIMAL.replace("signer", "max_attempts = 5\nlease_ttl = \"1.5s\"\nsigner")
    ) + "\n[[chains]]\nname = \"op\"\nchain_id = 10\nrpc = \"http://o\"\ndeployment = \"o.json\"\nsigner = { env = \"K\" }\n";
    let config = parse(&text).unwrap();
    let (base, op) = (config.chain("base").unwrap(), config.chain("op").unwrap());
    assert_eq!(
        (
            base.reorg_rewind,
            base.max_attempts,
            base.claim_retry,
            base.lease_ttl
        ),
        (128, 5, Duration::from_secs(60), Duration::from_millis(1500)),
        "the chain's own values win over [defaults]"
    );
    assert_eq!(
        (
            op.reorg_rewind,
            op.max_attempts,
            op.claim_retry,
            op.lease_ttl
        ),
        (128, 3, Duration::from_secs(60), Duration::from_secs(20)),
        "[defaults] apply where the chain sets nothing"
    );

    let config = parse_env(
        &text,
        &[
            ("LILYPAD_CHAINS_OP_REORG_REWIND", "10"),
            ("LILYPAD_CHAINS_OP_MAX_ATTEMPTS", "2"),
            ("LILYPAD_CHAINS_OP_CLAIM_RETRY", "500ms"),
            ("LILYPAD_CHAINS_OP_LEASE_TTL", "2.5s"),
        ],
    )
    .unwrap();
    let op = config.chain("op").unwrap();
    assert_eq!(
        (
            op.reorg_rewind,
            op.max_attempts,
            op.claim_retry,
            op.lease_ttl
        ),
        (
            10,
            2,
            Duration::from_millis(500),
            Duration::from_millis(2500)
        )
    );
}

#[test]
fn relayer_settings_must_be_above_zero() {
    let errs = errors(&MINIMAL.replace(
        "signer",
        "reorg_rewind = 0\nmax_attempts = 0\nclaim_retry = \"0s\"\nlease_ttl = \"soon\"\nsigner",
    ));
    let expect = [
        "chains[0].reorg_rewind: 0 is out of range (fix: use a number from 1 to 1000000)",
        "chains[0].max_attempts: 0 is out of range (fix: use a number from 1 to 1000)",
        "chains[0].claim_retry: \"0s\" is out of range (fix: write a duration such as \"500ms\", \"2s\" or \"1m\", from 10ms to 1h)",
        "chains[0].lease_ttl: \"soon\" is not a duration (fix: write a duration such as \"500ms\", \"2s\" or \"1m\", from 10ms to 1h)",
    ];
    assert_eq!(errs, expect);
    let errs = errors_env(MINIMAL, &[("LILYPAD_CHAINS_BASE_MAX_ATTEMPTS", "-1")]);
    assert!(
        errs[0].starts_with(
            "chains[0].max_attempts (from LILYPAD_CHAINS_BASE_MAX_ATTEMPTS): \"-1\" is not a whole number"
        ),
        "{errs:#?}"
    );
}

#[test]
fn a_duration_reads_the_same_here_as_in_module_files() {
    // The same text module files accept for `timeout` (lilypad-modules has the twin of this test).
    for (text, want) in [
        ("1.5s", Duration::from_millis(1500)),
        ("250ms", Duration::from_millis(250)),
        ("2m", Duration::from_secs(120)),
    ] {
        let c = &parse(&MINIMAL.replace("signer", &format!("poll_interval = \"{text}\"\nsigner")))
            .unwrap()
            .chains[0];
        assert_eq!(c.poll_interval, want, "{text}");
        assert_eq!(lilypad_toml::parse_duration(text), Some(want));
    }
}

#[test]
fn a_chain_may_list_several_rpc_urls_in_the_file_or_the_environment() {
    let several = MINIMAL.replace(
        "rpc = \"https://rpc.example.org\"",
        "rpc = [\"https://a.example.org\", \"https://b.example.org/v1/key\"]",
    );
    let config = parse(&several).unwrap();
    assert_eq!(
        config.chains[0].rpc,
        ["https://a.example.org", "https://b.example.org/v1/key"]
    );
    let config = parse_env(
        MINIMAL,
        &[(
            "LILYPAD_CHAINS_BASE_RPC",
            "http://10.0.0.5:8545, http://10.0.0.6:8545",
        )],
    )
    .unwrap();
    assert_eq!(
        config.chains[0].rpc,
        ["http://10.0.0.5:8545", "http://10.0.0.6:8545"]
    );
}

#[test]
fn every_bad_rpc_url_in_a_list_is_reported_with_its_place() {
    let text = MINIMAL.replace(
        "rpc = \"https://rpc.example.org\"",
        "rpc = [\"https://a.example.org\", \"ftp://b\", 5, \"https://a.example.org\"]",
    );
    let errs = errors(&text);
    let expect = [
        "chains[0].rpc[1]: \"ftp://b\" has scheme \"ftp\"",
        "chains[0].rpc[2]: expected a string, found an integer",
    ];
    for e in expect {
        assert!(
            errs.iter().any(|line| line.starts_with(e)),
            "missing {e:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");

    let errs = errors(&MINIMAL.replace(
        "rpc = \"https://rpc.example.org\"",
        "rpc = [\"https://a.example.org\", \"https://a.example.org\"]",
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("chains[0].rpc[1]: \"https://a.example.org\" is listed twice"),
        "{errs:#?}"
    );
    let errs = errors(&MINIMAL.replace("rpc = \"https://rpc.example.org\"", "rpc = []"));
    assert!(
        errs[0].starts_with("chains[0].rpc: the list of URLs is empty"),
        "{errs:#?}"
    );
    let errs = errors_env(MINIMAL, &[("LILYPAD_CHAINS_BASE_RPC", "http://a,htp://b")]);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "chains[0].rpc[1] (from LILYPAD_CHAINS_BASE_RPC): \"htp://b\" has scheme \"htp\""
        ),
        "{errs:#?}"
    );
}
