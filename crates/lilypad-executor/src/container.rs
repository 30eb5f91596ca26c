//! The container a job runs in: locked down by default, limited to the module's resources.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, Mount, MountType};
use lilypad_modules::{INPUTS_DIR, Module, OUTPUTS_DIR, PreparedJob};

use crate::gpu::{Gpu, device_request};

/// Label on every container the executor creates: `true`.
pub const LABEL_MANAGED: &str = "lilypad.managed";
/// Label naming the provider that created the container.
pub const LABEL_PROVIDER: &str = "lilypad.provider";
/// Label naming the job.
pub const LABEL_JOB: &str = "lilypad.job";
/// Label naming the module (`name:version`).
pub const LABEL_MODULE: &str = "lilypad.module";

/// What the container config is built from, besides the module and the job.
#[derive(Debug, Clone)]
pub struct Sandbox<'a> {
    /// The image to run: the checked image id when the module pins a digest, else its reference.
    pub image: &'a str,
    /// The provider's id (label).
    pub provider_id: &'a str,
    /// The job's id (label).
    pub job_id: &'a str,
    /// Host directory mounted read-only at `/inputs`.
    pub inputs_dir: &'a Path,
    /// Host directory mounted read-write at `/outputs`.
    pub outputs_dir: &'a Path,
    /// Most processes (threads count) the container may have.
    pub pids_limit: i64,
    /// The user to run as (`uid[:gid]`), or the image's.
    pub user: Option<&'a str>,
    /// The GPUs this job was given.
    pub gpus: &'a [Gpu],
    /// Inputs fetched by CID: where each is on the host, and where the container sees it
    /// (read-only).
    pub cid_mounts: &'a [(std::path::PathBuf, String)],
}

