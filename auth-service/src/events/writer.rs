//! The background task: takes buffered events in batches and appends each batch in one
//! pipeline, so a busy service costs Redis one round trip per batch, not per decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::event::Event;
use super::settings::WriterSettings;
use super::{Counts, Dropped};
use crate::breaker::State as BreakerState;
use crate::cache::redis::{ErrorKind, RedisError, RedisTier};

/// Most events in one pipeline.
pub(super) const BATCH: usize = 512;
/// At most one WARN per this interval while appends fail.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The `XADD`s of one batch.
pub(super) fn pipeline(settings: &WriterSettings, batch: &[Event]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for event in batch {
        let cmd = pipe
            .cmd("XADD")
            .arg(&settings.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(settings.maxlen)
            .arg("*");
        for (name, value) in event.fields() {
            cmd.arg(name).arg(value);
        }
    }
    pipe
}

/// Runs until `stop` fires (or its sender is gone), then appends what is buffered and ends.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Event>,
    mut stop: oneshot::Receiver<()>,
    redis: Arc<RedisTier>,
    settings: WriterSettings,
    counts: Arc<Counts>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut log = ipcheck_core::LogLimiter::new(LOG_INTERVAL);
    let mut stopping = false;
    loop {
        if stopping {
            // What is buffered now, without waiting for more: the listeners are closed.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        } else {
            tokio::select! {
                // Cancel-safe: an interrupted call takes nothing from the channel.
                _ = rx.recv_many(&mut batch, BATCH) => {}
                _ = &mut stop => {
                    stopping = true;
                    continue;
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        append(&redis, &settings, &counts, &mut log, &batch).await;
        batch.clear();
    }
}

/// Appends one batch, counting it written or dropped.
async fn append(
    redis: &RedisTier,
    settings: &WriterSettings,
    counts: &Counts,
    log: &mut ipcheck_core::LogLimiter,
    batch: &[Event],
) {
    let n = batch.len() as u64;
    // While lookups find Redis down, do not spend a deadline per batch finding it again.
    let result = if redis.breaker().state() == BreakerState::Closed {
        redis
            .pipeline(&pipeline(settings, batch), settings.timeout)
            .await
            .map(drop)
    } else {
        Err(RedisError::bare(ErrorKind::BreakerOpen))
    };
    match result {
        Ok(()) => counts.written(n),
        Err(e) => {
            counts.dropped(Dropped::Redis, n);
            if let Some(held) = log.note(Instant::now()) {
                tracing::warn!(
                    stream = %settings.stream,
                    redis = %redis.display(),
                    "decision events not appended ({e}); {held} batch(es) dropped since the last such line, counted in ipcheck_events_dropped_total{{cause=\"redis\"}}; decisions are not affected{}",
                    if e.kind == ErrorKind::NoPerm {
                        "; the service's Redis user needs +xadd on the stream's key"
                    } else {
                        ""
                    }
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_capped_xadd_per_event() {
        let settings = WriterSettings {
            stream: "ipcheck:events".to_owned(),
            maxlen: 1000,
            buffer: 10,
            timeout: Duration::from_secs(1),
        };
        let event = Event::new(
            &axum::http::HeaderMap::new(),
            &crate::decide::Outcome {
                verdict: ipcheck_core::Verdict::Allow,
                reason: axum::http::HeaderValue::from_static(""),
                tier: crate::metrics::Tier::Local,
                key: axum::http::HeaderValue::from_static("192.0.2.1"),
                address: Some("192.0.2.1".parse().expect("an address")),
                mode: crate::mode::Mode::Enforce,
                attributes: Default::default(),
            },
            std::time::UNIX_EPOCH,
        );
        let pipe = pipeline(&settings, &[event.clone(), event]);
        let cmds: Vec<&redis::Cmd> = pipe.cmd_iter().collect();
        assert_eq!(cmds.len(), 2);
        let args: Vec<String> = cmds[0]
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => "<not an argument>".to_owned(),
            })
            .collect();
        assert_eq!(
            args[..6],
            ["XADD", "ipcheck:events", "MAXLEN", "~", "1000", "*"]
        );
        assert_eq!(args.len(), 6 + 2 * super::super::event::FIELDS.len());
        assert_eq!(args[6..8], ["ts", "0"]);
        assert_eq!(args[args.len() - 2..], ["uri", "-"]);
    }
}
