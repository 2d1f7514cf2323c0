//! ipcheck-auth end to end: running it. Config errors, the shipped example, the embedded default,
//! logs that never carry the API key, graceful shutdown, health, readiness and metrics.

use std::time::Duration;

use ipcheck_tests::service::{service_command, Service};
use ipcheck_tests::{free_port, wait_for_port, workspace_root, Provider, Reply};

const SECRET: &str = "sk-live-SECRET-7c1f0a9e3b5d-never-log-me";

fn check_config(text: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let mut cmd = service_command();
    cmd.arg("check-config").arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr, path.display().to_string())
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    for (text, key) in [
        (
            "[policies.strict]\nblock = [\"tor\", \"spam\"]\n",
            "policies.strict.block[1]",
        ),
        (
            "[policies.strict]\ndeny = [\"300.1.1.1/8\"]\n",
            "policies.strict.deny[0]",
        ),
        ("[cache]\nlocal_ttl = \"soon\"\n", "cache.local_ttl"),
        ("[cache]\nlocal_tll = \"1s\"\n", "local_tll"),
        (
            "[redis]\nurl = \"redis://127.0.0.1/\"\ntimeout = 0\n",
            "redis.timeout",
        ),
        ("[provider]\npreset = \"whois\"\n", "provider.preset"),
        ("[client_ip]\nheader = \"forwarded\"\n", "client_ip.header"),
        ("listen = \"localhost\"\n", "listen"),
    ] {
        let (ok, stderr, file) = check_config(text, &[]);
        assert!(!ok, "{text}");
        assert!(
            stderr.contains(key) && stderr.contains(&file),
            "{key}: {stderr}"
        );
    }
    // An environment override names its variable.
    let (ok, stderr, _) = check_config("", &[("IPCHECK_CACHE_CAPACITY", "many")]);
    assert!(!ok);
    assert!(
        stderr.contains("cache.capacity") && stderr.contains("IPCHECK_CACHE_CAPACITY"),
        "{stderr}"
    );
    // The service refuses to start with the same message.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[policies.default]\non_error = \"sometimes\"\n").unwrap();
    let out = service_command()
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("policies.default.on_error"), "{stderr}");
}

#[test]
fn shipped_example_config_passes_check_config() {
    let example = workspace_root().join("auth-service/ipcheck.example.toml");
    let out = service_command()
        .arg("check-config")
        .arg(&example)
        .env("IPASIS_API_KEY", "x")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok") && stdout.contains("strict"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "no warnings expected: {stderr}");
}

#[test]
fn embedded_default_runs_lru_only_and_says_so() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = service_command()
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(10)));
    let r =
        ipcheck_tests::service::http_request(port, "GET", "/auth", &[("X-Real-IP", "192.0.2.1")])
            .unwrap();
    assert_eq!(r.decision(), (204, "allow", "", "none"));
    let ready = ipcheck_tests::service::http_request(port, "GET", "/readyz", &[]).unwrap();
    assert_eq!(ready.status, 200);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let first = text.lines().next().unwrap_or_default();
    assert!(first.contains("tiers: local"), "{first}");
    assert!(
        !first.contains("redis") && !first.contains("provider"),
        "{first}"
    );
}

#[test]
fn the_api_key_is_never_logged() {
    let provider = Provider::start();
    provider.respond("192.0.2.1", Reply::flags(&["vpn"]));
    provider.respond("192.0.2.2", Reply::Status(500));
    provider.respond("192.0.2.3", Reply::Garbage);
    provider.respond("192.0.2.4", Reply::Status(429));
    provider.respond("192.0.2.6", Reply::Body("{}".into()));
    let dead = free_port();
    for (name, provider_section) in [
        (
            "header",
            format!(
                "preset = \"ipasis\"\nurl = \"{}\"\napi_key_env = \"SECRET_KEY\"\ntimeout = \"300ms\"",
                provider.url_template()
            ),
        ),
        (
            "key in URL",
            format!(
                "preset = \"ipqs\"\nurl = \"http://127.0.0.1:{}/api/{{key}}/{{ip}}\"\napi_key_env = \"SECRET_KEY\"\ntimeout = \"300ms\"\nfields.vpn = [\"privacy.vpn\"]",
                provider.port()
            ),
        ),
        (
            "dead provider",
            format!(
                "preset = \"ipqs\"\nurl = \"http://127.0.0.1:{dead}/api/{{key}}/{{ip}}\"\napi_key_env = \"SECRET_KEY\"\ntimeout = \"300ms\""
            ),
        ),
    ] {
        let config = format!(
            "[log]\nlevel = \"trace\"\n[cache]\nnegative_ttl = \"1s\"\n[provider]\n{provider_section}\n"
        );
        let mut svc = Service::builder(&config).env("SECRET_KEY", SECRET).start();
        provider.set_delay(Duration::ZERO);
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.6"] {
            svc.auth(ip);
        }
        provider.set_delay(Duration::from_secs(1));
        svc.auth("192.0.2.5");
        provider.set_delay(Duration::ZERO);
        let readyz = svc.get("/readyz", &[]).body;
        let metrics = svc.metrics();
        svc.terminate(Duration::from_secs(5));
        let log = svc.log();
        assert!(!log.is_empty());
        for (what, text) in [("log", &log), ("readyz", &readyz), ("metrics", &metrics)] {
            assert!(!text.contains(SECRET), "{name}: the key leaked into the {what}:\n{text}");
            assert!(!text.contains("7c1f0a9e3b5d"), "{name}: part of the key leaked into the {what}");
        }
    }
    // The key was really in play: the provider received it.
    let seen = provider.seen();
    assert!(seen
        .iter()
        .any(|s| s.headers.get("x-api-key").map(String::as_str) == Some(SECRET)));
    assert!(seen.iter().any(|s| s.target.contains(SECRET)));
    // check-config does not print it either.
    let (_, stderr, _) = check_config(
        "[provider]\npreset = \"ipasis\"\napi_key_env = \"SECRET_KEY\"\n",
        &[("SECRET_KEY", SECRET)],
    );
    assert!(!stderr.contains(SECRET));
}

