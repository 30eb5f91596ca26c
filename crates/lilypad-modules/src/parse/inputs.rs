//! `[inputs.NAME]`: the typed values a job gives.

use std::collections::{BTreeMap, BTreeSet};

use lilypad_toml::{Errors, format_bytes, type_name};

use crate::input::check_value;
use crate::module::{InputSpec, InputType};
use crate::template::valid_input_name;

/// The largest value an input delivered as an argument or environment variable may declare:
/// Linux refuses any single argument or environment string of 128 KiB or more.
pub(crate) const MAX_ARG_INPUT_BYTES: u64 = 100 * 1024;
/// The largest `file` input a module may declare.
pub(crate) const MAX_FILE_INPUT_BYTES: u64 = 64 << 20;
const INPUT_KEYS: &[&str] = &[
    "type",
    "required",
    "default",
    "max_bytes",
    "description",
    "choices",
    "min",
    "max",
    "path",
];

/// The inputs that parsed, and the names of all declared (so a broken declaration does not also
/// make every use of it an error).
pub(super) fn read_inputs(
    r: &mut Errors,
    table: &toml::Table,
) -> (BTreeMap<String, InputSpec>, BTreeSet<String>) {
    let mut inputs = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let Some(v) = table.get("inputs") else {
        return (inputs, declared);
    };
    let Some(t) = r.table(
        "inputs",
        v,
        "declare each input as a table, e.g. [inputs.message] type = \"string\"",
    ) else {
        return (inputs, declared);
    };
    for (name, spec) in t {
        declared.insert(name.clone());
        let prefix = format!("inputs.{name}");
        if !valid_input_name(name) {
            r.error(
                &prefix,
                format!("{name:?} is not a valid input name"),
                "start with a letter or _, then letters, digits, _ or -",
            );
            continue;
        }
        if let Some(s) = read_input(r, &prefix, spec) {
            inputs.insert(name.clone(), s);
        }
    }
    (inputs, declared)
}

