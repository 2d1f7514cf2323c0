//! The service reads Redis with the lean read (`IPCHECK.LGET`) and writes back with the lean
//! write (`IPCHECK.LSET`), and falls back to `IPCHECK GET` and `IPCHECK SET`, saying how to fix
//! it, when its Redis user may not run them.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::{Provider, RedisServer, Service};

fn config(provider: &Provider, url: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"50ms\"\nttl = \"1h\"\nstale_ttl = \"1h\"\n{}\n[policies.default]\nblock = [\"tor\"]\n",
        provider.config_section()
    )
}

/// How many times Redis ran `command` (e.g. `ipcheck.lget`) since the last `CONFIG RESETSTAT`.
fn calls(redis: &RedisServer, command: &str) -> i64 {
    let mut con = redis.client();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn reset_stats(redis: &RedisServer) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(&mut redis.client())
        .unwrap();
}

/// Pins `ip` as an operator would, so only a Redis read can decide it.
fn pin(redis: &RedisServer, ip: &str) {
    redis::cmd("IPCHECK")
        .arg("SET")
        .arg(ip)
        .arg("block")
        .arg("SOURCE")
        .arg("manual")
        .arg("REASON")
        .arg("abuse")
        .query::<()>(&mut redis.client())
        .unwrap();
}

/// Waits until Redis holds `ip`'s entry (the write-back follows the answer), and returns it.
fn stored(redis: &RedisServer, ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value: Option<String> = redis::cmd("GET")
            .arg(format!("ipcheck:{ip}"))
            .query(&mut redis.client())
            .unwrap();
        if let Some(value) = value {
            return value;
        }
        assert!(Instant::now() < deadline, "{ip} never written back");
        sleep(Duration::from_millis(20));
    }
}

/// What `IPCHECK SET` stores for `ip` as the service writes a clean answer with [`config`]'s
/// lifetimes: fresh for an hour, then stale for an hour.
fn stored_by_set(redis: &RedisServer, ip: &str) -> String {
    redis::cmd("IPCHECK")
        .arg("SET")
        .arg(ip)
        .arg("allow")
        .arg("EX")
        .arg(3600)
        .arg("STALE")
        .arg(3600)
        .arg("SOURCE")
        .arg("api")
        .query::<()>(&mut redis.client())
        .unwrap();
    stored(redis, ip)
}

/// Polls until `/readyz` answers 200 (the startup check runs in the background).
fn wait_ready(svc: &Service) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = svc.get("/readyz", &[]);
        if ready.status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {}", ready.body);
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn lookups_read_with_lget_only() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    pin(&redis, "192.0.2.60");
    let svc = Service::start(&config(&provider, &redis.url()));
    wait_ready(&svc);
    reset_stats(&redis);
    // A pin (found only in Redis) and a miss (then asked of the provider).
    assert_eq!(
        svc.auth("192.0.2.60").decision(),
        (403, "block", "abuse", "redis")
    );
    assert_eq!(svc.auth("192.0.2.61").status, 204);
    // The two lookups (and any re-read of the invalidation link after the miss's write).
    assert!(calls(&redis, "ipcheck.lget") >= 2);
    assert_eq!(calls(&redis, "ipcheck|get"), 0);
    // The miss was written back with the lean write, storing what IPCHECK SET stores, for as
    // long.
    let value = stored(&redis, "192.0.2.61");
    assert_eq!(calls(&redis, "ipcheck.lset"), 1);
    assert_eq!(calls(&redis, "ipcheck|set"), 0);
    let ttl: i64 = redis::cmd("TTL")
        .arg("ipcheck:192.0.2.61")
        .query(&mut redis.client())
        .unwrap();
    assert!((7100..=7200).contains(&ttl), "{ttl}");
    assert_eq!(value, stored_by_set(&redis, "192.0.2.62"));
    assert!(!svc.log().contains("lean read"), "{}", svc.log());
    assert!(!svc.log().contains("lean write"), "{}", svc.log());
    let metrics = svc.metrics();
    assert!(metrics.contains("ipcheck_redis_lean_read 1\n"), "{metrics}");
    assert!(
        metrics.contains("ipcheck_redis_lean_write 1\n"),
        "{metrics}"
    );
    assert!(svc.get("/readyz", &[]).body.contains("redis: ok\n"));
}

#[test]
fn a_user_without_lset_writes_back_with_set_naming_the_grant() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    redis.acl_user(
        "svc",
        &[
            "%RW~ipcheck:*",
            "+ipcheck.lget",
            "+ipcheck|get",
            "+ipcheck|set",
            "+ipcheck|key",
        ],
    );
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let svc = Service::start(&config(&provider, &url));
    let line = svc.wait_for_log_line(&["WARN", "+ipcheck.lset"]);
    assert!(line.contains("IPCHECK SET"), "{line}");
    wait_ready(&svc);
    reset_stats(&redis);
    assert_eq!(svc.auth("192.0.2.80").status, 204);
    let value = stored(&redis, "192.0.2.80");
    assert_eq!(calls(&redis, "ipcheck|set"), 1);
    assert_eq!(calls(&redis, "ipcheck.lset"), 0);
    assert_eq!(value, stored_by_set(&redis, "192.0.2.81"));
    // Lookups still read lean; the write-backs' fallback is said in the metrics and /readyz.
    assert!(calls(&redis, "ipcheck.lget") >= 1);
    let metrics = svc.metrics();
    assert!(metrics.contains("ipcheck_redis_lean_read 1\n"), "{metrics}");
    assert!(
        metrics.contains("ipcheck_redis_lean_write 0\n"),
        "{metrics}"
    );
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.starts_with("ready, degraded: lean-write,"),
        "{}",
        ready.body
    );
    assert!(
        ready.body.contains(
            "redis: ok (write-backs use IPCHECK SET: the Redis user may not run IPCHECK.LSET (the lean write): grant +ipcheck.lset)"
        ),
        "{}",
        ready.body
    );
}

