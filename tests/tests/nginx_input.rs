//! Through nginx with the shipped configurations: mistakes in what reaches the service (a
//! mistyped policy name, a provider reply that lost a field) must fail closed on a fail-closed
//! location and say so, never let a client in quietly.
//!
//! The X-Forwarded-For byte walk (issue #9, item 1) is tested at the service level
//! (`service_client_ip.rs`): the shipped example sends the service `X-Real-IP` from
//! `$remote_addr` and clears `X-Forwarded-For`, so no client byte reaches that code through it.

use ipcheck_tests::{Reply, Stack};

/// The shipped location of `/login` and `/signup`, as it reads in `nginx/example.conf`.
const STRICT_LOCATION: &str =
    "location ~* ^/(?:login|signup)(?![a-z0-9_-]) {\n        set $ipcheck_policy strict;";

fn denied_body(reason: &str) -> String {
    format!("{{\"error\":\"access denied\",\"reason\":\"{reason}\"}}\n")
}

#[test]
fn a_mistyped_policy_name_fails_closed_and_says_so() {
    let stack = Stack::start_with("60s", |n| {
        n.edit(
            "example.conf",
            STRICT_LOCATION,
            &STRICT_LOCATION.replace("strict;", "strcit;"),
        )
    });
    stack.provider.respond("127.0.0.31", Reply::flags(&["tor"]));
    for _ in 0..3 {
        let r = stack.get_as("127.0.0.31", "/login", &[]);
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(r.body, denied_body("policy-error"));
    }
    assert!(stack.backend.last_request_for("/login").is_none());
    // The correctly spelled lenient location is unaffected: it challenges Tor.
    let r = stack.get_as("127.0.0.31", "/account", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    // One ERROR line naming the policy, however many requests.
    let log = stack.service.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("strcit")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("ERROR"), "{}", lines[0]);
    // Visible without reading the log: /readyz names it (and stays ready).
    let ready = stack.service.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready
            .body
            .contains("policies: unknown policy names requested: strcit (3)"),
        "{}",
        ready.body
    );
}

#[test]
fn a_reply_that_lost_a_decisive_field_fails_closed() {
    let stack = Stack::start();
    // privacy.vpn is gone; the other fields are still there, so the old mapping read "not a VPN".
    let lost_vpn = r#"{"ip":"x","privacy":{"crawler":false,"tor":false,"proxy":false,"relay":false,"hosting":false}}"#;
    stack
        .provider
        .respond("127.0.0.32", Reply::Body(lost_vpn.to_owned()));
    let r = stack.get_as("127.0.0.32", "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, denied_body("provider-error"));
    assert_eq!(
        stack.provider.calls_for("127.0.0.32"),
        1,
        "{:?}",
        stack.provider.seen()
    );
    assert!(stack.backend.last_request_for("/login").is_none());
}
