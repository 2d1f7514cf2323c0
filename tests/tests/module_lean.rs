//! `IPCHECK.LGET <key>`, the lean read: what it answers, that it means what `IPCHECK GET` says
//! once decoded by `ipcheck_core::decode_lean_reply`, and that ACL, cluster routing and scripts
//! treat it as a read of the real key.

use ipcheck_core::{decode_lean_reply, split_lean_reply, LeanEntry};
use ipcheck_tests::ipcheck::{self, err_text, Hit};
use ipcheck_tests::RedisServer;
use redis::{Connection, Value};

fn lget(con: &mut Connection, key: &str) -> redis::RedisResult<Value> {
    redis::cmd(ipcheck_core::LEAN_READ).arg(key).query(con)
}

/// The reply to a hit: one bulk string.
fn hit(v: &Value) -> &[u8] {
    match v {
        Value::BulkString(reply) => reply,
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// The two parts of a hit: the stored value and the milliseconds left.
fn hit_parts(v: &Value) -> (Vec<u8>, i64) {
    let (value, ms) = split_lean_reply(hit(v)).unwrap();
    (value.to_vec(), ms)
}

fn decoded(v: &Value) -> LeanEntry {
    decode_lean_reply(hit(v)).unwrap()
}

/// Whether a decoded lean read says what GET's reply says.
fn same_as_get(lean: &LeanEntry, get: &Hit) {
    assert_eq!(lean.entry.verdict.as_str(), get.verdict);
    assert_eq!(lean.entry.reasons.as_str(), get.reason);
    assert_eq!(lean.entry.source.as_str(), get.source);
    assert_eq!(lean.ttl_secs, get.ttl);
    assert_eq!(lean.freshness.fresh, get.fresh);
    assert_eq!(lean.freshness.fresh_ttl_secs, get.fresh_ttl);
}

#[test]
fn answers_the_stored_value_and_milliseconds_left() {
    let server = RedisServer::start();
    let mut con = server.client();
    assert_eq!(lget(&mut con, "ipcheck:192.0.2.1").unwrap(), Value::Nil);
    ipcheck::set(
        &mut con,
        &["192.0.2.1", "block", "EX", "60", "REASON", "vpn,tor"],
    )
    .unwrap();
    let v = lget(&mut con, "ipcheck:192.0.2.1").unwrap();
    let (value, ms) = hit_parts(&v);
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(value, raw, "the stored value, as stored");
    assert!(ms > 55_000 && ms <= 60_000, "{ms}");
    same_as_get(
        &decoded(&v),
        &ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap(),
    );
    // A stale window, a text-form entry and a pin without expiry decode as GET reports them.
    ipcheck::set(
        &mut con,
        &[
            "2001:db8:1:2::1",
            "challenge",
            "EX",
            "30",
            "STALE",
            "600",
            "SOURCE",
            "my-feed",
        ],
    )
    .unwrap();
    ipcheck::set(
        &mut con,
        &["198.51.100.7", "allow", "SOURCE", "manual", "PERSIST"],
    )
    .unwrap();
    for (address, key) in [
        ("2001:db8:1:2::/64", "ipcheck:2001:db8:1:2::/64"),
        ("198.51.100.7", "ipcheck:198.51.100.7"),
    ] {
        let v = lget(&mut con, key).unwrap();
        same_as_get(
            &decoded(&v),
            &ipcheck::get(&mut con, address).unwrap().unwrap(),
        );
    }
    assert_eq!(
        hit_parts(&lget(&mut con, "ipcheck:198.51.100.7").unwrap()).1,
        -1
    );
    assert!(ipcheck::stat(&mut con, "hits") >= 5);
}

/// The module reads time from the kernel's coarse clock (redis-module/src/clock.rs), not Redis's:
/// what a read reports left is never less than Redis's own `PTTL` at that moment, and only a
/// kernel tick or so more (bounded here by 50 ms, far below a unit or sign error); a write's
/// lifetime never ends later than Redis's clock would end it.
#[test]
fn the_time_left_is_redis_own_to_within_a_tick() {
    let server = RedisServer::start();
    let mut con = server.client();
    let pttl = |con: &mut Connection, key: &str| -> i64 {
        redis::cmd("PTTL").arg(key).query(con).unwrap()
    };
    for (args, key) in [
        (&["192.0.2.1", "block", "EX", "60"][..], "ipcheck:192.0.2.1"),
        (
            &["192.0.2.2", "allow", "EX", "30", "STALE", "300"][..],
            "ipcheck:192.0.2.2",
        ),
    ] {
        ipcheck::set(&mut con, args).unwrap();
        for _ in 0..50 {
            let before = pttl(&mut con, key);
            let (_, lean) = hit_parts(&lget(&mut con, key).unwrap());
            let after = pttl(&mut con, key);
            assert!(
                after <= lean && lean <= before + 50,
                "{key}: PTTL {before} then the lean read's {lean} then PTTL {after}"
            );
        }
        let lifetime: i64 = args
            .chunks(2)
            .skip(1)
            .filter(|pair| matches!(pair[0], "EX" | "STALE"))
            .map(|pair| pair[1].parse::<i64>().unwrap() * 1000)
            .sum();
        let left = pttl(&mut con, key);
        assert!(left <= lifetime && left > lifetime - 5_000, "{key}: {left}");
    }
}

#[test]
fn errors_are_precise_and_nothing_changes() {
    let server = RedisServer::start();
    let mut con = server.client();
    let e = err_text(redis::cmd("IPCHECK.LGET").query::<Value>(&mut con));
    assert!(e.contains("wrong number of arguments"), "{e}");
    let e = err_text(
        redis::cmd("IPCHECK.LGET")
            .arg("ipcheck:192.0.2.1")
            .arg("extra")
            .query::<Value>(&mut con),
    );
    assert!(e.contains("wrong number of arguments"), "{e}");
    // An address is not a key: the error says how to get the key.
    for given in ["192.0.2.1", "1.2.3", ""] {
        let e = err_text(lget(&mut con, given));
        assert!(
            e.contains(&format!(
                "IPCHECK.LGET takes a key under the prefix 'ipcheck:', got '{given}'"
            )) && e.contains("IPCHECK KEY"),
            "{e}"
        );
    }
    redis::cmd("HSET")
        .arg("ipcheck:192.0.2.9")
        .arg("f")
        .arg("v")
        .query::<i64>(&mut con)
        .unwrap();
    let e = err_text(lget(&mut con, "ipcheck:192.0.2.9"));
    assert!(e.contains("WRONGTYPE"), "{e}");
    // A foreign string under the prefix is answered as stored; decoding it says what is wrong.
    redis::cmd("SET")
        .arg("ipcheck:192.0.2.8")
        .arg("hello")
        .query::<()>(&mut con)
        .unwrap();
    let v = lget(&mut con, "ipcheck:192.0.2.8").unwrap();
    assert_eq!(hit_parts(&v).0, b"hello");
    assert!(decode_lean_reply(hit(&v)).is_err());
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.8")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "hello");
}

#[test]
fn a_read_only_user_can_lean_read_and_key_patterns_apply_to_the_key() {
    let server = RedisServer::start();
    let mut admin = server.client();
    ipcheck::set(&mut admin, &["192.0.2.1", "block"]).unwrap();
    redis::cmd("SET")
        .arg("secret")
        .arg("1")
        .query::<()>(&mut admin)
        .unwrap();
    server.acl_user("ro", &["%R~ipcheck:*", "+ipcheck.lget", "+eval_ro"]);
    let mut con = server.client_as("ro", "pass").unwrap();
    let v = lget(&mut con, "ipcheck:192.0.2.1").unwrap();
    assert_eq!(decoded(&v).entry.verdict.as_str(), "block");
    // Outside the pattern: refused by Redis, before the module runs.
    let e = err_text(lget(&mut con, "secret"));
    assert!(e.to_lowercase().contains("noperm"), "{e}");
    // The rule is its own: +ipcheck|get does not grant it.
    server.acl_user("getter", &["%R~ipcheck:*", "+ipcheck|get"]);
    let mut getter = server.client_as("getter", "pass").unwrap();
    let e = err_text(lget(&mut getter, "ipcheck:192.0.2.1"));
    assert!(
        e.to_lowercase().contains("noperm") && e.contains("ipcheck.lget"),
        "{e}"
    );
    // And from a read-only script.
    let v: Value = redis::cmd("EVAL_RO")
        .arg("return redis.call('IPCHECK.LGET', KEYS[1])")
        .arg(1)
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(decoded(&v).entry.verdict.as_str(), "block");
}

#[test]
fn the_key_spec_names_the_key_and_cluster_routes_by_its_hash_tag() {
    let server = RedisServer::builder().cluster().start();
    server.own_slots(0, 16383);
    let mut con = server.client();
    ipcheck::set(&mut con, &["2001:db8:1:2::/64", "challenge"]).unwrap();
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("IPCHECK.LGET")
        .arg("ipcheck:{2001:db8:1:2::/64}")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, ["ipcheck:{2001:db8:1:2::/64}"]);
    let slot = |con: &mut Connection, k: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query(con)
            .unwrap()
    };
    assert_eq!(
        slot(&mut con, "ipcheck:{2001:db8:1:2::/64}"),
        slot(&mut con, "2001:db8:1:2::/64")
    );
    let v = lget(&mut con, "ipcheck:{2001:db8:1:2::/64}").unwrap();
    same_as_get(
        &decoded(&v),
        &ipcheck::get(&mut con, "2001:db8:1:2::/64")
            .unwrap()
            .unwrap(),
    );
    // The key built by core is the one the module keeps.
    assert_eq!(
        ipcheck_core::entry_key("ipcheck:", "2001:db8:1:2::/64", true),
        ipcheck::key(&mut con, "2001:db8:1:2::/64").unwrap()
    );
    let v: Value = redis::cmd("EVAL")
        .arg("return redis.call('IPCHECK.LGET', KEYS[1])")
        .arg(1)
        .arg("ipcheck:{2001:db8:1:2::/64}")
        .query(&mut con)
        .unwrap();
    assert_eq!(decoded(&v).entry.verdict.as_str(), "challenge");
}

