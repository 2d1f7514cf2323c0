//! A policy's mode (`policies.<name>.mode`): `enforce` answers nginx with the policy's verdict,
//! `observe` always answers allow and hands the would-be verdict and reasons to the backend
//! (`X-IPCheck-Observed-Verdict`, `X-IPCheck-Observed-Reason`), the metrics
//! (`ipcheck_observed_decisions_total`), the decision log and the events stream.
//!
//! Observe means nothing that policy decides is enforced: not a provider's facts, not a deny
//! list, not an operator's pin, not `on_error = "closed"` nor `on_redis_error = "closed"`. So a
//! policy in observe mode is named at every start and reload (WARN) and in `/readyz`.

use ipcheck_core::Verdict;

/// `enforce` (the default) or `observe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The answer to nginx is the policy's verdict.
    #[default]
    Enforce,
    /// The answer to nginx is always allow; the verdict is only reported.
    Observe,
}

impl Mode {
    /// The config words, for error messages and docs.
    pub const WORDS: &'static str = "enforce or observe";

    /// Parses a config word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "enforce" => Some(Mode::Enforce),
            "observe" => Some(Mode::Observe),
            _ => None,
        }
    }

    /// The config word, as logged and sent in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
        }
    }

    /// What nginx is answered for a policy's `verdict` in this mode.
    pub fn answer(self, verdict: Verdict) -> Verdict {
        match self {
            Mode::Enforce => verdict,
            Mode::Observe => Verdict::Allow,
        }
    }
}

/// The WARN logged at start and on every reload while `names` (the policies in observe mode) is
/// not empty; `None` when it is.
pub fn observe_warning(names: &[&str]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "policies in observe mode: {}: every request they decide is ALLOWED (pins, deny lists and fail-closed rules included); the would-be verdict only reaches the backend (X-IPCheck-Observed-Verdict), the metrics, the logs and events; set mode = \"enforce\" to protect those locations",
        names.join(", ")
    ))
}

/// The `/readyz` line while `names` (the policies in observe mode) is not empty. Not protecting
/// is a choice, not a fault, so it never makes the instance degraded, but it gets its own line.
pub fn readyz_line(names: &[&str]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "observe: policies {} answer allow to every request (mode = \"observe\"): those locations are NOT protected\n",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(Mode::parse("enforce"), Some(Mode::Enforce));
        assert_eq!(Mode::parse("observe"), Some(Mode::Observe));
        assert_eq!(Mode::parse("Observe"), None);
        assert_eq!(Mode::parse(""), None);
        for m in [Mode::Enforce, Mode::Observe] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::default(), Mode::Enforce);
    }

    #[test]
    fn observe_always_answers_allow() {
        for v in [Verdict::Allow, Verdict::Block, Verdict::Challenge] {
            assert_eq!(Mode::Enforce.answer(v), v);
            assert_eq!(Mode::Observe.answer(v), Verdict::Allow);
        }
    }

    #[test]
    fn the_warning_names_every_observed_policy() {
        assert_eq!(observe_warning(&[]), None);
        let w = observe_warning(&["preview", "signup"]).expect("a warning");
        assert!(w.contains("preview, signup"), "{w}");
        assert!(w.contains("ALLOWED"), "{w}");
        assert_eq!(readyz_line(&[]), None);
        let line = readyz_line(&["preview"]).expect("a line");
        assert!(
            line.starts_with("observe: policies preview answer allow"),
            "{line}"
        );
        assert!(line.ends_with("NOT protected\n"), "{line}");
    }
}
