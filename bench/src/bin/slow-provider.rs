//! Benchmark (e)'s stand-in provider: every lookup is a clean address, answered after a delay.
//!
//! `slow-provider 127.0.0.1:8082 20` answers any request after 20 ms with an ipasis-style body
//! in which every category is false. Connections are kept alive (unlike the test harness's
//! stand-in), so the service's connection pool, not TCP handshakes, is what gets measured.

use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

const CLEAN: &str = r#"{"ip":"x","privacy":{"vpn":false,"proxy":false,"tor":false,"relay":false,"hosting":false,"crawler":false}}"#;

fn main() {
    let addr = ipcheck_bench::listen_arg("slow-provider");
    let delay_ms: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let delay = Duration::from_millis(delay_ms);
    let router = Router::new().fallback(any(move || async move {
        tokio::time::sleep(delay).await;
        ([(header::CONTENT_TYPE, "application/json")], CLEAN).into_response()
    }));
    ipcheck_bench::serve(addr, router);
}
