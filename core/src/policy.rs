//! Policies: how the facts about an address become a verdict.
//!
//! The cache stores facts (the [`Categories`] a provider reported), never a policy's verdict, so
//! two policies reading one entry can never disagree because of what was cached. A [`Policy`]
//! turns facts into a [`Decision`] with this precedence, first match wins:
//!
//! 1. the deny list (`denylist`, block),
//! 2. the allow list (`allowlist`, allow),
//! 3. a crawler when `allow_crawlers` is on (`crawler`, allow),
//! 4. block, when any of these holds (every one that holds is a reason): a `block` category
//!    (the category's token), the country is in `block_countries` or, with `allow_countries`
//!    set, is not in it (`country`), the AS number is in `block_asns` (`asn`), the score is at
//!    least `block_score` (`score`),
//! 5. challenge, the same with `challenge`, `challenge_countries`, `challenge_asns` and
//!    `challenge_score`,
//! 6. allow, with no reason.
//!
//! An unknown attribute matches no list and no threshold, with one exception: under
//! `allow_countries` (an allow-only list) an address whose country is unknown is not one of the
//! allowed countries, so it is blocked, because "only these countries" must not let in whatever
//! a database cannot place.
//!
//! When no facts can be had (provider down, no client address) the policy's [`FailureMode`]
//! decides.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::facts::{Asn, Country, Facts, Score};
use crate::verdict::{Reasons, Verdict};

pub use crate::vocabulary::Category;
use crate::vocabulary::{self, Kind, Use, KNOWN_MASK, MAX_KNOWN_TEXT};

impl Category {
    /// The token, as stored in `REASON` and sent in `X-IPCheck-Reason`.
    pub fn as_str(self) -> &'static str {
        self.row().token
    }

    /// The category named by `token`, if any.
    pub fn from_token(token: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == token)
    }

    /// Whether a policy may list it in `block` or `challenge` (a crawler is `allow_crawlers`').
    pub fn is_blockable(self) -> bool {
        self.row().kind == Kind::Category(Use::Blockable)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category name a policy cannot use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown category '{0}': expected one of {list}", list = vocabulary::blockable_list())]
pub struct CategoryError(pub String);

// Both sets hold every reason bit the stored encoding reserves, so no row can wrap into another.
const _: () = assert!(u32::BITS >= vocabulary::REASON_BITS);

/// A set of [`Category`] values; the bits are the vocabulary's reason bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Categories(u32);

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

    /// The members, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        Category::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// The categories among stored reasons; other tokens (`allowlist`, a script's own, a newer
    /// writer's `unknown-<bit>`) are not facts this version can act on.
    pub fn from_reasons(reasons: &Reasons) -> Categories {
        let mut set = Categories::EMPTY;
        for c in reasons.iter().filter_map(Category::from_token) {
            set.insert(c);
        }
        set
    }

    /// The set as a `REASON` list in bit order, which the compact value encoding needs.
    pub fn to_reasons(self) -> Reasons {
        // Known tokens, every one at most once: always a valid list.
        Reasons::parse(&ReasonSet::from_categories(self).to_text()).unwrap_or_default()
    }

    /// Parses a policy's `block` or `challenge` list; `crawler` is refused (see `allow_crawlers`).
    pub fn parse_policy_list<S: AsRef<str>>(names: &[S]) -> Result<Categories, CategoryError> {
        let mut set = Categories::EMPTY;
        for name in names {
            let name = name.as_ref();
            let c = Category::from_token(name)
                .filter(|c| c.is_blockable())
                .ok_or_else(|| CategoryError(name.to_owned()))?;
            set.insert(c);
        }
        Ok(set)
    }
}

/// The reasons behind a decision: a bit set over the vocabulary's known reason bits. Its named
/// constants (`ReasonSet::DENYLIST`, ...) come from the vocabulary's outcome rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReasonSet(u32);

impl ReasonSet {
    /// No reason (a plain allow).
    pub const NONE: ReasonSet = ReasonSet(0);

    pub(crate) const fn from_bit(bit: u32) -> ReasonSet {
        ReasonSet(1 << bit)
    }

    /// The set of the given categories.
    pub fn from_categories(c: Categories) -> ReasonSet {
        ReasonSet(c.0)
    }

