//! The lean commands. Lookups ask `IPCHECK.LGET <key>`, which answers only the key's milliseconds
//! left and the stored value, decoded here with `ipcheck_core::decode_lean_reply` (the module's
//! own decoding); write-backs send `IPCHECK.LSET <key> <stored value> <seconds>`, the value
//! encoded here with `ipcheck_core::encode_stored` (the module's own encoder), which the module
//! checks rather than builds. `IPCHECK GET`'s field/value reply and `IPCHECK SET`'s options stay
//! for people, scripts and `ipcheck-auth pins`.
//!
//! The service names the key itself (`ipcheck_core::entry_key`: `redis.key_prefix`, the
//! canonical address, a hash tag in cluster mode), so the module does no address work; the
//! startup verification has already checked with `IPCHECK KEY` that the module builds the same
//! keys. A module that predates a lean command, or a Redis user without `+ipcheck.lget` or
//! `+ipcheck.lset`, is not an outage: verification finds it, says how to fix it, and the tier
//! uses `IPCHECK GET` or `IPCHECK SET` until a later verification finds the lean command usable.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ipcheck_core::{decode_lean_reply, encode_view, entry_key, EntryView, LEAN_READ, LEAN_WRITE};
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

/// `IPCHECK.LSET <key of address> <stored value> <fresh seconds>`: the lean write of an entry
/// and its stale window (`ipcheck_core::encode_view` writes the value, as the module's `IPCHECK
/// SET` does), for [`super::redis::RedisTier::set`].
pub fn lean_write_cmd(
    prefix: &str,
    address: &str,
    cluster: bool,
    entry: &EntryView,
    fresh_secs: u64,
) -> redis::Cmd {
    let mut cmd = redis::cmd(LEAN_WRITE);
    cmd.arg(entry_key(prefix, address, cluster))
        .arg(encode_view(entry).as_bytes())
        .arg(fresh_secs);
    cmd
}

/// The verification's `IPCHECK.LSET` probe: a value no module stores (`-`), so a module that
/// knows the command refuses it without writing anything.
pub fn lean_write_probe(prefix: &str, address: &str, cluster: bool) -> redis::Cmd {
    let mut cmd = redis::cmd(LEAN_WRITE);
    cmd.arg(entry_key(prefix, address, cluster)).arg("-").arg(1);
    cmd
}

/// One of the two lean commands as the tier uses it: what it is called, what the tier does
/// without it, and how that is said in logs, `/readyz` and `/metrics`.
pub struct Lean {
    /// The command.
    pub command: &'static str,
    /// What the calls use while the lean command is unusable (for `/readyz`'s redis line).
    pub fallback: &'static str,
    /// The word `/readyz` lists as degraded while the lean command is unusable.
    pub degraded: &'static str,
    /// Why it is unusable when the Redis user may not run it, with the fix.
    no_perm: &'static str,
    /// Why it is unusable when the module predates it, with the fix.
    too_old: &'static str,
    /// Logged when a verification finds it usable again.
    back: &'static str,
    /// Logged (WARN) after the reason when a verification finds it unusable.
    cost: &'static str,
    /// The gauge, and its help.
    metric: &'static str,
    help: &'static str,
    /// The verification's probe of the command (from key prefix, address, cluster mode).
    pub probe: fn(&str, &str, bool) -> redis::Cmd,
    /// What the probe's answer says.
    pub sort: fn(Result<&Value, &RedisError>) -> ProbeOutcome,
}

/// The lean read, `IPCHECK.LGET`.
pub const READ: Lean = Lean {
    command: LEAN_READ,
    fallback: "lookups read with IPCHECK GET",
    degraded: "lean-read",
    no_perm: "the Redis user may not run IPCHECK.LGET (the lean read): grant +ipcheck.lget",
    too_old: "the loaded ipcheck module predates IPCHECK.LGET (the lean read): upgrade the module",
    back: "IPCHECK.LGET works again: lookups use the lean read",
    cost: "until then lookups read with IPCHECK GET, which costs Redis more per lookup",
    metric: "ipcheck_redis_lean_read",
    help: "1 while lookups read with IPCHECK.LGET, 0 while they read with IPCHECK GET (not yet verified, or the lean read unusable: see the log and /readyz).",
    probe: lean_cmd,
    sort: probe_outcome,
};

