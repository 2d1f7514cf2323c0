//! The in-process tier follows Redis (`redis.invalidation`, on in the shipped config): an
//! operator's pin or unpin in Redis reaches every instance's local copy within a second, not
//! `cache.local_ttl` (an hour here) later; also after Redis restarts, and in a cluster.

use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::service::http_request;
use ipcheck_tests::stack::{example_service_config, KEY_VAR, SECRET};
use ipcheck_tests::{Provider, RedisServer, Service};

/// How soon a change in Redis must show in every instance's answers.
const COHERENT_WITHIN: Duration = Duration::from_secs(1);

/// An instance of the shipped config on `redis`, its local copies kept for an hour.
fn instance(redis: &RedisServer, provider: &Provider) -> Service {
    Service::builder(&example_service_config(redis, provider, "1h"))
        .env(KEY_VAR, SECRET)
        .start()
}

/// Polls `what` until `done`, failing after `within`.
fn await_condition<T: std::fmt::Debug>(
    within: Duration,
    label: &str,
    mut what: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let got = what();
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: not within {within:?}; last: {got:?}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// (status, X-IPCheck-Cache) of one `/auth` for `ip`.
fn answer(svc: &Service, ip: &str) -> (u16, String) {
    let reply = svc.auth(ip);
    let tier = reply.header("x-ipcheck-cache").unwrap_or("").to_owned();
    (reply.status, tier)
}

/// Waits until `svc`'s invalidation link is subscribed (the metric every dashboard shows).
fn await_link_up(svc: &Service) {
    await_condition(
        Duration::from_secs(10),
        "ipcheck_local_invalidation_up 1",
        || svc.metrics(),
        |m| m.contains("ipcheck_local_invalidation_up 1"),
    );
}

/// Waits until `svc` answers `ip` allowed from its local tier.
fn await_allowed_locally(svc: &Service, ip: &str) {
    await_condition(
        Duration::from_secs(10),
        &format!("{ip} allowed from the local tier"),
        || answer(svc, ip),
        |(status, tier)| *status == 204 && tier == "local",
    );
}

/// Waits until `svc` is ready again after Redis restarted (within `within`) and its
/// invalidation link is subscribed again.
fn await_back(svc: &Service, within: Duration) {
    await_condition(
        within,
        "/readyz 200 after the restart",
        || {
            http_request(svc.port(), "GET", "/readyz", &[])
                .map(|r| r.status)
                .ok()
        },
        |s| *s == Some(200),
    );
    await_link_up(svc);
}

/// `redis-cli -p <port> <args>`, as an operator types it: its output.
fn redis_cli(node: &RedisServer, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(node.port().to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// With `ip` cached allowed in every instance: a manual block in Redis (on `node`, which holds
/// the address) blocks it everywhere within [`COHERENT_WITHIN`], and deleting it allows it
/// again as fast.
fn pin_and_unpin_reach_every_instance(node: &RedisServer, services: &[&Service], ip: &str) {
    for svc in services {
        await_allowed_locally(svc, ip);
    }
    let pin = [
        "IPCHECK", "SET", ip, "block", "REASON", "tor", "SOURCE", "manual",
    ];
    assert_eq!(redis_cli(node, &pin), "OK");
    let pinned = Instant::now();
    for (i, svc) in services.iter().enumerate() {
        let left = COHERENT_WITHIN.saturating_sub(pinned.elapsed());
        let (_, tier) = await_condition(
            left,
            &format!("instance {i} blocks {ip} after the pin"),
            || answer(svc, ip),
            |(status, _)| *status == 403,
        );
        assert_eq!(
            tier, "redis",
            "the pin is read from Redis, not a local copy"
        );
    }
    assert_eq!(redis_cli(node, &["IPCHECK", "DEL", ip]), "1");
    let unpinned = Instant::now();
    for (i, svc) in services.iter().enumerate() {
        let left = COHERENT_WITHIN.saturating_sub(unpinned.elapsed());
        await_condition(
            left,
            &format!("instance {i} allows {ip} after the unpin"),
            || answer(svc, ip),
            |(status, _)| *status == 204,
        );
    }
}

#[test]
fn a_pin_and_an_unpin_reach_both_instances_within_a_second() {
    let mut redis = RedisServer::start();
    let provider = Provider::start();
    let a = instance(&redis, &provider);
    let b = instance(&redis, &provider);
    await_link_up(&a);
    await_link_up(&b);
    pin_and_unpin_reach_every_instance(&redis, &[&a, &b], "192.0.2.10");

    // Redis restarts on the same port (losing everything it held): once the links are back,
    // the same holds again.
    redis.kill();
    redis.restart();
    for svc in [&a, &b] {
        await_back(svc, Duration::from_secs(15));
    }
    pin_and_unpin_reach_every_instance(&redis, &[&a, &b], "192.0.2.11");
    for svc in [&a, &b] {
        let metrics = svc.metrics();
        assert!(
            !metrics.contains("ipcheck_local_invalidations_total{kind=\"address\"} 0\n"),
            "{metrics}"
        );
    }
}

#[test]
fn a_flush_clears_every_local_copy() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let a = instance(&redis, &provider);
    await_link_up(&a);
    let ip = "192.0.2.20";
    await_allowed_locally(&a, ip);
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.client()).unwrap();
    // The null message clears the tier: the next answer comes from Redis or the provider.
    let (_, tier) = await_condition(
        COHERENT_WITHIN,
        "an answer not from the local tier after FLUSHALL",
        || answer(&a, ip),
        |(_, tier)| tier != "local",
    );
    assert_ne!(tier, "local");
}

#[test]
fn without_tracking_permission_the_instance_is_ready_but_degraded() {
    let redis = RedisServer::start();
    // What the lookups (and the shipped config's lists) need, and nothing for tracking.
    redis.service_user("svc", &["+ipcheck|netinfo", "+ipcheck|netdump"]);
    let provider = Provider::start();
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let config = example_service_config(&redis, &provider, "1h").replacen(
        &format!("url = \"{}\"", redis.url()),
        &format!("url = \"{url}\""),
        1,
    );
    let svc = Service::builder(&config).env(KEY_VAR, SECRET).start();
    let ready = await_condition(
        Duration::from_secs(10),
        "/readyz says the invalidation link is down",
        || http_request(svc.port(), "GET", "/readyz", &[]).expect("/readyz"),
        |r| r.body.contains("invalidation: down"),
    );
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.starts_with("ready, degraded: invalidation\n"),
        "{}",
        ready.body
    );
    assert!(ready.body.contains("cache.local_ttl"), "{}", ready.body);
    assert!(svc.metrics().contains("ipcheck_local_invalidation_up 0"));
    let log = svc.log();
    assert!(
        log.contains("invalidation link down") && log.contains("+client|tracking"),
        "the log names what to grant: {log}"
    );
    assert_eq!(svc.auth("192.0.2.30").status, 204);
}

