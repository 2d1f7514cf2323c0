//! ipcheck-auth end to end: concurrent misses for one address share one lookup.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ipcheck_tests::{Provider, RedisServer, Reply, Service};

#[test]
fn a_thousand_simultaneous_requests_make_one_call() {
    let provider = Provider::start();
    provider.respond("203.0.113.77", Reply::flags(&["tor"]));
    provider.set_delay(Duration::from_millis(700));
    let redis = RedisServer::start();
    let svc = Service::start(&format!(
        r#"
[redis]
url = "{redis}"
timeout = "200ms"

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = ""
timeout = "5s"

[policies.default]
block = ["tor"]
"#,
        redis = redis.url(),
        url = provider.url_template()
    ));
    let port = svc.port();
    // The service checks Redis at startup (IPCHECK GET/SET probes on 0.0.0.0, which the module
    // counts too): wait until that is done, and count from there.
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    let misses_before = module_misses(&redis);
    const N: usize = 1000;
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    barrier.wait();
                    ipcheck_tests::service::http_request(
                        port,
                        "GET",
                        "/auth",
                        &[("X-Real-IP", "203.0.113.77")],
                    )
                    .map(|r| (r.status, r.header("x-ipcheck-reason").map(str::to_owned)))
                })
                .expect("spawn a client thread")
        })
        .collect();
    for t in threads {
        let (status, reason) = t.join().expect("client thread").expect("request");
        assert_eq!((status, reason.as_deref()), (403, Some("tor")));
    }
    assert_eq!(
        provider.calls(),
        1,
        "one provider call for one cold address"
    );
    assert_eq!(
        module_misses(&redis) - misses_before,
        1,
        "one Redis lookup for one cold address"
    );
    let metrics = svc.metrics();
    let waits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ipcheck_coalesced_waits_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(waits > 0, "{metrics}");
}

/// The module's `IPCHECK STATS` miss counter.
fn module_misses(redis: &RedisServer) -> u64 {
    let mut con = redis.client();
    let stats: Vec<redis::Value> = redis::cmd("IPCHECK").arg("STATS").query(&mut con).unwrap();
    let stats: Vec<String> = stats
        .iter()
        .map(|v| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            redis::Value::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    stats
        .chunks(2)
        .find(|kv| kv[0] == "misses")
        .and_then(|kv| kv[1].parse().ok())
        .unwrap_or_else(|| panic!("no misses in {stats:?}"))
}
