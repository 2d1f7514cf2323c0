//! The HTTP edge: the nginx `auth_request` contract is status codes and headers only.
//!
//! | route | answer |
//! | --- | --- |
//! | `/auth` (any method) | 204 allow, 403 block, 401 challenge; empty body; `X-IPCheck-*` headers |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when what this instance needs (Redis, if configured) answers, else 503; the body also reports the provider and unknown policy names, which never make it unready |
//! | `GET /metrics` | Prometheus text format |

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use ipcheck_core::Verdict;

use crate::app::App;
use crate::decide::decide;

/// `allow`, `block` or `challenge`.
pub const VERDICT: HeaderName = HeaderName::from_static("x-ipcheck-verdict");
/// Comma-separated reasons, possibly empty.
pub const REASON: HeaderName = HeaderName::from_static("x-ipcheck-reason");
/// `local`, `redis`, `provider` or `none`.
pub const CACHE: HeaderName = HeaderName::from_static("x-ipcheck-cache");
/// The normalized address.
pub const KEY: HeaderName = HeaderName::from_static("x-ipcheck-key");

/// All routes over the shared state.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/auth", any(auth))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn auth(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let outcome = decide(&app, &headers).await;
    let status = match outcome.verdict {
        Verdict::Allow => StatusCode::NO_CONTENT,
        Verdict::Block => StatusCode::FORBIDDEN,
        Verdict::Challenge => StatusCode::UNAUTHORIZED,
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(VERDICT, HeaderValue::from_static(outcome.verdict.as_str()));
    h.insert(REASON, outcome.reason);
    h.insert(CACHE, HeaderValue::from_static(outcome.tier.as_str()));
    h.insert(KEY, outcome.key);
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    let redis = async {
        match &app.redis {
            None => None,
            Some(r) => Some(match r.ping().await {
                Ok(()) => Ok(()),
                Err(e) => Err(format!("{} {e}", r.display())),
            }),
        }
    };
    let redis = redis.await;
    let mut body = String::new();
    let mut ready = true;
    for (name, state) in [("redis", redis)] {
        match state {
            None => body.push_str(&format!("{name}: not configured\n")),
            Some(Ok(())) => body.push_str(&format!("{name}: ok\n")),
            Some(Err(e)) => {
                ready = false;
                body.push_str(&format!("{name}: unreachable: {e}\n"));
            }
        }
    }
    body.push_str(&provider_line(&app));
    body.push_str(&app.policies_line());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// The provider's state as its latest real lookups found it (a probe would spend quota). Reported,
/// never a reason to be unready: a third-party outage must not take a whole fleet out of its load
/// balancer, and each policy's `on_error` already says what an outage means.
fn provider_line(app: &App) -> String {
    match &app.provider {
        None => "provider: not configured\n".to_owned(),
        Some(p) => format!("{}\n", p.status_line()),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(app.local.len()),
    )
        .into_response()
}
