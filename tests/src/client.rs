//! An HTTP client that can pick its source address, so tests can be many different clients.
//!
//! nginx sees every loopback connection as coming from 127.0.0.1 unless the client binds another
//! address first; Linux routes all of 127.0.0.0/8 to loopback, so binding 127.0.0.N gives each
//! test client its own `$remote_addr` without touching the machine's network configuration.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// An HTTP answer, as read off the wire.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpReply {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `(status, X-IPCheck-Verdict, X-IPCheck-Reason, X-IPCheck-Cache)`, for compact assertions.
    pub fn decision(&self) -> (u16, &str, &str, &str) {
        (
            self.status,
            self.header("x-ipcheck-verdict").unwrap_or("<missing>"),
            self.header("x-ipcheck-reason").unwrap_or("<missing>"),
            self.header("x-ipcheck-cache").unwrap_or("<missing>"),
        )
    }
}

/// One HTTP/1.1 request (`Connection: close`) from `source` to `dest`, with a 10 s deadline.
pub fn request_from(
    source: IpAddr,
    dest: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpReply> {
    let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    request_bytes_from(source, dest, method, path, &raw)
}

/// [`request_from`] with header values as raw bytes, sent as they are (e.g. `\xff`, which no
/// `&str` can hold but a client can send).
pub fn request_bytes_from(
    source: IpAddr,
    dest: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
) -> std::io::Result<HttpReply> {
    raw_request_from(source, dest, &request_bytes(method, path, headers))
}

/// A `Connection: close` HTTP/1.1 request with these headers, byte for byte.
fn request_bytes(method: &str, path: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n")
            .into_bytes();
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// One HTTP/1.1 request (`Connection: close`) over the unix socket at `socket`, with a 10 s
/// deadline.
pub fn request_unix(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpReply> {
    let mut conn = std::os::unix::net::UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let raw: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    conn.write_all(&request_bytes(method, path, &raw))?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    parse_reply(&reply)
}

/// Sends `request` byte for byte from `source` to `dest` and reads the answer until the server
/// closes (so the request should ask for `Connection: close`, or be HTTP/1.0), 10 s deadline.
pub fn raw_request_from(
    source: IpAddr,
    dest: SocketAddr,
    request: &[u8],
) -> std::io::Result<HttpReply> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&dest.into(), Duration::from_secs(5))?;
    let mut conn: std::net::TcpStream = socket.into();
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(request)?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw)?;
    parse_reply(&raw)
}

/// Parses a whole `Connection: close` HTTP/1.1 answer (no chunked bodies: nginx and the
/// service send Content-Length for everything the tests read).
pub fn parse_reply(raw: &[u8]) -> std::io::Result<HttpReply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_owned(),
    })
}
