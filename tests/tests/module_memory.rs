//! Memory per entry, measured as the `used_memory` delta over many entries.
//!
//! - Against a bare `SET ipcheck:<ip> <6-byte value> EX 86400`: an entry, one with a stale
//!   window, one with country, AS number and score too.
//! - Against a native `SET <key> <the very value IPCHECK SET stored> [EX <the key's TTL>]` of a
//!   realistic mix (issue #15, "reads must not grow memory"), in every state an entry lives in:
//!   on the primary that wrote it, on a replica, after `DEBUG RELOAD` (RDB) and after a restart
//!   on the AOF, each before and after `IPCHECK GET` and `IPCHECK.LGET` read every entry. Redis
//!   keeps an integer-looking value int-encoded after a load or on a replica, and the module's
//!   first read (`RedisModule_StringDMA`) would copy it into a new raw string: the stored form
//!   is never an integer, so no read grows an entry (see docs/memory.md).
//!
//! `IPCHECK_MEMORY_ENTRIES` changes the count (default 50000); run with `--nocapture` to see the
//! numbers the README and docs/memory.md quote (bench/memory.sh measures the same at 1M).

use std::time::Duration;

use ipcheck_tests::eventually;
use ipcheck_tests::redis_memory::Meter;
use ipcheck_tests::RedisServer;
use redis::Connection;

fn used_memory(con: &mut Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO")
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255)
}

/// Bytes per entry added by `fill(con, i)` for `n` entries.
fn per_entry(con: &mut Connection, n: usize, fill: impl Fn(&mut redis::Pipeline, usize)) -> f64 {
    let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(con).unwrap();
    let before = used_memory(con);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            fill(&mut pipe, i);
        }
        pipe.query::<()>(con).unwrap();
    }
    let dbsize: usize = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(dbsize, n);
    (used_memory(con) - before) as f64 / n as f64
}

#[test]
fn an_entry_costs_no_more_than_a_bare_set() {
    let n: usize = std::env::var("IPCHECK_MEMORY_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let server = RedisServer::start();
    let mut con = server.client();

    let bare = per_entry(&mut con, n, |p, i| {
        p.cmd("SET")
            .arg(format!("ipcheck:{}", ip(i)))
            .arg("abcdef")
            .arg("EX")
            .arg(86400)
            .ignore();
    });
    let hash = per_entry(&mut con, n, |p, i| {
        let key = format!("ipcheck:{}", ip(i));
        p.cmd("HSET")
            .arg(&key)
            .arg("v")
            .arg("b")
            .arg("r")
            .arg("vpn")
            .ignore();
        p.cmd("EXPIRE").arg(&key).arg(86400).ignore();
    });
    // With a stale window the value is a longer integer (the window in bits 38..63).
    let stale = per_entry(&mut con, n, |p, i| {
        p.cmd("IPCHECK")
            .arg("SET")
            .arg(ip(i))
            .arg("block")
            .arg("REASON")
            .arg("vpn,tor")
            .arg("STALE")
            .arg(604_800)
            .ignore();
    });
    // With attributes (typical values: a country, a 5-digit AS number, a 2-digit score) and a
    // day's stale window, the value is `321;86400;US;13335;87` (21 bytes, still one allocation).
    let attributes = per_entry(&mut con, n, |p, i| {
        p.cmd("IPCHECK")
            .arg("SET")
            .arg(ip(i))
            .arg("block")
            .arg("REASON")
            .arg("vpn,tor")
            .arg("STALE")
            .arg(86_400)
            .arg("COUNTRY")
            .arg("US")
            .arg("ASN")
            .arg(13_335)
            .arg("SCORE")
            .arg(87)
            .ignore();
    });
    let module = per_entry(&mut con, n, |p, i| {
        p.cmd("IPCHECK")
            .arg("SET")
            .arg(ip(i))
            .arg("block")
            .arg("REASON")
            .arg("vpn,tor")
            .ignore();
    });
    // First reads go through StringDMA, which turns embstr values into raw strings.
    let before_reads = used_memory(&mut con);
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("IPCHECK").arg("GET").arg(ip(i)).ignore();
        }
        pipe.query::<()>(&mut con).unwrap();
    }
    let after_reads = module + (used_memory(&mut con) - before_reads) as f64 / n as f64;

    eprintln!(
        "{n} entries, bytes per entry: bare SET EX {bare:.1}, hash+EXPIRE {hash:.1}, \
         IPCHECK SET {module:.1} ({:.3}x), after one IPCHECK GET each {after_reads:.1} ({:.3}x), \
         with STALE 604800 {stale:.1} ({:.3}x), with STALE 86400 COUNTRY ASN SCORE \
         {attributes:.1} ({:.3}x)",
        module / bare,
        after_reads / bare,
        stale / bare,
        attributes / bare
    );
    assert!(
        attributes <= bare * 1.15,
        "IPCHECK SET ... COUNTRY ASN SCORE {attributes:.1} B vs bare {bare:.1} B"
    );
    assert!(
        stale <= bare * 1.15,
        "IPCHECK SET ... STALE {stale:.1} B vs bare {bare:.1} B"
    );
    assert!(
        module <= bare * 1.10,
        "IPCHECK SET {module:.1} B vs bare {bare:.1} B"
    );
    assert!(
        after_reads <= bare * 1.10,
        "after reads {after_reads:.1} B vs bare {bare:.1} B"
    );
}

