//! The background read of `on_miss = "allow"`: the request path answers a cold address at once
//! ([`super::cold`]) and hands it here; one task reads the entries of the addresses waiting,
//! up to [`BATCH`] at a time, with one pipeline of the lookups' own read
//! ([`super::SharedTier::get_many`]), and sorts each answer by the same rules as every other
//! read ([`shared_read::classify`], [`super::lifetimes`]):
//!
//! - a fresh entry or a pin is kept locally (unless an invalidation arrived since the read
//!   began), so the next request from the address is a local hit;
//! - stale facts are kept locally as the provider's "no answer" keeps them (`negative_ttl` at
//!   most), and the address is queued for fresh ones;
//! - nothing there: queued ([`crate::enrich::queue::Adder`], in this task);
//! - no answer from Redis: counted (the call fed the breaker), nothing kept, nothing queued.
//!
//! An address read within [`WINDOW`] is not read again (a hot address still waiting for a
//! worker costs one read a second, not one per request); so a pin, or a worker's facts, reach
//! this instance within about a second of being written.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::ask::{self, Found};
use super::shared_read::{self, RefreshAhead, SharedRead};
use super::{SharedTier, Tiers};
use crate::cache::Known;
use crate::client_ip::Client;
use crate::enrich::counts::Read;
use crate::enrich::queue::{Adder, Recent, BATCH};

/// How long an address read in the background is not read again.
pub const WINDOW: Duration = Duration::from_secs(1);

/// How long the task lets offers gather after the first of a batch when fewer than [`BATCH`]
/// wait: under a flood of cold addresses the reads and the queue's writes then go 10s of
/// addresses to a pipeline instead of 1 or 2 (bench/enrich.sh), at the price of this delay
/// before a pin is found.
const LINGER: Duration = Duration::from_millis(2);

/// The task: takes what waits in the buffer, reads it, queues what Redis cannot answer. Ends
/// when every [`crate::enrich::queue::Queue`] sender is gone.
pub async fn run<T: Tiers>(
    tiers: impl Fn() -> Arc<T>,
    mut rx: mpsc::Receiver<Client>,
    adder: Arc<Adder>,
) {
    let mut read = Recent::new(WINDOW);
    let mut taken = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        // Whatever else is waiting goes in the same pipeline, so a flood costs one round trip
        // per batch, not per address.
        taken.push(first);
        drain(&mut rx, &mut taken);
        if taken.len() < BATCH {
            tokio::time::sleep(LINGER).await;
            drain(&mut rx, &mut taken);
        }
        let offers = read_batch(&tiers(), &mut read, std::mem::take(&mut taken)).await;
        if !offers.is_empty() {
            adder.submit(offers).await;
        }
    }
}

/// Moves what waits in `rx` into `taken`, up to [`BATCH`] in all.
fn drain(rx: &mut mpsc::Receiver<Client>, taken: &mut Vec<Client>) {
    while taken.len() < BATCH {
        match rx.try_recv() {
            Ok(client) => taken.push(client),
            Err(_) => break,
        }
    }
}

/// Reads `batch`'s entries (those not in `read`'s window) and keeps what they are worth
/// locally; returns the addresses to queue.
pub async fn read_batch<T: Tiers>(
    tiers: &Arc<T>,
    read: &mut Recent,
    batch: Vec<Client>,
) -> Vec<Client> {
    let counts = &tiers.metrics().enrich;
    let now = tiers.now();
    let batch: Vec<Client> = batch
        .into_iter()
        .filter(|client| {
            let first = read.first(client.key, now);
            if !first {
                counts.read(Read::Skipped);
            }
            first
        })
        .collect();
    let Some(shared) = tiers.shared() else {
        // Nothing to read (a configuration without Redis queues nothing either).
        return batch;
    };
    if batch.is_empty() {
        return batch;
    }
    // Taken before Redis is read: an invalidation arriving meanwhile keeps what we read out of
    // the local tier (see cache::local::Version).
    let since: Vec<_> = batch
        .iter()
        .map(|c| tiers.local().version(&c.key))
        .collect();
    let texts: Vec<_> = batch.iter().map(|c| c.key.canonical_text()).collect();
    let keys: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
    let answers = shared.get_many(&keys).await;
    let mut offers = Vec::new();
    for ((client, since), answer) in batch.into_iter().zip(since).zip(answers) {
        match shared_read::classify(tiers, client, since, RefreshAhead::WhenDue, answer) {
            SharedRead::Use(_) => counts.read(Read::Hit),
            SharedRead::Stale(stale) => {
                // Kept locally exactly as the waiting path keeps stale facts the provider did
                // not replace.
                let found = Found {
                    stale: Some(stale),
                    redis_failed: false,
                    since,
                };
                ask::no_answer(&**tiers, client, found, Known::Nothing, None);
                counts.read(Read::Stale);
                offers.push(client);
            }
            SharedRead::Miss => {
                counts.read(Read::Miss);
                offers.push(client);
            }
            SharedRead::Failed => counts.read(Read::Error),
        }
    }
    offers
}
