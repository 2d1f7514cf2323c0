//! Every IPCHECK subcommand and option against a real redis-server with the module loaded.

use ipcheck_tests::ipcheck::{self, err_text, Hit};
use ipcheck_tests::RedisServer;
use redis::Value;

fn hit(verdict: &str, reason: &str, source: &str, ttl: i64, key: &str) -> Hit {
    Hit {
        verdict: verdict.into(),
        reason: reason.into(),
        source: source.into(),
        ttl,
        key: key.into(),
        // Without a stale window an entry is fresh until gone: fresh_ttl is ttl.
        fresh: true,
        fresh_ttl: ttl,
        attributes: Default::default(),
    }
}

#[test]
fn set_then_get_with_defaults() {
    let server = RedisServer::start();
    let mut con = server.client();
    assert_eq!(ipcheck::get(&mut con, "192.0.2.1").unwrap(), None);
    assert_eq!(
        ipcheck::set(&mut con, &["192.0.2.1", "BLOCK"]).unwrap(),
        Some("OK".into())
    );
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.1").unwrap(),
        Some(hit("block", "", "api", 86400, "ipcheck:192.0.2.1"))
    );
    // The stored value is the compact core encoding (never an integer: `;0`, no stale window),
    // with the default TTL on the key.
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "1;0");
    let ttl: i64 = redis::cmd("TTL")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(ttl, 86400);
}

#[test]
fn every_option_any_case() {
    let server = RedisServer::start();
    let mut con = server.client();
    let r = ipcheck::set(
        &mut con,
        &[
            "2001:DB8:1:2::99",
            "Challenge",
            "ex",
            "120",
            "Reason",
            "vpn,tor",
            "SOURCE",
            "list",
        ],
    )
    .unwrap();
    assert_eq!(r, Some("OK".into()));
    let h = ipcheck::get(&mut con, "2001:db8:1:2:ffff::1")
        .unwrap()
        .unwrap();
    assert_eq!(
        h,
        hit(
            "challenge",
            "vpn,tor",
            "list",
            120,
            "ipcheck:2001:db8:1:2::/64"
        )
    );
    // Unknown reason and source tokens round-trip through the text form.
    ipcheck::set(
        &mut con,
        &[
            "10.0.0.1",
            "allow",
            "REASON",
            "my-feed,x_1",
            "SOURCE",
            "feed-7",
        ],
    )
    .unwrap();
    let h = ipcheck::get(&mut con, "10.0.0.1").unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.reason.as_str(), h.source.as_str()),
        ("allow", "my-feed,x_1", "feed-7")
    );
    // Subcommand names are case-insensitive.
    let v: Value = redis::cmd("ipcheck")
        .arg("gEt")
        .arg("10.0.0.1")
        .query(&mut con)
        .unwrap();
    assert!(ipcheck::parse_get_reply(v).is_some());
}

#[test]
fn ttl_is_explicit_or_default_and_rounds_like_ttl() {
    let server = RedisServer::builder()
        .module_args(&["default-ttl", "300"])
        .start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.7", "allow"]).unwrap();
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.7").unwrap().unwrap().ttl,
        300
    );
    ipcheck::set(&mut con, &["192.0.2.8", "allow", "EX", "1"]).unwrap();
    assert_eq!(ipcheck::get(&mut con, "192.0.2.8").unwrap().unwrap().ttl, 1);
    ipcheck::set(&mut con, &["192.0.2.9", "allow", "EX", "31536000"]).unwrap();
    // GET's ttl is what TTL says, rounded as TTL rounds, by the module's clock: never less than
    // Redis's remaining time, at most a kernel tick more (bounded by 50 ms here).
    let pttl = |con: &mut redis::Connection| -> i64 {
        redis::cmd("PTTL")
            .arg("ipcheck:192.0.2.9")
            .query(con)
            .unwrap()
    };
    let before = pttl(&mut con);
    let h = ipcheck::get(&mut con, "192.0.2.9").unwrap().unwrap();
    let after = pttl(&mut con);
    let rounded = |ms: i64| (ms + 500) / 1000;
    assert!(
        (rounded(after)..=rounded(before + 50)).contains(&h.ttl),
        "PTTL {before}, GET's ttl {}, PTTL {after}",
        h.ttl
    );
    let h = ipcheck::get(&mut con, "192.0.2.9").unwrap().unwrap();
    assert_eq!(h.ttl, 31536000);
    // An entry really expires.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(ipcheck::get(&mut con, "192.0.2.8").unwrap(), None);
}

