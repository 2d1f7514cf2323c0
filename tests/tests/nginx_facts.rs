//! Country, AS number and score through nginx, as a user sees them: the shipped
//! `nginx/example.conf` and `auth-service/ipcheck.example.toml`, with policy keys on the new
//! facts set through the environment (as an operator would override the shipped file), and the
//! stand-in provider answering with a country, an AS number and a score.
//!
//! The first request for an address is decided by the provider's answer, later ones by the
//! local tier's copy of it or by Redis's entry, which carries the attributes too (the
//! invalidation link is on, as shipped: the write-back re-read from Redis must keep them).

use ipcheck_tests::stack::{example_service_config, KEY_VAR, SECRET};
use ipcheck_tests::{
    Backend, NginxSetup, Provider, RedisServer, Reply, ReplyAttributes, Service, Stack, SCORE_PATH,
};

/// The shipped stack with rules on the new facts: `strict` (the login and signup locations)
/// blocks AS64500, country KP and scores from 90, and challenges scores from 70; `lenient`
/// (everything else under /) lets in only the US and Germany.
fn stack() -> Stack {
    stack_with(|n| n)
}

fn stack_with(nginx: impl FnOnce(NginxSetup) -> NginxSetup) -> Stack {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let backend = Backend::start();
    let service = Service::builder(&example_service_config(&redis, &provider, "60s"))
        .env(KEY_VAR, SECRET)
        .env("IPCHECK_PROVIDER_FIELDS_SCORE", SCORE_PATH)
        .env("IPCHECK_POLICIES_STRICT_BLOCK_ASNS", "AS64500")
        .env("IPCHECK_POLICIES_STRICT_BLOCK_COUNTRIES", "KP")
        .env("IPCHECK_POLICIES_STRICT_BLOCK_SCORE", "90")
        .env("IPCHECK_POLICIES_STRICT_CHALLENGE_SCORE", "70")
        .env("IPCHECK_POLICIES_LENIENT_ALLOW_COUNTRIES", "US,DE")
        .start();
    let nginx = nginx(NginxSetup::new(service.port(), backend.port())).start();
    Stack {
        nginx,
        service,
        backend,
        provider,
        redis,
    }
}

fn answer(country: Option<&'static str>, asn: Option<u32>, score: Option<u8>) -> Reply {
    Reply::clean().with(ReplyAttributes {
        country,
        asn,
        score,
    })
}

fn denied_for(stack: &Stack, client: &str, path: &str, reason: &str) {
    let r = stack.get_as(client, path, &[]);
    assert_eq!(r.status, 403, "{client} {path}: {r:?}");
    assert_eq!(
        r.body,
        format!("{{\"error\":\"access denied\",\"reason\":\"{reason}\"}}\n"),
        "{client} {path}"
    );
}

