//! The decision as HTTP sees it: the request's headers in, the client address and the policy
//! picked, the lookup ([`crate::lookup`]) asked, the answer's header values out.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use ipcheck_core::{Attributes, Decision, Policy, ReasonSet, Verdict};

use crate::app::{key_header, App};
use crate::config::UnknownPolicy;
use crate::lookup::{self, Decided, Rule};
use crate::metrics::Tier;

/// The request header nginx uses to pick a policy.
pub const POLICY_HEADER: &str = "x-ipcheck-policy";

/// The answer to nginx.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict (204/403/401).
    pub verdict: Verdict,
    /// `X-IPCheck-Reason`.
    pub reason: HeaderValue,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// `X-IPCheck-Key` (empty when there is no client address).
    pub key: HeaderValue,
    /// `X-IPCheck-Country`, `-ASN`, `-Score`: what the facts that decided know
    /// ([`crate::fact_headers`]).
    pub attributes: Attributes,
}

/// Decides one `/auth` request.
pub async fn decide(app: &Arc<App>, headers: &HeaderMap) -> Outcome {
    let client = app
        .settings
        .client_ip
        .client(headers, app.settings.aggregation);
    let key = client.map_or_else(empty, |c| key_header(&c.key));
    let policy = match pick_policy(app, headers) {
        Ok(policy) => policy,
        Err(decision) => return finish(app, undecided(decision), key),
    };
    let Some(client) = client else {
        return finish(app, undecided(policy.failure(ReasonSet::NO_CLIENT_IP)), key);
    };
    let decided = lookup::decide(app, policy, client).await;
    finish(app, decided, key)
}

/// The policy `X-IPCheck-Policy` names, the default one without it; for a name that is not
/// configured, what `unknown_policy` says: the default policy, or a decision of its own.
fn pick_policy<'a>(app: &'a App, headers: &HeaderMap) -> Result<&'a Policy, Decision> {
    let policies = &app.settings.policies;
    let name = match headers.get(POLICY_HEADER).map(HeaderValue::as_bytes) {
        None | Some(b"") => return Ok(policies.default_policy()),
        Some(name) => std::str::from_utf8(name).unwrap_or(""),
    };
    if let Some(policy) = policies.get(name) {
        return Ok(policy);
    }
    app.unknown_policy(name);
    // A configuration error: the operator's unknown_policy decides, blocking unless told
    // otherwise, because the named policy may have been fail-closed.
    let verdict = match app.settings.unknown_policy {
        UnknownPolicy::Default => return Ok(policies.default_policy()),
        UnknownPolicy::Closed => Verdict::Block,
        UnknownPolicy::Open => Verdict::Allow,
    };
    Err(Decision {
        verdict,
        reasons: ReasonSet::POLICY_ERROR,
    })
}

/// A decision made before any tier was asked: the policy's `on_error` (no client address) or
/// `unknown_policy`.
fn undecided(decision: Decision) -> Decided {
    Decided {
        decision,
        pin_reasons: None,
        tier: Tier::None,
        known: None,
        rule: Rule::OnError,
        list: None,
    }
}

fn empty() -> HeaderValue {
    HeaderValue::from_static("")
}

fn finish(app: &App, decided: Decided, key: HeaderValue) -> Outcome {
    let Decided {
        decision,
        pin_reasons,
        tier,
        known,
        ..
    } = decided;
    app.metrics
        .decision(decision.verdict, decision.reasons, tier);
    let reason = match pin_reasons {
        // Reason tokens are [a-z0-9_-]: always a valid header value.
        Some(text) => HeaderValue::from_str(&text).unwrap_or_else(|_| empty()),
        None => app.reason_header(decision.reasons),
    };
    Outcome {
        verdict: decision.verdict,
        reason,
        tier,
        key,
        attributes: crate::fact_headers::attributes(known.as_ref()),
    }
}
