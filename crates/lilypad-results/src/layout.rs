//! The layout of a result directory: what a client finds behind a result CID.
//!
//! ```text
//! <cid>/
//!   stdout     the container's standard output (up to the provider's cap)
//!   stderr     its standard error (up to the cap)
//!   exitCode   its exit code in decimal, no newline (e.g. `0`, `137`)
//!   outputs/   what the job wrote to /outputs
//! ```

use std::path::Path;

/// File holding standard output.
pub const STDOUT: &str = "stdout";
/// File holding standard error.
pub const STDERR: &str = "stderr";
/// File holding the exit code.
pub const EXIT_CODE: &str = "exitCode";
/// Directory holding the job's `/outputs`.
pub const OUTPUTS: &str = "outputs";

/// Writes `stdout`, `stderr` and `exitCode` into `dir` (which should already hold `outputs/`;
/// it is created empty when missing).
pub fn write_result_files(
    dir: &Path,
    stdout: &[u8],
    stderr: &[u8],
    exit_code: i64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join(OUTPUTS))?;
    std::fs::write(dir.join(STDOUT), stdout)?;
    std::fs::write(dir.join(STDERR), stderr)?;
    std::fs::write(dir.join(EXIT_CODE), exit_code.to_string())?;
    Ok(())
}
