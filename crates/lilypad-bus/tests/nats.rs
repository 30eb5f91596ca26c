//! Lilypad's messaging against a real nats-server with JetStream.

use std::collections::BTreeSet;
use std::time::Duration;

use lilypad_bus::{Bus, BusError, BusOptions, Received, Topic, deal_subject};
use lilypad_e2e::{Nats, eventually};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    chain: u64,
    id: u64,
    module: String,
}

fn job(id: u64) -> Job {
    Job {
        chain: 31337,
        id,
        module: "cowsay".into(),
    }
}

async fn bus(nats: &Nats, options: BusOptions) -> Bus {
    Bus::connect(&nats.url(), options)
        .await
        .expect("bus connects")
}

fn quick() -> BusOptions {
    BusOptions {
        ack_wait: Duration::from_secs(1),
        offer_ttl: Duration::from_secs(1),
        ..Default::default()
    }
}

async fn drain(
    consumer: &lilypad_bus::Consumer<Job>,
    wait: Duration,
) -> Vec<lilypad_bus::Delivery<Job>> {
    let mut out = Vec::new();
    for r in consumer.fetch(100, wait).await.expect("fetch") {
        match r {
            Received::Message(d) => out.push(*d),
            Received::Malformed(m) => panic!("unexpected malformed message {m:?}"),
        }
    }
    out
}

#[tokio::test]
async fn a_request_published_twice_is_stored_and_delivered_once() {
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, quick()).await;
    let first = bus
        .publish(Topic::Jobs, 31337, "31337:1", &job(1))
        .await
        .unwrap();
    let again = bus
        .publish(Topic::Jobs, 31337, "31337:1", &job(1))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        again.duplicate,
        "the same id within the window is a duplicate"
    );
    assert_eq!(again.sequence, first.sequence);
    bus.publish(Topic::Jobs, 31338, "31338:1", &job(1))
        .await
        .unwrap();

    let solver = bus
        .consumer::<Job>(Topic::Jobs, None, "solver")
        .await
        .unwrap();
    let got = drain(&solver, Duration::from_millis(500)).await;
    let subjects: Vec<&str> = got.iter().map(|d| d.subject.as_str()).collect();
    assert_eq!(subjects, ["lilypad.jobs.31337", "lilypad.jobs.31338"]);
    assert_eq!(got[0].body, job(1));
}

