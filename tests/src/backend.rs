//! The stand-in application behind nginx: answers every request with a JSON echo of what it
//! received, so tests can assert on the headers nginx passed on (the verdict, the client
//! address) and on whether a request reached the backend at all.

use std::sync::{Arc, Mutex};

use crate::http_stub::{HttpStub, Request, Response};

/// A running stand-in backend.
pub struct Backend {
    stub: HttpStub,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Backend {
    /// Starts the backend on a fresh loopback port.
    pub fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let stub = HttpStub::start(move |req| {
            if let Ok(mut log) = log.lock() {
                log.push(req.clone());
            }
            let headers: Vec<String> = req
                .headers
                .iter()
                .map(|(k, v)| format!("{k:?}:{v:?}"))
                .collect();
            Response::json(format!(
                "{{\"backend\":true,\"path\":{:?},\"headers\":{{{}}}}}",
                req.target,
                headers.join(",")
            ))
        });
        Backend { stub, seen }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.stub.port()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The most recent request for `path`, if any.
    pub fn last_request_for(&self, path: &str) -> Option<Request> {
        self.requests().into_iter().rev().find(|r| r.target == path)
    }
}
