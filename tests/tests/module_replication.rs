//! Replication and persistence: replicas and the AOF get absolute expiries, and entries with
//! their TTLs survive DEBUG RELOAD, an RDB restart and an AOF restart.

use std::time::Duration;

use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::{Connection, Value};

fn pexpiretime(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(con).unwrap()
}

#[test]
fn replica_sees_sets_with_the_same_absolute_expiry_and_serves_get() {
    let master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&master).start();
    replica.wait_replica_synced();
    let mut m = master.client();
    let mut r = replica.client();

    ipcheck::set(
        &mut m,
        &["192.0.2.1", "block", "EX", "600", "REASON", "vpn"],
    )
    .unwrap();
    ipcheck::set(
        &mut m,
        &["2001:db8:1:2::1", "challenge", "SOURCE", "manual"],
    )
    .unwrap();
    RedisServer::wait_replica_acked(&mut m);
    // Some time passes before the replica is asked: it must not have restarted the clock.
    std::thread::sleep(Duration::from_millis(1100));
    for key in ["ipcheck:192.0.2.1", "ipcheck:2001:db8:1:2::/64"] {
        let at = pexpiretime(&mut m, key);
        assert!(at > 0);
        assert_eq!(pexpiretime(&mut r, key), at, "{key}");
    }
    let hm = ipcheck::get(&mut m, "192.0.2.1").unwrap().unwrap();
    let hr = ipcheck::get(&mut r, "192.0.2.1").unwrap().unwrap();
    assert_eq!((hr.verdict.as_str(), hr.reason.as_str()), ("block", "vpn"));
    assert!(
        (hr.ttl - hm.ttl).abs() <= 1 && hr.ttl < 600,
        "{hr:?} vs {hm:?}"
    );
    let h = ipcheck::get(&mut r, "2001:db8:1:2::ffff").unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.source.as_str()),
        ("challenge", "manual")
    );

    // A kept manual pin replicates nothing; FORCE and DEL do.
    assert_eq!(
        ipcheck::set(&mut m, &["2001:db8:1:2::1", "allow"]).unwrap(),
        None
    );
    ipcheck::set(&mut m, &["192.0.2.1", "allow", "FORCE"]).unwrap();
    ipcheck::del(&mut m, "2001:db8:1:2::1").unwrap();
    RedisServer::wait_replica_acked(&mut m);
    assert_eq!(ipcheck::verdict(&mut r, "192.0.2.1"), "allow");
    assert_eq!(ipcheck::get(&mut r, "2001:db8:1:2::1").unwrap(), None);

    // Replicated writes are plain SET/DEL: the master's stream never carries IPCHECK.
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut r)
        .unwrap();
    assert!(!info.contains("ipcheck|set"), "{info}");
    // The replica is read-only for IPCHECK writes, like any write command.
    let e = err_text(ipcheck::set(&mut r, &["192.0.2.1", "block"]));
    assert!(e.to_lowercase().contains("readonly"), "{e}");
}

#[test]
fn a_persistent_pin_replicates_and_replays_without_expiry() {
    let (mut master, replica) = RedisServer::with_aof_and_replica();
    let mut m = master.client();
    let mut r = replica.client();
    // First an expiring provider answer, then a pin over it: the pin must drop the TTL.
    ipcheck::set(&mut m, &["192.0.2.50", "allow", "EX", "600"]).unwrap();
    ipcheck::set(
        &mut m,
        &[
            "192.0.2.50",
            "block",
            "SOURCE",
            "manual",
            "REASON",
            "abuse",
            "PERSIST",
        ],
    )
    .unwrap();
    RedisServer::wait_replica_acked(&mut m);
    let key = "ipcheck:192.0.2.50";
    assert_eq!(pexpiretime(&mut m, key), -1, "no expiry on the primary");
    assert_eq!(pexpiretime(&mut r, key), -1, "no expiry on the replica");
    let h = ipcheck::get(&mut r, "192.0.2.50").unwrap().unwrap();
    assert_eq!(
        (h.verdict.as_str(), h.source.as_str(), h.reason.as_str()),
        ("block", "manual", "abuse")
    );
    assert!(h.ttl == -1 && h.fresh && h.fresh_ttl == -1, "{h:?}");
    drop(replica);

    // The AOF carries the pin as a SET without PXAT after the earlier one with it.
    let aof = master.aof_text();
    assert!(aof.contains("PXAT"), "{aof}");
    master.kill();
    master.restart();
    let mut con = master.client();
    assert_eq!(pexpiretime(&mut con, key), -1);
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.50"), "block");
}

