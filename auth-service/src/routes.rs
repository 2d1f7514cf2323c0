//! The HTTP edge: the nginx `auth_request` contract is status codes and headers only.
//!
//! | route | answer |
//! | --- | --- |
//! | `/auth` (any method) | 204 allow, 403 block, 401 challenge (a policy in observe mode: always 204, the would-be verdict in `X-IPCheck-Observed-*`); empty body; `X-IPCheck-*` headers |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when what this instance needs (Redis, if configured) answers, else 503; the body also reports the provider and unknown policy names, which never make it unready |
//!
//! `GET /metrics` (Prometheus text format) is served by [`metrics_router`] on a listener of its
//! own (`metrics.listen`), never on the `/auth` port; `GET /explain?address=<ip>&policy=<name>`
//! by [`admin_router`] on the loopback-only admin listener (`admin.listen`).

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use ipcheck_core::Verdict;

use crate::app::App;
use crate::decide::decide;
use crate::reload::Current;

/// `allow`, `block` or `challenge`.
pub const VERDICT: HeaderName = HeaderName::from_static("x-ipcheck-verdict");
/// Comma-separated reasons, possibly empty.
pub const REASON: HeaderName = HeaderName::from_static("x-ipcheck-reason");
/// `local`, `redis`, `provider`, `stale`, `database` or `none`.
pub const CACHE: HeaderName = HeaderName::from_static("x-ipcheck-cache");
/// The normalized address.
pub const KEY: HeaderName = HeaderName::from_static("x-ipcheck-key");
/// Observe mode only: the verdict the policy would have sent (`X-IPCheck-Verdict` is `allow`).
pub const OBSERVED_VERDICT: HeaderName = HeaderName::from_static("x-ipcheck-observed-verdict");
/// Observe mode only: the reasons the policy would have sent (`X-IPCheck-Reason` is empty).
pub const OBSERVED_REASON: HeaderName = HeaderName::from_static("x-ipcheck-observed-reason");

