//! A stand-in for the third-party IP-intelligence API, on a loopback port picked at run time.
//!
//! It answers in the `ipasis` preset's format (`{"privacy": {"vpn": ..., ...}}`) by default and
//! can be told, per address or for every address, to answer with other flags (and a country, an
//! AS number, a score), an HTTP error,
//! garbage, an object without the expected fields, or to be slow. It counts calls and records
//! every request (target and headers) so tests can assert on what the service asked and how
//! often. Served by [`HttpStub`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use crate::http_stub::{HttpStub, Request, Response};

/// The score's path in the stand-in's answers. No preset maps it: a test that decides on
/// scores sets `provider.fields.score` (or `IPCHECK_PROVIDER_FIELDS_SCORE`) to it.
pub const SCORE_PATH: &str = "risk_score";

/// What an ipasis-style answer says beyond its flags, each left out when `None`: `country` at
/// `country`, the AS number as `asn.asn` (`"AS<n>"`), the score at [`SCORE_PATH`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Attributes {
    /// Two letters.
    pub country: Option<&'static str>,
    /// The AS number.
    pub asn: Option<u32>,
    /// 0 to 100.
    pub score: Option<u8>,
}

/// How the stand-in answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with an ipasis-style body flagging exactly these categories, with these attributes.
    Flags(Vec<&'static str>, Attributes),
    /// 200 with this exact body.
    Body(String),
    /// This status with a small JSON error body.
    Status(u16),
    /// 200 with a body that is not JSON.
    Garbage,
}

impl Reply {
    /// An ipasis-style answer with the given categories set and the others false.
    pub fn flags(categories: &[&'static str]) -> Reply {
        Reply::Flags(categories.to_vec(), Attributes::default())
    }

    /// A clean address: every flag false.
    pub fn clean() -> Reply {
        Reply::flags(&[])
    }

    /// This answer with these attributes (an answer with flags only; others are unchanged).
    pub fn with(self, attributes: Attributes) -> Reply {
        match self {
            Reply::Flags(set, _) => Reply::Flags(set, attributes),
            other => other,
        }
    }

    fn render(&self) -> (u16, String) {
        match self {
            Reply::Flags(set, a) => {
                let fields: Vec<String> = ["vpn", "proxy", "tor", "relay", "hosting", "crawler"]
                    .iter()
                    .map(|c| format!("\"{c}\":{}", set.contains(c)))
                    .collect();
                let mut extra = String::new();
                if let Some(c) = a.country {
                    extra.push_str(&format!(",\"country\":\"{c}\""));
                }
                if let Some(n) = a.asn {
                    extra.push_str(&format!(
                        ",\"asn\":{{\"asn\":\"AS{n}\",\"name\":\"stand-in\"}}"
                    ));
                }
                if let Some(n) = a.score {
                    extra.push_str(&format!(",\"{SCORE_PATH}\":{n}"));
                }
                (
                    200,
                    format!(
                        "{{\"ip\":\"x\",\"privacy\":{{{}}}{extra}}}",
                        fields.join(",")
                    ),
                )
            }
            Reply::Body(b) => (200, b.clone()),
            Reply::Status(code) => (*code, "{\"error\":\"stand-in failure\"}".to_owned()),
            Reply::Garbage => (200, "<html>definitely not json".to_owned()),
        }
    }
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query, e.g. `/v1/lookup?ip=192.0.2.1`.
    pub target: String,
    /// The address asked about (the `ip` query parameter, else the last path segment).
    pub ip: String,
    /// Headers, names lowercased.
    pub headers: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    default: Option<Reply>,
    per_ip: HashMap<String, Reply>,
    delay: Duration,
    seen: Vec<Seen>,
    /// Requests received and not yet answered (held by the delay).
    in_flight: usize,
    /// The addresses of the requests answered so far.
    answered: Vec<String>,
}

/// The running stand-in; stops accepting when dropped.
pub struct Provider {
    stub: HttpStub,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Provider {
    /// Starts the stand-in; every address is clean until told otherwise.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let stub = HttpStub::start(move |req| answer(req, &st));
        Provider { stub, state }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.stub.port()
    }

    /// The `provider.url` template for the documented ipasis form.
    pub fn url_template(&self) -> String {
        format!("http://127.0.0.1:{}/v1/lookup?ip={{ip}}", self.port())
    }

    /// The `[provider]` section most service tests use: the ipasis preset pointed here, no API
    /// key, a 2 s deadline.
    pub fn config_section(&self) -> String {
        format!(
            "[provider]\npreset = \"ipasis\"\nurl = \"{}\"\napi_key_env = \"\"\ntimeout = \"2s\"\n",
            self.url_template()
        )
    }

    /// Answer this way for every address without its own answer.
    pub fn respond_default(&self, reply: Reply) {
        lock(&self.state).default = Some(reply);
    }

    /// Answer this way for one address (as the service sends it).
    pub fn respond(&self, ip: &str, reply: Reply) {
        lock(&self.state).per_ip.insert(ip.to_owned(), reply);
    }

    /// Wait this long before every answer.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.state).delay = delay;
    }

    /// Requests received so far.
    pub fn calls(&self) -> usize {
        lock(&self.state).seen.len()
    }

    /// Requests received so far about one address.
    pub fn calls_for(&self, ip: &str) -> usize {
        lock(&self.state).seen.iter().filter(|s| s.ip == ip).count()
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// Requests received and not yet answered (a delay holds them).
    pub fn in_flight(&self) -> usize {
        lock(&self.state).in_flight
    }

    /// Requests about one address answered so far.
    pub fn answered_for(&self, ip: &str) -> usize {
        lock(&self.state)
            .answered
            .iter()
            .filter(|a| *a == ip)
            .count()
    }
}

fn ip_of(target: &str) -> String {
    if let Some((_, query)) = target.split_once('?') {
        for pair in query.split('&') {
            if let Some(v) = pair.strip_prefix("ip=") {
                return v.replace("%3A", ":").replace("%3a", ":");
            }
        }
    }
    let path = target.split('?').next().unwrap_or("");
    path.rsplit('/').next().unwrap_or("").to_owned()
}

fn answer(req: &Request, state: &Mutex<State>) -> Response {
    let ip = ip_of(&req.target);
    let (reply, delay) = {
        let mut s = lock(state);
        s.seen.push(Seen {
            target: req.target.clone(),
            ip: ip.clone(),
            headers: req.headers.clone(),
        });
        let reply = s
            .per_ip
            .get(&ip)
            .or(s.default.as_ref())
            .cloned()
            .unwrap_or_else(Reply::clean);
        s.in_flight += 1;
        (reply, s.delay)
    };
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    {
        let mut s = lock(state);
        s.in_flight -= 1;
        s.answered.push(ip);
    }
    let (status, body) = reply.render();
    Response {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}
