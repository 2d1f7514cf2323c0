//! Where list matches sit in a policy's precedence (pure logic: a policy and what matched in,
//! a verdict or facts out). Next to [`ipcheck_core::policy`]'s order:
//!
//! 1. the policy's `deny`, 2. its `allow` (both unchanged, checked before any list),
//! 3. a `verdict = "block"` list the policy names (block, reason `denylist`),
//! 4. a `verdict = "allow"` list (allow, reason `allowlist`),
//! 5. category lists: their categories are facts. When they alone settle the verdict, whatever
//!    a provider might add, the tiers are not asked at all (no Redis read, no provider call):
//!    a `crawler` match with `allow_crawlers` (allow, `crawler`), or a category the policy
//!    blocks (block, the listed categories). A list-backed block is final: a provider's crawler
//!    flag does not outweigh a Tor exit list. Otherwise (a category the policy only challenges
//!    or ignores) the tiers are asked as always and the listed categories are added to their
//!    facts before the policy judges them.

use ipcheck_core::{Categories, Category, Decision, Policy, ReasonSet, Verdict};

/// What a policy's lists said about one address; list indices into the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Matched {
    /// The first `verdict = "block"` list (in the policy's order) that matched.
    pub block: Option<usize>,
    /// The first `verdict = "allow"` list that matched.
    pub allow: Option<usize>,
    /// The categories of every category list that matched.
    pub categories: Categories,
    /// The first category list that matched.
    pub first_category: Option<usize>,
}

/// The lists' part of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// No list of the policy matched.
    Nothing,
    /// A list decided; the tiers are not asked. The index names the list that decided.
    Decided(Decision, usize),
    /// Categories to add to whatever the tiers find (the index: the first list that gave them).
    Facts(Categories, usize),
}

/// Rules 3 to 5 above for what matched.
pub fn judge(policy: &Policy, m: &Matched) -> Listed {
    if let Some(i) = m.block {
        return Listed::Decided(
            Decision {
                verdict: Verdict::Block,
                reasons: ReasonSet::DENYLIST,
            },
            i,
        );
    }
    if let Some(i) = m.allow {
        return Listed::Decided(
            Decision {
                verdict: Verdict::Allow,
                reasons: ReasonSet::ALLOWLIST,
            },
            i,
        );
    }
    let Some(i) = m.first_category else {
        return Listed::Nothing;
    };
    let crawler = policy.allow_crawlers && m.categories.contains(Category::Crawler);
    if crawler || !m.categories.intersection(policy.block).is_empty() {
        // Only the crawler or blocking categories matter here, so apply() gives the verdict
        // and its reasons exactly as it would with the provider's facts added.
        return Listed::Decided(policy.apply(m.categories), i);
    }
    Listed::Facts(m.categories, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Policy {
        Policy {
            block: Categories::EMPTY.with(Category::Tor),
            challenge: Categories::EMPTY.with(Category::Hosting),
            ..Policy::default()
        }
    }

    fn cats(c: &[Category]) -> Categories {
        c.iter().fold(Categories::EMPTY, |all, c| all.with(*c))
    }

    fn category(c: &[Category], first: usize) -> Matched {
        Matched {
            categories: cats(c),
            first_category: Some(first),
            ..Matched::default()
        }
    }

    #[test]
    fn block_lists_beat_allow_lists_beat_categories() {
        let m = Matched {
            block: Some(2),
            allow: Some(1),
            ..category(&[Category::Crawler], 0)
        };
        let Listed::Decided(d, i) = judge(&strict(), &m) else {
            panic!("a block list decides");
        };
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str(), i),
            (Verdict::Block, "denylist", 2)
        );
        let m = Matched { block: None, ..m };
        let Listed::Decided(d, i) = judge(&strict(), &m) else {
            panic!("an allow list decides");
        };
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str(), i),
            (Verdict::Allow, "allowlist", 1)
        );
    }

    #[test]
    fn a_blocked_category_decides_without_the_tiers() {
        let Listed::Decided(d, _) = judge(&strict(), &category(&[Category::Tor], 0)) else {
            panic!("tor is blocked on strict");
        };
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Block, "tor")
        );
    }

    #[test]
    fn a_listed_crawler_is_allowed_only_with_allow_crawlers() {
        let m = category(&[Category::Crawler], 0);
        let Listed::Decided(d, _) = judge(&strict(), &m) else {
            panic!("a listed crawler is a verified crawler");
        };
        assert_eq!(
            (d.verdict, d.reasons.to_text().as_str()),
            (Verdict::Allow, "crawler")
        );
        let no_crawlers = Policy {
            allow_crawlers: false,
            ..strict()
        };
        assert_eq!(
            judge(&no_crawlers, &m),
            Listed::Facts(cats(&[Category::Crawler]), 0)
        );
    }

    #[test]
    fn a_challenged_or_ignored_category_waits_for_the_provider() {
        // The provider could still add a blocking category: the tiers are asked.
        let m = category(&[Category::Hosting, Category::Vpn], 3);
        assert_eq!(
            judge(&strict(), &m),
            Listed::Facts(cats(&[Category::Hosting, Category::Vpn]), 3)
        );
        assert_eq!(judge(&strict(), &Matched::default()), Listed::Nothing);
    }
}
