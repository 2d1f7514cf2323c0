//! ipcheck-auth end to end: the Redis tier, through the `IPCHECK` command of a real redis-server
//! with the module loaded.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

fn config(provider: &Provider, redis: &RedisServer, local_ttl: &str) -> String {
    format!(
        r#"
[cache]
local_ttl = "{local_ttl}"
negative_ttl = "1s"

[redis]
url = "{redis}"
timeout = "50ms"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
challenge = ["vpn"]

[policies.strict]
block = ["vpn", "hosting", "tor"]
"#,
        redis = redis.url(),
        provider_section = provider.config_section()
    )
}

/// `IPCHECK GET`, read with the tests' protocol helper; `None` on a miss or a failed call.
fn ipcheck_get(con: &mut redis::Connection, ip: &str) -> Option<ipcheck::Hit> {
    ipcheck::get(con, ip).ok().flatten()
}

/// Polls until Redis holds an entry for `ip` (the write happens off the response path).
fn wait_for_entry(redis: &RedisServer, ip: &str) -> ipcheck::Hit {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut con) = redis::Client::open(redis.url()).and_then(|c| c.get_connection()) {
            if let Some(entry) = ipcheck_get(&mut con, ip) {
                return entry;
            }
        }
        assert!(Instant::now() < deadline, "no IPCHECK entry for {ip}");
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn provider_answers_are_stored_as_facts_and_read_back() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    provider.respond("192.0.2.1", Reply::flags(&["hosting", "vpn"]));
    let svc = Service::start(&config(&provider, &redis, "60s"));

    assert_eq!(
        svc.auth("192.0.2.1").decision(),
        (401, "challenge", "vpn", "provider")
    );
    let entry = wait_for_entry(&redis, "192.0.2.1");
    // The facts in vocabulary order, with the default policy's verdict, for scripts.
    assert_eq!(entry.verdict, "challenge");
    assert_eq!(entry.reason, "vpn,hosting");
    assert_eq!(entry.source, "api");
    // Fresh for redis.ttl, then kept stale for redis.stale_ttl (default 7 days).
    let fresh_ttl = entry.fresh_ttl;
    assert!((3590..=3600).contains(&fresh_ttl), "fresh_ttl {fresh_ttl}");
    assert!(entry.fresh);
    let ttl = entry.ttl;
    assert!(
        (3590 + 604_800..=3600 + 604_800).contains(&ttl),
        "ttl {ttl}"
    );

    // A second instance sharing Redis reads the facts and applies its requested policy.
    let other = Service::start(&config(&provider, &redis, "60s"));
    assert_eq!(
        other.auth_policy("192.0.2.1", "strict").decision(),
        (403, "block", "vpn,hosting", "redis")
    );
    assert_eq!(
        other.auth("192.0.2.1").decision(),
        (401, "challenge", "vpn", "local")
    );
    assert_eq!(provider.calls(), 1);

    // IPv6: stored under the /64 key.
    assert_eq!(svc.auth("2001:db8:7:7::1").status, 204);
    let entry = wait_for_entry(&redis, "2001:db8:7:7::/64");
    assert_eq!(entry.reason, "");
    assert_eq!(entry.verdict, "allow");
}

#[test]
fn manual_pin_reaches_the_service_within_local_ttl() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let mut con = redis.client();
    provider.respond("192.0.2.5", Reply::flags(&["tor"]));
    // Without the invalidation link (service_coherence tests it), local_ttl is the bound.
    let config =
        config(&provider, &redis, "2s").replacen("[redis]\n", "[redis]\ninvalidation = false\n", 1);
    let svc = Service::start(&config);

    assert_eq!(
        svc.auth("192.0.2.5").decision(),
        (403, "block", "tor", "provider")
    );
    wait_for_entry(&redis, "192.0.2.5");
    // The operator pins the address.
    let _: () = redis::cmd("IPCHECK")
        .arg(&[
            "SET",
            "192.0.2.5",
            "allow",
            "REASON",
            "partner",
            "SOURCE",
            "manual",
        ])
        .query(&mut con)
        .unwrap();
    // Still served from the local tier until local_ttl passes...
    assert_eq!(
        svc.auth("192.0.2.5").decision(),
        (403, "block", "tor", "local")
    );
    sleep(Duration::from_millis(2100));
    // ...then the pin, for every policy.
    assert_eq!(
        svc.auth("192.0.2.5").decision(),
        (204, "allow", "partner", "redis")
    );
    assert_eq!(
        svc.auth_policy("192.0.2.5", "strict").decision(),
        (204, "allow", "partner", "local")
    );
    assert_eq!(provider.calls(), 1);
}

