//! ipcheck-auth end to end: the cost controls of the lookup path. Circuit breakers stop calling
//! a failing provider or a frozen Redis and probe once after the cool-down; the provider budget
//! bounds paid calls; a provider call finishes and is cached when its request goes away.
//!
//! Every assertion counts (calls the stand-in received, what Redis holds, metrics), none times.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ipcheck_tests::{ipcheck, Provider, RedisServer, Reply, Service};

/// The value of the metric sample `name` (with its labels), 0 when absent.
fn metric(svc: &Service, name: &str) -> u64 {
    let text = svc.metrics();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (up to 20 s) until `done` holds, calling `step` before each check.
fn eventually(what: &str, mut step: impl FnMut(), mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        step();
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The blocking policy these tests decide with.
const POLICY: &str = "[policies.default]\nblock = [\"tor\"]\non_error = \"closed\"\n";

fn provider_only(provider: &Provider, extra: &str) -> Service {
    Service::start(&format!(
        "[cache]\nnegative_ttl = \"1h\"\n\n{}{extra}\n\n{POLICY}",
        provider.config_section()
    ))
}

#[test]
fn provider_breaker_opens_after_failures_then_lets_one_probe_through() {
    let provider = Provider::start();
    provider.respond_default(Reply::Status(500));
    let svc = provider_only(
        &provider,
        "[provider.breaker]\nfailures = 3\ncooldown = \"1s\"\n",
    );
    for i in 1..=3 {
        let r = svc.auth(&format!("198.51.100.{i}"));
        assert_eq!(
            r.decision(),
            (403, "block", "provider-error", "provider"),
            "{r:?}"
        );
    }
    assert_eq!(provider.calls(), 3);
    // Open: distinct addresses, so no cache could spare a call; none is made.
    for i in 10..20 {
        let r = svc.auth(&format!("198.51.100.{i}"));
        assert_eq!(
            r.decision(),
            (403, "block", "provider-error", "none"),
            "{r:?}"
        );
    }
    assert_eq!(provider.calls(), 3, "no call while the breaker is open");
    assert_eq!(
        metric(
            &svc,
            "ipcheck_breaker_state{dependency=\"provider\",state=\"open\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &svc,
            "ipcheck_breaker_opened_total{dependency=\"provider\"}"
        ),
        1
    );
    let ready = svc.get("/readyz", &[]);
    assert_eq!(
        ready.status, 200,
        "the provider never makes the instance unready"
    );
    assert!(
        ready.body.contains("provider breaker: open"),
        "{}",
        ready.body
    );
    assert!(
        svc.log().contains("circuit breaker open"),
        "a WARN line says so: {}",
        svc.log()
    );

    // After the cool-down one probe goes; it fails, so the breaker opens again at once.
    let mut n = 100;
    eventually(
        "the probe reached the provider",
        || {
            n += 1;
            svc.auth(&format!("198.51.100.{n}"));
        },
        || provider.calls() == 4,
    );
    for i in 200..210 {
        svc.auth(&format!("198.51.100.{i}"));
    }
    assert_eq!(
        provider.calls(),
        4,
        "one probe, and the failed probe reopened it"
    );

    // The next probe succeeds: closed, every address is asked again.
    provider.respond_default(Reply::clean());
    eventually(
        "a probe answered",
        || {
            n += 1;
            svc.auth(&format!("198.51.100.{n}"));
        },
        || provider.calls() == 5,
    );
    for i in 1..=5 {
        let r = svc.auth(&format!("203.0.113.{i}"));
        assert_eq!(r.decision(), (204, "allow", "", "provider"), "{r:?}");
    }
    assert_eq!(provider.calls(), 10);
    assert_eq!(
        metric(
            &svc,
            "ipcheck_breaker_state{dependency=\"provider\",state=\"closed\"}"
        ),
        1
    );
    assert!(
        svc.log().contains("circuit breaker closed"),
        "{}",
        svc.log()
    );
}

#[test]
fn redis_breaker_stops_paying_the_deadline_while_redis_is_frozen_and_recovers() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let redis = RedisServer::start();
    let svc = Service::start(&format!(
        r#"
[redis]
url = "{redis}"
timeout = "100ms"

[redis.breaker]
failures = 3
# Longer than the test: recovery must come from the re-verification, not a lookup's probe.
cooldown = "1h"

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = ""

[policies.default]
block = ["tor"]
on_redis_error = "continue"

[policies.strict]
block = ["tor"]
on_redis_error = "closed"
"#,
        redis = redis.url(),
        url = provider.url_template()
    ));
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.contains("redis breaker: closed"),
        "{}",
        ready.body
    );

    redis.signal("STOP");
    for i in 1..=20 {
        let r = svc.auth(&format!("198.51.100.{i}"));
        assert_eq!(r.status, 204, "on_redis_error = continue: {r:?}");
    }
    let r = svc.auth_policy("198.51.100.77", "strict");
    assert_eq!(
        r.decision(),
        (403, "block", "redis-error", "provider"),
        "{r:?}"
    );
    // What Redis was asked: 3 calls timed out (a GET, or the SET of an answer), then the breaker
    // opened and the remaining lookups did not call (one SET already on its way may still fail).
    let timeouts = metric(
        &svc,
        "ipcheck_redis_errors_total{op=\"get\",kind=\"timeout\"}",
    ) + metric(
        &svc,
        "ipcheck_redis_errors_total{op=\"set\",kind=\"timeout\"}",
    );
    assert!((3..=4).contains(&timeouts), "{timeouts} timed-out calls");
    assert!(
        metric(&svc, "ipcheck_breaker_rejected_total{dependency=\"redis\"}") >= 17,
        "{}",
        svc.metrics()
    );
    assert_eq!(
        metric(
            &svc,
            "ipcheck_breaker_state{dependency=\"redis\",state=\"open\"}"
        ),
        1
    );
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("redis breaker: open"), "{}", ready.body);

    redis.signal("CONT");
    // The re-verification (watch_redis, or /readyz's) passes and closes the breaker.
    eventually(
        "the instance is ready again",
        || {},
        || svc.get("/readyz", &[]).status == 200,
    );
    assert_eq!(
        metric(
            &svc,
            "ipcheck_breaker_state{dependency=\"redis\",state=\"closed\"}"
        ),
        1
    );
    // Lookups use Redis again: a new answer is written back.
    let r = svc.auth("203.0.113.9");
    assert_eq!(r.status, 204, "{r:?}");
    let mut con = redis.client();
    eventually(
        "the answer is in Redis",
        || {},
        || {
            ipcheck::get(&mut con, "203.0.113.9")
                .ok()
                .flatten()
                .is_some()
        },
    );
}

