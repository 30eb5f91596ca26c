//! Module ids: the hash of a module's canonical definition, and the checks a request's pin must
//! pass before a module runs.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use lilypad_modules::{ModuleRegistry, PinError};

const COWSAY: &str = r#"
# a comment
description = "Draws a cow"
image = "lilypad/cowsay:1.0.0"
digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
entrypoint = ["/usr/bin/cowsay"]
args = ["{message}"]
timeout = "30s"
deterministic = true

[inputs.message]
type = "string"
required = true
description = "What the cow says"

[resources]
cpu = 0.5
memory = "32MiB"
"#;

fn module(text: &str) -> lilypad_modules::Module {
    ModuleRegistry::parse_module("cowsay", "1.0.0", Path::new("cowsay/1.0.0.toml"), text).unwrap()
}

#[test]
fn the_id_ignores_comments_and_descriptions() {
    let edited = COWSAY
        .replace("# a comment", "# another comment")
        .replace("Draws a cow", "Draws a friendly cow")
        .replace("What the cow says", "The message");
    assert_eq!(module(COWSAY).id(), module(&edited).id());
}

#[test]
fn the_id_changes_with_what_runs() {
    let id = module(COWSAY).id();
    for (from, to) in [
        ("0000000000000001", "0000000000000002"),
        ("{message}", "--say={message}"),
        ("deterministic = true", "deterministic = false"),
        ("timeout = \"30s\"", "timeout = \"31s\""),
        ("memory = \"32MiB\"", "memory = \"64MiB\""),
        ("required = true", "max_bytes = 10"),
    ] {
        assert_ne!(module(&COWSAY.replace(from, to)).id(), id, "{from} -> {to}");
    }
}

#[test]
fn the_canonical_form_is_sorted_compact_json_naming_the_image_digest() {
    let canonical = module(COWSAY).canonical();
    assert!(
        canonical.starts_with(r#"{"args":["{message}"],"deterministic":true,"entrypoint":["/usr/bin/cowsay"],"env":{},"format":"lilypad-rs/module/1","image":"lilypad/cowsay:1.0.0@sha256:0000"#),
        "{canonical}"
    );
    assert!(!canonical.contains("Draws"), "{canonical}");
}

#[test]
fn a_pin_of_another_definition_is_refused_naming_both_ids() {
    let m = module(COWSAY);
    let other = module(&COWSAY.replace("{message}", "--say={message}")).id();
    let e = m.check_pin(other, true).unwrap_err();
    assert!(matches!(*e, PinError::IdMismatch { .. }));
    let text = e.to_string();
    assert!(text.contains(&other.to_string()), "{text}");
    assert!(text.contains(&m.id().to_string()), "{text}");
    assert!(text.contains("cowsay/1.0.0.toml"), "{text}");
    assert!(
        text.contains("lilypad module id cowsay --version 1.0.0"),
        "{text}"
    );
}

#[test]
fn the_pin_of_the_same_definition_and_an_unpinned_request_pass() {
    let m = module(COWSAY);
    m.check_pin(m.id(), true).unwrap();
    m.check_pin(Default::default(), false).unwrap();
}

#[test]
fn a_deterministic_claim_for_a_module_that_is_not_is_refused() {
    let m = module(&COWSAY.replace("deterministic = true", "deterministic = false"));
    let e = m.check_pin(m.id(), true).unwrap_err();
    assert!(matches!(*e, PinError::NotDeterministic { .. }), "{e}");
    m.check_pin(m.id(), false).unwrap();
}

#[test]
fn a_git_module_is_pinned_by_repository_commit_and_path_and_never_deterministic() {
    let registry = ModuleRegistry::default();
    let url = "https://github.com/Lilypad-Tech/lilypad-module-cowsay";
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let (id, deterministic) = registry.pin(url, commit).unwrap();
    assert!(!deterministic);
    let other = "1123456789abcdef0123456789abcdef01234567";
    assert_ne!(registry.pin(url, other).unwrap().0, id);
    assert_ne!(
        registry
            .pin(url, &format!("{commit}:other.json.tmpl"))
            .unwrap()
            .0,
        id
    );
}
