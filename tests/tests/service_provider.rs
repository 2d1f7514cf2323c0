//! ipcheck-auth end to end: the provider tier and its failures.

use std::time::{Duration, Instant};

use ipcheck_tests::{Provider, Reply, Service};

const KEY: &str = "sk-test-9f8e7d6c5b4a-provider-key";

fn config(provider: &Provider, on_error: &str, extra: &str) -> String {
    format!(
        r#"
[cache]
negative_ttl = "1s"
local_ttl = "60s"

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = "TEST_KEY"
timeout = "300ms"
{extra}

[policies.default]
block = ["tor"]
challenge = ["vpn"]
on_error = "{on_error}"

# These tests count every call a failing provider gets: no breaker stops them here (the breaker
# is tested in service_breakers.rs).
[provider.breaker]
failures = 0
"#,
        url = provider.url_template()
    )
}

fn start(provider: &Provider, on_error: &str) -> Service {
    Service::builder(&config(provider, on_error, ""))
        .env("TEST_KEY", KEY)
        .start()
}

#[test]
fn asks_with_the_key_header_and_maps_fields() {
    let provider = Provider::start();
    provider.respond("192.0.2.1", Reply::flags(&["vpn", "hosting"]));
    let svc = start(&provider, "open");
    assert_eq!(
        svc.auth("192.0.2.1").decision(),
        (401, "challenge", "vpn", "provider")
    );
    let seen = provider.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/v1/lookup?ip=192.0.2.1");
    assert_eq!(
        seen[0].headers.get("x-api-key").map(String::as_str),
        Some(KEY)
    );
    // The older ipasis form maps through the same preset.
    provider.respond(
        "192.0.2.2",
        Reply::Body(r#"{"ip":"192.0.2.2","is_vpn":false,"security":{"is_vpn":false,"is_proxy":false,"is_tor":true,"is_crawler":false,"is_hosting":false}}"#.into()),
    );
    assert_eq!(
        svc.auth("192.0.2.2").decision(),
        (403, "block", "tor", "provider")
    );
}

#[test]
fn failures_fall_to_on_error_and_are_remembered() {
    let provider = Provider::start();
    provider.respond("192.0.2.10", Reply::Status(500));
    provider.respond("192.0.2.11", Reply::Status(429));
    provider.respond("192.0.2.12", Reply::Garbage);
    provider.respond(
        "192.0.2.13",
        Reply::Body(r#"{"ip":"192.0.2.13","country":"NL"}"#.into()),
    );
    provider.respond(
        "192.0.2.14",
        Reply::Body(r#"{"privacy":{"vpn":"maybe"}}"#.into()),
    );
    let open = start(&provider, "open");
    for ip in [
        "192.0.2.10",
        "192.0.2.11",
        "192.0.2.12",
        "192.0.2.13",
        "192.0.2.14",
    ] {
        assert_eq!(
            open.auth(ip).decision(),
            (204, "allow", "provider-error", "provider"),
            "{ip}"
        );
        // Remembered: a second request does not ask again within negative_ttl.
        assert_eq!(
            open.auth(ip).decision(),
            (204, "allow", "provider-error", "local"),
            "{ip}"
        );
        assert_eq!(provider.calls_for(ip), 1, "{ip}");
    }
    let metrics = open.metrics();
    for line in [
        "ipcheck_provider_errors_total{kind=\"status\"} 1",
        "ipcheck_provider_errors_total{kind=\"rate_limited\"} 1",
        "ipcheck_provider_errors_total{kind=\"decode\"} 1",
        "ipcheck_provider_errors_total{kind=\"schema_drift\"} 2",
        "ipcheck_decision_reasons_total{verdict=\"allow\",reason=\"provider-error\"} 10",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // After negative_ttl the provider is asked again (and now answers).
    provider.respond("192.0.2.10", Reply::flags(&["tor"]));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        open.auth("192.0.2.10").decision(),
        (403, "block", "tor", "provider")
    );
    assert_eq!(provider.calls_for("192.0.2.10"), 2);

    let closed = start(&provider, "closed");
    assert_eq!(
        closed.auth("192.0.2.12").decision(),
        (403, "block", "provider-error", "provider")
    );
}

#[test]
fn timeout_costs_at_most_the_deadline() {
    let provider = Provider::start();
    provider.set_delay(Duration::from_secs(3));
    let svc = start(&provider, "closed");
    let started = Instant::now();
    let r = svc.auth("192.0.2.30");
    let took = started.elapsed();
    assert_eq!(r.decision(), (403, "block", "provider-error", "provider"));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_provider_errors_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[test]
fn dead_provider_is_a_provider_error() {
    // A port nobody listens on.
    let port = ipcheck_tests::free_port();
    let cfg = format!(
        "[provider]\npreset = \"ipasis\"\nurl = \"http://127.0.0.1:{port}/v1/lookup?ip={{ip}}\"\napi_key_env = \"TEST_KEY\"\ntimeout = \"300ms\"\n"
    );
    let svc = Service::builder(&cfg).env("TEST_KEY", KEY).start();
    assert_eq!(
        svc.auth("192.0.2.40").decision(),
        (204, "allow", "provider-error", "provider")
    );
    // A third-party outage is reported, never a reason to take the instance out of rotation.
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.starts_with("ready, degraded: provider\n"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("provider: ipasis: down: connection failed for "),
        "{}",
        ready.body
    );
    let metrics = svc.metrics();
    assert!(metrics.contains("ipcheck_provider_up 0"), "{metrics}");
    // Never answered since startup: as likely a wrong provider.url as an outage, so an error.
    let log = svc.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("no lookup has been answered since startup")),
        "{log}"
    );
}

#[test]
fn partial_schema_drift_is_a_provider_error() {
    let provider = Provider::start();
    // Still carries mapped fields, but privacy.vpn is gone: never "not a VPN".
    provider.respond_default(Reply::Body(
        r#"{"privacy":{"crawler":false,"tor":false,"proxy":false,"relay":false,"hosting":false}}"#
            .into(),
    ));
    let svc = start(&provider, "closed");
    assert_eq!(
        svc.auth("192.0.2.70").decision(),
        (403, "block", "provider-error", "provider")
    );
    assert_eq!(provider.calls_for("192.0.2.70"), 1);
    // Only what the policies decide on is required: relay and hosting may go missing.
    provider.respond(
        "192.0.2.71",
        Reply::Body(r#"{"privacy":{"vpn":true,"tor":false}}"#.into()),
    );
    assert_eq!(
        svc.auth("192.0.2.71").decision(),
        (401, "challenge", "vpn", "provider")
    );
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_provider_errors_total{kind=\"schema_drift\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_refused_api_key_is_named_counted_apart_and_logged_rate_limited() {
    let provider = Provider::start();
    provider.respond_default(Reply::Status(401));
    let svc = start(&provider, "open");
    for i in 0..20 {
        assert_eq!(
            svc.auth(&format!("192.0.2.{}", 100 + i)).decision(),
            (204, "allow", "provider-error", "provider")
        );
    }
    assert_eq!(provider.calls(), 20);
    let log = svc.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused the API key in TEST_KEY"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 2,
        "one line per interval, not one per address:\n{log}"
    );
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    assert!(!log.contains("192.0.2.1"), "no line per address:\n{log}");
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_provider_errors_total{kind=\"auth\"} 20"),
        "{metrics}"
    );
    assert!(metrics.contains("ipcheck_provider_up 0"), "{metrics}");
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready
            .body
            .contains("provider: ipasis: refusing the API key in TEST_KEY (HTTP 401) for "),
        "{}",
        ready.body
    );
    for text in [&log, &ready.body, &metrics] {
        assert!(!text.contains(KEY), "the key leaked:\n{text}");
    }
    // 403 is the same refusal.
    provider.respond("192.0.2.200", Reply::Status(403));
    svc.auth("192.0.2.200");
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_provider_errors_total{kind=\"auth\"} 21"),
        "{metrics}"
    );
}

#[test]
fn missing_key_variable_refuses_to_start() {
    let provider = Provider::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ipcheck.toml");
    std::fs::write(&path, config(&provider, "open", "")).unwrap();
    let out = ipcheck_tests::service::service_command()
        .arg("--config")
        .arg(&path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", ipcheck_tests::free_port()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("TEST_KEY") && text.contains("api_key_env"),
        "{text}"
    );
}