#[test]
fn the_rate_budget_bounds_provider_calls_and_the_rest_get_on_error() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    // A burst of 5, then one call per 100 s: nothing refills during the test.
    let svc = provider_only(&provider, "[provider.budget]\nrate = 0.01\nburst = 5\n");
    let mut allowed = 0;
    for i in 1..=30 {
        let r = svc.auth(&format!("198.51.100.{i}"));
        match r.decision() {
            (204, "allow", "", "provider") => allowed += 1,
            d => assert_eq!(d, (403, "block", "provider-error", "none"), "{r:?}"),
        }
    }
    assert_eq!(allowed, 5);
    assert_eq!(provider.calls(), 5, "no more calls than the burst");
    assert_eq!(
        metric(&svc, "ipcheck_provider_budget_denied_total{limit=\"rate\"}"),
        25
    );
    let log = svc.log();
    assert_eq!(
        log.matches("provider budget exhausted").count(),
        1,
        "one line per interval: {log}"
    );
}

#[test]
fn the_daily_quota_bounds_provider_calls() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let svc = provider_only(&provider, "[provider.budget]\ndaily_quota = 3\n");
    for i in 1..=10 {
        svc.auth(&format!("198.51.100.{i}"));
    }
    assert_eq!(provider.calls(), 3);
    assert_eq!(
        metric(
            &svc,
            "ipcheck_provider_budget_denied_total{limit=\"daily\"}"
        ),
        7
    );
}

#[test]
fn a_cancelled_request_still_gets_its_provider_answer_cached() {
    let provider = Provider::start();
    provider.respond("203.0.113.50", Reply::flags(&["tor"]));
    provider.set_delay(Duration::from_millis(1500));
    let redis = RedisServer::start();
    let svc = with_redis(&provider, &redis.url(), "");
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    let mut client = TcpStream::connect(("127.0.0.1", svc.port())).expect("connect");
    client
        .write_all(b"GET /auth HTTP/1.1\r\nHost: t\r\nX-Real-IP: 203.0.113.50\r\n\r\n")
        .expect("send");
    eventually("the provider was asked", || {}, || provider.calls() == 1);
    // nginx giving up on the subrequest: the connection goes away before the answer.
    client.shutdown(Shutdown::Both).expect("shutdown");
    drop(client);
    let mut con = redis.client();
    eventually(
        "the answer is in Redis",
        || {},
        || {
            ipcheck::get(&mut con, "203.0.113.50")
                .ok()
                .flatten()
                .is_some()
        },
    );
    let hit = ipcheck::get(&mut con, "203.0.113.50")
        .expect("IPCHECK GET")
        .expect("an entry");
    assert_eq!(
        (hit.verdict.as_str(), hit.reason.as_str()),
        ("block", "tor")
    );
    assert_eq!(provider.calls(), 1, "asked exactly once");
    let r = svc.auth("203.0.113.50");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(provider.calls(), 1);
}

/// A service with Redis and the provider, `extra` appended to `[provider]`.
fn with_redis(provider: &Provider, redis_url: &str, extra: &str) -> Service {
    Service::start(&format!(
        "[redis]\nurl = \"{redis_url}\"\ntimeout = \"500ms\"\n\n{}{extra}\n\n{POLICY}",
        provider.config_section()
    ))
}

