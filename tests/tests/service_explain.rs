//! `/explain` on the admin listener: what each tier holds, the facts, the rule and the verdict,
//! against a real redis-server with the module and the stand-in provider. (That it agrees with
//! `/auth` is checked on every case of service_policy.rs.)

use std::collections::BTreeMap;
use std::fs;

use ipcheck_tests::service::service_command;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

const KEY_VAR: &str = "TEST_PROVIDER_KEY";

fn start(provider: &Provider, redis: &RedisServer) -> Service {
    let config = format!(
        r#"
{provider}

[redis]
url = "{redis}"
timeout = "500ms"

[policies.default]
block = ["tor"]
challenge = ["vpn"]
on_error = "open"

[policies.strict]
block = ["tor", "vpn", "hosting"]
deny = ["198.51.100.66"]
on_error = "closed"
"#,
        provider = provider.config_section(),
        redis = redis.url()
    );
    Service::builder(&config).env(KEY_VAR, "test-key").start()
}

/// The explanation's `name: value` lines.
fn explain(svc: &Service, ip: &str, policy: Option<&str>) -> BTreeMap<String, String> {
    let r = svc.explain(ip, policy);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    r.body
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn ipcheck(redis: &RedisServer, args: &[&str]) {
    let mut con = redis.client();
    let _: () = redis::cmd("IPCHECK").arg(args).query(&mut con).unwrap();
}

#[test]
fn every_tier_the_facts_the_rule_and_the_verdict() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let svc = start(&provider, &redis);

    // Nobody knows it yet: the provider is asked, as /auth would.
    provider.respond("192.0.2.30", Reply::flags(&["vpn", "hosting"]));
    let e = explain(&svc, "192.0.2.30", Some("strict"));
    assert_eq!(e["address"], "192.0.2.30");
    assert_eq!(e["policy"], "strict");
    assert_eq!(e["local"], "miss");
    assert_eq!(e["redis"], "miss");
    assert_eq!(e["provider"], "asked: vpn,hosting");
    assert_eq!(e["facts"], "vpn,hosting");
    assert_eq!(e["rule"], "a category the policy blocks");
    assert_eq!(
        (e["verdict"].as_str(), e["reason"].as_str()),
        ("block", "vpn,hosting")
    );
    assert_eq!(e["cache"], "provider");
    // The same facts under another policy, from the local tier now.
    let e = explain(&svc, "192.0.2.30", None);
    assert_eq!(e["local"], "facts vpn,hosting");
    assert_eq!(e["provider"], "not asked (the local tier knew)");
    assert_eq!(e["rule"], "a category the policy challenges");
    assert_eq!(
        (e["verdict"].as_str(), e["cache"].as_str()),
        ("challenge", "local")
    );
    assert_eq!(provider.calls_for("192.0.2.30"), 1);

    // An operator's pin in Redis, final for every policy.
    ipcheck(
        &redis,
        &[
            "SET",
            "192.0.2.31",
            "allow",
            "REASON",
            "partner",
            "SOURCE",
            "manual",
            "EX",
            "600",
        ],
    );
    let e = explain(&svc, "192.0.2.31", Some("strict"));
    assert!(
        e["redis"].starts_with("pin: allow partner (source manual), ends in "),
        "{e:?}"
    );
    assert_eq!(
        e["rule"],
        "an operator's pin in Redis, final for every policy"
    );
    assert_eq!(
        (
            e["verdict"].as_str(),
            e["reason"].as_str(),
            e["cache"].as_str()
        ),
        ("allow", "partner", "redis")
    );

    // A pin without a duration.
    ipcheck(
        &redis,
        &["SET", "192.0.2.34", "block", "SOURCE", "manual", "PERSIST"],
    );
    let e = explain(&svc, "192.0.2.34", None);
    assert_eq!(e["redis"], "pin: block - (source manual), never ends");
    assert_eq!((e["verdict"].as_str(), e["reason"].as_str()), ("block", ""));

    // Fresh facts written by another instance.
    ipcheck(
        &redis,
        &[
            "SET",
            "192.0.2.32",
            "block",
            "REASON",
            "tor",
            "EX",
            "3600",
            "STALE",
            "600",
        ],
    );
    let e = explain(&svc, "192.0.2.32", None);
    assert!(
        e["redis"].starts_with("fresh: block tor (source api), fresh for "),
        "{e:?}"
    );
    assert_eq!(e["provider"], "not asked (the redis tier knew)");

    // The deny list decides before any tier is asked.
    let e = explain(&svc, "198.51.100.66", Some("strict"));
    assert_eq!(e["rule"], "the policy's deny list");
    assert_eq!(e["provider"], "not asked (a list decided)");
    assert_eq!(
        (e["verdict"].as_str(), e["reason"].as_str()),
        ("block", "denylist")
    );

    // No facts at all: on_error.
    provider.respond("192.0.2.33", Reply::Status(500));
    let e = explain(&svc, "192.0.2.33", Some("strict"));
    assert_eq!(e["provider"], "asked: no answer (see the log and /readyz)");
    assert_eq!(e["rule"], "on_error: no facts to go on");
    assert_eq!(
        (e["verdict"].as_str(), e["reason"].as_str()),
        ("block", "provider-error")
    );

    // Explaining is not deciding: no decision was counted.
    assert!(
        !svc.metrics()
            .lines()
            .any(|l| (l.starts_with("ipcheck_decisions_total{")
                || l.starts_with("ipcheck_decision_reasons_total{"))
                && !l.ends_with(" 0")),
        "{}",
        svc.metrics()
    );
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let svc = start(&provider, &redis);
    let r = svc.explain("not-an-address", None);
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("'not-an-address' is not an IPv4 or IPv6 address"),
        "{}",
        r.body
    );
    let r = svc.explain("192.0.2.1", Some("strcit"));
    assert_eq!(r.status, 404);
    assert!(
        r.body
            .contains("no policy named 'strcit'; configured: default, strict"),
        "{}",
        r.body
    );
    assert_eq!(provider.calls(), 0);
    // Not on the /auth listener.
    assert_eq!(svc.get("/explain?address=192.0.2.1", &[]).status, 404);
}