/// Polls `IPCHECK GET` until `done` holds (the entry's life moves on by the clock, not by us).
fn wait_until(
    con: &mut redis::Connection,
    ip: &str,
    what: &str,
    done: impl Fn(&Option<Hit>) -> bool,
) -> Option<Hit> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let h = ipcheck::get(con, ip).unwrap();
        if done(&h) {
            return h;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ip} never became {what}: {h:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn stale_window_fresh_then_stale_then_gone() {
    let server = RedisServer::start();
    let mut con = server.client();
    let ok = ipcheck::set(
        &mut con,
        &[
            "192.0.2.30",
            "block",
            "REASON",
            "tor",
            "EX",
            "1",
            "stale",
            "2",
        ],
    )
    .unwrap();
    assert_eq!(ok, Some("OK".into()));
    let h = ipcheck::get(&mut con, "192.0.2.30").unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.reason.as_str(), h.source.as_str()),
        ("block", "tor", "api")
    );
    assert!(h.fresh, "{h:?}");
    assert_eq!((h.ttl, h.fresh_ttl), (3, 1), "the key lives EX + STALE");
    // The value records the window (compact form: in the suffix).
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.30")
        .query(&mut con)
        .unwrap();
    // The compact base for block/tor/api is 1 | 0b100 << 6 = 257.
    assert_eq!(raw, "257;2");
    let stale = wait_until(&mut con, "192.0.2.30", "stale", |h| {
        h.as_ref().is_some_and(|h| !h.fresh)
    })
    .unwrap();
    assert_eq!(stale.fresh_ttl, 0);
    assert_eq!(stale.verdict, "block", "a stale entry keeps its facts");
    assert!(stale.ttl <= 2, "{stale:?}");
    wait_until(&mut con, "192.0.2.30", "gone", Option::is_none);

    // STALE 0: fresh until gone, a window of 0.
    ipcheck::set(&mut con, &["192.0.2.31", "allow", "STALE", "0"]).unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.31").unwrap().unwrap();
    assert_eq!(h, hit("allow", "", "api", 86400, "ipcheck:192.0.2.31"));
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.31")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "0;0");

    // The text form carries the window too.
    ipcheck::set(
        &mut con,
        &[
            "192.0.2.32",
            "challenge",
            "REASON",
            "spam",
            "SOURCE",
            "feed",
            "EX",
            "60",
            "STALE",
            "600",
        ],
    )
    .unwrap();
    let raw: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.32")
        .query(&mut con)
        .unwrap();
    assert_eq!(raw, "c:feed:spam:600");
    let h = ipcheck::get(&mut con, "192.0.2.32").unwrap().unwrap();
    assert!(h.fresh && h.fresh_ttl == 60 && h.ttl == 660, "{h:?}");

    // A value an older module wrote (no window) is fresh until gone.
    let _: () = redis::cmd("SET")
        .arg("ipcheck:192.0.2.33")
        .arg("321")
        .arg("EX")
        .arg(50)
        .query(&mut con)
        .unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.33").unwrap().unwrap();
    assert_eq!(h, hit("block", "vpn,tor", "api", 50, "ipcheck:192.0.2.33"));

    // A manual pin written over a stale entry is never stale.
    ipcheck::set(
        &mut con,
        &["192.0.2.32", "block", "SOURCE", "manual", "EX", "60"],
    )
    .unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.32").unwrap().unwrap();
    assert!(h.fresh && h.ttl == 60, "{h:?}");
}

