//! Single-flight per address: concurrent misses for one normalized address share one lookup.
//!
//! The first request starts the lookup as its own task (so a client hanging up cannot cancel
//! work others wait for) and every later request subscribes to its result. The flight leaves the
//! table when it ends, even by panic, so a failure never wedges an address.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Removes a finished (or panicked) flight from the table.
struct Landing<V> {
    table: Arc<Coalescer<V>>,
    key: NormalizedIp,
}

impl<V> Drop for Landing<V> {
    fn drop(&mut self) {
        self.table.shard(&self.key).remove(&self.key);
    }
}

impl<V> Coalescer<V> {
    fn shard(&self, key: &NormalizedIp) -> MutexGuard<'_, Table<V>> {
        let h = self.hasher.hash_one(key) as usize;
        self.shards[h % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<V: Clone + Send + Sync + 'static> Coalescer<V> {
    /// The result of the lookup for `key`: starts `lookup` unless one is already in flight, in
    /// which case `on_wait` is called and the running one is awaited. `None` if the flight died.
    pub async fn run<F, Fut>(
        self: &Arc<Self>,
        key: NormalizedIp,
        lookup: F,
        on_wait: impl FnOnce(),
    ) -> Option<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut rx = {
            let mut table = self.shard(&key);
            if let Some(rx) = table.get(&key) {
                on_wait();
                rx.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                table.insert(key, rx.clone());
                let fut = lookup();
                let landing = Landing {
                    table: Arc::clone(self),
                    key,
                };
                tokio::spawn(async move {
                    let value = fut.await;
                    // Leave the table first: the caller's lookup has already filled the local
                    // cache, so requests arriving from now on hit it instead of a finished flight.
                    drop(landing);
                    let _ = tx.send(Some(value));
                });
                rx
            }
        };
        let value = rx.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }
}
