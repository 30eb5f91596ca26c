//! The relayer's state against a real Redis: what a restart or a second relayer relies on.

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use lilypad_e2e::{Redis, eventually, redis_command};
use lilypad_store::{Action, Cursor, Store, StoreError};
use serde::{Deserialize, Serialize};

async fn store() -> (Redis, Store) {
    let redis = Redis::start().expect("redis-server starts");
    let store = Store::connect(&redis.url(), "lilypad")
        .await
        .expect("store connects");
    (redis, store)
}

fn cursor(block: u64, seq: u64) -> Cursor {
    Cursor {
        block,
        hash: B256::repeat_byte(block as u8),
        sequence: seq,
    }
}

#[tokio::test]
async fn cursors_survive_a_new_connection_and_move_only_from_what_was_read() {
    let (redis, store) = store().await;
    assert_eq!(store.cursor(31337).await.unwrap(), None);
    assert!(
        store
            .advance_cursor(31337, None, &cursor(10, 3))
            .await
            .unwrap()
    );
    // A second "relayer" that read nothing cannot create it again.
    assert!(
        !store
            .advance_cursor(31337, None, &cursor(11, 4))
            .await
            .unwrap()
    );
    // One that read a stale cursor cannot move it either.
    assert!(
        !store
            .advance_cursor(31337, Some(&cursor(9, 2)), &cursor(12, 5))
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_cursor(31337, Some(&cursor(10, 3)), &cursor(20, 8))
            .await
            .unwrap()
    );

    let restarted = Store::connect(&redis.url(), "lilypad").await.unwrap();
    assert_eq!(restarted.cursor(31337).await.unwrap(), Some(cursor(20, 8)));
    assert_eq!(
        restarted.cursor(31338).await.unwrap(),
        None,
        "chains are independent"
    );
    // Rewinding after a reorganisation works the same way.
    assert!(
        restarted
            .advance_cursor(31337, Some(&cursor(20, 8)), &cursor(15, 6))
            .await
            .unwrap()
    );
    assert_eq!(store.cursor(31337).await.unwrap(), Some(cursor(15, 6)));
}

