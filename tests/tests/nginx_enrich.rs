//! Through nginx: a location whose policy has `on_miss = "allow"` answers a cold address at
//! once, without waiting for a slow provider, and the same address is decided on facts a
//! moment later, once an enrichment worker has looked it up. The shipped example config, with
//! the lenient policy (the example's `/` location) switched to allow-on-miss.

use std::time::{Duration, Instant};

use ipcheck_tests::stack::{example_service_config, get_via, KEY_VAR, SECRET};
use ipcheck_tests::{Backend, NginxSetup, Provider, RedisServer, Reply, Service, Worker};

#[test]
fn an_allow_on_miss_location_answers_a_cold_address_at_once_then_on_facts() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let backend = Backend::start();
    let mut cfg = example_service_config(&redis, &provider, "60s");
    for (from, to) in [
        (
            "[policies.lenient]\nblock = []\nchallenge = [\"tor\"]\n",
            "[policies.lenient]\nblock = [\"tor\"]\nchallenge = []\non_miss = \"allow\"\n",
        ),
        // Longer than the slow provider, so the worker's call succeeds.
        ("timeout = \"500ms\"", "timeout = \"10s\""),
    ] {
        assert!(cfg.contains(from), "example config no longer has {from:?}");
        cfg = cfg.replacen(from, to, 1);
    }
    let client = "127.0.0.7";
    provider.respond(client, Reply::flags(&["tor"]));
    provider.set_delay(Duration::from_secs(2));
    let service = Service::builder(&cfg).env(KEY_VAR, SECRET).start();
    let nginx = NginxSetup::new(service.port(), backend.port()).start();
    let _worker = Worker::start(&cfg, "w1", &[(KEY_VAR, SECRET)]);

    // Cold: let through before the provider has answered anybody, the backend told why.
    let r = get_via(&nginx, client, "/account", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        provider.answered_for(client),
        0,
        "the answer waited for the provider"
    );
    let seen = backend
        .last_request_for("/account")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-cache"), Some("queued"));

    // A moment later the worker has written the facts: the same client is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let r = get_via(&nginx, client, "/account", &[]);
        if r.status != 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "never decided on facts: {r:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.body,
        "{\"error\":\"access denied\",\"reason\":\"tor\"}\n"
    );
    assert_eq!(provider.calls_for(client), 1, "{:?}", provider.seen());
}