/// A Redis Cluster config with local copies kept for an hour.
fn cluster_config(provider: &Provider, nodes: &str) -> String {
    format!(
        r#"
[cache]
local_ttl = "1h"

[redis]
url = "{nodes}"
cluster = true
timeout = "500ms"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
challenge = ["vpn"]
"#,
        provider_section = provider.config_section()
    )
}

#[test]
fn in_a_cluster_every_primary_is_followed_also_after_it_restarts() {
    let mut cluster = RedisServer::start_cluster(3);
    let provider = Provider::start();
    // Seeded with other nodes than the one holding the address: each instance must find it.
    let a = Service::start(&cluster_config(&provider, &cluster[0].url()));
    let b = Service::start(&cluster_config(&provider, &cluster[1].url()));
    await_link_up(&a);
    await_link_up(&b);
    let share = 16384 / cluster.len();
    let on_last = (1..255)
        .map(|i| format!("198.51.100.{i}"))
        .find(|ip| usize::from(cluster[0].keyslot(ip)) / share >= 2)
        .expect("some address hashes to the last node");
    pin_and_unpin_reach_every_instance(&cluster[2], &[&a, &b], &on_last);

    // The primary holding the address restarts (its cluster config kept): the instances
    // follow it again once it is back.
    cluster[2].kill();
    cluster[2].restart();
    for node in &cluster {
        await_condition(
            Duration::from_secs(20),
            "cluster_state:ok after the restart",
            || {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut node.client())
                    .unwrap_or_default()
            },
            |info| info.contains("cluster_state:ok"),
        );
    }
    for svc in [&a, &b] {
        await_back(svc, Duration::from_secs(20));
    }
    pin_and_unpin_reach_every_instance(&cluster[2], &[&a, &b], &on_last);
}