#[tokio::test]
async fn a_corrupt_cursor_is_reported_with_its_key() {
    let (redis, store) = store().await;
    let port = redis.0.port();
    redis_command(
        port,
        &[
            "HSET",
            "lilypad:chain:5:cursor",
            "block",
            "ten",
            "hash",
            "0x00",
            "sequence",
            "1",
        ],
    )
    .unwrap();
    let err = store.cursor(5).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("lilypad:chain:5:cursor") && text.contains("\"ten\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_lapses_or_is_released() {
    let (_redis, store) = store().await;
    let ttl = Duration::from_millis(400);
    let a = store
        .try_acquire_lease("submit:31337", "relayer-a", ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .try_acquire_lease("submit:31337", "relayer-b", ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .try_acquire_lease("submit:31337", "relayer-a", ttl)
            .await
            .unwrap()
            .is_some(),
        "re-acquire renews"
    );
    assert!(store.renew_lease(&a).await.unwrap());

    // relayer-a stops renewing: the lease lapses and relayer-b takes it.
    let b = eventually(
        Duration::from_secs(10),
        "relayer-b takes the lapsed lease",
        async || {
            store
                .try_acquire_lease("submit:31337", "relayer-b", ttl)
                .await
                .unwrap()
                .ok_or("relayer-a still holds it")
        },
    )
    .await;
    assert!(
        !store.renew_lease(&a).await.unwrap(),
        "a lapsed lease cannot be renewed by its old holder"
    );
    store.release_lease(&a).await.unwrap(); // not a's any more: b keeps it
    assert!(store.renew_lease(&b).await.unwrap());
    store.release_lease(&b).await.unwrap();
    assert!(
        store
            .try_acquire_lease("submit:31337", "relayer-a", ttl)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn due_actions_are_claimed_once_and_return_if_not_done() {
    let (_redis, store) = store().await;
    let job = |n: u64| U256::from(n);
    let r = |n: u8| B256::repeat_byte(n);
    store
        .schedule(1, job(1), r(1), Action::Expire, 100)
        .await
        .unwrap();
    store
        .schedule(1, job(2), r(2), Action::Settle, 150)
        .await
        .unwrap();
    store
        .schedule(1, job(3), r(3), Action::Timeout, 500)
        .await
        .unwrap();
    store
        .schedule(2, job(1), r(1), Action::Expire, 100)
        .await
        .unwrap();

    let retry = Duration::from_secs(30);
    let mut first = store.claim_due(1, 200, 10, retry).await.unwrap();
    first.sort();
    assert_eq!(
        first,
        [
            (job(1), r(1), Action::Expire),
            (job(2), r(2), Action::Settle)
        ]
    );
    // A second relayer asking at the same moment gets nothing: both were claimed.
    assert_eq!(store.claim_due(1, 200, 10, retry).await.unwrap(), []);

    // Job 1 is done; job 2's claimer died, so it comes due again after the retry delay.
    store.done(1, job(1), r(1), Action::Expire).await.unwrap();
    assert_eq!(store.claim_due(1, 229, 10, retry).await.unwrap(), []);
    assert_eq!(
        store.claim_due(1, 230, 10, retry).await.unwrap(),
        [(job(2), r(2), Action::Settle)]
    );
    // The limit is respected, and other chains are untouched.
    assert_eq!(store.claim_due(1, 10_000, 1, retry).await.unwrap().len(), 1);
    assert_eq!(
        store.claim_due(2, 100, 10, retry).await.unwrap(),
        [(job(1), r(1), Action::Expire)]
    );
}

#[tokio::test]
async fn an_action_for_a_request_that_replaced_another_under_the_same_job_id_is_its_own() {
    let (_redis, store) = store().await;
    let (job, old, new) = (U256::from(7), B256::repeat_byte(1), B256::repeat_byte(2));
    let retry = Duration::from_secs(30);
    store
        .schedule(1, job, old, Action::Timeout, 100)
        .await
        .unwrap();
    store
        .schedule(1, job, new, Action::Timeout, 300)
        .await
        .unwrap();
    // The new request's timeout done does not take the old one's away, nor move it.
    store.done(1, job, new, Action::Timeout).await.unwrap();
    assert_eq!(
        store.claim_due(1, 200, 10, retry).await.unwrap(),
        [(job, old, Action::Timeout)]
    );
    store.done(1, job, old, Action::Timeout).await.unwrap();
    assert_eq!(store.claim_due(1, 10_000, 10, retry).await.unwrap(), []);
}

#[tokio::test]
async fn nonces_are_never_handed_out_twice_even_concurrently() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x11);
    // The chain says 5 is next; concurrent reservations get 5.. without repeats.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.next_nonce(31337, signer, 5).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (5..25).collect::<Vec<_>>());
    // The chain moved ahead (another wallet used the key): follow it.
    assert_eq!(store.next_nonce(31337, signer, 40).await.unwrap(), 40);
    store.reset_nonce(31337, signer, 7).await.unwrap();
    assert_eq!(store.next_nonce(31337, signer, 0).await.unwrap(), 7);
}

#[tokio::test]
async fn a_nonce_is_given_back_only_while_it_is_the_last_reserved() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x12);
    assert_eq!(store.next_nonce(31337, signer, 3).await.unwrap(), 3);
    assert!(store.release_nonce(31337, signer, 3).await.unwrap());
    assert_eq!(store.next_nonce(31337, signer, 0).await.unwrap(), 3);
    assert_eq!(store.next_nonce(31337, signer, 0).await.unwrap(), 4);
    // 4 was reserved after 3: giving 3 back now would hand 4 out twice, so 3 is kept.
    assert!(!store.release_nonce(31337, signer, 3).await.unwrap());
    assert_eq!(store.next_nonce(31337, signer, 0).await.unwrap(), 5);
}

#[tokio::test]
async fn the_reservations_so_far_are_read_without_reserving() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x13);
    assert_eq!(store.reserved_up_to(31337, signer).await.unwrap(), None);
    assert_eq!(store.next_nonce(31337, signer, 3).await.unwrap(), 3);
    assert_eq!(store.reserved_up_to(31337, signer).await.unwrap(), Some(4));
    assert_eq!(store.reserved_up_to(31337, signer).await.unwrap(), Some(4));
    assert_eq!(store.next_nonce(31337, signer, 0).await.unwrap(), 4);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SentTx {
    hash: B256,
    job: U256,
    attempts: u32,
}

