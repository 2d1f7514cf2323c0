//! The reason vocabulary across versions and in the metrics (issue #13, "One vocabulary first"):
//! a reason bit this version does not know, as a newer writer would store it, is read by the
//! module and the service instead of refused, and survives a rewrite; decisions are counted once
//! per verdict and once per reason token.

use std::time::{Duration, Instant};

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

/// Verdict `block`, source `api`, reasons `tor` (bit 2) and bit 20, which today's vocabulary
/// (12 tokens) does not have: `verdict | source << 2 | reasons << 6`.
const NEWER_VALUE: u64 = 1 | 1 << (6 + 2) | 1 << (6 + 20);

fn config(provider: &Provider, redis: &RedisServer) -> String {
    format!(
        "[redis]\nurl = \"{}\"\nttl = \"1h\"\n\n{}\n[policies.default]\nblock = [\"tor\", \"vpn\"]\n",
        redis.url(),
        provider.config_section()
    )
}

#[test]
fn a_newer_writers_reason_bit_is_read_by_the_module_and_the_service() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let mut con = redis.client();
    let key = ipcheck::key(&mut con, "192.0.2.7").expect("IPCHECK KEY");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(NEWER_VALUE.to_string())
        .arg("EX")
        .arg(3600)
        .query(&mut con)
        .expect("SET");

    // The module keeps the bit it does not know, spelled unknown-20.
    let hit = ipcheck::get(&mut con, "192.0.2.7")
        .expect("IPCHECK GET accepts the value")
        .expect("a hit");
    assert_eq!(
        (
            hit.verdict.as_str(),
            hit.reason.as_str(),
            hit.source.as_str()
        ),
        ("block", "tor,unknown-20", "api")
    );

    // The service reads the entry as facts: tor blocks, the unknown bit is ignored, and the
    // provider is not asked.
    let svc = Service::start(&config(&provider, &redis));
    assert_eq!(
        svc.auth("192.0.2.7").decision(),
        (403, "block", "tor", "redis")
    );
    assert_eq!(provider.calls_for("192.0.2.7"), 0);

    // Writing back what GET returned stores the very same entry: the newer bit survives (in
    // today's stored form, which always carries the stale window: `;0`).
    ipcheck::set(
        &mut con,
        &[
            "192.0.2.7",
            "block",
            "EX",
            "3600",
            "REASON",
            "tor,unknown-20",
        ],
    )
    .expect("IPCHECK SET accepts unknown-<bit>");
    let raw: String = redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
    assert_eq!(raw, format!("{NEWER_VALUE};0"));

    // An operator's pin from a newer writer: its verdict holds, and its header is the stored
    // list as it reads, as for any pin (custom tokens included).
    let pin: u64 = 1 | 2 << 2 | 1 << (6 + 7) | 1 << (6 + 31);
    let pin_key = ipcheck::key(&mut con, "192.0.2.8").expect("IPCHECK KEY");
    let _: () = redis::cmd("SET")
        .arg(&pin_key)
        .arg(pin.to_string())
        .arg("EX")
        .arg(3600)
        .query(&mut con)
        .expect("SET");
    let hit = ipcheck::get(&mut con, "192.0.2.8").unwrap().unwrap();
    assert_eq!(
        (hit.reason.as_str(), hit.source.as_str()),
        ("denylist,unknown-31", "manual")
    );
    assert_eq!(
        svc.auth("192.0.2.8").decision(),
        (403, "block", "denylist,unknown-31", "redis")
    );
    assert_eq!(provider.calls_for("192.0.2.8"), 0);
}

/// The value of the sample line that is exactly `series <value>`.
fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn decisions_count_once_per_verdict_and_once_per_reason_token() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    provider.respond("198.51.100.1", Reply::flags(&["vpn", "tor"]));
    provider.respond("198.51.100.2", Reply::flags(&["tor"]));
    let svc = Service::start(&config(&provider, &redis));

    assert_eq!(
        svc.auth("198.51.100.1").decision(),
        (403, "block", "vpn,tor", "provider")
    );
    // A local hit builds the same two-token header.
    assert_eq!(
        svc.auth("198.51.100.1").decision(),
        (403, "block", "vpn,tor", "local")
    );
    assert_eq!(
        svc.auth("198.51.100.2").decision(),
        (403, "block", "tor", "provider")
    );
    assert_eq!(svc.auth("198.51.100.3").status, 204);

    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = svc.metrics();
        if sample(&m, "ipcheck_decisions_total{verdict=\"allow\"}") == Some(1)
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let expect = [
        ("ipcheck_decisions_total{verdict=\"block\"}", 3),
        ("ipcheck_decisions_total{verdict=\"allow\"}", 1),
        ("ipcheck_decisions_total{verdict=\"challenge\"}", 0),
        (
            "ipcheck_decision_reasons_total{verdict=\"block\",reason=\"vpn\"}",
            2,
        ),
        (
            "ipcheck_decision_reasons_total{verdict=\"block\",reason=\"tor\"}",
            3,
        ),
    ];
    for (series, n) in expect {
        assert_eq!(sample(&m, series), Some(n), "{series} in\n{m}");
    }
    // Per token, never per combination; a plain allow has no reason series.
    assert!(!m.contains("reason=\"vpn,tor\""), "{m}");
    assert!(!m.contains("reason=\"\""), "{m}");
}