#[tokio::test]
async fn consumers_sharing_a_name_split_the_work_and_unacked_work_returns() {
    let nats = Nats::start().expect("nats starts");
    let a = bus(&nats, quick()).await;
    let b = bus(&nats, quick()).await;
    for id in 1..=6 {
        a.publish(Topic::Deals, 31337, &format!("31337:{id}"), &job(id))
            .await
            .unwrap();
    }
    let relayer_a = a
        .consumer::<Job>(Topic::Deals, Some(31337), "relayer-31337")
        .await
        .unwrap();
    let relayer_b = b
        .consumer::<Job>(Topic::Deals, Some(31337), "relayer-31337")
        .await
        .unwrap();

    let first = relayer_a
        .fetch(3, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    let mut seen = BTreeSet::new();
    let mut dropped = None;
    for (i, r) in first.into_iter().enumerate() {
        let Received::Message(d) = r else {
            panic!("malformed")
        };
        seen.insert(d.body.id);
        if i == 0 {
            dropped = Some(d.body.id); // relayer A "crashes" holding this one: never acked
        } else {
            d.ack().await.unwrap();
        }
    }
    for d in drain(&relayer_b, Duration::from_millis(500)).await {
        assert!(
            seen.insert(d.body.id),
            "message {} delivered to both relayers",
            d.body.id
        );
        d.ack().await.unwrap();
    }
    assert_eq!(seen, (1..=6).collect(), "every message reached one relayer");

    // After the ack wait, the unacknowledged message comes back, marked as a redelivery.
    let mut again = eventually(
        Duration::from_secs(10),
        "the unacknowledged message is delivered again",
        async || {
            let got = drain(&relayer_b, Duration::from_millis(500)).await;
            if got.is_empty() {
                Err("nothing yet")
            } else {
                Ok(got)
            }
        },
    )
    .await;
    assert_eq!(again.len(), 1);
    assert_eq!(Some(again[0].body.id), dropped);
    assert_eq!(again[0].delivered, 2);
    again.pop().unwrap().ack().await.unwrap();
    assert!(
        drain(&relayer_a, Duration::from_millis(300))
            .await
            .is_empty(),
        "all work is done"
    );
}

#[tokio::test]
async fn a_malformed_message_is_reported_once_and_never_redelivered() {
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, quick()).await;
    bus.client()
        .publish(
            "lilypad.results.31337",
            "{\"chain\": \"not a number\"".into(),
        )
        .await
        .unwrap();
    bus.client().flush().await.unwrap();
    bus.publish(Topic::Results, 31337, "31337:9", &job(9))
        .await
        .unwrap();
    let consumer = bus
        .consumer::<Job>(Topic::Results, Some(31337), "relayer-results")
        .await
        .unwrap();
    let got = consumer
        .fetch(10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let Received::Malformed(m) = &got[0] else {
        panic!("first is malformed: {got:?}")
    };
    assert_eq!(m.subject, "lilypad.results.31337");
    assert!(
        m.reason.contains("EOF") || m.reason.contains("invalid"),
        "{}",
        m.reason
    );
    let Received::Message(good) = got.into_iter().nth(1).unwrap() else {
        panic!("second decodes")
    };
    assert_eq!(good.body, job(9));
    good.ack().await.unwrap();
    // Nothing comes back, watched for past the 1 s ack wait (the fetch waits 1.5 s for one).
    assert!(
        consumer
            .fetch(10, Duration::from_millis(1500))
            .await
            .unwrap()
            .is_empty()
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Offer {
    cpu: u32,
    price: u64,
}

#[tokio::test]
async fn offers_expire_unless_refreshed() {
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, quick()).await;
    bus.put_offer("0xAAA", &Offer { cpu: 4, price: 10 })
        .await
        .unwrap();
    bus.put_offer("0xbbb", &Offer { cpu: 8, price: 20 })
        .await
        .unwrap();
    let (live, bad) = bus.offers::<Offer>().await.unwrap();
    assert!(bad.is_empty());
    assert_eq!(live.len(), 2);
    assert!(
        live.contains(&("0xaaa".into(), Offer { cpu: 4, price: 10 })),
        "keys are lower case"
    );

    // 0xaaa keeps its heartbeat; 0xbbb dies once its 1 s TTL has passed.
    let live = eventually(
        Duration::from_secs(10),
        "only the offer that keeps its heartbeat is live",
        async || {
            bus.put_offer("0xaaa", &Offer { cpu: 4, price: 10 })
                .await
                .unwrap();
            let (live, _) = bus.offers::<Offer>().await.unwrap();
            if live.len() == 1 {
                Ok(live)
            } else {
                Err(format!("{live:?}"))
            }
        },
    )
    .await;
    assert_eq!(live, [("0xaaa".into(), Offer { cpu: 4, price: 10 })]);
    bus.remove_offer("0xAAA").await.unwrap();
    assert!(bus.offers::<Offer>().await.unwrap().0.is_empty());
}

#[tokio::test]
async fn a_garbage_offer_is_reported_not_fatal() {
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, BusOptions::default()).await;
    bus.put_offer("0xgood", &Offer { cpu: 1, price: 1 })
        .await
        .unwrap();
    bus.put_offer("0xbad", &"just a string").await.unwrap();
    let (live, bad) = bus.offers::<Offer>().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, "0xbad");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Proposal {
    job: u64,
    price: u64,
}

#[tokio::test]
async fn deal_proposals_are_answered_refused_or_fail_fast() {
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, BusOptions::default()).await;
    let subject = deal_subject("0xP1");
    let mut requests = bus.serve::<Proposal>(&subject).await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            match &req.body {
                Ok(p) if p.price >= 10 => req.respond(format!("signed {}", p.job)).await.unwrap(),
                Ok(p) => req
                    .refuse(format!("price {} is below my 10", p.price))
                    .await
                    .unwrap(),
                Err(e) => req
                    .refuse(format!("malformed proposal: {e}"))
                    .await
                    .unwrap(),
            }
        }
    });
    bus.client().flush().await.unwrap();
    let t = Duration::from_secs(2);
    let ok: String = bus
        .request(&subject, &Proposal { job: 7, price: 12 }, t)
        .await
        .unwrap();
    assert_eq!(ok, "signed 7");
    let err = bus
        .request::<_, String>(&subject, &Proposal { job: 8, price: 1 }, t)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BusError::Refused { reason, .. } if reason == "price 1 is below my 10"),
        "{err}"
    );
    let err = bus
        .request::<_, String>(&subject, &"garbage", t)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("malformed proposal"), "{err}");
    let err = bus
        .request::<_, String>(
            &deal_subject("0xnobody"),
            &Proposal { job: 1, price: 99 },
            t,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::NoResponders(_)), "{err}");
}

