//! The baselines of benchmark 3: `auth_request` backends that allow everything after doing the
//! least that a backend in their position must do.
//!
//! - `noop-auth 127.0.0.1:8081`: baseline (b). Every request gets `204 No Content` (with
//!   `X-IPCheck-Verdict: allow`, which nginx's gate requires) and nothing else happens: the best any auth backend on this HTTP stack can do.
//! - `noop-auth 127.0.0.1:8081 redis redis://127.0.0.1:6379/`: baseline (d0). Each request first
//!   reads `GET ipcheck:<X-Real-IP>` (plain Redis, no module) over the same kind of multiplexed
//!   connection the service uses: the best any backend that asks Redis once per request can do.
//! - `noop-auth 127.0.0.1:8081 provider http://127.0.0.1:8082/v1/lookup?ip=`: baseline (e0).
//!   Each request first fetches that URL with the client address appended and reads the whole
//!   body, through a pooled keep-alive client like the service's: the best any backend that waits
//!   for one provider answer per request can do.
//!
//! The answer never depends on what came back (the baselines measure cost, not decisions), but
//! a failed call is answered `500` so a broken setup shows up as non-2xx in wrk's output.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use axum::Router;

/// What each request does before answering.
enum Upstream {
    Nothing,
    Redis(redis::aio::ConnectionManager),
    Provider(reqwest::Client, String),
}

fn client_ip(headers: &HeaderMap) -> &str {
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn answer(upstream: &Upstream, headers: &HeaderMap) -> StatusCode {
    match upstream {
        Upstream::Nothing => StatusCode::NO_CONTENT,
        Upstream::Redis(manager) => {
            let mut con = manager.clone();
            let key = format!("ipcheck:{}", client_ip(headers));
            match redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut con)
                .await
            {
                Ok(_) => StatusCode::NO_CONTENT,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
        Upstream::Provider(client, url) => {
            let url = format!("{url}{}", client_ip(headers));
            let body = match client.get(url).send().await {
                Ok(response) => response.bytes().await,
                Err(e) => Err(e),
            };
            match body {
                Ok(_) => StatusCode::NO_CONTENT,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: noop-auth <listen address> [redis <redis url> | provider <url prefix>]");
    std::process::exit(2);
}

fn main() {
    let addr = ipcheck_bench::listen_arg("noop-auth");
    let args: Vec<String> = std::env::args().skip(2).collect();
    let mode: Option<(&str, &str)> = match args.as_slice() {
        [] => None,
        [kind, target] => Some((kind, target)),
        _ => usage(),
    };
    let runtime = ipcheck_bench::runtime();
    let upstream = match mode {
        None => Upstream::Nothing,
        Some(("redis", url)) => {
            let client = redis::Client::open(url).unwrap_or_else(|_| usage());
            let manager = runtime
                .block_on(redis::aio::ConnectionManager::new(client))
                .unwrap_or_else(|e| panic!("cannot connect to Redis: {e}"));
            Upstream::Redis(manager)
        }
        Some(("provider", url)) => {
            // As the service builds its provider client.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .connect_timeout(Duration::from_millis(500))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client");
            Upstream::Provider(client, url.to_owned())
        }
        Some(_) => usage(),
    };
    let upstream = Arc::new(upstream);
    let router = Router::new().fallback(any(move |headers: HeaderMap| {
        let upstream = Arc::clone(&upstream);
        // The verdict header too: nginx's ipcheck gate treats an answer without it as "not
        // ipcheck-auth" (unreachable), which is not the path these baselines measure.
        async move {
            let status = answer(&upstream, &headers).await;
            (status, [("x-ipcheck-verdict", "allow")])
        }
    }));
    ipcheck_bench::serve_on(runtime, addr, router);
}
