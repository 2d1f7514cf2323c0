//! Policies: how the facts about an address become a verdict.
//!
//! The cache stores facts (the [`Categories`] a provider reported), never a policy's verdict, so
//! two policies reading one entry can never disagree because of what was cached. A [`Policy`]
//! turns facts into a [`Decision`] with this precedence, first match wins:
//!
//! 1. the deny list (`denylist`, block),
//! 2. the allow list (`allowlist`, allow),
//! 3. a crawler when `allow_crawlers` is on (`crawler`, allow),
//! 4. a block category (block, the matching categories as reasons),
//! 5. a challenge category (challenge, the matching categories as reasons),
//! 6. allow, with no reason.
//!
//! When no facts can be had (provider down, no client address) the policy's [`FailureMode`]
//! decides.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::verdict::{Reasons, Verdict, KNOWN_REASONS};

/// One thing a provider can say about an address; the discriminant is its [`KNOWN_REASONS`] index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// A commercial VPN exit.
    Vpn = 0,
    /// An open or anonymizing proxy.
    Proxy = 1,
    /// A Tor exit node.
    Tor = 2,
    /// A hosting or cloud provider's address (servers, not people).
    Hosting = 3,
    /// A privacy relay such as iCloud Private Relay.
    Relay = 4,
    /// A known search-engine or monitoring crawler.
    Crawler = 5,
}

impl Category {
    /// Every category, in vocabulary (storage) order.
    pub const ALL: [Category; 6] = [
        Category::Vpn,
        Category::Proxy,
        Category::Tor,
        Category::Hosting,
        Category::Relay,
        Category::Crawler,
    ];

    /// The categories a policy may block or challenge (a crawler is handled by `allow_crawlers`).
    pub const BLOCKABLE: [Category; 5] = [
        Category::Vpn,
        Category::Proxy,
        Category::Tor,
        Category::Hosting,
        Category::Relay,
    ];

    /// The token, as stored in `REASON` and sent in `X-IPCheck-Reason`.
    pub fn as_str(self) -> &'static str {
        KNOWN_REASONS[self as usize]
    }

    /// The category named by `token`, if any.
    pub fn from_token(token: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == token)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category name a policy cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown category '{0}': expected one of vpn, proxy, tor, hosting, relay")]
pub struct CategoryError(pub String);

/// A set of [`Category`] values; the bits are the [`KNOWN_REASONS`] positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Categories(u8);

impl Categories {
    /// The empty set: nothing noteworthy about the address.
    pub const EMPTY: Categories = Categories(0);

    /// Adds a category.
    pub fn insert(&mut self, c: Category) {
        self.0 |= c.bit();
    }

