//! NVIDIA GPUs: finding them with `nvidia-smi`, handing them to jobs one job at a time, and the
//! Docker device request that gives a container exactly the GPUs it was handed.

use std::sync::{Arc, Mutex};

use bollard::models::DeviceRequest;

/// The `nvidia-smi` query the provider runs.
pub const NVIDIA_SMI_ARGS: &[&str] = &[
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
];

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// `nvidia-smi`'s index.
    pub index: u32,
    /// Its UUID (`GPU-...`), what Docker is given: stable across reboots, unlike the index.
    pub uuid: String,
    /// Its model name.
    pub name: String,
    /// Its memory in MiB.
    pub memory_mib: u64,
}

/// Why GPUs could not be detected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    /// A line of `nvidia-smi` output did not parse.
    #[error("nvidia-smi line {line}: {problem}: {text:?} (fix: check the driver with `nvidia-smi`; this expects {})", NVIDIA_SMI_ARGS.join(" "))]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: &'static str,
        /// The line.
        text: String,
    },
    /// `nvidia-smi` ran and failed.
    #[error("nvidia-smi failed ({status}): {stderr} (fix: check the NVIDIA driver is loaded)")]
    Failed {
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },
}

/// Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi(output: &str) -> Result<Vec<Gpu>, GpuError> {
    let mut gpus = Vec::new();
    for (i, line) in output.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |problem| GpuError::Parse {
            line: i + 1,
            problem,
            text: line.to_owned(),
        };
        // The name may itself hold commas only in theory; split from both ends to be safe.
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 4 {
            return Err(err("expected 4 comma-separated fields"));
        }
        let index = fields[0]
            .parse()
            .map_err(|_| err("index is not a number"))?;
        let uuid = fields[1];
        if !uuid.starts_with("GPU-") {
            return Err(err("uuid does not start with GPU-"));
        }
        let memory_mib = fields[fields.len() - 1]
            .parse()
            .map_err(|_| err("memory.total is not a number of MiB"))?;
        let name = fields[2..fields.len() - 1].join(",");
        gpus.push(Gpu {
            index,
            uuid: uuid.to_owned(),
            name,
            memory_mib,
        });
    }
    Ok(gpus)
}

/// The NVIDIA GPUs of this machine: empty when `nvidia-smi` is not installed (no NVIDIA driver).
pub async fn detect_gpus() -> Result<Vec<Gpu>, GpuError> {
    let out = match tokio::process::Command::new("nvidia-smi")
        .args(NVIDIA_SMI_ARGS)
        .output()
        .await
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(GpuError::Failed {
                status: "could not run".to_owned(),
                stderr: e.to_string(),
            });
        }
    };
    if !out.status.success() {
        return Err(GpuError::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// The device request giving a container exactly `gpus` (by UUID), through the NVIDIA container
/// runtime (`--gpus device=...`).
pub fn device_request(gpus: &[Gpu]) -> DeviceRequest {
    DeviceRequest {
        driver: Some("nvidia".to_owned()),
        count: None,
        device_ids: Some(gpus.iter().map(|g| g.uuid.clone()).collect()),
        capabilities: Some(vec![vec!["gpu".to_owned()]]),
        options: None,
    }
}

/// The provider's GPUs, each given to at most one job at a time.
#[derive(Debug, Clone, Default)]
pub struct GpuPool {
    gpus: Vec<Gpu>,
    busy: Arc<Mutex<Vec<bool>>>,
}

/// GPUs held by one job; they return to the pool when this is dropped.
#[derive(Debug)]
pub struct GpuLease {
    gpus: Vec<Gpu>,
    indices: Vec<usize>,
    busy: Arc<Mutex<Vec<bool>>>,
}

impl GpuLease {
    /// The GPUs held.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        for &i in &self.indices {
            busy[i] = false;
        }
    }
}

impl GpuPool {
    /// A pool of these GPUs, all free.
    pub fn new(gpus: Vec<Gpu>) -> Self {
        let busy = Arc::new(Mutex::new(vec![false; gpus.len()]));
        Self { gpus, busy }
    }

    /// All GPUs, free or not.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }

