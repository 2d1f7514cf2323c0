//! Single-flight per address: concurrent misses for one normalized address share one lookup.
//!
//! The first request (the leader) runs the lookup itself, inline, and every later request
//! subscribes to its result. No task is spawned: on a two-core machine handing the lookup to a
//! task of its own (a task allocation and a wake-up on the other worker) was a large share of a
//! Redis-tier decision's CPU (bench/README.md).
//!
//! A leader can go away before it finishes: its future was dropped, or the lookup panicked.
//! Its guard then takes the flight out of the table and drops the sender, and each waiting
//! request starts over: one of them becomes the new leader and the lookup runs again. So nobody
//! waits on a lookup that is no longer running, and an address is never wedged. The provider
//! call is not part of what is dropped: it runs as a task of its own ([`crate::detached`]),
//! which the new leader joins instead of paying for a second call. (With HTTP/1 as served
//! today, hyper does not drop a handler whose client closed the connection; it finishes, and
//! its answer is discarded. The detached call does not depend on that.)

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use ipcheck_core::NormalizedIp;
use tokio::sync::watch;

const SHARDS: usize = 16;

type Table<V> = HashMap<NormalizedIp, watch::Receiver<Option<V>>>;

/// The table of lookups in flight.
pub struct Coalescer<V> {
    shards: Box<[Mutex<Table<V>>]>,
    hasher: RandomState,
}

impl<V> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }
}

/// Takes a finished (or abandoned, or panicked) flight out of the table.
struct Landing<'a, V> {
    table: &'a Coalescer<V>,
    key: NormalizedIp,
}

impl<V> Drop for Landing<'_, V> {
    fn drop(&mut self) {
        self.table.shard(&self.key).remove(&self.key);
    }
}

/// What a request is for one flight.
enum Role<V> {
    /// It runs the lookup and publishes the result.
    Leader(watch::Sender<Option<V>>),
    /// It waits for the leader's result.
    Follower(watch::Receiver<Option<V>>),
}

impl<V> Coalescer<V> {
    fn shard(&self, key: &NormalizedIp) -> MutexGuard<'_, Table<V>> {
        let h = self.hasher.hash_one(key) as usize;
        self.shards[h % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the flight for `key`, or opens one with this request as its leader.
    fn join(&self, key: NormalizedIp) -> Role<V> {
        let mut table = self.shard(&key);
        if let Some(rx) = table.get(&key) {
            return Role::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        table.insert(key, rx);
        Role::Leader(tx)
    }
}

impl<V: Clone> Coalescer<V> {
    /// The result of the lookup for `key`: runs `lookup` unless one is already in flight, in
    /// which case `on_wait` is called (once) and the running one is awaited.
    ///
    /// Never `None` in practice: `lookup` runs at most once, in the leader branch, which returns.
    /// It stays an `Option` so a logic slip degrades to the failure mode instead of a panic.
    pub async fn run<F, Fut>(
        &self,
        key: NormalizedIp,
        lookup: F,
        on_wait: impl FnOnce(),
    ) -> Option<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let mut lookup = Some(lookup);
        let mut on_wait = Some(on_wait);
        loop {
            match self.join(key) {
                Role::Leader(tx) => {
                    let landing = Landing { table: self, key };
                    let value = (lookup.take()?)().await;
                    // Leave the table first: the lookup has already filled the local cache, so
                    // requests arriving from now on hit it instead of a finished flight.
                    drop(landing);
                    // Nobody listening is fine.
                    let _ = tx.send(Some(value.clone()));
                    return Some(value);
                }
                Role::Follower(mut rx) => {
                    if let Some(f) = on_wait.take() {
                        f();
                    }
                    match rx.wait_for(Option::is_some).await {
                        Ok(value) => return value.clone(),
                        // The leader went away without an answer: start over.
                        Err(_) => continue,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn key() -> NormalizedIp {
        ipcheck_core::normalize("192.0.2.1", ipcheck_core::Aggregation::default())
            .expect("a valid address")
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_lookup() {
        let flights = Arc::new(Coalescer::<u32>::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let waits = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (flights, calls, waits) = (flights.clone(), calls.clone(), waits.clone());
                tokio::spawn(async move {
                    let joined = waits.clone();
                    flights
                        .run(
                            key(),
                            || async move {
                                calls.fetch_add(1, Ordering::SeqCst);
                                // Runs until every other request has joined: however slowly
                                // the machine starts them, none comes after the flight.
                                while joined.load(Ordering::SeqCst) < 49 {
                                    tokio::task::yield_now().await;
                                }
                                7
                            },
                            || {
                                waits.fetch_add(1, Ordering::SeqCst);
                            },
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.expect("task"), Some(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(waits.load(Ordering::SeqCst), 49);
        assert!(
            flights.shard(&key()).is_empty(),
            "the flight left the table"
        );
    }

    #[tokio::test]
    async fn a_follower_takes_over_when_the_leader_goes_away() {
        let flights = Arc::new(Coalescer::<u32>::default());
        // Polled once each (a zero timeout polls before it elapses): the leader opens the
        // flight, the follower joins it; then the leader goes away.
        let mut leader = Box::pin(flights.run(
            key(),
            || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                1
            },
            || {},
        ));
        assert!(tokio::time::timeout(Duration::ZERO, &mut leader)
            .await
            .is_err());
        let mut follower = Box::pin(flights.run(key(), || async { 2 }, || {}));
        assert!(tokio::time::timeout(Duration::ZERO, &mut follower)
            .await
            .is_err());
        drop(leader);
        let answer = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("the follower did not wait forever");
        assert_eq!(answer, Some(2), "the follower ran the lookup itself");
        assert!(flights.shard(&key()).is_empty());
    }

    #[tokio::test]
    async fn a_panicking_lookup_does_not_wedge_the_address() {
        let flights = Arc::new(Coalescer::<u32>::default());
        let f = flights.clone();
        let panicked = tokio::spawn(async move {
            f.run(key(), || async { panic!("bug in a lookup") }, || {})
                .await
        })
        .await;
        assert!(panicked.is_err());
        assert_eq!(flights.run(key(), || async { 3 }, || {}).await, Some(3));
    }
}
