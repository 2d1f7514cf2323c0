//! The service's side of the queue: a cold address of an `on_miss = "allow"` policy is offered
//! here and the request is answered at once; a task of its own reads its entry in Redis in
//! batches ([`crate::lookup::cold_read`]) and adds what Redis cannot answer to the stream
//! ([`Adder`]), in the same task: no second buffer.
//!
//! Offering never waits: the buffer between the request path and the task is bounded
//! ([`BUFFER`]) and an offer that does not fit is dropped and counted (a later request for the
//! address offers it again). The adder drops repeats of one address within `enrich.dedupe`
//! in-process first ([`Recent`]), then across every instance sharing Redis with a marker key
//! (`SET NX EX`, [`super::stream::marker_cmd`]), and only then sends `XADD`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use tokio::sync::{mpsc, Semaphore};

use super::counts::Queued;
use super::settings::EnrichSettings;
use super::stream;
use crate::breaker::State as BreakerState;
use crate::cache::redis::{OpTarget, RedisError, RedisTier};
use crate::client_ip::Client;
use crate::lookup::Tiers;
use crate::metrics::Metrics;
use ipcheck_core::NormalizedIp;
use redis::Value;

/// Offers the request path may leave waiting for the task; more are dropped.
pub const BUFFER: usize = 4096;

/// Addresses [`Recent`] remembers at most before it forgets the oldest window.
const RECENT_MAX: usize = 65_536;

/// Batches (or, in a cluster, single offers) being added to the stream at once: their commands
/// share the connection, pipelined, so one slow round trip does not hold the others back (one
/// at a time added about 3,000 addresses a second on loopback: bench/enrich.sh).
const CONCURRENT_ADDS: usize = 64;

/// Offers taken from the buffer at once, read with one pipeline ([`crate::lookup::cold_read`])
/// and added with one pipeline of markers and one of `XADD`s (one server).
pub const BATCH: usize = 64;

/// Deadline of one pipeline (as an operator's call's).
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(2);

/// The queue's request-path end.
pub struct Queue {
    tx: mpsc::Sender<Client>,
    metrics: Arc<Metrics>,
    /// The buffer's other end and the stream's adder, until [`Queue::start`] hands them to the
    /// background task.
    idle: Mutex<Option<(mpsc::Receiver<Client>, Arc<Adder>)>>,
}

impl Queue {
    /// A queue whose offers go to `tx` (a test reads them there).
    pub fn new(tx: mpsc::Sender<Client>, metrics: Arc<Metrics>) -> Queue {
        Queue {
            tx,
            metrics,
            idle: Mutex::new(None),
        }
    }

    /// A queue adding to the stream in `redis`, once [`Queue::start`] has started its task.
    pub fn with_redis(
        redis: Arc<RedisTier>,
        settings: EnrichSettings,
        metrics: Arc<Metrics>,
    ) -> Queue {
        let (tx, rx) = mpsc::channel(BUFFER);
        let adder = Arc::new(Adder {
            redis,
            settings,
            metrics: Arc::clone(&metrics),
            recent: Arc::new(Mutex::new(Recent::new(settings.dedupe))),
            adding: Arc::new(Semaphore::new(CONCURRENT_ADDS)),
        });
        Queue {
            tx,
            metrics,
            idle: Mutex::new(Some((rx, adder))),
        }
    }

    /// Starts the background task (once; later calls do nothing): it reads the offers' entries
    /// in the shared tier of `tiers()` (the running configuration) and queues what that cannot
    /// answer ([`crate::lookup::cold_read`]). Needs a Tokio runtime.
    pub fn start<T: Tiers>(&self, tiers: impl Fn() -> Arc<T> + Send + 'static) {
        if let Some((rx, adder)) = lock(&self.idle).take() {
            tokio::spawn(crate::lookup::cold_read::run(tiers, rx, adder));
        }
    }

    /// Offers a cold address; never waits.
    pub fn offer(&self, client: Client) {
        if self.tx.try_send(client).is_err() {
            self.metrics.enrich.queued(Queued::Dropped);
        }
    }
}

/// Adds addresses to the stream: the in-process dedupe, then the markers and `XADD`s, up to
/// [`CONCURRENT_ADDS`] batches at once.
pub struct Adder {
    redis: Arc<RedisTier>,
    settings: EnrichSettings,
    metrics: Arc<Metrics>,
    recent: Arc<Mutex<Recent>>,
    adding: Arc<Semaphore>,
}

impl Adder {
    /// Queues `clients` (at most [`BATCH`]): waits only for room among the batches under way
    /// (while it waits further offers stay in the buffer, where a full one drops them).
    pub async fn submit(&self, clients: Vec<Client>) {
        let batch: Vec<Client> = clients
            .into_iter()
            .filter(|client| {
                let first = lock(&self.recent).first(client.key, Instant::now());
                if !first {
                    self.metrics.enrich.queued(Queued::Duplicate);
                }
                first
            })
            .collect();
        if batch.is_empty() {
            return;
        }
        // A cluster's markers live on as many slots as addresses: one call each, side by side.
        let parts: Vec<Vec<Client>> = if self.redis.is_cluster() {
            batch.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![batch]
        };
        for part in parts {
            let Ok(permit) = Arc::clone(&self.adding).acquire_owned().await else {
                return;
            };
            let (redis, metrics, recent, settings) = (
                Arc::clone(&self.redis),
                Arc::clone(&self.metrics),
                Arc::clone(&self.recent),
                self.settings,
            );
            tokio::spawn(async move {
                let outcomes = add(&redis, &settings, &part).await;
                for (client, outcome) in part.iter().zip(outcomes) {
                    if outcome == Queued::Failed {
                        lock(&recent).forget(&client.key);
                    }
                    metrics.enrich.queued(outcome);
                }
                drop(permit);
            });
        }
    }
}