    /// This set plus `c`.
    pub fn with(mut self, c: Category) -> Self {
        self.insert(c);
        self
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Category) -> bool {
        self.0 & c.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The categories in both sets.
    pub fn intersection(self, other: Categories) -> Categories {
        Categories(self.0 & other.0)
    }

    /// The categories in either set.
    pub fn union(self, other: Categories) -> Categories {
        Categories(self.0 | other.0)
    }

    /// The members, in vocabulary order.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// The categories among stored reasons; other tokens (`allowlist`, a script's own) are not facts.
    pub fn from_reasons(reasons: &Reasons) -> Categories {
        let mut set = Categories::EMPTY;
        for c in reasons.iter().filter_map(Category::from_token) {
            set.insert(c);
        }
        set
    }

    /// The set as a `REASON` list in vocabulary order, which the compact value encoding needs.
    pub fn to_reasons(self) -> Reasons {
        let mut text = String::new();
        for c in self.iter() {
            if !text.is_empty() {
                text.push(',');
            }
            text.push_str(c.as_str());
        }
        // Known tokens, at most 39 bytes: always a valid list.
        Reasons::parse(&text).unwrap_or_default()
    }

    /// Parses a policy's `block` or `challenge` list; `crawler` is refused (see `allow_crawlers`).
    pub fn parse_policy_list<S: AsRef<str>>(names: &[S]) -> Result<Categories, CategoryError> {
        let mut set = Categories::EMPTY;
        for name in names {
            let name = name.as_ref();
            let c = Category::BLOCKABLE
                .into_iter()
                .find(|c| c.as_str() == name)
                .ok_or_else(|| CategoryError(name.to_owned()))?;
            set.insert(c);
        }
        Ok(set)
    }
}

/// The reasons behind a decision: a bit set over [`KNOWN_REASONS`] positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReasonSet(u16);

impl ReasonSet {
    /// No reason (a plain allow).
    pub const NONE: ReasonSet = ReasonSet(0);
    /// The address is on the policy's allow list.
    pub const ALLOWLIST: ReasonSet = ReasonSet(1 << 6);
    /// The address is on the policy's deny list.
    pub const DENYLIST: ReasonSet = ReasonSet(1 << 7);
    /// The provider failed; the policy's failure mode decided.
    pub const PROVIDER_ERROR: ReasonSet = ReasonSet(1 << 8);
    /// No usable client address; the policy's failure mode decided.
    pub const NO_CLIENT_IP: ReasonSet = ReasonSet(1 << 9);
    /// The request named a policy that is not configured; the unknown-policy setting decided.
    pub const POLICY_ERROR: ReasonSet = ReasonSet(1 << 10);
    /// Redis could not be asked; the policy's `on_redis_error` decided.
    pub const REDIS_ERROR: ReasonSet = ReasonSet(1 << 11);
    /// How many distinct sets exist (for tables indexed by [`ReasonSet::bits`]).
    pub const COUNT: usize = 1 << KNOWN_REASONS.len();

    /// The set of the given categories.
    pub fn from_categories(c: Categories) -> ReasonSet {
        ReasonSet(u16::from(c.0))
    }

    /// The known tokens among `reasons` (unknown ones are dropped).
    pub fn from_reasons(reasons: &Reasons) -> ReasonSet {
        let mut bits = 0u16;
        for token in reasons.iter() {
            if let Some(pos) = KNOWN_REASONS.iter().position(|r| *r == token) {
                bits |= 1 << pos;
            }
        }
        ReasonSet(bits)
    }

    /// The raw bits, below [`ReasonSet::COUNT`].
    pub fn bits(self) -> usize {
        usize::from(self.0)
    }

    /// The set with these raw bits (extra bits are dropped).
    pub fn from_bits(bits: usize) -> ReasonSet {
        ReasonSet((bits & (ReasonSet::COUNT - 1)) as u16)
    }

    /// Comma-separated tokens in vocabulary order, as sent in `X-IPCheck-Reason`.
    pub fn to_text(self) -> String {
        let tokens: Vec<&str> = KNOWN_REASONS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, t)| *t)
            .collect();
        tokens.join(",")
    }
}

/// What a policy answers when it cannot get facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Allow: availability over protection.
    #[default]
    Open,
    /// Block: protection over availability.
    Closed,
}

impl FailureMode {
    /// The verdict this mode gives.
    pub fn verdict(self) -> Verdict {
        match self {
            FailureMode::Open => Verdict::Allow,
            FailureMode::Closed => Verdict::Block,
        }
    }
}

/// What a policy does when Redis could not be asked (a timeout, an error, Redis down).
///
/// Redis holds the operators' manual pins; without it a pinned address looks unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisFailureMode {
    /// Go on without Redis, to the provider: the pins are not seen meanwhile.
    #[default]
    Continue,
    /// Allow, with reason `redis-error`.
    Open,
    /// Block, with reason `redis-error`: a pinned address is never let in unseen.
    Closed,
}

/// A verdict with the reasons behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Why.
    pub reasons: ReasonSet,
}

/// One named policy: which facts block or challenge, and the address lists that override them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Categories that block.
    pub block: Categories,
    /// Categories that challenge (checked after `block`).
    pub challenge: Categories,
    /// Whether a provider-flagged crawler is allowed whatever else it is.
    pub allow_crawlers: bool,
    /// Networks always allowed (after the deny list).
    pub allow: Vec<IpNet>,
    /// Networks always blocked (checked first).
    pub deny: Vec<IpNet>,
    /// What to answer when no facts can be had.
    pub on_error: FailureMode,
    /// What a Redis failure means for this policy.
    pub on_redis_error: RedisFailureMode,
    /// The named network lists this policy consults (the service matches them; see its
    /// `lists` module for their precedence next to this one).
    pub lists: Vec<String>,
}