#[test]
fn manual_pins_and_force() {
    let server = RedisServer::start();
    let mut con = server.client();
    let ip = "198.51.100.4";
    ipcheck::set(
        &mut con,
        &[ip, "allow", "SOURCE", "manual", "REASON", "allowlist"],
    )
    .unwrap();
    // Another source leaves the pin alone and says so with nil.
    assert_eq!(
        ipcheck::set(&mut con, &[ip, "block", "SOURCE", "api"]).unwrap(),
        None
    );
    assert_eq!(ipcheck::set(&mut con, &[ip, "block"]).unwrap(), None);
    let h = ipcheck::get(&mut con, ip).unwrap().unwrap();
    assert_eq!((h.verdict.as_str(), h.source.as_str()), ("allow", "manual"));
    // A manual SET always wins.
    assert_eq!(
        ipcheck::set(&mut con, &[ip, "challenge", "SOURCE", "manual"]).unwrap(),
        Some("OK".into())
    );
    assert_eq!(ipcheck::verdict(&mut con, ip), "challenge");
    // FORCE replaces the pin.
    assert_eq!(
        ipcheck::set(&mut con, &[ip, "block", "FORCE", "REASON", "tor"]).unwrap(),
        Some("OK".into())
    );
    let h = ipcheck::get(&mut con, ip).unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.source.as_str(), h.reason.as_str()),
        ("block", "api", "tor")
    );
    // Non-manual entries are simply replaced.
    assert_eq!(
        ipcheck::set(&mut con, &[ip, "allow"]).unwrap(),
        Some("OK".into())
    );
    // Kept pins are not counted as sets.
    assert_eq!(ipcheck::stat(&mut con, "sets"), 4);
}

#[test]
fn del_key_stats_help() {
    let server = RedisServer::start();
    let mut con = server.client();
    assert_eq!(ipcheck::del(&mut con, "192.0.2.1").unwrap(), 0);
    ipcheck::set(&mut con, &["192.0.2.1", "block"]).unwrap();
    assert_eq!(ipcheck::del(&mut con, "::ffff:192.0.2.1").unwrap(), 1);
    assert_eq!(ipcheck::get(&mut con, "192.0.2.1").unwrap(), None);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0);

    assert_eq!(
        ipcheck::key(&mut con, "[2001:DB8::1]").unwrap(),
        "ipcheck:2001:db8::/64"
    );
    assert_eq!(
        ipcheck::key(&mut con, "::FFFF:c000:201").unwrap(),
        "ipcheck:192.0.2.1"
    );
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0, "KEY reads and writes nothing");

    let _ = ipcheck::get(&mut con, "192.0.2.1"); // miss
    ipcheck::set(&mut con, &["192.0.2.2", "allow"]).unwrap();
    let _ = ipcheck::get(&mut con, "192.0.2.2"); // hit
    let _ = ipcheck::get(&mut con, "not-an-ip"); // error
    let stats = ipcheck::stats(&mut con).unwrap();
    let names: Vec<&str> = stats.iter().map(|(n, _)| n.as_str()).collect();
    // New counters are appended, so readers of the first five by position keep working.
    assert_eq!(
        names,
        [
            "hits",
            "misses",
            "sets",
            "deletes",
            "errors",
            "handler_panics",
            "filter_panics"
        ]
    );
    let values: Vec<i64> = stats.iter().map(|(_, v)| *v).collect();
    // Misses: the GET after DEL and the one above; the error is not a miss; no bug caught.
    assert_eq!(values, [1, 2, 2, 1, 1, 0, 0]);

    let help: Vec<String> = redis::cmd("IPCHECK").arg("HELP").query(&mut con).unwrap();
    assert!(help[0].starts_with("IPCHECK <subcommand>"));
    for sub in [
        "GET <ip>",
        "SET <ip> <verdict>",
        "DEL <ip>",
        "KEY <ip>",
        "STATS",
        "HELP",
    ] {
        assert!(
            help.iter().any(|l| l.starts_with(sub)),
            "{sub} missing from {help:?}"
        );
    }
}

