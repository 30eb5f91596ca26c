//! `args` and `env`: the templates a job's command line and environment are rendered from.

use std::collections::BTreeMap;

use lilypad_toml::{Errors, describe, type_name};

use crate::module::Arg;
use crate::template::Template;

pub(super) fn read_args(r: &mut Errors, table: &toml::Table) -> Vec<Arg> {
    let fix = "write args = [\"--flag\", \"{input}\", [\"--optional\", \"{optional_input}\"]]";
    let mut args = Vec::new();
    let Some(v) = table.get("args") else {
        return args;
    };
    let toml::Value::Array(items) = v else {
        r.error(
            "args",
            format!("expected an array, found {}", type_name(v)),
            fix,
        );
        return args;
    };
    for (i, item) in items.iter().enumerate() {
        let field = format!("args[{i}]");
        match item {
            toml::Value::String(s) => args.extend(template(r, &field, s).map(Arg::One)),
            toml::Value::Array(group) if !group.is_empty() => {
                let mut templates = Vec::new();
                for (j, g) in group.iter().enumerate() {
                    let field = format!("args[{i}][{j}]");
                    if let Some(s) = r.string(&field, g, fix).map(str::to_owned) {
                        templates.extend(template(r, &field, &s));
                    }
                }
                args.push(Arg::Group(templates));
            }
            other => {
                r.error(
                    &field,
                    format!(
                        "expected a string or a non-empty array of strings, found {}",
                        describe(other)
                    ),
                    fix,
                );
            }
        }
    }
    args
}

pub(super) fn read_env(r: &mut Errors, table: &toml::Table) -> BTreeMap<String, Template> {
    let mut env = BTreeMap::new();
    let Some(v) = table.get("env") else {
        return env;
    };
    let Some(t) = r.table("env", v, "write env = { NAME = \"{input}\" }") else {
        return env;
    };
    for (name, value) in t {
        let field = format!("env.{name}");
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.error(
                &field,
                format!("{name:?} is not an environment variable name"),
                "use letters, digits and _, not starting with a digit",
            );
            continue;
        }
        let fix = "write the value as a string template, e.g. \"{input}\"";
        if let Some(s) = r.string(&field, value, fix).map(str::to_owned)
            && let Some(t) = template(r, &field, &s)
        {
            env.insert(name.clone(), t);
        }
    }
    env
}

/// A template at `field`, or `None` with its problem recorded.
fn template(r: &mut Errors, field: &str, source: &str) -> Option<Template> {
    match Template::parse(source) {
        Ok(t) => Some(t),
        Err(problem) => {
            r.error(
                field,
                problem,
                "placeholders are {input_name}; write {{ and }} for literal braces",
            );
            None
        }
    }
}
