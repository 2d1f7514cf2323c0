//! `IPCHECK.LSET <key> <stored value> <seconds>`, the lean write: it stores exactly what
//! `IPCHECK SET` stores, keeps pins as SET does, refuses anything SET would not store without
//! touching the key, and ACL rules, cluster routing and replication treat it as a write of the
//! real key.

use ipcheck_core::{encode_stored, Attributes, Entry, Reasons, Score, Source, Verdict, LEAN_WRITE};
use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::{Connection, Value};

fn lset(con: &mut Connection, key: &str, value: &[u8], secs: &str) -> redis::RedisResult<Value> {
    redis::cmd(LEAN_WRITE)
        .arg(key)
        .arg(value)
        .arg(secs)
        .query(con)
}

fn raw(con: &mut Connection, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

fn pttl(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

fn entry(verdict: Verdict, reasons: &str, source: &str) -> Entry {
    Entry {
        verdict,
        reasons: Reasons::parse(reasons).unwrap(),
        source: Source::parse(source).unwrap(),
        attributes: Attributes::NONE,
    }
}

#[test]
fn stores_what_ipcheck_set_stores_for_as_long() {
    let server = RedisServer::start();
    let mut con = server.client();
    // Compact and text values, with and without a stale window and attributes.
    let mut scored = entry(Verdict::Challenge, "my-feed", "feed_2");
    scored.attributes.score = Score::new(87);
    let cases: [(&str, Entry, u32, &[&str]); 3] = [
        (
            "192.0.2.1",
            entry(Verdict::Block, "vpn,tor", "api"),
            0,
            &["block", "REASON", "vpn,tor", "SOURCE", "api"],
        ),
        (
            "192.0.2.2",
            entry(Verdict::Allow, "", "api"),
            3600,
            &["allow", "SOURCE", "api", "STALE", "3600"],
        ),
        (
            "192.0.2.3",
            scored,
            60,
            &[
                "challenge",
                "REASON",
                "my-feed",
                "SOURCE",
                "feed_2",
                "SCORE",
                "87",
                "STALE",
                "60",
            ],
        ),
    ];
    for (ip, e, stale, set_args) in cases {
        let key = format!("ipcheck:{ip}");
        let value = encode_stored(&e, stale);
        assert_eq!(
            lset(&mut con, &key, value.as_bytes(), "600").unwrap(),
            Value::Okay
        );
        let (lean_value, lean_ttl) = (raw(&mut con, &key), pttl(&mut con, &key));
        let life = (600 + i64::from(stale)) * 1000;
        assert!(
            lean_ttl > life - 5000 && lean_ttl <= life,
            "{ip}: {lean_ttl}"
        );
        // IPCHECK SET of the same entry stores the same bytes for as long.
        let mut args = vec![ip];
        args.extend_from_slice(set_args);
        args.extend_from_slice(&["EX", "600"]);
        ipcheck::set(&mut con, &args).unwrap();
        assert_eq!(raw(&mut con, &key), lean_value, "{ip}");
        assert!((pttl(&mut con, &key) - lean_ttl).abs() < 5000);
        let hit = ipcheck::get(&mut con, ip).unwrap().unwrap();
        assert_eq!(hit.verdict, e.verdict.as_str());
        assert_eq!(hit.reason, e.reasons.as_str());
    }
    let stats: Vec<(String, i64)> = redis::cmd("IPCHECK").arg("STATS").query(&mut con).unwrap();
    assert!(stats.contains(&("sets".to_owned(), 6)), "{stats:?}");
}

#[test]
fn a_pin_is_kept_and_never_written() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(
        &mut con,
        &["192.0.2.5", "block", "SOURCE", "manual", "PERSIST"],
    )
    .unwrap();
    let pinned = raw(&mut con, "ipcheck:192.0.2.5");
    let value = encode_stored(&entry(Verdict::Allow, "", "api"), 0);
    // Kept, as IPCHECK SET without FORCE keeps it: nil, nothing changed.
    assert_eq!(
        lset(&mut con, "ipcheck:192.0.2.5", value.as_bytes(), "60").unwrap(),
        Value::Nil
    );
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.5"), pinned);
    assert_eq!(pttl(&mut con, "ipcheck:192.0.2.5"), -1);
    // And a pin is not written by the lean write.
    let pin = encode_stored(&entry(Verdict::Block, "", "manual"), 0);
    let e = err_text(lset(&mut con, "ipcheck:192.0.2.6", pin.as_bytes(), "60"));
    assert!(
        e.contains("does not write pins") && e.contains("SOURCE manual"),
        "{e}"
    );
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.6"), None);
}

#[test]
fn refusals_are_precise_and_change_nothing() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "block", "EX", "600"]).unwrap();
    let (before, before_at) = (
        raw(&mut con, "ipcheck:192.0.2.1"),
        pttl(&mut con, "ipcheck:192.0.2.1"),
    );
    let good = encode_stored(&entry(Verdict::Allow, "vpn", "api"), 0);
    let e = err_text(
        redis::cmd(LEAN_WRITE)
            .arg("ipcheck:192.0.2.1")
            .query::<Value>(&mut con),
    );
    assert!(e.contains("wrong number of arguments"), "{e}");
    // Not an entry's key: an address, a spelling that is not canonical, another prefix.
    for key in [
        "192.0.2.1",
        "ipcheck:192.000.2.1",
        "ipcheck:2001:db8::1",
        "other:192.0.2.1",
        "",
    ] {
        let e = err_text(lset(&mut con, key, good.as_bytes(), "60"));
        assert!(
            e.contains(&format!(
                "IPCHECK.LSET takes an entry's key under the prefix 'ipcheck:', got '{key}'"
            )) && e.contains("IPCHECK KEY"),
            "{e}"
        );
    }
    // Not what IPCHECK SET stores: not an entry, the text form of a compact entry, a newer
    // writer's extra field, a leading zero, a stale window in a pin.
    for value in [
        &b"hello"[..],
        b"b:api:vpn",
        b"321;0;;;;x",
        b"0321;0",
        b"321",
        b"9;60",
        b"\xff",
    ] {
        let e = err_text(lset(&mut con, "ipcheck:192.0.2.1", value, "60"));
        assert!(
            e.contains("IPCHECK.LSET: value is not an ipcheck entry"),
            "{e}"
        );
    }
    for secs in ["0", "-1", "31536001", "x", "", "07"] {
        let e = err_text(lset(&mut con, "ipcheck:192.0.2.1", good.as_bytes(), secs));
        assert!(
            e.contains("EX must be an integer from 1 to 31536000"),
            "{secs}: {e}"
        );
    }
    assert_eq!(raw(&mut con, "ipcheck:192.0.2.1"), before);
    assert!((pttl(&mut con, "ipcheck:192.0.2.1") - before_at).abs() < 5000);
    // Another type under an entry's key.
    redis::cmd("HSET")
        .arg("ipcheck:192.0.2.9")
        .arg("f")
        .arg("v")
        .query::<i64>(&mut con)
        .unwrap();
    let e = err_text(lset(&mut con, "ipcheck:192.0.2.9", good.as_bytes(), "60"));
    assert!(e.contains("WRONGTYPE"), "{e}");
}

