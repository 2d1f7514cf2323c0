//! Memory per entry against a bare `SET ipcheck:<ip> <6-byte value> EX 86400` (an entry, one
//! with a stale window, one with country, AS number and score too), measured as the
//! `used_memory` delta over many entries. `IPCHECK_MEMORY_ENTRIES` changes the count (default
//! 50000); run with `--nocapture` to see the numbers the README quotes.

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
