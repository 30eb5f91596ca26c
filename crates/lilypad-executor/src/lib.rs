//! Runs Lilypad jobs in Docker containers that a provider can trust with strangers' code, and
//! turns whatever happens into an [`Outcome`] the provider signs and reports.
//!
//! [`run_job`] is the whole path: find the module, check the inputs, make sure the image is
//! present (pulling it if allowed), create a locked-down container (no network unless the module
//! asks, CPU/memory/process limits, every capability dropped, `no-new-privileges`, read-only
//! `/inputs`, writable `/outputs`, exactly the job's GPUs), capture stdout and stderr up to a
//! cap, kill it at the module's timeout, detect out-of-memory kills, store the result directory
//! content-addressed, and always remove the container. `docs/provider.md` is the security model.

mod container;
mod executor;
mod gpu;
mod outcome;
mod run_job;

pub use container::{
    LABEL_JOB, LABEL_MANAGED, LABEL_MODULE, LABEL_PROVIDER, Sandbox, container_config,
};
pub use executor::{Executor, ExecutorConfig, ExecutorError, JobSpec, PullPolicy};
pub use gpu::{
    Gpu, GpuError, GpuLease, GpuPool, NVIDIA_SMI_ARGS, detect_gpus, device_request,
    parse_nvidia_smi,
};
pub use outcome::{ErrorKind, Outcome, Status};
pub use run_job::run_job;