/// One entry shape of the realistic mix, as `IPCHECK SET` writes it.
struct Shape {
    /// `IPCHECK SET <ip>` arguments after the address.
    set: &'static [&'static str],
    /// The key's TTL in seconds (`EX` + `STALE`), which the native `SET` gets; `None` for a pin
    /// with `PERSIST`, which has none.
    key_ttl: Option<u32>,
}

/// What the service writes: a provider answer with the default 7-day stale window.
const SERVICE: Shape = Shape {
    set: &[
        "block", "EX", "3600", "REASON", "vpn,tor", "STALE", "604800",
    ],
    key_ttl: Some(3600 + 604_800),
};
/// No stale window (a `STALE 0` writer, or one from before stale windows existed).
const NO_STALE: Shape = Shape {
    set: &["block", "EX", "86400", "REASON", "vpn,tor"],
    key_ttl: Some(86_400),
};
/// Country, AS number and score, a day's stale window.
const FACTS: Shape = Shape {
    set: &[
        "block", "EX", "86400", "REASON", "vpn", "STALE", "86400", "COUNTRY", "US", "ASN", "13335",
        "SCORE", "87",
    ],
    key_ttl: Some(172_800),
};
/// An operator's pin that never expires.
const PIN: Shape = Shape {
    set: &["block", "SOURCE", "manual", "REASON", "tor", "PERSIST"],
    key_ttl: None,
};
/// The text form: a feed's own source token.
const TEXT: Shape = Shape {
    set: &[
        "challenge",
        "EX",
        "3600",
        "SOURCE",
        "my-feed",
        "REASON",
        "spam",
        "STALE",
        "3600",
    ],
    key_ttl: Some(7200),
};

/// Entry `i` has shape `MIX[i % MIX.len()]`: half as the service writes them, then one of each
/// other shape.
const MIX: [&Shape; 8] = [
    &SERVICE, &SERVICE, &SERVICE, &SERVICE, &NO_STALE, &FACTS, &PIN, &TEXT,
];

/// What the entries cost may exceed the native figure by this much (0.5 %, ~0.6 B an entry):
/// `used_memory` counts every allocation at its jemalloc size class, so the entries themselves
/// cost the same bytes in every run; what varies is the little the server allocates besides
/// them that INFO does not break out (a reply buffer, the module's counters), tens of KB over
/// 50,000 entries.
const TOLERANCE: f64 = 1.005;

/// Who writes the entries, and how they are read.
#[derive(Clone, Copy)]
enum Writer<'a> {
    /// `IPCHECK SET`, read with `IPCHECK GET` and `IPCHECK.LGET`.
    Ipcheck,
    /// `SET <key> <value> [EX <ttl>]` of these values (one per entry), read with `GET`.
    Native(&'a [Vec<u8>]),
}

/// A read of every entry.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// `IPCHECK GET <ip>` (`GET <key>` for native entries).
    Get,
    /// `IPCHECK.LGET <key>` (`GET <key>` for native entries).
    Lget,
}

