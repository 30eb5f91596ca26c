//! Module files load (the shipped ones, and bad ones with every problem reported), and job inputs
//! are checked and rendered exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lilypad_modules::{
    Arg, InlineOutput, InputError, InputType, JobError, ModuleRegistry, Network, inputs_from_pairs,
};

fn repo_modules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../job-modules")
}

fn shipped() -> ModuleRegistry {
    let root = repo_modules();
    ModuleRegistry::load_dirs(&[&root, &root.join("test")]).unwrap_or_else(|e| panic!("{e}"))
}

fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_shipped_modules_load() {
    let registry = shipped();
    let names: Vec<String> = registry
        .modules()
        .map(|m| m.reference.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "cowsay:1.0.0",
            "echo:1.0.0",
            "fail:1.0.0",
            "oom:1.0.0",
            "read-cid:1.0.0",
            "sha256:1.0.0",
            "sleep:1.0.0",
            "stable-diffusion:0.0.1"
        ]
    );
    let cowsay = registry.get("cowsay", "1.0.0").unwrap();
    assert_eq!(cowsay.image.name, "lilypad/cowsay:1.0.0");
    assert_eq!(cowsay.entrypoint, ["/usr/bin/cowsay"]);
    assert_eq!(cowsay.network, Network::None);
    assert_eq!(cowsay.resources.cpu_millis, 500);
    assert_eq!(cowsay.resources.memory_bytes, 32 << 20);
    assert_eq!(cowsay.inputs["message"].kind, InputType::String);
    assert!(cowsay.inputs["message"].required);
    let sha = registry.get("sha256", "1.0.0").unwrap();
    assert!(sha.deterministic);
    assert_eq!(sha.output, InlineOutput::File("sha256.txt".into()));
    let sd = registry.get("stable-diffusion", "0.0.1").unwrap();
    assert_eq!(sd.resources.gpus, 1);
    assert_eq!(sd.resources.vram_bytes, 8 << 30);
    assert!(!sd.deterministic);
    let echo = registry.get("echo", "1.0.0").unwrap();
    assert!(matches!(echo.args[2], Arg::Group(_)));
}

#[test]
fn the_production_directory_alone_holds_no_test_modules() {
    let registry = ModuleRegistry::load_dir(&repo_modules()).unwrap();
    assert!(registry.get("fail", "1.0.0").is_err());
    assert_eq!(registry.len(), 3);
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const GOOD: &str = r#"
image = "x/y:1"
entrypoint = ["/bin/prog"]
args = ["{a}"]
timeout = "5s"
[inputs.a]
type = "string"
[resources]
cpu = 1
memory = "64MiB"
"#;

#[test]
fn every_problem_in_every_file_is_reported_with_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "good/1.0.toml", GOOD);
    write(d, "syntax/1.0.toml", "image = \"unterminated\n");
    write(d, "stray.toml", GOOD);
    write(d, "Bad Name/1.0.toml", GOOD);
    write(
        d,
        "many/1.0.toml",
        r#"
imgae = "typo/key:1"
entrypoint = ["sh", "-c"]
args = ["echo {message}", "{nope}"]
env = { "1BAD" = "x", OK = "{mesage}" }
timeout = "forever"
network = "host"
digest = "md5:abc"
[inputs.message]
type = "text"
[inputs.both]
type = "string"
required = true
default = "x"
[inputs.unused]
type = "integer"
[inputs.num]
type = "integer"
choices = ["1"]
min = 5
max = 1
[resources]
cpu = 0
memory = "1MiB"
vram = "8GiB"
frobs = 3
[output]
inline = "/etc/passwd"
"#,
    );
    write(
        d,
        "inject/2.0.toml",
        r#"
image = "x/y"
entrypoint = ["/bin/sh"]
args = ["-c", "echo {msg}"]
timeout = "5s"
[inputs.msg]
type = "string"
max_bytes = "1MiB"
[resources]
cpu = 1
memory = "64MiB"
"#,
    );
    let err = ModuleRegistry::load_dir(d).unwrap_err();
    let shown = err.to_string();
    let found = |file: &str, field: &str, words: &str| {
        err.errors
            .iter()
            .any(|e| e.file.ends_with(file) && e.field == field && e.to_string().contains(words))
    };
    let expect = [
        ("syntax/1.0.toml", "", "not valid TOML"),
        ("stray.toml", "", "move it to"),
        ("Bad Name/1.0.toml", "", "not a valid module name"),
        ("many/1.0.toml", "imgae", "did you mean image?"),
        ("many/1.0.toml", "image", "missing"),
        ("many/1.0.toml", "args[0]", "inject commands"),
        ("many/1.0.toml", "args[1]", "{nope} names no declared input"),
        (
            "many/1.0.toml",
            "env.1BAD",
            "not an environment variable name",
        ),
        ("many/1.0.toml", "env.OK", "did you mean {message}?"),
        ("many/1.0.toml", "timeout", "\"forever\" is not a duration"),
        ("many/1.0.toml", "network", "provider's own network"),
        ("many/1.0.toml", "digest", "not a sha256 digest"),
        (
            "many/1.0.toml",
            "inputs.message.type",
            "unknown type \"text\"",
        ),
        (
            "many/1.0.toml",
            "inputs.both.default",
            "required input never uses its default",
        ),
        (
            "many/1.0.toml",
            "inputs.num.choices",
            "only apply to string inputs",
        ),
        ("many/1.0.toml", "inputs.num.min", "above max"),
        ("many/1.0.toml", "resources.cpu", "out of range"),
        (
            "many/1.0.toml",
            "resources.memory",
            "below Docker's minimum",
        ),
        ("many/1.0.toml", "resources.vram", "gpus is 0"),
        ("many/1.0.toml", "resources.frobs", "unknown key"),
        (
            "many/1.0.toml",
            "output.inline",
            "neither \"stdout\" nor a file under /outputs/",
        ),
        ("inject/2.0.toml", "image", "neither a tag nor a digest"),
        ("inject/2.0.toml", "args[1]", "inject commands"),
        (
            "inject/2.0.toml",
            "inputs.msg.max_bytes",
            "must be type = \"file\"",
        ),
    ];
    for (file, field, words) in expect {
        assert!(
            found(file, field, words),
            "expected {file}: {field}: ...{words}... in:\n{shown}"
        );
    }
    assert!(
        !shown.contains("good/1.0.toml"),
        "a good file has no errors:\n{shown}"
    );
    assert!(shown.starts_with(&format!("{} problems in job modules:", err.errors.len())));
}

