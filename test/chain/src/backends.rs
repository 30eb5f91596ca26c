//! NATS and Redis for a test, with the relayer's clients connected to them.

use lilypad_bus::{Bus, BusOptions};
use lilypad_e2e::{Nats, Redis};
use lilypad_store::Store;

/// A fresh `nats-server -js` and `redis-server` of the test's own, with a [`Bus`] (default
/// options) and a [`Store`] (prefix `lilypad`) connected; both stop when this is dropped.
pub struct Backends {
    /// The NATS server.
    pub nats: Nats,
    /// The Redis server.
    pub redis: Redis,
    /// Connected to `nats`.
    pub bus: Bus,
    /// Connected to `redis`.
    pub store: Store,
}

impl Backends {
    /// Starts both servers and connects to them.
    pub async fn start() -> Self {
        let nats = Nats::start().unwrap_or_else(|e| panic!("nats: {e}"));
        let redis = Redis::start().unwrap_or_else(|e| panic!("redis: {e}"));
        let bus = Bus::connect(&nats.url(), BusOptions::default())
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", nats.url()));
        let store = Store::connect(&redis.url(), "lilypad")
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", redis.url()));
        Self {
            nats,
            redis,
            bus,
            store,
        }
    }
}
