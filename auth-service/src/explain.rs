//! `explain`: for an address and a policy, what each tier holds, the facts, the rule that
//! decided and the verdict.
//!
//! The verdict is [`crate::lookup::decide`]'s, the very call `/auth` makes, so the two cannot
//! disagree; like an `/auth` request it may fill the local tier and, when no tier knows the
//! address, ask the provider (budget and breaker permitting). What each tier held is read just
//! before, without changing anything. Explaining is not a decision: it is not counted in
//! `ipcheck_decisions_total`, and an unknown policy name is an error here, not `unknown_policy`.

use std::fmt::Write as _;
use std::sync::Arc;

use ipcheck_core::{Attributes, Facts, Needs, ReasonSet, Verdict};

use crate::app::App;
use crate::cache::redis::{Stored, NO_EXPIRY};
use crate::cache::{Known, Unpinned};
use crate::client_ip::parse_client;
use crate::duration::display;
use crate::lookup::lifetimes::RedisHit;
use crate::lookup::{self, Decided, Rule, Tiers};
use crate::metrics::Tier;
use crate::provider::mapping::Attribute;

/// Why there is nothing to explain.
#[derive(Debug, PartialEq, Eq)]
pub enum ExplainError {
    /// The address does not parse.
    BadAddress(String),
    /// No policy has that name.
    UnknownPolicy {
        /// The name asked for.
        name: String,
        /// The configured names.
        configured: Vec<String>,
    },
}

impl std::fmt::Display for ExplainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExplainError::BadAddress(text) => {
                write!(f, "'{text}' is not an IPv4 or IPv6 address")
            }
            ExplainError::UnknownPolicy { name, configured } => write!(
                f,
                "no policy named '{name}'; configured: {}",
                configured.join(", ")
            ),
        }
    }
}

/// The explanation, one `name: value` line per item.
pub async fn explain(
    app: &Arc<App>,
    address: &str,
    policy_name: Option<&str>,
) -> Result<String, ExplainError> {
    let client = parse_client(address.trim(), app.settings.aggregation)
        .ok_or_else(|| ExplainError::BadAddress(address.to_owned()))?;
    let policies = &app.settings.policies;
    let (name, policy) = match policy_name.map(str::trim).filter(|n| !n.is_empty()) {
        None => ("default", policies.default_policy()),
        Some(name) => match policies.get(name) {
            Some(policy) => (name, policy),
            None => {
                return Err(ExplainError::UnknownPolicy {
                    name: name.to_owned(),
                    configured: policies.names().into_iter().map(str::to_owned).collect(),
                })
            }
        },
    };
    let key = client.key.canonical_text();
    // What each tier holds, read before the decision may fill them.
    let local = match app.local.get(&client.key, app.now()) {
        Some(known) => describe(&known),
        None => "miss".to_owned(),
    };
    let redis = match &app.redis {
        None => "not configured".to_owned(),
        Some(redis) => match redis.get(key.as_str()).await {
            Ok(Some(stored)) => describe_stored(app, &stored),
            Ok(None) => "miss".to_owned(),
            Err(e) => format!("no answer ({e})"),
        },
    };
    let databases = app.databases.explain(client.ip, &policy.needs());
    let decided = lookup::decide(app, policy, client).await;
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        let _ = writeln!(out, "{name}: {value}");
    };
    line("address", address.trim());
    line("key", key.as_str());
    line("policy", name);
    line("mode", mode_line(policies.mode(name)));
    line("local", &local);
    line("redis", &redis);
    if !app.databases.is_empty() {
        line("databases", &databases);
    }
    let needs = policy.needs();
    line("provider", &provider_line(app, &decided, &needs));
    line("facts", &facts_line(&decided, &needs));
    line("rule", &rule_line(&decided));
    line("verdict", decided.decision.verdict.as_str());
    let reason = match &decided.pin_reasons {
        Some(text) => text.to_string(),
        None => decided.decision.reasons.to_text(),
    };
    line("reason", &reason);
    line("cache", decided.tier.as_str());
    Ok(out)
}

/// What the mode does to the verdict below.
fn mode_line(mode: crate::mode::Mode) -> &'static str {
    match mode {
        crate::mode::Mode::Enforce => "enforce",
        crate::mode::Mode::Observe => "observe (nginx is answered allow; the verdict and reason below reach the backend as X-IPCheck-Observed-Verdict and -Reason)",
    }
}