#[tokio::test]
async fn connect_is_idempotent_and_a_wrong_url_is_a_clear_error() {
    let nats = Nats::start().expect("nats starts");
    let a = bus(&nats, BusOptions::default()).await;
    a.publish(Topic::Jobs, 1, "1:1", &job(1)).await.unwrap();
    // A second service connecting finds the streams and keeps their messages.
    let b = bus(&nats, BusOptions::default()).await;
    let c = b
        .consumer::<Job>(Topic::Jobs, Some(1), "solver")
        .await
        .unwrap();
    assert_eq!(drain(&c, Duration::from_millis(300)).await.len(), 1);

    let port = lilypad_e2e::free_port().unwrap();
    let err = Bus::connect(&format!("nats://127.0.0.1:{port}"), BusOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("nats-server runs with -js"),
        "{err}"
    );
}

#[tokio::test]
async fn the_book_keeps_entries_across_connections_and_updates_only_by_compare_and_set() {
    let nats = Nats::start().expect("nats starts");
    let first = bus(&nats, quick()).await;
    assert!(first.book_add("31337.1.0xaa", &job(1)).await.unwrap());
    assert!(
        !first.book_add("31337.1.0xaa", &job(99)).await.unwrap(),
        "a second add leaves the entry as it is"
    );

    // Another connection (a restarted solver) sees it, with its revision.
    let second = bus(&nats, quick()).await;
    let (entries, bad) = second.book::<Job>().await.unwrap();
    assert!(bad.is_empty());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key, "31337.1.0xaa");
    assert_eq!(entries[0].value, job(1));
    let revision = entries[0].revision;

    // Of two updates from the same revision, only the first lands.
    let claimed = second
        .book_update("31337.1.0xaa", &job(2), revision)
        .await
        .unwrap();
    assert!(claimed.is_some());
    assert_eq!(
        first
            .book_update("31337.1.0xaa", &job(3), revision)
            .await
            .unwrap(),
        None,
        "the entry changed since that revision"
    );
    assert_eq!(first.book::<Job>().await.unwrap().0[0].value, job(2));

    // Removed entries are gone, and the key can be added again.
    first.book_remove("31337.1.0xaa").await.unwrap();
    assert!(second.book::<Job>().await.unwrap().0.is_empty());
    assert!(second.book_add("31337.1.0xaa", &job(4)).await.unwrap());
}

#[tokio::test]
async fn every_offer_change_is_signalled() {
    use futures_util::StreamExt;
    let nats = Nats::start().expect("nats starts");
    let bus = bus(&nats, BusOptions::default()).await;
    let mut changes = bus.offer_changes().await.unwrap();
    bus.put_offer("0xaaa", &Offer { cpu: 4, price: 10 })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a new offer is signalled")
        .expect("the watch goes on");
    bus.put_offer("0xaaa", &Offer { cpu: 8, price: 10 })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a refreshed offer is signalled")
        .expect("the watch goes on");
}

/// Fetches from `consumer` the way a long-running service does (one fetch after another, a
/// failed one retried), acknowledging and sending on every decoded body until the receiver goes.
fn keep_fetching(
    consumer: lilypad_bus::Consumer<Job>,
) -> tokio::sync::mpsc::UnboundedReceiver<Job> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while !tx.is_closed() {
            let Ok(batch) = consumer.fetch(16, Duration::from_secs(1)).await else {
                continue;
            };
            for r in batch {
                if let Received::Message(d) = r {
                    let body = d.body.clone();
                    d.ack().await.ok();
                    tx.send(body).ok();
                }
            }
        }
    });
    rx
}

