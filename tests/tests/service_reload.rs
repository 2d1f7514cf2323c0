//! ipcheck-auth end to end: `SIGHUP` reloads the configuration in place. A changed policy decides
//! the next request (cached facts included) with no request failing meanwhile; a file that does
//! not load, or that changes a key only a restart applies, is refused and the old one kept.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcheck_tests::service::http_request;
use ipcheck_tests::{Provider, Reply, Service};

const KEY_VAR: &str = "TEST_PROVIDER_KEY";
const VPN_IP: &str = "192.0.2.10";

/// The config with `vpn` under `vpn_rule` (`challenge` or `block`) and `extra` appended.
fn config(provider: &Provider, vpn_rule: &str, extra: &str) -> String {
    let rules = match vpn_rule {
        "block" => "block = [\"tor\", \"vpn\"]",
        _ => "block = [\"tor\"]\nchallenge = [\"vpn\"]",
    };
    format!(
        r#"
[provider]
preset = "ipasis"
url = "{url}"
api_key_env = "{KEY_VAR}"
timeout = "2s"

[policies.default]
{rules}
on_error = "open"
{extra}
"#,
        url = provider.url_template()
    )
}

fn start(provider: &Provider) -> Service {
    provider.respond(VPN_IP, Reply::flags(&["vpn"]));
    Service::builder(&config(provider, "challenge", ""))
        .env(KEY_VAR, "test-key")
        .start()
}

fn hangup(svc: &Service) {
    let pid = svc.pid().expect("the service runs");
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid} failed");
}