/// All routes over the shared state.
pub fn router(app: Current) -> Router {
    Router::new()
        .route("/auth", any(auth))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// The operator's endpoints, for the admin listener.
pub fn admin_router(app: Current) -> Router {
    Router::new()
        .route("/explain", get(explain))
        .with_state(app)
}

#[derive(serde::Deserialize)]
struct ExplainQuery {
    address: String,
    policy: Option<String>,
}

/// 200 with the explanation; 400 for an address that does not parse, 404 for an unknown policy.
async fn explain(
    State(current): State<Current>,
    axum::extract::Query(q): axum::extract::Query<ExplainQuery>,
) -> Response {
    let text = |status, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let app = current.load_full();
    match crate::explain::explain(&app, &q.address, q.policy.as_deref()).await {
        Ok(body) => text(StatusCode::OK, body),
        Err(e @ crate::explain::ExplainError::BadAddress(_)) => {
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
        Err(e) => text(StatusCode::NOT_FOUND, format!("{e}\n")),
    }
}

/// `/metrics` alone, for the metrics listener.
pub fn metrics_router(app: Current) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn auth(State(current): State<Current>, headers: HeaderMap) -> Response {
    // One load per request: it finishes on the configuration it started with, even across a
    // reload (`crate::reload`).
    let app = current.load_full();
    let log = &app.settings.decision_log;
    // One clock read each side serves both the histogram and the decision log.
    let started = Instant::now();
    let outcome = decide(&app, &headers).await;
    let elapsed = started.elapsed();
    app.metrics.auth_duration.observe(elapsed);
    if log.enabled() {
        log.record(&headers, &outcome, elapsed);
    }
    if let Some(events) = &app.events {
        events.record(&headers, &outcome);
    }
    let answer = outcome.answer();
    let status = match answer {
        Verdict::Allow => StatusCode::NO_CONTENT,
        Verdict::Block => StatusCode::FORBIDDEN,
        Verdict::Challenge => StatusCode::UNAUTHORIZED,
    };
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(VERDICT, HeaderValue::from_static(answer.as_str()));
    match outcome.mode {
        crate::mode::Mode::Enforce => {
            h.insert(REASON, outcome.reason);
        }
        crate::mode::Mode::Observe => {
            h.insert(REASON, HeaderValue::from_static(""));
            h.insert(
                OBSERVED_VERDICT,
                HeaderValue::from_static(outcome.verdict.as_str()),
            );
            h.insert(OBSERVED_REASON, outcome.reason);
        }
    }
    h.insert(CACHE, HeaderValue::from_static(outcome.tier.as_str()));
    h.insert(KEY, outcome.key);
    crate::fact_headers::insert(h, &outcome.attributes);
    response
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The first line says it all (`ready`, `ready, degraded: provider`, `not ready: redis`); one line
/// per part follows. Degraded parts are loud but never unready: see [`provider_line`].
async fn readyz(State(current): State<Current>) -> Response {
    let app = current.load_full();
    let (ready, redis) = redis_line(&app).await;
    let mut degraded = Vec::new();
    if app.provider.as_ref().is_some_and(|p| p.failing()) {
        degraded.push("provider");
    }
    if app.unknown_policy_seen() {
        degraded.push("policies");
    }
    if let Some(r) = &app.redis {
        for mode in r.lean_modes() {
            if mode.unusable_because().is_some() {
                // Every lookup and write-back still goes through, at a higher cost to Redis:
                // see the redis line.
                degraded.push(mode.lean().degraded);
            }
        }
    }
    let coherence = app.coherence.as_ref();
    if coherence.is_some_and(|c| c.state() == crate::cache::invalidation::LinkState::Down) {
        degraded.push("invalidation");
    }
    if app.metrics.feeds.failing() {
        degraded.push("feeds");
    }
    if !app.lists.all_loaded() {
        degraded.push("lists");
    }
    if app.databases.degraded() {
        degraded.push("databases");
    }
    let mut body = match (ready, degraded.is_empty()) {
        (false, _) => "not ready: redis\n".to_owned(),
        (true, true) => "ready\n".to_owned(),
        (true, false) => format!("ready, degraded: {}\n", degraded.join(", ")),
    };
    body.push_str(&redis);
    if let Some(c) = coherence {
        body.push_str(&c.line());
    }
    body.push_str(&provider_line(&app));
    body.push_str(&app.policies_line());
    if let Some(line) = crate::mode::readyz_line(&app.settings.policies.observed()) {
        body.push_str(&line);
    }
    body.push_str(&app.metrics.feeds.line());
    body.push_str(&app.lists.line());
    body.push_str(&app.databases.line());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// Redis verified (module, ACL, prefixes), not only reachable; the result is cached for a few
/// seconds. The only dependency that makes the instance unready: without it pins are invisible.
async fn redis_line(app: &App) -> (bool, String) {
    let Some(r) = &app.redis else {
        return (true, "redis: not configured\n".to_owned());
    };
    let verified = r.verified().await;
    // Read after the verification, which closes the breaker when it passes. Until it closes,
    // lookups do not ask Redis, so the instance is not ready, as with Redis down.
    let breaker = r.breaker();
    let closed = breaker.state() == crate::breaker::State::Closed;
    let (ready, line) = match verified {
        Ok(()) => {
            // Ready all the same: every lookup is answered, only at a higher cost to Redis.
            let fallbacks: Vec<String> = r
                .lean_modes()
                .iter()
                .filter_map(|m| {
                    let why = m.unusable_because()?;
                    Some(format!("{}: {why}", m.lean().fallback))
                })
                .collect();
            if fallbacks.is_empty() {
                (closed, "redis: ok\n".to_owned())
            } else {
                (closed, format!("redis: ok ({})\n", fallbacks.join("; ")))
            }
        }
        Err(e) => {
            let state = if e.kind.is_misconfiguration() {
                "misconfigured"
            } else {
                "down"
            };
            let line = format!(
                "redis: {state} ({} {}): {}\n",
                r.display(),
                e.kind,
                e.detail
            );
            (false, line)
        }
    };
    (ready, line + &breaker.line())
}

/// The provider's state as its latest real lookups found it (a probe would spend quota). Reported,
/// never a reason to be unready: a third-party outage must not take a whole fleet out of its load
/// balancer, and each policy's `on_error` already says what an outage means.
fn provider_line(app: &App) -> String {
    match &app.provider {
        None => "provider: not configured\n".to_owned(),
        Some(p) => format!("{}\n{}", p.status_line(), p.breaker().line()),
    }
}

async fn metrics(State(current): State<Current>) -> Response {
    let app = current.load_full();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut text = app.metrics.render(app.local.len());
            app.local.stats().render(&mut text);
            if let Some(redis) = &app.redis {
                redis.health().render(&mut text);
                for mode in redis.lean_modes() {
                    mode.render(&mut text);
                }
                redis.latency().render(&mut text);
            }
            if let Some(c) = &app.coherence {
                c.render(&mut text);
            }
            crate::breaker::render_help(&mut text);
            if let Some(redis) = &app.redis {
                redis.breaker().render(&mut text);
            }
            if let Some(provider) = &app.provider {
                provider.breaker().render(&mut text);
                provider.budget().render(&mut text);
            }
            app.lists.render(&mut text);
            app.databases.render(&mut text);
            if let Some(events) = &app.events {
                events.render(&mut text);
            }
            text
        },
    )
        .into_response()
}