#[test]
fn an_unused_input_and_a_missing_directory_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m/1.toml",
        &GOOD.replace(
            "[resources]",
            "[inputs.spare]\ntype = \"boolean\"\n[resources]",
        ),
    );
    let err = ModuleRegistry::load_dir(dir.path()).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    assert_eq!(err.errors[0].field, "inputs.spare");
    assert!(err.errors[0].problem.contains("never used"));

    let err = ModuleRegistry::load_dir(&dir.path().join("absent")).unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot read the modules directory"),
        "{err}"
    );
}

#[test]
fn a_deterministic_module_must_pin_its_image_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let deterministic = GOOD.replace("timeout = \"5s\"", "timeout = \"5s\"\ndeterministic = true");
    write(dir.path(), "m/1.toml", &deterministic);
    let err = ModuleRegistry::load_dir(dir.path()).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    assert_eq!(err.errors[0].field, "digest");
    let shown = err.errors[0].to_string();
    assert!(shown.contains("must be pinned by digest"), "{shown}");
    assert!(shown.contains("or set deterministic = false"), "{shown}");

    let pinned = deterministic.replace(
        "image = \"x/y:1\"",
        &format!("image = \"x/y:1\"\ndigest = \"sha256:{}\"", "ab".repeat(32)),
    );
    write(dir.path(), "m/1.toml", &pinned);
    let registry = ModuleRegistry::load_dir(dir.path()).unwrap();
    assert!(registry.get("m", "1").unwrap().deterministic);
}

#[test]
fn the_same_module_in_two_directories_is_an_error() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write(a.path(), "m/1.toml", GOOD);
    write(b.path(), "m/1.toml", GOOD);
    let err = ModuleRegistry::load_dirs(&[a.path(), b.path()]).unwrap_err();
    assert!(err.to_string().contains("is also defined in"), "{err}");
}

#[test]
fn inputs_reach_the_program_verbatim_as_whole_arguments() {
    let registry = shipped();
    let hostile = "hi; rm -rf / && $(id) `uname` \"q\" 'q' a=b {x} \n second line";
    let job = registry
        .prepare(
            "echo",
            "1.0.0",
            &inputs(&[
                ("text", hostile),
                ("extra", "x = y"),
                ("greeting", "hi there"),
            ]),
        )
        .unwrap();
    assert_eq!(job.entrypoint[0], "sh");
    assert_eq!(
        job.cmd,
        [hostile, "--count=1", "--extra", "x = y"],
        "one argument per template element, the optional --notes group left out"
    );
    assert_eq!(job.env, [("GREETING".to_owned(), "hi there".to_owned())]);
    assert!(job.files.is_empty());
    assert_eq!(job.values["count"], "1", "the default is applied");
    assert_eq!(job.argv().len(), job.entrypoint.len() + job.cmd.len());
}

#[test]
fn a_file_input_becomes_a_file_and_its_placeholder_its_path() {
    let job = shipped()
        .prepare(
            "echo",
            "1.0.0",
            &inputs(&[("text", "t"), ("notes", "line 1\nline 2")]),
        )
        .unwrap();
    assert_eq!(job.cmd, ["t", "--count=1", "--notes", "/inputs/notes"]);
    assert_eq!(job.files.len(), 1);
    assert_eq!(job.files[0].name, "notes");
    assert_eq!(job.files[0].contents, b"line 1\nline 2");
}

