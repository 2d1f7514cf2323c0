//! Network lists (`IPCHECK NETADD/NETDEL/NETMATCH/NETINFO/NETDUMP`, issue #12): longest-prefix
//! matches over IPv4 and IPv6, values, absolute expiries, persistence (DEBUG RELOAD, RDB, AOF
//! and its rewrite), replicas, RENAME of a staging list, ACL, Lua, cluster routing and a fuzz.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipcheck_tests::ipcheck::err_text;
use ipcheck_tests::RedisServer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, RedisResult, Value};

/// The key of list `name` under the default prefix.
fn lk(name: &str) -> String {
    format!("ipcheck:{{lists}}:{name}")
}

fn netadd(con: &mut Connection, list: &str, args: &[&str]) -> RedisResult<i64> {
    redis::cmd("IPCHECK")
        .arg("NETADD")
        .arg(lk(list))
        .arg(args)
        .query(con)
}

fn netdel(con: &mut Connection, list: &str, nets: &[&str]) -> RedisResult<i64> {
    redis::cmd("IPCHECK")
        .arg("NETDEL")
        .arg(lk(list))
        .arg(nets)
        .query(con)
}

/// `[network, value, list]` of the longest match, or `None`.
fn netmatch(con: &mut Connection, ip: &str, lists: &[&str]) -> RedisResult<Option<Vec<String>>> {
    let keys: Vec<String> = lists.iter().map(|l| lk(l)).collect();
    redis::cmd("IPCHECK")
        .arg("NETMATCH")
        .arg(ip)
        .arg(keys)
        .query(con)
}

/// The matched `(network, value)` in `list`, or `None`; panics on an error.
fn matched(con: &mut Connection, ip: &str, list: &str) -> Option<(String, String)> {
    netmatch(con, ip, &[list])
        .unwrap()
        .map(|m| (m[0].clone(), m[1].clone()))
}

fn netinfo(con: &mut Connection, list: &str) -> Option<(i64, i64, i64)> {
    let v: Option<Vec<Value>> = redis::cmd("IPCHECK")
        .arg("NETINFO")
        .arg(lk(list))
        .query(con)
        .unwrap();
    let v = v?;
    let int = |i: usize| match &v[i] {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    };
    Some((int(1), int(3), int(5)))
}

