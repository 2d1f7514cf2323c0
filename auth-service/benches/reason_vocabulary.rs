//! What the per-token vocabulary costs a decision, against the tables it replaced, in one run:
//! the `X-IPCheck-Reason` value and the decision counters of one `/auth` answer.
//!
//! - `table`: the old way, rebuilt here as the baseline: every possible reason set's header
//!   value built once (2^12 of them) and cloned by index, and one counter per verdict and reason
//!   *combination*.
//! - `per_token`: [`reason_header`] (a static token for no or one reason, the text written on
//!   the stack for more) and [`DecisionCounts`] (one counter per verdict, one per token).
//!
//! For no reason, one reason (nearly every decision: a clean address, a tor block, a pin) and
//! two reasons. Run with `cargo bench -p ipcheck-auth --bench reason_vocabulary`; the ratio
//! `per_token / table` per case is the result (bench/README.md).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;
use criterion::{criterion_group, criterion_main, Criterion};
use ipcheck_auth::decision_counts::DecisionCounts;
use ipcheck_auth::reason_header::reason_header;
use ipcheck_core::vocabulary::COUNT;
use ipcheck_core::{ReasonSet, Verdict};

struct Table {
    headers: Vec<HeaderValue>,
    counters: Vec<AtomicU64>,
}

impl Table {
    fn new() -> Self {
        let combinations = 1usize << COUNT;
        Table {
            headers: (0..combinations)
                .map(|bits| {
                    HeaderValue::from_str(&ReasonSet::from_bits(bits as u32).to_text()).unwrap()
                })
                .collect(),
            counters: (0..3 * combinations).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn decide(&self, verdict: Verdict, reasons: ReasonSet) -> HeaderValue {
        let vi = verdict as usize;
        self.counters[vi * self.headers.len() + reasons.bits() as usize]
            .fetch_add(1, Ordering::Relaxed);
        self.headers[reasons.bits() as usize].clone()
    }
}

fn per_token(counts: &DecisionCounts, verdict: Verdict, reasons: ReasonSet) -> HeaderValue {
    counts.count(verdict, reasons);
    reason_header(reasons)
}

fn decision(c: &mut Criterion) {
    let table = Table::new();
    let counts = DecisionCounts::default();
    let cases = [
        ("none", Verdict::Allow, ReasonSet::NONE),
        ("one", Verdict::Block, ReasonSet::from_bits(0b100)),
        ("two", Verdict::Block, ReasonSet::from_bits(0b101)),
    ];
    let mut group = c.benchmark_group("reason_vocabulary");
    for (name, verdict, reasons) in cases {
        group.bench_function(format!("table/{name}"), |b| {
            b.iter(|| black_box(table.decide(black_box(verdict), black_box(reasons))))
        });
        group.bench_function(format!("per_token/{name}"), |b| {
            b.iter(|| black_box(per_token(&counts, black_box(verdict), black_box(reasons))))
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