#[test]
fn unknown_modules_and_versions_say_what_exists() {
    let registry = shipped();
    let err = registry
        .prepare("cowsya", "1.0.0", &inputs(&[]))
        .unwrap_err();
    assert!(matches!(err, JobError::UnknownModule { .. }));
    assert!(err.to_string().contains("cowsay, echo"), "{err}");
    let err = registry.prepare("cowsay", "9.9", &inputs(&[])).unwrap_err();
    assert!(matches!(err, JobError::UnknownVersion { .. }));
    assert!(
        err.to_string().contains("use one of its versions: 1.0.0"),
        "{err}"
    );
}

#[test]
fn every_bad_input_is_reported_at_once_with_a_fix() {
    let registry = shipped();
    let err = registry
        .prepare(
            "echo",
            "1.0.0",
            &inputs(&[
                ("count", "eleven"),
                ("greeting", "yo"),
                ("extra", "a\0b"),
                ("txet", "typo"),
            ]),
        )
        .unwrap_err();
    let JobError::BadInputs { module, errors } = &err else {
        panic!("expected bad inputs, got {err}");
    };
    assert_eq!(module.to_string(), "echo:1.0.0");
    assert_eq!(errors.len(), 5, "{err}");
    assert!(errors.iter().any(|e| matches!(e, InputError::Unexpected { input, suggestion: Some(s), .. } if input == "txet" && s == "text")));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, InputError::Missing { input, .. } if input == "text"))
    );
    assert!(errors.iter().any(|e| matches!(e, InputError::WrongType { input, expected: InputType::Integer, .. } if input == "count")));
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, InputError::NotAChoice { input, .. } if input == "greeting"))
    );
    assert!(
        errors
            .iter()
            .any(|e| matches!(e, InputError::ContainsNul { input } if input == "extra"))
    );
    let shown = err.to_string();
    assert!(
        shown.starts_with("5 bad inputs for module echo:1.0.0:"),
        "{shown}"
    );
    assert!(shown.contains("did you mean text?"), "{shown}");
    assert!(shown.contains("(fix: add text=VALUE)"), "{shown}");
    assert!(
        shown.contains("must be one of: hello, hi there, good day"),
        "{shown}"
    );
}

#[test]
fn sizes_and_ranges_are_enforced() {
    let registry = shipped();
    let err = registry
        .prepare(
            "cowsay",
            "1.0.0",
            &inputs(&[("message", &"m".repeat(1025))]),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is 1.0 KiB but at most 1 KiB is allowed"),
        "{err}"
    );
    assert!(
        registry
            .prepare(
                "cowsay",
                "1.0.0",
                &inputs(&[("message", &"m".repeat(1024))])
            )
            .is_ok()
    );
    for (value, ok) in [
        ("255", true),
        ("256", false),
        ("0", false),
        ("-1", false),
        ("1.5", false),
        (" 3", false),
    ] {
        let r = registry.prepare("fail", "1.0.0", &inputs(&[("code", value)]));
        assert_eq!(r.is_ok(), ok, "code={value}: {r:?}");
    }
    let err = registry
        .prepare("fail", "1.0.0", &inputs(&[("code", "256")]))
        .unwrap_err();
    assert!(err.to_string().contains("must be from 1 to 255"), "{err}");
    let err = registry
        .prepare("oom", "1.0.0", &inputs(&[("anything", "x")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("this module takes no inputs"),
        "{err}"
    );
}

#[test]
fn key_value_entries_split_at_the_first_equals_sign() {
    let parsed =
        inputs_from_pairs(&["message=a = b = c", "empty=", "spaced=  two  words  "]).unwrap();
    assert_eq!(parsed["message"], "a = b = c");
    assert_eq!(parsed["empty"], "");
    assert_eq!(parsed["spaced"], "  two  words  ");
    let errors = inputs_from_pairs(&["novalue", "=x", "a=1", "a=2"]).unwrap_err();
    assert_eq!(errors.len(), 3);
    assert!(matches!(&errors[0], InputError::NotKeyValue { entry } if entry == "novalue"));
    assert!(matches!(&errors[1], InputError::NotKeyValue { .. }));
    assert!(matches!(&errors[2], InputError::Duplicate { input } if input == "a"));
}

#[test]
fn a_duration_reads_the_same_here_as_in_chains_toml() {
    // The same text chains.toml accepts for poll_interval (lilypad-config has the twin of this
    // test): decimals included.
    for (text, want) in [
        ("1.5s", Duration::from_millis(1500)),
        ("2500ms", Duration::from_millis(2500)),
        ("2m", Duration::from_secs(120)),
    ] {
        let module = ModuleRegistry::parse_module(
            "m",
            "1",
            Path::new("m/1.toml"),
            &GOOD.replace("\"5s\"", &format!("\"{text}\"")),
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(module.timeout, want, "{text}");
        assert_eq!(lilypad_toml::parse_duration(text), Some(want));
    }
    let err = ModuleRegistry::parse_module(
        "m",
        "1",
        Path::new("m/1.toml"),
        &GOOD.replace("\"5s\"", "\"0.5s\""),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("timeout: \"0.5s\" is out of range"),
        "{err}"
    );
}
