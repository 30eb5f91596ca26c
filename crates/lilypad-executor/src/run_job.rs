//! The one call a provider makes per job: from a request to an outcome, whatever happens.

use std::collections::BTreeMap;

use lilypad_modules::lilypad::LilypadError;
use lilypad_modules::{JobError, ModuleRegistry};

use crate::executor::{Executor, JobSpec};
use crate::outcome::{ErrorKind, Outcome};

/// Runs module `name` at `version` with `inputs` (key/value UTF-8 strings) as job `job_id`, and
/// always returns an outcome: an unknown module or version is `UnknownModule`, bad inputs are
/// `BadInput` (every problem listed in the error; for a Lilypad module from git, a template that
/// does not render into a module that can run here with these inputs), and everything that can happen once a
/// container is involved is reported by [`Executor::run`].
pub async fn run_job(
    executor: &Executor,
    registry: &ModuleRegistry,
    job_id: &str,
    name: &str,
    version: &str,
    inputs: &BTreeMap<String, String>,
    max_output_bytes: u64,
) -> Outcome {
    let module_ref = format!("{name}:{version}");
    let module = match registry.module(name, version, inputs) {
        Ok(m) => m,
        Err(
            e @ (JobError::UnknownModule { .. }
            | JobError::UnknownVersion { .. }
            | JobError::Lilypad(LilypadError::NotServed { .. } | LilypadError::Git(_))),
        ) => {
            return Outcome::rejected(job_id, &module_ref, ErrorKind::UnknownModule, e.to_string());
        }
        Err(e @ (JobError::Lilypad(_) | JobError::BadInputs { .. })) => {
            // For a Lilypad module: its template, rendered with these inputs, is not a module
            // that can run here.
            return Outcome::rejected(job_id, &module_ref, ErrorKind::BadInput, e.to_string());
        }
    };
    let module = module.as_ref();
    let prepared = match module.prepare(inputs) {
        Ok(p) => p,
        Err(e @ JobError::BadInputs { .. }) => {
            return Outcome::rejected(job_id, &module_ref, ErrorKind::BadInput, e.to_string());
        }
        Err(e) => {
            return Outcome::rejected(job_id, &module_ref, ErrorKind::UnknownModule, e.to_string());
        }
    };
    executor
        .run(JobSpec {
            job_id,
            module,
            prepared: &prepared,
            max_output_bytes,
        })
        .await
}