/// Every `(network, value, expires-at)` of `list` by a NETDUMP walk of `count` per call.
fn dump(con: &mut Connection, list: &str, count: usize) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<(String, String, i64)>) = redis::cmd("IPCHECK")
            .arg("NETDUMP")
            .arg(lk(list))
            .arg(&cursor)
            .arg("COUNT")
            .arg(count)
            .query(con)
            .unwrap();
        assert!(page.len() <= count);
        out.extend(page);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` (every 20 ms, up to 10 s) until it holds.
fn await_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small list with values and an expiry far ahead, in both families.
fn fill(con: &mut Connection, list: &str) -> i64 {
    let later = (now_ms() + 3_600_000).to_string();
    netadd(
        con,
        list,
        &[
            "10.0.0.0/8",
            "VALUE",
            "hosting",
            "10.1.0.0/16",
            "VALUE",
            "tor,vpn",
            "PXAT",
            &later,
            "192.0.2.7",
            "2001:db8::/32",
            "VALUE",
            "crawler",
            "2001:db8:1::/48",
            "value",
            "tor",
        ],
    )
    .unwrap()
}

#[test]
fn longest_prefix_across_families_values_and_lists() {
    let server = RedisServer::start();
    let mut con = server.client();
    assert_eq!(fill(&mut con, "a"), 5);
    let m = |con: &mut Connection, ip| matched(con, ip, "a");
    assert_eq!(
        m(&mut con, "10.1.2.3"),
        Some(("10.1.0.0/16".into(), "tor,vpn".into()))
    );
    assert_eq!(
        m(&mut con, "10.9.2.3"),
        Some(("10.0.0.0/8".into(), "hosting".into()))
    );
    assert_eq!(
        m(&mut con, "192.0.2.7"),
        Some(("192.0.2.7/32".into(), String::new()))
    );
    assert_eq!(m(&mut con, "192.0.2.8"), None);
    assert_eq!(
        m(&mut con, "2001:db8:1:ffff::1"),
        Some(("2001:db8:1::/48".into(), "tor".into()))
    );
    assert_eq!(
        m(&mut con, "2001:DB8:2::1"),
        Some(("2001:db8::/32".into(), "crawler".into()))
    );
    // IPv4-mapped IPv6 is IPv4, for the address and for networks.
    assert_eq!(
        m(&mut con, "::ffff:10.1.0.1"),
        Some(("10.1.0.0/16".into(), "tor,vpn".into()))
    );
    assert_eq!(
        netadd(&mut con, "b", &["::ffff:198.51.100.9/120"]).unwrap(),
        1
    );
    assert_eq!(
        matched(&mut con, "198.51.100.200", "b"),
        Some(("198.51.100.0/24".into(), String::new()))
    );
    // Host bits are zeroed: the same network replaces, and counts as not new.
    assert_eq!(
        netadd(&mut con, "a", &["10.77.0.1/8", "VALUE", "changed"]).unwrap(),
        0
    );
    assert_eq!(
        m(&mut con, "10.9.2.3"),
        Some(("10.0.0.0/8".into(), "changed".into()))
    );

    // Across lists the longest wins; on a tie the list given first.
    netadd(
        &mut con,
        "c",
        &["10.1.2.0/24", "VALUE", "c24", "10.0.0.0/8", "VALUE", "c8"],
    )
    .unwrap();
    let r = netmatch(&mut con, "10.1.2.3", &["a", "c", "missing"])
        .unwrap()
        .unwrap();
    assert_eq!(r, vec!["10.1.2.0/24", "c24", &lk("c")]);
    let r = netmatch(&mut con, "10.200.0.1", &["c", "a"])
        .unwrap()
        .unwrap();
    assert_eq!(r, vec!["10.0.0.0/8", "c8", &lk("c")]);
    let r = netmatch(&mut con, "10.200.0.1", &["a", "c"])
        .unwrap()
        .unwrap();
    assert_eq!(r, vec!["10.0.0.0/8", "changed", &lk("a")]);
    assert_eq!(
        netmatch(&mut con, "203.0.113.1", &["a", "c", "zzz"]).unwrap(),
        None
    );
    assert_eq!(netmatch(&mut con, "10.0.0.1", &["zzz"]).unwrap(), None);
    let t: String = redis::cmd("TYPE").arg(lk("a")).query(&mut con).unwrap();
    assert_eq!(t, "ipchk-net");
}

#[test]
fn expiry_past_and_near_future() {
    let server = RedisServer::start();
    let mut con = server.client();
    // A PXAT already past adds nothing, and no key appears.
    assert_eq!(
        netadd(&mut con, "e", &["10.0.0.0/8", "PXAT", "1"]).unwrap(),
        0
    );
    let exists: i64 = redis::cmd("EXISTS").arg(lk("e")).query(&mut con).unwrap();
    assert_eq!(exists, 0);
    assert_eq!(netinfo(&mut con, "e"), None);

    let soon = (now_ms() + 400).to_string();
    netadd(
        &mut con,
        "e",
        &[
            "10.0.0.0/8",
            "VALUE",
            "wide",
            "10.1.0.0/16",
            "VALUE",
            "soon",
            "PXAT",
            &soon,
        ],
    )
    .unwrap();
    assert_eq!(
        matched(&mut con, "10.1.0.1", "e"),
        Some(("10.1.0.0/16".into(), "soon".into()))
    );
    // Once expired, the shorter network matches again; the expired one is not listed.
    await_until("the /16 expires", || {
        matched(&mut con, "10.1.0.1", "e") == Some(("10.0.0.0/8".into(), "wide".into()))
    });
    assert_eq!(netinfo(&mut con, "e").unwrap().0, 1);
    assert_eq!(dump(&mut con, "e", 10).len(), 1);
    // A PXAT in the past on an existing network removes it.
    netadd(&mut con, "e", &["10.0.0.0/8", "PXAT", "1000"]).unwrap();
    assert_eq!(matched(&mut con, "10.1.0.1", "e"), None);
    let exists: i64 = redis::cmd("EXISTS").arg(lk("e")).query(&mut con).unwrap();
    assert_eq!(exists, 0, "a list left empty is deleted");
}

#[test]
fn remove_info_and_dump_walk() {
    let server = RedisServer::start();
    let mut con = server.client();
    fill(&mut con, "r");
    let (v4, v6, mem) = netinfo(&mut con, "r").unwrap();
    assert_eq!((v4, v6), (3, 2));
    assert!(mem > 0);
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(lk("r"))
        .query(&mut con)
        .unwrap();
    assert!(usage >= mem, "{usage} < {mem}");
    // Exact networks only (after normalization); unknown ones count 0.
    assert_eq!(
        netdel(
            &mut con,
            "r",
            &["10.1.9.9/16", "10.0.0.0/9", "2001:db8::/32"]
        )
        .unwrap(),
        2
    );
    assert_eq!(
        matched(&mut con, "10.1.2.3", "r"),
        Some(("10.0.0.0/8".into(), "hosting".into()))
    );
    assert_eq!(matched(&mut con, "2001:db8:2::1", "r"), None);
    assert_eq!(netinfo(&mut con, "r").unwrap().0, 2);
    assert_eq!(netdel(&mut con, "nothing", &["10.0.0.0/8"]).unwrap(), 0);

    // A walk of many networks in small pages returns each exactly once, v4 before v6.
    let mut want = Vec::new();
    let mut args = Vec::new();
    for i in 1..=300u32 {
        want.push(format!("172.{}.{}.0/24", 16 + i / 256, i % 256));
        want.push(format!("2001:db8:{i:x}::/{}", 48 + i % 17));
    }
    for w in &want {
        args.push(w.as_str());
        args.push("VALUE");
        args.push("x");
    }
    assert_eq!(netadd(&mut con, "big", &args).unwrap(), 600);
    let walked = dump(&mut con, "big", 7);
    let mut got: Vec<String> = walked.iter().map(|(n, _, _)| n.clone()).collect();
    let first_v6 = got.iter().position(|n| n.contains(':')).unwrap();
    assert!(got[first_v6..].iter().all(|n| n.contains(':')));
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(walked.iter().all(|(_, v, e)| v == "x" && *e == -1));
    // A missing list dumps as an empty walk.
    let (next, page): (String, Vec<Value>) = redis::cmd("IPCHECK")
        .arg("NETDUMP")
        .arg(lk("missing"))
        .arg("0")
        .query(&mut con)
        .unwrap();
    assert_eq!((next.as_str(), page.len()), ("0", 0));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.client();
    fill(&mut con, "x");
    let before = dump(&mut con, "x", 100);
    for (args, needle) in [
        (vec!["10.0.0.0/33"], "invalid prefix length"),
        (vec!["1.2.3.4", "10.0.0.0/8/8"], "network"),
        (vec!["nonsense"], "invalid IP address 'nonsense'"),
        (vec!["10.0.0.0/8", "VALUE", "Bad Value"], "VALUE"),
        (vec!["10.0.0.0/8", "VALUE"], "VALUE needs a value"),
        (vec!["10.0.0.0/8", "PXAT", "soon"], "PXAT must be"),
        (vec!["10.0.0.0/8", "PXAT", "-5"], "PXAT must be"),
        (
            vec!["10.0.0.0/8", "VALUE", "a", "VALUE", "b"],
            "given twice",
        ),
    ] {
        // A good network first: it must not land when a later argument is bad.
        let mut all = vec!["203.0.113.0/24"];
        all.extend(args.iter().copied());
        let e = err_text(netadd(&mut con, "x", &all));
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let e = err_text(netadd(&mut con, "x", &["VALUE", "tor", "10.0.0.0/8"]));
    assert!(e.contains("VALUE must follow the network"), "{e}");
    assert_eq!(dump(&mut con, "x", 100), before);
    let e = err_text(netdel(&mut con, "x", &["10.0.0.0/8", "bad"]));
    assert!(e.contains("invalid IP address 'bad'"), "{e}");
    assert_eq!(dump(&mut con, "x", 100), before);
    let e = err_text(netmatch(&mut con, "not-an-ip", &["x"]));
    assert!(e.contains("invalid IP address"), "{e}");

    // Keys outside `<prefix>{lists}:` are refused, naming the form to use.
    for bad in [
        "tor",
        "ipcheck:tor",
        "ipcheck:{lists}:",
        "other:{lists}:tor",
    ] {
        let e = err_text(
            redis::cmd("IPCHECK")
                .arg("NETADD")
                .arg(bad)
                .arg("10.0.0.0/8")
                .query::<i64>(&mut con),
        );
        assert!(e.contains("ipcheck:{lists}:<name>"), "{bad}: {e}");
    }
    // A list key of another type, and a list where a string is expected: WRONGTYPE.
    let _: () = redis::cmd("SET")
        .arg(lk("s"))
        .arg("x")
        .query(&mut con)
        .unwrap();
    for e in [
        err_text(netadd(&mut con, "s", &["10.0.0.0/8"])),
        err_text(netmatch(&mut con, "10.0.0.1", &["x", "s"])),
        err_text(netdel(&mut con, "s", &["10.0.0.0/8"])),
        err_text(redis::cmd("GET").arg(lk("x")).query::<Value>(&mut con)),
    ] {
        assert!(e.to_lowercase().contains("wrongtype"), "{e}");
    }
    let e = err_text(
        redis::cmd("IPCHECK")
            .arg("NETDUMP")
            .arg(lk("x"))
            .arg("junk")
            .query::<Value>(&mut con),
    );
    assert!(e.contains("cursor must be"), "{e}");
    let e = err_text(
        redis::cmd("IPCHECK")
            .arg("NETDUMP")
            .arg(lk("x"))
            .arg("0")
            .arg("COUNT")
            .arg("0")
            .query::<Value>(&mut con),
    );
    assert!(e.contains("COUNT must be"), "{e}");
}

#[test]
fn lists_survive_debug_reload_and_rdb_restart() {
    let mut server = RedisServer::start();
    let mut con = server.client();
    fill(&mut con, "p");
    netadd(&mut con, "q", &["::/0", "VALUE", "all6", "0.0.0.0/0"]).unwrap();
    let p = dump(&mut con, "p", 3);
    let q = dump(&mut con, "q", 3);
    assert_eq!(p.len(), 5);
    let _: Value = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    assert_eq!(dump(&mut con, "p", 3), p);
    assert_eq!(dump(&mut con, "q", 3), q);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(dump(&mut con, "p", 3), p);
    assert_eq!(dump(&mut con, "q", 3), q);
    assert_eq!(
        matched(&mut con, "10.1.2.3", "p"),
        Some(("10.1.0.0/16".into(), "tor,vpn".into()))
    );
    assert_eq!(
        matched(&mut con, "2001:db8:1::1", "q"),
        Some(("::/0".into(), "all6".into()))
    );
}

#[test]
fn lists_survive_aof_replay_and_aof_rewrite() {
    let mut server = RedisServer::builder()
        .conf("appendonly yes")
        .conf("appendfsync always")
        .start();
    let mut con = server.client();
    fill(&mut con, "f");
    netdel(&mut con, "f", &["192.0.2.7"]).unwrap();
    let want = dump(&mut con, "f", 100);
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(dump(&mut con, "f", 100), want);

    // A rewrite emits the list as NETADDs with absolute PXAT; a replay of it gives the same list.
    let _: Value = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    await_until("the AOF rewrite finishes", || {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
    let base = std::fs::read_dir(server.dir().join("appendonlydir"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains(".base."))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .unwrap_or_default();
    // The base may be an RDB preamble (aof-use-rdb-preamble); then the list is in it.
    assert!(
        base.contains("NETADD") || base.starts_with("REDIS"),
        "{base}"
    );
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(dump(&mut con, "f", 100), want);
}

#[test]
fn aof_rewrite_without_rdb_preamble_emits_netadd_with_absolute_pxat() {
    let mut server = RedisServer::builder()
        .conf("appendonly yes")
        .conf("aof-use-rdb-preamble no")
        .start();
    let mut con = server.client();
    fill(&mut con, "w");
    let want = dump(&mut con, "w", 100);
    let _: Value = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    await_until("the AOF rewrite finishes", || {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
    let base = std::fs::read_dir(server.dir().join("appendonlydir"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains(".base."))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .unwrap();
    assert!(base.contains("NETADD") && base.contains("PXAT"), "{base}");
    let expiry = want.iter().find(|(_, _, e)| *e > 0).unwrap().2;
    assert!(base.contains(&expiry.to_string()), "{base}");
    server.kill();
    server.restart();
    let mut con = server.client();
    assert_eq!(dump(&mut con, "w", 100), want);
}

#[test]
fn replica_receives_lists_and_changes() {
    let master = RedisServer::start();
    let mut m = master.client();
    // One list before the replica attaches (full sync through RDB), changes after (the stream).
    fill(&mut m, "before");
    let replica = RedisServer::builder().replica_of(&master).start();
    replica.wait_replica_synced();
    let mut r = replica.client();
    let soon = (now_ms() + 300).to_string();
    netadd(
        &mut m,
        "after",
        &[
            "198.51.100.0/24",
            "VALUE",
            "tor",
            "203.0.113.0/24",
            "PXAT",
            &soon,
        ],
    )
    .unwrap();
    netdel(&mut m, "before", &["10.0.0.0/8"]).unwrap();
    RedisServer::wait_replica_acked(&mut m);
    for list in ["before", "after"] {
        // Compare the networks that do not expire during the test.
        let keep = |d: Vec<(String, String, i64)>| -> Vec<(String, String, i64)> {
            d.into_iter()
                .filter(|(n, _, _)| n != "203.0.113.0/24")
                .collect()
        };
        assert_eq!(
            keep(dump(&mut r, list, 2)),
            keep(dump(&mut m, list, 2)),
            "{list}"
        );
    }
    assert_eq!(
        matched(&mut r, "198.51.100.5", "after"),
        Some(("198.51.100.0/24".into(), "tor".into()))
    );
    assert_eq!(
        matched(&mut r, "10.200.0.1", "before"),
        None,
        "the NETDEL reached the replica"
    );
    // The expiry is the primary's absolute time: it ends on the replica too.
    await_until("the replica drops the expired network", || {
        matched(&mut r, "203.0.113.9", "after").is_none()
    });
    let e = err_text(netadd(&mut r, "after", &["10.0.0.0/8"]));
    assert!(e.to_lowercase().contains("readonly"), "{e}");
}

#[test]
fn rename_swaps_a_staging_list_over_the_live_one() {
    let server = RedisServer::start();
    let mut con = server.client();
    netadd(&mut con, "live", &["10.0.0.0/8", "VALUE", "old"]).unwrap();
    netadd(&mut con, "live.staging", &["192.0.2.0/24", "VALUE", "new"]).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg(lk("live.staging"))
        .arg(lk("live"))
        .query(&mut con)
        .unwrap();
    assert_eq!(matched(&mut con, "10.0.0.1", "live"), None);
    assert_eq!(
        matched(&mut con, "192.0.2.1", "live"),
        Some(("192.0.2.0/24".into(), "new".into()))
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg(lk("live.staging"))
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0);
    // COPY gives an independent list.
    let copied: i64 = redis::cmd("COPY")
        .arg(lk("live"))
        .arg(lk("copy"))
        .query(&mut con)
        .unwrap();
    assert_eq!(copied, 1);
    netdel(&mut con, "copy", &["192.0.2.0/24"]).unwrap();
    assert!(matched(&mut con, "192.0.2.1", "live").is_some());
    assert!(matched(&mut con, "192.0.2.1", "copy").is_none());
}

#[test]
fn acl_read_only_user_matches_but_cannot_add() {
    let server = RedisServer::start();
    let mut admin = server.client();
    fill(&mut admin, "tor");
    server.acl_user("ro", &["%R~ipcheck:{lists}:*", "+ipcheck", "+eval_ro"]);
    let mut con = server.client_as("ro", "pass").unwrap();
    assert!(matched(&mut con, "10.0.0.1", "tor").is_some());
    assert_eq!(dump(&mut con, "tor", 10).len(), 5);
    let e = err_text(netadd(&mut con, "tor", &["10.0.0.0/8"]));
    assert!(e.to_lowercase().contains("noperm"), "{e}");
    let e = err_text(netdel(&mut con, "tor", &["10.0.0.0/8"]));
    assert!(e.to_lowercase().contains("noperm"), "{e}");
    // Per subcommand: a user allowed only NETMATCH cannot dump or add.
    server.acl_user("matcher", &["~*", "+ipcheck|netmatch"]);
    let mut con = server.client_as("matcher", "pass").unwrap();
    assert!(matched(&mut con, "10.0.0.1", "tor").is_some());
    let e = err_text(netadd(&mut con, "tor", &["10.0.0.0/8"]));
    assert!(
        e.to_lowercase().contains("noperm") && e.contains("ipcheck|netadd"),
        "{e}"
    );
    assert_eq!(netinfo(&mut admin, "tor").unwrap().0, 3);
}

#[test]
fn lua_scripts_match_against_lists() {
    let server = RedisServer::start();
    let mut con = server.client();
    fill(&mut con, "tor");
    netadd(&mut con, "dc", &["10.1.2.0/24", "VALUE", "hosting"]).unwrap();
    for eval in ["EVAL", "EVAL_RO"] {
        let v: Vec<String> = redis::cmd(eval)
            .arg("return redis.call('IPCHECK', 'NETMATCH', ARGV[1], KEYS[1], KEYS[2])")
            .arg(2)
            .arg(lk("tor"))
            .arg(lk("dc"))
            .arg("10.1.2.3")
            .query(&mut con)
            .unwrap();
        assert_eq!(v, vec!["10.1.2.0/24", "hosting", &lk("dc")]);
        let miss: String = redis::cmd(eval)
            .arg("local r = redis.call('IPCHECK', 'NETMATCH', ARGV[1], KEYS[1]); if r == false then return 'miss' end; return r[1]")
            .arg(1)
            .arg(lk("tor"))
            .arg("203.0.113.1")
            .query(&mut con)
            .unwrap();
        assert_eq!(miss, "miss");
    }
    let e = err_text(
        redis::cmd("EVAL_RO")
            .arg("return redis.call('IPCHECK', 'NETADD', KEYS[1], '10.0.0.0/8')")
            .arg(1)
            .arg(lk("tor"))
            .query::<Value>(&mut con),
    );
    assert!(e.to_lowercase().contains("write"), "{e}");
}

#[test]
fn cluster_routes_every_list_to_the_slot_of_the_lists_tag() {
    let server = RedisServer::builder().cluster().start();
    let mut con = server.client();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("lists")
        .query(&mut con)
        .unwrap();
    // The node owns only that slot: every list key must hash there.
    server.own_slots(slot as u16, slot as u16);
    fill(&mut con, "tor");
    netadd(&mut con, "dc", &["10.1.2.0/24", "VALUE", "hosting"]).unwrap();
    let r = netmatch(&mut con, "10.1.2.3", &["tor", "dc"])
        .unwrap()
        .unwrap();
    assert_eq!(r[2], lk("dc"));
    // Clients find the keys through the key specs.
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("IPCHECK")
        .arg("NETMATCH")
        .arg("10.0.0.1")
        .arg(lk("tor"))
        .arg(lk("dc"))
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec![lk("tor"), lk("dc")]);
    let keys: Vec<String> = redis::cmd("COMMAND")
        .arg("GETKEYS")
        .arg("IPCHECK")
        .arg("NETADD")
        .arg(lk("tor"))
        .arg("10.0.0.0/8")
        .arg("VALUE")
        .arg("x")
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec![lk("tor")]);
}

const FUZZ_WORDS: &[&str] = &[
    "VALUE",
    "value",
    "PXAT",
    "pxat",
    "COUNT",
    "0",
    "1",
    "-1",
    "tor",
    "tor,vpn",
    "Bad",
    "",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.3",
    "10.1.2.3/33",
    "0.0.0.0/0",
    "::/0",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::ffff:10.0.0.1",
    "::ffff:10.0.0.0/104",
    "fe80::1%eth0",
    "1.2.3",
    "99999999999999999999",
    "253402300799999",
    "253402300800000",
    "ipcheck:{lists}:a",
    "ipcheck:{lists}:b",
    "ipcheck:{lists}:",
    "ipcheck:x",
    "nonsense",
    "\0",
    "/",
    "10.0.0.0/",
];

#[test]
fn fuzzed_net_commands_never_break_the_server() {
    let seed: u64 = std::env::var("IPCHECK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = RedisServer::start();
    let mut con = server.client();
    let subs = [
        "NETADD", "netdel", "NETMATCH", "NETINFO", "NETDUMP", "NetAdd",
    ];
    let soon = (now_ms() + 200).to_string();
    for _ in 0..4000 {
        let mut cmd = redis::cmd("IPCHECK");
        cmd.arg(subs[rng.random_range(0..subs.len())]);
        if rng.random_bool(0.9) {
            cmd.arg(if rng.random_bool(0.5) {
                lk("a")
            } else {
                lk("b")
            });
        }
        for _ in 0..rng.random_range(0..8) {
            match rng.random_range(0..10) {
                0 => cmd.arg(&soon),
                1 => cmd.arg(format!(
                    "{}.{}.{}.0/{}",
                    rng.random_range(0..256),
                    rng.random_range(0..256),
                    rng.random_range(0..256),
                    rng.random_range(0..33)
                )),
                2 => cmd.arg(format!(
                    "2001:db8:{:x}::/{}",
                    rng.random_range(0..0xffff),
                    rng.random_range(0..129)
                )),
                _ => cmd.arg(FUZZ_WORDS[rng.random_range(0..FUZZ_WORDS.len())]),
            };
        }
        let _: RedisResult<Value> = cmd.query(&mut con);
    }
    let pong: String = redis::cmd("PING").query(&mut con).expect("server alive");
    assert_eq!(pong, "PONG", "seed {seed}");
    let stats: Vec<(String, i64)> = ipcheck_tests::ipcheck::stats(&mut con).unwrap();
    assert!(
        stats.iter().all(|(k, v)| !k.contains("panic") || *v == 0),
        "seed {seed}: {stats:?}"
    );
    // Consistent: NETINFO counts what a walk lists, and a reload keeps every list as it was.
    for list in ["a", "b"] {
        let walked = dump(&mut con, list, 13);
        if let Some((v4, v6, _)) = netinfo(&mut con, list) {
            let n6 = walked.iter().filter(|(n, _, _)| n.contains(':')).count() as i64;
            assert_eq!((v4 + v6, v6), (walked.len() as i64, n6), "seed {seed}");
        }
        let _: Value = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
        let now = now_ms();
        let live = |d: Vec<(String, String, i64)>| -> Vec<(String, String, i64)> {
            d.into_iter()
                .filter(|(_, _, e)| *e == -1 || *e > now + 1000)
                .collect()
        };
        assert_eq!(live(dump(&mut con, list, 50)), live(walked), "seed {seed}");
    }
}

#[test]
fn a_corrupt_rdb_record_fails_the_load_with_a_reason() {
    let server = RedisServer::start();
    let mut con = server.client();
    fill(&mut con, "c");
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    let mut rdb = std::fs::read(server.dir().join("dump.rdb")).unwrap();
    // The record of 192.0.2.7/32 without expiry: family, length, address, expiry 0.
    let record = [4u8, 32, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0];
    let at = rdb
        .windows(record.len())
        .position(|w| w == record)
        .expect("the record is in the RDB");
    rdb[at + 1] = 33;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), &rdb).unwrap();
    let started = RedisServer::builder()
        .conf(&format!("dir {}", dir.path().display()))
        .start_expecting_failure();
    let log = match started {
        Ok(_) => panic!("a corrupt list loaded"),
        Err(log) => log,
    };
    assert!(
        log.contains(
            "cannot load a network list: corrupt network list record: prefix length out of range"
        ),
        "{log}"
    );
}

/// An RDB saved by the module before the compact layout (the prefix-trie one, encoding version
/// 1, redis-server 7.0): tests/fixtures/netlists-v1.rdb holds `feed` (405 nested IPv4/IPv6
/// networks, values, two expiries in 2100) and `small`; `netlists-v1.feed.dump` is that
/// module's NETDUMP of `feed` (network, value, expires-at per 3 lines).
#[test]
fn an_rdb_saved_by_the_trie_layout_loads_into_the_compact_one() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures.join("netlists-v1.rdb"),
        dir.path().join("dump.rdb"),
    )
    .unwrap();
    let want_text = std::fs::read_to_string(fixtures.join("netlists-v1.feed.dump")).unwrap();
    let lines: Vec<&str> = want_text.lines().collect();
    let want: Vec<(String, String, i64)> = lines
        .chunks(3)
        .map(|c| (c[0].to_owned(), c[1].to_owned(), c[2].parse().unwrap()))
        .collect();
    assert_eq!(want.len(), 405);
    let server = RedisServer::builder()
        .conf(&format!("dir {}", dir.path().display()))
        .start();
    let mut con = server.client();
    assert_eq!(dump(&mut con, "feed", 1000), want);
    assert_eq!(dump(&mut con, "feed", 7), want);
    assert_eq!(
        netinfo(&mut con, "feed").map(|i| (i.0, i.1)),
        Some((203, 202))
    );
    assert_eq!(
        matched(&mut con, "10.7.14.9", "feed"),
        Some(("10.7.14.0/24".into(), "tor,vpn".into()))
    );
    assert_eq!(
        matched(&mut con, "10.7.15.9", "feed"),
        Some(("10.7.0.0/16".into(), "tor".into()))
    );
    assert_eq!(
        matched(&mut con, "2001:db8:ffff::1", "feed"),
        Some(("2001:db8:ffff::/48".into(), "crawler".into()))
    );
    assert_eq!(
        matched(&mut con, "2001:db8:63:64::1", "feed"),
        Some(("2001:db8:63:64::/64".into(), "tor".into()))
    );
    assert_eq!(
        matched(&mut con, "2001:db9::1", "feed"),
        Some(("::/0".into(), "".into()))
    );
    assert_eq!(
        matched(&mut con, "198.51.100.1", "small"),
        Some(("198.51.100.0/24".into(), "tor".into()))
    );
    // Writes on a loaded list land next to the loaded array and both answer.
    assert_eq!(
        netadd(&mut con, "feed", &["10.7.14.128/25", "VALUE", "vpn"]).unwrap(),
        1
    );
    assert_eq!(netdel(&mut con, "feed", &["10.7.14.0/24"]).unwrap(), 1);
    assert_eq!(
        matched(&mut con, "10.7.14.200", "feed"),
        Some(("10.7.14.128/25".into(), "vpn".into()))
    );
    assert_eq!(
        matched(&mut con, "10.7.14.9", "feed"),
        Some(("10.7.0.0/16".into(), "tor".into()))
    );
}

#[test]
fn a_three_node_cluster_serves_multi_list_matches_from_the_lists_slot() {
    let nodes = RedisServer::start_cluster(3);
    let slot = nodes[0].keyslot(&lk("tor"));
    assert_eq!(
        nodes[0].keyslot(&lk("dc")),
        slot,
        "one hash tag for every list"
    );
    let mut owner = None;
    for (i, node) in nodes.iter().enumerate() {
        let mut con = node.client();
        match netadd(&mut con, "tor", &["10.0.0.0/8", "VALUE", "tor"]) {
            Ok(1) => owner = Some(i),
            Ok(n) => panic!("unexpected reply {n}"),
            // redis-rs renders a MOVED reply as `Moved: <slot> <node>`.
            Err(e) => assert!(e.to_string().to_lowercase().contains("moved"), "{e}"),
        }
    }
    let owner = owner.expect("one node owns the lists' slot");
    let mut con = nodes[owner].client();
    netadd(&mut con, "dc", &["10.1.0.0/16", "VALUE", "hosting"]).unwrap();
    let r = netmatch(&mut con, "10.1.2.3", &["tor", "dc"])
        .unwrap()
        .unwrap();
    assert_eq!(r, vec!["10.1.0.0/16", "hosting", &lk("dc")]);
    let mut other = nodes[(owner + 1) % 3].client();
    let e = err_text(netmatch(&mut other, "10.1.2.3", &["tor", "dc"]));
    assert!(
        e.to_lowercase().contains("moved") && e.contains(&slot.to_string()),
        "{e}"
    );
}
