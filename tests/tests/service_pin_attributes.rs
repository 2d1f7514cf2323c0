//! A pin carries its attributes end to end: `ipcheck-auth pin ... --country --asn --score`
//! stores them with the pin (as core encodes them), `/auth` sends them to the backend as
//! `X-IPCheck-Country`, `-ASN` and `-Score` from Redis and again from the local tier, `/explain`
//! shows them, `pins` lists them; a pin without any sends none; a bad value writes nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use ipcheck_core::{
    encode_entry, Asn, Attributes, Country, Entry, Reasons, Score, Source, Verdict,
};
use ipcheck_tests::service::run_ops as ops;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

const FACT_HEADERS: [&str; 3] = ["x-ipcheck-country", "x-ipcheck-asn", "x-ipcheck-score"];

fn config(provider: &Provider, redis_url: &str) -> String {
    format!(
        r#"
[cache]
local_ttl = "1h"

[redis]
url = "{redis_url}"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
"#,
        provider_section = provider.config_section()
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs an operator command that must succeed; its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let out = ops(config, args);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The raw value Redis holds under `key`.
fn raw(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

/// The pin's value as core encodes it.
fn pin_value(verdict: Verdict, reasons: &str, attributes: Attributes) -> String {
    encode_entry(&Entry {
        verdict,
        reasons: Reasons::parse(reasons).unwrap(),
        source: Source::manual(),
        attributes,
    })
}

#[test]
fn a_pin_carries_country_asn_and_score_to_the_backend() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let redis = RedisServer::start();
    let mut con = redis.client();
    let svc = Service::start(&config(&provider, &redis.url()));
    let cfg = svc.config_path();

    let out = ok(
        &cfg,
        &[
            "pin",
            "192.0.2.70",
            "block",
            "--reason",
            "abuse",
            "--country",
            "us",
            "--asn",
            "AS13335",
            "--score",
            "87",
        ],
    );
    assert!(
        out.starts_with(
            "pinned 192.0.2.70 (key ipcheck:192.0.2.70): block, reason abuse, expires never, country=US asn=13335 score=87\n"
        ),
        "{out}"
    );
    let carried = Attributes {
        country: Country::parse("US").ok(),
        asn: Asn::new(13335),
        score: Score::new(87),
    };
    assert_eq!(
        raw(&mut con, "ipcheck:192.0.2.70"),
        Some(pin_value(Verdict::Block, "abuse", carried))
    );

    // From Redis, then from the local tier: the pin's verdict with its attributes.
    for tier in ["redis", "local"] {
        let r = svc.auth("192.0.2.70");
        assert_eq!(r.decision(), (403, "block", "abuse", tier));
        assert_eq!(r.header("x-ipcheck-country"), Some("US"), "{tier}");
        assert_eq!(r.header("x-ipcheck-asn"), Some("13335"), "{tier}");
        assert_eq!(r.header("x-ipcheck-score"), Some("87"), "{tier}");
    }
    assert_eq!(
        provider.calls_for("192.0.2.70"),
        0,
        "a pin asks no provider"
    );

    // /explain shows them where it shows facts'.
    let e = svc.explain("192.0.2.70", None);
    assert_eq!(e.status, 200, "{}", e.body);
    assert!(
        e.body
            .contains("local: pin block (abuse), with country US, AS13335, score 87\n"),
        "{}",
        e.body
    );
    assert!(
        e.body
            .contains("facts: none (a pin), with country US, AS13335, score 87\n"),
        "{}",
        e.body
    );

    // Re-pinned with other attributes: the local copy is dropped on Redis's invalidation
    // (redis.invalidation, on by default) and the new ones are sent.
    ok(
        &cfg,
        &[
            "pin",
            "192.0.2.70",
            "block",
            "--reason",
            "abuse",
            "--asn",
            "64500",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = svc.auth("192.0.2.70");
        let seen: Vec<Option<&str>> = FACT_HEADERS.iter().map(|h| r.header(h)).collect();
        if seen == [None, Some("64500"), None] {
            assert_eq!(r.decision().1, "block");
            break;
        }
        assert!(Instant::now() < deadline, "still {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A pin without attributes: none of the three headers, from either tier.
    ok(&cfg, &["pin", "192.0.2.71", "allow", "--for", "1h"]);
    let bare = pin_value(Verdict::Allow, "", Attributes::NONE);
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.71").as_ref(), Some(&bare));
    for tier in ["redis", "local"] {
        let r = svc.auth("192.0.2.71");
        assert_eq!(r.decision(), (204, "allow", "", tier));
        for name in FACT_HEADERS {
            assert_eq!(r.header(name), None, "{tier}: {name}");
        }
    }

    // The listing shows what each pin carries.
    let list = ok(&cfg, &["pins"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines,
        ["192.0.2.70 block abuse never asn=64500", lines[1], "2 pins"]
    );
    assert!(
        lines[1].starts_with("192.0.2.71 allow - ") && !lines[1].contains('='),
        "{list}"
    );

    // A bad value is refused naming its flag, before anything is written.
    for (flag, value) in [("--country", "USA"), ("--asn", "0"), ("--score", "101")] {
        let out = ops(&cfg, &["pin", "192.0.2.71", "block", flag, value]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains(value), "{err}");
        assert_eq!(
            raw(&mut con, "ipcheck:192.0.2.71").as_ref(),
            Some(&bare),
            "{flag} {value}: Redis unchanged"
        );
    }
}
