//! The local databases in the lookup: a policy they cover is decided without the provider, a
//! pin still wins, and otherwise their facts fill the provider's gaps.

use super::*;
use crate::databases::Databases;
use ipcheck_core::{Asn, Country};

/// 81.2.69.0/24 in the public test files: GB (located), US (registered); the anonymous-IP file
/// marks it vpn, proxy, tor and hosting.
const GB_ANON: &str = "81.2.69.142";
/// Located in SE, held by the country file only.
const SE: &str = "89.160.20.130";

fn fixture(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/mmdb/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The test world with a country and an anonymous-IP database.
fn world_with_databases() -> Arc<World> {
    let text = format!(
        "[databases.anon]\nfile = \"{}\"\npreset = \"anonymous-ip\"\n\
         [databases.geo]\nfile = \"{}\"\npreset = \"country\"\n",
        fixture("GeoIP2-Anonymous-IP-Test.mmdb"),
        fixture("GeoLite2-Country-Test.mmdb")
    );
    let settings = crate::config::parse("test", &text, &[]).expect("valid config");
    let databases = Databases::open("test", &settings.databases, None).expect("fixtures open");
    Arc::new(World {
        databases,
        ..Arc::into_inner(world()).unwrap()
    })
}

fn at(ip: &str) -> Client {
    Client {
        ip: ip.parse().unwrap(),
        key: normalize(ip, Aggregation::default()).unwrap(),
    }
}

/// Blocks GB and Tor exits, lets no crawler through: everything it needs, the two files give
/// for 81.2.69.0/24.
fn geo_policy() -> Policy {
    Policy {
        block: tor(),
        block_countries: vec![Country::parse("GB").unwrap()],
        allow_crawlers: false,
        ..strict()
    }
}

async fn verdict(w: &Arc<World>, policy: &Policy, ip: &str) -> (Verdict, String, Tier) {
    let d = decide(w, policy, at(ip)).await;
    (d.decision.verdict, d.decision.reasons.to_text(), d.tier)
}

#[tokio::test]
async fn covered_policies_are_decided_by_the_databases_without_a_provider_call() {
    let w = world_with_databases();
    let (v, r, tier) = verdict(&w, &geo_policy(), GB_ANON).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "tor,country", Tier::Database)
    );
    assert_eq!(w.provider().calls.get(), 0);
    assert!(
        w.redis().holds(GB_ANON).is_none(),
        "nothing written to Redis"
    );
    // Nothing kept locally either: the next request reads Redis again (for a pin) and still
    // decides from the databases.
    let (_, _, tier) = verdict(&w, &geo_policy(), GB_ANON).await;
    assert_eq!(tier, Tier::Database);
    assert_eq!(w.provider().calls.get(), 0);
    assert!(w
        .metrics
        .render(0)
        .contains("ipcheck_database_decisions_total 2"));
    assert!(w
        .metrics
        .render(0)
        .contains("ipcheck_cache_total{tier=\"database\"} 0"));
}

#[tokio::test]
async fn a_pin_beats_the_databases() {
    let w = world_with_databases();
    let mut pin = entry("my-list", "manual");
    pin.verdict = Verdict::Allow;
    w.redis().put(GB_ANON, pin, s(DAY), Duration::ZERO);
    let d = decide(&w, &geo_policy(), at(GB_ANON)).await;
    assert_eq!(
        (d.decision.verdict, d.rule, d.tier),
        (Verdict::Allow, Rule::Pin, Tier::Redis)
    );
    assert_eq!(d.pin_reasons.as_deref(), Some("my-list"));
    // Kept locally as any pin: the next request finds it there.
    let d = decide(&w, &geo_policy(), at(GB_ANON)).await;
    assert_eq!((d.rule, d.tier), (Rule::Pin, Tier::Local));
    assert_eq!(w.provider().calls.get(), 0);
}

#[tokio::test]
async fn redis_down_leaves_on_redis_error_first_even_when_the_databases_cover() {
    let w = world_with_databases();
    w.redis().down.store(true, Ordering::SeqCst);
    let d = decide(&w, &geo_policy(), at(GB_ANON)).await;
    assert_eq!(
        (d.decision.verdict, d.decision.reasons.to_text(), d.rule),
        (Verdict::Block, "redis-error".to_owned(), Rule::OnRedisError)
    );
    let continuing = Policy {
        on_redis_error: RedisFailureMode::Continue,
        ..geo_policy()
    };
    let (v, r, _) = verdict(&w, &continuing, GB_ANON).await;
    assert_eq!((v, r.as_str()), (Verdict::Block, "tor,country"));
    assert_eq!(w.provider().calls.get(), 0);
}

#[tokio::test]
async fn a_policy_needing_more_asks_the_provider_and_the_databases_fill_its_gaps() {
    let w = world_with_databases();
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    // The country file holds SE but says nothing of Tor: the provider is asked.
    let se_blocked = Policy {
        block_countries: vec![Country::parse("SE").unwrap()],
        ..geo_policy()
    };
    let (v, r, tier) = verdict(&w, &se_blocked, SE).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "country", Tier::Provider)
    );
    assert_eq!(w.provider().calls.get(), 1);
    // What went to Redis is the provider's answer alone (no country from the database).
    w.redis().writes.reaches(1).await;
    let stored = w.redis().holds(SE).expect("written back");
    assert_eq!(stored.attributes.country, None);
    // An AS number no database gives: asked even for a fully listed address.
    let asn_too = Policy {
        block_asns: vec![Asn::new(64512).unwrap()],
        ..geo_policy()
    };
    let (v, r, tier) = verdict(&w, &asn_too, GB_ANON).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "tor,country", Tier::Provider)
    );
    assert_eq!(w.provider().calls.get(), 2);
    // The next request for it is a local hit of the provider's facts, still filled in.
    let (v, r, tier) = verdict(&w, &asn_too, GB_ANON).await;
    assert_eq!(
        (v, r.as_str(), tier),
        (Verdict::Block, "tor,country", Tier::Local)
    );
    // ... and the covered policy uses that local entry as well.
    let (_, _, tier) = verdict(&w, &geo_policy(), GB_ANON).await;
    assert_eq!(tier, Tier::Local);
    assert_eq!(w.provider().calls.get(), 2);
}

#[tokio::test]
async fn without_databases_nothing_changes() {
    let w = world();
    w.provider().answers(Answer::Facts(Categories::EMPTY));
    let policy = Policy {
        allow_crawlers: false,
        block: Categories::EMPTY,
        ..strict()
    };
    // A policy that needs nothing still asks the provider when no database is configured.
    let (_, _, tier) = verdict(&w, &policy, GB_ANON).await;
    assert_eq!(tier, Tier::Provider);
}
