//! Checks that the Redis side works as the service needs, at startup and in `/readyz`:
//!
//! 1. `IPCHECK GET 0.0.0.0`: the module is loaded, the credentials work, and the user may read
//!    the service's keys.
//!    Then `IPCHECK.LGET <key of 0.0.0.0>` decides how lookups read (see
//!    [`super::redis_lean`]): lean when it answers, `IPCHECK GET` (with a WARN naming the fix)
//!    when the module predates it or the user lacks `+ipcheck.lget`.
//! 2. `IPCHECK SET 0.0.0.0 allow STALE 1 COUNTRY ZZ EX 0`: the user may write them, and the
//!    module knows stale windows and attributes (a module that refuses `COUNTRY` gets writes
//!    without attributes, see [`super::redis_attributes`]). Redis checks the ACL (subcommand and key, which the module's command filter
//!    has already rewritten to the real key) before the module runs, and the module parses every
//!    option before it writes anything: a module that knows `STALE` then refuses `EX 0`, one that
//!    predates it refuses `STALE` as an unknown option. So the reply is `NOPERM` when the user may
//!    not write, and one of those two errors when it may, and nothing is ever written. (`ACL
//!    DRYRUN` would need a permission the service's user should not have; a real `SET ... EX 1`
//!    would write and replicate an entry on every check.)
//!    Then `IPCHECK.LSET <key of 0.0.0.0> - 1` decides how write-backs write: a module that
//!    knows the command refuses the value `-` and writes nothing, so they write lean; one that
//!    predates it, or a user without `+ipcheck.lset`, leaves them on `IPCHECK SET` (with a WARN).
//! 3. `IPCHECK KEY 192.0.2.1` and `IPCHECK KEY 2001:db8::1`: the module's key prefix and
//!    aggregation prefixes agree with `redis.key_prefix` and `aggregation`, else the service
//!    and the operators' scripts would look at different keys. A user without `+ipcheck|key` is
//!    not an error (the service does not need KEY), but the prefixes are then unchecked.

use ipcheck_core::{normalize, Aggregation};

use super::redis_error::{ErrorKind, RedisError};

/// The address the GET and SET probes use: never a client's.
pub const PROBE_ADDRESS: &str = "0.0.0.0";
/// The SET probe: an `EX` the module refuses after the ACL check, with `STALE` and `COUNTRY`
/// before it.
pub const SET_PROBE: [&str; 9] = [
    "SET",
    PROBE_ADDRESS,
    "allow",
    "STALE",
    "1",
    "COUNTRY",
    "ZZ",
    "EX",
    "0",
];

/// What the SET probe's answer says: `Ok` when the user may write and the module is recent
/// enough for what the service sends (`STALE` only when `redis.stale_ttl` is not 0), with
/// whether the module takes attributes (`COUNTRY`, `ASN`, `SCORE`).
pub fn set_probe_outcome(
    answer: Result<(), &RedisError>,
    sends_stale: bool,
) -> Result<bool, Option<RedisError>> {
    let Err(e) = answer else {
        // The module wrote an entry with EX 0: not a module this service knows.
        return Err(Some(misconfigured(
            ErrorKind::Reply,
            "IPCHECK SET accepted EX 0: not the ipcheck module this service was built for"
                .to_owned(),
        )));
    };
    if e.kind != ErrorKind::Error {
        // NOPERM, a read-only replica, ...: the caller explains it.
        return Err(None);
    }
    if e.detail.contains("unknown option 'STALE'") {
        return if sends_stale {
            Err(Some(misconfigured(
                ErrorKind::ModuleMissing,
                "the loaded ipcheck module predates stale windows (IPCHECK SET refuses STALE), so every write would fail: upgrade the module, or set redis.stale_ttl = \"0s\"".to_owned(),
            )))
        } else {
            // Older than stale windows, so older than attributes too.
            Ok(false)
        };
    }
    if e.detail.contains("unknown option 'COUNTRY'") {
        return Ok(false);
    }
    if e.detail.contains("EX must be") {
        Ok(true)
    } else {
        Err(None)
    }
}
/// The addresses `IPCHECK KEY` is asked about, with the text their canonical form starts with
/// at any allowed prefix length (IPv4 /16.., IPv6 /32..).
pub const KEY_PROBES: [(&str, &str, Family); 2] = [
    ("192.0.2.1", "192.0.", Family::V4),
    ("2001:db8::1", "2001:db8:", Family::V6),
];

