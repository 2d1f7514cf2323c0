//! The enrichment metrics: what the service's queue did with cold addresses, and (in a worker)
//! what became of each stream entry. Plain atomics, like every other counter of the service.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::exposition::{header, Kind};

/// What became of one cold address offered to the queue, for `ipcheck_enrich_queued_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Added to the stream (`XADD`).
    Added,
    /// Already queued within the dedupe window (by this instance or another): not added again.
    Duplicate,
    /// The in-process buffer was full: not queued (a later request offers it again).
    Dropped,
    /// Redis refused or did not answer: not queued (a later request offers it again).
    Failed,
}

impl Queued {
    const ALL: [Queued; 4] = [
        Queued::Added,
        Queued::Duplicate,
        Queued::Dropped,
        Queued::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Queued::Added => "added",
            Queued::Duplicate => "duplicate",
            Queued::Dropped => "dropped",
            Queued::Failed => "failed",
        }
    }
}

/// What the background read of one cold address found, for `ipcheck_enrich_reads_total`
/// ([`crate::lookup::cold_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A fresh entry or a pin: kept locally, the next request is a local hit.
    Hit,
    /// Stale facts: kept locally for `negative_ttl` at most, and queued.
    Stale,
    /// Nothing there: queued.
    Miss,
    /// Redis gave no answer: nothing kept, nothing queued.
    Error,
    /// Read within the last second already (or in the same batch): not read again.
    Skipped,
}

impl Read {
    const ALL: [Read; 5] = [
        Read::Hit,
        Read::Stale,
        Read::Miss,
        Read::Error,
        Read::Skipped,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Read::Hit => "hit",
            Read::Stale => "stale",
            Read::Miss => "miss",
            Read::Error => "error",
            Read::Skipped => "skipped",
        }
    }
}

/// What a worker did with one stream entry, for `ipcheck_enrich_entries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The provider answered and the facts were written with `IPCHECK SET`; acknowledged.
    Written,
    /// Redis already held a fresh entry or a pin: acknowledged without a provider call.
    Fresh,
    /// The provider gave no answer (failed, breaker open, daily quota spent): acknowledged; a
    /// later request queues the address again once the dedupe window has passed.
    NoAnswer,
    /// Not an entry the service writes (no `key`/`ip` field): acknowledged and skipped.
    Malformed,
    /// Redis failed while reading or writing: left pending, claimed again after `claim_idle`.
    Error,
}

impl Processed {
    const ALL: [Processed; 5] = [
        Processed::Written,
        Processed::Fresh,
        Processed::NoAnswer,
        Processed::Malformed,
        Processed::Error,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Processed::Written => "written",
            Processed::Fresh => "fresh",
            Processed::NoAnswer => "no_answer",
            Processed::Malformed => "malformed",
            Processed::Error => "error",
        }
    }
}

/// Every enrichment metric; the worker's are rendered only in a worker process.
#[derive(Debug, Default)]
pub struct EnrichCounts {
    queued: [AtomicU64; 4],
    reads: [AtomicU64; 5],
    processed: [AtomicU64; 5],
    claimed: AtomicU64,
    pending: AtomicU64,
    lag: AtomicU64,
    worker: AtomicBool,
}

impl EnrichCounts {
    /// Counts one offered address.
    pub fn queued(&self, what: Queued) {
        self.queued[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one queue outcome.
    pub fn queued_count(&self, what: Queued) -> u64 {
        self.queued[what as usize].load(Ordering::Relaxed)
    }

    /// Counts one background read.
    pub fn read(&self, what: Read) {
        self.reads[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one background read outcome.
    pub fn read_count(&self, what: Read) -> u64 {
        self.reads[what as usize].load(Ordering::Relaxed)
    }

    /// Counts one processed entry.
    pub fn processed(&self, what: Processed) {
        self.worker.store(true, Ordering::Relaxed);
        self.processed[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The count of one worker outcome.
    pub fn processed_count(&self, what: Processed) -> u64 {
        self.processed[what as usize].load(Ordering::Relaxed)
    }

    /// Counts entries taken over from another consumer (`XAUTOCLAIM`).
    pub fn claimed(&self, n: u64) {
        self.claimed.fetch_add(n, Ordering::Relaxed);
    }

    /// Marks this process as a worker, so its metrics are rendered.
    pub fn worker_started(&self) {
        self.worker.store(true, Ordering::Relaxed);
    }

    /// The group's pending entries (delivered, not acknowledged) and lag (not yet delivered),
    /// as last read from Redis.
    pub fn backlog(&self, pending: u64, lag: u64) {
        self.pending.store(pending, Ordering::Relaxed);
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// Appends the Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        crate::exposition::counter_family(
            out,
            "ipcheck_enrich_queued_total",
            "Cold addresses of on_miss = \"allow\" policies offered to the enrichment queue, by outcome.",
            "result",
            Queued::ALL
                .into_iter()
                .map(|what| (what.as_str(), self.queued_count(what))),
        );
        crate::exposition::counter_family(
            out,
            "ipcheck_enrich_reads_total",
            "Background Redis reads of cold addresses of on_miss = \"allow\" policies, by outcome.",
            "result",
            Read::ALL
                .into_iter()
                .map(|what| (what.as_str(), self.read_count(what))),
        );
        if !self.worker.load(Ordering::Relaxed) {
            return;
        }
        header(
            out,
            "ipcheck_enrich_entries_total",
            "Queue entries this worker finished, by outcome.",
            Kind::Counter,
        );
        for what in Processed::ALL {
            let _ = writeln!(
                out,
                "ipcheck_enrich_entries_total{{result=\"{}\"}} {}",
                what.as_str(),
                self.processed_count(what)
            );
        }
        header(
            out,
            "ipcheck_enrich_claimed_total",
            "Entries this worker took over from a consumer that left them pending (XAUTOCLAIM).",
            Kind::Counter,
        );
        let _ = writeln!(
            out,
            "ipcheck_enrich_claimed_total {}",
            self.claimed.load(Ordering::Relaxed)
        );
        header(
            out,
            "ipcheck_enrich_pending",
            "Entries delivered to some worker of the group and not yet acknowledged.",
            Kind::Gauge,
        );
        let _ = writeln!(
            out,
            "ipcheck_enrich_pending {}",
            self.pending.load(Ordering::Relaxed)
        );
        header(
            out,
            "ipcheck_enrich_lag",
            "Entries in the queue not yet delivered to any worker of the group.",
            Kind::Gauge,
        );
        let _ = writeln!(
            out,
            "ipcheck_enrich_lag {}",
            self.lag.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_part_shows_only_in_a_worker() {
        let counts = EnrichCounts::default();
        counts.queued(Queued::Dropped);
        let mut out = String::new();
        counts.render(&mut out);
        assert!(out.contains("ipcheck_enrich_queued_total{result=\"dropped\"} 1\n"));
        assert!(out.contains("ipcheck_enrich_reads_total{result=\"skipped\"} 0\n"));
        assert!(!out.contains("ipcheck_enrich_entries_total"));
        counts.processed(Processed::Fresh);
        counts.claimed(2);
        counts.backlog(3, 4);
        let mut out = String::new();
        counts.render(&mut out);
        assert!(out.contains("ipcheck_enrich_entries_total{result=\"fresh\"} 1\n"));
        assert!(out.contains("ipcheck_enrich_claimed_total 2\n"));
        assert!(out.contains("ipcheck_enrich_pending 3\n"));
        assert!(out.contains("ipcheck_enrich_lag 4\n"));
    }
}