/// The lean write, `IPCHECK.LSET`.
pub const WRITE: Lean = Lean {
    command: LEAN_WRITE,
    fallback: "write-backs use IPCHECK SET",
    degraded: "lean-write",
    no_perm: "the Redis user may not run IPCHECK.LSET (the lean write): grant +ipcheck.lset",
    too_old: "the loaded ipcheck module predates IPCHECK.LSET (the lean write): upgrade the module",
    back: "IPCHECK.LSET works again: write-backs use the lean write",
    cost: "until then write-backs use IPCHECK SET, which costs Redis more per write",
    metric: "ipcheck_redis_lean_write",
    help: "1 while write-backs use IPCHECK.LSET, 0 while they use IPCHECK SET (not yet verified, or the lean write unusable: see the log and /readyz).",
    probe: lean_write_probe,
    sort: write_probe_outcome,
};

/// What a verification's probe of a lean command says about how to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The lean command works: use it.
    Lean,
    /// The lean command cannot be used, for this reason (with the fix); use the full one.
    Full(&'static str),
    /// Another failure: the caller explains it as for any other probe.
    Failed,
}

/// Sorts the `IPCHECK.LGET` probe's answer.
pub fn probe_outcome(answer: Result<&Value, &RedisError>) -> ProbeOutcome {
    match answer {
        Ok(reply) if parse_lean(reply).is_ok() => ProbeOutcome::Lean,
        Ok(_) => ProbeOutcome::Failed,
        Err(e) => unusable(&READ, e),
    }
}

/// Sorts the `IPCHECK.LSET` probe's answer ([`lean_write_probe`]): the module's own refusal of
/// the value proves the command is there and allowed.
pub fn write_probe_outcome(answer: Result<&Value, &RedisError>) -> ProbeOutcome {
    match answer {
        // `IPCHECK.LSET: value is not ...`; an unknown command's message quotes the name instead.
        Err(e) if e.kind == ErrorKind::Error && e.detail.contains(&format!("{LEAN_WRITE}: ")) => {
            ProbeOutcome::Lean
        }
        Ok(_) => ProbeOutcome::Failed,
        Err(e) => unusable(&WRITE, e),
    }
}

/// Whether an error from `lean` (a probe's or a call's) says it is unusable (and why) or is
/// another failure.
pub fn unusable(lean: &Lean, e: &RedisError) -> ProbeOutcome {
    if e.kind == ErrorKind::NoPerm {
        ProbeOutcome::Full(lean.no_perm)
    } else if e.detail.to_ascii_lowercase().contains("unknown command") {
        ProbeOutcome::Full(lean.too_old)
    } else {
        ProbeOutcome::Failed
    }
}

/// Whether the tier uses a lean command: the full one until a verification finds the lean one
/// usable, then the lean one until one finds it unusable.
///
/// Not lean before it is proven: with the module missing or too old, a full call fails (or
/// works) as it always did and is counted as what it is, where an unproven lean call would fail
/// as an unknown command.
pub struct LeanMode {
    lean: &'static Lean,
    state: AtomicU8,
    /// Why the lean command is unusable, with the fix, while it is ([`ProbeOutcome::Full`]).
    why: Mutex<&'static str>,
}

/// No verification has answered the probe yet: use the full command.
const UNPROVEN: u8 = 0;
/// The probe answered: use the lean command.
const LEAN: u8 = 1;
/// The probe found the lean command unusable (and it was said): use the full command.
const FULL: u8 = 2;

impl LeanMode {
    /// The mode of `lean`, unproven.
    pub fn new(lean: &'static Lean) -> Self {
        LeanMode {
            lean,
            state: AtomicU8::new(UNPROVEN),
            why: Mutex::new(""),
        }
    }

