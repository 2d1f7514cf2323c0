//! The vocabulary: every reason token ipcheck knows, declared once.
//!
//! One row per token. Everything else derives from this table: the [`Category`] enum and
//! [`Category::ALL`], the named [`ReasonSet`] constants, [`KNOWN_REASONS`] (the bit order of the
//! compact value encoding), the policy `block`/`challenge` lists and their error text, the
//! service's `provider.fields.<token>` config keys and `IPCHECK_PROVIDER_FIELDS_<TOKEN>`
//! environment keys, and the `reason` label of the decision metrics.
//!
//! A row's bit is its position in stored values, so bits are append only: a new token takes the
//! next free bit (categories and outcomes share one numbering). The checks below refuse, at
//! compile time, a table whose bits are not exactly `0..rows` or that outgrows
//! [`REASON_BITS`]. Adding a category is one `categories` line (see docs/vocabulary.md).
//!
//! A reader meeting a bit its table lacks (written by a newer version) keeps it as the token
//! `unknown-<bit>`: decoding and re-encoding preserve it, policies ignore it (see
//! [`reason_bit`]).

use crate::policy::ReasonSet;

/// Reason bits the compact value encoding reserves: the table may grow to this many rows.
pub const REASON_BITS: u32 = 32;

/// How a category may be used by a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Listed in a policy's `block` or `challenge`.
    Blockable,
    /// Only `allow_crawlers` acts on it (it allows, never blocks).
    AllowOnly,
}

/// What kind of reason a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fact a provider reports about an address, cached in Redis.
    Category(Use),
    /// Why a decision was made without (or despite) facts: lists, failures.
    Outcome,
}

/// One row of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Position in the compact encoding's reason bits (append only).
    pub bit: u32,
    /// The token, as stored in `REASON` and sent in `X-IPCheck-Reason`.
    pub token: &'static str,
    /// Category or outcome.
    pub kind: Kind,
    /// One line for documentation and `explain`.
    pub description: &'static str,
}

macro_rules! vocabulary {
    (
        categories { $( $cat:ident = $cbit:literal, $ctok:literal, $cuse:ident, $cdesc:literal; )* }
        outcomes { $( $out:ident = $obit:literal, $otok:literal, $odesc:literal; )* }
    ) => {
        /// One thing a provider can say about an address; the discriminant is its reason bit.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Category {
            $( #[doc = $cdesc] $cat = $cbit, )*
        }

        impl Category {
            /// Every category, in table order.
            pub const ALL: [Category; [$($ctok),*].len()] = [$(Category::$cat),*];

            /// The table row of this category.
            pub const fn row(self) -> &'static Row {
                match self {
                    $( Category::$cat => &Row {
                        bit: $cbit,
                        token: $ctok,
                        kind: Kind::Category(Use::$cuse),
                        description: $cdesc,
                    }, )*
                }
            }
        }

        impl ReasonSet {
            $( #[doc = $odesc] pub const $out: ReasonSet = ReasonSet::from_bit($obit); )*
        }

        /// The whole table: categories first, then outcomes (each row names its bit).
        pub const ROWS: &[Row] = &[
            $( Row { bit: $cbit, token: $ctok, kind: Kind::Category(Use::$cuse), description: $cdesc }, )*
            $( Row { bit: $obit, token: $otok, kind: Kind::Outcome, description: $odesc }, )*
        ];
    };
}

vocabulary! {
    categories {
        Vpn = 0, "vpn", Blockable, "A commercial VPN exit.";
        Proxy = 1, "proxy", Blockable, "An open or anonymizing proxy.";
        Tor = 2, "tor", Blockable, "A Tor exit node.";
        Hosting = 3, "hosting", Blockable, "A hosting or cloud provider's address (servers, not people).";
        Relay = 4, "relay", Blockable, "A privacy relay such as iCloud Private Relay.";
        Crawler = 5, "crawler", AllowOnly, "A known search-engine or monitoring crawler.";
    }
    outcomes {
        ALLOWLIST = 6, "allowlist", "The address is on the policy's allow list.";
        DENYLIST = 7, "denylist", "The address is on the policy's deny list.";
        PROVIDER_ERROR = 8, "provider-error", "The provider failed; the policy's failure mode decided.";
        NO_CLIENT_IP = 9, "no-client-ip", "No usable client address; the policy's failure mode decided.";
        POLICY_ERROR = 10, "policy-error", "The request named a policy that is not configured; the unknown-policy setting decided.";
        REDIS_ERROR = 11, "redis-error", "Redis could not be asked; the policy's `on_redis_error` decided.";
        COUNTRY = 12, "country", "The address's country is one the policy blocks or challenges, or not one it allows.";
        ASN = 13, "asn", "The network (AS number) announcing the address is one the policy blocks or challenges.";
        SCORE = 14, "score", "The address's risk score reached the policy's block or challenge threshold.";
    }
}

/// How many tokens the table has.
pub const COUNT: usize = ROWS.len();

const _: () = assert!(
    COUNT <= REASON_BITS as usize,
    "the vocabulary outgrew the reason bits"
);

/// The tokens ordered by bit, checking at compile time that the bits are exactly `0..COUNT`.
const fn tokens_by_bit() -> [&'static str; COUNT] {
    let mut out = [""; COUNT];
    let mut i = 0;
    while i < COUNT {
        let bit = ROWS[i].bit as usize;
        assert!(
            bit < COUNT,
            "reason bits must be 0..number of rows, with no gap"
        );
        assert!(out[bit].is_empty(), "two vocabulary rows share a bit");
        out[bit] = ROWS[i].token;
        i += 1;
    }
    out
}

