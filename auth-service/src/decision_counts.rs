//! `ipcheck_decisions_total` and `ipcheck_decision_reasons_total`: decisions counted by verdict,
//! and separately by verdict and each reason token.
//!
//! A decision with reasons `vpn,tor` counts once in its verdict's total and once under each of
//! `vpn` and `tor`. The counters grow with the vocabulary (verdicts × tokens), not with the
//! number of reason *combinations* (verdicts × 2^tokens, as before), and the label values are
//! the vocabulary's tokens, so a new category gets its series with no change here.
//!
//! The same pair counts the would-be decisions of policies in observe mode
//! ([`DecisionCounts::observed`]: `ipcheck_observed_decisions_total`,
//! `ipcheck_observed_decision_reasons_total`), whose answers count as allows in the first pair.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use ipcheck_core::vocabulary::{COUNT, KNOWN_REASONS};
use ipcheck_core::{ReasonSet, Verdict};

use crate::exposition::{header, Kind};

const VERDICTS: [Verdict; 3] = [Verdict::Allow, Verdict::Block, Verdict::Challenge];

fn verdict_index(v: Verdict) -> usize {
    match v {
        Verdict::Allow => 0,
        Verdict::Block => 1,
        Verdict::Challenge => 2,
    }
}

/// The metric names and help texts of one pair of counters.
struct Names {
    total: &'static str,
    total_help: &'static str,
    reasons: &'static str,
    reasons_help: &'static str,
}

const SENT: Names = Names {
    total: "ipcheck_decisions_total",
    total_help: "Decisions sent, by verdict.",
    reasons: "ipcheck_decision_reasons_total",
    reasons_help: "Decisions sent, by verdict and each reason token (a decision with two reasons counts under both).",
};

const OBSERVED: Names = Names {
    total: "ipcheck_observed_decisions_total",
    total_help: "Decisions of policies in observe mode (answered allow), by the verdict they would have sent.",
    reasons: "ipcheck_observed_decision_reasons_total",
    reasons_help: "Decisions of policies in observe mode, by would-be verdict and each reason token.",
};

/// The decision counters: one per verdict, one per verdict and reason token.
pub struct DecisionCounts {
    names: &'static Names,
    totals: [AtomicU64; 3],
    by_reason: Box<[AtomicU64]>,
}

impl Default for DecisionCounts {
    /// The decisions sent to nginx.
    fn default() -> Self {
        DecisionCounts::with_names(&SENT)
    }
}

impl DecisionCounts {
    /// The would-be decisions of policies in observe mode.
    pub fn observed() -> Self {
        DecisionCounts::with_names(&OBSERVED)
    }

    fn with_names(names: &'static Names) -> Self {
        DecisionCounts {
            names,
            totals: Default::default(),
            by_reason: (0..VERDICTS.len() * COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// One decision: its verdict's total, and each of its reason tokens.
    pub fn count(&self, verdict: Verdict, reasons: ReasonSet) {
        let vi = verdict_index(verdict);
        self.totals[vi].fetch_add(1, Ordering::Relaxed);
        let mut bits = reasons.bits();
        while bits != 0 {
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(c) = self.by_reason.get(vi * COUNT + bit) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The Prometheus text of both metrics (every verdict total, the reason series seen).
    pub fn render(&self, out: &mut String) {
        let Names {
            total,
            total_help,
            reasons,
            reasons_help,
        } = self.names;
        header(out, total, total_help, Kind::Counter);
        for (vi, verdict) in VERDICTS.iter().enumerate() {
            let n = self.totals[vi].load(Ordering::Relaxed);
            let _ = writeln!(out, "{total}{{verdict=\"{verdict}\"}} {n}");
        }
        header(out, reasons, reasons_help, Kind::Counter);
        for (vi, verdict) in VERDICTS.iter().enumerate() {
            for (bit, token) in KNOWN_REASONS.iter().enumerate() {
                let n = self.by_reason[vi * COUNT + bit].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{reasons}{{verdict=\"{verdict}\",reason=\"{token}\"}} {n}"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(c: &DecisionCounts) -> String {
        let mut out = String::new();
        c.render(&mut out);
        out
    }

    #[test]
    fn a_decision_counts_once_per_verdict_and_once_per_token() {
        let c = DecisionCounts::default();
        c.count(Verdict::Block, ReasonSet::from_bits(0b101));
        c.count(Verdict::Block, ReasonSet::from_bits(0b100));
        c.count(Verdict::Allow, ReasonSet::NONE);
        let text = render(&c);
        assert!(text.contains("ipcheck_decisions_total{verdict=\"block\"} 2\n"));
        assert!(text.contains("ipcheck_decisions_total{verdict=\"allow\"} 1\n"));
        assert!(text.contains("ipcheck_decisions_total{verdict=\"challenge\"} 0\n"));
        assert!(
            text.contains("ipcheck_decision_reasons_total{verdict=\"block\",reason=\"vpn\"} 1\n")
        );
        assert!(
            text.contains("ipcheck_decision_reasons_total{verdict=\"block\",reason=\"tor\"} 2\n")
        );
        // No reason, no reason series; unseen combinations print nothing.
        assert!(!text.contains("reason=\"\""));
        assert_eq!(text.matches("ipcheck_decision_reasons_total{").count(), 2);
    }

    #[test]
    fn observed_decisions_have_their_own_names() {
        let c = DecisionCounts::observed();
        c.count(Verdict::Block, ReasonSet::from_bits(0b100));
        let text = render(&c);
        assert!(text.contains("# TYPE ipcheck_observed_decisions_total counter\n"));
        assert!(text.contains("ipcheck_observed_decisions_total{verdict=\"block\"} 1\n"));
        assert!(text.contains(
            "ipcheck_observed_decision_reasons_total{verdict=\"block\",reason=\"tor\"} 1\n"
        ));
        assert!(!text.contains("ipcheck_decisions_total"));
    }

    #[test]
    fn every_token_is_a_label() {
        let c = DecisionCounts::default();
        for bit in 0..COUNT as u32 {
            c.count(Verdict::Challenge, ReasonSet::from_bits(1 << bit));
        }
        let text = render(&c);
        for token in KNOWN_REASONS {
            assert!(text.contains(&format!(
                "ipcheck_decision_reasons_total{{verdict=\"challenge\",reason=\"{token}\"}} 1\n"
            )));
        }
    }
}
