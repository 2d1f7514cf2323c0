//! The lean read: the Redis tier's lookups ask `IPCHECK.LGET <key>`, which answers only the
//! key's milliseconds left and the stored value, and decode both here with
//! `ipcheck_core::decode_lean_reply` (the module's own decoding). `IPCHECK GET`'s field/value reply
//! stays for people, scripts and `ipcheck-auth pins`.
//!
//! The service names the key itself (`ipcheck_core::entry_key`: `redis.key_prefix`, the
//! canonical address, a hash tag in cluster mode), so the module does no address work; the
//! startup verification has already checked with `IPCHECK KEY` that the module builds the same
//! keys. A module that predates `IPCHECK.LGET`, or a Redis user without `+ipcheck.lget`, is not
//! an outage: verification finds it, says how to fix it, and the lookups read with `IPCHECK GET`
//! until a later verification finds `IPCHECK.LGET` usable.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ipcheck_core::{decode_lean_reply, entry_key, LEAN_READ};
use redis::Value;

use super::redis::{Stored, NO_EXPIRY};
use super::redis_error::{ErrorKind, RedisError};
use crate::exposition::{header, Kind};

/// `IPCHECK.LGET <key of address>`.
pub fn lean_cmd(prefix: &str, address: &str, cluster: bool) -> redis::Cmd {
    let mut cmd = redis::cmd(LEAN_READ);
    cmd.arg(entry_key(prefix, address, cluster));
    cmd
}

/// Reads an `IPCHECK.LGET` reply: nil, or one bulk string `<ms left> <stored value>`.
pub fn parse_lean(reply: &Value) -> Result<Option<Stored>, RedisError> {
    let bad = |detail: &str| RedisError {
        kind: ErrorKind::Reply,
        detail: format!("{LEAN_READ}: {detail}"),
    };
    let reply = match reply {
        Value::Nil => return Ok(None),
        Value::BulkString(reply) => reply,
        _ => return Err(bad("not nil nor a bulk string")),
    };
    let lean = decode_lean_reply(reply).map_err(|e| bad(&e.to_string()))?;
    // -1: a key without expiry (a `PERSIST` pin).
    let secs = |s: i64| u64::try_from(s).map_or(NO_EXPIRY, Duration::from_secs);
    Ok(Some(Stored {
        entry: lean.entry,
        ttl: secs(lean.ttl_secs),
        fresh: lean.freshness.fresh,
        fresh_ttl: secs(lean.freshness.fresh_ttl_secs),
    }))
}

/// What the verification's `IPCHECK.LGET` probe says about how to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// `IPCHECK.LGET` works: read lean.
    Lean,
    /// `IPCHECK.LGET` cannot be used, for this reason (with the fix); read with `IPCHECK GET`.
    Full(&'static str),
    /// Another failure: the caller explains it as for any other probe.
    Failed,
}

/// Sorts the `IPCHECK.LGET` probe's answer.
pub fn probe_outcome(answer: Result<&Value, &RedisError>) -> ProbeOutcome {
    match answer {
        Ok(reply) if parse_lean(reply).is_ok() => ProbeOutcome::Lean,
        Ok(_) => ProbeOutcome::Failed,
        Err(e) if e.kind == ErrorKind::NoPerm => ProbeOutcome::Full(
            "the Redis user may not run IPCHECK.LGET (the lean read): grant +ipcheck.lget",
        ),
        Err(e) if e.detail.to_ascii_lowercase().contains("unknown command") => ProbeOutcome::Full(
            "the loaded ipcheck module predates IPCHECK.LGET (the lean read): upgrade the module",
        ),
        Err(_) => ProbeOutcome::Failed,
    }
}

/// Which read the lookups use: `IPCHECK GET` until a verification finds `IPCHECK.LGET` usable,
/// then the lean read until one finds it unusable.
///
/// Not lean before it is proven: with the module missing or too old, a lookup's `IPCHECK GET`
/// fails (or works) as it always did and is counted as what it is, where an unproven lean read
/// would fail as an unknown command.
pub struct ReadMode {
    state: AtomicU8,
    /// Why the lean read is unusable, with the fix, while it is ([`ProbeOutcome::Full`]).
    why: Mutex<&'static str>,
}

impl Default for ReadMode {
    fn default() -> Self {
        ReadMode {
            state: AtomicU8::new(UNPROVEN),
            why: Mutex::new(""),
        }
    }
}

/// No verification has answered the probe yet: read with `IPCHECK GET`.
const UNPROVEN: u8 = 0;
/// The probe answered: read lean.
const LEAN: u8 = 1;
/// The probe found the lean read unusable (and it was said): read with `IPCHECK GET`.
const FULL: u8 = 2;

impl ReadMode {
    /// Whether lookups use `IPCHECK.LGET`.
    pub fn is_lean(&self) -> bool {
        self.state.load(Ordering::Relaxed) == LEAN
    }

    /// Applies a probe's outcome; logs when the read changes (`redis`: the Redis address, for the log line).
    pub fn apply(&self, outcome: &ProbeOutcome, redis: &str) {
        match outcome {
            ProbeOutcome::Lean => {
                if self.state.swap(LEAN, Ordering::Relaxed) == FULL {
                    tracing::info!(redis = %redis, "IPCHECK.LGET works again: lookups use the lean read");
                }
            }
            ProbeOutcome::Full(why) => {
                *self.why.lock().unwrap_or_else(PoisonError::into_inner) = why;
                if self.state.swap(FULL, Ordering::Relaxed) != FULL {
                    tracing::warn!(redis = %redis, "{why}; until then lookups read with IPCHECK GET, which costs Redis more per lookup");
                }
            }
            ProbeOutcome::Failed => {}
        }
    }

