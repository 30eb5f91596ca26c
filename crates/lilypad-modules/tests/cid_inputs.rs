//! Inputs by CID: `type = "cid"` inputs (and `file` inputs given as `ipfs://<cid>`) are checked,
//! become mounts for the provider to fetch, and their placeholders stand for the mount path.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use lilypad_modules::{InputError, InputType, JobError, Module, ModuleRegistry, inputs_from_pairs};

const CID: &str = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354";

fn module(inputs_toml: &str) -> Result<Module, String> {
    let toml = format!(
        r#"
image = "lilypad/test-tools:1.0.0"
entrypoint = ["/bin/ls"]
args = ["{{data}}"]
timeout = "30s"
{inputs_toml}
[resources]
cpu = 0.5
memory = "32MiB"
"#
    );
    ModuleRegistry::parse_module("m", "1.0.0", Path::new("m.toml"), &toml)
        .map_err(|e| e.to_string())
}

fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let entries: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    inputs_from_pairs(&entries).unwrap()
}

#[test]
fn a_cid_input_becomes_a_mount_at_its_path_and_its_placeholder_that_path() {
    let m =
        module("[inputs.data]\ntype = \"cid\"\nrequired = true\npath = \"/data/set\"\n").unwrap();
    assert_eq!(m.inputs["data"].kind, InputType::Cid);
    let job = m
        .prepare(&inputs(&[("data", &format!("ipfs://{CID}"))]))
        .unwrap();
    assert_eq!(job.cmd, ["/data/set"]);
    assert_eq!(job.cid_inputs.len(), 1);
    assert_eq!(job.cid_inputs[0].name, "data");
    assert_eq!(job.cid_inputs[0].cid.to_string(), CID);
    assert_eq!(job.cid_inputs[0].path, "/data/set");
    assert!(job.files.is_empty());
}

#[test]
fn a_cid_input_without_a_path_is_mounted_under_inputs_and_a_bare_cid_is_accepted() {
    let m = module("[inputs.data]\ntype = \"cid\"\nrequired = true\n").unwrap();
    let job = m.prepare(&inputs(&[("data", CID)])).unwrap();
    assert_eq!(job.cmd, ["/inputs/data"]);
    assert_eq!(job.cid_inputs[0].path, "/inputs/data");
}

#[test]
fn a_cid_input_that_is_not_a_cid_says_how_to_write_one() {
    let m = module("[inputs.data]\ntype = \"cid\"\nrequired = true\n").unwrap();
    let err = m
        .prepare(&inputs(&[("data", "ipfs://not-a-cid")]))
        .unwrap_err();
    let JobError::BadInputs { errors, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        matches!(
            &errors[0],
            InputError::WrongType {
                expected: InputType::Cid,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("write ipfs://<cid>"), "{err}");
}

#[test]
fn a_file_input_given_as_ipfs_url_is_fetched_by_cid_instead_of_written() {
    let m = module("[inputs.data]\ntype = \"file\"\nrequired = true\n").unwrap();
    let job = m
        .prepare(&inputs(&[("data", &format!("ipfs://{CID}"))]))
        .unwrap();
    assert!(job.files.is_empty());
    assert_eq!(job.cid_inputs[0].path, "/inputs/data");
    assert_eq!(job.cmd, ["/inputs/data"]);
    // Anything else is still the file's contents.
    let job = m.prepare(&inputs(&[("data", "plain text")])).unwrap();
    assert_eq!(job.files[0].contents, b"plain text");
    assert!(job.cid_inputs.is_empty());
}

#[test]
fn a_path_on_an_input_that_is_not_a_cid_is_refused() {
    let err = module("[inputs.data]\ntype = \"string\"\npath = \"/data\"\n").unwrap_err();
    assert!(err.contains("path only applies to cid inputs"), "{err}");
}

#[test]
fn mount_paths_that_are_not_plain_absolute_paths_outside_outputs_are_refused() {
    for (path, problem) in [
        ("data", "is not absolute"),
        ("/", "is the root directory"),
        ("/data/../etc", "has a . or .. segment"),
        ("/outputs/x", "under /outputs"),
        ("/inputs", "is /inputs itself"),
        ("/proc/x", "under /proc"),
        ("/a:b", "colon"),
    ] {
        let err = module(&format!(
            "[inputs.data]\ntype = \"cid\"\nrequired = true\npath = \"{path}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains(problem), "{path}: {err}");
    }
}
