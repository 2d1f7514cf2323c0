//! The service's per-decision log (`log.decisions`) on its own, without nginx: what a request id
//! the service cannot trust becomes, and the startup warning when the log filter would drop every
//! decision line. Joined with nginx's access log in `nginx_logs.rs`.

use ipcheck_tests::Service;

const CONFIG: &str = "[policies.default]\non_error = \"open\"\n";

fn decision_lines(service: &Service) -> Vec<String> {
    service
        .log()
        .lines()
        .filter(|l| l.contains("ipcheck::decision:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn request_ids_that_could_fake_a_line_are_logged_as_a_dash() {
    let service = Service::builder(CONFIG)
        .env("IPCHECK_LOG_DECISIONS", "all")
        .start();
    let long = "a".repeat(65);
    for id in [&b"a b"[..], b"x\ty", b"caf\xe9", long.as_bytes()] {
        let r = service.get_raw(
            "/auth",
            &[("X-Real-IP", b"192.0.2.1"), ("X-Request-Id", id)],
        );
        assert_eq!(r.status, 204, "{r:?}");
    }
    let r = service.get("/auth", &[("X-Real-IP", "192.0.2.1")]);
    assert_eq!(r.status, 204, "{r:?}");
    let r = service.get(
        "/auth",
        &[("X-Real-IP", "192.0.2.1"), ("X-Request-Id", "req-42")],
    );
    assert_eq!(r.status, 204, "{r:?}");
    // The service logs before it answers, so every line is there.
    let lines = decision_lines(&service);
    assert_eq!(lines.len(), 6, "{}", service.log());
    for line in &lines[..5] {
        assert!(
            line.contains(" request_id=- key=192.0.2.1 policy=default verdict=allow reason= tier="),
            "{line}"
        );
    }
    assert!(lines[5].contains(" request_id=req-42 "), "{}", lines[5]);
    assert!(!service.log().contains(&long));
    assert!(!service.log().contains("a b"));
}

#[test]
fn a_filter_that_drops_decisions_is_named_at_startup() {
    let service = Service::builder(CONFIG)
        .env("IPCHECK_LOG_DECISIONS", "all")
        .env("IPCHECK_LOG_LEVEL", "warn,ipcheck_auth=info")
        .start();
    assert!(
        service
            .log()
            .contains("no decision is logged; add `,ipcheck::decision=info` to log.level"),
        "{}",
        service.log()
    );
    assert_eq!(service.auth("192.0.2.1").status, 204);
    assert!(decision_lines(&service).is_empty());

    // Kept alone under a quiet level, as the docs suggest: logged, and no warning.
    let service = Service::builder(CONFIG)
        .env("IPCHECK_LOG_DECISIONS", "all")
        .env(
            "IPCHECK_LOG_LEVEL",
            "warn,ipcheck_auth=info,ipcheck::decision=info",
        )
        .start();
    assert!(!service.log().contains("no decision is logged"));
    assert_eq!(service.auth("192.0.2.1").status, 204);
    assert_eq!(decision_lines(&service).len(), 1, "{}", service.log());
}