    /// Why lookups read with `IPCHECK GET`, with the fix, when a verification found the lean
    /// read unusable; `None` otherwise (lean, or not yet probed).
    pub fn unusable_because(&self) -> Option<&'static str> {
        (self.state.load(Ordering::Relaxed) == FULL)
            .then(|| *self.why.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `ipcheck_redis_lean_read`: 1 while lookups read with `IPCHECK.LGET`.
    pub fn render(&self, out: &mut String) {
        header(out, "ipcheck_redis_lean_read", "1 while lookups read with IPCHECK.LGET, 0 while they read with IPCHECK GET (not yet verified, or the lean read unusable: see the log and /readyz).", Kind::Gauge);
        let _ = writeln!(out, "ipcheck_redis_lean_read {}", u8::from(self.is_lean()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn lean_reply() {
        assert_eq!(parse_lean(&Value::Nil), Ok(None));
        let stored = parse_lean(&bulk("41600 321")).unwrap().unwrap();
        assert_eq!(stored.entry.reasons.as_str(), "vpn,tor");
        assert_eq!(stored.ttl, Duration::from_secs(42));
        assert!(stored.fresh);
        assert_eq!(stored.fresh_ttl, Duration::from_secs(42));
        // A pin without expiry.
        let pinned = parse_lean(&bulk("-1 9")).unwrap().unwrap();
        assert!(pinned.entry.source.is_manual());
        assert_eq!((pinned.ttl, pinned.fresh_ttl), (NO_EXPIRY, NO_EXPIRY));
        // Stale: a 60 s window with 30 s left.
        let stale = parse_lean(&bulk("30000 c:feed:spam:60")).unwrap().unwrap();
        assert!(!stale.fresh);
        assert_eq!(
            (stale.ttl, stale.fresh_ttl),
            (Duration::from_secs(30), Duration::ZERO)
        );
        // With attributes: fresh, a day's window ahead of it, and what is known.
        let facts = parse_lean(&bulk("90000000 321;86400;US;13335;87"))
            .unwrap()
            .unwrap();
        assert!(facts.fresh);
        assert_eq!(facts.entry.attributes.asn.map(|a| a.get()), Some(13335));
        assert_eq!(facts.entry.attributes.score.map(|s| s.get()), Some(87));
        assert_eq!(
            facts.entry.attributes.country.map(|c| c.to_string()),
            Some("US".to_owned())
        );
        for bad in [
            Value::Int(1),
            Value::Array(vec![bulk("321"), Value::Int(1)]),
            bulk("321"),
            bulk("1 hello"),
            bulk("x 321"),
            bulk("-2 321"),
        ] {
            assert_eq!(parse_lean(&bad).map_err(|e| e.kind), Err(ErrorKind::Reply));
        }
    }

    #[test]
    fn keys_as_the_module_builds_them() {
        let cmd = lean_cmd("ipcheck:", "2001:db8::/64", true);
        let args: Vec<_> = cmd.args_iter().collect();
        assert_eq!(args.len(), 2);
        let packed = String::from_utf8_lossy(&cmd.get_packed_command()).into_owned();
        assert!(packed.contains("IPCHECK.LGET") && packed.contains("ipcheck:{2001:db8::/64}"));
    }

    #[test]
    fn probe_outcomes() {
        let err = |kind, detail: &str| RedisError {
            kind,
            detail: detail.to_owned(),
        };
        assert_eq!(probe_outcome(Ok(&Value::Nil)), ProbeOutcome::Lean);
        assert_eq!(probe_outcome(Ok(&Value::Int(3))), ProbeOutcome::Failed);
        let old = err(
            ErrorKind::Error,
            "ERR unknown command 'IPCHECK.LGET', with args beginning with: 'ipcheck:0.0.0.0' ",
        );
        assert!(
            matches!(probe_outcome(Err(&old)), ProbeOutcome::Full(why) if why.contains("upgrade the module"))
        );
        let noperm = err(
            ErrorKind::NoPerm,
            "User svc has no permissions to run the 'ipcheck.lget' command",
        );
        assert!(
            matches!(probe_outcome(Err(&noperm)), ProbeOutcome::Full(why) if why.contains("+ipcheck.lget"))
        );
        let down = err(ErrorKind::Timeout, "");
        assert_eq!(probe_outcome(Err(&down)), ProbeOutcome::Failed);
        let mode = ReadMode::default();
        assert!(!mode.is_lean(), "not before a probe proves it");
        mode.apply(&ProbeOutcome::Failed, "x");
        assert!(!mode.is_lean());
        mode.apply(&ProbeOutcome::Lean, "x");
        assert!(mode.is_lean());
        mode.apply(&probe_outcome(Err(&old)), "x");
        assert!(!mode.is_lean());
        assert!(mode
            .unusable_because()
            .is_some_and(|why| why.contains("upgrade the module")));
        let mut out = String::new();
        mode.render(&mut out);
        assert!(out.ends_with("ipcheck_redis_lean_read 0\n"), "{out}");
        mode.apply(&ProbeOutcome::Failed, "x");
        assert!(!mode.is_lean());
        mode.apply(&ProbeOutcome::Lean, "x");
        assert!(mode.is_lean());
        assert_eq!(mode.unusable_because(), None);
    }
}
