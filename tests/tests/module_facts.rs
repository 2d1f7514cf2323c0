//! `IPCHECK SET ... COUNTRY <cc> ASN <n> SCORE <0-100>` and the `country`, `asn`, `score` fields
//! of `IPCHECK GET`: stored compactly, read by GET, LGET, Lua, replicas and after a reload; refused
//! with errors that name the option; entries without them unchanged.

use ipcheck_core::protocol::{Lifetime, SetRequest};
use ipcheck_core::{decode_lean_reply, Asn, Attributes, Country, Score, Verdict};
use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::{Connection, Value};

fn us_cloudflare_87() -> Attributes {
    Attributes {
        country: Country::parse("US").ok(),
        asn: Asn::new(13335),
        score: Score::new(87),
    }
}

fn raw(con: &mut Connection, key: &str) -> String {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

#[test]
fn attributes_are_stored_compactly_and_read_back() {
    let server = RedisServer::start();
    let mut con = server.client();
    // Any case, AS prefix: normalized as core's parsers normalize.
    ipcheck::set(
        &mut con,
        &[
            "192.0.2.1",
            "block",
            "REASON",
            "vpn,tor",
            "STALE",
            "86400",
            "country",
            "us",
            "Asn",
            "AS13335",
            "SCORE",
            "87",
        ],
    )
    .unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap();
    assert_eq!(h.attributes, us_cloudflare_87());
    assert_eq!(
        (h.verdict.as_str(), h.reason.as_str()),
        ("block", "vpn,tor")
    );
    assert!(h.fresh && h.fresh_ttl > 86_000 && h.ttl > 172_000, "{h:?}");
    // The stored form core documents: the compact integer, then ;stale;country;asn;score.
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.1"), "321;86400;US;13335;87");
    // The lean read hands back the same value, which core decodes to the same facts.
    let reply: Vec<u8> = redis::cmd(ipcheck_core::LEAN_READ)
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    let lean = decode_lean_reply(&reply).unwrap();
    assert_eq!(lean.entry.attributes, us_cloudflare_87());
    assert!(lean.freshness.fresh);

    // Only some known: the others stay empty.
    ipcheck::set(&mut con, &["192.0.2.2", "allow", "SCORE", "0"]).unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.2").unwrap().unwrap();
    assert_eq!(h.attributes.score, Score::new(0));
    assert_eq!((h.attributes.country, h.attributes.asn), (None, None));
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.2"), "0;0;;;0");

    // Without attributes: the base and the window alone, and empty fields.
    ipcheck::set(&mut con, &["192.0.2.3", "block", "REASON", "vpn,tor"]).unwrap();
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.3"), "321;0");
    let reply: Vec<String> = redis::cmd("IPCHECK")
        .arg("GET")
        .arg("192.0.2.3")
        .query(&mut con)
        .unwrap();
    // A client that reads the reply as strings keeps working; old fields keep their places.
    assert_eq!(reply[..2], ["verdict", "block"]);
    assert_eq!(reply[12], "fresh_ttl");
    assert_eq!(reply[14..], ["country", "", "asn", "", "score", ""]);

    // A later write replaces the attributes with its own (none: gone).
    ipcheck::set(&mut con, &["192.0.2.1", "block", "REASON", "vpn,tor"]).unwrap();
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.1"), "321;0");
    // DEL and KEY do not care.
    assert_eq!(ipcheck::del(&mut con, "192.0.2.2").unwrap(), 1);
    assert_eq!(
        ipcheck::key(&mut con, "192.0.2.2").unwrap(),
        "ipcheck:192.0.2.2"
    );
}

#[test]
fn entries_written_before_attributes_read_as_unknown() {
    let server = RedisServer::start();
    let mut con = server.client();
    // Values as the module wrote them before attributes: compact, with a stale window in the
    // integer, and the text form.
    for (key, value) in [
        ("ipcheck:192.0.2.10", "321"),
        ("ipcheck:192.0.2.11", "989560464998721"),
        ("ipcheck:192.0.2.12", "b:my-feed:spam:604800"),
    ] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(700_000)
            .query(&mut con)
            .unwrap();
    }
    for ip in ["192.0.2.10", "192.0.2.11", "192.0.2.12"] {
        let h = ipcheck::get(&mut con, ip).unwrap().unwrap();
        assert_eq!(h.attributes, Attributes::NONE, "{ip}: {h:?}");
        assert_eq!(h.verdict, "block", "{ip}");
    }
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.12")
            .unwrap()
            .unwrap()
            .source,
        "my-feed"
    );
}

