//! ipcheck-auth end to end: refresh ahead. A Redis hit on an entry near the end of its fresh time
//! is answered from the entry at once and starts one background refresh, one per address across
//! the instances sharing Redis (a short lock there); an entry far from its end, or a pin, is not
//! refreshed, and a refresh without a provider answer changes nothing.

use std::time::{Duration, Instant};

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

fn config(provider: &Provider, redis: &RedisServer) -> String {
    format!(
        r#"
[cache]
local_ttl = "60s"

[redis]
url = "{redis}"
timeout = "200ms"
ttl = "24h"
refresh_ahead = "1h"

{provider_section}
[policies.default]
block = ["tor"]
challenge = ["vpn"]
"#,
        redis = redis.url(),
        provider_section = provider.config_section()
    )
}

/// Writes an entry as the service would have, `fresh` seconds of fresh time left.
fn entry(redis: &RedisServer, ip: &str, fresh: &str, source: &str) {
    let mut con = redis.client();
    let mut args = vec![ip, "allow", "EX", fresh, "SOURCE", source];
    // A pin has no stale window (the module refuses one).
    if source == "api" {
        args.extend(["STALE", "100"]);
    }
    assert_eq!(ipcheck::set(&mut con, &args).unwrap(), Some("OK".into()));
}

fn refresh_count(svc: &Service, result: &str) -> u64 {
    let text = svc.metrics();
    let needle = format!("ipcheck_refresh_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in {text}"))
}

/// Polls an instance's metrics until `ipcheck_refresh_total{result}` reaches `n`.
fn wait_for_count(svc: &Service, result: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while refresh_count(svc, result) < n {
        assert!(
            Instant::now() < deadline,
            "ipcheck_refresh_total{{result=\"{result}\"}} never reached {n}:\n{}",
            svc.metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ready(svc: &Service) {
    let r = svc.get("/readyz", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_hit_near_its_end_is_answered_from_redis_and_refreshed_once_across_instances() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let ip = "192.0.2.80";
    provider.respond(ip, Reply::flags(&["vpn"]));
    // The refresh is still in flight when the second instance gets its request.
    provider.set_delay(Duration::from_millis(500));
    let a = Service::start(&config(&provider, &redis));
    let b = Service::start(&config(&provider, &redis));
    ready(&a);
    ready(&b);
    entry(&redis, ip, "5", "api");

    // Both answered from the entry as it stands, without waiting for the provider.
    assert_eq!(a.auth(ip).decision(), (204, "allow", "", "redis"));
    wait_for_count(&a, "started", 1);
    assert_eq!(b.auth(ip).decision(), (204, "allow", "", "redis"));

    // Re-written with a full fresh time and what the provider says now.
    let hit = ipcheck::wait_for(&mut redis.client(), ip, "refreshed", |h| h.fresh_ttl > 3600);
    assert_eq!(
        (hit.verdict.as_str(), hit.reason.as_str()),
        ("challenge", "vpn")
    );
    assert_eq!(hit.source, "api");
    wait_for_count(&a, "done", 1);
    wait_for_count(&b, "lock_held", 1);
    assert_eq!(provider.calls_for(ip), 1, "{:?}", provider.seen());
    assert_eq!(refresh_count(&b, "done"), 0);

    // The instance that refreshed has the new answer locally; the other still has the entry it
    // read until its local_ttl ends, then reads the refreshed one, which starts nothing.
    assert_eq!(a.auth(ip).decision(), (401, "challenge", "vpn", "local"));
    assert_eq!(provider.calls_for(ip), 1);
}

#[test]
fn far_from_its_end_or_pinned_no_refresh_and_a_failed_one_changes_nothing() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let svc = Service::start(&config(&provider, &redis));
    ready(&svc);
    let far = "192.0.2.81";
    let pinned = "192.0.2.82";
    let failing = "192.0.2.83";
    entry(&redis, far, "80000", "api");
    entry(&redis, pinned, "5", "manual");
    entry(&redis, failing, "30", "api");
    provider.respond(failing, Reply::Status(500));

    assert_eq!(svc.auth(far).decision(), (204, "allow", "", "redis"));
    assert_eq!(svc.auth(pinned).status, 204);
    // A refresh is counted as started on the request path, before its task runs.
    assert_eq!(refresh_count(&svc, "started"), 0);
    // This one's refresh fails.
    assert_eq!(svc.auth(failing).decision(), (204, "allow", "", "redis"));
    wait_for_count(&svc, "failed", 1);
    assert_eq!(refresh_count(&svc, "started"), 1);
    assert_eq!(provider.calls_for(far), 0);
    assert_eq!(provider.calls_for(pinned), 0);
    assert_eq!(provider.calls_for(failing), 1);

    // The failed refresh left the entry and the answer as they were.
    let mut con = redis.client();
    let hit = ipcheck::get(&mut con, failing)
        .unwrap()
        .expect("entry kept");
    assert_eq!(
        (hit.verdict.as_str(), hit.source.as_str()),
        ("allow", "api")
    );
    assert!(hit.fresh && hit.fresh_ttl <= 30, "{hit:?}");
    assert_eq!(svc.auth(failing).decision(), (204, "allow", "", "local"));
}

#[test]
fn without_permission_for_the_lock_each_instance_refreshes_on_its_own_and_says_what_to_grant() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    // What the lookups need, without +set.
    redis.acl_user(
        "ipcheck-auth",
        &[
            "%RW~ipcheck:*",
            "+ipcheck",
            "+ipcheck.lget",
            "+ipcheck.lset",
            "+ping",
            "+client",
        ],
    );
    let ip = "192.0.2.84";
    provider.respond(ip, Reply::flags(&["tor"]));
    let url = redis
        .url()
        .replace("redis://", "redis://ipcheck-auth:pass@");
    let svc = Service::start(&config(&provider, &redis).replace(&redis.url(), &url));
    ready(&svc);
    entry(&redis, ip, "5", "api");

    assert_eq!(svc.auth(ip).decision(), (204, "allow", "", "redis"));
    let hit = ipcheck::wait_for(&mut redis.client(), ip, "refreshed", |h| h.fresh_ttl > 3600);
    assert_eq!(hit.verdict, "block");
    wait_for_count(&svc, "done", 1);
    assert_eq!(provider.calls_for(ip), 1);
    let log = svc.log();
    assert!(
        log.contains("the refresh-ahead lock cannot be taken")
            && log.contains("+set on ipcheck:refresh:*"),
        "{log}"
    );
}
