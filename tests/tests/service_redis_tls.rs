//! ipcheck-auth speaking TLS to Redis (`rediss://`), the server verified against a private CA.

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::tls::TestCerts;
use ipcheck_tests::{free_port, ipcheck, Provider, RedisServer, Reply, Service};

fn config(provider: &Provider, tls_port: u16, ca: Option<&Path>) -> String {
    let ca_line = ca.map_or(String::new(), |p| {
        format!("tls_ca_file = \"{}\"\n", p.display())
    });
    format!(
        r#"
[redis]
url = "rediss://127.0.0.1:{tls_port}/"
{ca_line}timeout = "500ms"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
"#,
        provider_section = provider.config_section()
    )
}

/// A server with the module loaded and a TLS listener on the returned port.
fn tls_redis(certs: &TestCerts) -> (RedisServer, u16) {
    let tls_port = free_port();
    let redis = RedisServer::builder()
        .conf(&certs.redis_conf(tls_port))
        .start();
    (redis, tls_port)
}

#[test]
fn verdicts_are_shared_over_tls_with_a_private_ca() {
    let certs = TestCerts::generate();
    let (redis, tls_port) = tls_redis(&certs);
    let provider = Provider::start();
    provider.respond("192.0.2.40", Reply::flags(&["tor"]));
    let ca = certs.ca_file();
    let svc = Service::start(&config(&provider, tls_port, Some(&ca)));

    assert_eq!(
        svc.auth("192.0.2.40").decision(),
        (403, "block", "tor", "provider")
    );
    // Written over TLS; read back here over the plain port.
    let deadline = Instant::now() + Duration::from_secs(5);
    let hit = loop {
        if let Some(hit) = ipcheck::get(&mut redis.client(), "192.0.2.40").unwrap() {
            break hit;
        }
        assert!(Instant::now() < deadline, "no entry written over TLS");
        sleep(Duration::from_millis(20));
    };
    assert_eq!((hit.reason.as_str(), hit.source.as_str()), ("tor", "api"));

    // Another instance reads it over TLS.
    let other = Service::start(&config(&provider, tls_port, Some(&ca)));
    assert_eq!(
        other.auth("192.0.2.40").decision(),
        (403, "block", "tor", "redis")
    );
    assert_eq!(provider.calls(), 1);
    let ready = other.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
}

#[test]
fn a_server_certificate_nobody_vouches_for_is_refused() {
    let certs = TestCerts::generate();
    let (redis, tls_port) = tls_redis(&certs);
    let provider = Provider::start();
    provider.respond("192.0.2.41", Reply::flags(&["tor"]));
    // No tls_ca_file: the system's roots, which never signed the test CA.
    let svc = Service::start(&config(&provider, tls_port, None));

    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("redis: down"), "{}", ready.body);
    // Decisions go on without Redis, and nothing reaches it.
    assert_eq!(
        svc.auth("192.0.2.41").decision(),
        (403, "block", "tor", "provider")
    );
    sleep(Duration::from_millis(300));
    assert_eq!(
        ipcheck::get(&mut redis.client(), "192.0.2.41").unwrap(),
        None
    );
}