impl Default for Policy {
    /// Blocks nothing, allows crawlers, fails open: the embedded default.
    fn default() -> Self {
        Policy {
            block: Categories::EMPTY,
            challenge: Categories::EMPTY,
            allow_crawlers: true,
            allow: Vec::new(),
            deny: Vec::new(),
            on_error: FailureMode::Open,
            on_redis_error: RedisFailureMode::Continue,
            lists: Vec::new(),
        }
    }
}

impl Policy {
    /// Rules 1 and 2: the deny and allow lists, which need no lookup at all.
    pub fn check_lists(&self, addr: IpAddr) -> Option<Decision> {
        // An IPv4-mapped IPv6 address is the IPv4 client, as in normalization.
        let addr = addr.to_canonical();
        if self.deny.iter().any(|n| n.contains(&addr)) {
            return Some(Decision {
                verdict: Verdict::Block,
                reasons: ReasonSet::DENYLIST,
            });
        }
        if self.allow.iter().any(|n| n.contains(&addr)) {
            return Some(Decision {
                verdict: Verdict::Allow,
                reasons: ReasonSet::ALLOWLIST,
            });
        }
        None
    }

    /// Rules 3 to 6: the facts about an address not on either list.
    pub fn apply(&self, facts: Categories) -> Decision {
        if self.allow_crawlers && facts.contains(Category::Crawler) {
            return Decision {
                verdict: Verdict::Allow,
                reasons: ReasonSet::from_categories(Categories::EMPTY.with(Category::Crawler)),
            };
        }
        let blocking = facts.intersection(self.block);
        if !blocking.is_empty() {
            return Decision {
                verdict: Verdict::Block,
                reasons: ReasonSet::from_categories(blocking),
            };
        }
        let challenging = facts.intersection(self.challenge);
        if !challenging.is_empty() {
            return Decision {
                verdict: Verdict::Challenge,
                reasons: ReasonSet::from_categories(challenging),
            };
        }
        Decision {
            verdict: Verdict::Allow,
            reasons: ReasonSet::NONE,
        }
    }

    /// The whole precedence for an address whose facts are known.
    pub fn decide(&self, addr: IpAddr, facts: Categories) -> Decision {
        self.check_lists(addr).unwrap_or_else(|| self.apply(facts))
    }

    /// The failure mode's decision, with the reason for the failure.
    pub fn failure(&self, reasons: ReasonSet) -> Decision {
        Decision {
            verdict: self.on_error.verdict(),
            reasons,
        }
    }

