//! Helpers the benchmark scripts in `bench/` start; none of this is shipped.
//!
//! - `noop-auth`: the do-nothing `auth_request` handler of baseline (b), on the same HTTP stack
//!   as `ipcheck-auth` (axum on a multi-threaded tokio runtime, `TCP_NODELAY`), so the ratio
//!   against it is the cost of ipcheck's own work; with an argument it first makes one Redis
//!   `GET` (baseline (d0)) or one provider call (baseline (e0)) per request.
//! - `slow-provider`: a stand-in IP-intelligence API that answers every lookup "clean" after a
//!   fixed delay, with keep-alive, for benchmark (e).
//! - `local-memory`: fills the service's local tier and reports resident memory per entry.
//! - `redis-load`: redis-benchmark's load model with keys that are valid addresses.
//! - `netlist-load`: loads [`netgen`]'s random networks into one list (bench/netlists.sh).

pub mod netgen;

use std::net::SocketAddr;

use axum::serve::ListenerExt;
use axum::Router;

/// The listen address from the first command-line argument, or a usage error naming `bin`.
pub fn listen_arg(bin: &str) -> SocketAddr {
    match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(addr)) => addr,
        _ => {
            eprintln!("usage: {bin} <listen address, e.g. 127.0.0.1:8081> [...]");
            std::process::exit(2);
        }
    }
}

/// The runtime `ipcheck-auth` runs on: multi-threaded, one worker per core.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Serves `router` on `addr` the way `ipcheck-auth` does: multi-threaded runtime, `TCP_NODELAY`.
pub fn serve(addr: SocketAddr, router: Router) {
    serve_on(runtime(), addr, router);
}

/// [`serve`] on a runtime the caller already built (and may have used to connect upstreams).
pub fn serve_on(runtime: tokio::runtime::Runtime, addr: SocketAddr, router: Router) {
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"))
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        axum::serve(listener, router).await.expect("serve");
    });
}
