//! The job modules' images, built locally (no registry can be reached here) by
//! `job-modules/images/build`, and where the module definitions live.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Why the module images could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "building the job module images with {script} failed: {message} (fix: run ./script/setup, then {script} by hand to see the whole log)"
)]
pub struct ModuleImagesError {
    /// The build script.
    pub script: String,
    /// What went wrong.
    pub message: String,
}

/// `job-modules/` in this repository: the modules a provider offers.
pub fn job_modules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../job-modules")
}

/// `job-modules/test/`: modules that exist for tests (fail, oom, sleep, echo).
pub fn test_modules_dir() -> PathBuf {
    job_modules_dir().join("test")
}

/// Builds every module image from Debian's busybox-static unless it is up to date, once per test
/// process (the script itself takes a lock, so test processes running side by side are safe).
pub fn ensure_module_images() -> Result<(), ModuleImagesError> {
    static BUILT: OnceLock<Result<(), ModuleImagesError>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let script = job_modules_dir().join("images/build");
            let shown = script.display().to_string();
            let out = Command::new(&script)
                .output()
                .map_err(|e| ModuleImagesError {
                    script: shown.clone(),
                    message: e.to_string(),
                })?;
            if out.status.success() {
                Ok(())
            } else {
                Err(ModuleImagesError {
                    script: shown,
                    message: format!(
                        "{}: {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                })
            }
        })
        .clone()
}