fn alive(svc: &Service) -> bool {
    let pid = svc.pid().expect("the service runs");
    Command::new("kill")
        .arg("-0")
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls until the log holds `text` `times` times; panics with the log after 10 s.
fn await_log(svc: &Service, text: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.log().matches(text).count() < times {
        assert!(
            Instant::now() < deadline,
            "no {times}x {text:?} in the log:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `/auth` for `ip` answers `status`; panics after 10 s.
fn await_status(svc: &Service, ip: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = svc.auth(ip);
        if reply.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ip} still answers {:?}, not {status}:\n{}",
            reply.decision(),
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric_line(svc: &Service, name: &str) -> String {
    svc.metrics()
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .to_owned()
}

#[test]
fn hangup_applies_a_changed_policy_under_load_without_a_failed_request() {
    let provider = Provider::start();
    let svc = start(&provider);
    let pid = svc.pid();
    assert_eq!(
        svc.auth(VPN_IP).decision().0,
        401,
        "vpn challenged at first"
    );

    // Requests all along: every reply must be a verdict (401 before, 403 after), never an error
    // status or a dropped connection.
    let stop = Arc::new(AtomicBool::new(false));
    let blocked = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let port = svc.port();
    let load = {
        let (stop, blocked, failures) = (stop.clone(), blocked.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(Ordering::SeqCst) {
                sent += 1;
                match http_request(port, "GET", "/auth", &[("X-Real-IP", VPN_IP)]) {
                    Ok(r)
                        if r.status == 401
                            && r.header("x-ipcheck-verdict") == Some("challenge") => {}
                    Ok(r) if r.status == 403 && r.header("x-ipcheck-verdict") == Some("block") => {
                        blocked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failures.lock().unwrap().push(format!("{:?}", r.decision())),
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
            sent
        })
    };

    std::fs::write(svc.config_path(), config(&provider, "block", "")).expect("rewrite config");
    hangup(&svc);
    await_status(&svc, VPN_IP, 403);
    // The load thread sees the new verdict too before it stops.
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the load never saw the new verdict"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let sent = load.join().expect("load thread");
    assert!(sent > 1);
    assert_eq!(
        *failures.lock().unwrap(),
        Vec::<String>::new(),
        "failed requests during the reload"
    );

    // The same process, and the facts came from its cache: the provider was asked once, so the
    // new policy re-decided cached facts.
    assert_eq!(svc.pid(), pid);
    assert!(alive(&svc), "the service died on SIGHUP:\n{}", svc.log());
    let reply = svc.auth(VPN_IP);
    assert_eq!(reply.header("x-ipcheck-cache"), Some("local"));
    assert_eq!(provider.calls_for(VPN_IP), 1);
    let log = svc.log();
    assert!(
        log.contains("configuration reloaded from") && log.contains(": policies"),
        "{log}"
    );
    assert_eq!(
        metric_line(&svc, "ipcheck_config_reloads_total{result=\"ok\"}"),
        "ipcheck_config_reloads_total{result=\"ok\"} 1"
    );
}

#[test]
fn a_broken_file_is_refused_and_the_old_configuration_keeps_serving() {
    let provider = Provider::start();
    let svc = start(&provider);
    assert_eq!(svc.auth(VPN_IP).decision().0, 401);

    // Not TOML at all.
    let broken = config(&provider, "block", "this is [not toml");
    std::fs::write(svc.config_path(), broken).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration not reloaded", 1);
    assert!(svc.log().contains("invalid TOML"), "{}", svc.log());
    assert!(svc.log().contains("still running the previous one"));
    assert_eq!(
        svc.auth(VPN_IP).decision().0,
        401,
        "the old policy still decides"
    );
    assert_eq!(
        metric_line(&svc, "ipcheck_config_reloads_total{result=\"error\"}"),
        "ipcheck_config_reloads_total{result=\"error\"} 1"
    );

    // Valid TOML, invalid value: the error names the key.
    let invalid =
        config(&provider, "block", "").replace("on_error = \"open\"", "on_error = \"sideways\"");
    std::fs::write(svc.config_path(), invalid).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration not reloaded", 2);
    assert!(
        svc.log().contains("policies.default.on_error"),
        "{}",
        svc.log()
    );
    assert_eq!(svc.auth(VPN_IP).decision().0, 401);
    assert!(alive(&svc));

    // Fixed: the next HUP applies it.
    std::fs::write(svc.config_path(), config(&provider, "block", "")).expect("rewrite config");
    hangup(&svc);
    await_status(&svc, VPN_IP, 403);
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ipcheck_config_reloads_total{result=\"error\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_restart_only_key_refuses_the_reload_naming_the_key() {
    let provider = Provider::start();
    let svc = start(&provider);
    assert_eq!(svc.auth(VPN_IP).decision().0, 401);

    // The policy change would be fine; the capacity change is not, so neither is applied.
    let resized = config(&provider, "block", "[cache]\ncapacity = 5000\n");
    std::fs::write(svc.config_path(), resized).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration not reloaded", 1);
    assert!(
        svc.log().contains("restart to change cache.capacity"),
        "{}",
        svc.log()
    );
    assert_eq!(
        svc.auth(VPN_IP).decision().0,
        401,
        "nothing of the file applied"
    );
    assert!(alive(&svc));
}

#[test]
fn a_request_in_flight_finishes_on_the_configuration_it_started_with() {
    let provider = Provider::start();
    let svc = start(&provider);
    let slow_ip = "192.0.2.20";
    provider.respond(slow_ip, Reply::flags(&["vpn"]));
    // Slow enough for the reload to land while the lookup waits (the provider timeout is 2s).
    provider.set_delay(Duration::from_millis(1500));
    let port = svc.port();
    let in_flight = std::thread::spawn(move || {
        http_request(port, "GET", "/auth", &[("X-Real-IP", slow_ip)]).map(|r| r.status)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while provider.calls_for(slow_ip) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the provider"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(svc.config_path(), config(&provider, "block", "")).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration reloaded from", 1);
    assert_eq!(
        in_flight
            .join()
            .expect("request thread")
            .expect("the request was answered"),
        401,
        "decided by the policy it started with (vpn challenged)"
    );
    provider.set_delay(Duration::ZERO);
    assert_eq!(
        svc.auth(slow_ip).decision().0,
        403,
        "the next one by the new"
    );
    assert_eq!(provider.calls_for(slow_ip), 1);
}

#[test]
fn a_policy_added_by_a_reload_serves_the_name_that_was_unknown() {
    let provider = Provider::start();
    let svc = start(&provider);
    assert_eq!(svc.auth_policy(VPN_IP, "strict").decision().1, "block");
    assert_eq!(
        svc.auth_policy(VPN_IP, "strict").decision().2,
        "policy-error"
    );
    assert!(svc
        .get("/readyz", &[])
        .body
        .starts_with("ready, degraded: policies\n"));

    let strict = "[policies.strict]\nblock = [\"vpn\"]\n";
    std::fs::write(svc.config_path(), config(&provider, "challenge", strict))
        .expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration reloaded from", 1);
    let reply = svc.auth_policy(VPN_IP, "strict");
    let (status, verdict, reason, _) = reply.decision();
    assert_eq!((status, verdict, reason), (403, "block", "vpn"));
    let ready = svc.get("/readyz", &[]);
    assert!(ready.body.starts_with("ready\n"), "{}", ready.body);
    assert!(ready.body.contains("strict"), "{}", ready.body);
}

#[test]
fn changed_provider_settings_get_a_new_client_and_unchanged_ones_keep_it() {
    let provider = Provider::start();
    let svc = start(&provider);
    assert_eq!(svc.auth(VPN_IP).decision().0, 401);

    // The same file again: nothing changed, nothing rebuilt.
    hangup(&svc);
    await_log(&svc, "configuration reloaded from", 1);
    assert!(svc.log().contains(": no change"), "{}", svc.log());

    let slower = config(&provider, "challenge", "").replace("timeout = \"2s\"", "timeout = \"3s\"");
    std::fs::write(svc.config_path(), slower).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration reloaded from", 2);
    assert!(svc.log().contains("new provider client"), "{}", svc.log());
    // The new client asks the provider for an address not cached yet.
    provider.respond("192.0.2.30", Reply::flags(&["tor"]));
    assert_eq!(svc.auth("192.0.2.30").decision().0, 403);
    assert_eq!(provider.calls_for("192.0.2.30"), 1);
}

#[test]
fn the_redis_tier_carries_over_a_reload() {
    let provider = Provider::start();
    let redis = ipcheck_tests::RedisServer::start();
    provider.respond(VPN_IP, Reply::flags(&["vpn"]));
    let with_redis = |rule: &str, ttl: &str| {
        config(
            &provider,
            rule,
            &format!(
                "[redis]\nurl = \"{}\"\ntimeout = \"500ms\"\nttl = \"{ttl}\"\n",
                redis.url()
            ),
        )
    };
    let svc = Service::builder(&with_redis("challenge", "1h"))
        .env(KEY_VAR, "test-key")
        .start();
    assert_eq!(svc.auth(VPN_IP).decision().0, 401);

    // A policy and redis.ttl (reloadable) change together.
    std::fs::write(svc.config_path(), with_redis("block", "2h")).expect("rewrite config");
    hangup(&svc);
    await_log(&svc, "configuration reloaded from", 1);
    assert!(svc.log().contains("redis.ttl"), "{}", svc.log());
    assert_eq!(svc.auth(VPN_IP).decision().0, 403);
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);

    // The tier still answers: an operator's pin is seen, and a new answer is written with the
    // new redis.ttl.
    let mut con = redis.client();
    ipcheck_tests::ipcheck::set(&mut con, &["198.51.100.7", "block", "SOURCE", "manual"])
        .expect("pin");
    let reply = svc.auth("198.51.100.7");
    assert_eq!(reply.decision().0, 403);
    assert_eq!(reply.header("x-ipcheck-cache"), Some("redis"));
    provider.respond("192.0.2.40", Reply::clean());
    assert_eq!(svc.auth("192.0.2.40").decision().0, 204);
    let hit =
        ipcheck_tests::ipcheck::wait_for(&mut con, "192.0.2.40", "the written answer", |_| true);
    assert!(
        hit.fresh_ttl > 3600,
        "written with the reloaded redis.ttl (2h): {hit:?}"
    );
}

#[test]
fn a_key_in_a_file_is_rotated_by_a_reload() {
    let provider = Provider::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("provider.key");
    std::fs::write(&key, "key-one\n").expect("write the key");
    let svc = Service::start(&format!(
        r#"
[provider]
preset = "ipasis"
url = "{url}"
api_key_file = "{key}"
timeout = "2s"

[policies.default]
block = ["tor"]
"#,
        url = provider.url_template(),
        key = key.display()
    ));
    assert_eq!(svc.auth("192.0.2.50").status, 204);
    // The operator rotates the key in its file, and reloads.
    std::fs::write(&key, "key-two\n").expect("write the key");
    hangup(&svc);
    await_log(&svc, "configuration reloaded", 1);
    assert_eq!(svc.auth("192.0.2.51").status, 204);
    let asked: Vec<(String, Option<String>)> = provider
        .seen()
        .iter()
        .map(|s| (s.ip.clone(), s.headers.get("x-api-key").cloned()))
        .collect();
    assert_eq!(
        asked,
        vec![
            ("192.0.2.50".to_owned(), Some("key-one".to_owned())),
            ("192.0.2.51".to_owned(), Some("key-two".to_owned())),
        ]
    );
    let log = svc.log();
    assert!(
        !log.contains("key-one") && !log.contains("key-two"),
        "{log}"
    );
}
