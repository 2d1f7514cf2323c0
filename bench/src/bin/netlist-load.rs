//! Loads the benchmark's random networks into one list, as a feed loader would: `IPCHECK NETADD`
//! commands of `batch` networks each, `pipeline` commands in flight per round trip.
//!
//! ```text
//! netlist-load <port> <list key> <networks> <batch> <pipeline>
//! netlist-load 6379 'ipcheck:{lists}:bench' 1000000 1000 16
//! ```
//!
//! Prints `seconds=<s> added=<n>`; exits non-zero on any error reply, so a refused load cannot
//! pass as a fast one. The networks are `ipcheck_bench::netgen::networks` (the same every run).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

use ipcheck_bench::netgen;

fn usage() -> ! {
    eprintln!("usage: netlist-load <port> <list key> <networks> <batch> <pipeline>");
    std::process::exit(2);
}

/// One `IPCHECK NETADD <key> <net>...` in RESP.
fn netadd(key: &str, nets: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n$7\r\nIPCHECK\r\n$6\r\nNETADD\r\n", nets.len() + 3).into_bytes();
    for arg in std::iter::once(key).chain(nets.iter().map(String::as_str)) {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, key, count, batch, pipeline] = args.as_slice() else {
        usage()
    };
    let (Ok(port), Ok(count), Ok(batch), Ok(pipeline)) = (
        port.parse::<u16>(),
        count.parse::<usize>(),
        batch.parse::<usize>(),
        pipeline.parse::<usize>(),
    ) else {
        usage()
    };
    if batch == 0 || pipeline == 0 {
        usage()
    }
    let nets: Vec<String> = netgen::networks(count)
        .iter()
        .map(|n| n.to_string())
        .collect();
    let commands: Vec<Vec<u8>> = nets.chunks(batch).map(|c| netadd(key, c)).collect();
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot connect to 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot clone the connection: {e}");
            std::process::exit(1);
        }
    };
    let mut reader = BufReader::new(stream);
    let start = Instant::now();
    let mut added: i64 = 0;
    let mut line = String::new();
    for group in commands.chunks(pipeline) {
        for c in group {
            if let Err(e) = writer.write_all(c) {
                eprintln!("write failed: {e}");
                std::process::exit(1);
            }
        }
        for _ in group {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    eprintln!("connection closed mid-load");
                    std::process::exit(1);
                }
                Ok(_) => {}
            }
            match line
                .strip_prefix(':')
                .and_then(|n| n.trim_end().parse::<i64>().ok())
            {
                Some(n) => added += n,
                None => {
                    eprintln!("NETADD failed: {}", line.trim_end());
                    std::process::exit(1);
                }
            }
        }
    }
    println!("seconds={:.3} added={added}", start.elapsed().as_secs_f64());
}