#[tokio::test]
async fn pending_transactions_are_listed_by_nonce_and_replaced_in_place() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x22);
    let tx = |b: u8, attempts| SentTx {
        hash: B256::repeat_byte(b),
        job: U256::from(b),
        attempts,
    };
    store
        .record_pending(1, signer, 12, &tx(2, 1))
        .await
        .unwrap();
    store
        .record_pending(1, signer, 11, &tx(1, 1))
        .await
        .unwrap();
    store
        .record_pending(1, signer, 12, &tx(3, 2))
        .await
        .unwrap(); // replacement with higher fees
    let pending: Vec<(u64, SentTx)> = store.pending(1, signer).await.unwrap();
    assert_eq!(pending, [(11, tx(1, 1)), (12, tx(3, 2))]);
    store.clear_pending(1, signer, 11).await.unwrap();
    let pending: Vec<(u64, SentTx)> = store.pending(1, signer).await.unwrap();
    assert_eq!(pending, [(12, tx(3, 2))]);
    assert!(
        store
            .pending::<SentTx>(1, Address::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let port = lilypad_e2e::free_port().unwrap();
    let err = Store::connect(&format!("redis://127.0.0.1:{port}"), "lilypad")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("check that Redis runs"), "{err}");
}

#[tokio::test]
async fn a_nonce_follows_the_chain_back_only_when_nothing_pending_holds_the_nonces_between() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x31);
    for _ in 0..5 {
        store.next_nonce(1, signer, 0).await.unwrap();
    }
    // Nonces 0..5 were handed out; 3 is still pending: the chain's count 2 is not followed.
    store
        .record_pending(
            1,
            signer,
            3,
            &SentTx {
                hash: B256::repeat_byte(3),
                job: U256::from(3),
                attempts: 1,
            },
        )
        .await
        .unwrap();
    assert!(!store.resync_nonce(1, signer, 5, 2).await.unwrap());
    // Nor when another reservation moved the next nonce since it was read.
    store.clear_pending(1, signer, 3).await.unwrap();
    assert!(!store.resync_nonce(1, signer, 4, 2).await.unwrap());
    // Nothing pending holds 2..5: the next reservation is the chain's 2.
    assert!(store.resync_nonce(1, signer, 5, 2).await.unwrap());
    assert_eq!(store.next_nonce(1, signer, 2).await.unwrap(), 2);
}

#[tokio::test]
async fn landed_messages_are_kept_by_id_until_forgotten() {
    let (_redis, store) = store().await;
    let signer = Address::repeat_byte(0x32);
    let tx = |b: u8| SentTx {
        hash: B256::repeat_byte(b),
        job: U256::from(7),
        attempts: 1,
    };
    store
        .keep_landed(1, signer, "deal:7:aa", &tx(1))
        .await
        .unwrap();
    store
        .keep_landed(1, signer, "deal:7:aa", &tx(2))
        .await
        .unwrap(); // landed again
    store
        .keep_landed(1, signer, "result:7:aa", &tx(3))
        .await
        .unwrap();
    let mut kept: Vec<(String, SentTx)> = store.landed(1, signer).await.unwrap();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kept,
        [
            ("deal:7:aa".to_owned(), tx(2)),
            ("result:7:aa".to_owned(), tx(3))
        ]
    );
    store.forget_landed(1, signer, "deal:7:aa").await.unwrap();
    let kept: Vec<(String, SentTx)> = store.landed(1, signer).await.unwrap();
    assert_eq!(kept, [("result:7:aa".to_owned(), tx(3))]);
}

#[tokio::test]
async fn reorganisations_are_counted_per_chain() {
    let (_redis, store) = store().await;
    assert_eq!(store.reorgs(1).await.unwrap(), 0);
    assert_eq!(store.note_reorg(1).await.unwrap(), 1);
    assert_eq!(store.note_reorg(1).await.unwrap(), 2);
    assert_eq!(store.reorgs(1).await.unwrap(), 2);
    assert_eq!(store.reorgs(2).await.unwrap(), 0);
}
