//! From an address argument to the Redis key it is cached under, without a heap allocation.
//!
//! The key is `<prefix><canonical>` (`ipcheck:192.0.2.1`, `ipcheck:2001:db8:1:2::/64`). In
//! cluster mode a client routes the command by the declared key argument (the address text), but
//! `<prefix><canonical>` hashes to another slot; so there the argument must already be the
//! canonical text, and the key becomes `<prefix>{<canonical>}`, whose hash tag is exactly the
//! argument, keeping the key in the slot the client routed to.

use std::cell::RefCell;
use std::fmt;

use ipcheck_core::{is_own_canonical, key_parts, normalize_bytes, CanonicalText};

use crate::error::CommandError;
use crate::settings::{self, MAX_PREFIX_LEN};

/// Room for prefix, braces and canonical text.
const KEY_CAP: usize = MAX_PREFIX_LEN + 2 + CanonicalText::MAX_LEN;

/// A short byte string on the stack.
#[derive(Clone)]
pub struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        StackBuf {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends bytes; fails rather than truncating when they do not fit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), fmt::Error> {
        let end = self.len.checked_add(bytes.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The contents as text (lossy; only used in messages).
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl<const N: usize> Default for StackBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// A Redis key name built on the stack.
pub type KeyName = StackBuf<KEY_CAP>;

/// Whether the address argument must already be canonical in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The command reads or writes the key, so the client must have routed it correctly.
    Strict,
    /// The command only computes the key name (`IPCHECK KEY`), so any spelling is fine.
    AnySpelling,
}

/// The key an `IPCHECK` argument names.
pub enum Resolved {
    /// The argument itself is the key (`ipcheck:192.0.2.1`): the command filter rewrote the
    /// address before Redis's ACL and cluster checks ran, so Redis checked this very key.
    Given,
    /// The argument was an address, and this is its key: Redis checked ACL key patterns against
    /// the address text, so the handler must check the real key itself.
    Built(KeyName),
}

/// The key an `IPCHECK` argument names, accepting an address or (after the command filter) the
/// key itself.
///
/// Keys and addresses cannot be confused: the key prefix must contain a byte that no address
/// text contains (see [`settings::check_prefix`]).
pub fn resolve(arg: &[u8], routing: Routing) -> Result<Resolved, CommandError> {
    if is_trusted(arg) {
        return Ok(Resolved::Given);
    }
    let prefix = settings::key_prefix();
    if is_own_key(arg, prefix.as_bytes()) {
        return Ok(Resolved::Given);
    }
    Ok(Resolved::Built(key_under(prefix.as_bytes(), arg, routing)?))
}

thread_local! {
    /// The key the command filter produced last (empty: none). Filter and handler run back to
    /// back on Redis's main thread, so the handler usually finds its argument here and skips
    /// normalizing again.
    static TRUSTED: RefCell<KeyName> = const { RefCell::new(KeyName::new()) };
}

/// Remembers a key the filter built from an address with the settings in force.
pub fn remember_trusted(key: KeyName) {
    TRUSTED.with(|t| *t.borrow_mut() = key);
}

/// Forgets the remembered key; called whenever a setting changes, since the key was built
/// under the old settings.
pub fn forget_trusted() {
    TRUSTED.with(|t| *t.borrow_mut() = KeyName::new());
}

/// Whether `arg` is byte for byte the key the filter last built.
fn is_trusted(arg: &[u8]) -> bool {
    !arg.is_empty() && TRUSTED.with(|t| t.borrow().as_bytes() == arg)
}

/// Whether `arg` is exactly the key of a canonical address under the settings in force (what
/// `IPCHECK KEY` names for it).
pub fn is_entry_key(arg: &[u8]) -> bool {
    is_own_key(arg, settings::key_prefix().as_bytes())
}

/// Whether `arg` is exactly the key of a canonical address under `prefix` and the other
/// settings in force.
fn is_own_key(arg: &[u8], prefix: &[u8]) -> bool {
    let Some(rest) = arg.strip_prefix(prefix) else {
        return false;
    };
    let given = if settings::cluster_mode() {
        match rest.strip_prefix(b"{").and_then(|r| r.strip_suffix(b"}")) {
            Some(given) => given,
            None => return false,
        }
    } else {
        rest
    };
    canonical(given).is_ok_and(|c| c.as_bytes() == given)
}

/// Normalizes the address argument and builds its key with the settings in force.
pub fn key_for(arg: &[u8], routing: Routing) -> Result<KeyName, CommandError> {
    key_under(settings::key_prefix().as_bytes(), arg, routing)
}

/// [`key_for`] with the key prefix already read.
fn key_under(prefix: &[u8], arg: &[u8], routing: Routing) -> Result<KeyName, CommandError> {
    let canonical = canonical(arg)?;
    let cluster = settings::cluster_mode();
    if cluster && routing == Routing::Strict && canonical.as_bytes() != arg {
        return Err(CommandError::NotCanonical {
            given: String::from_utf8_lossy(arg).into_owned(),
            canonical: String::from_utf8_lossy(canonical.as_bytes()).into_owned(),
        });
    }
    build_key(prefix, canonical.as_bytes(), cluster)
}

/// An address argument's canonical text under the aggregation in force.
enum Canonical<'a> {
    /// The argument itself, which already is (the commonest argument, an IPv4 address kept per
    /// address: nothing to reformat).
    Given(&'a [u8]),
    /// Normalized from another spelling, or aggregated.
    Made(CanonicalText),
}

impl Canonical<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Canonical::Given(bytes) => bytes,
            Canonical::Made(text) => text.as_bytes(),
        }
    }
}

fn canonical(arg: &[u8]) -> Result<Canonical<'_>, CommandError> {
    let agg = settings::aggregation().map_err(|_| CommandError::Internal("bad aggregation"))?;
    if is_own_canonical(arg, agg) {
        return Ok(Canonical::Given(arg));
    }
    // No UTF-8 check first: every address is ASCII, and `normalize_bytes` refuses other bytes
    // with the same error the check gave.
    Ok(Canonical::Made(normalize_bytes(arg, agg)?.canonical_text()))
}

/// `<prefix><canonical>`, or `<prefix>{<canonical>}` in cluster mode.
pub fn build_key(prefix: &[u8], canonical: &[u8], cluster: bool) -> Result<KeyName, CommandError> {
    let mut key = KeyName::new();
    for part in key_parts(prefix, canonical, cluster) {
        key.push(part)
            .map_err(|_| CommandError::Internal("key too long"))?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes() {
        assert_eq!(
            build_key(b"ipcheck:", b"192.0.2.1", false)
                .unwrap()
                .as_bytes(),
            b"ipcheck:192.0.2.1"
        );
        assert_eq!(
            build_key(b"ipcheck:", b"2001:db8:1:2::/64", true)
                .unwrap()
                .as_bytes(),
            b"ipcheck:{2001:db8:1:2::/64}"
        );
    }

    #[test]
    fn longest_key_fits() {
        let prefix = vec![b'p'; MAX_PREFIX_LEN];
        let canonical = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128";
        assert_eq!(canonical.len(), CanonicalText::MAX_LEN);
        assert!(build_key(&prefix, canonical, true).is_ok());
    }

    #[test]
    fn stack_buf_refuses_overflow() {
        let mut b = StackBuf::<4>::new();
        assert!(b.push(b"abcd").is_ok());
        assert!(b.push(b"e").is_err());
        assert_eq!(b.as_bytes(), b"abcd");
    }
}
