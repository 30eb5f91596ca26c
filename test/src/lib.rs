//! Harness for Lilypad's end-to-end tests.
//!
//! Every service is the real program, started on a loopback port chosen at run time, with its own
//! scratch directory and log file, and stopped when its handle is dropped, so tests can run side by
//! side. A service that cannot start says why and where its log is.
//!
//! The programs are found on `PATH` (`nats-server`, `redis-server`, `docker`) or, for Foundry's
//! `anvil`, in `contracts/node_modules/.bin` where `./script/setup` installs it (override with
//! `LILYPAD_FOUNDRY_BIN`).

pub mod bench;
mod deploy;
mod docker;
mod eventually;
mod git;
mod modules;
mod process;
mod proxy;
mod rpc_faults;
mod wire;

pub use deploy::{contracts_path, deploy_contracts, deploy_contracts_with, dev_keys, forge_script};
pub use docker::{BUSYBOX_IMAGE, DockerError, docker_run, ensure_busybox_image, timed_docker_run};
pub use eventually::{POLL_EVERY, eventually, eventually_every, ok_if};
pub use git::BareRepo;
pub use modules::{ModuleImagesError, ensure_module_images, job_modules_dir, test_modules_dir};
pub use process::{
    Anvil, DEV_BLOCK_TIME_SECS, HarnessError, Nats, Redis, Service, foundry_tool, free_port,
};
pub use proxy::TcpProxy;
pub use rpc_faults::{Fault, FaultPlan, FaultyRpc, MethodStats, RpcStats};
pub use wire::{WireError, json_rpc, nats_info, redis_command};
