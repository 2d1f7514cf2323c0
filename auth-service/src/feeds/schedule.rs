//! The service runs every configured feed on its interval, first at start. Each run claims the
//! feed's lock for nearly the whole interval and leaves it to expire, so a fleet of instances
//! downloads each feed once per interval, whichever instance comes first; the claim ends a little
//! before the interval does, so the instance that ran it finds it free at its next tick.
//!
//! A run Redis failed (down at start, say) is tried again after [`REDIS_RETRY`], not a whole
//! interval later: until then the list may be missing, not merely old.
//!
//! The feeds are those of the configuration the service started with (a reload that changes
//! them is refused).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::run::{self, Failure, Lock, Outcome, Source};
use super::settings::FeedSettings;
use crate::cache::redis::RedisTier;
use crate::metrics::Metrics;

/// How soon a run that Redis failed is tried again (at most the interval): one `SET` per try.
pub const REDIS_RETRY: Duration = Duration::from_secs(5);

/// This instance's lock value: process id and start time, unique enough across a fleet and
/// readable in `GET <list>.lock`.
pub fn holder_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ipcheck-auth:{}:{nanos}", std::process::id())
}

/// How long a scheduled run claims the feed: the interval less a tenth (at most 5 s).
pub fn claim(interval: Duration) -> Duration {
    let margin = (interval / 10).min(Duration::from_secs(5));
    interval
        .saturating_sub(margin)
        .max(Duration::from_millis(1))
}

/// Starts one task per feed.
pub fn spawn(feeds: Vec<FeedSettings>, redis: Arc<RedisTier>, metrics: Arc<Metrics>) {
    let holder: Arc<str> = holder_id().into();
    for feed in feeds {
        metrics.feeds.declare(&feed.name);
        tokio::spawn(every_interval(
            feed,
            Arc::clone(&redis),
            Arc::clone(&metrics),
            Arc::clone(&holder),
        ));
    }
}

async fn every_interval(
    feed: FeedSettings,
    redis: Arc<RedisTier>,
    metrics: Arc<Metrics>,
    holder: Arc<str>,
) {
    loop {
        let lock = Lock {
            holder: &holder,
            hold: claim(feed.interval),
            release: false,
        };
        let prefix = redis.key_prefix().to_owned();
        let result = run::run(&redis, &prefix, &feed, Source::Download, lock).await;
        report(&feed, &result, &metrics);
        tokio::time::sleep(next_run(&result, feed.interval)).await;
    }
}

/// How long until the next run.
fn next_run(result: &Result<Outcome, Failure>, interval: Duration) -> Duration {
    match result {
        Err(Failure::Redis(_)) => REDIS_RETRY.min(interval),
        _ => interval,
    }
}

fn report(feed: &FeedSettings, result: &Result<Outcome, Failure>, metrics: &Metrics) {
    let log = metrics
        .feeds
        .record(&feed.name, result, feed.interval, Instant::now());
    match result {
        Ok(Outcome::Loaded { networks, before }) => tracing::info!(
            "feed {}: loaded {networks} networks into list {} (was {})",
            feed.name,
            feed.list,
            before.map_or_else(|| "absent".to_owned(), |n| n.to_string())
        ),
        Ok(Outcome::Skipped) => tracing::debug!(
            "feed {}: another instance holds its lock for this interval",
            feed.name
        ),
        Err(e) if log => tracing::error!(
            "feed {} ({}): {e}; list {} unchanged (logged once per {} per kind)",
            feed.name,
            e.kind(),
            feed.list,
            crate::duration::display(feed.interval)
        ),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_ends_before_the_next_tick() {
        assert_eq!(claim(Duration::from_secs(3600)), Duration::from_secs(3595));
        assert_eq!(claim(Duration::from_secs(10)), Duration::from_secs(9));
        assert!(claim(Duration::from_millis(1)) > Duration::ZERO);
    }

    #[test]
    fn redis_failures_are_tried_again_soon() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            next_run(&Err(Failure::Redis("down".into())), hour),
            REDIS_RETRY
        );
        assert_eq!(next_run(&Err(Failure::Fetch("503".into())), hour), hour);
        assert_eq!(next_run(&Ok(Outcome::Skipped), hour), hour);
        assert_eq!(
            next_run(&Err(Failure::Redis("down".into())), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