    /// Which command this is the mode of.
    pub fn lean(&self) -> &'static Lean {
        self.lean
    }

    /// Whether the tier uses the lean command.
    pub fn is_lean(&self) -> bool {
        self.state.load(Ordering::Relaxed) == LEAN
    }

    /// Applies a probe's outcome; logs when the mode changes (`redis`: the Redis address, for
    /// the log line).
    pub fn apply(&self, outcome: &ProbeOutcome, redis: &str) {
        match outcome {
            ProbeOutcome::Lean => {
                if self.state.swap(LEAN, Ordering::Relaxed) == FULL {
                    tracing::info!(redis = %redis, "{}", self.lean.back);
                }
            }
            ProbeOutcome::Full(why) => {
                *self.why.lock().unwrap_or_else(PoisonError::into_inner) = why;
                if self.state.swap(FULL, Ordering::Relaxed) != FULL {
                    tracing::warn!(redis = %redis, "{why}; {}", self.lean.cost);
                }
            }
            ProbeOutcome::Failed => {}
        }
    }

    /// Why the tier uses the full command, with the fix, when a verification found the lean
    /// one unusable; `None` otherwise (lean, or not yet probed).
    pub fn unusable_because(&self) -> Option<&'static str> {
        (self.state.load(Ordering::Relaxed) == FULL)
            .then(|| *self.why.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The gauge: 1 while the tier uses the lean command.
    pub fn render(&self, out: &mut String) {
        header(out, self.lean.metric, self.lean.help, Kind::Gauge);
        let _ = writeln!(out, "{} {}", self.lean.metric, u8::from(self.is_lean()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcheck_core::Verdict;

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
    fn the_lean_write() {
        let entry = EntryView {
            verdict: Verdict::Block,
            reasons: "vpn,tor",
            source: ipcheck_core::Source::API,
            stale_secs: 60,
            attributes: ipcheck_core::Attributes::NONE,
        };
        let cmd = lean_write_cmd("ipcheck:", "2001:db8::/64", true, &entry, 100);
        let args: Vec<Vec<u8>> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => b.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        let want: [&[u8]; 4] = [
            b"IPCHECK.LSET",
            b"ipcheck:{2001:db8::/64}",
            b"321;60",
            b"100",
        ];
        assert_eq!(args, want.map(<[u8]>::to_vec));
        let err = |kind, detail: &str| RedisError {
            kind,
            detail: detail.to_owned(),
        };
        let refused = err(
            ErrorKind::Error,
            "ResponseError: IPCHECK.LSET: value is not an ipcheck entry: not UTF-8",
        );
        assert_eq!(write_probe_outcome(Err(&refused)), ProbeOutcome::Lean);
        let old = err(
            ErrorKind::Error,
            "unknown command 'IPCHECK.LSET', with args beginning with: 'ipcheck:0.0.0.0' '-' '1' ",
        );
        assert!(
            matches!(write_probe_outcome(Err(&old)), ProbeOutcome::Full(why) if why.contains("upgrade the module"))
        );
        let noperm = err(
            ErrorKind::NoPerm,
            "User svc has no permissions to run the 'ipcheck.lset' command",
        );
        assert!(
            matches!(write_probe_outcome(Err(&noperm)), ProbeOutcome::Full(why) if why.contains("+ipcheck.lset"))
        );
        assert_eq!(write_probe_outcome(Ok(&Value::Okay)), ProbeOutcome::Failed);
        assert_eq!(
            write_probe_outcome(Err(&err(ErrorKind::Timeout, ""))),
            ProbeOutcome::Failed
        );
        let mode = LeanMode::new(&WRITE);
        mode.apply(&write_probe_outcome(Err(&noperm)), "x");
        let mut out = String::new();
        mode.render(&mut out);
        assert!(out.ends_with("ipcheck_redis_lean_write 0\n"), "{out}");
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
        let mode = LeanMode::new(&READ);
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