/// A bus (with the default 60 s ack wait) reaching `nats` through a proxy the test can take down.
async fn behind_proxy(nats: &Nats) -> (lilypad_e2e::TcpProxy, Bus) {
    let proxy = lilypad_e2e::TcpProxy::start(nats.0.port()).expect("proxy starts");
    let url = format!("nats://127.0.0.1:{}", proxy.port());
    let bus = Bus::connect(&url, BusOptions::default())
        .await
        .expect("bus connects through the proxy");
    (proxy, bus)
}

/// Takes `proxy` down and waits until `bus` has seen its connection cut.
async fn cut(proxy: &lilypad_e2e::TcpProxy, bus: &Bus) {
    proxy.down();
    eventually(
        Duration::from_secs(15),
        "the client sees its connection cut",
        async || {
            if bus.is_connected() {
                Err("still connected")
            } else {
                Ok(())
            }
        },
    )
    .await;
}

/// Publishes a `size`-byte core NATS message on `bus` every `every` until aborted: a busy
/// service's traffic, which the server reads in pieces.
fn chatter(bus: &Bus, size: usize, every: Duration) -> tokio::task::JoinHandle<()> {
    let client = bus.client().clone();
    tokio::spawn(async move {
        loop {
            client
                .publish("lilypad.test.chatter", vec![b'x'; size].into())
                .await
                .ok();
            tokio::time::sleep(every).await;
        }
    })
}