#[test]
fn malformed_calls_get_precise_errors() {
    let server = RedisServer::start();
    let mut con = server.client();
    let call = |con: &mut redis::Connection, args: &[&str]| -> String {
        err_text(redis::cmd("IPCHECK").arg(args).query::<Value>(con))
    };
    for (args, needle) in [
        (&["GET", "1.2.3"][..], "invalid IP address '1.2.3'"),
        (&["GET", "010.0.0.1"][..], "invalid IP address"),
        (&["GET", "fe80::1%eth0"][..], "zone index"),
        (&["GET", ""][..], "empty address"),
        (&["SET", "192.0.2.1", "deny"][..], "invalid verdict 'deny'"),
        (
            &["SET", "192.0.2.1", "block", "EX", "0"][..],
            "EX must be an integer from 1 to 31536000, got '0'",
        ),
        (
            &["SET", "192.0.2.1", "block", "EX", "31536001"][..],
            "EX must be",
        ),
        (
            &["SET", "192.0.2.1", "block", "EX", "1.5"][..],
            "EX must be",
        ),
        (&["SET", "192.0.2.1", "block", "EX"][..], "EX needs a value"),
        (
            &["SET", "192.0.2.1", "block", "STALE", "-1"][..],
            "STALE must be an integer from 0 to 31536000, got '-1'",
        ),
        (
            &["SET", "192.0.2.1", "block", "STALE", "31536001"][..],
            "STALE must be",
        ),
        (
            &["SET", "192.0.2.1", "block", "STALE", "1", "stale", "2"][..],
            "STALE given more than once",
        ),
        (
            &["SET", "192.0.2.1", "block", "STALE"][..],
            "STALE needs a value",
        ),
        (
            &[
                "SET",
                "192.0.2.1",
                "block",
                "SOURCE",
                "manual",
                "STALE",
                "60",
            ][..],
            "STALE does not apply to SOURCE manual",
        ),
        (
            &["SET", "192.0.2.1", "block", "EX", "5", "EX", "6"][..],
            "EX given more than once",
        ),
        (
            &["SET", "192.0.2.1", "block", "REASON", "VPN"][..],
            "REASON: invalid token 'VPN'",
        ),
        (
            &["SET", "192.0.2.1", "block", "REASON", "vpn,,tor"][..],
            "REASON",
        ),
        (
            &["SET", "192.0.2.1", "block", "SOURCE", "a,b"][..],
            "SOURCE: invalid token",
        ),
        (
            &["SET", "192.0.2.1", "block", "NX"][..],
            "unknown option 'NX'",
        ),
        (
            &["SET", "192.0.2.1", "block", "FORCE", "force"][..],
            "FORCE given more than once",
        ),
        (&["SET", "192.0.2.1"][..], "wrong number of arguments"),
        (&["GET"][..], "wrong number of arguments"),
        (
            &["GET", "1.2.3.4", "extra"][..],
            "wrong number of arguments",
        ),
        (&["NOPE", "1.2.3.4"][..], "unknown subcommand"),
    ] {
        let e = call(&mut con, args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let long_reason = "a".repeat(129);
    let e = call(
        &mut con,
        &["SET", "192.0.2.1", "block", "REASON", &long_reason],
    );
    assert!(e.contains("at most 128"), "{e}");
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0, "no failed call wrote anything");
}

#[test]
fn wrongtype_and_foreign_values() {
    let server = RedisServer::start();
    let mut con = server.client();
    let _: () = redis::cmd("HSET")
        .arg("ipcheck:192.0.2.1")
        .arg("f")
        .arg("v")
        .query(&mut con)
        .unwrap();
    for args in [
        &["GET", "192.0.2.1"][..],
        &["SET", "192.0.2.1", "block"],
        &["DEL", "192.0.2.1"],
    ] {
        let e = err_text(redis::cmd("IPCHECK").arg(args).query::<Value>(&mut con));
        assert!(e.contains("WRONGTYPE"), "{args:?}: {e}");
    }
    let _: () = redis::cmd("SET")
        .arg("ipcheck:192.0.2.2")
        .arg("hello")
        .query(&mut con)
        .unwrap();
    let e = err_text(ipcheck::get(&mut con, "192.0.2.2"));
    assert!(
        e.contains("key 'ipcheck:192.0.2.2' holds a value that is not an ipcheck entry"),
        "{e}"
    );
    // A valid value left by another writer without a TTL reads with ttl -1.
    let _: () = redis::cmd("SET")
        .arg("ipcheck:192.0.2.3")
        .arg("321")
        .query(&mut con)
        .unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.3").unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.reason.as_str(), h.ttl),
        ("block", "vpn,tor", -1)
    );
    // SET replaces a foreign string, as SET would; DEL removes it.
    assert_eq!(
        ipcheck::set(&mut con, &["192.0.2.2", "allow"]).unwrap(),
        Some("OK".into())
    );
    assert_eq!(ipcheck::del(&mut con, "192.0.2.2").unwrap(), 1);
}

