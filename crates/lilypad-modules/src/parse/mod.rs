//! Parsing one module file. Each section has its own reader; every problem in the file is
//! collected (with its field) before the file is given up on.

mod checks;
mod command;
mod image;
mod inputs;
mod resources;

use std::path::Path;
use std::time::Duration;

use lilypad_toml::{Errors, Field};

use checks::check_references;
use command::{read_args, read_env};
use image::read_image;
pub(crate) use inputs::mount_path_problem;
use inputs::read_inputs;
use resources::read_resources;

use crate::error::ModuleError;
use crate::module::{InlineOutput, Module, ModuleRef, Network};

const TOP_KEYS: &[&str] = &[
    "description",
    "image",
    "digest",
    "entrypoint",
    "args",
    "env",
    "inputs",
    "resources",
    "timeout",
    "network",
    "deterministic",
    "output",
];
const OUTPUT_KEYS: &[&str] = &["inline"];

/// Parses one module file's `text`; every problem found is added to `errors`, naming `file`.
pub(crate) fn parse_module(
    reference: ModuleRef,
    file: &Path,
    text: &str,
    errors: &mut Vec<ModuleError>,
) -> Option<Module> {
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            errors.push(ModuleError::file(
                file,
                format!("not valid TOML: {}", e.to_string().trim()),
                "correct the syntax at the line and column shown",
            ));
            return None;
        }
    };
    let mut r = Errors::new();
    let module = read_module(&mut r, reference, file, &table);
    let found = r.into_vec();
    if !found.is_empty() {
        errors.extend(found.into_iter().map(|e| ModuleError::in_file(file, e)));
        return None;
    }
    module
}

fn read_module(
    r: &mut Errors,
    reference: ModuleRef,
    file: &Path,
    table: &toml::Table,
) -> Option<Module> {
    r.unknown_keys(table, "", TOP_KEYS);

    let description = match table.get("description") {
        Some(v) => r
            .string(
                "description",
                v,
                "describe what the module does in a sentence",
            )
            .map(str::to_owned),
        None => Some(String::new()),
    };
    let image = read_image(r, table);
    let entrypoint = match table.get("entrypoint") {
        Some(v) => r.string_list(
            "entrypoint",
            v,
            "write the program and its fixed leading arguments, e.g. entrypoint = [\"/usr/bin/cowsay\"]",
        ),
        None => Some(Vec::new()),
    };
    let (inputs, declared) = read_inputs(r, table);
    let args = read_args(r, table);
    let env = read_env(r, table);
    let resources = read_resources(r, table);
    let timeout = match table.get("timeout") {
        None => {
            r.error(
                "timeout",
                "missing",
                "say how long a job may run before it is killed, e.g. timeout = \"30s\" (ms, s, m, h)",
            );
            None
        }
        Some(v) => r.ok(Field::toml("timeout", v)
            .duration(Duration::from_secs(1), Duration::from_secs(24 * 3600))),
    };
    let network = match table.get("network") {
        None => Some(Network::None),
        Some(v) => {
            let fix = "write network = \"none\" (the default) or, only if the module must download something, network = \"bridge\"";
            r.string("network", v, fix).and_then(|s| match s {
                "none" => Some(Network::None),
                "bridge" => Some(Network::Bridge),
                "host" => {
                    r.error(
                        "network",
                        "\"host\" would give a stranger's code the provider's own network stack",
                        fix,
                    );
                    None
                }
                other => {
                    r.error("network", format!("unknown network {other:?}"), fix);
                    None
                }
            })
        }
    };
    let deterministic = match table.get("deterministic") {
        None => Some(false),
        Some(v) => r.boolean("deterministic", v),
    };
    let output = read_output(r, table);

    // Cross-field checks, on whatever parts parsed.
    if deterministic == Some(true) && image.as_ref().is_some_and(|i| i.digest.is_none()) {
        r.error(
            "digest",
            "missing: a deterministic module can be challenged, so its image must be pinned by digest (a tag can be moved to another image)",
            "add digest = \"sha256:...\" (the image id, `docker image inspect --format '{{.Id}}' IMAGE`, or the registry digest it is pulled by), or set deterministic = false",
        );
    }
    check_references(
        r,
        &inputs,
        &declared,
        &args,
        &env,
        entrypoint.as_deref().unwrap_or_default(),
    );

    if !r.is_empty() {
        return None;
    }
    Some(Module {
        reference,
        source: file.to_owned(),
        description: description?,
        image: image?,
        entrypoint: entrypoint?,
        args,
        env,
        inputs,
        resources: resources?,
        timeout: timeout?,
        network: network?,
        deterministic: deterministic?,
        output: output?,
        workdir: None,
        format: crate::module::ModuleFormat::Toml,
    })
}

fn read_output(r: &mut Errors, table: &toml::Table) -> Option<InlineOutput> {
    let Some(v) = table.get("output") else {
        return Some(InlineOutput::Stdout);
    };
    let t = r.table("output", v, "write [output] inline = \"stdout\"")?;
    r.unknown_keys(t, "output.", OUTPUT_KEYS);
    let fix = "write inline = \"stdout\" or the path of a file the job writes, e.g. inline = \"/outputs/result.txt\"";
    match t.get("inline") {
        None => Some(InlineOutput::Stdout),
        Some(v) => {
            let s = r.string("output.inline", v, fix)?;
            if s == "stdout" {
                return Some(InlineOutput::Stdout);
            }
            let rel = s.strip_prefix("/outputs/").unwrap_or("");
            let ok = !rel.is_empty()
                && rel
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..");
            if ok {
                Some(InlineOutput::File(rel.to_owned()))
            } else {
                r.error(
                    "output.inline",
                    format!("{s:?} is neither \"stdout\" nor a file under /outputs/"),
                    fix,
                );
                None
            }
        }
    }
}