    /// The known tokens among `reasons` (others, `unknown-<bit>` included, are dropped).
    pub fn from_reasons(reasons: &Reasons) -> ReasonSet {
        let mut bits = 0u32;
        for bit in reasons.iter().filter_map(vocabulary::known_bit) {
            bits |= 1 << bit;
        }
        ReasonSet(bits)
    }

    /// The reasons in either set.
    pub fn union(self, other: ReasonSet) -> ReasonSet {
        ReasonSet(self.0 | other.0)
    }

    /// The raw bits (only known bits are ever set).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The set with these raw bits (bits the vocabulary does not know are dropped).
    pub fn from_bits(bits: u32) -> ReasonSet {
        ReasonSet(bits & KNOWN_MASK)
    }

    /// Whether there is no reason.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many tokens the set has.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The tokens, in bit order.
    pub fn tokens(self) -> impl Iterator<Item = &'static str> {
        vocabulary::KNOWN_REASONS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, t)| *t)
    }

    /// The single token when the set has exactly one (the common case, which needs no text).
    pub fn single(self) -> Option<&'static str> {
        if self.0.count_ones() == 1 {
            vocabulary::KNOWN_REASONS
                .get(self.0.trailing_zeros() as usize)
                .copied()
        } else {
            None
        }
    }

    /// Writes the comma-separated tokens into `buf` without allocating; returns the text.
    pub fn write_text(self, buf: &mut ReasonText) -> &str {
        let mut len = 0;
        let mut bits = self.0;
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            if len > 0 {
                buf.0[len] = b',';
                len += 1;
            }
            len = vocabulary::write_token(bit, &mut buf.0, len);
        }
        // Only ASCII vocabulary bytes were written.
        std::str::from_utf8(&buf.0[..len]).unwrap_or("")
    }

    /// Comma-separated tokens in bit order, as sent in `X-IPCheck-Reason`.
    pub fn to_text(self) -> String {
        self.write_text(&mut ReasonText::new()).to_owned()
    }
}

/// Room for the text of any [`ReasonSet`] (every known token, comma-separated).
pub struct ReasonText([u8; MAX_KNOWN_TEXT]);

impl ReasonText {
    /// An empty buffer.
    pub fn new() -> Self {
        ReasonText([0; MAX_KNOWN_TEXT])
    }
}

impl Default for ReasonText {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a known score is at or above a set threshold.
fn reaches(score: Option<Score>, threshold: Option<Score>) -> bool {
    matches!((score, threshold), (Some(s), Some(t)) if s >= t)
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

/// What a policy does with an address no tier knows yet (`on_miss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMiss {
    /// Ask the provider within its deadline and decide on its answer (the default).
    #[default]
    Wait,
    /// Answer at once as if the address had no facts, and queue it for enrichment in the
    /// background, so a later request is decided on facts.
    Allow,
}

impl OnMiss {
    /// The config word.
    pub fn as_str(self) -> &'static str {
        match self {
            OnMiss::Wait => "wait",
            OnMiss::Allow => "allow",
        }
    }
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
    /// Countries that block.
    pub block_countries: Vec<Country>,
    /// Countries that challenge.
    pub challenge_countries: Vec<Country>,
    /// When not empty, the only countries not blocked (an unknown country is blocked).
    pub allow_countries: Vec<Country>,
    /// AS numbers that block.
    pub block_asns: Vec<Asn>,
    /// AS numbers that challenge.
    pub challenge_asns: Vec<Asn>,
    /// A score at or above this blocks.
    pub block_score: Option<Score>,
    /// A score at or above this challenges.
    pub challenge_score: Option<Score>,
    /// What to do with an address no tier knows yet.
    pub on_miss: OnMiss,
}

