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
    let field = |name: &str| {
        stats
            .chunks(2)
            .find(|kv| kv[0] == name)
            .map(|kv| kv[1].clone())
    };
    assert_eq!(
        field("misses").as_deref(),
        Some("1"),
        "one Redis lookup: {stats:?}"
    );
    let metrics = svc.metrics();
    let waits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ipcheck_coalesced_waits_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(waits > 0, "{metrics}");
}