#[test]
fn bad_attributes_are_refused_naming_the_option() {
    let server = RedisServer::start();
    let mut con = server.client();
    for (args, expect) in [
        (&["COUNTRY", "USA"][..], "COUNTRY: invalid country 'USA'"),
        (&["COUNTRY", "U1"], "ISO 3166-1 alpha-2"),
        (&["ASN", "0"], "ASN: invalid AS number '0'"),
        (&["ASN", "4294967296"], "ASN: invalid AS number"),
        (&["ASN", "AS-1"], "ASN: invalid AS number"),
        (&["SCORE", "101"], "SCORE: invalid score '101'"),
        (&["SCORE", "8.5"], "SCORE: invalid score"),
        (&["SCORE", "-1"], "SCORE: invalid score"),
        (&["COUNTRY", "US", "country", "DE"], "COUNTRY given more than once"),
        (&["ASN"], "ASN needs a value"),
        (&["CITY", "Berlin"], "unknown option 'CITY' (expected EX, PERSIST, STALE, REASON, SOURCE, COUNTRY, ASN, SCORE or FORCE)"),
    ] {
        let mut argv = vec!["192.0.2.1", "block"];
        argv.extend_from_slice(args);
        let e = err_text(ipcheck::set(&mut con, &argv));
        assert!(e.contains(expect), "{args:?}: {e}");
    }
    // Nothing was written by any of them.
    assert_eq!(ipcheck::get(&mut con, "192.0.2.1").unwrap(), None);
}

#[test]
fn pins_carry_attributes_and_keep_them_against_provider_writes() {
    let server = RedisServer::start();
    let mut con = server.client();
    let pin = SetRequest {
        lifetime: Lifetime::Persist,
        source: "manual",
        attributes: Attributes {
            country: Country::parse("DE").ok(),
            ..Attributes::NONE
        },
        ..SetRequest::new("192.0.2.5", Verdict::Block)
    };
    assert_eq!(
        ipcheck::set_request(&mut con, &pin).unwrap().as_deref(),
        Some("OK")
    );
    let provider = SetRequest {
        lifetime: Lifetime::Seconds(600),
        stale_secs: 3600,
        source: "api",
        attributes: us_cloudflare_87(),
        ..SetRequest::new("192.0.2.5", Verdict::Allow)
    };
    assert_eq!(ipcheck::set_request(&mut con, &provider).unwrap(), None);
    let h = ipcheck::get(&mut con, "192.0.2.5").unwrap().unwrap();
    assert_eq!((h.source.as_str(), h.ttl), ("manual", -1));
    assert_eq!(h.attributes.country, Country::parse("DE").ok());
    assert_eq!(h.attributes.asn, None);
    // FORCE replaces the pin, attributes and all.
    let forced = SetRequest {
        force: true,
        ..provider
    };
    ipcheck::set_request(&mut con, &forced).unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.5").unwrap().unwrap();
    assert_eq!(h.attributes, us_cloudflare_87());
    assert_eq!(h.source, "api");
}