/// Facts as `explain` writes them: the categories (or `none`), then the known attributes.
pub fn categories(facts: Facts) -> String {
    let mut text = facts.categories.to_reasons().as_str().to_owned();
    if text.is_empty() {
        text.push_str("none");
    }
    for part in attribute_parts(&facts.attributes) {
        text.push_str(", ");
        text.push_str(&part);
    }
    text
}

/// The known attributes as `explain` writes them: `country US`, `AS13335`, `score 87`.
fn attribute_parts(a: &Attributes) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(c) = a.country {
        parts.push(format!("country {c}"));
    }
    if let Some(n) = a.asn {
        parts.push(format!("AS{n}"));
    }
    if let Some(s) = a.score {
        parts.push(format!("score {s}"));
    }
    parts
}

/// A pin's attributes (sent to the backend, never decided on): `, with country US, AS13335`,
/// or nothing when it carries none.
fn pin_attributes(a: &Attributes) -> String {
    if a.is_empty() {
        String::new()
    } else {
        format!(", with {}", attribute_parts(a).join(", "))
    }
}

/// The facts, and "<attribute> unknown" for each attribute the policy decides on that they do
/// not know (its rules then match nothing; `allow_countries` blocks).
fn with_unknowns(facts: Facts, needs: &Needs) -> String {
    let mut text = categories(facts);
    for a in Attribute::ALL {
        if a.needed_by(needs) && !a.is_known(&facts.attributes) {
            text.push_str(&format!(", {} unknown", a.name()));
        }
    }
    text
}

fn describe(known: &Known) -> String {
    match known {
        Known::Facts(facts) => format!("facts {}", categories(*facts)),
        Known::Stale(facts) => format!(
            "stale facts {} (the provider gave no answer)",
            categories(*facts)
        ),
        Known::Pinned {
            verdict,
            text,
            attributes,
            ..
        } => format!(
            "pin {} ({text}){}",
            verdict.as_str(),
            pin_attributes(attributes)
        ),
        Known::ProviderError => "the provider's failure, remembered briefly".to_owned(),
        Known::Nothing => "nothing to go on (no provider configured)".to_owned(),
        Known::WithoutRedis(found) => format!(
            "{}, learnt while Redis could not be asked",
            describe(&found.known())
        ),
    }
}

fn describe_stored(app: &App, stored: &Stored) -> String {
    let entry = &stored.entry;
    let what = format!(
        "{} {} (source {})",
        entry.verdict.as_str(),
        if entry.reasons.is_empty() {
            "-"
        } else {
            entry.reasons.as_str()
        },
        entry.source.as_str()
    );
    match app.lifetimes().redis_hit(stored) {
        RedisHit::Use { .. } if entry.source.is_manual() => {
            if stored.ttl >= NO_EXPIRY {
                format!("pin: {what}, never ends")
            } else {
                format!("pin: {what}, ends in {}", display(stored.ttl))
            }
        }
        RedisHit::Use { .. } => format!(
            "fresh: {what}, fresh for {}, gone in {}",
            display(stored.fresh_ttl),
            display(stored.ttl)
        ),
        RedisHit::Stale(_) => format!(
            "stale: {what}, served only if the provider gives no answer, gone in {}",
            display(stored.ttl)
        ),
    }
}

fn provider_line(app: &App, decided: &Decided, needs: &Needs) -> String {
    if app.provider.is_none() {
        return "not configured".to_owned();
    }
    match (decided.tier, &decided.known) {
        (_, None) => "not asked (a list decided)".to_owned(),
        (Tier::Provider, Some(known)) => match known {
            Known::Facts(f) | Known::WithoutRedis(Unpinned::Facts(f)) => {
                format!("asked: {}", with_unknowns(*f, needs))
            }
            _ => "asked: no answer (see the log and /readyz)".to_owned(),
        },
        (Tier::Stale, _) => "gave no answer: stale facts served".to_owned(),
        (Tier::Database, _) => {
            "not asked (the databases give every fact the policy needs)".to_owned()
        }
        (Tier::Queued, _) => {
            "not asked inline (on_miss = allow): the address is queued for a worker".to_owned()
        }
        (Tier::Local, _) | (Tier::Redis, _) => {
            format!("not asked (the {} tier knew)", decided.tier.as_str())
        }
        (_, Some(_)) => {
            "not asked: its breaker is open or the budget is spent (see /readyz, /metrics)"
                .to_owned()
        }
    }
}