fn key(i: usize) -> String {
    format!("ipcheck:{}", ip(i))
}

/// Sends `command(pipe, i)` for every entry, 10,000 to a pipeline, replies dropped.
fn each_entry(con: &mut Connection, n: usize, command: impl Fn(&mut redis::Pipeline, usize)) {
    for start in (0..n).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..n.min(start + 10_000) {
            command(&mut pipe, i);
            pipe.ignore();
        }
        pipe.query::<()>(con).expect("pipelined commands");
    }
}

fn write(con: &mut Connection, n: usize, writer: Writer) {
    each_entry(con, n, |p, i| {
        let shape = MIX[i % MIX.len()];
        match writer {
            Writer::Ipcheck => {
                p.cmd("IPCHECK").arg("SET").arg(ip(i)).arg(shape.set);
            }
            Writer::Native(values) => {
                p.cmd("SET").arg(key(i)).arg(&values[i]);
                if let Some(ttl) = shape.key_ttl {
                    p.arg("EX").arg(ttl);
                }
            }
        }
    });
    assert_dbsize(con, n);
    // The native SETs' TTLs are the ones ipcheck's keys got (-1: none).
    for (i, shape) in MIX.iter().enumerate().take(n) {
        let ttl: i64 = redis::cmd("TTL").arg(key(i)).query(con).unwrap();
        match shape.key_ttl {
            Some(want) => assert!(
                (i64::from(want) - 5..=i64::from(want)).contains(&ttl),
                "{:?}: TTL {ttl}, want {want}",
                shape.set
            ),
            None => assert_eq!(ttl, -1, "{:?}: no TTL", shape.set),
        }
    }
}

fn read(con: &mut Connection, n: usize, writer: Writer, how: Read) {
    each_entry(con, n, |p, i| match (writer, how) {
        (Writer::Ipcheck, Read::Get) => {
            p.cmd("IPCHECK").arg("GET").arg(ip(i));
        }
        (Writer::Ipcheck, Read::Lget) => {
            p.cmd(ipcheck_core::LEAN_READ).arg(key(i));
        }
        (Writer::Native(_), _) => {
            p.cmd("GET").arg(key(i));
        }
    });
}

/// Runs every command the measurement sends once, on an address that holds nothing after:
/// the first call of a command allocates for good (Redis's command bookkeeping, the module's
/// first-use state), which is the process's memory, not the entries'. With `write`, a SET and a
/// DEL too (a replica refuses them).
fn warm_up(con: &mut Connection, writer: Writer, write: bool) {
    let (ip, key) = ("192.0.2.1", "ipcheck:192.0.2.1");
    let mut pipe = redis::pipe();
    match writer {
        Writer::Ipcheck => {
            if write {
                pipe.cmd("IPCHECK").arg("SET").arg(ip).arg("block").ignore();
            }
            pipe.cmd("IPCHECK").arg("GET").arg(ip).ignore();
            pipe.cmd(ipcheck_core::LEAN_READ).arg(key).ignore();
            if write {
                pipe.cmd("IPCHECK").arg("DEL").arg(ip).ignore();
            }
        }
        Writer::Native(_) => {
            if write {
                pipe.cmd("SET").arg(key).arg("b").arg("EX").arg(60).ignore();
            }
            pipe.cmd("GET").arg(key).ignore();
            if write {
                pipe.cmd("DEL").arg(key).ignore();
            }
        }
    }
    pipe.query::<()>(con).expect("warm-up commands");
    let left: i64 = redis::cmd("EXISTS").arg(key).query(con).unwrap();
    assert_eq!(left, 0, "the warm-up leaves {key} absent");
}

fn assert_dbsize(con: &mut Connection, n: usize) {
    let dbsize: usize = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(dbsize, n, "keys held");
}

fn info_field(con: &mut Connection, section: &str, name: &str) -> i64 {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO {section}: {info}"))
}

/// Waits until the replica has applied everything the primary has sent.
fn wait_caught_up(primary: &mut Connection, replica: &mut Connection) {
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query(primary)
        .unwrap();
    assert_eq!(acked, 1, "the replica did not acknowledge the writes");
    let target = info_field(primary, "replication", "master_repl_offset");
    eventually(
        "the replica's offset equal to the primary's",
        Duration::from_secs(20),
        || info_field(replica, "replication", "slave_repl_offset") == target,
    );
}

