//! Docker for tests: a tiny image built locally from Debian's busybox-static (no registry can be
//! reached here), and `docker run` as a user would type it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The local test image: busybox's applets in a scratch root filesystem.
pub const BUSYBOX_IMAGE: &str = "lilypad-test/busybox:latest";

/// A Docker command that failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The docker client could not be run at all.
    #[error(
        "cannot run docker: {0} (fix: run ./script/setup, which installs Docker and starts an engine)"
    )]
    Client(std::io::Error),
    /// The command ran and failed.
    #[error("`docker {args}` failed with {status}: {stderr}")]
    Failed {
        /// Its arguments.
        args: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Building the root filesystem failed.
    #[error("building the busybox root filesystem: {0}")]
    Rootfs(std::io::Error),
}

fn docker(args: &[&str], stdin: Option<Vec<u8>>) -> Result<Output, DockerError> {
    let mut child = Command::new("docker")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DockerError::Client)?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut pipe, &data).map_err(DockerError::Client)?;
    }
    let output = child.wait_with_output().map_err(DockerError::Client)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(DockerError::Failed {
            args: args.join(" "),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs `docker run --rm --network none <image> <command...>` and returns its output, whatever the
/// container's exit code (a non-zero exit is the container's answer, not a Docker failure).
pub fn docker_run(image: &str, command: &[&str]) -> Result<Output, DockerError> {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(command);
    let mut child = Command::new("docker")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(DockerError::Client)?;
    let _ = child.stdin.take();
    child.wait_with_output().map_err(DockerError::Client)
}

/// How long [`docker_run`] of `image` with `command` takes, for benchmarks beside a job: panics,
/// with the container's stderr, if Docker fails or the container exits non-zero.
pub fn timed_docker_run(image: &str, command: &[&str]) -> std::time::Duration {
    let start = std::time::Instant::now();
    let out = docker_run(image, command).unwrap_or_else(|e| panic!("docker run {image}: {e}"));
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "docker run {image} {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Builds [`BUSYBOX_IMAGE`] from `/bin/busybox` (Debian's busybox-static) unless it exists.
pub fn ensure_busybox_image() -> Result<(), DockerError> {
    if docker(&["image", "inspect", BUSYBOX_IMAGE], None).is_ok() {
        return Ok(());
    }
    let busybox = Path::new("/bin/busybox");
    let rootfs = tempfile::tempdir().map_err(DockerError::Rootfs)?;
    let bin = rootfs.path().join("bin");
    std::fs::create_dir_all(&bin).map_err(DockerError::Rootfs)?;
    for dir in ["tmp", "inputs", "outputs", "etc"] {
        std::fs::create_dir_all(rootfs.path().join(dir)).map_err(DockerError::Rootfs)?;
    }
    std::fs::copy(busybox, bin.join("busybox")).map_err(DockerError::Rootfs)?;
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(DockerError::Rootfs)?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(DockerError::Rootfs)?;
    }
    let tar = Command::new("tar")
        .args(["-C", &rootfs.path().display().to_string(), "-c", "."])
        .output()
        .map_err(DockerError::Rootfs)?;
    if !tar.status.success() {
        return Err(DockerError::Rootfs(std::io::Error::other(
            String::from_utf8_lossy(&tar.stderr).into_owned(),
        )));
    }
    docker(
        &["import", "--change", "ENV PATH=/bin", "-", BUSYBOX_IMAGE],
        Some(tar.stdout),
    )?;
    Ok(())
}
