//! `ipcheck-auth worker`: reads the enrichment queue as one consumer of the group
//! [`stream::GROUP`] and turns each cold address into facts in Redis.
//!
//! For each entry: an address Redis already holds fresh (or pinned) is acknowledged without a
//! provider call, which keeps "one write per address" true when an entry is delivered twice;
//! otherwise the provider is asked through the same breaker and budget as the inline path (the
//! service's own [`crate::app::App`] built from the same configuration, so a shared budget is
//! shared with the service instances too), the facts are written with
//! [`crate::lookup::ask::write_back`] (the inline write-back), and only then is the entry
//! acknowledged. Over the budget's rate the worker waits and asks again; with no answer
//! otherwise the entry is acknowledged and counted (a later request queues the address again).
//! A worker that dies leaves its entries pending; another claims them with `XAUTOCLAIM` once
//! they have been idle for `enrich.claim_idle`, while a live worker keeps resetting the idle
//! time of the entries it is still looking up ([`stream::touch_cmd`]). SIGTERM stops reading and
//! lets the lookups under way finish and be acknowledged.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::counts::Processed;
use super::stream::{self, Delivered, Read};
use crate::app::App;
use crate::budget::Limit;
use crate::cache::redis::{ErrorKind, OpTarget, RedisTier};
use crate::client_ip::parse_client;
use crate::listen::Listen;
use crate::lookup::lifetimes::RedisHit;
use crate::lookup::{FactSource, Tiers};
use crate::provider::gate::NoAnswer;

/// How long one `XREADGROUP` waits for a new entry while nothing is under way (and so how soon
/// SIGTERM is noticed).
const BLOCK: Duration = Duration::from_secs(1);
/// How long it waits while lookups are under way, whose ends are acknowledged between reads.
const BUSY_BLOCK: Duration = Duration::from_millis(10);
/// The pause before asking again after the budget's rate refused a call.
const RATE_PAUSE: Duration = Duration::from_millis(50);
/// The pause after Redis failed a queue command.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The shortest deadline of the worker's `IPCHECK` calls: `redis.timeout` (50 ms by default)
/// bounds the service's response time, which a worker has none of, and a worker whose reads
/// time out leaves its entries pending instead of writing them.
const MIN_REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The command line's options.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// `--consumer`: this worker's name in the group (default `<hostname>-<pid>`).
    pub consumer: Option<String>,
    /// `--metrics-listen`: where `/metrics` is served (None: `metrics.listen`; Some(None): off).
    pub metrics_listen: Option<Option<Listen>>,
}