/// Which facts a policy decides on: what a tier must know for the policy to decide without
/// asking further (see the service's local databases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// The categories it acts on (`crawler` included when it allows crawlers).
    pub categories: Categories,
    /// Whether any country key is set.
    pub country: bool,
    /// Whether any AS number key is set.
    pub asn: bool,
    /// Whether any score threshold is set.
    pub score: bool,
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
            block_countries: Vec::new(),
            challenge_countries: Vec::new(),
            allow_countries: Vec::new(),
            block_asns: Vec::new(),
            challenge_asns: Vec::new(),
            block_score: None,
            challenge_score: None,
            on_miss: OnMiss::Wait,
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
    pub fn apply(&self, facts: impl Into<Facts>) -> Decision {
        let facts = facts.into();
        let categories = facts.categories;
        if self.allow_crawlers && categories.contains(Category::Crawler) {
            return Decision {
                verdict: Verdict::Allow,
                reasons: ReasonSet::from_categories(Categories::EMPTY.with(Category::Crawler)),
            };
        }
        let a = facts.attributes;
        let mut blocking = ReasonSet::from_categories(categories.intersection(self.block));
        let country_blocks = match a.country {
            Some(c) => {
                self.block_countries.contains(&c)
                    || (!self.allow_countries.is_empty() && !self.allow_countries.contains(&c))
            }
            None => !self.allow_countries.is_empty(),
        };
        if country_blocks {
            blocking = blocking.union(ReasonSet::COUNTRY);
        }
        if a.asn.is_some_and(|n| self.block_asns.contains(&n)) {
            blocking = blocking.union(ReasonSet::ASN);
        }
        if reaches(a.score, self.block_score) {
            blocking = blocking.union(ReasonSet::SCORE);
        }
        if !blocking.is_empty() {
            return Decision {
                verdict: Verdict::Block,
                reasons: blocking,
            };
        }
        let mut challenging = ReasonSet::from_categories(categories.intersection(self.challenge));
        if a.country
            .is_some_and(|c| self.challenge_countries.contains(&c))
        {
            challenging = challenging.union(ReasonSet::COUNTRY);
        }
        if a.asn.is_some_and(|n| self.challenge_asns.contains(&n)) {
            challenging = challenging.union(ReasonSet::ASN);
        }
        if reaches(a.score, self.challenge_score) {
            challenging = challenging.union(ReasonSet::SCORE);
        }
        if !challenging.is_empty() {
            return Decision {
                verdict: Verdict::Challenge,
                reasons: challenging,
            };
        }
        Decision {
            verdict: Verdict::Allow,
            reasons: ReasonSet::NONE,
        }
    }

    /// The whole precedence for an address whose facts are known.
    pub fn decide(&self, addr: IpAddr, facts: impl Into<Facts>) -> Decision {
        self.check_lists(addr).unwrap_or_else(|| self.apply(facts))
    }

    /// The facts this policy decides on.
    pub fn needs(&self) -> Needs {
        let mut categories = self.block.union(self.challenge);
        if self.allow_crawlers {
            categories.insert(Category::Crawler);
        }
        Needs {
            categories,
            country: !(self.block_countries.is_empty()
                && self.challenge_countries.is_empty()
                && self.allow_countries.is_empty()),
            asn: !(self.block_asns.is_empty() && self.challenge_asns.is_empty()),
            score: self.block_score.is_some() || self.challenge_score.is_some(),
        }
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
            ..Policy::default()
        }
    }

    fn facts(categories: &[Category], country: &str, asn: u32, score: Option<u8>) -> Facts {
        Facts {
            categories: cats(categories),
            attributes: crate::Attributes {
                country: Country::parse(country).ok(),
                asn: Asn::new(asn),
                score: score.and_then(Score::new),
            },
        }
    }

    fn countries(list: &[&str]) -> Vec<Country> {
        list.iter().map(|c| Country::parse(c).unwrap()).collect()
    }

    #[test]
    fn country_asn_and_score_rules() {
        let mut p = policy();
        p.block_countries = countries(&["KP"]);
        p.challenge_countries = countries(&["RU"]);
        p.block_asns = vec![Asn::new(64496).unwrap()];
        p.challenge_asns = vec![Asn::new(64497).unwrap()];
        p.block_score = Score::new(85);
        p.challenge_score = Score::new(60);
        let text = |d: Decision| (d.verdict, d.reasons.to_text());
        assert_eq!(
            text(p.apply(facts(&[], "KP", 1, Some(10)))),
            (Verdict::Block, "country".into())
        );
        // Every rule that blocks is a reason, in vocabulary order.
        assert_eq!(
            text(p.apply(facts(&[Category::Tor], "KP", 64496, Some(85)))),
            (Verdict::Block, "tor,country,asn,score".into())
        );
        // Block beats challenge, whatever decided each.
        assert_eq!(
            text(p.apply(facts(&[Category::Vpn], "RU", 64496, None))),
            (Verdict::Block, "asn".into())
        );
        assert_eq!(
            text(p.apply(facts(&[Category::Vpn], "RU", 64497, Some(60)))),
            (Verdict::Challenge, "vpn,country,asn,score".into())
        );
        assert_eq!(
            text(p.apply(facts(&[], "DE", 3320, Some(59)))),
            (Verdict::Allow, String::new())
        );
        // Unknown attributes match nothing.
        assert_eq!(
            text(p.apply(facts(&[], "", 0, None))),
            (Verdict::Allow, String::new())
        );
        // A crawler is let through before any attribute rule; the lists come first of all.
        assert_eq!(
            text(p.apply(facts(&[Category::Crawler], "KP", 64496, Some(100)))),
            (Verdict::Allow, "crawler".into())
        );
        assert_eq!(
            p.decide(ip("192.0.2.1"), facts(&[], "KP", 0, None)).reasons,
            ReasonSet::ALLOWLIST
        );
    }

    #[test]
    fn allow_only_countries_block_the_rest_and_the_unknown() {
        let mut p = policy();
        p.allow_countries = countries(&["DE", "AT"]);
        assert_eq!(p.apply(facts(&[], "DE", 0, None)).verdict, Verdict::Allow);
        let d = p.apply(facts(&[], "FR", 0, None));
        assert_eq!((d.verdict, d.reasons), (Verdict::Block, ReasonSet::COUNTRY));
        let d = p.apply(facts(&[], "", 0, None));
        assert_eq!((d.verdict, d.reasons), (Verdict::Block, ReasonSet::COUNTRY));
        // An allowed country is still blocked by what else it is.
        assert_eq!(
            p.apply(facts(&[Category::Tor], "AT", 0, None))
                .reasons
                .to_text(),
            "tor"
        );
    }

    #[test]
    fn needs_follow_the_keys() {
        let mut p = policy();
        let n = p.needs();
        assert_eq!(
            n.categories,
            cats(&[
                Category::Tor,
                Category::Vpn,
                Category::Proxy,
                Category::Crawler
            ])
        );
        assert!(!n.country && !n.asn && !n.score);
        p.allow_crawlers = false;
        p.allow_countries = countries(&["DE"]);
        p.challenge_score = Score::new(50);
        let n = p.needs();
        assert!(!n.categories.contains(Category::Crawler));
        assert!(n.country && !n.asn && n.score);
        p.challenge_asns = vec![Asn::new(1).unwrap()];
        assert!(p.needs().asn);
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
            (ReasonSet::COUNTRY, "country"),
            (ReasonSet::ASN, "asn"),
            (ReasonSet::SCORE, "score"),
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
    fn every_bit_is_its_own_token() {
        // The bug this table fixes: a row past bit 7 must not wrap onto another token.
        for (bit, token) in crate::KNOWN_REASONS.iter().enumerate() {
            let set = ReasonSet::from_bits(1 << bit);
            assert_eq!(set.to_text(), *token);
            assert_eq!(set.single(), Some(*token));
            assert_eq!(
                ReasonSet::from_reasons(&Reasons::parse(token).unwrap()),
                set
            );
        }
        for c in Category::ALL {
            let set = Categories::EMPTY.with(c);
            assert_eq!(set.iter().collect::<Vec<_>>(), [c]);
            assert_eq!(set.to_reasons().as_str(), c.as_str());
        }
        let all = ReasonSet::from_bits(u32::MAX);
        assert_eq!(all.to_text(), crate::KNOWN_REASONS.join(","));
        assert_eq!(all.len(), crate::KNOWN_REASONS.len());
        assert_eq!(all.single(), None);
        // unknown-<bit> is kept in storage, never a reason this version acts on.
        let stored = Reasons::parse("tor,unknown-20").unwrap();
        assert_eq!(ReasonSet::from_reasons(&stored).to_text(), "tor");
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
        assert_eq!(
            CategoryError("spam".into()).to_string(),
            "unknown category 'spam': expected one of vpn, proxy, tor, hosting, relay"
        );
    }
}
