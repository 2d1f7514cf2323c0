//! Stale answers through nginx, with the shipped configs: when the provider gives no answer, an
//! address whose Redis entry is past its fresh time is decided from that entry (`X-IPCheck-Cache:
//! stale`) instead of `on_error`; while the provider answers, a stale entry is never used.

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Reply, Stack};

/// Writes a fact fresh for 1 s and stale for 2 days (as the service would have written it two
/// days ago, give or take), then waits until `IPCHECK GET` says it is stale.
fn stale_entry(stack: &Stack, ip: &str, verdict: &str, reason: &str) {
    let mut con = stack.redis.client();
    let mut args = vec![ip, verdict, "EX", "1", "STALE", "172800", "SOURCE", "api"];
    if !reason.is_empty() {
        args.extend(["REASON", reason]);
    }
    assert_eq!(ipcheck::set(&mut con, &args).unwrap(), Some("OK".into()));
    ipcheck::wait_for(&mut stack.redis.client(), ip, "stale", |h| !h.fresh);
}

fn cache_total(stack: &Stack, tier: &str) -> u64 {
    let text = stack.service.metrics();
    let needle = format!("ipcheck_cache_total{{tier=\"{tier}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {needle} in {text}"))
}

#[test]
fn provider_down_stale_entries_decide_on_strict_and_lenient() {
    let stack = Stack::start();
    stack.provider.respond_default(Reply::Status(500));
    let tor = "127.0.0.60";
    let clean = "127.0.0.61";
    stale_entry(&stack, tor, "block", "tor");
    stale_entry(&stack, clean, "allow", "");

    // Strict: the stale tor fact blocks, with its own reason rather than provider-error.
    let r = stack.get_as(tor, "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"tor\"}\n");
    // Lenient challenges tor (nginx turns the 401 into its challenge page); from the local tier
    // now, still marked stale.
    let r = stack.get_as(tor, "/", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with("/challenge")),
        "{r:?}"
    );
    assert!(
        stack.provider.calls_for(tor) >= 1,
        "the provider was asked first"
    );

    // A clean stale fact lets the client through on both, and the backend is told it is stale
    // (strict's on_error would have refused it).
    for path in ["/login", "/"] {
        let r = stack.get_as(clean, path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let seen = stack
            .backend
            .last_request_for(path)
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-cache"), Some("stale"), "{path}");
        assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"), "{path}");
    }
    assert_eq!(
        cache_total(&stack, "stale"),
        4,
        "every stale decision is counted"
    );

    // Without any fact, on_error still decides.
    let r = stack.get_as("127.0.0.62", "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("\"reason\":\"provider-error\""), "{r:?}");
    // Serving stale wrote nothing: the entries are still stale in Redis.
    ipcheck::wait_for(&mut stack.redis.client(), tor, "still stale", |h| {
        !h.fresh && h.reason == "tor"
    });
}

#[test]
fn while_the_provider_answers_a_stale_entry_is_not_used() {
    let stack = Stack::start();
    let ip = "127.0.0.63";
    stale_entry(&stack, ip, "block", "tor");
    stack.provider.respond(ip, Reply::clean());
    let r = stack.get_as(ip, "/login", &[]);
    assert_eq!(r.status, 200, "the provider's answer wins: {r:?}");
    assert_eq!(stack.provider.calls_for(ip), 1);
    let seen = stack
        .backend
        .last_request_for("/login")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-cache"), Some("provider"));
    // Written back fresh (for redis.ttl) with the provider's facts.
    let h = ipcheck::wait_for(&mut stack.redis.client(), ip, "fresh again", |h| {
        h.fresh && h.reason.is_empty()
    });
    assert_eq!(h.verdict, "allow");
    assert!(h.fresh_ttl > 80_000, "fresh for redis.ttl: {h:?}");
    assert!(h.ttl > h.fresh_ttl, "then stale for redis.stale_ttl: {h:?}");
    assert_eq!(cache_total(&stack, "stale"), 0);
}
