//! Checks across sections: placeholders name declared inputs, every input reaches the job, and
//! no input reaches a shell as code.

use std::collections::{BTreeMap, BTreeSet};

use lilypad_toml::Errors;
use lilypad_types::suggest::closest;

use crate::module::{Arg, InputSpec};
use crate::template::Template;

const SHELLS: &[&str] = &["sh", "bash", "dash", "ash", "zsh", "ksh", "mksh"];

/// Every placeholder names a declared input, every non-file input is used, inputs given as
/// arguments fit in one, and no input reaches a shell as code.
pub(super) fn check_references(
    r: &mut Errors,
    inputs: &BTreeMap<String, InputSpec>,
    declared: &BTreeSet<String>,
    args: &[Arg],
    env: &BTreeMap<String, Template>,
    entrypoint: &[String],
) {
    let names: Vec<&str> = declared.iter().map(String::as_str).collect();
    let mut used = BTreeSet::new();
    let mut uses = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for (j, t) in arg.templates().iter().enumerate() {
            let field = match arg {
                Arg::One(_) => format!("args[{i}]"),
                Arg::Group(_) => format!("args[{i}][{j}]"),
            };
            uses.push((field, t));
        }
    }
    for (name, t) in env {
        uses.push((format!("env.{name}"), t));
    }
    for (field, t) in &uses {
        for name in t.inputs() {
            used.insert(name.to_owned());
            if !declared.contains(name) {
                let fix = match closest(name, &names) {
                    Some(k) => format!("did you mean {{{k}}}?"),
                    None => format!("declare it as [inputs.{name}], or remove the placeholder"),
                };
                r.error(
                    field.clone(),
                    format!("{{{name}}} names no declared input"),
                    fix,
                );
                continue;
            }
            let Some(spec) = inputs.get(name) else {
                continue; // declared, but its declaration is broken (already reported)
            };
            if !spec.kind.is_mounted() && spec.max_bytes + t.literal_len() as u64 >= 128 * 1024 {
                r.error(
                    field.clone(),
                    "with the input at its max_bytes this argument would reach 128 KiB, which Linux refuses",
                    "lower the input's max_bytes, or make it type = \"file\"",
                );
            }
        }
    }
    for (name, spec) in inputs {
        if !spec.kind.is_mounted() && !used.contains(name) {
            r.error(
                format!("inputs.{name}"),
                "declared but never used in args or env, so it could not reach the job",
                format!("add {{{name}}} to args or env, or remove the input"),
            );
        }
    }
    for (i, part) in entrypoint.iter().enumerate() {
        if let Ok(t) = Template::parse(part)
            && let Some(name) = t.inputs().find(|n| declared.contains(*n))
        {
            r.error(
                format!("entrypoint[{i}]"),
                format!("the entrypoint is fixed, so {{{name}}} would be passed literally"),
                format!("move {{{name}}} into args"),
            );
        }
    }
    // `sh -c SCRIPT`: the script is code. Wherever a shell's -c option appears (in the
    // entrypoint or the args), the argument after it is that script and must not hold an input.
    let program = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    let mut sequence: Vec<(String, bool, String)> = entrypoint
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("entrypoint[{i}]"), false, e.clone()))
        .collect();
    sequence.extend(
        uses.iter()
            .filter(|(f, _)| f.starts_with("args"))
            .map(|(f, t)| (f.clone(), !t.is_literal(), t.source().to_owned())),
    );
    if let Some(at) = sequence
        .iter()
        .position(|(_, _, text)| SHELLS.contains(&program(text).as_str()))
    {
        for k in at + 1..sequence.len() {
            let (_, has_input, text) = &sequence[k];
            if *has_input || !text.starts_with('-') || text.starts_with("--") {
                break; // the first operand: a script file, or an input we do not interpret
            }
            if text.contains('c') {
                if let Some((field, true, _)) = sequence.get(k + 1) {
                    r.error(
                        field.clone(),
                        "this argument is the script a shell runs with -c, so an input in it could inject commands",
                        "put the script in the entrypoint (entrypoint = [\"sh\", \"-c\", \"script using $1\", \"name\"]) and pass inputs as further args",
                    );
                }
                break;
            }
        }
    }
}
