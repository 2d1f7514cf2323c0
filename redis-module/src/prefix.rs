//! The key prefix in force, read on every call without a lock.
//!
//! Every `IPCHECK` read and write and the command filter need the prefix, and `CONFIG SET
//! ipcheck.key-prefix` may replace it between any two commands. A read lock around a copy cost
//! two locked read-modify-write instructions per call, the largest part of `IPCHECK.LGET`'s own
//! work in a profile. Instead, each prefix ever set lives in an immutable `'static` value (the
//! default, or a leaked box), and an atomic pointer names the one in force: a reader does one
//! plain load and may keep the borrow as long as it likes, since nothing it points at is ever
//! freed or changed. So no reader can see a prefix half-written or gone, on any thread, in any
//! order Redis calls us.
//!
//! The boxes are interned (setting a prefix again reuses its box), so the memory kept is bounded
//! by the number of distinct prefixes ever set, each a few dozen bytes.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::settings::MAX_PREFIX_LEN;

/// A key prefix held by value (at most [`MAX_PREFIX_LEN`] bytes, checked by
/// [`crate::settings::check_prefix`]).
#[derive(Clone, Copy)]
pub struct KeyPrefix {
    bytes: [u8; MAX_PREFIX_LEN],
    len: usize,
}

impl KeyPrefix {
    /// `bytes` as a prefix, or `None` when longer than [`MAX_PREFIX_LEN`].
    pub const fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_PREFIX_LEN {
            return None;
        }
        let mut out = [0u8; MAX_PREFIX_LEN];
        let mut i = 0;
        while i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        Some(KeyPrefix {
            bytes: out,
            len: bytes.len(),
        })
    }

    /// The prefix bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The prefix in force until the first `CONFIG SET` (or `key-prefix` load argument).
static DEFAULT: KeyPrefix = match KeyPrefix::new(crate::settings::DEFAULT_PREFIX.as_bytes()) {
    Some(p) => p,
    None => panic!("the default key prefix is longer than MAX_PREFIX_LEN"),
};

/// The prefix in force: always `&DEFAULT` or a pointer from [`intern`], never freed.
static CURRENT: AtomicPtr<KeyPrefix> = AtomicPtr::new(ptr::addr_of!(DEFAULT).cast_mut());

/// Every prefix published so far; only [`publish`] (a config callback) takes the lock.
static INTERNED: Mutex<Vec<&'static KeyPrefix>> = Mutex::new(Vec::new());

/// The prefix in force.
pub fn current() -> &'static KeyPrefix {
    let p = CURRENT.load(Ordering::Acquire);
    // SAFETY: CURRENT only ever holds the address of the `DEFAULT` static or of a value leaked
    // by `intern`, both immutable and alive for the rest of the process; the Acquire load pairs
    // with publish's Release store, so the value is fully written before it is seen.
    unsafe { &*p }
}

/// Makes `prefix` the one in force for every later [`current`].
pub fn publish(prefix: KeyPrefix) {
    // Nothing panics while the lock is held; a poisoned list still holds whole prefixes.
    let mut list = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    let kept = intern(&mut list, prefix);
    CURRENT.store(ptr::from_ref(kept).cast_mut(), Ordering::Release);
}

/// The `'static` copy of `prefix`: the one in `list` with the same bytes, or a new one added.
fn intern(list: &mut Vec<&'static KeyPrefix>, prefix: KeyPrefix) -> &'static KeyPrefix {
    if let Some(kept) = list.iter().find(|p| p.as_bytes() == prefix.as_bytes()) {
        return kept;
    }
    let kept: &'static KeyPrefix = Box::leak(Box::new(prefix));
    list.push(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> KeyPrefix {
        KeyPrefix::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn default_until_published() {
        // No unit test publishes (that would change the prefix under the other tests).
        assert_eq!(current().as_bytes(), b"ipcheck:");
    }

    #[test]
    fn setting_a_prefix_again_reuses_its_copy() {
        let mut list = Vec::new();
        let a = intern(&mut list, prefix("a:"));
        let b = intern(&mut list, prefix("b:"));
        let a_again = intern(&mut list, prefix("a:"));
        assert!(ptr::eq(a, a_again));
        assert!(!ptr::eq(a, b));
        assert_eq!(list.len(), 2);
        assert_eq!(b.as_bytes(), b"b:");
    }

    #[test]
    fn too_long_is_refused() {
        assert!(KeyPrefix::new(&[b'p'; MAX_PREFIX_LEN]).is_some());
        assert!(KeyPrefix::new(&[b'p'; MAX_PREFIX_LEN + 1]).is_none());
    }
}