/// The states measured, in order: where the entries are, and what has read them.
const STATES: [&str; 12] = [
    "primary, written",
    "primary, then IPCHECK GET",
    "primary, then IPCHECK.LGET",
    "replica, synced",
    "replica, then IPCHECK.LGET",
    "replica, then IPCHECK GET",
    "primary, DEBUG RELOAD (RDB)",
    "primary, RDB, then IPCHECK GET",
    "primary, RDB, then IPCHECK.LGET",
    "primary, restarted on the AOF",
    "primary, AOF, then IPCHECK.LGET",
    "primary, AOF, then IPCHECK GET",
];

/// Reads, as (state before, state after): the read that made each state.
const READS: [(usize, usize, Read); 8] = [
    (0, 1, Read::Get),
    (1, 2, Read::Lget),
    (3, 4, Read::Lget),
    (4, 5, Read::Get),
    (6, 7, Read::Get),
    (7, 8, Read::Lget),
    (9, 10, Read::Lget),
    (10, 11, Read::Get),
];

/// Bytes per entry in each of [`STATES`] for `n` entries written by `writer`, in a primary with
/// the AOF on and a replica of it; and the values the primary held at the end, one per entry.
/// Every step runs on its own connection, dropped before the memory is read.
fn bytes_per_entry(n: usize, writer: Writer) -> (Vec<f64>, Vec<Vec<u8>>) {
    // Redis 7 allocates a latency histogram (~48 KB) for each command the first time it runs:
    // not the entries' memory, and it would land in whichever state first runs a command.
    let mut primary = RedisServer::builder()
        .conf("appendonly yes")
        .conf("latency-tracking no")
        .start();
    let replica = RedisServer::builder()
        .replica_of(&primary)
        .conf("latency-tracking no")
        .start();
    replica.wait_replica_synced();
    warm_up(&mut primary.client(), writer, true);
    wait_caught_up(&mut primary.client(), &mut replica.client());
    warm_up(&mut replica.client(), writer, false);
    let (p_meter, r_meter) = (Meter::new(&primary), Meter::new(&replica));
    let (p_empty, r_empty) = (p_meter.read(&primary), r_meter.read(&replica));

    write(&mut primary.client(), n, writer);
    wait_caught_up(&mut primary.client(), &mut replica.client());
    assert_dbsize(&mut replica.client(), n);
    let mut held = vec![0i64; STATES.len()];
    let mut meter = p_meter;
    for (state, slot) in held.iter_mut().enumerate() {
        // Each server's states in turn; the replica is done before the primary reloads.
        match state {
            6 => {
                let _: () = redis::cmd("DEBUG")
                    .arg("RELOAD")
                    .query(&mut primary.client())
                    .unwrap();
                assert_dbsize(&mut primary.client(), n);
            }
            9 => {
                primary.shutdown();
                primary.restart();
                warm_up(&mut primary.client(), writer, false);
                meter = Meter::new(&primary);
                assert_dbsize(&mut primary.client(), n);
            }
            _ => {}
        }
        let server = if (3..=5).contains(&state) {
            &replica
        } else {
            &primary
        };
        if let Some(&(_, _, how)) = READS.iter().find(|(_, after, _)| *after == state) {
            read(&mut server.client(), n, writer, how);
        }
        *slot = if (3..=5).contains(&state) {
            r_meter.read(&replica)
        } else {
            meter.read(&primary)
        };
    }
    drop(replica);

    let mut values = Vec::with_capacity(n);
    let mut con = primary.client();
    for start in (0..n).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..n.min(start + 10_000) {
            pipe.cmd("GET").arg(key(i));
        }
        values.extend(pipe.query::<Vec<Vec<u8>>>(&mut con).unwrap());
    }
    // The restarted process's own empty figure: nothing of the first one's carries over.
    let _: () = redis::cmd("FLUSHALL").arg("SYNC").query(&mut con).unwrap();
    drop(con);
    let restart_empty = meter.read(&primary);
    let per_entry = held
        .iter()
        .enumerate()
        .map(|(state, bytes)| {
            let empty = match state {
                3..=5 => r_empty,
                9.. => restart_empty,
                _ => p_empty,
            };
            (bytes - empty) as f64 / n as f64
        })
        .collect();
    (per_entry, values)
}

