//! Feeds: downloads of published network lists (Tor exits, Spamhaus DROP, FireHOL, crawler
//! ranges) loaded into the module's network lists in Redis (`<prefix>{lists}:<list>`).
//!
//! A run: take the feed's lock in Redis (so one instance of a fleet downloads per interval),
//! download (or read a file), parse ([`parse`]), check it against the live list ([`guard`]:
//! not empty, not too large, not shrinking it by more than `max_shrink`), load it into
//! `<list>.new` in batches and `RENAME` that over the live key ([`load`]), so a reader sees the
//! old list or the new one, never a half-loaded or empty one. The service runs every feed on its
//! interval ([`schedule`]); `ipcheck-auth feed` runs them once, for cron ([`cli`]).

pub mod cli;
pub mod fetch;
pub mod guard;
pub mod load;
pub mod parse;
pub mod run;
pub mod schedule;
pub mod settings;
pub mod status;
