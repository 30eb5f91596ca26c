//! The services every later test relies on start for real, on loopback ports chosen here, and
//! answer their own protocols. If one of these fails, ./script/setup did not do its job.

use lilypad_e2e::{
    Anvil, BUSYBOX_IMAGE, Nats, Redis, docker_run, ensure_busybox_image, json_rpc, nats_info,
    redis_command,
};

#[test]
fn nats_starts_with_jetstream_on_the_chosen_port() {
    let nats = Nats::start().expect("nats-server starts");
    let info = nats_info(nats.0.port()).expect("NATS greets");
    assert!(
        info.contains("\"jetstream\":true"),
        "JetStream must be on: {info}"
    );
    assert!(
        info.contains(&format!("\"port\":{}", nats.0.port())),
        "{info}"
    );
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{}", nats.0.port()));
}

#[test]
fn redis_starts_and_stores_a_value() {
    let redis = Redis::start().expect("redis-server starts");
    let port = redis.0.port();
    assert_eq!(
        redis_command(port, &["SET", "lilypad:cursor:31337", "42"]).unwrap(),
        "+OK"
    );
    assert_eq!(
        redis_command(port, &["GET", "lilypad:cursor:31337"]).unwrap(),
        "42"
    );
    assert_eq!(redis_command(port, &["GET", "absent"]).unwrap(), "");
}

#[test]
fn two_anvil_chains_run_side_by_side_with_their_own_ids() {
    let a = Anvil::start(31337).expect("anvil A starts");
    let b = Anvil::start(31338).expect("anvil B starts");
    assert_ne!(a.service.port(), b.service.port());
    let id = |chain: &Anvil| json_rpc(chain.service.port(), "eth_chainId", "[]").unwrap();
    assert_eq!(id(&a), "0x7a69");
    assert_eq!(id(&b), "0x7a6a");
    // Instant mining: a mined block shows up at once.
    json_rpc(a.service.port(), "evm_mine", "[]").unwrap();
    assert_eq!(
        json_rpc(a.service.port(), "eth_blockNumber", "[]").unwrap(),
        "0x1"
    );
    assert_eq!(
        json_rpc(b.service.port(), "eth_blockNumber", "[]").unwrap(),
        "0x0"
    );
}

#[test]
fn a_stopped_service_releases_its_port() {
    let redis = Redis::start().expect("redis-server starts");
    let port = redis.0.port();
    drop(redis);
    assert!(
        redis_command(port, &["PING"]).is_err(),
        "redis must be gone after drop"
    );
}

#[test]
fn docker_runs_a_locally_built_image_without_network() {
    ensure_busybox_image().expect("the busybox test image builds from busybox-static");
    let out = docker_run(
        BUSYBOX_IMAGE,
        &["sh", "-c", "echo hello from $(uname -s); exit 3"],
    )
    .expect("docker runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from Linux\n");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the container's exit code comes back"
    );
    let net = docker_run(BUSYBOX_IMAGE, &["sh", "-c", "ls /sys/class/net"]).expect("docker runs");
    assert_eq!(
        String::from_utf8_lossy(&net.stdout).trim(),
        "lo",
        "only loopback inside"
    );
}
