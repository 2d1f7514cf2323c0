//! Fresh, stale, gone: where a stored entry is in its life.
//!
//! A fact is written with a fresh time (`EX`) and a stale window (`STALE`); the key expires at
//! the end of both, and the entry records only the window's length (see [`crate::encoding`]).
//! So the key's remaining time alone says which part of its life the entry is in: fresh while
//! more than the stale window is left, stale after that, gone when the key expires. A reader
//! needs no clock of its own and no fetch time.

/// Where an entry is in its life, as `IPCHECK GET` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Within its fresh time: serve it as is. A stale entry is only for when nothing better
    /// can be had (the provider gave no answer).
    pub fresh: bool,
    /// Seconds left of the fresh time, rounded to the nearest second as Redis's `TTL` rounds
    /// (so, without a stale window, exactly the key's `ttl`); 0 once stale, and possibly in
    /// the last half second of fresh time (`fresh` is what decides); -1 for a key without
    /// expiry (fresh for good).
    pub fresh_ttl_secs: i64,
}

/// The freshness of an entry whose key expires in `remaining_ms` (None: never) and whose stale
/// window is `stale_secs` long (0: fresh until gone).
pub fn freshness(remaining_ms: Option<i64>, stale_secs: u32) -> Freshness {
    let Some(remaining_ms) = remaining_ms else {
        return Freshness {
            fresh: true,
            fresh_ttl_secs: -1,
        };
    };
    let fresh_ms = remaining_ms - i64::from(stale_secs) * 1000;
    if fresh_ms > 0 {
        Freshness {
            fresh: true,
            fresh_ttl_secs: (fresh_ms + 500) / 1000,
        }
    } else {
        Freshness {
            fresh: false,
            fresh_ttl_secs: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_window_fresh_until_gone() {
        // Rounded as ttl is: without a window, fresh_ttl is the key's ttl.
        assert_eq!(
            freshness(Some(1), 0),
            Freshness {
                fresh: true,
                fresh_ttl_secs: 0
            }
        );
        assert_eq!(freshness(Some(1500), 0).fresh_ttl_secs, 2);
        assert_eq!(
            freshness(Some(86_400_000), 0),
            Freshness {
                fresh: true,
                fresh_ttl_secs: 86_400
            }
        );
        assert_eq!(
            freshness(None, 0),
            Freshness {
                fresh: true,
                fresh_ttl_secs: -1
            }
        );
    }

    #[test]
    fn fresh_then_stale() {
        let day = 86_400;
        // Written with EX 1 day STALE 7 days: the key lives 8 days.
        let written = 8 * day * 1000;
        assert_eq!(freshness(Some(written), 7 * day as u32).fresh_ttl_secs, day);
        // One millisecond of fresh time left: still fresh (`fresh` decides, not fresh_ttl).
        let f = freshness(Some(7 * day * 1000 + 1), 7 * day as u32);
        assert_eq!(
            f,
            Freshness {
                fresh: true,
                fresh_ttl_secs: 0
            }
        );
        // Exactly the window left: stale.
        let f = freshness(Some(7 * day * 1000), 7 * day as u32);
        assert_eq!(
            f,
            Freshness {
                fresh: false,
                fresh_ttl_secs: 0
            }
        );
        let f = freshness(Some(1), 7 * day as u32);
        assert!(!f.fresh);
    }

    #[test]
    fn a_key_without_expiry_is_fresh_for_good() {
        assert!(freshness(None, 3600).fresh);
    }
}