#[test]
fn the_admin_listener_is_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipcheck.toml");
    fs::write(&file, "[admin]\nlisten = \"0.0.0.0:9220\"\n").unwrap();
    // The harness turns the listener off through the environment, which would win.
    let out = service_command()
        .env_remove("IPCHECK_ADMIN_LISTEN")
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `admin.listen`")
            && err.contains("'0.0.0.0:9220' is not a loopback address"),
        "{err}"
    );
    let out = service_command()
        .arg("--admin-listen")
        .arg("192.0.2.1:9220")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--admin-listen: '192.0.2.1:9220' is not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_explain_command_asks_the_running_service() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let svc = start(&provider, &redis);
    provider.respond("192.0.2.40", Reply::flags(&["tor"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ipcheck.toml");
    fs::write(
        &file,
        format!("[admin]\nlisten = \"127.0.0.1:{}\"\n", svc.admin_port()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        service_command()
            .env_remove("IPCHECK_ADMIN_LISTEN")
            .arg("--config")
            .arg(&file)
            .arg("explain")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["192.0.2.40", "--policy", "strict"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\nverdict: block\nreason: tor\n"), "{text}");
    // The same instance's /auth now answers from its local tier, which explain filled.
    assert_eq!(
        svc.auth_policy("192.0.2.40", "strict").decision(),
        (403, "block", "tor", "local")
    );
    let out = run(&["192.0.2.40", "--policy", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no policy named 'nope'"));
    // Nothing listening there: said, exit 1.
    drop(svc);
    let out = run(&["192.0.2.40"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot ask the service's admin listener"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