#[test]
fn redis_stopped_mid_test_and_started_again() {
    let provider = Provider::start();
    let mut redis = RedisServer::start();
    provider.respond_default(Reply::flags(&["vpn"]));
    let svc = Service::start(&config(&provider, &redis, "60s"));
    assert_eq!(
        svc.auth("192.0.2.20").decision(),
        (401, "challenge", "vpn", "provider")
    );
    wait_for_entry(&redis, "192.0.2.20");
    assert_eq!(svc.get("/readyz", &[]).status, 200);

    redis.kill();
    // Decisions go on through the provider, each costing at most the Redis deadline extra.
    for i in 21..26 {
        let ip = format!("192.0.2.{i}");
        let started = Instant::now();
        assert_eq!(
            svc.auth(&ip).decision(),
            (401, "challenge", "vpn", "provider"),
            "{ip}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
    }
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("redis: down"), "{}", ready.body);
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_redis_lookups_total{result=\"error\"} 5"),
        "{metrics}"
    );

    redis.restart();
    // The service reconnects on its own: new answers land in Redis again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 30;
    loop {
        let ip = format!("192.0.2.{i}");
        assert_eq!(svc.auth(&ip).status, 401);
        if let Ok(mut con) = redis::Client::open(redis.url()).and_then(|c| c.get_connection()) {
            sleep(Duration::from_millis(100));
            if ipcheck_get(&mut con, &ip).is_some() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no write reached the restarted Redis"
        );
        i += 1;
    }
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    // And reads: an operator's pin on an address the service has not seen.
    let mut con = redis.client();
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", "192.0.2.99", "block", "SOURCE", "manual"])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        svc.auth("192.0.2.99").decision(),
        (403, "block", "", "redis")
    );
}

#[test]
fn slow_redis_costs_at_most_its_deadline() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let svc = Service::start(&config(&provider, &redis, "60s"));
    assert_eq!(svc.auth("192.0.2.40").status, 204);
    // Block the server for two seconds.
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let _: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg(2).query(&mut con);
    });
    sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(
        svc.auth("192.0.2.41").decision(),
        (204, "allow", "", "provider")
    );
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    // At least the request's own GET timed out (the invalidation link's re-reads of changed
    // entries may have met the sleeping server too).
    let metrics = svc.metrics();
    let timeouts: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ipcheck_redis_errors_total{op=\"get\",kind=\"timeout\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(timeouts >= 1, "{metrics}");
    let _ = sleeper.join();
}

#[test]
fn starts_while_redis_is_down() {
    let provider = Provider::start();
    let mut redis = RedisServer::start();
    let cfg = config(&provider, &redis, "60s");
    redis.kill();
    let svc = Service::start(&cfg);
    assert_eq!(svc.get("/healthz", &[]).status, 200);
    assert_eq!(svc.get("/readyz", &[]).status, 503);
    assert_eq!(
        svc.auth("192.0.2.50").decision(),
        (204, "allow", "", "provider")
    );
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.get("/readyz", &[]).status != 200 {
        assert!(Instant::now() < deadline, "never became ready");
        sleep(Duration::from_millis(100));
    }
}

/// The service's config with `url` as the Redis URL (for ACL users and wrong passwords).
fn config_with_url(provider: &Provider, url: &str) -> String {
    format!(
        "[redis]\nurl = \"{url}\"\ntimeout = \"50ms\"\n{}\n[policies.default]\nblock = [\"tor\"]\n",
        provider.config_section()
    )
}

/// Polls `/readyz` until its body contains `text` (the startup check runs in the background).
fn readyz_says(svc: &Service, text: &str) -> ipcheck_tests::HttpReply {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = svc.get("/readyz", &[]);
        if ready.body.contains(text) {
            return ready;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said {text:?}: {}\nlog:\n{}",
            ready.body,
            svc.log()
        );
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn module_not_loaded_is_unready_and_logged_as_an_error() {
    let provider = Provider::start();
    let redis = RedisServer::builder().without_module().start();
    let svc = Service::start(&config(&provider, &redis, "60s"));
    let line = svc.wait_for_log_line(&["ERROR", "misconfigured", "module_missing"]);
    assert!(line.contains("not loaded"), "{line}");
    let ready = readyz_says(&svc, "module is not loaded");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.starts_with("not ready: redis\n"),
        "{}",
        ready.body
    );
    assert!(
        ready.body.contains("redis: misconfigured"),
        "{}",
        ready.body
    );
    // Decisions go on without Redis, and the kind is counted.
    assert_eq!(svc.auth("192.0.2.60").status, 204);
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_redis_errors_total{op=\"get\",kind=\"module_missing\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ipcheck_redis_up 0"), "{metrics}");
    assert!(
        metrics.contains("ipcheck_redis_state{state=\"misconfigured\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_user_without_set_permission_is_unready_naming_it() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    redis.acl_user("reader", &["%R~ipcheck:*", "+ipcheck|get", "+ipcheck|key"]);
    let port = redis.port();
    let svc = Service::start(&config_with_url(
        &provider,
        &format!("redis://reader:pass@127.0.0.1:{port}/"),
    ));
    let ready = readyz_says(&svc, "+ipcheck|set");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("noperm"), "{}", ready.body);
    svc.wait_for_log_line(&["ERROR", "noperm"]);
    // The password is never shown.
    assert!(!svc.log().contains(":pass@"), "{}", svc.log());
    assert!(!ready.body.contains(":pass@"), "{}", ready.body);

    // With the permission the same service becomes ready.
    redis.service_user("reader", &[]);
    let ready = readyz_says(&svc, "redis: ok");
    assert_eq!(ready.status, 200, "{}", ready.body);
    svc.wait_for_log_line(&["INFO", "the Redis tier is up"]);
}