fn read_input(r: &mut Errors, prefix: &str, v: &toml::Value) -> Option<InputSpec> {
    let t = r.table(prefix, v, "write the input as a table with at least a type")?;
    let before = r.len();
    r.unknown_keys(t, &format!("{prefix}."), INPUT_KEYS);
    let type_fix =
        "write type = \"string\", \"integer\", \"number\", \"boolean\", \"file\" or \"cid\"";
    let kind = match t.get("type") {
        None => {
            r.error(format!("{prefix}.type"), "missing", type_fix);
            None
        }
        Some(v) => r
            .string(&format!("{prefix}.type"), v, type_fix)
            .and_then(|s| {
                let k = InputType::parse(s);
                if k.is_none() {
                    r.error(
                        format!("{prefix}.type"),
                        format!("unknown type {s:?}"),
                        type_fix,
                    );
                }
                k
            }),
    };
    let required = match t.get("required") {
        None => Some(false),
        Some(v) => r.boolean(&format!("{prefix}.required"), v),
    };
    let description = match t.get("description") {
        None => Some(String::new()),
        Some(v) => r
            .string(
                &format!("{prefix}.description"),
                v,
                "describe the input in a sentence",
            )
            .map(str::to_owned),
    };
    let max_field = format!("{prefix}.max_bytes");
    let max_bytes = match (t.get("max_bytes"), kind) {
        (None, Some(k)) => Some(k.default_max_bytes()),
        (None, None) => None,
        (Some(v), k) => r
            .size(&max_field, v, "write a size such as 1024 or \"64KiB\"")
            .and_then(|n| {
                let limit = if k == Some(InputType::File) {
                    MAX_FILE_INPUT_BYTES
                } else {
                    MAX_ARG_INPUT_BYTES
                };
                if n == 0 || n > limit {
                    let fix = if k == Some(InputType::File) {
                        format!("use 1 byte to {}", format_bytes(limit))
                    } else {
                        format!(
                            "use 1 byte to {}; larger values must be type = \"file\" (arguments and environment values cannot hold 128 KiB)",
                            format_bytes(limit)
                        )
                    };
                    r.error(&max_field, format!("{} is out of range", format_bytes(n)), fix);
                    None
                } else {
                    Some(n)
                }
            }),
    };
    let choices = match t.get("choices") {
        None => Some(None),
        Some(v) => {
            let field = format!("{prefix}.choices");
            if kind.is_some_and(|k| k != InputType::String) {
                r.error(
                    &field,
                    "choices only apply to string inputs",
                    "remove choices, or make the input type = \"string\"",
                );
                None
            } else {
                r.string_list(
                    &field,
                    v,
                    "list the accepted values, e.g. choices = [\"a\", \"b\"]",
                )
                .and_then(|c| {
                    if c.is_empty() {
                        r.error(
                            &field,
                            "empty: no value could be accepted",
                            "list at least one value, or remove choices",
                        );
                        None
                    } else {
                        Some(Some(c))
                    }
                })
            }
        }
    };
    // A bound that is absent or wrong is None here; a wrong one was reported and fails the input.
    let mut bound = |key: &str| -> Option<f64> {
        let v = t.get(key)?;
        let field = format!("{prefix}.{key}");
        if kind.is_some_and(|k| !matches!(k, InputType::Integer | InputType::Number)) {
            r.error(
                &field,
                format!("{key} only applies to integer and number inputs"),
                format!("remove {key}, or change the input's type"),
            );
            return None;
        }
        r.number(&field, v, "write a number")
    };
    let min = bound("min");
    let max = bound("max");
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        r.error(
            format!("{prefix}.min"),
            format!("min {lo} is above max {hi}"),
            "swap them",
        );
    }
    let path = match t.get("path") {
        None => None,
        Some(v) => {
            let field = format!("{prefix}.path");
            if kind.is_some_and(|k| k != InputType::Cid) {
                r.error(
                    &field,
                    "path only applies to cid inputs (other inputs reach the job as arguments, environment values or /inputs/NAME)",
                    "remove path, or make the input type = \"cid\"",
                );
                None
            } else {
                r.string(
                    &field,
                    v,
                    "write the absolute path the content is mounted at, e.g. path = \"/data\"",
                )
                .and_then(|p| match mount_path_problem(p) {
                    Some(problem) => {
                        r.error(
                            &field,
                            format!("{p:?} {problem}"),
                            "use an absolute path of plain names outside /outputs, e.g. /data or /inputs/dataset",
                        );
                        None
                    }
                    None => Some(p.to_owned()),
                })
            }
        }
    };
    let default = match t.get("default") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(v @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_))) => {
            Some(v.to_string())
        }
        Some(v) => {
            r.error(
                format!("{prefix}.default"),
                format!("expected a value, found {}", type_name(v)),
                "write the default as the job would give it, e.g. default = \"hello\"",
            );
            None
        }
    };
    if r.len() > before {
        return None;
    }
    let spec = InputSpec {
        kind: kind?,
        required: required?,
        default,
        max_bytes: max_bytes?,
        description: description?,
        choices: choices?,
        min,
        max,
        path,
    };
    if spec.required && spec.default.is_some() {
        r.error(
            format!("{prefix}.default"),
            "a required input never uses its default",
            "remove default, or set required = false",
        );
        return None;
    }
    if let Some(d) = &spec.default {
        let name = prefix.strip_prefix("inputs.").unwrap_or(prefix);
        if let Err(e) = check_value(name, d, &spec) {
            r.error(
                format!("{prefix}.default"),
                format!("the default is not a valid value: {e}"),
                "make the default satisfy the input's own type and limits",
            );
            return None;
        }
    }
    Some(spec)
}

/// What is wrong with a CID input's mount path, if anything.
pub(crate) fn mount_path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("is not absolute");
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.is_empty() {
        return Some("is the root directory");
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Some("has a . or .. segment");
    }
    if path.chars().any(|c| c.is_control() || c == ',' || c == ':') {
        return Some("has a control character, comma or colon");
    }
    if segments[0] == "outputs" || segments == ["inputs"] {
        return Some("is /inputs itself or under /outputs, which the provider mounts");
    }
    if ["proc", "dev", "sys"].contains(&segments[0]) {
        return Some("is under /proc, /dev or /sys, which the container's kernel interfaces hold");
    }
    None
}