/// Issue 10, where it lives: a consumer whose connection is cut for a few seconds, its service
/// fetching all along, gets what was published meanwhile soon after the connection is back; not
/// after the ack wait, as when a fetch made while cut off swallowed it.
#[tokio::test(flavor = "multi_thread")]
async fn messages_published_while_a_consumer_is_cut_off_arrive_once_it_is_back() {
    let nats = Nats::start().expect("nats starts");
    let publisher = bus(&nats, BusOptions::default()).await;
    let (proxy, cut_off) = behind_proxy(&nats).await;
    let consumer = cut_off
        .consumer::<Job>(Topic::Jobs, None, "solver")
        .await
        .unwrap();
    let mut received = keep_fetching(consumer);
    // The service also goes on publishing while cut off, as a provider's heartbeat does: all of
    // it is sent at once on reconnection, interleaved with the fetches made meanwhile.
    let chatter = chatter(&cut_off, 1024, Duration::from_millis(10));

    cut(&proxy, &cut_off).await;
    for id in 1..=3 {
        publisher
            .publish(Topic::Jobs, 31337, &format!("31337:{id}"), &job(id))
            .await
            .unwrap();
    }
    // The fault itself: NATS stays unreachable for 4 s. Not a wait for anything to happen.
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.up();

    let mut got = BTreeSet::new();
    eventually(
        Duration::from_secs(30),
        "the three messages arrive, well within the 60 s ack wait",
        async || {
            while let Ok(j) = received.try_recv() {
                got.insert(j.id);
            }
            if got.len() == 3 {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await;
    chatter.abort();
}

/// A server that stalls (a pause, an overloaded host) past a fetch's wait: the fetch gives up,
/// and its pull request, read when the server resumes, is served the message waiting on the
/// stream. That message is delivered again at once, not left unacknowledged for the ack wait.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_served_to_a_fetch_given_up_during_a_server_stall_is_delivered_again_at_once() {
    let nats = Nats::start().expect("nats starts");
    let publisher = bus(&nats, BusOptions::default()).await;
    let service = bus(&nats, BusOptions::default()).await; // a 60 s ack wait
    let consumer = service
        .consumer::<Job>(Topic::Jobs, None, "solver")
        .await
        .unwrap();
    publisher
        .publish(Topic::Jobs, 31337, "31337:1", &job(1))
        .await
        .unwrap();
    let signal = |sig: &str| {
        let pid = nats.0.pid().to_string();
        let status = std::process::Command::new("kill")
            .args([sig, pid.as_str()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} {pid}");
    };

    signal("-STOP");
    // Traffic enough to fill the socket's buffers while the server is stalled: what the
    // service sends next waits in its client, and reaches the server only once it resumes.
    let traffic = chatter(&service, 64 << 10, Duration::from_millis(1));
    let during = consumer.fetch(16, Duration::from_millis(500)).await;
    traffic.abort();
    signal("-CONT");
    assert!(
        during.as_ref().is_ok_and(Vec::is_empty),
        "nothing can arrive from a stalled server: {during:?}"
    );

    let got = eventually(
        Duration::from_secs(30),
        "the message is delivered, well within the 60 s ack wait",
        async || {
            let got = drain(&consumer, Duration::from_millis(500)).await;
            if got.is_empty() {
                Err("nothing yet")
            } else {
                Ok(got)
            }
        },
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, job(1));
}

/// While the connection is down a fetch asks the server nothing: it waits out its `wait` for the
/// connection and then says NATS is unreachable (it used to return an empty batch, as if all was
/// well, and leave a pull request to be sent on reconnection).
#[tokio::test]
async fn a_fetch_while_the_connection_is_down_says_so() {
    let nats = Nats::start().expect("nats starts");
    let (proxy, cut_off) = behind_proxy(&nats).await;
    let consumer = cut_off
        .consumer::<Job>(Topic::Jobs, None, "solver")
        .await
        .unwrap();
    cut(&proxy, &cut_off).await;
    let err = consumer
        .fetch(16, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, BusError::Disconnected { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("fix: check that nats-server is up and reachable"),
        "{err}"
    );
}

/// A provider's deal subscription outlives an outage of its connection: proposals are answered
/// again once it is back, without subscribing anew.
#[tokio::test(flavor = "multi_thread")]
async fn deal_proposals_are_answered_again_after_an_outage() {
    let nats = Nats::start().expect("nats starts");
    let solver = bus(&nats, BusOptions::default()).await;
    let (proxy, provider) = behind_proxy(&nats).await;
    let subject = deal_subject("0xP2");
    let mut requests = provider.serve::<Proposal>(&subject).await.unwrap();
    provider.client().flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            req.respond("signed").await.ok();
        }
    });
    cut(&proxy, &provider).await;
    proxy.up();
    let proposal = Proposal { job: 1, price: 10 };
    let answer = eventually(
        Duration::from_secs(30),
        "the provider answers proposals again",
        async || {
            solver
                .request::<_, String>(&subject, &proposal, Duration::from_secs(1))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert_eq!(answer, "signed");
}

/// What a service publishes during an outage fails (its publisher retries it: the indexer from
/// its cursor, the provider's heartbeat and result loops), and the same publish succeeds once the
/// connection is back, stored once.
#[tokio::test(flavor = "multi_thread")]
async fn a_publish_that_failed_during_an_outage_succeeds_once_it_is_back() {
    let nats = Nats::start().expect("nats starts");
    let (proxy, relayer) = behind_proxy(&nats).await;
    cut(&proxy, &relayer).await;
    let err = relayer
        .publish(Topic::Jobs, 31337, "31337:1", &job(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lilypad.jobs.31337"), "{err}");
    proxy.up();
    eventually(
        Duration::from_secs(30),
        "the publish succeeds again",
        async || {
            relayer
                .publish(Topic::Jobs, 31337, "31337:1", &job(1))
                .await
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let solver = bus(&nats, BusOptions::default()).await;
    let consumer = solver
        .consumer::<Job>(Topic::Jobs, None, "solver")
        .await
        .unwrap();
    let got = drain(&consumer, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 1, "stored once, the retry deduplicated");
}

/// Services started together on a fresh server (the demo, every test stack) race to create the
/// same streams: every one of them connects, none fails because another created a stream first.
#[tokio::test(flavor = "multi_thread")]
async fn services_connecting_at_once_to_a_fresh_server_all_connect() {
    let nats = Nats::start().expect("nats starts");
    let url = nats.url();
    let connects = (0..12).map(|_| Bus::connect(&url, BusOptions::default()));
    let failed: Vec<String> = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .filter_map(|r| r.err().map(|e| e.to_string()))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}
