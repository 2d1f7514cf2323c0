//! Benchmark 1's load generator: `redis-benchmark`'s model with keys that are valid addresses.
//!
//! `redis-benchmark -r` puts a 12-digit zero-padded number where `__rand_int__` stands, which is
//! never a valid address (`10.0.0.000000001234`), and the module refuses ambiguous spellings. So
//! this tool does what `redis-benchmark` does (N clients on one event-loop thread, each sending a
//! pipeline of P commands with random keys from a fixed keyspace, waiting for all P replies,
//! repeating) with commands built from a template in which `{ip}` is one of `keyspace` addresses
//! `10.x.y.z`:
//!
//! ```text
//! redis-load <port> <clients> <pipeline> <seconds> <keyspace> <arg> [<arg> ...]
//! redis-load 6379 50 16 5 10000 IPCHECK GET '{ip}'
//! redis-load 6379 50 16 5 10000 GET 'ipcheck:{ip}'
//! ```
//!
//! Prints `ops_per_sec=<n> errors=<n>`; error replies are counted and the first one is shown, so
//! a misconfigured run cannot pass as a fast one.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The `i`-th benchmark address: 10.0.0.0 upwards.
fn address(i: u32) -> String {
    std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()
}

/// One command in RESP, `{ip}` replaced in every argument.
fn encode(template: &[String], ip: &str) -> Vec<u8> {
    let mut out = format!("*{}\r\n", template.len()).into_bytes();
    for arg in template {
        let arg = arg.replace("{ip}", ip);
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// A complete reply's length at the start of `buf`, and whether it is an error; `None` if more
/// bytes are needed.
fn reply_len(buf: &[u8]) -> Option<(usize, bool)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = &buf[1..line_end];
    let after = line_end + 2;
    let number = || -> i64 {
        std::str::from_utf8(head)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    };
    match buf[0] {
        b'+' | b':' => Some((after, false)),
        b'-' => Some((after, true)),
        b'$' => {
            let n = number();
            if n < 0 {
                return Some((after, false));
            }
            let end = after + n as usize + 2;
            (buf.len() >= end).then_some((end, false))
        }
        b'*' => {
            let n = number();
            let mut at = after;
            let mut error = false;
            for _ in 0..n.max(0) {
                let (len, e) = reply_len(&buf[at..])?;
                at += len;
                error |= e;
            }
            Some((at, error))
        }
        other => panic!("unexpected RESP type byte {other:?}"),
    }
}

/// A small xorshift generator: the keys only need to be spread, not unpredictable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as usize
    }
}

/// One client: pipelines of `pipeline` commands until `deadline`; returns (replies, errors).
async fn client(
    port: u16,
    commands: std::sync::Arc<Vec<Vec<u8>>>,
    pipeline: usize,
    deadline: Instant,
    seed: u64,
) -> (u64, u64, Option<String>) {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to redis-server");
    conn.set_nodelay(true).expect("nodelay");
    let mut rng = Rng(seed | 1);
    let (mut replies, mut errors, mut first_error) = (0u64, 0u64, None);
    let mut out = Vec::new();
    let mut input = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        out.clear();
        for _ in 0..pipeline {
            out.extend_from_slice(&commands[rng.below(commands.len() as u32)]);
        }
        conn.write_all(&out).await.expect("write to redis-server");
        let mut pending = pipeline;
        while pending > 0 {
            let mut consumed = 0;
            while pending > 0 {
                let Some((len, error)) = reply_len(&input[consumed..]) else {
                    break;
                };
                if error && first_error.is_none() {
                    first_error = Some(
                        String::from_utf8_lossy(&input[consumed..consumed + len]).into_owned(),
                    );
                }
                errors += u64::from(error);
                consumed += len;
                pending -= 1;
                replies += 1;
            }
            input.drain(..consumed);
            if pending > 0 {
                let n = conn.read(&mut chunk).await.expect("read from redis-server");
                assert!(n > 0, "redis-server closed the connection");
                input.extend_from_slice(&chunk[..n]);
            }
        }
    }
    (replies, errors, first_error)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        eprintln!(
            "usage: redis-load <port> <clients> <pipeline> <seconds> <keyspace> <arg> [<arg> ...]"
        );
        std::process::exit(2);
    }
    let number = |i: usize| -> u64 {
        args[i]
            .parse()
            .unwrap_or_else(|_| panic!("argument {} must be a number, got {:?}", i + 1, args[i]))
    };
    let (port, clients, pipeline, seconds, keyspace) =
        (number(0) as u16, number(1), number(2), number(3), number(4));
    let template = &args[5..];
    let commands: Vec<Vec<u8>> = (0..keyspace as u32)
        .map(|i| encode(template, &address(i)))
        .collect();
    let commands = std::sync::Arc::new(commands);
    // One thread, like redis-benchmark: the load generator takes one core, Redis the other.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (replies, errors, first_error, elapsed) = runtime.block_on(async {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                tokio::spawn(client(
                    port,
                    commands.clone(),
                    pipeline as usize,
                    deadline,
                    0x9E37_79B9_7F4A_7C15 ^ (c + 1).wrapping_mul(0x1234_5678_9ABC_DEF1),
                ))
            })
            .collect();
        let (mut replies, mut errors, mut first_error) = (0, 0, None);
        for task in tasks {
            let (r, e, f) = task.await.expect("client task");
            replies += r;
            errors += e;
            first_error = first_error.or(f);
        }
        (replies, errors, first_error, start.elapsed())
    });
    if let Some(error) = first_error {
        eprintln!("first error reply: {}", error.trim_end());
    }
    println!(
        "ops_per_sec={:.0} errors={errors}",
        replies as f64 / elapsed.as_secs_f64()
    );
}