/// Runs a worker until SIGTERM/SIGINT.
pub fn run(config_path: Option<&Path>, options: Options) -> ExitCode {
    let mut settings = match crate::config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if settings.redis.is_none() || settings.provider.is_none() {
        eprintln!(
            "error: {}: the worker reads the queue in Redis and asks the provider: configure [redis] and [provider]",
            settings.origin
        );
        return ExitCode::FAILURE;
    }
    if let Some(listen) = &options.metrics_listen {
        settings.metrics_listen = listen.clone();
    }
    crate::init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let consumer = options.consumer.unwrap_or_else(default_consumer);
    match runtime.block_on(serve(settings, consumer)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{}-{}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}

/// What one worker holds.
struct Worker {
    app: Arc<App>,
    /// Its own connection for the blocking reads, so the lookups' calls never queue behind one.
    reader: RedisTier,
    consumer: String,
    batch: usize,
    claim_idle: Duration,
}

async fn serve(mut settings: crate::config::Settings, consumer: String) -> anyhow::Result<()> {
    if let Some(redis) = settings.redis.as_mut() {
        redis.timeout = redis.timeout.max(MIN_REDIS_TIMEOUT);
    }
    let key = match &settings.provider {
        Some(spec) => spec
            .api_key()
            .with_context(|| format!("{}: provider enabled but no API key", settings.origin))?,
        None => None,
    };
    let redis_settings = settings.redis.clone().context("the worker needs [redis]")?;
    let reader = RedisTier::new(&redis_settings, settings.aggregation)
        .map_err(|e| anyhow::anyhow!("{}: key `redis.url`: {e}", settings.origin))?;
    let metrics_listen = settings.metrics_listen.clone();
    let enrich = settings.enrich;
    let app = Arc::new(App::new(settings, key)?);
    app.metrics.enrich.worker_started();
    let redis = app.redis.clone().context("the worker needs [redis]")?;
    if let Err(e) = redis.verified().await {
        tracing::error!(redis = %redis.display(), "Redis is not usable yet ({e}); retrying");
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        let _ = stop.send(true);
    });
    if let Some(addr) = &metrics_listen {
        let bound = crate::listen::bind(addr).await?;
        let current: crate::reload::Current = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&app)));
        let mut until = stopped.clone();
        tokio::spawn(async move {
            let _ =
                crate::listen::serve(bound, crate::routes::metrics_router(current), async move {
                    let _ = until.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    let worker = Worker {
        app,
        reader,
        consumer,
        batch: enrich.batch,
        claim_idle: enrich.claim_idle,
    };
    tracing::info!(
        "ipcheck-auth {} worker {} reading {} as group {} (batch {}, claim_idle {}, metrics: {})",
        env!("CARGO_PKG_VERSION"),
        worker.consumer,
        stream::queue_key(redis.key_prefix()),
        stream::GROUP,
        worker.batch,
        crate::duration::display(worker.claim_idle),
        metrics_listen.map_or_else(|| "off".to_owned(), |l| l.to_string())
    );
    worker.run(stopped).await;
    tracing::info!("stopped");
    Ok(())
}

/// The entries this worker is looking up, each a task, and their ids.
#[derive(Default)]
struct InFlight {
    tasks: JoinSet<(String, Processed)>,
    holding: HashSet<String>,
}

impl Worker {
    fn prefix(&self) -> &str {
        self.reader.key_prefix()
    }

    /// A queue command on the reading connection (reads, claims, the group).
    async fn call(&self, cmd: redis::Cmd) -> Result<redis::Value, crate::cache::redis::RedisError> {
        self.reader
            .operator_call(cmd, OpTarget::Address(stream::ROUTE))
            .await
    }

    /// A queue command that must not wait behind a blocked read (`XACK`, the touch): on the
    /// connection the lookups use.
    async fn side_call(
        &self,
        cmd: redis::Cmd,
    ) -> Result<redis::Value, crate::cache::redis::RedisError> {
        match self.app.redis.as_deref() {
            Some(redis) => {
                redis
                    .operator_call(cmd, OpTarget::Address(stream::ROUTE))
                    .await
            }
            None => self.call(cmd).await,
        }
    }

    /// Reads and looks up entries until stopped, `batch` at a time at most: a finished lookup
    /// makes room for the next entry at once, without waiting for the rest of its batch.
    async fn run(&self, stopped: watch::Receiver<bool>) {
        self.ensure_group(&stopped).await;
        // What this consumer name left unacknowledged in an earlier life.
        let mut read = Read::OwnPending;
        let mut last_claim = Instant::now();
        let mut last_touch = Instant::now();
        let mut work = InFlight::default();
        loop {
            while let Some(done) = work.tasks.try_join_next() {
                self.finish(&mut work, done).await;
            }
            if last_touch.elapsed() >= self.claim_idle / 3 {
                last_touch = Instant::now();
                self.touch(&work).await;
            }
            if *stopped.borrow() {
                // Stopping: no more reads; the lookups under way finish and are acknowledged.
                if work.tasks.is_empty() {
                    return;
                }
                self.wait_one(&mut work).await;
                continue;
            }
            if last_claim.elapsed() >= self.claim_idle / 2 {
                last_claim = Instant::now();
                self.claim(&mut work, &stopped).await;
                self.backlog().await;
            }
            let room = self.batch.saturating_sub(work.tasks.len());
            if room == 0 {
                self.wait_one(&mut work).await;
                continue;
            }
            // Idle, a read may wait for new entries; busy, it only glances, so finished lookups
            // are acknowledged promptly.
            let read_now = match (read, work.tasks.is_empty()) {
                (Read::New(_), false) => Read::New(BUSY_BLOCK),
                (r, _) => r,
            };
            let cmd = stream::read_cmd(self.prefix(), &self.consumer, room, read_now);
            match self.call(cmd).await {
                Ok(reply) => {
                    // Once: more of our own pending entries than there was room for are
                    // claimed back after claim_idle, like anybody's.
                    read = Read::New(BLOCK);
                    self.start(&mut work, stream::parse_read(&reply), &stopped);
                }
                // The stream or the group was deleted under us: made again.
                Err(e) if e.detail.contains("NOGROUP") => self.ensure_group(&stopped).await,
                Err(e) => {
                    tracing::warn!(redis = %self.reader.display(), "XREADGROUP failed: {e}");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Creates the group (and the stream) unless it exists; BUSYGROUP says another worker
    /// made it. Retries until it succeeds or the worker is stopped.
    async fn ensure_group(&self, stopped: &watch::Receiver<bool>) {
        while !*stopped.borrow() {
            match self.call(stream::create_group_cmd(self.prefix())).await {
                Ok(_) => return,
                Err(e) if e.detail.contains("BUSYGROUP") => return,
                Err(e) => {
                    tracing::error!(
                        "cannot create the consumer group {} on {}: {e}",
                        stream::GROUP,
                        stream::queue_key(self.prefix())
                    );
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }

    /// Takes over entries idle longer than `claim_idle` (as many as there is room for), and
    /// starts their lookups.
    async fn claim(&self, work: &mut InFlight, stopped: &watch::Receiver<bool>) {
        let mut cursor = "0-0".to_owned();
        loop {
            let room = self.batch.saturating_sub(work.tasks.len());
            if room == 0 {
                return;
            }
            let cmd = stream::claim_cmd(
                self.prefix(),
                &self.consumer,
                self.claim_idle,
                &cursor,
                room,
            );
            let (next, entries) = match self.call(cmd).await {
                Ok(reply) => stream::parse_claim(&reply),
                Err(e) => {
                    tracing::warn!(redis = %self.reader.display(), "XAUTOCLAIM failed: {e}");
                    return;
                }
            };
            // An entry of ours whose touch failed may come back: it is already under way.
            let entries: Vec<Delivered> = entries
                .into_iter()
                .filter(|e| !work.holding.contains(&e.id))
                .collect();
            if !entries.is_empty() {
                self.app.metrics.enrich.claimed(entries.len() as u64);
                tracing::info!(consumer = %self.consumer, "claimed {} entries idle for {} or more", entries.len(), crate::duration::display(self.claim_idle));
            }
            self.start(work, entries, stopped);
            if next == "0-0" {
                return;
            }
            cursor = next;
        }
    }

    /// `ipcheck_enrich_pending` and `ipcheck_enrich_lag`.
    async fn backlog(&self) {
        if let Ok(reply) = self.call(stream::groups_cmd(self.prefix())).await {
            if let Some((pending, lag)) = stream::parse_backlog(&reply) {
                self.app.metrics.enrich.backlog(pending, lag);
            }
        }
    }

    /// Starts one lookup task per entry not already under way.
    fn start(&self, work: &mut InFlight, entries: Vec<Delivered>, stopped: &watch::Receiver<bool>) {
        for entry in entries {
            if !work.holding.insert(entry.id.clone()) {
                continue;
            }
            let app = Arc::clone(&self.app);
            let stopped = stopped.clone();
            work.tasks.spawn(async move {
                let outcome = match entry.ip {
                    Some(ip) => process(&app, ip, &stopped).await,
                    None => Processed::Malformed,
                };
                (entry.id, outcome)
            });
        }
    }

    /// Waits for one lookup to finish (touching the others meanwhile), and finishes it.
    async fn wait_one(&self, work: &mut InFlight) {
        let every = self.claim_idle / 3;
        loop {
            tokio::select! {
                done = work.tasks.join_next() => {
                    if let Some(done) = done {
                        self.finish(work, done).await;
                    }
                    return;
                }
                _ = tokio::time::sleep(every) => self.touch(work).await,
            }
        }
    }

    /// Counts a finished lookup and acknowledges its entry when its outcome allows.
    async fn finish(
        &self,
        work: &mut InFlight,
        done: Result<(String, Processed), tokio::task::JoinError>,
    ) {
        // A lookup task that panicked leaves its entry pending, to be claimed again.
        let Ok((id, outcome)) = done else { return };
        work.holding.remove(&id);
        self.app.metrics.enrich.processed(outcome);
        if outcome != Processed::Error {
            if let Err(e) = self.side_call(stream::ack_cmd(self.prefix(), &id)).await {
                tracing::warn!(id = %id, "XACK failed ({e}); the entry will be claimed again and found fresh");
            }
        }
    }

    /// Resets the idle time of the entries under way (see [`stream::touch_cmd`]), so that
    /// `claim_idle` only has to outlast a dead worker, not a slow lookup.
    async fn touch(&self, work: &InFlight) {
        if work.holding.is_empty() {
            return;
        }
        let cmd = stream::touch_cmd(
            self.prefix(),
            &self.consumer,
            work.holding.iter().map(String::as_str),
        );
        if let Err(e) = self.side_call(cmd).await {
            tracing::warn!(
                "XCLAIM of the entries under way failed ({e}); another worker may claim them"
            );
        }
    }
}

/// One address: fresh already, or asked and written.
async fn process(app: &Arc<App>, ip: IpAddr, stopped: &watch::Receiver<bool>) -> Processed {
    let Some(client) = parse_client(&ip.to_string(), app.settings.aggregation) else {
        return Processed::Malformed;
    };
    let (Some(redis), Some(source)) = (app.redis.as_deref(), app.source()) else {
        return Processed::Error;
    };
    let key = client.key.canonical_text();
    match redis.get(key.as_str()).await {
        Ok(Some(stored)) => {
            if let RedisHit::Use { .. } = app.lifetimes().redis_hit(&stored) {
                return Processed::Fresh;
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(key = %key, error = %e, "IPCHECK GET failed; the entry stays pending");
            return Processed::Error;
        }
    }
    let facts = loop {
        match source.ask(client.ip).await {
            Ok(facts) => break facts,
            Err(NoAnswer::OverBudget(Limit::Rate)) if !*stopped.borrow() => {
                tokio::time::sleep(RATE_PAUSE).await;
            }
            Err(NoAnswer::OverBudget(Limit::Rate)) => return Processed::Error,
            Err(why) => {
                tracing::debug!(key = %key, reason = %why, "no provider answer; entry acknowledged");
                return Processed::NoAnswer;
            }
        }
    };
    match crate::lookup::ask::write_back(&**app, redis, key.as_str(), facts).await {
        Ok(()) => Processed::Written,
        Err(e) => {
            if e.kind == ErrorKind::NoPerm {
                tracing::error!(redis = %redis.display(), "the write-back was refused ({e}): grant the worker's Redis user +ipcheck.lset and +ipcheck|set");
            } else {
                tracing::debug!(key = %key, error = %e, "the write-back failed; the entry stays pending");
            }
            Processed::Error
        }
    }
}
