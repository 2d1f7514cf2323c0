//! Provider calls that run to completion whoever waits for them.
//!
//! A lookup runs inline in the request that leads its flight ([`crate::coalesce`]); when nginx
//! gives up on the subrequest, hyper drops that request's future and, with it, anything it was
//! awaiting: an in-flight provider call would be cut off after it was paid for, and its answer
//! never cached. So the provider phase runs as a task of its own, registered here per address:
//! the requests that want it await its result, the task finishes (and fills the caches) even if
//! all of them went away, and a request arriving meanwhile for the same address (a follower
//! that took over a vanished leader) joins the running call instead of paying for another.
//!
//! The spawn costs a few microseconds, which only the provider path pays; the Redis-tier path
//! stays inline (see coalesce.rs for why).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use ipcheck_core::NormalizedIp;
use tokio::sync::watch;

type Table<V> = Mutex<HashMap<NormalizedIp, watch::Receiver<Option<V>>>>;

/// The provider calls in flight, one per address.
pub struct Detached<V> {
    table: Arc<Table<V>>,
}

impl<V> Default for Detached<V> {
    fn default() -> Self {
        Detached {
            table: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

/// Takes a finished (or panicked) call out of the table.
struct Done<V> {
    table: Arc<Table<V>>,
    key: NormalizedIp,
}

impl<V> Drop for Done<V> {
    fn drop(&mut self) {
        lock(&self.table).remove(&self.key);
    }
}

fn lock<V>(
    table: &Table<V>,
) -> std::sync::MutexGuard<'_, HashMap<NormalizedIp, watch::Receiver<Option<V>>>> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl<V: Clone + Send + Sync + 'static> Detached<V> {
    /// The result of the call for `key`: joins the one running, or spawns `work` as a task of
    /// its own. `None` only if the task panicked.
    pub async fn run<F, Fut>(&self, key: NormalizedIp, work: F) -> Option<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut rx = {
            let mut table = lock(&self.table);
            match table.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    table.insert(key, rx.clone());
                    let done = Done {
                        table: Arc::clone(&self.table),
                        key,
                    };
                    let work = work();
                    tokio::spawn(async move {
                        let value = work.await;
                        // Leave the table first: the work has filled the caches already.
                        drop(done);
                        let _ = tx.send(Some(value));
                    });
                    rx
                }
            }
        };
        let value = rx.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn key() -> NormalizedIp {
        ipcheck_core::normalize("192.0.2.1", ipcheck_core::Aggregation::default())
            .expect("a valid address")
    }

    #[tokio::test]
    async fn the_call_finishes_when_its_caller_goes_away_and_a_later_caller_joins_it() {
        let calls = Arc::new(Detached::<u32>::default());
        let made = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (finished_tx, finished) = tokio::sync::oneshot::channel::<()>();
        // Polled once (a zero timeout polls before it elapses): the call starts; then its
        // caller goes away.
        let first_made = made.clone();
        let mut first = Box::pin(calls.run(key(), move || async move {
            first_made.fetch_add(1, Ordering::SeqCst);
            let _ = released.await;
            let _ = finished_tx.send(());
            7
        }));
        assert!(tokio::time::timeout(Duration::ZERO, &mut first)
            .await
            .is_err());
        drop(first);
        // A caller arriving while the call runs joins it.
        let second_made = made.clone();
        let mut second = Box::pin(calls.run(key(), move || async move {
            second_made.fetch_add(1, Ordering::SeqCst);
            8
        }));
        assert!(tokio::time::timeout(Duration::ZERO, &mut second)
            .await
            .is_err());
        let _ = release.send(());
        assert!(finished.await.is_ok(), "the abandoned call ran to its end");
        assert_eq!(second.await, Some(7));
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert!(lock(&calls.table).is_empty());
    }

    #[tokio::test]
    async fn a_panicking_call_leaves_the_table() {
        let calls = Detached::<u32>::default();
        assert_eq!(calls.run(key(), || async { panic!("bug") }).await, None);
        assert_eq!(calls.run(key(), || async { 3 }).await, Some(3));
    }
}