#[test]
fn lua_finds_attributes_at_fixed_places() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(
        &mut con,
        &[
            "192.0.2.1",
            "block",
            "COUNTRY",
            "US",
            "ASN",
            "13335",
            "SCORE",
            "87",
        ],
    )
    .unwrap();
    ipcheck::set(&mut con, &["192.0.2.2", "block"]).unwrap();
    let script = "local r = redis.call('IPCHECK', 'GET', KEYS[1]); \
                  return {r[15], r[16], r[17], r[18], r[19], r[20]}";
    let got: Vec<String> = redis::cmd("EVAL_RO")
        .arg(script)
        .arg(1)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["country", "US", "asn", "13335", "score", "87"]);
    let got: Vec<String> = redis::cmd("EVAL_RO")
        .arg(script)
        .arg(1)
        .arg("192.0.2.2")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["country", "", "asn", "", "score", ""]);
    // And a script can write them.
    let ok: String = redis::cmd("EVAL")
        .arg("return redis.call('IPCHECK', 'SET', KEYS[1], 'challenge', 'SCORE', ARGV[1])")
        .arg(1)
        .arg("192.0.2.3")
        .arg("90")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let h = ipcheck::get(&mut con, "192.0.2.3").unwrap().unwrap();
    assert_eq!(h.attributes.score, Score::new(90));
}

#[test]
fn replicas_reloads_and_restarts_keep_attributes() {
    let mut master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&master).start();
    replica.wait_replica_synced();
    let mut m = master.client();
    ipcheck::set(
        &mut m,
        &[
            "192.0.2.1",
            "block",
            "EX",
            "600",
            "STALE",
            "86400",
            "COUNTRY",
            "US",
            "ASN",
            "13335",
            "SCORE",
            "87",
        ],
    )
    .unwrap();
    ipcheck::set(
        &mut m,
        &[
            "192.0.2.2",
            "allow",
            "SOURCE",
            "manual",
            "PERSIST",
            "ASN",
            "64496",
        ],
    )
    .unwrap();
    RedisServer::wait_replica_acked(&mut m);
    let mut r = replica.client();
    let on_replica = ipcheck::get(&mut r, "192.0.2.1").unwrap().unwrap();
    assert_eq!(on_replica.attributes, us_cloudflare_87());
    assert!(on_replica.fresh, "{on_replica:?}");
    assert_eq!(
        ipcheck::get(&mut r, "192.0.2.2")
            .unwrap()
            .unwrap()
            .attributes
            .asn,
        Asn::new(64496)
    );

    let _: Value = redis::cmd("DEBUG").arg("RELOAD").query(&mut m).unwrap();
    assert_eq!(
        ipcheck::get(&mut m, "192.0.2.1")
            .unwrap()
            .unwrap()
            .attributes,
        us_cloudflare_87()
    );
    let _: () = redis::cmd("SAVE").query(&mut m).unwrap();
    master.kill();
    master.restart();
    let mut m = master.client();
    let h = ipcheck::get(&mut m, "192.0.2.1").unwrap().unwrap();
    assert_eq!(h.attributes, us_cloudflare_87());
    let pin = ipcheck::get(&mut m, "192.0.2.2").unwrap().unwrap();
    assert_eq!((pin.ttl, pin.attributes.asn), (-1, Asn::new(64496)));
}

#[test]
fn a_read_only_user_reads_attributes_and_cannot_write_them() {
    let server = RedisServer::start();
    let mut admin = server.client();
    ipcheck::set(&mut admin, &["192.0.2.1", "block", "COUNTRY", "RU"]).unwrap();
    server.acl_user("ro", &["%R~ipcheck:*", "+ipcheck"]);
    let mut ro = server.client_as("ro", "pass").unwrap();
    let h = ipcheck::get(&mut ro, "192.0.2.1").unwrap().unwrap();
    assert_eq!(h.attributes.country, Country::parse("RU").ok());
    let e = err_text(ipcheck::set(
        &mut ro,
        &["192.0.2.1", "allow", "COUNTRY", "US"],
    ));
    assert!(
        e.contains("NOPERM") || e.to_lowercase().contains("no permissions"),
        "{e}"
    );
    assert_eq!(raw(&mut admin, "ipcheck:192.0.2.1"), "1;0;RU;;");
}

#[test]
fn command_docs_list_the_new_options() {
    let server = RedisServer::start();
    let mut con = server.client();
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("ipcheck|set")
        .query(&mut con)
        .unwrap();
    let text = format!("{docs:?}");
    for token in ["COUNTRY", "ASN", "SCORE", "STALE", "PERSIST", "FORCE", "EX"] {
        assert!(text.contains(token), "{token} missing from {text}");
    }
}
