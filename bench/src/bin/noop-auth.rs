//! Baseline (b): an `auth_request` backend that allows everything and does nothing else.
//!
//! `noop-auth 127.0.0.1:8081`. Every request gets `204 No Content` with no headers and no body:
//! the best any auth backend on this HTTP stack can do.

use axum::http::StatusCode;
use axum::routing::any;
use axum::Router;

fn main() {
    let addr = ipcheck_bench::listen_arg("noop-auth");
    let router = Router::new().fallback(any(|| async { StatusCode::NO_CONTENT }));
    ipcheck_bench::serve(addr, router);
}
