//! ipcheck-auth end to end: policy precedence and every response header, against a real
//! redis-server with the module and the stand-in provider.

use ipcheck_tests::client::HttpReply;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

const KEY_VAR: &str = "TEST_PROVIDER_KEY";

fn config(provider: &Provider, redis: Option<&RedisServer>) -> String {
    let redis = redis
        .map(|r| format!("[redis]\nurl = \"{}\"\ntimeout = \"200ms\"\n", r.url()))
        .unwrap_or_default();
    format!(
        r#"
[provider]
preset = "ipasis"
url = "{url}"
api_key_env = "{KEY_VAR}"
timeout = "2s"

{redis}

[policies.default]
block = ["tor"]
challenge = ["vpn", "proxy"]
on_error = "open"

[policies.strict]
block = ["tor", "vpn", "proxy", "hosting", "relay"]
allow_crawlers = false
allow = ["198.51.100.0/24"]
deny = ["198.51.100.66", "2001:db8:bad::/48"]
on_error = "closed"
"#,
        url = provider.url_template()
    )
}

/// `/auth` for `ip` under `policy` (None: no policy header), and `/explain` for the same asked
/// right after: they must agree on the verdict and the reason.
fn auth(svc: &Service, ip: &str, policy: Option<&str>) -> HttpReply {
    let reply = match policy {
        Some(p) => svc.auth_policy(ip, p),
        None => svc.auth(ip),
    };
    let explained = svc.explain(ip, policy);
    assert_eq!(explained.status, 200, "{}", explained.body);
    for (line, header) in [
        ("verdict", "x-ipcheck-verdict"),
        ("reason", "x-ipcheck-reason"),
    ] {
        let said = explained
            .body
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(": "));
        assert_eq!(
            said,
            reply.header(header),
            "/explain disagrees with /auth on {line}:\n{}",
            explained.body
        );
    }
    reply
}

fn start(provider: &Provider, redis: Option<&RedisServer>) -> Service {
    Service::builder(&config(provider, redis))
        .env(KEY_VAR, "test-key")
        .start()
}

#[test]
fn precedence_deny_allow_crawler_block_challenge_allow() {
    let provider = Provider::start();
    let svc = start(&provider, None);

    // 1. Deny list beats the allow list it sits inside, without asking anyone.
    provider.respond("198.51.100.66", Reply::clean());
    assert_eq!(
        auth(&svc, "198.51.100.66", Some("strict")).decision(),
        (403, "block", "denylist", "none")
    );
    assert_eq!(
        auth(&svc, "2001:db8:bad:1::5", Some("strict")).decision(),
        (403, "block", "denylist", "none")
    );
    // 2. Allow list beats a Tor flag.
    provider.respond("198.51.100.7", Reply::flags(&["tor"]));
    assert_eq!(
        auth(&svc, "198.51.100.7", Some("strict")).decision(),
        (204, "allow", "allowlist", "none")
    );
    assert_eq!(provider.calls(), 0, "lists decide without a lookup");

    // 3. A crawler is allowed whatever else it is, where the policy allows crawlers.
    provider.respond("192.0.2.10", Reply::flags(&["tor", "crawler"]));
    assert_eq!(
        auth(&svc, "192.0.2.10", None).decision(),
        (204, "allow", "crawler", "provider")
    );
    // ...and not where it does not: the same cached facts, another policy.
    assert_eq!(
        auth(&svc, "192.0.2.10", Some("strict")).decision(),
        (403, "block", "tor", "local")
    );

    // 4. Block categories beat challenge categories; reasons are the matching ones.
    provider.respond("192.0.2.11", Reply::flags(&["vpn", "tor", "hosting"]));
    assert_eq!(
        auth(&svc, "192.0.2.11", None).decision(),
        (403, "block", "tor", "provider")
    );

    // 5. Challenge.
    provider.respond("192.0.2.12", Reply::flags(&["vpn", "proxy", "hosting"]));
    assert_eq!(
        auth(&svc, "192.0.2.12", None).decision(),
        (401, "challenge", "vpn,proxy", "provider")
    );
    assert_eq!(
        auth(&svc, "192.0.2.12", Some("strict")).decision(),
        (403, "block", "vpn,proxy,hosting", "local")
    );

    // 6. Allow: nothing the policy cares about.
    provider.respond("192.0.2.13", Reply::flags(&["hosting"]));
    assert_eq!(
        auth(&svc, "192.0.2.13", None).decision(),
        (204, "allow", "", "provider")
    );
    assert_eq!(
        auth(&svc, "192.0.2.13", None).decision(),
        (204, "allow", "", "local")
    );
    assert_eq!(provider.calls_for("192.0.2.13"), 1);
}