/// Which aggregation prefix a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `ipv4-prefix` / `aggregation.ipv4_prefix`.
    V4,
    /// `ipv6-prefix` / `aggregation.ipv6_prefix`.
    V6,
}

/// What the service's settings predict for the module's keys.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `redis.key_prefix`.
    pub key_prefix: String,
    /// `aggregation`.
    pub aggregation: Aggregation,
    /// `redis.cluster`: the module wraps the canonical text in `{}` in cluster mode.
    pub cluster: bool,
}

impl Expected {
    /// The key the service expects for `address`.
    pub fn key(&self, address: &str) -> String {
        let canonical = normalize(address, self.aggregation)
            .map(|ip| ip.canonical_text().as_str().to_owned())
            .unwrap_or_default();
        if self.cluster {
            format!("{}{{{canonical}}}", self.key_prefix)
        } else {
            format!("{}{canonical}", self.key_prefix)
        }
    }
}

/// A misconfiguration found by a probe.
pub fn misconfigured(kind: ErrorKind, detail: String) -> RedisError {
    RedisError { kind, detail }
}

/// Compares the module's `IPCHECK KEY <probe>` reply with what the service expects; the error
/// names both sides of each difference.
pub fn compare_key(
    expected: &Expected,
    probe: (&str, &str, Family),
    reply: &str,
) -> Result<(), RedisError> {
    let (address, marker, family) = probe;
    let want = expected.key(address);
    if reply == want {
        return Ok(());
    }
    let shown = format!("IPCHECK KEY {address} = {reply}");
    let mut problems = Vec::new();
    if let Some(at) = reply.find(marker) {
        let (head, tail) = reply.split_at(at);
        let module_cluster = head.ends_with('{') && tail.ends_with('}');
        let module_prefix = if module_cluster {
            &head[..head.len() - 1]
        } else {
            head
        };
        let canonical = tail.trim_end_matches('}');
        if module_prefix != expected.key_prefix {
            problems.push(format!(
                "module key-prefix \"{module_prefix}\" ({shown}) but redis.key_prefix = \"{}\"",
                expected.key_prefix
            ));
        }
        let (name, full, ours) = match family {
            Family::V4 => ("ipv4", 32, expected.aggregation.v4()),
            Family::V6 => ("ipv6", 128, expected.aggregation.v6()),
        };
        let module_len = canonical
            .split_once('/')
            .and_then(|(_, len)| len.parse::<u8>().ok())
            .unwrap_or(full);
        if module_len != ours {
            problems.push(format!(
                "module {name}-prefix {module_len} ({shown}) but aggregation.{name}_prefix = {ours}"
            ));
        }
        if module_cluster != expected.cluster {
            problems.push(format!(
                "module cluster mode is {} ({shown}) but redis.cluster = {}",
                if module_cluster { "on" } else { "off" },
                expected.cluster
            ));
        }
    }
    if problems.is_empty() {
        problems.push(format!("{shown} but the service expects {want}"));
    }
    Err(misconfigured(ErrorKind::KeyRefused, problems.join("; ")))
}

