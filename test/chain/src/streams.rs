//! Reading a stream as a consumer does.

use std::time::Duration;

use lilypad_bus::{Bus, Received, Topic};
use serde::de::DeserializeOwned;

/// Everything on `topic` (for `chain_id`, or all chains) that the durable consumer `durable` has
/// not read yet, in stream order, each acknowledged: batches are fetched until one comes back
/// empty after `wait`. Panics on a message that does not decode.
pub async fn drain<T: DeserializeOwned + Clone>(
    bus: &Bus,
    topic: Topic,
    chain_id: Option<u64>,
    durable: &str,
    wait: Duration,
) -> Vec<T> {
    let consumer = bus
        .consumer::<T>(topic, chain_id, durable)
        .await
        .unwrap_or_else(|e| panic!("opening consumer {durable} on {topic:?}: {e}"));
    let mut out = Vec::new();
    loop {
        let batch = consumer
            .fetch(500, wait)
            .await
            .unwrap_or_else(|e| panic!("fetching from {topic:?}: {e}"));
        if batch.is_empty() {
            return out;
        }
        for received in batch {
            match received {
                Received::Message(delivery) => out.push(acked(*delivery).await),
                Received::Malformed(m) => panic!("a malformed message on {topic:?}: {m:?}"),
            }
        }
    }
}

/// The next message on `topic` for the durable consumer `durable`, acknowledged; panics if none
/// comes within `timeout`.
pub async fn next_message<T: DeserializeOwned + Clone>(
    bus: &Bus,
    topic: Topic,
    chain_id: Option<u64>,
    durable: &str,
    timeout: Duration,
) -> T {
    let consumer = bus
        .consumer::<T>(topic, chain_id, durable)
        .await
        .unwrap_or_else(|e| panic!("opening consumer {durable} on {topic:?}: {e}"));
    let what = format!("a message on {topic:?} for {durable}");
    let delivery = lilypad_e2e::eventually(timeout, &what, async || {
        let batch = consumer
            .fetch(1, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("fetching from {topic:?}: {e}"));
        match batch.into_iter().next() {
            Some(Received::Message(delivery)) => Ok(*delivery),
            Some(Received::Malformed(m)) => panic!("a malformed message on {topic:?}: {m:?}"),
            None => Err("none yet"),
        }
    })
    .await;
    acked(delivery).await
}

/// The body of `delivery`, once it is acknowledged.
async fn acked<T: Clone>(delivery: lilypad_bus::Delivery<T>) -> T {
    let body = delivery.body.clone();
    let subject = delivery.subject.clone();
    delivery
        .ack()
        .await
        .unwrap_or_else(|e| panic!("acknowledging a message on {subject}: {e}"));
    body
}