#[test]
fn only_the_served_slot_is_read() {
    let server = RedisServer::builder().cluster().start();
    let mut con = server.client();
    let slot = |con: &mut Connection, k: &str| -> i64 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(k)
            .query(con)
            .unwrap()
    };
    let served = slot(&mut con, "192.0.2.1") as u16;
    server.own_slots(served, served);
    ipcheck::set(&mut con, &["192.0.2.1", "allow"]).unwrap();
    let v = lget(&mut con, "ipcheck:{192.0.2.1}").unwrap();
    assert_eq!(decoded(&v).entry.verdict.as_str(), "allow");
    let other = (1..255)
        .map(|i| format!("198.51.100.{i}"))
        .find(|a| slot(&mut con, a) as u16 != served)
        .unwrap();
    let e = err_text(lget(&mut con, &format!("ipcheck:{{{other}}}")));
    assert!(
        e.contains("CLUSTERDOWN") || e.contains("MOVED") || e.to_lowercase().contains("slot"),
        "{e}"
    );
}

#[test]
fn the_previous_subcommand_form_still_answers_and_its_acl_rule_still_loads() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "block", "EX", "60"]).unwrap();
    // A rule naming the subcommand must keep loading: Redis refuses (and an ACL file with it
    // would stop Redis from starting) a rule for a subcommand that does not exist.
    server.acl_user("old", &["%R~ipcheck:*", "+ipcheck|lget"]);
    let mut old = server.client_as("old", "pass").unwrap();
    let previous: Value = redis::cmd("IPCHECK")
        .arg("LGET")
        .arg("ipcheck:192.0.2.1")
        .query(&mut old)
        .unwrap();
    let [Value::BulkString(value), Value::Int(ms)] = (match &previous {
        Value::Array(items) => items.as_slice(),
        other => panic!("not an array: {other:?}"),
    }) else {
        panic!("not [value, ms]: {previous:?}");
    };
    let lean = lget(&mut con, "ipcheck:192.0.2.1").unwrap();
    assert_eq!(value.as_slice(), hit_parts(&lean).0.as_slice());
    assert!(*ms > 55_000 && *ms <= 60_000, "{ms}");
    // Its rule does not grant the new command.
    let e = err_text(lget(&mut old, "ipcheck:192.0.2.1"));
    assert!(e.to_lowercase().contains("noperm"), "{e}");
    assert_eq!(
        redis::cmd("IPCHECK")
            .arg("LGET")
            .arg("ipcheck:198.51.100.1")
            .query::<Value>(&mut con)
            .unwrap(),
        Value::Nil
    );
}
