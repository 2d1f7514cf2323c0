//! Benchmark (e)'s stand-in provider: every lookup is a clean address, answered after a delay.
//!
//! `slow-provider 127.0.0.1:8082 20` answers any request after 20 ms with an ipasis-style body
//! in which every category is false. Connections are kept alive (unlike the test harness's
//! stand-in), so the service's connection pool, not TCP handshakes, is what gets measured.
//!
//! One thread per connection sleeping with `std::thread::sleep`, not an async timer: tokio's
//! timer rounds up to whole milliseconds and fires late under load (a "20 ms" sleep measured
//! 21.7 ms), which would make the bound `connections / 20 ms` unreachable by construction.
//!
//! `GET /calls` answers at once with the number of lookups answered so far (that request not
//! counted): the address-rotation bench counts the provider calls the service really made here,
//! at the stand-in, rather than trusting the service's own metrics.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CLEAN: &str = r#"{"ip":"x","privacy":{"vpn":false,"proxy":false,"tor":false,"relay":false,"hosting":false,"crawler":false}}"#;

/// Serves one keep-alive connection.
/// Each request (a GET, no body) answered after `delay`; `/calls` at once with `calls`.
fn serve(conn: TcpStream, delay: Duration, calls: &AtomicU64) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CLEAN}",
        CLEAN.len()
    );
    let mut line = String::new();
    loop {
        // The request line and headers, up to the blank line.
        let mut first = true;
        let mut count_request = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" && !first {
                break;
            }
            if first {
                count_request = line.starts_with("GET /calls ");
            }
            first = false;
        }
        if count_request {
            let body = calls.load(Ordering::Relaxed).to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writer.write_all(answer.as_bytes())?;
            continue;
        }
        std::thread::sleep(delay);
        calls.fetch_add(1, Ordering::Relaxed);
        writer.write_all(response.as_bytes())?;
    }
}

fn main() {
    let addr = ipcheck_bench::listen_arg("slow-provider");
    let delay_ms: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let delay = Duration::from_millis(delay_ms);
    let listener =
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    let calls = Arc::new(AtomicU64::new(0));
    for conn in listener.incoming().flatten() {
        let calls = Arc::clone(&calls);
        std::thread::spawn(move || serve(conn, delay, &calls));
    }
}