#[test]
fn over_tls_the_link_follows_redis_too() {
    let certs = ipcheck_tests::tls::TestCerts::generate();
    let tls_port = ipcheck_tests::free_port();
    let redis = RedisServer::builder()
        .conf(&certs.redis_conf(tls_port))
        .start();
    let provider = Provider::start();
    let config = format!(
        r#"
[cache]
local_ttl = "1h"

[redis]
url = "rediss://127.0.0.1:{tls_port}/"
tls_ca_file = "{ca}"
timeout = "500ms"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
"#,
        ca = certs.ca_file().display(),
        provider_section = provider.config_section()
    );
    let a = Service::start(&config);
    await_link_up(&a);
    // The operator works on the plain port; the instance hears of it over TLS.
    pin_and_unpin_reach_every_instance(&redis, &[&a], "192.0.2.40");
}

#[test]
fn the_operator_commands_reach_both_instances_within_a_second() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let a = instance(&redis, &provider);
    let b = instance(&redis, &provider);
    await_link_up(&a);
    await_link_up(&b);
    let ip = "192.0.2.12";
    for svc in [&a, &b] {
        await_allowed_locally(svc, ip);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("ops.toml");
    std::fs::write(&config, format!("[redis]\nurl = \"{}\"\n", redis.url())).expect("write");
    let ops = |args: &[&str]| {
        let out = ipcheck_tests::service::service_command()
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run ipcheck-auth");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = ops(&["pin", ip, "block", "--reason", "abuse"]);
    assert!(said.contains("drop their local copies at once"), "{said}");
    let pinned = Instant::now();
    for (i, svc) in [&a, &b].iter().enumerate() {
        await_condition(
            COHERENT_WITHIN.saturating_sub(pinned.elapsed()),
            &format!("instance {i} blocks {ip} after `ipcheck-auth pin`"),
            || answer(svc, ip),
            |(status, _)| *status == 403,
        );
    }
    ops(&["unpin", ip]);
    let unpinned = Instant::now();
    for (i, svc) in [&a, &b].iter().enumerate() {
        await_condition(
            COHERENT_WITHIN.saturating_sub(unpinned.elapsed()),
            &format!("instance {i} allows {ip} after `ipcheck-auth unpin`"),
            || answer(svc, ip),
            |(status, _)| *status == 204,
        );
    }
}

#[test]
fn loading_a_network_list_leaves_the_local_tier_alone() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let a = instance(&redis, &provider);
    await_link_up(&a);
    let (ip, marker) = ("192.0.2.21", "192.0.2.22");
    await_allowed_locally(&a, ip);
    await_allowed_locally(&a, marker);
    let cleared = |svc: &Service| {
        svc.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("ipcheck_local_invalidations_total{kind=\"all\"} "))
            .map(str::to_owned)
    };
    let before = cleared(&a);
    // A feed's writes: a staging list, then the swap over the live one.
    let mut con = redis.client();
    let _: i64 = redis::cmd("IPCHECK")
        .arg(&["NETADD", "ipcheck:{lists}:tor.new", "198.51.100.0/24"])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg(&["ipcheck:{lists}:tor.new", "ipcheck:{lists}:tor"])
        .query(&mut con)
        .unwrap();
    // A later change to another cached address is announced after those: once it has been
    // handled, so have the list's messages.
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", marker, "block", "SOURCE", "manual"])
        .query(&mut con)
        .unwrap();
    await_condition(
        COHERENT_WITHIN,
        "the address invalidation after the list writes",
        || a.metrics(),
        |m| !m.contains("ipcheck_local_invalidations_total{kind=\"address\"} 0\n"),
    );
    assert_eq!(cleared(&a), before, "a list write cleared the local tier");
    assert_eq!(answer(&a, ip), (204, "local".to_owned()));
}
