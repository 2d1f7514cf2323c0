//! What the per-decision metrics cost: ours (plain atomics indexed by enums, see
//! `ipcheck_auth::metrics` and `ipcheck_auth::histogram`) against `prometheus-client`, the
//! official Rust client, used as its docs show (a `Family` keyed by a derived label set, its
//! `Histogram`). One "decision" is what `/auth` records per request: the labelled decision and
//! tier counters and one latency observation. Alone, and with both cores recording at once (the
//! 2-core server case), wall time per decision per thread. Run with `cargo bench -p ipcheck-auth
//! --bench metrics_cost`; bench/README.md holds the result and the choice it made.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_auth::histogram::{Histogram, FAST_BUCKETS};
use ipcheck_auth::metrics::{Metrics, Tier};
use ipcheck_core::{ReasonSet, Verdict};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram as CrateHistogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum VerdictLabel {
    Allow,
    Block,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ReasonLabel(u8);

impl EncodeLabelValue for ReasonLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&ReasonSet::from_bits(u32::from(self.0)).to_text())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    verdict: VerdictLabel,
    reason: ReasonLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum TierLabel {
    Local,
    Redis,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: TierLabel,
}

struct Crate {
    decisions: Family<DecisionLabels, Counter>,
    tiers: Family<TierLabels, Counter>,
    latency: CrateHistogram,
}

impl Crate {
    fn new() -> (Crate, Registry) {
        let c = Crate {
            decisions: Family::default(),
            tiers: Family::default(),
            latency: CrateHistogram::new(FAST_BUCKETS),
        };
        let mut registry = Registry::default();
        registry.register("ipcheck_decisions", "", c.decisions.clone());
        registry.register("ipcheck_cache", "", c.tiers.clone());
        registry.register("ipcheck_auth_duration_seconds", "", c.latency.clone());
        (c, registry)
    }
}

struct Ours {
    metrics: Metrics,
    latency: Histogram,
}

/// The i-th decision: alternating verdicts, tiers and reasons, a latency in the µs range.
fn nth(i: usize) -> (bool, u8, Duration) {
    (
        i % 2 == 0,
        (i % 4) as u8,
        Duration::from_nanos(3_000 + (i % 7) as u64 * 500),
    )
}

fn ours(m: &Ours, iters: u64, offset: usize) {
    for i in offset..offset + iters as usize {
        let (allow, reason, elapsed) = nth(i);
        let verdict = if allow {
            Verdict::Allow
        } else {
            Verdict::Block
        };
        let tier = if allow { Tier::Local } else { Tier::Redis };
        m.metrics.decision(
            black_box(verdict),
            black_box(ReasonSet::from_bits(reason as u32)),
            black_box(tier),
        );
        m.latency.observe(black_box(elapsed));
    }
}

fn theirs(m: &Crate, iters: u64, offset: usize) {
    for i in offset..offset + iters as usize {
        let (allow, reason, elapsed) = nth(i);
        let verdict = if allow {
            VerdictLabel::Allow
        } else {
            VerdictLabel::Block
        };
        let tier = if allow {
            TierLabel::Local
        } else {
            TierLabel::Redis
        };
        m.decisions
            .get_or_create(black_box(&DecisionLabels {
                verdict,
                reason: ReasonLabel(reason),
            }))
            .inc();
        m.tiers.get_or_create(black_box(&TierLabels { tier })).inc();
        m.latency.observe(black_box(elapsed).as_secs_f64());
    }
}

/// Wall time of `run` on this thread while another thread runs it too.
fn contended<M: Sync>(m: &M, iters: u64, run: fn(&M, u64, usize)) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            barrier.wait();
            run(m, iters, 1);
        });
        barrier.wait();
        let start = Instant::now();
        run(m, iters, 0);
        let mine = start.elapsed();
        let _ = other.join();
        mine
    })
}

fn per_decision(c: &mut Criterion) {
    let ours_m = Ours {
        metrics: Metrics::default(),
        latency: Histogram::new(&FAST_BUCKETS),
    };
    let (crate_m, _registry) = Crate::new();
    let mut group = c.benchmark_group("metrics_per_decision");
    group.bench_function("ours_one_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            ours(&ours_m, iters, 0);
            start.elapsed()
        })
    });
    group.bench_function("prometheus_client_one_thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            theirs(&crate_m, iters, 0);
            start.elapsed()
        })
    });
    group.bench_function("ours_two_threads", |b| {
        b.iter_custom(|iters| contended(&ours_m, iters, ours))
    });
    group.bench_function("prometheus_client_two_threads", |b| {
        b.iter_custom(|iters| contended(&crate_m, iters, theirs))
    });
    group.finish();
}

/// What the `/auth` handler's metrics cost before this histogram (the decision counters only,
/// the clock read only with the decision log on) and after (two clock reads and the observation
/// on every request): the handler's added cost.
fn handler(c: &mut Criterion) {
    let m = Ours {
        metrics: Metrics::default(),
        latency: Histogram::new(&FAST_BUCKETS),
    };
    let mut group = c.benchmark_group("auth_handler_metrics");
    group.bench_function("before", |b| {
        b.iter(|| {
            m.metrics.decision(
                black_box(Verdict::Allow),
                black_box(ReasonSet::NONE),
                black_box(Tier::Local),
            )
        })
    });
    group.bench_function("after", |b| {
        b.iter(|| {
            let started = Instant::now();
            m.metrics.decision(
                black_box(Verdict::Allow),
                black_box(ReasonSet::NONE),
                black_box(Tier::Local),
            );
            m.latency.observe(started.elapsed());
        })
    });
    group.finish();
}

criterion_group!(benches, per_decision, handler);
criterion_main!(benches);
