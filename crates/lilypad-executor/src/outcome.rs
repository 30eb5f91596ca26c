//! What happened to a job: the outcome a provider signs and reports.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cid::Cid;

/// Why a job did not produce its own result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The module (or that version of it) is not offered here.
    UnknownModule,
    /// The job's inputs do not satisfy the module.
    BadInput,
    /// The module's image is not present and could not be pulled, or is not the image the
    /// module pins.
    ImageUnavailable,
    /// The job needs GPUs this provider does not have free.
    InsufficientGpus,
    /// The container exceeded its memory limit and was killed by the kernel.
    OutOfMemory,
    /// The job ran past the module's timeout and was killed.
    TimedOut,
    /// Docker could not create or start the container, or lost it.
    ContainerFailed,
    /// The result directory could not be written, hashed or stored.
    ResultFailed,
    /// An input given by CID could not be fetched: no gateway had it, it was larger or slower
    /// than the limits, or the gateway sent blocks that do not match the CID.
    InputUnavailable,
}

impl ErrorKind {
    /// A stable name, for logs and wire formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownModule => "UnknownModule",
            Self::BadInput => "BadInput",
            Self::ImageUnavailable => "ImageUnavailable",
            Self::InsufficientGpus => "InsufficientGpus",
            Self::OutOfMemory => "OutOfMemory",
            Self::TimedOut => "TimedOut",
            Self::ContainerFailed => "ContainerFailed",
            Self::ResultFailed => "ResultFailed",
            Self::InputUnavailable => "InputUnavailable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The container exited 0.
    Succeeded,
    /// The container ran and exited with a non-zero code: the job's own failure.
    JobFailed {
        /// Its exit code.
        exit_code: i64,
    },
    /// The job could not run to its own end; `kind` says why.
    ProviderError(ErrorKind),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Succeeded => f.write_str("Succeeded"),
            Self::JobFailed { exit_code } => write!(f, "JobFailed (exit code {exit_code})"),
            Self::ProviderError(kind) => write!(f, "ProviderError ({kind})"),
        }
    }
}

/// Everything a provider reports about one job. Always produced, whatever went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The job's id, as the caller gave it.
    pub job_id: String,
    /// `name:version` of the module asked for.
    pub module: String,
    /// How it ended.
    pub status: Status,
    /// The container's exit code, when it ran (137 when it was killed).
    pub exit_code: Option<i64>,
    /// What went wrong, in words, when the status is not `Succeeded`.
    pub error: Option<String>,
    /// Captured standard output (up to the executor's cap).
    pub stdout: Vec<u8>,
    /// Whether standard output was longer than the cap.
    pub stdout_truncated: bool,
    /// Captured standard error (up to the cap).
    pub stderr: Vec<u8>,
    /// Whether standard error was longer than the cap.
    pub stderr_truncated: bool,
    /// The stored result directory (`stdout`, `stderr`, `exitCode`, `outputs/`), when the
    /// container ran.
    pub result_dir: Option<PathBuf>,
    /// Its CID (what `ipfs add -r --cid-version=1 --raw-leaves` gives).
    pub result_cid: Option<Cid>,
    /// The inline output (from stdout or the module's output file), at most `max_output_bytes`.
    pub inline_output: Vec<u8>,
    /// Whether the inline output was cut to `max_output_bytes`.
    pub inline_truncated: bool,
    /// Things the provider changed or could not do that did not stop the job (e.g. a FIFO
    /// removed from the outputs).
    pub warnings: Vec<String>,
    /// How long the container ran (zero when it never started).
    pub run_time: Duration,
}

impl Outcome {
    /// An outcome for a job that never reached a container.
    pub fn rejected(job_id: &str, module: &str, kind: ErrorKind, error: String) -> Self {
        Self {
            job_id: job_id.to_owned(),
            module: module.to_owned(),
            status: Status::ProviderError(kind),
            exit_code: None,
            error: Some(error),
            stdout: Vec::new(),
            stdout_truncated: false,
            stderr: Vec::new(),
            stderr_truncated: false,
            result_dir: None,
            result_cid: None,
            inline_output: Vec::new(),
            inline_truncated: false,
            warnings: Vec::new(),
            run_time: Duration::ZERO,
        }
    }

    /// Whether the job succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == Status::Succeeded
    }

    /// The provider-error kind, if any.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self.status {
            Status::ProviderError(kind) => Some(kind),
            _ => None,
        }
    }
}