#[test]
fn json_logs() {
    let svc = Service::start("[log]\nformat = \"json\"\n");
    svc.auth("192.0.2.1");
    let log = svc.log();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('{')
            && first.contains("\"level\":\"INFO\"")
            && first.contains("tiers: local"),
        "{first}"
    );
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let provider = Provider::start();
    provider.respond("192.0.2.9", Reply::flags(&["tor"]));
    provider.set_delay(Duration::from_millis(800));
    let mut svc = Service::start(&format!(
        "[provider]\npreset = \"ipasis\"\nurl = \"{}\"\napi_key_env = \"\"\ntimeout = \"5s\"\n[policies.default]\nblock = [\"tor\"]\n",
        provider.url_template()
    ));
    let port = svc.port();
    let in_flight = std::thread::spawn(move || {
        ipcheck_tests::service::http_request(port, "GET", "/auth", &[("X-Real-IP", "192.0.2.9")])
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = svc.terminate(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status}");
    let reply = in_flight
        .join()
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(reply.decision(), (403, "block", "tor", "provider"));
    assert!(svc.log().contains("SIGTERM"), "{}", svc.log());
}

#[test]
fn health_readiness_and_metrics() {
    let svc = Service::start("");
    let h = svc.get("/healthz", &[]);
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = svc.get("/readyz", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("redis: not configured"), "{}", r.body);
    svc.auth("192.0.2.1");
    svc.auth("192.0.2.1");
    // /metrics has a listener of its own: not on the /auth port, and no /auth there.
    assert_eq!(svc.get("/metrics", &[]).status, 404);
    let on_metrics_port = |path: &str| {
        ipcheck_tests::service::http_request(
            svc.metrics_port(),
            "GET",
            path,
            &[("X-Real-IP", "192.0.2.1")],
        )
        .unwrap()
    };
    assert_eq!(on_metrics_port("/auth").status, 404);
    assert!(on_metrics_port("/auth")
        .header("x-ipcheck-verdict")
        .is_none());
    let m = on_metrics_port("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    for line in [
        "# TYPE ipcheck_decisions_total counter",
        "ipcheck_decisions_total{verdict=\"allow\"} 2",
        "ipcheck_cache_total{tier=\"none\"} 1",
        "ipcheck_cache_total{tier=\"local\"} 1",
        "# TYPE ipcheck_provider_duration_seconds histogram",
        "ipcheck_coalesced_waits_total 0",
    ] {
        assert!(m.body.contains(line), "{line} in\n{}", m.body);
    }
}

#[test]
fn environment_overrides_the_file() {
    let provider = Provider::start();
    provider.respond("192.0.2.77", Reply::flags(&["relay"]));
    let config = "[provider]\npreset = \"ipasis\"\nurl = \"http://127.0.0.1:1/never/{ip}\"\napi_key_env = \"\"\n[policies.edge]\nblock = [\"tor\"]\n";
    let svc = Service::builder(config)
        .env("IPCHECK_PROVIDER_URL", &provider.url_template())
        .env("IPCHECK_POLICIES_EDGE_BLOCK", "relay,tor")
        .env("IPCHECK_POLICIES_EDGE_ON_ERROR", "closed")
        .start();
    assert_eq!(
        svc.auth_policy("192.0.2.77", "edge").decision(),
        (403, "block", "relay", "provider")
    );
    assert_eq!(
        svc.get("/auth", &[("X-IPCheck-Policy", "edge")]).decision(),
        (403, "block", "no-client-ip", "none")
    );
}

#[test]
fn listens_on_a_unix_socket() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("auth.sock");
    // A socket file left by an earlier run (no one listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = service_command()
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        match ipcheck_tests::client::request_unix(
            &socket,
            "GET",
            "/auth",
            &[("X-Real-IP", "192.0.2.1")],
        ) {
            Ok(reply) => break reply,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!(
                "no answer on {}: {e}\n{}",
                socket.display(),
                std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
            ),
        }
    };
    assert_eq!(reply.decision(), (204, "allow", "", "none"));
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(
        text.contains(&format!("listening on unix:{}", socket.display())),
        "{text}"
    );
}