#[test]
fn keys_can_be_given_directly() {
    // After the command filter, handlers see keys; a client may also send them itself.
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["ipcheck:192.0.2.1", "block"]).unwrap();
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "block");
    // Only exact canonical keys count; anything else is an address and refused as such.
    let e = err_text(ipcheck::get(&mut con, "ipcheck:192.0.2.01"));
    assert!(e.contains("invalid IP address"), "{e}");
    let e = err_text(ipcheck::get(&mut con, "ipcheck:2001:db8::1"));
    assert!(e.contains("invalid IP address"), "{e}");
}

#[test]
fn command_metadata() {
    let server = RedisServer::start();
    let mut con = server.client();
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("IPCHECK")
        .arg("GET")
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, ["192.0.2.1"]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("IPCHECK")
        .arg("SET")
        .arg("2001:db8::/64")
        .arg("block")
        .arg("EX")
        .arg("5")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, ["2001:db8::/64"]);
    // Per-subcommand flags, as COMMAND INFO reports them.
    let info: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("ipcheck|get")
        .arg("ipcheck|set")
        .arg("ipcheck|del")
        .arg("ipcheck|key")
        .arg("ipcheck|stats")
        .arg("ipcheck|help")
        .query(&mut con)
        .unwrap();
    let Value::Array(entries) = info else {
        panic!("{info:?}")
    };
    let flags = |i: usize| -> Vec<String> {
        let Value::Array(entry) = &entries[i] else {
            panic!()
        };
        let Value::Array(f) = &entry[2] else { panic!() };
        f.iter()
            .map(|v| match v {
                Value::SimpleString(s) => s.clone(),
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    for i in [0, 3, 4, 5] {
        let f = flags(i);
        assert!(
            f.contains(&"readonly".into()) && f.contains(&"fast".into()),
            "{i}: {f:?}"
        );
    }
    for i in [1, 2] {
        let f = flags(i);
        assert!(
            f.contains(&"write".into()) && f.contains(&"denyoom".into()),
            "{i}: {f:?}"
        );
    }
}

#[test]
fn transactions_and_keyspace_behave_like_core_commands() {
    let server = RedisServer::start();
    let mut con = server.client();
    let (a, b): (Value, Value) = redis::pipe()
        .atomic()
        .cmd("IPCHECK")
        .arg("SET")
        .arg("192.0.2.1")
        .arg("block")
        .cmd("IPCHECK")
        .arg("GET")
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert!(matches!(a, Value::Okay | Value::SimpleString(_)), "{a:?}");
    assert_eq!(ipcheck::parse_get_reply(b).unwrap().verdict, "block");
    // The entry is an ordinary string key: TYPE, OBJECT, MEMORY USAGE all work.
    let t: String = redis::cmd("TYPE")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(t, "string");
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert!(usage > 0 && usage < 100, "{usage}");
}

#[test]
fn writes_fire_keyspace_events() {
    let server = RedisServer::start();
    let mut admin = server.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KEA")
        .query(&mut admin)
        .unwrap();
    let mut sub = server.client();
    let mut pubsub = sub.as_pubsub();
    pubsub.psubscribe("__keyevent@0__:*").unwrap();
    pubsub
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    ipcheck::set(&mut admin, &["192.0.2.1", "block"]).unwrap();
    ipcheck::del(&mut admin, "192.0.2.1").unwrap();
    let mut events = Vec::new();
    for _ in 0..3 {
        let msg = pubsub.get_message().unwrap();
        let key: String = msg.get_payload().unwrap();
        events.push(format!("{} {key}", msg.get_channel_name()));
    }
    assert_eq!(
        events,
        [
            "__keyevent@0__:set ipcheck:192.0.2.1",
            "__keyevent@0__:expire ipcheck:192.0.2.1",
            "__keyevent@0__:del ipcheck:192.0.2.1",
        ]
    );
}

#[test]
fn writes_are_deny_oom_reads_are_not() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "block"]).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(1)
        .query(&mut con)
        .unwrap();
    let e = err_text(ipcheck::set(&mut con, &["192.0.2.2", "block"]));
    assert!(e.contains("OOM"), "{e}");
    let e = err_text(ipcheck::del(&mut con, "192.0.2.1"));
    assert!(e.contains("OOM"), "{e}");
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "block");
    assert_eq!(
        ipcheck::key(&mut con, "192.0.2.1").unwrap(),
        "ipcheck:192.0.2.1"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut con)
        .unwrap();
}

