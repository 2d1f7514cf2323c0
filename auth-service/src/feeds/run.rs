//! One run of one feed: lock, fetch, parse, check, swap. Shared by the service's schedule and
//! the one-shot command, which differ only in how long they hold the lock.

use std::path::Path;
use std::time::Duration;

use super::fetch;
use super::guard::{self, Refusal};
use super::load::{self, ListKeys};
use super::parse;
use super::settings::FeedSettings;
use crate::cache::redis::RedisTier;

/// Where the bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The feed's URL.
    Download,
    /// A local file in the feed's format.
    File(&'a Path),
}

/// A run that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The list now holds the download.
    Loaded {
        /// Networks loaded.
        networks: usize,
        /// Networks the list held before (`None`: it did not exist).
        before: Option<u64>,
    },
    /// Another run holds the feed's lock: it runs this interval, not us.
    Skipped,
}

/// Why a run failed; the live list is unchanged in every case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The download or file could not be read.
    #[error("{0}")]
    Fetch(String),
    /// A line (or the JSON) does not parse.
    #[error("refused: {0}")]
    Invalid(String),
    /// Parsed, but refused by a guard.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// Redis did not do its part.
    #[error("{0}")]
    Redis(String),
}

/// Every `result` label of `ipcheck_feed_runs_total`, in metric order: the one table the
/// metrics and the docs follow.
pub const RESULTS: [&str; 8] = [
    "ok",
    "skipped",
    "fetch_error",
    "invalid",
    "empty",
    "too_large",
    "shrink",
    "redis_error",
];

impl Failure {
    /// The `result` label (one of [`RESULTS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Fetch(_) => "fetch_error",
            Failure::Invalid(_) => "invalid",
            Failure::Refused(Refusal::Empty) => "empty",
            Failure::Refused(Refusal::TooLarge { .. }) => "too_large",
            Failure::Refused(Refusal::Shrink { .. }) => "shrink",
            Failure::Redis(_) => "redis_error",
        }
    }
}

/// The `result` label of a run.
pub fn result_label(result: &Result<Outcome, Failure>) -> &'static str {
    match result {
        Ok(Outcome::Loaded { .. }) => "ok",
        Ok(Outcome::Skipped) => "skipped",
        Err(f) => f.kind(),
    }
}

/// How a run treats the feed's lock.
#[derive(Debug, Clone, Copy)]
pub struct Lock<'a> {
    /// This instance's id, the lock's value.
    pub holder: &'a str,
    /// How long the lock is taken for.
    pub hold: Duration,
    /// Whether the run deletes it when done (the one-shot command), or leaves it to expire,
    /// claiming the rest of the interval (the service's schedule).
    pub release: bool,
}

/// Runs `feed` once against the list under `prefix`.
pub async fn run(
    tier: &RedisTier,
    prefix: &str,
    feed: &FeedSettings,
    source: Source<'_>,
    lock: Lock<'_>,
) -> Result<Outcome, Failure> {
    let keys = ListKeys::new(prefix, &feed.list);
    if !load::lock(tier, &keys, lock.holder, lock.hold)
        .await
        .map_err(Failure::Redis)?
    {
        return Ok(Outcome::Skipped);
    }
    let result = locked(tier, &keys, feed, source).await;
    if lock.release {
        if let Err(e) = load::unlock(tier, &keys, lock.holder).await {
            tracing::warn!("feed {}: {e}; the lock expires by itself", feed.name);
        }
    }
    result
}

async fn locked(
    tier: &RedisTier,
    keys: &ListKeys,
    feed: &FeedSettings,
    source: Source<'_>,
) -> Result<Outcome, Failure> {
    let text = match source {
        Source::Download => fetch::download(&feed.url, feed.timeout, feed.max_bytes).await,
        Source::File(path) => fetch::read_file(path, feed.max_bytes),
    }
    .map_err(Failure::Fetch)?;
    let networks = parse::parse(feed.format, &text)
        .map_err(|e| Failure::Invalid(format!("not the {} format: {e}", feed.format.as_str())))?;
    let before = load::live_count(tier, keys).await.map_err(Failure::Redis)?;
    guard::check(feed, networks.len(), before).map_err(Failure::Refused)?;
    load::replace(tier, keys, &networks, &feed.value)
        .await
        .map_err(Failure::Redis)?;
    Ok(Outcome::Loaded {
        networks: networks.len(),
        before,
    })
}