/// The Docker create request for `job` of `module`:
///
/// - no network unless the module asks for one (`NetworkMode`);
/// - CPU (`NanoCpus`), memory (`Memory`, with no swap on top) and process (`PidsLimit`) limits;
/// - every capability dropped and `no-new-privileges`, so nothing in the container can gain
///   privileges (setuid binaries included);
/// - `/inputs` read-only and `/outputs` read-write, bound from the job's own host directories;
///   inputs fetched by CID read-only at their paths, bound from the result store;
/// - exactly the job's GPUs, by UUID, and only when the module needs GPUs;
/// - the container's output is not logged by Docker (the executor reads it live, with a cap);
/// - a raised OOM score, so under host memory pressure the job dies before the provider;
/// - labels naming the provider, job and module, so leftovers can be found and removed.
pub fn container_config(
    module: &Module,
    job: &PreparedJob,
    sandbox: &Sandbox<'_>,
) -> ContainerCreateBody {
    let labels = HashMap::from([
        (LABEL_MANAGED.to_owned(), "true".to_owned()),
        (LABEL_PROVIDER.to_owned(), sandbox.provider_id.to_owned()),
        (LABEL_JOB.to_owned(), sandbox.job_id.to_owned()),
        (LABEL_MODULE.to_owned(), module.reference.to_string()),
    ]);
    // A CID mounted at /inputs itself (as Lilypad modules do) takes the place of the job's own
    // /inputs directory, which then holds no files.
    let cid_at_inputs = sandbox.cid_mounts.iter().any(|(_, t)| t == INPUTS_DIR);
    let inputs_mount = (!cid_at_inputs).then(|| Mount {
        target: Some(INPUTS_DIR.to_owned()),
        source: Some(sandbox.inputs_dir.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    });
    let mut mounts: Vec<Mount> = inputs_mount.into_iter().collect();
    mounts.extend([Mount {
        target: Some(OUTPUTS_DIR.to_owned()),
        source: Some(sandbox.outputs_dir.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(false),
        ..Default::default()
    }]);
    // After /inputs, so one under /inputs lands on the mount point made for it there.
    mounts.extend(sandbox.cid_mounts.iter().map(|(source, target)| Mount {
        target: Some(target.clone()),
        source: Some(source.display().to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }));
    let memory = i64::try_from(module.resources.memory_bytes).unwrap_or(i64::MAX);
    let device_requests = if module.resources.gpus > 0 && !sandbox.gpus.is_empty() {
        Some(vec![device_request(sandbox.gpus)])
    } else {
        None
    };
    let host_config = HostConfig {
        network_mode: Some(module.network.docker_mode().to_owned()),
        nano_cpus: Some(i64::try_from(module.resources.cpu_millis * 1_000_000).unwrap_or(i64::MAX)),
        memory: Some(memory),
        memory_swap: Some(memory),
        pids_limit: Some(sandbox.pids_limit),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        mounts: Some(mounts),
        device_requests,
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".to_owned()),
            config: None,
        }),
        oom_score_adj: Some(500),
        ipc_mode: Some("private".to_owned()),
        init: Some(false),
        auto_remove: Some(false),
        privileged: Some(false),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(sandbox.image.to_owned()),
        entrypoint: (!job.entrypoint.is_empty()).then(|| job.entrypoint.clone()),
        cmd: (!job.cmd.is_empty() || !job.entrypoint.is_empty()).then(|| job.cmd.clone()),
        env: Some(job.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: module.workdir.clone(),
        labels: Some(labels),
        user: sandbox.user.map(str::to_owned),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        attach_stdin: Some(false),
        open_stdin: Some(false),
        tty: Some(false),
        network_disabled: Some(module.network == lilypad_modules::Network::None),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::parse_nvidia_smi;
    use lilypad_modules::ModuleRegistry;
    use std::collections::BTreeMap;

    fn module(toml: &str) -> Module {
        ModuleRegistry::parse_module("m", "1", Path::new("m/1.toml"), toml).unwrap()
    }

    const GPU_MODULE: &str = r#"
image = "example/sd:1"
entrypoint = ["python", "main.py"]
args = ["--p", "{prompt}"]
timeout = "10m"
[inputs.prompt]
type = "string"
required = true
[resources]
cpu = 2.5
memory = "8GiB"
gpus = 1
vram = "20GiB"
"#;

    fn sandbox<'a>(gpus: &'a [Gpu]) -> Sandbox<'a> {
        Sandbox {
            image: "example/sd:1",
            provider_id: "provider-1",
            job_id: "31337:7",
            inputs_dir: Path::new("/work/job/inputs"),
            outputs_dir: Path::new("/work/job/result/outputs"),
            pids_limit: 256,
            user: None,
            gpus,
            cid_mounts: &[],
        }
    }

    #[test]
    fn a_gpu_job_gets_exactly_its_gpus_and_every_other_limit() {
        let m = module(GPU_MODULE);
        let inputs = BTreeMap::from([("prompt".to_owned(), "a cat; rm -rf /".to_owned())]);
        let job = m.prepare(&inputs).unwrap();
        let gpus = parse_nvidia_smi(
            "0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA A10, 23028\n\
             1, GPU-bbbbbbbb-0000-0000-0000-000000000000, NVIDIA A10, 23028\n",
        )
        .unwrap();
        let config = container_config(&m, &job, &sandbox(&gpus[1..]));
        assert_eq!(config.image.as_deref(), Some("example/sd:1"));
        assert_eq!(
            config.entrypoint,
            Some(vec!["python".into(), "main.py".into()])
        );
        assert_eq!(
            config.cmd,
            Some(vec!["--p".into(), "a cat; rm -rf /".into()])
        );
        let host = config.host_config.unwrap();
        let requests = host.device_requests.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].driver.as_deref(), Some("nvidia"));
        assert_eq!(
            requests[0].device_ids,
            Some(vec!["GPU-bbbbbbbb-0000-0000-0000-000000000000".to_owned()])
        );
        assert_eq!(host.nano_cpus, Some(2_500_000_000));
        assert_eq!(host.memory, Some(8 << 30));
        assert_eq!(
            host.memory_swap,
            Some(8 << 30),
            "no swap on top of the limit"
        );
        assert_eq!(host.pids_limit, Some(256));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.privileged, Some(false));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts[0].target.as_deref(), Some("/inputs"));
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[1].target.as_deref(), Some("/outputs"));
        assert_eq!(
            mounts[1].source.as_deref(),
            Some("/work/job/result/outputs")
        );
        assert_eq!(mounts[1].read_only, Some(false));
        let labels = config.labels.unwrap();
        assert_eq!(labels[LABEL_PROVIDER], "provider-1");
        assert_eq!(labels[LABEL_JOB], "31337:7");
        assert_eq!(labels[LABEL_MODULE], "m:1");
    }

    fn mounts_with(cid_mounts: &[(std::path::PathBuf, String)]) -> Vec<(String, String, bool)> {
        let m = module(&GPU_MODULE.replace("gpus = 1\nvram = \"20GiB\"\n", ""));
        let inputs = BTreeMap::from([("prompt".to_owned(), "x".to_owned())]);
        let job = m.prepare(&inputs).unwrap();
        let sandbox = Sandbox {
            cid_mounts,
            ..sandbox(&[])
        };
        container_config(&m, &job, &sandbox)
            .host_config
            .unwrap()
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.target.unwrap(), m.source.unwrap(), m.read_only.unwrap()))
            .collect()
    }

    #[test]
    fn inputs_by_cid_are_mounted_read_only_after_inputs_and_outputs() {
        let mounts = mounts_with(&[
            ("/store/bafy1".into(), "/inputs/data".into()),
            ("/store/bafy2".into(), "/data".into()),
        ]);
        let targets: Vec<_> = mounts.iter().map(|(t, _, ro)| (t.as_str(), *ro)).collect();
        assert_eq!(
            targets,
            [
                ("/inputs", true),
                ("/outputs", false),
                ("/inputs/data", true),
                ("/data", true)
            ]
        );
        assert_eq!(mounts[2].1, "/store/bafy1");
    }

    #[test]
    fn a_cid_mounted_at_inputs_itself_replaces_the_jobs_inputs_directory() {
        let mounts = mounts_with(&[("/store/bafy1".into(), "/inputs".into())]);
        let targets: Vec<_> = mounts
            .iter()
            .map(|(t, s, ro)| (t.as_str(), s.as_str(), *ro))
            .collect();
        assert_eq!(
            targets,
            [
                ("/outputs", "/work/job/result/outputs", false),
                ("/inputs", "/store/bafy1", true)
            ]
        );
    }

    #[test]
    fn a_cpu_job_gets_no_device_request() {
        let m = module(&GPU_MODULE.replace("gpus = 1\nvram = \"20GiB\"\n", ""));
        let inputs = BTreeMap::from([("prompt".to_owned(), "x".to_owned())]);
        let config = container_config(&m, &m.prepare(&inputs).unwrap(), &sandbox(&[]));
        assert_eq!(config.host_config.unwrap().device_requests, None);
    }

    #[test]
    fn a_lilypad_module_runs_with_its_entrypoint_parameters_env_and_working_directory() {
        let bound = lilypad_modules::git::GitModuleRef {
            url: "file:///srv/m.git".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            path: lilypad_modules::git::DEFAULT_TEMPLATE_PATH.to_owned(),
        };
        let template = r#"{"machine": {"cpu": 250, "ram": 64},
            "job": {"APIVersion": "V1beta1", "Spec": {"Timeout": 60,
              "Docker": {"Image": "lilypad/test-tools:1.0.0", "Entrypoint": ["sh", "-c", "pwd"],
                "Parameters": [{{.A}}], "EnvironmentVariables": ["X=1"], "WorkingDirectory": "/srv"}}}}"#;
        let inputs = BTreeMap::from([("A".to_owned(), "a b".to_owned())]);
        let m =
            lilypad_modules::load_template(&bound, template, &inputs, Default::default()).unwrap();
        let config = container_config(&m, &m.prepare(&inputs).unwrap(), &sandbox(&[]));
        assert_eq!(config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(config.entrypoint.unwrap(), ["sh", "-c", "pwd"]);
        assert_eq!(config.cmd.unwrap(), ["a b"]);
        assert_eq!(config.env.unwrap(), ["X=1"]);
        let host = config.host_config.unwrap();
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(
            config.labels.unwrap()[LABEL_MODULE],
            format!("file:///srv/m.git:{}", bound.commit)
        );
    }
}