fn facts_line(decided: &Decided, needs: &Needs) -> String {
    match &decided.known {
        Some(Known::Facts(f) | Known::Stale(f) | Known::WithoutRedis(Unpinned::Facts(f))) => {
            with_unknowns(*f, needs)
        }
        // A pin decides without facts; what the operator stored with it reaches the backend.
        Some(Known::Pinned { attributes, .. }) if !attributes.is_empty() => {
            format!("none (a pin){}", pin_attributes(attributes))
        }
        _ => "none".to_owned(),
    }
}

fn rule_line(decided: &Decided) -> String {
    let verdict = decided.decision.verdict;
    let categories = || match verdict {
        Verdict::Block => format!("{} the policy blocks", what(decided.decision.reasons)),
        Verdict::Challenge => format!("{} the policy challenges", what(decided.decision.reasons)),
        Verdict::Allow if decided.decision.reasons.to_text() == "crawler" => {
            "a crawler, which the policy allows (allow_crawlers)".to_owned()
        }
        Verdict::Allow => "no fact the policy blocks or challenges".to_owned(),
    };
    match decided.rule {
        Rule::DenyList => "the policy's deny list".to_owned(),
        Rule::AllowList => "the policy's allow list".to_owned(),
        Rule::List => format!(
            "the list '{}', before any tier was asked (no Redis read, no provider call)",
            decided.list.as_deref().unwrap_or("?")
        ),
        Rule::Facts => match &decided.list {
            Some(list) => format!("{} (facts include the list '{list}')", categories()),
            None => categories(),
        },
        Rule::StaleFacts => format!("{} (stale facts)", categories()),
        Rule::Pin => "an operator's pin in Redis, final for every policy".to_owned(),
        Rule::OnError => "on_error: no facts to go on".to_owned(),
        Rule::OnRedisError => {
            "on_redis_error: Redis could not be asked, so a pin may be hiding there".to_owned()
        }
        Rule::OnMiss => {
            "on_miss = allow: this instance does not know the address yet, so no facts; answered without reading Redis, which is read in the background (a pin applies from the next request); queued for enrichment if Redis has nothing"
                .to_owned()
        }
    }
}

/// What matched, from the reasons: "a category", "the country", "the AS number", "the score",
/// joined by "and".
fn what(reasons: ReasonSet) -> String {
    let attributes = [
        (ReasonSet::COUNTRY, "the country"),
        (ReasonSet::ASN, "the AS number"),
        (ReasonSet::SCORE, "the score"),
    ];
    let attribute_bits = attributes.iter().fold(0, |b, (r, _)| b | r.bits());
    let mut parts = Vec::new();
    if reasons.bits() & !attribute_bits != 0 {
        parts.push("a category");
    }
    for (r, text) in attributes {
        if reasons.bits() & r.bits() != 0 {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        parts.push("a category");
    }
    parts.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::{Asn, Categories, Category, Country, Score};

    #[test]
    fn a_pin_shows_what_it_carries() {
        let pin = |attributes| Known::Pinned {
            verdict: Verdict::Block,
            text: Arc::from("abuse"),
            reasons: ReasonSet::NONE,
            attributes,
        };
        let carried = Attributes {
            country: Country::parse("us").ok(),
            asn: Asn::new(13335),
            score: Score::new(87),
        };
        assert_eq!(
            describe(&pin(carried)),
            "pin block (abuse), with country US, AS13335, score 87"
        );
        assert_eq!(describe(&pin(Attributes::NONE)), "pin block (abuse)");
        let only_asn = Attributes {
            asn: Asn::new(64500),
            ..Attributes::NONE
        };
        assert_eq!(pin_attributes(&only_asn), ", with AS64500");
    }

    #[test]
    fn what_matched() {
        let tor = ReasonSet::from_categories(Categories::EMPTY.with(Category::Tor));
        assert_eq!(what(tor), "a category");
        assert_eq!(what(ReasonSet::ASN), "the AS number");
        assert_eq!(
            what(tor.union(ReasonSet::COUNTRY).union(ReasonSet::SCORE)),
            "a category and the country and the score"
        );
    }

    #[test]
    fn unknown_attributes_the_policy_needs() {
        let needs = Needs {
            country: true,
            score: true,
            ..Needs::default()
        };
        let facts = Facts {
            categories: Categories::EMPTY.with(Category::Vpn),
            attributes: Attributes {
                country: Country::parse("US").ok(),
                asn: Asn::new(64500),
                score: None,
            },
        };
        assert_eq!(
            with_unknowns(facts, &needs),
            "vpn, country US, AS64500, score unknown"
        );
        assert_eq!(with_unknowns(Facts::EMPTY, &Needs::default()), "none");
    }
}
