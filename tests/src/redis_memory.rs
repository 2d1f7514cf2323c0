//! What a Redis server's keys cost, read from `INFO memory`, for the memory tests.
//!
//! `used_memory` is what jemalloc handed out (each allocation counted at its size class), so it is
//! exact, but it also holds memory that moves with traffic rather than with the data: client
//! buffers, the replication backlog and the AOF buffer (INFO reports each), and, while a key
//! table grows, its old bucket array. [`data_memory`] leaves the first out and
//! [`wait_rehashed`] waits out the second; a [`Meter`] also waits until every other connection
//! the test opened is gone (a pipelining client's buffers are freed only then, and INFO's
//! client figures can lag behind them), so two servers holding the same keys read the same
//! figure.

use std::time::{Duration, Instant};

use redis::Connection;

use crate::eventually;
use crate::RedisServer;

/// The `INFO memory` fields that are not the keys' memory.
const NOT_DATA: [&str; 4] = [
    "mem_clients_normal",
    "mem_clients_slaves",
    "mem_replication_backlog",
    "mem_aof_buffer",
];

/// `used_memory` less client buffers, the replication backlog and the AOF buffer, in bytes.
pub fn data_memory(con: &mut Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(con)
        .expect("INFO memory");
    let field = |name: &str| -> i64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO memory: {info}"))
    };
    field("used_memory") - NOT_DATA.iter().map(|f| field(f)).sum::<i64>()
}

/// Waits until no key table of db 0 is rehashing (`DEBUG HTSTATS 0`): while one grows, Redis
/// holds its old and its new bucket array, 8 bytes a bucket each, until the move is done.
pub fn wait_rehashed(con: &mut Connection) {
    eventually(
        "db 0's key tables done rehashing",
        Duration::from_secs(20),
        || {
            let stats: String = redis::cmd("DEBUG")
                .arg("HTSTATS")
                .arg(0)
                .query(con)
                .expect("DEBUG HTSTATS (the harness enables DEBUG)");
            !stats.contains("rehashing target")
        },
    );
}

/// Reads a server's [`data_memory`] in the same conditions every time: on a new connection,
/// with only the connections there were when the meter was made, and no table rehashing.
pub struct Meter {
    clients: i64,
}

impl Meter {
    /// A meter for `server`; make it while the test holds no connection to it.
    pub fn new(server: &RedisServer) -> Self {
        Meter {
            clients: connected_clients(&mut server.client()),
        }
    }

    /// The server's data memory now; every connection the test opened since [`Meter::new`]
    /// must have been dropped (the wait for them to go names them if not).
    pub fn read(&self, server: &RedisServer) -> i64 {
        let mut con = server.client();
        eventually(
            "only the meter's connection left (drop the others first)",
            Duration::from_secs(20),
            || connected_clients(&mut con) == self.clients,
        );
        wait_rehashed(&mut con);
        // INFO's client figures are refreshed by serverCron (10 times a second), so a figure
        // read right after a burst can still hold a freed buffer, or miss a grown one: take it
        // once it has held for a few cron runs.
        let mut last = (data_memory(&mut con), Instant::now());
        eventually(
            "data memory unchanged for 300 ms",
            Duration::from_secs(20),
            || {
                let now = data_memory(&mut con);
                if now != last.0 {
                    last = (now, Instant::now());
                }
                last.1.elapsed() >= Duration::from_millis(300)
            },
        );
        last.0
    }
}

/// `connected_clients` from `INFO clients` (replicas are not counted; a replica's link to its
/// primary is).
fn connected_clients(con: &mut Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(con)
        .expect("INFO clients");
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connected_clients in INFO clients: {info}"))
}