#[test]
fn watch_sees_real_changes_only() {
    let server = RedisServer::start();
    let mut con = server.client();
    let mut other = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "allow", "SOURCE", "manual"]).unwrap();
    // Returns whether a WATCHed transaction survived `meddle`.
    let mut survives = |meddle: &dyn Fn(&mut redis::Connection)| -> bool {
        let _: () = redis::cmd("WATCH")
            .arg("ipcheck:192.0.2.1")
            .query(&mut con)
            .unwrap();
        meddle(&mut other);
        let r: Value = redis::pipe().atomic().cmd("PING").query(&mut con).unwrap();
        r != Value::Nil
    };
    // A SET that keeps the manual pin changes nothing.
    assert!(survives(&|c| assert_eq!(
        ipcheck::set(c, &["192.0.2.1", "block"]).unwrap(),
        None
    )));
    assert!(survives(&|c| assert_eq!(
        ipcheck::del(c, "192.0.2.99").unwrap(),
        0
    )));
    assert!(survives(&|c| {
        ipcheck::get(c, "192.0.2.1").unwrap();
    }));
    // Real writes abort the transaction.
    assert!(!survives(&|c| {
        ipcheck::set(c, &["192.0.2.1", "block", "FORCE"]).unwrap();
    }));
    assert!(!survives(&|c| assert_eq!(
        ipcheck::del(c, "192.0.2.1").unwrap(),
        1
    )));
}

/// `CONFIG SET ipcheck.key-prefix` replaces the prefix while another client keeps building keys
/// from it: every key the module names or writes is the address under one of the prefixes that
/// were in force, and nothing crashes or panics (the prefix is copied, never borrowed).
#[test]
fn key_prefix_changes_under_pipelined_load() {
    use std::sync::atomic::{AtomicBool, Ordering};

    const ROUNDS: usize = 1_000;
    let long = format!("{}:", "q".repeat(63));
    let prefixes = ["pa:".to_owned(), long];
    let ip = "192.0.2.1";
    let keys: Vec<String> = prefixes.iter().map(|p| format!("{p}{ip}")).collect();
    let server = RedisServer::start();
    let mut admin = server.client();
    let mut worker = server.client();
    let done = AtomicBool::new(false);
    let set_prefix = |con: &mut redis::Connection, prefix: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("ipcheck.key-prefix")
            .arg(prefix)
            .query(con)
            .expect("CONFIG SET ipcheck.key-prefix");
    };
    // From the first call on, only these two prefixes are ever in force.
    set_prefix(&mut admin, &prefixes[1]);

    let pipelines = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut pipelines = 0usize;
            let mut seen = [false; 2];
            // Keep going until the prefix has stopped changing, and at least a few times.
            while !done.load(Ordering::Relaxed) || pipelines < 20 {
                let replies: Vec<Value> = redis::pipe()
                    .cmd("IPCHECK")
                    .arg("KEY")
                    .arg(ip)
                    .cmd("IPCHECK")
                    .arg("SET")
                    .arg(ip)
                    .arg("block")
                    .cmd("IPCHECK")
                    .arg("GET")
                    .arg(ip)
                    .cmd("IPCHECK")
                    .arg("KEY")
                    .arg("::ffff:192.0.2.1")
                    .cmd("IPCHECK")
                    .arg("DEL")
                    .arg(ip)
                    .query(&mut worker)
                    .expect("pipelined IPCHECK calls while the prefix changes");
                let [named, stored, got, named_again, deleted] = &replies[..] else {
                    panic!("5 replies expected: {replies:?}");
                };
                for k in [named, named_again] {
                    let k: String = redis::from_redis_value(k.clone()).unwrap();
                    let which = keys.iter().position(|known| *known == k);
                    let which = which.unwrap_or_else(|| panic!("IPCHECK KEY named {k:?}"));
                    seen[which] = true;
                }
                assert_eq!(*stored, Value::Okay, "{replies:?}");
                // The GET may run under the other prefix than the SET (then it misses).
                if let Some(hit) = ipcheck::parse_get_reply(got.clone()) {
                    assert!(keys.contains(&hit.key), "IPCHECK GET named {:?}", hit.key);
                    assert_eq!(hit.verdict, "block");
                }
                assert!(matches!(deleted, Value::Int(0 | 1)), "{replies:?}");
                pipelines += 1;
            }
            assert_eq!(
                seen, [true; 2],
                "the calls never ran between two prefix changes"
            );
            pipelines
        });
        for i in 0..ROUNDS {
            set_prefix(&mut admin, &prefixes[i % 2]);
        }
        done.store(true, Ordering::Relaxed);
        load.join().expect("the pipelined client")
    });

    let pong: String = redis::cmd("PING").query(&mut admin).unwrap();
    assert_eq!(pong, "PONG");
    // The last prefix set is the one in force, for CONFIG GET and for the module alike.
    let last = &prefixes[(ROUNDS - 1) % 2];
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("ipcheck.key-prefix")
        .query(&mut admin)
        .unwrap();
    assert_eq!(pair[1], *last);
    assert_eq!(ipcheck::key(&mut admin, ip).unwrap(), format!("{last}{ip}"));
    // Whatever SETs landed between a SET and its DEL under another prefix, every key in the
    // keyspace is the address under one of the two prefixes.
    let stored: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut admin).unwrap();
    assert!(stored.iter().all(|k| keys.contains(k)), "{stored:?}");
    assert_eq!(ipcheck::stat(&mut admin, "handler_panics"), 0);
    assert_eq!(ipcheck::stat(&mut admin, "filter_panics"), 0);
    assert!(!server.log().contains("bug caught"), "{}", server.log());
    eprintln!("{pipelines} pipelines of 5 IPCHECK calls ran across {ROUNDS} prefix changes");
}