#[test]
fn module_prefixes_that_differ_from_the_service_are_named() {
    let provider = Provider::start();
    let redis = RedisServer::builder()
        .module_args(&["ipv6-prefix", "56"])
        .start();
    let svc = Service::start(&config(&provider, &redis, "60s"));
    let ready = readyz_says(&svc, "ipv6-prefix");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains(
            "module ipv6-prefix 56 (IPCHECK KEY 2001:db8::1 = ipcheck:2001:db8::/56) but aggregation.ipv6_prefix = 64"
        ),
        "{}",
        ready.body
    );
    svc.wait_for_log_line(&["ERROR", "ipv6-prefix 56"]);
}

#[test]
fn a_wrong_password_is_an_auth_error() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    redis.acl_user("svc", &["%RW~ipcheck:*", "+ipcheck"]);
    let port = redis.port();
    let svc = Service::start(&config_with_url(
        &provider,
        &format!("redis://svc:wrong-one@127.0.0.1:{port}/"),
    ));
    let ready = readyz_says(&svc, "auth");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("password in redis.url"),
        "{}",
        ready.body
    );
    svc.wait_for_log_line(&["ERROR", "auth"]);
    assert!(
        !svc.log().contains("wrong-one"),
        "the password leaked:\n{}",
        svc.log()
    );
}

#[test]
fn redis_down_is_logged_once_not_per_request() {
    let provider = Provider::start();
    let mut redis = RedisServer::start();
    let svc = Service::start(&config(&provider, &redis, "60s"));
    readyz_says(&svc, "redis: ok");
    redis.kill();
    for i in 1..=20 {
        svc.auth(&format!("192.0.2.{i}"));
    }
    let line = svc.wait_for_log_line(&["WARN", "Redis is down"]);
    // A killed server: the connection drops, then reconnecting is refused or runs out of time.
    assert!(
        ["refused", "timeout"].iter().any(|k| line.contains(k)),
        "{line}"
    );
    let downs = svc.log().matches("Redis is down").count();
    assert_eq!(downs, 1, "one line for twenty failures:\n{}", svc.log());
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_redis_state{state=\"down\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ipcheck_redis_up 0"), "{metrics}");
}

#[test]
fn redis_never_reached_since_startup_is_an_error() {
    let provider = Provider::start();
    // A port nothing listens on: a wrong redis.url looks exactly like this.
    let port = ipcheck_tests::free_port();
    let svc = Service::start(&config_with_url(
        &provider,
        &format!("redis://127.0.0.1:{port}/"),
    ));
    let line = svc.wait_for_log_line(&["ERROR", "cannot be reached since startup"]);
    assert!(line.contains("redis.url"), "{line}");
    let ready = readyz_says(&svc, "redis: down");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.starts_with("not ready: redis\n"),
        "{}",
        ready.body
    );
}

#[test]
fn stale_ttl_zero_writes_entries_fresh_until_gone() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let text = config(&provider, &redis, "60s");
    assert!(text.contains("ttl = \"1h\"\n"));
    let text = text.replacen("ttl = \"1h\"\n", "ttl = \"1h\"\nstale_ttl = \"0s\"\n", 1);
    let svc = Service::start(&text);
    assert_eq!(svc.auth("192.0.2.77").decision().0, 204);
    let entry = wait_for_entry(&redis, "192.0.2.77");
    let ttl = entry.ttl;
    assert!((3590..=3600).contains(&ttl), "ttl {ttl}");
    assert_eq!(entry.fresh_ttl, entry.ttl);
    // Stored with a window of 0: the compact value and `;0` (never an integer).
    let mut con = redis.client();
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.77")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "0;0");
}
