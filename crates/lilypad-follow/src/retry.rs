//! How a follower waits after a chain fails it (the relayer's indexer, the mediator's intake and
//! its steps): exponential backoff with jitter (`backon`), from a first delay (the chain's poll
//! interval) up to one minute, for as long as the service runs. Jitter keeps many relayers (or
//! many chains behind one RPC provider) from retrying in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The longest wait between two attempts on a failing chain.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The backoff policy for a chain: first retry after about `first`, doubling up to [`MAX_DELAY`],
/// never giving up (an operator fixes the endpoint; the relayer must then carry on by itself).
pub fn policy(first: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(first.max(Duration::from_millis(50)))
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

/// A stateful sequence of waits: call [`Backoff::next_delay`] after each failure and
/// [`Backoff::reset`] after a success.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: backon::ExponentialBackoff,
}

impl Backoff {
    /// A sequence starting at about `first`.
    pub fn new(first: Duration) -> Self {
        let builder = policy(first);
        Self {
            current: builder.build(),
            builder,
        }
    }

    /// How long to wait after the latest failure.
    pub fn next_delay(&mut self) -> Duration {
        self.current.next().unwrap_or(MAX_DELAY)
    }

    /// Starts again from the first delay (after a success).
    pub fn reset(&mut self) {
        self.current = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset_after_a_success() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let first = b.next_delay();
        // Jitter adds up to one more delay's worth, never less than the delay itself.
        assert!(
            first >= Duration::from_secs(1) && first <= Duration::from_secs(2),
            "{first:?}"
        );
        let later: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(later[2] >= Duration::from_secs(8), "{later:?}");
        assert!(later.iter().all(|d| *d <= MAX_DELAY * 2), "{later:?}");
        assert!(
            later[11] >= MAX_DELAY,
            "never gives up and stays at the cap: {later:?}"
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(2));
    }
}
