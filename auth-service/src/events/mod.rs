//! Decision events (`[events]`): every decision, the non-allow ones, or a sample, appended to a
//! Redis stream for downstream consumers (fraud, analytics, profile enrichment).
//!
//! Appending never blocks or fails a decision: the handler builds the [`event::Event`] and
//! offers it to a bounded buffer ([`Writer::offer`], no await, no lock held across I/O); a
//! background task ([`writer`]) takes what is buffered and appends it in one pipeline of
//! `XADD <stream> MAXLEN ~ <maxlen> * <field> <value> ...`. A full buffer, Redis down or slow,
//! or an error reply drops events, counted in `ipcheck_events_dropped_total{cause}`; appended
//! ones count in `ipcheck_events_written_total`.
//!
//! The writer (stream, maxlen, buffer, timeout) is started once and carried across reloads; the
//! selection (`decisions`, `sample`) is the running configuration's. At shutdown
//! ([`Writer::finish`]) it appends what is buffered, within a deadline.

pub mod event;
pub mod settings;
mod writer;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cache::redis::RedisTier;
use crate::decide::Outcome;
use crate::decision_log::DecisionLog;
use crate::exposition::{header, Kind};
use event::Event;
use settings::WriterSettings;

/// Why events were not appended (`ipcheck_events_dropped_total{cause}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The buffer was full: Redis is slower than the decisions.
    Full,
    /// Redis did not take them: down, too slow, its breaker open, or an error reply.
    Redis,
}

impl Dropped {
    const ALL: [Dropped; 2] = [Dropped::Full, Dropped::Redis];

    fn as_str(self) -> &'static str {
        match self {
            Dropped::Full => "full",
            Dropped::Redis => "redis",
        }
    }
}

/// The writer's counters.
#[derive(Debug, Default)]
pub struct Counts {
    written: AtomicU64,
    dropped: [AtomicU64; 2],
}

impl Counts {
    fn written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    fn dropped(&self, cause: Dropped, n: u64) {
        self.dropped[cause as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text of both metrics.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "ipcheck_events_written_total",
            "Decision events appended to the events stream.",
            Kind::Counter,
        );
        let _ = writeln!(
            out,
            "ipcheck_events_written_total {}",
            self.written.load(Ordering::Relaxed)
        );
        crate::exposition::counter_family(
            out,
            "ipcheck_events_dropped_total",
            "Decision events not appended, by cause: full (the buffer was full), redis (Redis did not take them).",
            "cause",
            Dropped::ALL
                .into_iter()
                .map(|cause| (cause.as_str(), self.dropped[cause as usize].load(Ordering::Relaxed))),
        );
    }
}

/// The buffer in front of the background task, shared by every configuration.
pub struct Writer {
    tx: mpsc::Sender<Event>,
    counts: Arc<Counts>,
    settings: WriterSettings,
    /// Tells the task to append what is buffered and end; taken by [`Writer::finish`].
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Writer {
    /// Starts the background task appending to `redis`; must run inside a tokio runtime.
    pub fn spawn(settings: WriterSettings, redis: Arc<RedisTier>) -> Arc<Writer> {
        let (tx, rx) = mpsc::channel(settings.buffer);
        let (stop, stopped) = oneshot::channel();
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(writer::run(
            rx,
            stopped,
            redis,
            settings.clone(),
            Arc::clone(&counts),
        ));
        Arc::new(Writer {
            tx,
            counts,
            settings,
            stop: Mutex::new(Some((stop, task))),
        })
    }

    /// At shutdown, once no request comes any more: appends what is buffered, waiting at most
    /// twice `timeout` plus a second, so a stop never hangs on Redis (what is left then is lost).
    pub async fn finish(&self) {
        let taken = self
            .stop
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some((stop, task)) = taken else {
            return;
        };
        let deadline = self.settings.timeout * 2 + Duration::from_secs(1);
        tracing::info!(
            stream = %self.settings.stream,
            "stopping: appending the buffered decision events (at most {})",
            crate::duration::display(deadline)
        );
        let _ = stop.send(());
        if tokio::time::timeout(deadline, task).await.is_err() {
            tracing::warn!(
                stream = %self.settings.stream,
                "stopping: Redis did not take the buffered decision events in time; they are lost"
            );
        }
    }

    /// Hands an event to the task, or counts it dropped when the buffer is full. Never waits.
    pub fn offer(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.counts.dropped(Dropped::Full, 1),
            // Only when the task is gone, which it never is while a sender lives.
            Err(mpsc::error::TrySendError::Closed(_)) => self.counts.dropped(Dropped::Redis, 1),
        }
    }

    /// The settings it was started with (a reload must not change them).
    pub fn settings(&self) -> &WriterSettings {
        &self.settings
    }
}

/// The events of one configuration: its selection, and the shared writer.
pub struct Events {
    filter: DecisionLog,
    writer: Arc<Writer>,
}

impl Events {
    /// `filter` (from `[events]`) feeding `writer`.
    pub fn new(filter: DecisionLog, writer: Arc<Writer>) -> Self {
        Events { filter, writer }
    }

    /// The writer, for the next configuration.
    pub fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    /// Offers the event of one decision if `decisions` and `sample` select it.
    pub fn record(&self, headers: &HeaderMap, outcome: &Outcome) {
        if self.filter.selects(outcome.verdict) {
            self.writer
                .offer(Event::new(headers, outcome, SystemTime::now()));
        }
    }

    /// `ipcheck_events_written_total`, `ipcheck_events_dropped_total`.
    pub fn render(&self, out: &mut String) {
        self.writer.counts.render(out);
    }
}