/// What a probe's failure means to an operator.
pub fn explain(step: &str, e: &RedisError, key_prefix: &str) -> RedisError {
    let detail = match e.kind {
        ErrorKind::ModuleMissing => format!(
            "the ipcheck module is not loaded ({step}: unknown command): add `loadmodule /path/to/libipcheck.so` to redis.conf ({e})"
        ),
        ErrorKind::NoPerm => {
            let (sub, access) = if step.starts_with("IPCHECK SET") {
                ("set", "%RW~")
            } else if step.starts_with("IPCHECK KEY") {
                ("key", "")
            } else {
                ("get", "%R~")
            };
            format!(
                "the Redis user may not run {step}: grant +ipcheck|{sub}{} ({e})",
                if access.is_empty() {
                    String::new()
                } else {
                    format!(" and {access}{key_prefix}*")
                }
            )
        }
        ErrorKind::Auth => format!(
            "Redis refused the credentials: check the user and password in redis.url ({e})"
        ),
        _ => format!("{step}: {e}"),
    };
    RedisError {
        kind: e.kind,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(v4: u8, v6: u8, cluster: bool) -> Expected {
        Expected {
            key_prefix: "ipcheck:".into(),
            aggregation: Aggregation::new(v4, v6).unwrap(),
            cluster,
        }
    }

    fn module_error(detail: &str) -> RedisError {
        RedisError {
            kind: ErrorKind::Error,
            detail: detail.to_owned(),
        }
    }

    #[test]
    fn the_set_probe_tells_permission_and_module_version_apart() {
        let current = module_error("ERR EX must be an integer from 1 to 31536000, got '0'");
        assert_eq!(set_probe_outcome(Err(&current), true), Ok(true));
        // Stale windows but no attributes: writes go on without them.
        let before_attributes = module_error(
            "ERR syntax error: unknown option 'COUNTRY' (expected EX, PERSIST, STALE, REASON, SOURCE or FORCE)",
        );
        assert_eq!(set_probe_outcome(Err(&before_attributes), true), Ok(false));
        let old = module_error(
            "ERR syntax error: unknown option 'STALE' (expected EX, REASON, SOURCE or FORCE)",
        );
        // An old module is fine as long as the service sends no STALE.
        assert_eq!(set_probe_outcome(Err(&old), false), Ok(false));
        let e = set_probe_outcome(Err(&old), true).unwrap_err().unwrap();
        assert_eq!(e.kind, ErrorKind::ModuleMissing);
        assert!(e.detail.contains("redis.stale_ttl"), "{}", e.detail);
        // Not the module's refusal: the caller explains NOPERM and the like.
        let noperm = RedisError {
            kind: ErrorKind::NoPerm,
            detail: "NOPERM".to_owned(),
        };
        assert!(set_probe_outcome(Err(&noperm), true).unwrap_err().is_none());
        // Something accepted EX 0: not this module.
        let e = set_probe_outcome(Ok(()), false).unwrap_err().unwrap();
        assert_eq!(e.kind, ErrorKind::Reply);
    }

    #[test]
    fn agreeing_keys_pass() {
        let e = expected(32, 64, false);
        assert!(compare_key(&e, KEY_PROBES[0], "ipcheck:192.0.2.1").is_ok());
        assert!(compare_key(&e, KEY_PROBES[1], "ipcheck:2001:db8::/64").is_ok());
        let e = expected(24, 48, true);
        assert!(compare_key(&e, KEY_PROBES[0], "ipcheck:{192.0.2.0/24}").is_ok());
        assert!(compare_key(&e, KEY_PROBES[1], "ipcheck:{2001:db8::/48}").is_ok());
    }

    #[test]
    fn every_difference_names_both_values() {
        let e = expected(32, 64, false);
        let err = compare_key(&e, KEY_PROBES[1], "ipcheck:2001:db8::/56").unwrap_err();
        assert_eq!(err.kind, ErrorKind::KeyRefused);
        assert_eq!(
            err.detail,
            "module ipv6-prefix 56 (IPCHECK KEY 2001:db8::1 = ipcheck:2001:db8::/56) but aggregation.ipv6_prefix = 64"
        );
        let err = compare_key(&e, KEY_PROBES[0], "ic:192.0.2.0/24").unwrap_err();
        assert!(
            err.detail.contains("module key-prefix \"ic:\""),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("redis.key_prefix = \"ipcheck:\""),
            "{}",
            err.detail
        );
        assert!(
            err.detail.contains("module ipv4-prefix 24")
                && err.detail.contains("aggregation.ipv4_prefix = 32"),
            "{}",
            err.detail
        );
        let err = compare_key(&e, KEY_PROBES[0], "ipcheck:{192.0.2.1}").unwrap_err();
        assert!(
            err.detail.contains("module cluster mode is on"),
            "{}",
            err.detail
        );
        let err = compare_key(&e, KEY_PROBES[0], "garbage").unwrap_err();
        assert!(
            err.detail.contains("the service expects ipcheck:192.0.2.1"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn explanations_name_the_fix() {
        let noperm = RedisError {
            kind: ErrorKind::NoPerm,
            detail: "NOPERM ...".into(),
        };
        let e = explain("IPCHECK SET 0.0.0.0", &noperm, "ipcheck:");
        assert!(
            e.detail.contains("+ipcheck|set and %RW~ipcheck:*"),
            "{}",
            e.detail
        );
        let missing = RedisError::bare(ErrorKind::ModuleMissing);
        assert!(explain("IPCHECK GET 0.0.0.0", &missing, "ipcheck:")
            .detail
            .contains("module is not loaded"));
    }
}