#[test]
fn persist_pins_never_expire_and_only_pins_may() {
    let server = RedisServer::start();
    let mut con = server.client();
    let ip = "198.51.100.9";
    let ttl = |con: &mut redis::Connection| -> i64 {
        redis::cmd("TTL")
            .arg("ipcheck:198.51.100.9")
            .query(con)
            .unwrap()
    };
    // Over an expiring answer, a PERSIST pin drops the TTL.
    ipcheck::set(&mut con, &[ip, "allow", "EX", "600"]).unwrap();
    assert_eq!(
        ipcheck::set(&mut con, &[ip, "block", "persist", "SOURCE", "manual"]).unwrap(),
        Some("OK".into())
    );
    assert_eq!(ttl(&mut con), -1);
    let h = ipcheck::get(&mut con, ip).unwrap().unwrap();
    assert_eq!((h.verdict.as_str(), h.source.as_str()), ("block", "manual"));
    assert!(h.ttl == -1 && h.fresh && h.fresh_ttl == -1, "{h:?}");
    // A manual SET with EX gives it a lifetime again; without EX or PERSIST the default one.
    ipcheck::set(&mut con, &[ip, "block", "SOURCE", "manual", "EX", "60"]).unwrap();
    assert!((1..=60).contains(&ttl(&mut con)));
    ipcheck::set(&mut con, &[ip, "block", "SOURCE", "manual"]).unwrap();
    assert!(ttl(&mut con) > 60);
    // Refused: with EX, without SOURCE manual, twice. Nothing is written.
    let e = err_text(ipcheck::set(
        &mut con,
        &[ip, "allow", "PERSIST", "EX", "5", "SOURCE", "manual"],
    ));
    assert!(e.contains("PERSIST and EX"), "{e}");
    let e = err_text(ipcheck::set(&mut con, &["192.0.2.77", "allow", "PERSIST"]));
    assert!(e.contains("PERSIST needs SOURCE manual"), "{e}");
    let e = err_text(ipcheck::set(
        &mut con,
        &[ip, "allow", "PERSIST", "PERSIST", "SOURCE", "manual"],
    ));
    assert!(e.contains("PERSIST given more than once"), "{e}");
    assert_eq!(ipcheck::get(&mut con, "192.0.2.77").unwrap(), None);
    assert_eq!(ipcheck::verdict(&mut con, ip), "block");
}