#[test]
fn a_user_without_lget_falls_back_to_get_naming_the_grant() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    pin(&redis, "192.0.2.70");
    redis.acl_user(
        "svc",
        &[
            "%RW~ipcheck:*",
            "+ipcheck|get",
            "+ipcheck|set",
            "+ipcheck|key",
        ],
    );
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let svc = Service::start(&config(&provider, &url));
    let line = svc.wait_for_log_line(&["WARN", "+ipcheck.lget"]);
    assert!(line.contains("IPCHECK GET"), "{line}");
    wait_ready(&svc);
    reset_stats(&redis);
    assert_eq!(
        svc.auth("192.0.2.70").decision(),
        (403, "block", "abuse", "redis")
    );
    assert_eq!(calls(&redis, "ipcheck|get"), 1);
    assert_eq!(calls(&redis, "ipcheck.lget"), 0);
    // Said in the metrics and in /readyz too, which stays ready: nothing is refused.
    assert!(svc.metrics().contains("ipcheck_redis_lean_read 0\n"));
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready
            .body
            .starts_with("ready, degraded: lean-read, lean-write,"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("redis: ok (lookups read with IPCHECK GET: the Redis user may not run IPCHECK.LGET (the lean read): grant +ipcheck.lget; write-backs use IPCHECK SET: the Redis user may not run IPCHECK.LSET (the lean write): grant +ipcheck.lset)"),
        "{}",
        ready.body
    );
    // The password is never shown.
    assert!(!svc.log().contains(":pass@"), "{}", svc.log());
}

#[test]
fn a_grant_revoked_at_run_time_falls_back_on_the_very_call() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    pin(&redis, "192.0.2.90");
    redis.service_user("svc", &[]);
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let svc = Service::start(&config(&provider, &url));
    wait_ready(&svc);
    let metrics = svc.metrics();
    assert!(metrics.contains("ipcheck_redis_lean_read 1\n"), "{metrics}");
    assert!(
        metrics.contains("ipcheck_redis_lean_write 1\n"),
        "{metrics}"
    );
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("svc")
        .arg("-ipcheck.lget")
        .arg("-ipcheck.lset")
        .query::<()>(&mut redis.client())
        .unwrap();
    reset_stats(&redis);
    // The next read and the next write are refused in their lean form and sent in the full one
    // at once: the pin still decides, the answer is still written back.
    assert_eq!(
        svc.auth("192.0.2.90").decision(),
        (403, "block", "abuse", "redis")
    );
    assert_eq!(svc.auth("192.0.2.91").status, 204);
    assert_eq!(
        stored(&redis, "192.0.2.91"),
        stored_by_set(&redis, "192.0.2.92")
    );
    assert!(calls(&redis, "ipcheck|get") >= 2);
    assert_eq!(calls(&redis, "ipcheck|set"), 2);
    svc.wait_for_log_line(&["WARN", "+ipcheck.lget"]);
    svc.wait_for_log_line(&["WARN", "+ipcheck.lset"]);
    let metrics = svc.metrics();
    assert!(metrics.contains("ipcheck_redis_lean_read 0\n"), "{metrics}");
    assert!(
        metrics.contains("ipcheck_redis_lean_write 0\n"),
        "{metrics}"
    );
    // Not a Redis failure: the tier stays up and its breaker closed.
    assert!(metrics.contains("ipcheck_redis_up 1\n"), "{metrics}");
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready
            .body
            .starts_with("ready, degraded: lean-read, lean-write"),
        "{}",
        ready.body
    );
}

#[test]
fn with_allow_on_miss_the_background_reads_fall_back_too() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let pinned: Vec<String> = (1..=8).map(|i| format!("192.0.2.{}", 100 + i)).collect();
    for ip in &pinned {
        pin(&redis, ip);
    }
    redis.service_user("svc", &[]);
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let svc = Service::start(&format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"1s\"\n{}\n[policies.default]\nblock = [\"tor\"]\non_miss = \"allow\"\n",
        provider.config_section()
    ));
    wait_ready(&svc);
    assert!(svc.metrics().contains("ipcheck_redis_lean_read 1\n"));
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("svc")
        .arg("-ipcheck.lget")
        .query::<()>(&mut redis.client())
        .unwrap();
    // Cold addresses at once, so their background reads may go out together in one pipeline.
    std::thread::scope(|s| {
        for ip in &pinned {
            let svc = &svc;
            s.spawn(move || svc.auth(ip).status);
        }
    });
    // Each pin applies once its background read has been answered, lean or not.
    for ip in &pinned {
        ipcheck_tests::eventually(
            &format!("the pin of {ip} applies"),
            Duration::from_secs(10),
            || svc.auth(ip).status == 403,
        );
    }
    svc.wait_for_log_line(&["WARN", "+ipcheck.lget"]);
    assert!(svc.metrics().contains("ipcheck_redis_up 1\n"));
}