#[test]
fn replica_and_aof_carry_the_stale_window() {
    let (mut master, replica) = RedisServer::with_aof_and_replica();
    let mut m = master.client();
    let mut r = replica.client();
    // Fresh for 1 s, then stale for 1 h: the replica and a replay must both see it go stale.
    ipcheck::set(
        &mut m,
        &[
            "192.0.2.40",
            "block",
            "REASON",
            "tor",
            "EX",
            "1",
            "STALE",
            "3600",
        ],
    )
    .unwrap();
    RedisServer::wait_replica_acked(&mut m);
    let key = "ipcheck:192.0.2.40";
    let at = pexpiretime(&mut m, key);
    assert_eq!(
        pexpiretime(&mut r, key),
        at,
        "same absolute end of the stale window"
    );
    let stale = |con: &mut Connection| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let h = ipcheck::get(con, "192.0.2.40").unwrap().unwrap();
            if !h.fresh {
                return h;
            }
            assert!(std::time::Instant::now() < deadline, "never stale: {h:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let hr = stale(&mut r);
    assert_eq!((hr.verdict.as_str(), hr.reason.as_str()), ("block", "tor"));
    assert_eq!(hr.fresh_ttl, 0);
    assert!(
        hr.ttl > 3500,
        "the replica keeps it for the stale window: {hr:?}"
    );
    stale(&mut m);
    drop(replica);

    // The AOF replays the window: after a restart the entry is still there, and stale.
    let aof = master.aof_text();
    assert!(aof.contains("PXAT"), "{aof}");
    master.kill();
    master.restart();
    let mut con = master.client();
    assert_eq!(pexpiretime(&mut con, key), at);
    let h = ipcheck::get(&mut con, "192.0.2.40").unwrap().unwrap();
    assert!(!h.fresh && h.verdict == "block" && h.ttl > 3500, "{h:?}");
}

#[test]
fn entries_and_ttls_survive_debug_reload() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(
        &mut con,
        &["192.0.2.1", "block", "EX", "500", "REASON", "tor"],
    )
    .unwrap();
    ipcheck::set(
        &mut con,
        &["203.0.113.5", "allow", "SOURCE", "my-list", "REASON", "x"],
    )
    .unwrap();
    let before = [
        pexpiretime(&mut con, "ipcheck:192.0.2.1"),
        pexpiretime(&mut con, "ipcheck:203.0.113.5"),
    ];
    let _: Value = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    let after = [
        pexpiretime(&mut con, "ipcheck:192.0.2.1"),
        pexpiretime(&mut con, "ipcheck:203.0.113.5"),
    ];
    assert_eq!(before, after);
    // A loaded value stays a string, never an int-encoded one (whose first read through the
    // module's zero-copy access would copy it into a new, larger allocation).
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(encoding, "embstr");
    let h = ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap();
    assert_eq!((h.verdict.as_str(), h.reason.as_str()), ("block", "tor"));
    let h = ipcheck::get(&mut con, "203.0.113.5").unwrap().unwrap();
    assert_eq!((h.source.as_str(), h.reason.as_str()), ("my-list", "x"));
}

#[test]
fn entries_and_ttls_survive_an_rdb_restart() {
    let mut server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "challenge", "EX", "900"]).unwrap();
    let at = pexpiretime(&mut con, "ipcheck:192.0.2.1");
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(pexpiretime(&mut con, "ipcheck:192.0.2.1"), at);
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "challenge");
}

#[test]
fn aof_carries_absolute_expiry_and_survives_restart() {
    let mut server = RedisServer::builder()
        .conf("appendonly yes")
        .conf("appendfsync always")
        .start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "block", "EX", "3"]).unwrap();
    ipcheck::set(&mut con, &["192.0.2.2", "allow", "SOURCE", "manual"]).unwrap();
    ipcheck::set(&mut con, &["192.0.2.3", "allow"]).unwrap();
    ipcheck::del(&mut con, "192.0.2.3").unwrap();
    let at = pexpiretime(&mut con, "ipcheck:192.0.2.1");

    let aof = server.aof_text();
    assert!(aof.contains("PXAT"), "{aof}");
    assert!(
        !aof.to_lowercase().contains("ipcheck\r\n$3\r\nset"),
        "{aof}"
    );
    assert!(aof.contains("DEL"), "{aof}");

    // Crash, wait, replay: the replayed entry keeps its original deadline.
    std::thread::sleep(Duration::from_millis(1200));
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(pexpiretime(&mut con, "ipcheck:192.0.2.1"), at);
    let h = ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap();
    assert!(h.ttl <= 2, "{h:?}");
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.2").unwrap().unwrap().source,
        "manual"
    );
    assert_eq!(ipcheck::get(&mut con, "192.0.2.3").unwrap(), None);
}