fn shared_budget_service(provider: &Provider, redis_url: &str, budget: &str) -> Service {
    with_redis(
        provider,
        redis_url,
        &format!("[provider.budget]\nshared = true\n{budget}\n"),
    )
}

#[test]
fn a_shared_budget_bounds_the_whole_fleet() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let redis = RedisServer::start();
    let daily = [
        shared_budget_service(&provider, &redis.url(), "daily_quota = 3"),
        shared_budget_service(&provider, &redis.url(), "daily_quota = 3"),
    ];
    for (n, svc) in daily.iter().enumerate() {
        assert_eq!(svc.get("/readyz", &[]).status, 200);
        for i in 1..=10 {
            svc.auth(&format!("198.51.{n}.{i}"));
        }
    }
    assert_eq!(
        provider.calls(),
        3,
        "3 for both instances together, not 3 each"
    );
    assert_eq!(
        metric(
            &daily[1],
            "ipcheck_provider_budget_denied_total{limit=\"daily\"}"
        ),
        10
    );
    // The rate: one call per 100 s window for the fleet, whatever each instance's burst.
    let rate = [
        shared_budget_service(&provider, &redis.url(), "rate = 0.01\nburst = 5"),
        shared_budget_service(&provider, &redis.url(), "rate = 0.01\nburst = 5"),
    ];
    for (n, svc) in rate.iter().enumerate() {
        for i in 1..=10 {
            svc.auth(&format!("203.0.{n}.{i}"));
        }
    }
    let calls = provider.calls() - 3;
    // 2 if the test straddles two windows; 10 (5 each) if nothing were shared.
    assert!((1..=2).contains(&calls), "{calls} calls");
}

#[test]
fn without_permission_for_the_shared_budget_each_instance_keeps_its_own() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let redis = RedisServer::start();
    // What the lookups need, and not +eval.
    redis.service_user("svc", &[]);
    let url = format!("redis://svc:pass@127.0.0.1:{}/", redis.port());
    let svc = shared_budget_service(&provider, &url, "daily_quota = 2");
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    for i in 1..=5 {
        svc.auth(&format!("198.51.100.{i}"));
    }
    assert_eq!(
        provider.calls(),
        2,
        "the instance's own quota still applies"
    );
    let log = svc.log();
    assert_eq!(
        log.matches("the shared provider budget cannot be counted")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("+eval +incr +expire"), "{log}");
    assert_eq!(svc.get("/readyz", &[]).status, 200, "not a lookup problem");
}

/// Writes `ip` as the service would have two days ago (fresh for 1 s, then stale), and waits
/// until `IPCHECK GET` says it is stale.
fn stale_entry(redis: &RedisServer, ip: &str, reason: &str) {
    let mut con = redis.client();
    ipcheck::set(
        &mut con,
        &[ip, "block", "EX", "1", "STALE", "172800", "REASON", reason],
    )
    .expect("IPCHECK SET");
    ipcheck::wait_for(&mut con, ip, "turned stale", |h| !h.fresh);
}

#[test]
fn over_budget_stale_facts_decide_without_a_call() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let redis = RedisServer::start();
    stale_entry(&redis, "198.51.100.77", "tor");
    stale_entry(&redis, "198.51.100.78", "");
    let svc = with_redis(
        &provider,
        &redis.url(),
        "[provider.budget]\ndaily_quota = 1\n",
    );
    // The first cold address spends the day's one call.
    assert_eq!(
        svc.auth("198.51.100.1").decision(),
        (204, "allow", "", "provider")
    );
    assert_eq!(
        svc.auth("198.51.100.77").decision(),
        (403, "block", "tor", "stale")
    );
    assert_eq!(
        svc.auth("198.51.100.78").decision(),
        (204, "allow", "", "stale")
    );
    // No fact at all: on_error.
    assert_eq!(
        svc.auth("198.51.100.2").decision(),
        (403, "block", "provider-error", "none")
    );
    assert_eq!(provider.calls(), 1, "only the one the budget allowed");
    assert_eq!(
        metric(
            &svc,
            "ipcheck_provider_budget_denied_total{limit=\"daily\"}"
        ),
        3
    );
}

#[test]
fn behind_an_open_provider_breaker_stale_facts_decide_without_a_call() {
    let provider = Provider::start();
    provider.respond_default(Reply::Status(500));
    let redis = RedisServer::start();
    stale_entry(&redis, "198.51.100.77", "tor");
    let svc = with_redis(
        &provider,
        &redis.url(),
        "[provider.breaker]\nfailures = 1\ncooldown = \"1h\"\n",
    );
    // One failure opens the breaker for an hour.
    assert_eq!(
        svc.auth("198.51.100.3").decision(),
        (403, "block", "provider-error", "provider")
    );
    assert_eq!(
        svc.auth("198.51.100.77").decision(),
        (403, "block", "tor", "stale")
    );
    assert_eq!(provider.calls(), 1, "nothing asked behind the open breaker");
    assert_eq!(provider.calls_for("198.51.100.77"), 0);
}