#[test]
fn key_patterns_apply_to_the_key_and_the_rule_is_its_own() {
    let server = RedisServer::start();
    let value = encode_stored(&entry(Verdict::Block, "tor", "api"), 0);
    server.acl_user("writer", &["%RW~ipcheck:*", "+ipcheck.lset"]);
    let mut con = server.client_as("writer", "pass").unwrap();
    assert_eq!(
        lset(&mut con, "ipcheck:192.0.2.1", value.as_bytes(), "60").unwrap(),
        Value::Okay
    );
    // Read-only on the keys: refused by Redis before the module runs.
    server.acl_user("ro", &["%R~ipcheck:*", "+ipcheck.lset"]);
    let mut ro = server.client_as("ro", "pass").unwrap();
    let e = err_text(lset(&mut ro, "ipcheck:192.0.2.2", value.as_bytes(), "60"));
    assert!(e.to_lowercase().contains("noperm"), "{e}");
    // +ipcheck|set does not grant it.
    server.acl_user("setter", &["%RW~ipcheck:*", "+ipcheck|set"]);
    let mut setter = server.client_as("setter", "pass").unwrap();
    let e = err_text(lset(
        &mut setter,
        "ipcheck:192.0.2.3",
        value.as_bytes(),
        "60",
    ));
    assert!(
        e.to_lowercase().contains("noperm") && e.contains("ipcheck.lset"),
        "{e}"
    );
    let mut admin = server.client();
    assert_eq!(raw(&mut admin, "ipcheck:192.0.2.2"), None);
    assert_eq!(raw(&mut admin, "ipcheck:192.0.2.3"), None);
}

#[test]
fn in_cluster_mode_the_key_carries_the_hash_tag() {
    let server = RedisServer::builder().cluster().start();
    server.own_slots(0, 16383);
    let mut con = server.client();
    let value = encode_stored(&entry(Verdict::Challenge, "", "api"), 0);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg(LEAN_WRITE)
        .arg("ipcheck:{2001:db8:1:2::/64}")
        .arg(value.as_bytes())
        .arg("60")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, ["ipcheck:{2001:db8:1:2::/64}"]);
    let e = err_text(lset(
        &mut con,
        "ipcheck:2001:db8:1:2::/64",
        value.as_bytes(),
        "60",
    ));
    assert!(e.contains("takes an entry's key"), "{e}");
    assert_eq!(
        lset(
            &mut con,
            "ipcheck:{2001:db8:1:2::/64}",
            value.as_bytes(),
            "60"
        )
        .unwrap(),
        Value::Okay
    );
    assert_eq!(ipcheck::verdict(&mut con, "2001:db8:1:2::/64"), "challenge");
}

#[test]
fn replicas_and_the_aof_get_a_plain_set_with_the_absolute_expiry() {
    let (master, replica) = RedisServer::with_aof_and_replica();
    let mut m = master.client();
    let mut r = replica.client();
    let value = encode_stored(&entry(Verdict::Block, "vpn", "api"), 60);
    lset(&mut m, "ipcheck:192.0.2.1", value.as_bytes(), "600").unwrap();
    RedisServer::wait_replica_acked(&mut m);
    let at = |con: &mut Connection| -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg("ipcheck:192.0.2.1")
            .query(con)
            .unwrap()
    };
    assert_eq!(at(&mut r), at(&mut m));
    assert_eq!(
        raw(&mut r, "ipcheck:192.0.2.1").as_deref(),
        Some(value.as_bytes())
    );
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut r)
        .unwrap();
    assert!(!info.contains("ipcheck.lset"), "{info}");
    assert!(info.contains("cmdstat_set:"), "{info}");
    let aof = master.aof_text();
    assert!(
        aof.contains("PXAT") && aof.contains("ipcheck:192.0.2.1"),
        "{aof}"
    );
    assert!(!aof.to_lowercase().contains("ipcheck.lset"), "{aof}");
    // The replica refuses the write, like any write command.
    let e = err_text(lset(&mut r, "ipcheck:192.0.2.2", value.as_bytes(), "60"));
    assert!(e.to_lowercase().contains("readonly"), "{e}");
}