#[test]
fn asn_country_and_score_rules_decide() {
    let stack = stack();
    let p = &stack.provider;
    p.respond("127.0.0.21", answer(Some("US"), Some(64500), Some(5)));
    p.respond("127.0.0.22", answer(Some("US"), Some(3320), Some(95)));
    p.respond("127.0.0.23", answer(Some("US"), Some(3320), Some(80)));
    p.respond("127.0.0.24", answer(Some("KP"), Some(3320), Some(5)));
    p.respond("127.0.0.25", answer(Some("FR"), Some(3320), Some(5)));
    p.respond("127.0.0.26", answer(None, Some(3320), Some(5)));
    p.respond("127.0.0.27", answer(Some("DE"), Some(3320), Some(5)));

    // The network blocked by AS number, whatever its country and score.
    denied_for(&stack, "127.0.0.21", "/login", "asn");
    // A score at or above block_score is blocked ...
    denied_for(&stack, "127.0.0.22", "/signup", "score");
    // ... one between challenge_score and block_score is challenged.
    let r = stack.get_as("127.0.0.23", "/login", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    // A blocked country.
    denied_for(&stack, "127.0.0.24", "/login", "country");
    assert!(stack.backend.last_request_for("/login").is_none());
    assert!(stack.backend.last_request_for("/signup").is_none());

    // allow_countries: any other country is blocked, and so is an unknown one ...
    denied_for(&stack, "127.0.0.25", "/", "country");
    denied_for(&stack, "127.0.0.26", "/", "country");
    // ... while a listed one passes, and the same answer passes the strict locations.
    assert_eq!(stack.get_as("127.0.0.27", "/", &[]).status, 200);
    assert_eq!(stack.get_as("127.0.0.25", "/login", &[]).status, 200);

    // The challenge's reason, as nginx logged it.
    let log = stack.nginx.access_log();
    assert!(
        log.lines().any(|l| l.contains("127.0.0.23 \"GET /login")
            && l.contains("verdict=challenge reason=score")),
        "{log}"
    );
    // Again from the local tier, which kept the facts: the same decisions, no second call.
    denied_for(&stack, "127.0.0.21", "/login", "asn");
    denied_for(&stack, "127.0.0.25", "/", "country");
    assert_eq!(p.calls_for("127.0.0.21"), 1);
    assert_eq!(p.calls_for("127.0.0.25"), 1);

    // The answer without a country is counted: lenient decides on it.
    let metrics = stack.service.metrics();
    assert!(
        metrics.contains("ipcheck_provider_attribute_missing_total{attribute=\"country\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_facts_reach_the_backend_and_client_copies_do_not() {
    let stack = stack();
    let p = &stack.provider;
    p.respond("127.0.0.31", answer(Some("DE"), Some(3320), Some(12)));
    let planted = [
        ("X-IPCheck-Country", "KP"),
        ("X-IPCheck-ASN", "64500"),
        ("X-IPCheck-Score", "99"),
    ];
    for (path, cache) in [("/account", "provider"), ("/account?again", "local")] {
        let r = stack.get_as("127.0.0.31", path, &planted);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let seen = stack
            .backend
            .last_request_for(path)
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-cache"), Some(cache), "{path}");
        // Exactly the service's values: a second (client) copy would be joined in.
        assert_eq!(seen.header("x-ipcheck-country"), Some("DE"), "{path}");
        assert_eq!(seen.header("x-ipcheck-asn"), Some("3320"), "{path}");
        assert_eq!(seen.header("x-ipcheck-score"), Some("12"), "{path}");
    }

    // Nothing known, nothing sent: the client's copies are dropped, not passed on.
    p.respond("127.0.0.32", Reply::clean());
    let r = stack.get_as("127.0.0.32", "/login", &planted);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/login")
        .expect("backend reached");
    for name in ["x-ipcheck-country", "x-ipcheck-asn", "x-ipcheck-score"] {
        assert_eq!(seen.header(name), None, "{name}");
    }

    // The service's own answer, and /explain, say the same.
    let r = stack.service.auth_policy("127.0.0.31", "strict");
    assert_eq!(r.header("x-ipcheck-country"), Some("DE"));
    assert_eq!(r.header("x-ipcheck-asn"), Some("3320"));
    assert_eq!(r.header("x-ipcheck-score"), Some("12"));
    let e = stack.service.explain("127.0.0.32", Some("lenient"));
    assert!(
        e.body.contains("facts: none, country unknown\n")
            && e.body.contains("rule: the country the policy blocks\n"),
        "{}",
        e.body
    );
    let e = stack.service.explain("127.0.0.31", Some("strict"));
    assert!(
        e.body
            .contains("facts: none, country DE, AS3320, score 12\n"),
        "{}",
        e.body
    );
}

/// How many decisions the service has made: the sum over its tiers.
fn decisions(stack: &Stack) -> u64 {
    stack
        .service
        .metrics()
        .lines()
        .filter(|l| l.starts_with("ipcheck_cache_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn the_lua_fast_path_passes_the_facts_on_from_its_dict() {
    // A minute's lifetime: the repeat below is answered from the dict however slow the machine.
    let stack = stack_with(|n| {
        n.with_fastpath()
            .edit("ipcheck-fastpath-http.conf", "default 1;", "default 60;")
    });
    let p = &stack.provider;
    p.respond("127.0.0.41", answer(Some("DE"), Some(3320), Some(12)));
    let planted = [("X-IPCheck-Country", "KP")];
    let mut asked = 0;
    for (i, path) in ["/account", "/account?again"].into_iter().enumerate() {
        let r = stack.get_as("127.0.0.41", path, &planted);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        if i == 0 {
            asked = decisions(&stack);
        }
        let seen = stack
            .backend
            .last_request_for(path)
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-country"), Some("DE"), "{path}");
        assert_eq!(seen.header("x-ipcheck-asn"), Some("3320"), "{path}");
        assert_eq!(seen.header("x-ipcheck-score"), Some("12"), "{path}");
    }
    // The repeat never reached the service: the dict's answer carried the facts.
    assert_eq!(decisions(&stack), asked);
    assert_eq!(p.calls_for("127.0.0.41"), 1);
    // A country the lenient policy does not allow is refused from the dict too.
    p.respond("127.0.0.42", answer(Some("FR"), None, None));
    denied_for(&stack, "127.0.0.42", "/account", "country");
    denied_for(&stack, "127.0.0.42", "/account?again", "country");
    assert_eq!(p.calls_for("127.0.0.42"), 1);
}