/// The addresses offered within the dedupe window, so repeats cost no Redis call.
#[derive(Debug)]
pub struct Recent {
    window: Duration,
    // Keyed by the cache key itself: no text, no allocation per address.
    seen: hashbrown::HashMap<NormalizedIp, Instant>,
}

impl Recent {
    /// Remembers addresses for `window`.
    pub fn new(window: Duration) -> Recent {
        Recent {
            window,
            seen: hashbrown::HashMap::new(),
        }
    }

    /// Whether `key` is offered for the first time in the window (and remembers it if so).
    pub fn first(&mut self, key: NormalizedIp, now: Instant) -> bool {
        if let Some(at) = self.seen.get(&key) {
            if now.saturating_duration_since(*at) < self.window {
                return false;
            }
        }
        if self.seen.len() >= RECENT_MAX {
            let window = self.window;
            self.seen
                .retain(|_, at| now.saturating_duration_since(*at) < window);
            if self.seen.len() >= RECENT_MAX {
                // A flood of distinct addresses: Redis's markers still dedupe.
                self.seen.clear();
            }
        }
        self.seen.insert(key, now);
        true
    }

    /// Forgets `key`, so the next offer tries again (its queueing failed).
    pub fn forget(&mut self, key: &NormalizedIp) {
        self.seen.remove(key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The markers, then `XADD` for the offers that are their window's first; one outcome per
/// client, in order. One client goes as single calls (routed by its address in a cluster);
/// several (one server) as one pipeline of markers and one of `XADD`s.
async fn add(redis: &RedisTier, settings: &EnrichSettings, clients: &[Client]) -> Vec<Queued> {
    // An open breaker means Redis is failing the lookups already: no call, counted as failed.
    if redis.breaker().state() != BreakerState::Closed {
        return vec![Queued::Failed; clients.len()];
    }
    let prefix = redis.key_prefix();
    let firsts: Vec<Option<bool>> = match clients {
        [client] => {
            let key = client.key.canonical_text();
            let marker = stream::marker_cmd(prefix, key.as_str(), settings.dedupe);
            vec![match redis
                .operator_call(marker, OpTarget::Address(key.as_str()))
                .await
            {
                Ok(reply) => Some(reply != Value::Nil),
                Err(e) => {
                    log_failure(redis, "SET NX (the dedupe marker)", &e);
                    None
                }
            }]
        }
        _ => {
            let mut pipe = redis::pipe();
            for client in clients {
                let key = client.key.canonical_text();
                pipe.add_command(stream::marker_cmd(prefix, key.as_str(), settings.dedupe));
            }
            match redis.pipeline(&pipe, PIPELINE_TIMEOUT).await {
                Ok(Value::Array(replies)) if replies.len() == clients.len() => {
                    replies.iter().map(|r| Some(*r != Value::Nil)).collect()
                }
                Ok(other) => {
                    tracing::debug!(reply = ?other, "cannot queue cold addresses: unexpected reply to the markers");
                    vec![None; clients.len()]
                }
                Err(e) => {
                    log_failure(redis, "SET NX (the dedupe markers)", &e);
                    vec![None; clients.len()]
                }
            }
        }
    };
    let new: Vec<&Client> = clients
        .iter()
        .zip(&firsts)
        .filter(|(_, first)| **first == Some(true))
        .map(|(client, _)| client)
        .collect();
    let added = if new.is_empty() {
        true
    } else {
        let mut pipe = redis::pipe();
        for client in &new {
            pipe.add_command(stream::add_cmd(prefix, client.ip, settings.max_len));
        }
        // One slot (the stream's), so one pipeline in a cluster too.
        match redis.pipeline(&pipe, PIPELINE_TIMEOUT).await {
            Ok(_) => true,
            Err(e) => {
                log_failure(redis, "XADD", &e);
                false
            }
        }
    };
    firsts
        .into_iter()
        .map(|first| match first {
            None => Queued::Failed,
            Some(false) => Queued::Duplicate,
            Some(true) if added => Queued::Added,
            Some(true) => Queued::Failed,
        })
        .collect()
}

fn log_failure(redis: &RedisTier, step: &str, e: &RedisError) {
    if e.kind == crate::cache::redis::ErrorKind::NoPerm {
        tracing::error!(
            redis = %redis.display(),
            "cannot queue a cold address ({step}: {e}): grant the service's Redis user +set on {p}enrich:* and +xadd on {q}",
            p = redis.key_prefix(),
            q = stream::queue_key(redis.key_prefix())
        );
    } else {
        tracing::debug!(redis = %redis.display(), "cannot queue a cold address ({step}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_offer_per_window_and_a_failure_is_forgotten() {
        let t0 = Instant::now();
        let key = |ip: &str| ipcheck_core::normalize(ip, Default::default()).unwrap();
        let (one, two) = (key("192.0.2.1"), key("192.0.2.2"));
        let mut recent = Recent::new(Duration::from_secs(60));
        assert!(recent.first(one, t0));
        assert!(!recent.first(one, t0 + Duration::from_secs(59)));
        assert!(recent.first(two, t0));
        assert!(recent.first(one, t0 + Duration::from_secs(60)));
        recent.forget(&two);
        assert!(recent.first(two, t0 + Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts() {
        let (tx, mut rx) = mpsc::channel(1);
        let metrics = Arc::new(Metrics::default());
        let queue = Queue::new(tx, Arc::clone(&metrics));
        let client = crate::client_ip::parse_client("192.0.2.9", Default::default()).unwrap();
        queue.offer(client);
        queue.offer(client);
        assert_eq!(metrics.enrich.queued_count(Queued::Dropped), 1);
        assert_eq!(rx.recv().await, Some(client));
    }
}
