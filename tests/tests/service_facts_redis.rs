//! Country, AS number and score through the Redis tier: the provider's answer is written to
//! Redis with them (`IPCHECK SET ... COUNTRY ASN SCORE`), `IPCHECK GET` shows them, and a second
//! instance that never asks the provider reads them back and decides the same.

use ipcheck_core::{Asn, Attributes, Country, Score};
use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

/// The ipasis preset plus attribute paths, and a Redis tier; default policy challenges VPNs.
fn config(provider: &Provider, redis: &RedisServer) -> String {
    format!(
        r#"
{provider_section}
[provider.fields]
country = ["location.country_code"]
asn = ["network.asn"]
score = ["risk.score"]

[cache]
local_ttl = "60s"

[redis]
url = "{redis}"
timeout = "500ms"
ttl = "1h"
stale_ttl = "1d"

[policies.default]
block = ["tor"]
challenge = ["vpn"]
"#,
        provider_section = provider.config_section(),
        redis = redis.url(),
    )
}

/// An ipasis-style answer: a VPN in the US, AS 13335, score 87.6 (rounded to 88).
fn vpn_us_answer() -> Reply {
    Reply::Body(
        r#"{"ip":"x","privacy":{"vpn":true,"proxy":false,"tor":false,"relay":false,"hosting":false,"crawler":false},
            "location":{"country_code":"us"},"network":{"asn":"AS13335 Cloudflare"},"risk":{"score":87.6}}"#
            .to_owned(),
    )
}

fn expected() -> Attributes {
    Attributes {
        country: Country::parse("US").ok(),
        asn: Asn::new(13335),
        score: Score::new(88),
    }
}

#[test]
fn attributes_reach_redis_and_a_second_instance_reads_them() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    provider.respond("192.0.2.77", vpn_us_answer());
    let first = Service::start(&config(&provider, &redis));
    assert_eq!(
        first.auth("192.0.2.77").decision(),
        (401, "challenge", "vpn", "provider")
    );
    let mut con = redis.client();
    let held = ipcheck::wait_for(&mut con, "192.0.2.77", "written back", |_| true);
    assert_eq!(held.attributes, expected(), "{held:?}");
    assert_eq!(
        (held.verdict.as_str(), held.reason.as_str()),
        ("challenge", "vpn")
    );
    assert_eq!(held.source, "api");
    // The stored value: the compact integer, the stale window, then the attributes.
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.77")
        .query(&mut con)
        .unwrap();
    assert!(raw.ends_with(";86400;US;13335;88"), "{raw}");

    // A second instance: never asks the provider, decides the same from Redis, and holds the
    // attributes it read (what /explain shows of the Redis tier).
    let second = Service::start(&config(&provider, &redis));
    assert_eq!(
        second.auth("192.0.2.77").decision(),
        (401, "challenge", "vpn", "redis")
    );
    assert_eq!(provider.calls_for("192.0.2.77"), 1);
    let explained = second.explain("192.0.2.77", None);
    assert_eq!(explained.status, 200, "{}", explained.body);
    assert!(
        explained
            .body
            .contains("facts vpn, country US, AS13335, score 88"),
        "{}",
        explained.body
    );
}

#[test]
fn an_answer_without_attributes_stores_no_attribute_fields() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    provider.respond("192.0.2.78", Reply::flags(&["tor"]));
    let svc = Service::start(&config(&provider, &redis));
    assert_eq!(
        svc.auth("192.0.2.78").decision(),
        (403, "block", "tor", "provider")
    );
    let mut con = redis.client();
    let held = ipcheck::wait_for(&mut con, "192.0.2.78", "written back", |_| true);
    assert_eq!(held.attributes, Attributes::NONE);
    // No attribute fields: the compact base and its stale window alone (`<base>;<stale>`).
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.78")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "257;86400");
}
