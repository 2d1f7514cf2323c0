//! The metrics added for issue #11: `/auth` and Redis call latency histograms, build info, the
//! local tier's capacity and evictions, as `/metrics` shows them after real requests.

use std::time::{Duration, Instant};

use ipcheck_tests::{Provider, RedisServer, Service};

/// The value of the sample line that starts with `series ` (name and labels exactly).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn value(metrics: &str, series: &str) -> f64 {
    sample(metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[test]
fn auth_latency_build_info_and_local_evictions() {
    // Capacity 1 is one entry in each of the 64 shards: 100 addresses must evict at least 36.
    let svc = Service::start("[cache]\ncapacity = 1\n");
    for i in 0..100 {
        let reply = svc.auth(&format!("198.51.100.{i}"));
        assert_eq!(reply.status, 204);
    }
    let m = svc.metrics();
    assert!(
        m.contains("# TYPE ipcheck_auth_duration_seconds histogram\n"),
        "{m}"
    );
    assert_eq!(value(&m, "ipcheck_auth_duration_seconds_count"), 100.0);
    assert_eq!(
        value(&m, "ipcheck_auth_duration_seconds_bucket{le=\"+Inf\"}"),
        100.0
    );
    assert!(value(&m, "ipcheck_auth_duration_seconds_sum") > 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&m, &format!("ipcheck_build_info{{version=\"{version}\"}}")),
        1.0
    );
    assert_eq!(value(&m, "ipcheck_local_capacity"), 64.0);
    let evicted = value(&m, "ipcheck_local_evictions_total");
    let entries = value(&m, "ipcheck_local_entries");
    assert_eq!(evicted + entries, 100.0, "{m}");
    assert!(evicted >= 36.0, "{m}");
    assert_eq!(value(&m, "ipcheck_local_expired_total"), 0.0);
    // No Redis configured: no Redis latency either.
    assert!(!m.contains("ipcheck_redis_duration_seconds"), "{m}");
}

#[test]
fn redis_get_and_set_latency_by_op() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    // Without the invalidation link, whose re-reads of changed entries are GETs too.
    let svc = Service::start(&format!(
        "[redis]\nurl = \"{}\"\ninvalidation = false\n\n{}\n",
        redis.url(),
        provider.config_section()
    ));
    // Three new addresses: each is one IPCHECK GET (a miss), a provider call, one IPCHECK SET;
    // the fourth request is a local hit and asks Redis nothing.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.1"] {
        assert_eq!(svc.auth(ip).status, 204);
    }
    // The SET runs in the lookup's own task and may land just after the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = svc.metrics();
        let sets = sample(&m, "ipcheck_redis_duration_seconds_count{op=\"set\"}");
        if sets == Some(3.0) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        m.contains("# TYPE ipcheck_redis_duration_seconds histogram\n"),
        "{m}"
    );
    assert_eq!(
        value(&m, "ipcheck_redis_duration_seconds_count{op=\"get\"}"),
        3.0
    );
    assert_eq!(
        value(&m, "ipcheck_redis_duration_seconds_count{op=\"set\"}"),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "ipcheck_redis_duration_seconds_bucket{op=\"get\",le=\"+Inf\"}"
        ),
        3.0
    );
    assert_eq!(
        value(&m, "ipcheck_redis_lookups_total{result=\"miss\"}"),
        3.0
    );
    assert_eq!(value(&m, "ipcheck_auth_duration_seconds_count"), 4.0);
}
