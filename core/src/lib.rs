//! The pure heart of ipcheck: no I/O, no Redis, no HTTP.
//!
//! Everything that must behave identically in the Redis module (`IPCHECK`) and in the
//! `ipcheck-auth` service lives here, so a verdict written by one is read the same way by the
//! other, and by any Lua script that goes through the module:
//!
//! - [`normalize`] turns client-supplied address text into one canonical cache identity
//!   ([`NormalizedIp`]), rejecting every ambiguous spelling instead of guessing, and aggregating
//!   IPv6 clients per network prefix so address rotation inside a /64 does not escape a verdict.
//! - [`verdict`] is the model of what we cache: a [`Verdict`], the [`Reasons`] behind it and the
//!   [`Source`] that produced it.
//! - [`facts`] is what is known about an address beyond its categories: country, AS number,
//!   risk score ([`Facts`] is everything a policy decides on).
//! - [`policy`] turns the facts about an address into a [`Decision`] under a named [`Policy`].
//! - [`encoding`] is the compact on-disk form of an [`Entry`] as a plain Redis string value,
//!   built in a [`StoredBuf`] on the stack ([`stored_buf`]); [`check_canonical`] says whether a
//!   value is exactly that form (what the lean write `IPCHECK.LSET` accepts).
//! - [`lean`] writes and decodes the lean read `IPCHECK.LGET` (remaining time and stored value)
//!   and names an entry's key, for the module and the service alike.
//! - [`protocol`] is the `IPCHECK` wire format (subcommands, `SET` options, `GET` fields), one
//!   table the module, the service and the tests all use.
//! - [`freshness`](mod@freshness) says whether a stored entry is fresh or stale from its key's remaining time.
//! - [`vocabulary`] is the one table of reason tokens (categories and outcomes) everything
//!   else derives from.
//! - [`log_limit`] says when a repeated fault earns a log line, for the module and the service.

pub mod encoding;
pub mod facts;
pub mod freshness;
pub mod lean;
pub mod log_limit;
pub mod normalize;
pub mod policy;
pub mod protocol;
pub mod stored_buf;
pub mod verdict;
pub mod vocabulary;

pub use encoding::{
    check_canonical, decode_entry, decode_entry_view, decode_stored, encode_entry, encode_stored,
    encode_view, is_manual_pin, CanonicalValue, DecodeError, EntryView, ViewScratch, MAX_STALE,
};
pub use facts::{Asn, AttributeError, Attributes, Country, Facts, Score};
pub use freshness::{freshness, Freshness};
pub use lean::{
    decode_lean, decode_lean_reply, entry_key, key_parts, lean_reply, split_lean_reply, ttl_secs,
    LeanEntry, LEAN_READ, LEAN_WRITE, NO_EXPIRY_MS,
};
pub use log_limit::LogLimiter;
pub use normalize::{
    cache_key, is_own_canonical, normalize, normalize_bytes, normalize_network, Aggregation,
    AggregationError, CanonicalText, NormalizeError, NormalizedIp,
};
pub use policy::{
    Categories, Category, CategoryError, Decision, FailureMode, Needs, OnMiss, Policy, ReasonSet,
    ReasonText, RedisFailureMode,
};
pub use stored_buf::StoredBuf;
pub use verdict::{
    check_reasons, check_source, Entry, Reasons, Source, TokenError, Verdict, VerdictError,
    KNOWN_REASONS, KNOWN_SOURCES,
};