    /// The decision when Redis could not be asked, or `None` to go on with whatever the other
    /// tiers found (`on_redis_error = "continue"`).
    pub fn redis_failure(&self) -> Option<Decision> {
        let verdict = match self.on_redis_error {
            RedisFailureMode::Continue => return None,
            RedisFailureMode::Open => Verdict::Allow,
            RedisFailureMode::Closed => Verdict::Block,
        };
        Some(Decision {
            verdict,
            reasons: ReasonSet::REDIS_ERROR,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(list: &[Category]) -> Categories {
        list.iter().fold(Categories::EMPTY, |s, c| s.with(*c))
    }

    fn policy() -> Policy {
        Policy {
            block: cats(&[Category::Tor]),
            challenge: cats(&[Category::Vpn, Category::Proxy]),
            allow_crawlers: true,
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            deny: vec![
                "192.0.2.66/32".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            on_error: FailureMode::Closed,
            on_redis_error: RedisFailureMode::Closed,
            lists: Vec::new(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_beats_allow_beats_everything() {
        let p = policy();
        let all = cats(&Category::ALL);
        assert_eq!(p.decide(ip("192.0.2.66"), all).verdict, Verdict::Block);
        assert_eq!(p.decide(ip("192.0.2.66"), all).reasons, ReasonSet::DENYLIST);
        let d = p.decide(ip("192.0.2.1"), cats(&[Category::Tor]));
        assert_eq!(
            (d.verdict, d.reasons),
            (Verdict::Allow, ReasonSet::ALLOWLIST)
        );
        assert_eq!(
            p.decide(ip("2001:db8::1"), Categories::EMPTY).verdict,
            Verdict::Block
        );
        // A mapped address is checked as the IPv4 it carries.
        assert_eq!(
            p.decide(ip("::ffff:192.0.2.66"), Categories::EMPTY).verdict,
            Verdict::Block
        );
    }

    #[test]
    fn crawler_beats_categories_only_when_allowed() {
        let mut p = policy();
        let tor_crawler = cats(&[Category::Tor, Category::Crawler]);
        let d = p.apply(tor_crawler);
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Allow, "crawler")
        );
        p.allow_crawlers = false;
        let d = p.apply(tor_crawler);
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Block, "tor")
        );
        assert_eq!(p.apply(cats(&[Category::Crawler])).verdict, Verdict::Allow);
    }

    #[test]
    fn block_beats_challenge_beats_allow() {
        let p = policy();
        let d = p.apply(cats(&[Category::Vpn, Category::Tor, Category::Hosting]));
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Block, "tor")
        );
        let d = p.apply(cats(&[Category::Vpn, Category::Proxy, Category::Hosting]));
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Challenge, "vpn,proxy")
        );
        let d = p.apply(cats(&[Category::Hosting]));
        assert_eq!((d.verdict, d.reasons), (Verdict::Allow, ReasonSet::NONE));
    }

    #[test]
    fn failure_mode() {
        let mut p = policy();
        assert_eq!(p.failure(ReasonSet::PROVIDER_ERROR).verdict, Verdict::Block);
        p.on_error = FailureMode::Open;
        let d = p.failure(ReasonSet::NO_CLIENT_IP);
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Allow, "no-client-ip")
        );
    }

    #[test]
    fn named_reason_sets_match_their_tokens() {
        for (set, token) in [
            (ReasonSet::ALLOWLIST, "allowlist"),
            (ReasonSet::DENYLIST, "denylist"),
            (ReasonSet::PROVIDER_ERROR, "provider-error"),
            (ReasonSet::NO_CLIENT_IP, "no-client-ip"),
            (ReasonSet::POLICY_ERROR, "policy-error"),
            (ReasonSet::REDIS_ERROR, "redis-error"),
        ] {
            assert_eq!(set.to_text(), token);
        }
    }

    #[test]
    fn redis_failure_mode() {
        let mut p = policy();
        let d = p.redis_failure().expect("closed decides");
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Block, "redis-error")
        );
        p.on_redis_error = RedisFailureMode::Open;
        assert_eq!(p.redis_failure().map(|d| d.verdict), Some(Verdict::Allow));
        p.on_redis_error = RedisFailureMode::Continue;
        assert_eq!(p.redis_failure(), None);
    }

    #[test]
    fn categories_round_trip_through_reasons_in_vocabulary_order() {
        let set = cats(&[Category::Hosting, Category::Vpn, Category::Crawler]);
        assert_eq!(set.to_reasons().as_str(), "vpn,hosting,crawler");
        let stored = Reasons::parse("hosting,spam,vpn,crawler").unwrap();
        assert_eq!(Categories::from_reasons(&stored), set);
        assert_eq!(
            ReasonSet::from_reasons(&Reasons::parse("denylist,tor,spam").unwrap()).to_text(),
            "tor,denylist"
        );
    }

    #[test]
    fn policy_lists_refuse_unknown_and_crawler() {
        assert_eq!(
            Categories::parse_policy_list(&["vpn", "relay"]).unwrap(),
            cats(&[Category::Vpn, Category::Relay])
        );
        assert_eq!(
            Categories::parse_policy_list(&["crawler"]),
            Err(CategoryError("crawler".into()))
        );
        assert!(Categories::parse_policy_list(&["VPN"]).is_err());
    }
}
