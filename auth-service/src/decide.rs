//! The decision as HTTP sees it: the request's headers in, the client address and the policy
//! picked, the lookup ([`crate::lookup`]) asked, the answer's header values out.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use ipcheck_core::{Attributes, Decision, Policy, ReasonSet, Verdict};

use crate::app::{key_header, App};
use crate::config::UnknownPolicy;
use crate::lookup::{self, Decided, Rule};
use crate::metrics::Tier;
use crate::mode::Mode;

/// The request header nginx uses to pick a policy.
pub const POLICY_HEADER: &str = "x-ipcheck-policy";

/// The decision, and what nginx is answered ([`Outcome::answer`]).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The policy's verdict; nginx gets it (204/403/401) only in enforce mode.
    pub verdict: Verdict,
    /// The policy's reasons: `X-IPCheck-Reason` in enforce mode, `X-IPCheck-Observed-Reason` in
    /// observe mode.
    pub reason: HeaderValue,
    /// `X-IPCheck-Cache`.
    pub tier: Tier,
    /// `X-IPCheck-Key` (empty when there is no client address).
    pub key: HeaderValue,
    /// `X-IPCheck-Country`, `-ASN`, `-Score`: what the facts that decided know
    /// ([`crate::fact_headers`]).
    pub attributes: Attributes,
    /// The client address (`None` when none was usable).
    pub address: Option<IpAddr>,
    /// The policy's mode (`enforce` when no configured policy decided: `unknown_policy`).
    pub mode: Mode,
}

impl Outcome {
    /// What nginx is answered: the verdict in enforce mode, allow in observe mode.
    pub fn answer(&self) -> Verdict {
        self.mode.answer(self.verdict)
    }
}

/// Decides one `/auth` request.
pub async fn decide(app: &Arc<App>, headers: &HeaderMap) -> Outcome {
    let client = app
        .settings
        .client_ip
        .client(headers, app.settings.aggregation);
    let key = client.map_or_else(empty, |c| key_header(&c.key));
    let address = client.map(|c| c.ip);
    let (policy, mode) = match pick_policy(app, headers) {
        Ok((name, policy)) => (policy, app.settings.policies.mode(name)),
        Err(decision) => {
            return finish(app, undecided(decision), key, address, Mode::Enforce);
        }
    };
    let Some(client) = client else {
        let decided = undecided(policy.failure(ReasonSet::NO_CLIENT_IP));
        return finish(app, decided, key, address, mode);
    };
    let decided = lookup::decide(app, policy, client).await;
    finish(app, decided, key, address, mode)
}

/// The policy `X-IPCheck-Policy` names (with the name it is configured under), the default one
/// without it; for a name that is not configured, what `unknown_policy` says: the default
/// policy, or a decision of its own.
fn pick_policy<'a, 'h>(
    app: &'a App,
    headers: &'h HeaderMap,
) -> Result<(&'h str, &'a Policy), Decision> {
    let policies = &app.settings.policies;
    let name = match headers.get(POLICY_HEADER).map(HeaderValue::as_bytes) {
        None | Some(b"") => return Ok(("default", policies.default_policy())),
        Some(name) => std::str::from_utf8(name).unwrap_or(""),
    };
    if let Some(policy) = policies.get(name) {
        return Ok((name, policy));
    }
    app.unknown_policy(name);
    // A configuration error: the operator's unknown_policy decides, blocking unless told
    // otherwise, because the named policy may have been fail-closed.
    let verdict = match app.settings.unknown_policy {
        UnknownPolicy::Default => return Ok(("default", policies.default_policy())),
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

fn finish(
    app: &App,
    decided: Decided,
    key: HeaderValue,
    address: Option<IpAddr>,
    mode: Mode,
) -> Outcome {
    let Decided {
        decision,
        pin_reasons,
        tier,
        known,
        ..
    } = decided;
    match mode {
        Mode::Enforce => app
            .metrics
            .decision(decision.verdict, decision.reasons, tier),
        Mode::Observe => {
            // Sent: an allow without reasons; observed: the policy's decision.
            app.metrics.decision(Verdict::Allow, ReasonSet::NONE, tier);
            app.metrics
                .observed
                .count(decision.verdict, decision.reasons);
        }
    }
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
        address,
        mode,
    }
}