#[test]
fn entries_cost_no_more_than_native_sets_of_their_values_before_and_after_reads() {
    let n: usize = std::env::var("IPCHECK_MEMORY_ENTRIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let (ipcheck, values) = bytes_per_entry(n, Writer::Ipcheck);
    // Each shape's stored value is the same for every address; the native SETs store exactly
    // these bytes, with the same TTL.
    for (s, shape) in MIX.iter().enumerate() {
        let shape_values: std::collections::BTreeSet<&[u8]> = values
            .iter()
            .skip(s)
            .step_by(MIX.len())
            .map(Vec::as_slice)
            .collect();
        assert_eq!(shape_values.len(), 1, "{:?}: one stored value", shape.set);
    }
    let (native, _) = bytes_per_entry(n, Writer::Native(&values));

    let mut report =
        format!("{n} entries, bytes per entry (ipcheck / native SET of the same values):\n");
    let mut failures = Vec::new();
    for (state, (i, b)) in STATES.iter().zip(ipcheck.iter().zip(&native)) {
        report.push_str(&format!("  {state:34} {i:7.1} {b:7.1}  {:.3}x\n", i / b));
        if *i > b * TOLERANCE {
            failures.push(format!("{state}: {i:.1} B vs native {b:.1} B"));
        }
    }
    for (before, after, how) in READS {
        let (b, a) = (ipcheck[before], ipcheck[after]);
        if a > b * TOLERANCE {
            failures.push(format!(
                "{how:?} raised memory: {} {b:.1} B, {} {a:.1} B",
                STATES[before], STATES[after]
            ));
        }
    }
    let mut shapes: Vec<String> = MIX
        .iter()
        .zip(&values)
        .map(|(shape, v)| format!("  {:?} -> {}", shape.set, String::from_utf8_lossy(v)))
        .collect();
    shapes.dedup();
    eprintln!("{report}stored values:\n{}", shapes.join("\n"));
    assert!(failures.is_empty(), "{}\n{report}", failures.join("\n"));
}

/// `MEMORY USAGE` of `key`, in bytes.
fn memory_usage(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .query(con)
        .expect("MEMORY USAGE")
}

#[test]
fn an_entry_rewritten_longer_costs_no_more_than_a_native_set_of_its_value() {
    // Growing a string in place over-allocates (twice the new length); IPCHECK SET must size a
    // longer rewrite exactly, as a native SET of the same value does.
    let server = RedisServer::start();
    let mut con = server.client();
    let set = |con: &mut Connection, args: &[&str]| {
        let _: () = redis::cmd("IPCHECK")
            .arg("SET")
            .arg(args)
            .query(con)
            .unwrap();
    };
    set(&mut con, &["192.0.2.1", "allow", "EX", "86400"]);
    let short: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    set(
        &mut con,
        &[
            "192.0.2.1",
            "block",
            "REASON",
            "vpn,tor",
            "STALE",
            "604800",
            "COUNTRY",
            "US",
            "ASN",
            "13335",
            "SCORE",
            "87",
            "EX",
            "86400",
        ],
    );
    let long: String = redis::cmd("GET")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert!(long.len() > short.len() + 8, "{short} -> {long}");
    // The same key length, so only the values' allocations differ.
    let _: () = redis::cmd("SET")
        .arg("ipcheck:192.0.2.2")
        .arg(&long)
        .arg("EX")
        .arg(86400)
        .query(&mut con)
        .unwrap();
    let (ours, native) = (
        memory_usage(&mut con, "ipcheck:192.0.2.1"),
        memory_usage(&mut con, "ipcheck:192.0.2.2"),
    );
    assert!(
        ours <= native,
        "rewritten {ours} B, native {native} B ({long})"
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg("ipcheck:192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert!(
        ttl > 86400 && ttl <= 86400 + 604800,
        "the rewrite keeps its TTL: {ttl}"
    );
}
