//! Every way an `IPCHECK` call can fail, each with the message the caller sees.
//!
//! Messages quote what was wrong (the argument, the key) so a user at redis-cli or in a Lua
//! script can fix the call without reading the source.

use std::ffi::CString;

use ipcheck_core::protocol::SetOption;
use ipcheck_core::{
    AttributeError, DecodeError, NormalizeError, TokenError, VerdictError, MAX_STALE,
};
use thiserror::Error;

use crate::settings::MAX_TTL;

/// Longest error message sent back; quoted user input is cut to keep replies small.
const MAX_MESSAGE_LEN: usize = 300;

/// A failed `IPCHECK` call.
#[derive(Debug, Error)]
pub enum CommandError {
    /// The address argument is not a strict IPv4/IPv6 address.
    #[error("{0}")]
    Address(#[from] NormalizeError),
    /// Cluster mode needs the canonical text so the client routes by the real key's slot.
    #[error("address '{given}' is not canonical; in cluster mode send '{canonical}'")]
    NotCanonical {
        /// The argument as sent.
        given: String,
        /// What to send instead.
        canonical: String,
    },
    /// The verdict word is not allow, block or challenge.
    #[error("{0}")]
    Verdict(#[from] VerdictError),
    /// The `REASON` list is malformed.
    #[error("REASON: {0}")]
    Reason(TokenError),
    /// The `SOURCE` token is malformed.
    #[error("SOURCE: {0}")]
    Source(TokenError),
    /// `EX` is not an integer in range.
    #[error("EX must be an integer from 1 to {MAX_TTL}, got '{0}'")]
    Ttl(String),
    /// `STALE` is not an integer in range.
    #[error("STALE must be an integer from 0 to {MAX_STALE}, got '{0}'")]
    Stale(String),
    /// `STALE` on a manual pin, which is final until it expires.
    #[error("STALE does not apply to SOURCE manual: a pin is final until it expires; drop STALE")]
    StalePin,
    /// `PERSIST` and `EX` together.
    #[error("syntax error: PERSIST and EX exclude each other: drop one")]
    PersistWithEx,
    /// `PERSIST` on an entry that is not an operator's pin.
    #[error("PERSIST needs SOURCE manual: only an operator's pin may live without expiry")]
    PersistNotManual,
    /// An option word SET does not know.
    #[error("syntax error: unknown option '{0}' (expected {expected})", expected = SetOption::expected())]
    UnknownOption(String),
    /// A `COUNTRY`, `ASN` or `SCORE` value that does not parse.
    #[error("{option}: {0}", option = attribute_option(.0))]
    Attribute(AttributeError),
    /// An option repeated.
    #[error("syntax error: {0} given more than once")]
    DuplicateOption(&'static str),
    /// An option at the end of the call with no value after it.
    #[error("syntax error: {0} needs a value")]
    MissingValue(&'static str),
    /// The argument count is wrong (only reachable if Redis skipped its arity check).
    #[error("wrong number of arguments for 'ipcheck|{0}' command")]
    Arity(&'static str),
    /// The key holds a string that is not an ipcheck entry.
    #[error("key '{key}' holds a value that is not an ipcheck entry ({source})")]
    Corrupt {
        /// The key that was read.
        key: String,
        /// What was wrong with its value.
        source: DecodeError,
    },
    /// A list key that is not `<prefix>{lists}:<name>`.
    #[error("list key '{given}' must be '{prefix}{{lists}}:<name>' (a name of 1 to 128 bytes)")]
    ListKey {
        /// The key as sent.
        given: String,
        /// The key prefix in force.
        prefix: String,
    },
    /// An `IPCHECK.LGET` argument that is not a key under the prefix (an address, say).
    #[error("IPCHECK.LGET takes a key under the prefix '{prefix}', got '{given}' (IPCHECK KEY <ip> names the key; IPCHECK GET <ip> reads by address)")]
    LeanKey {
        /// The argument as sent.
        given: String,
        /// The key prefix in force.
        prefix: String,
    },
    /// `IPCHECK.LSET` with a key that is not an entry's.
    #[error("IPCHECK.LSET takes an entry's key under the prefix '{prefix}', got '{given}' (IPCHECK KEY <ip> names it)")]
    LeanWriteKey {
        /// The argument.
        given: String,
        /// The key prefix in force.
        prefix: String,
    },
    /// `IPCHECK.LSET` with a value `IPCHECK SET` would not store.
    #[error("IPCHECK.LSET: {0} (send what ipcheck_core::encode_stored writes)")]
    LeanValue(DecodeError),
    /// `IPCHECK.LSET` with a manual pin.
    #[error("IPCHECK.LSET does not write pins: use IPCHECK SET <ip> <verdict> SOURCE manual")]
    LeanPin,
    /// A top-level command (`IPCHECK.LGET`, `IPCHECK.LSET`) with the wrong number of arguments.
    #[error("wrong number of arguments for '{0}' command")]
    TopArity(&'static str),
    /// A network (or the address of NETMATCH) that does not parse.
    #[error("network: {0}")]
    Network(NormalizeError),
    /// A network list `VALUE` that is not reason tokens.
    #[error("VALUE: {0}")]
    Value(TokenError),
    /// `PXAT` is not a Unix time in milliseconds.
    #[error("PXAT must be a Unix time in milliseconds from 1 to {max}, got '{given}'", max = crate::subcommands::netadd::MAX_PXAT)]
    Pxat {
        /// The argument as sent.
        given: String,
    },
    /// A `NETDUMP` cursor that is neither 0 nor a network.
    #[error("cursor must be 0 or the cursor of the previous NETDUMP reply, got '{0}'")]
    Cursor(String),
    /// A `NETDUMP` `COUNT` out of range.
    #[error("COUNT must be an integer from 1 to {max}, got '{given}'", max = crate::subcommands::netdump::MAX_COUNT)]
    Count {
        /// The argument as sent.
        given: String,
    },
    /// A network-list call that does not follow the syntax.
    #[error("syntax error: {0}")]
    NetSyntax(String),
    /// The key holds a list, hash, ...
    #[error("Operation against a key holding the wrong kind of value")]
    WrongType,
    /// The caller's ACL forbids the key the address maps to.
    #[error("this user has no permissions to access the '{0}' key")]
    NoPermission(String),
    /// Redis refused a key operation, or a module bug was caught.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// The `SET` option whose value `e` refuses.
fn attribute_option(e: &AttributeError) -> &'static str {
    match e {
        AttributeError::Country(_) => SetOption::Country.name(),
        AttributeError::Asn(_) => SetOption::Asn.name(),
        AttributeError::Score(_) => SetOption::Score.name(),
    }
}

impl CommandError {
    /// The error reply: code prefix plus a single-line, NUL-free, length-capped message.
    pub fn to_reply(&self) -> CString {
        let code = match self {
            CommandError::WrongType => "WRONGTYPE",
            CommandError::NoPermission(_) => "NOPERM",
            _ => "ERR",
        };
        reply_line(code, &self.to_string())
    }
}

/// Formats `<code> <message>` so it is safe as a RESP error line.
pub fn reply_line(code: &str, message: &str) -> CString {
    safe_line(&format!("{code} {message}"))
}

/// One NUL-free, control-free, length-capped line (for error replies and log lines).
pub fn safe_line(message: &str) -> CString {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_LEN) + 3);
    for c in message.chars() {
        if out.len() >= MAX_MESSAGE_LEN {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            // Control bytes (CR, LF, NUL, ...) would break the protocol line or the C string.
            out.push_str(&c.escape_default().to_string());
        } else {
            out.push(c);
        }
    }
    // No NUL can remain: control characters were escaped above.
    CString::new(out).unwrap_or_else(|_| CString::from(c"ERR internal error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_single_safe_lines() {
        let e = CommandError::UnknownOption("a\r\nb\0c".to_owned());
        let line = e.to_reply().into_string().unwrap();
        assert!(line.starts_with("ERR syntax error"));
        assert!(!line.contains('\r') && !line.contains('\n'));
        assert!(line.contains("a\\r\\nb\\u{0}c"), "{line}");
    }

    #[test]
    fn long_input_is_cut() {
        let e = CommandError::UnknownOption("x".repeat(10_000));
        assert!(e.to_reply().as_bytes().len() <= MAX_MESSAGE_LEN + 8);
    }

    #[test]
    fn codes() {
        assert!(CommandError::WrongType
            .to_reply()
            .to_bytes()
            .starts_with(b"WRONGTYPE "));
        assert!(CommandError::NoPermission("k".into())
            .to_reply()
            .to_bytes()
            .starts_with(b"NOPERM "));
    }
}
