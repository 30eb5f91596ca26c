//! `eventually` returns as soon as its condition holds, and when it never does, fails naming what
//! it waited for and what it saw last.

use std::time::{Duration, Instant};

use lilypad_e2e::{eventually, ok_if};

#[tokio::test]
async fn it_returns_the_value_once_the_condition_holds() {
    let mut polls = 0;
    let start = Instant::now();
    let got = eventually(Duration::from_secs(10), "the third poll", async || {
        polls += 1;
        if polls == 3 {
            Ok(polls * 10)
        } else {
            Err(polls)
        }
    })
    .await;
    assert_eq!(got, 30);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no waiting past it"
    );
}

#[tokio::test]
#[should_panic(expected = "the count reaches 5: not so after 200ms; last observed: 1")]
async fn it_names_what_never_happened_and_the_last_value_seen() {
    eventually(
        Duration::from_millis(200),
        "the count reaches 5",
        async || ok_if(false, 1),
    )
    .await;
}
