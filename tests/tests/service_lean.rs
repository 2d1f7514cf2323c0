//! The service reads Redis with the lean read (`IPCHECK.LGET`), and falls back to `IPCHECK GET`,
//! saying how to fix it, when its Redis user may not run `IPCHECK.LGET`.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::{Provider, RedisServer, Service};

fn config(provider: &Provider, url: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"50ms\"\n{}\n[policies.default]\nblock = [\"tor\"]\n",
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
    assert!(!svc.log().contains("lean read"), "{}", svc.log());
    assert!(svc.metrics().contains("ipcheck_redis_lean_read 1\n"));
    assert!(svc.get("/readyz", &[]).body.contains("redis: ok\n"));
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
        ready.body.starts_with("ready, degraded: lean-read"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("redis: ok (lookups read with IPCHECK GET: the Redis user may not run IPCHECK.LGET (the lean read): grant +ipcheck.lget)"),
        "{}",
        ready.body
    );
    // The password is never shown.
    assert!(!svc.log().contains(":pass@"), "{}", svc.log());
}