#[test]
fn every_header_on_every_decision() {
    let provider = Provider::start();
    let svc = start(&provider, None);
    for method in ["GET", "HEAD", "POST", "DELETE"] {
        let r = ipcheck_tests::service::http_request(
            svc.port(),
            method,
            "/auth",
            &[("X-Real-IP", "[2001:db8:1:2::99]:443")],
        )
        .unwrap();
        assert_eq!(r.status, 204, "{method}");
        assert_eq!(r.header("x-ipcheck-verdict"), Some("allow"));
        assert_eq!(r.header("x-ipcheck-reason"), Some(""));
        assert!(matches!(
            r.header("x-ipcheck-cache"),
            Some("provider" | "local")
        ));
        assert_eq!(r.header("x-ipcheck-key"), Some("2001:db8:1:2::/64"));
        assert_eq!(r.body, "", "the body is empty");
    }
    // The whole /64 shares one entry: another address in it is a local hit.
    let r = auth(&svc, "2001:db8:1:2:ffff::1", None);
    assert_eq!(r.decision(), (204, "allow", "", "local"));
    assert_eq!(provider.calls(), 1);

    // No client address: the failure mode, reason no-client-ip, empty key.
    let r = svc.get("/auth", &[]);
    assert_eq!(r.decision(), (204, "allow", "no-client-ip", "none"));
    assert_eq!(r.header("x-ipcheck-key"), Some(""));
    let r = svc.get(
        "/auth",
        &[
            ("X-Real-IP", "not-an-address"),
            ("X-IPCheck-Policy", "strict"),
        ],
    );
    assert_eq!(r.decision(), (403, "block", "no-client-ip", "none"));
    let r = svc.get("/auth", &[("X-Real-IP", "010.0.0.1")]);
    assert_eq!(r.decision(), (204, "allow", "no-client-ip", "none"));

    // An unknown policy is a config error: blocked (unknown_policy defaults to closed), logged.
    let r = svc.auth_policy("192.0.2.50", "no-such-policy");
    assert_eq!(r.decision(), (403, "block", "policy-error", "none"));
    assert_eq!(r.header("x-ipcheck-key"), Some("192.0.2.50"));
    assert!(svc.log().contains("no-such-policy"), "{}", svc.log());
    // An empty policy header (nginx's `set $ipcheck_policy ""`) is the default policy.
    provider.respond("192.0.2.51", Reply::flags(&["vpn"]));
    let r = svc.get(
        "/auth",
        &[("X-Real-IP", "192.0.2.51"), ("X-IPCheck-Policy", "")],
    );
    assert_eq!(r.decision(), (401, "challenge", "vpn", "provider"));
}

#[test]
fn stored_facts_and_manual_pins_across_policies() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let mut con = redis.client();
    let svc = start(&provider, Some(&redis));

    // Facts written by anyone are judged by the requested policy.
    let _: () = redis::cmd("IPCHECK")
        .arg(&[
            "SET",
            "192.0.2.20",
            "allow",
            "REASON",
            "vpn",
            "SOURCE",
            "api",
        ])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        auth(&svc, "192.0.2.20", None).decision(),
        (401, "challenge", "vpn", "redis")
    );
    assert_eq!(
        auth(&svc, "192.0.2.20", Some("strict")).decision(),
        (403, "block", "vpn", "local")
    );

    // A manual pin's verdict is final for every policy, with its own reasons.
    let _: () = redis::cmd("IPCHECK")
        .arg(&[
            "SET",
            "192.0.2.21",
            "allow",
            "REASON",
            "tor,partner",
            "SOURCE",
            "manual",
        ])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        auth(&svc, "192.0.2.21", None).decision(),
        (204, "allow", "tor,partner", "redis")
    );
    assert_eq!(
        auth(&svc, "192.0.2.21", Some("strict")).decision(),
        (204, "allow", "tor,partner", "local")
    );
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", "192.0.2.22", "block", "SOURCE", "manual"])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        auth(&svc, "192.0.2.22", None).decision(),
        (403, "block", "", "redis")
    );
    assert_eq!(provider.calls(), 0, "Redis answered every lookup");
}

#[test]
fn unknown_policy_fails_closed_counted_logged_once_and_shown_in_readyz() {
    let provider = Provider::start();
    provider.respond_default(Reply::flags(&["tor"]));
    let svc = start(&provider, None);
    // A typo of a fail-closed policy's name must not let a Tor exit in.
    for _ in 0..3 {
        let r = svc.auth_policy("192.0.2.60", "strcit");
        assert_eq!(r.decision(), (403, "block", "policy-error", "none"));
        assert_eq!(r.header("x-ipcheck-key"), Some("192.0.2.60"));
    }
    // Decided without a lookup.
    assert_eq!(provider.calls(), 0);
    let log = svc.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("strcit")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    let metrics = svc.metrics();
    assert!(
        metrics.contains("ipcheck_unknown_policy_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "ipcheck_decision_reasons_total{verdict=\"block\",reason=\"policy-error\"} 3"
        ),
        "{metrics}"
    );
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.starts_with("ready, degraded: policies\n"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("policies: unknown policy names requested: strcit (3)"),
        "{}",
        ready.body
    );
}

#[test]
fn unknown_policy_open_and_default_only_when_chosen() {
    let provider = Provider::start();
    provider.respond_default(Reply::flags(&["tor"]));
    let svc = Service::builder(&format!(
        "unknown_policy = \"open\"\n{}",
        config(&provider, None)
    ))
    .env(KEY_VAR, "test-key")
    .start();
    assert_eq!(
        svc.auth_policy("192.0.2.61", "strcit").decision(),
        (204, "allow", "policy-error", "none")
    );
    // The environment overrides the file: the default policy decides (it blocks tor).
    let svc = Service::builder(&format!(
        "unknown_policy = \"open\"\n{}",
        config(&provider, None)
    ))
    .env(KEY_VAR, "test-key")
    .env("IPCHECK_UNKNOWN_POLICY", "default")
    .start();
    assert_eq!(
        svc.auth_policy("192.0.2.62", "strcit").decision(),
        (403, "block", "tor", "provider")
    );
    assert!(
        svc.log().contains("unknown_policy = \"default\""),
        "{}",
        svc.log()
    );
}
