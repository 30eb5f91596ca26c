//! Waiting on a condition instead of sleeping: a test polls what it waits for and, when it does not
//! come, fails naming what it waited for and what it saw last.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often [`eventually`] checks its condition.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// Checks `condition` every [`POLL_EVERY`] until it returns `Ok`, and returns that value.
///
/// `condition` returns `Err(observed)` while what the test waits for has not happened yet, with
/// what it saw instead (a state, a count, a log). When `timeout` passes first, this panics with
/// `what` and the last `observed`, so the failure says what never happened and where things stood.
///
/// ```no_run
/// # async fn example(count: impl Fn() -> u64) {
/// use std::time::Duration;
/// let n = lilypad_e2e::eventually(Duration::from_secs(10), "three messages arrive", async || {
///     let n = count();
///     if n >= 3 { Ok(n) } else { Err(format!("{n} so far")) }
/// })
/// .await;
/// # }
/// ```
pub async fn eventually<T, V: Display>(
    timeout: Duration,
    what: &str,
    condition: impl AsyncFnMut() -> Result<T, V>,
) -> T {
    eventually_every(POLL_EVERY, timeout, what, condition).await
}

/// [`eventually`], checking every `every` (a benchmark that times what it waits for polls
/// more often; a costly check, less).
pub async fn eventually_every<T, V: Display>(
    every: Duration,
    timeout: Duration,
    what: &str,
    mut condition: impl AsyncFnMut() -> Result<T, V>,
) -> T {
    let start = Instant::now();
    loop {
        match condition().await {
            Ok(value) => return value,
            Err(observed) if start.elapsed() >= timeout => {
                panic!("{what}: not so after {timeout:?}; last observed: {observed}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// `Ok(())` when `done`, else `Err(observed)`: the usual shape of an [`eventually`] condition
/// that only checks.
pub fn ok_if<V>(done: bool, observed: V) -> Result<(), V> {
    if done { Ok(()) } else { Err(observed) }
}
