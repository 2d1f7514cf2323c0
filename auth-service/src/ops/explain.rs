//! `ipcheck-auth explain <address> [--policy NAME]`: asks the running service's admin listener
//! (`admin.listen` of the same config) for `/explain` and prints the answer, so the operator
//! sees what that instance's tiers hold and the verdict its `/auth` gives.
//!
//! A plain HTTP/1.0 request over TCP or a unix socket: the listener is on this machine, and a
//! client library without unix-socket support would not reach it there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config;
use crate::listen::Listen;

/// How long the service may take: a provider call may be part of the answer.
const DEADLINE: Duration = Duration::from_secs(15);

/// Prints the explanation: 0 when the service gave one; 2 for an address or policy it refused;
/// 1 when it cannot be asked.
pub fn run(config_path: Option<&Path>, address: &str, policy: Option<&str>) -> ExitCode {
    let settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(admin) = settings.admin_listen else {
        eprintln!("error: {}: admin.listen is \"\": the service serves no /explain; set admin.listen (e.g. \"127.0.0.1:9220\") and restart it", settings.origin);
        return ExitCode::FAILURE;
    };
    let mut target = format!("/explain?address={}", encode(address));
    if let Some(policy) = policy {
        target.push_str(&format!("&policy={}", encode(policy)));
    }
    match ask(&admin, &target) {
        Ok((200, body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) if status == 400 || status == 404 => {
            eprint!("error: {body}");
            ExitCode::from(2)
        }
        Ok((status, body)) => {
            eprintln!("error: the service at {admin} answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: cannot ask the service's admin listener at {admin} (admin.listen): {e}; is ipcheck-auth running with this config?");
            ExitCode::FAILURE
        }
    }
}

/// One request; the status and the body.
fn ask(admin: &Listen, target: &str) -> std::io::Result<(u16, String)> {
    let request = format!("GET {target} HTTP/1.0\r\nHost: ipcheck-admin\r\n\r\n");
    let mut reply = Vec::new();
    match admin {
        Listen::Tcp(addr) => {
            let mut s = TcpStream::connect_timeout(addr, DEADLINE)?;
            s.set_read_timeout(Some(DEADLINE))?;
            s.write_all(request.as_bytes())?;
            s.read_to_end(&mut reply)?;
        }
        Listen::Unix(path) => {
            let mut s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(DEADLINE))?;
            s.write_all(request.as_bytes())?;
            s.read_to_end(&mut reply)?;
        }
    }
    parse(&reply).ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}

fn parse(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_answer_and_encodes_a_query() {
        assert_eq!(
            parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nno\n"),
            Some((404, "no\n".to_owned()))
        );
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(encode("2001:db8::1"), "2001:db8::1");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