/// Reason tokens by bit: `KNOWN_REASONS[b]` is the token of bit `b` in stored values.
pub const KNOWN_REASONS: [&str; COUNT] = tokens_by_bit();

/// Every bit the table knows.
pub const KNOWN_MASK: u32 = if COUNT == 32 {
    u32::MAX
} else {
    (1u32 << COUNT) - 1
};

/// Longest comma-separated list of every known token (the size of a reason-text buffer).
pub const MAX_KNOWN_TEXT: usize = {
    let mut len = 0;
    let mut i = 0;
    while i < COUNT {
        len += ROWS[i].token.len() + 1;
        i += 1;
    }
    len
};

/// The spelling of a reason bit this table does not know: `unknown-<bit>`.
pub const UNKNOWN_PREFIX: &str = "unknown-";

/// The row of a known token.
pub fn row(token: &str) -> Option<&'static Row> {
    ROWS.iter().find(|r| r.token == token)
}

/// The bit of a known token.
pub fn known_bit(token: &str) -> Option<u32> {
    KNOWN_REASONS
        .iter()
        .position(|t| *t == token)
        .map(|p| p as u32)
}

/// The bit a token stands for in the compact encoding: a known token's bit, or `b` for
/// `unknown-<b>` when `b` is a reserved bit this table does not know (canonical decimal, no
/// leading zero). `unknown-3` (a known bit) or `unknown-40` stay ordinary custom tokens.
pub fn reason_bit(token: &str) -> Option<u32> {
    known_bit(token).or_else(|| unknown_bit(token))
}

fn unknown_bit(token: &str) -> Option<u32> {
    let digits = token.strip_prefix(UNKNOWN_PREFIX)?;
    if digits.is_empty()
        || digits.len() > 2
        || (digits.len() > 1 && digits.starts_with('0'))
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let bit: u32 = digits.parse().ok()?;
    (bit >= COUNT as u32 && bit < REASON_BITS).then_some(bit)
}

/// Appends the token of `bit` (known, or `unknown-<bit>`) to `out` at `len`; returns the new
/// length. `out` must have room: [`MAX_KNOWN_TEXT`] plus 11 bytes per unknown bit.
pub(crate) fn write_token(bit: u32, out: &mut [u8], mut len: usize) -> usize {
    let mut put = |bytes: &[u8]| {
        out[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    match KNOWN_REASONS.get(bit as usize) {
        Some(token) => put(token.as_bytes()),
        None => {
            put(UNKNOWN_PREFIX.as_bytes());
            if bit >= 10 {
                put(&[b'0' + (bit / 10) as u8]);
            }
            put(&[b'0' + (bit % 10) as u8]);
        }
    }
    len
}

/// The blockable category tokens, comma-separated, for error texts.
pub fn blockable_list() -> String {
    token_list(|u| u == Use::Blockable)
}

/// Every category token, comma-separated, for error texts.
pub fn category_list() -> String {
    token_list(|_| true)
}

fn token_list(keep: impl Fn(Use) -> bool) -> String {
    Category::ALL
        .iter()
        .filter(|c| matches!(c.row().kind, Kind::Category(u) if keep(u)))
        .map(|c| c.row().token)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_valid_distinct_and_not_unknown_spellings() {
        for (i, row) in ROWS.iter().enumerate() {
            assert!(
                row.token
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                row.token
            );
            assert!(!row.token.starts_with(UNKNOWN_PREFIX), "{}", row.token);
            assert!(
                ROWS[..i].iter().all(|r| r.token != row.token),
                "{}",
                row.token
            );
            assert_eq!(KNOWN_REASONS[row.bit as usize], row.token);
            assert_eq!(reason_bit(row.token), Some(row.bit));
        }
    }

    #[test]
    fn categories_match_their_rows() {
        for c in Category::ALL {
            assert_eq!(c as u32, c.row().bit);
            assert!(matches!(c.row().kind, Kind::Category(_)));
        }
        let categories = ROWS
            .iter()
            .filter(|r| matches!(r.kind, Kind::Category(_)))
            .count();
        assert_eq!(categories, Category::ALL.len());
    }

    #[test]
    fn the_stored_order_is_unchanged() {
        // Positions are stored in Redis: this list may only grow at its end.
        assert_eq!(
            KNOWN_REASONS[..12],
            [
                "vpn",
                "proxy",
                "tor",
                "hosting",
                "relay",
                "crawler",
                "allowlist",
                "denylist",
                "provider-error",
                "no-client-ip",
                "policy-error",
                "redis-error",
            ]
        );
    }

    #[test]
    fn unknown_spellings() {
        assert_eq!(reason_bit("unknown-20"), Some(20));
        assert_eq!(reason_bit("unknown-31"), Some(31));
        assert_eq!(reason_bit(&format!("unknown-{COUNT}")), Some(COUNT as u32));
        for custom in [
            "unknown-3",
            "unknown-32",
            "unknown-020",
            "unknown-",
            "unknown-x",
            "unknown-100",
        ] {
            assert_eq!(reason_bit(custom), None, "{custom}");
        }
        let mut buf = [0u8; 16];
        let n = write_token(20, &mut buf, 0);
        assert_eq!(&buf[..n], b"unknown-20");
        let n = write_token(2, &mut buf, 0);
        assert_eq!(&buf[..n], b"tor");
    }

    #[test]
    fn error_lists_come_from_the_table() {
        assert_eq!(blockable_list(), "vpn, proxy, tor, hosting, relay");
        assert_eq!(category_list(), "vpn, proxy, tor, hosting, relay, crawler");
    }
}