    /// Takes `count` free GPUs with at least `min_memory_mib` each, or says what is missing.
    pub fn lease(&self, count: u32, min_memory_mib: u64) -> Result<GpuLease, String> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let fitting: Vec<usize> = (0..self.gpus.len())
            .filter(|&i| self.gpus[i].memory_mib >= min_memory_mib)
            .collect();
        let free: Vec<usize> = fitting.iter().copied().filter(|&i| !busy[i]).collect();
        if free.len() < count as usize {
            return Err(format!(
                "the job needs {count} GPU(s) with at least {min_memory_mib} MiB each; this provider has {} such GPU(s), {} free (of {} in all)",
                fitting.len(),
                free.len(),
                self.gpus.len()
            ));
        }
        let indices: Vec<usize> = free.into_iter().take(count as usize).collect();
        for &i in &indices {
            busy[i] = true;
        }
        Ok(GpuLease {
            gpus: indices.iter().map(|&i| self.gpus[i].clone()).collect(),
            indices,
            busy: self.busy.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output in the format `nvidia-smi` prints for this query on a two-GPU machine.
    const SAMPLE: &str = "\
0, GPU-5b7d2f6e-8a1c-4c3e-9d2b-1f0e6a7b8c9d, NVIDIA GeForce RTX 3090, 24576
1, GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789, NVIDIA A100-SXM4-40GB, 40960
";

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpus = parse_nvidia_smi(SAMPLE).unwrap();
        assert_eq!(
            gpus,
            [
                Gpu {
                    index: 0,
                    uuid: "GPU-5b7d2f6e-8a1c-4c3e-9d2b-1f0e6a7b8c9d".into(),
                    name: "NVIDIA GeForce RTX 3090".into(),
                    memory_mib: 24576,
                },
                Gpu {
                    index: 1,
                    uuid: "GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789".into(),
                    name: "NVIDIA A100-SXM4-40GB".into(),
                    memory_mib: 40960,
                },
            ]
        );
        assert_eq!(parse_nvidia_smi("").unwrap(), []);
    }

    #[test]
    fn says_which_line_of_nvidia_smi_is_wrong() {
        let err = parse_nvidia_smi("0, GPU-x, Tesla T4, [N/A]\n").unwrap_err();
        assert!(matches!(err, GpuError::Parse { line: 1, .. }));
        assert!(err.to_string().contains("memory.total"), "{err}");
        let err = parse_nvidia_smi(&format!("{SAMPLE}No devices were found\n")).unwrap_err();
        assert!(matches!(err, GpuError::Parse { line: 3, .. }), "{err}");
    }

    #[test]
    fn the_device_request_names_exactly_the_leased_gpus() {
        let pool = GpuPool::new(parse_nvidia_smi(SAMPLE).unwrap());
        let lease = pool.lease(1, 30_000).unwrap();
        assert_eq!(lease.gpus()[0].index, 1, "only the A100 has 30 GB");
        let request = device_request(lease.gpus());
        assert_eq!(request.driver.as_deref(), Some("nvidia"));
        assert_eq!(
            request.device_ids,
            Some(vec!["GPU-0a1b2c3d-4e5f-6789-abcd-ef0123456789".to_owned()])
        );
        assert_eq!(request.count, None, "never `all`");
        assert_eq!(request.capabilities, Some(vec![vec!["gpu".to_owned()]]));
    }

    #[test]
    fn a_gpu_is_leased_to_one_job_at_a_time() {
        let pool = GpuPool::new(parse_nvidia_smi(SAMPLE).unwrap());
        let a = pool.lease(1, 0).unwrap();
        let b = pool.lease(1, 0).unwrap();
        assert_ne!(a.gpus()[0].uuid, b.gpus()[0].uuid);
        let err = pool.lease(1, 0).unwrap_err();
        assert!(err.contains("2 such GPU(s), 0 free"), "{err}");
        drop(a);
        assert!(pool.lease(1, 0).is_ok(), "returned on drop");
        assert!(pool.lease(3, 0).unwrap_err().contains("needs 3 GPU(s)"));
    }
}
