//! The Redis tier, spoken only through the `IPCHECK` command, to one server or a Redis Cluster.
//!
//! Every call has a deadline (50 ms by default): a slow or dead Redis costs at most that, and the
//! decision goes on to the provider. The connection manager reconnects in the background after
//! the server comes back, so no call ever waits for a reconnect longer than its deadline.
//!
//! In a cluster, each command goes to the primary serving the slot of its address argument,
//! which is the canonical address text: the module keeps the entry under
//! `ipcheck:{<canonical>}`, whose hash tag is exactly that text. redis-rs cannot know this by
//! itself (for a command it does not know it would hash the subcommand name), so the route is
//! given explicitly; `MOVED` and `ASK` during resharding are still followed by redis-rs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcheck_core::protocol::{self, Lifetime, ReplyValue, SetRequest};
use ipcheck_core::{Aggregation, Attributes, Entry, EntryView, Reasons, Source, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{TlsCertificates, Value};
use tokio::sync::OnceCell;

use super::redis_attributes::AttributeWrites;
pub use super::redis_error::{ErrorKind, RedisError};
use super::redis_health::{Health, Op, State};
use super::redis_lean::{self as lean, LeanMode};
use super::redis_verify::{self as verify, Expected};
use crate::breaker::{Admit, Breaker, State as BreakerState};
use crate::budget_shared::{self, Ask};
use crate::config::RedisSettings;

/// Deadline of each verification call: longer than a lookup's, so a first connection (or a
/// refused login, which redis-rs retries) has time to say what is wrong.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a verification result is reused, so `/readyz` probes do not hammer Redis.
pub const VERIFY_CACHE: Duration = Duration::from_secs(5);

/// What [`Stored::ttl`] and [`Stored::fresh_ttl`] hold for a key without expiry (an operator's
/// pin made with `PERSIST`, GET's `ttl -1`): longer than any local lifetime, yet safe to add to
/// an `Instant`.
pub const NO_EXPIRY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Where an operator's command ([`RedisTier::operator_call`]) goes in a cluster.
#[derive(Debug, Clone, Copy)]
pub enum OpTarget<'a> {
    /// The primary serving this address's (canonical text's) slot.
    Address(&'a str),
    /// One node, as `CLUSTER NODES` names it.
    Node {
        /// Its host.
        host: &'a str,
        /// Its port.
        port: u16,
    },
    /// Wherever redis-rs sends it (any node for a keyless command).
    Any,
}

/// An entry read back with `IPCHECK.LGET` (or `IPCHECK GET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The entry.
    pub entry: Entry,
    /// Seconds it has left in Redis (until gone).
    pub ttl: Duration,
    /// Within its fresh time (`fresh 1`). An entry from a module without stale windows, which
    /// does not say, is fresh until gone.
    pub fresh: bool,
    /// Seconds of fresh time left (0 when stale; `ttl` from such a module).
    pub fresh_ttl: Duration,
}

/// `host:port` of each node in a Redis URL (or comma-separated list), for log lines, never the
/// password; a node that does not parse shows as empty.
pub fn display_address(url: &str) -> String {
    url.split(',')
        .map(|node| {
            redis::Client::open(node.trim())
                .map(|c| c.get_connection_info().addr().to_string())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How the tier reaches Redis.
enum Link {
    /// One server (or a primary behind a stable address).
    Server(ConnectionManager),
    /// A Redis Cluster: connected on first use, then shared; redis-rs keeps the slot map current.
    Cluster {
        // Boxed: the client is large and the tier holds exactly one link.
        client: Box<ClusterClient>,
        connection: Arc<OnceCell<ClusterConnection>>,
    },
}

/// The shared cluster connection, connecting first if there is none yet.
async fn cluster_connection(
    client: &ClusterClient,
    cell: &Arc<OnceCell<ClusterConnection>>,
) -> redis::RedisResult<ClusterConnection> {
    if let Some(con) = cell.get() {
        return Ok(con.clone());
    }
    // Connecting learns the slot map and dials the primaries, which can take longer than one
    // call's deadline: it runs as a task of its own, so a call that gives up does not cancel it
    // and the next call finds the connection made.
    let (client, cell) = (client.clone(), Arc::clone(cell));
    let connect = tokio::spawn(async move {
        cell.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
    });
    connect.await.map_err(|_| {
        redis::RedisError::from((redis::ErrorKind::Io, "the cluster connection task ended"))
    })?
}

/// A verification's result, when it ran, and the tier's state right after.
struct Verification {
    at: Instant,
    state: State,
    result: Result<(), RedisError>,
}

/// The Redis tier.
pub struct RedisTier {
    link: Link,
    timeout: Duration,
    stale_secs: u64,
    display: String,
    expected: Expected,
    health: Health,
    /// `ipcheck_redis_duration_seconds` of the GET/SET calls.
    latency: super::redis_latency::Latency,
    /// Opens after consecutive failed GET/SET calls, so a dead Redis costs no deadline per
    /// lookup; verifications bypass it and close it when they pass.
    breaker: Breaker,
    /// The last verification; the lock also keeps checks from overlapping.
    verification: tokio::sync::Mutex<Option<Verification>>,
    /// Whether lookups read with `IPCHECK.LGET` (see [`lean`]), as the last verification found.
    read: LeanMode,
    /// Whether write-backs use `IPCHECK.LSET` (see [`lean`]), as the last verification found.
    write: LeanMode,
    /// Whether writes carry country, AS number and score, as the last verification found.
    attributes: AttributeWrites,
}

impl RedisTier {
    /// A lazily connecting tier (the service starts, and says it is not ready, while Redis is down).
    ///
    /// With `cluster`, `url` holds one or more seed nodes separated by commas; any one that
    /// answers is enough to learn the whole cluster. `rediss://` URLs speak TLS, verified against
    /// the system's roots or the configured CA.
    pub fn new(settings: &RedisSettings, aggregation: Aggregation) -> Result<Self, String> {
        let url = settings.url.as_str();
        let display = display_address(url);
        let certs = || TlsCertificates {
            client_tls: None,
            root_cert: settings.tls_ca_pem.clone(),
        };
        let link = if settings.cluster {
            let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
            let mut builder = ClusterClient::builder(nodes);
            if settings.tls_ca_pem.is_some() {
                builder = builder.certs(certs());
            }
            let client = builder
                // Few quick retries: a failed call is retried on the next request anyway.
                .retries(2)
                .min_retry_wait(20)
                .max_retry_wait(500)
                .connection_timeout(Duration::from_secs(1))
                .build()
                .map_err(|e| e.to_string())?;
            Link::Cluster {
                client: Box::new(client),
                connection: Arc::new(OnceCell::new()),
            }
        } else {
            let client = match settings.tls_ca_pem {
                Some(_) => redis::Client::build_with_tls(url, certs()),
                None => redis::Client::open(url),
            }
            .map_err(|e| e.to_string())?;
            let config = ConnectionManagerConfig::new()
                // Few quick retries: a failed reconnect is retried on the next call anyway.
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(500))
                .set_connection_timeout(Some(Duration::from_secs(1)))
                // Deadlines are ours, per call.
                .set_response_timeout(None);
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| e.to_string())?;
            Link::Server(manager)
        };
        Ok(RedisTier {
            link,
            timeout: settings.timeout,
            stale_secs: settings.stale_ttl.as_secs(),
            health: Health::new(display.clone()),
            latency: Default::default(),
            breaker: Breaker::new("redis", settings.breaker),
            display,
            expected: Expected {
                key_prefix: settings.key_prefix.clone(),
                aggregation,
                cluster: settings.cluster,
            },
            verification: tokio::sync::Mutex::new(None),
            read: LeanMode::new(&lean::READ),
            write: LeanMode::new(&lean::WRITE),
            attributes: AttributeWrites::default(),
        })
    }

    /// `host:port` for log lines (never the password).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The tier's state, error counters and log gate.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The GET/SET call latencies, for `/metrics`.
    pub fn latency(&self) -> &super::redis_latency::Latency {
        &self.latency
    }

    /// Which read the lookups use, and which write the write-backs (see [`lean`]).
    pub fn lean_modes(&self) -> [&LeanMode; 2] {
        [&self.read, &self.write]
    }

    /// The circuit breaker of the lookup calls.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// A lookup's or a write's call, past the breaker, under the tier's deadline, recorded in
    /// the tier's health, latency and breaker. Sends `lean()` while `mode` says the lean command
    /// works, else `full()`. When Redis answers that the lean command cannot be used
    /// here after all (a node whose module predates it, a grant revoked since the last
    /// verification), `mode` switches to the full command, saying why as a verification would,
    /// and `full()` goes out at once: nothing is lost, and the breaker sees one call. Also says
    /// which command answered (`true`: the lean one).
    async fn call(
        &self,
        op: Op,
        mode: &LeanMode,
        lean: impl FnOnce() -> redis::Cmd,
        full: impl FnOnce() -> redis::Cmd,
        address: Option<&str>,
    ) -> Result<(Value, bool), RedisError> {
        if self.breaker.admit() == Admit::Reject {
            return Err(RedisError::bare(ErrorKind::BreakerOpen));
        }
        let started = Instant::now();
        let (result, used_lean) = if !mode.is_lean() {
            (self.send(full(), address, self.timeout).await, false)
        } else {
            let result = self.send(lean(), address, self.timeout).await;
            if self.refused_lean(mode, &result) {
                (self.send(full(), address, self.timeout).await, false)
            } else {
                (result, true)
            }
        };
        self.latency.observe(op, started.elapsed());
        self.record(op, &result);
        self.breaker.record(result.is_ok());
        result.map(|reply| (reply, used_lean))
    }

    /// Whether a lean call's `result` is Redis refusing the lean command as unusable (see
    /// [`lean::unusable`]); if so, `mode` switches to the full command, saying why, and the
    /// caller resends in full.
    fn refused_lean(&self, mode: &LeanMode, result: &Result<Value, RedisError>) -> bool {
        let Err(e) = result else {
            return false;
        };
        let outcome = lean::unusable(mode.lean(), e);
        if outcome == lean::ProbeOutcome::Failed {
            return false;
        }
        mode.apply(&outcome, &self.display);
        true
    }

    fn record<T>(&self, op: Op, result: &Result<T, RedisError>) {
        match result {
            Ok(_) => self.health.answered(),
            Err(e) => self.health.failed(op, e),
        }
    }

    /// Sends `cmd` under `deadline`; in a cluster, to the primary serving `address`'s slot
    /// (or wherever redis-rs routes it when there is no address).
    async fn send(
        &self,
        cmd: redis::Cmd,
        address: Option<&str>,
        deadline: Duration,
    ) -> Result<Value, RedisError> {
        let send = async {
            match &self.link {
                Link::Server(manager) => {
                    let mut con = manager.clone();
                    cmd.query_async::<Value>(&mut con).await
                }
                Link::Cluster { client, connection } => {
                    let mut con = cluster_connection(client, connection).await?;
                    match address {
                        Some(a) => {
                            let route = Route::with_key(a, SlotAddr::Master);
                            let to =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                            con.route_command(cmd, to).await
                        }
                        None => cmd.query_async::<Value>(&mut con).await,
                    }
                }
            }
        };
        settle(tokio::time::timeout(deadline, send).await)
    }

    /// Whether the tier talks to a Redis Cluster (`redis.cluster`).
    pub fn is_cluster(&self) -> bool {
        self.expected.cluster
    }

    /// Sends an operator's command (`ipcheck-auth pin`, `unpin`, `pins`) to `to`, under the
    /// verification deadline; past the breaker, and without touching the tier's health, which
    /// describe the service's own lookups.
    pub async fn operator_call(
        &self,
        cmd: redis::Cmd,
        to: OpTarget<'_>,
    ) -> Result<Value, RedisError> {
        match (to, &self.link) {
            (OpTarget::Address(a), _) => self.send(cmd, Some(a), VERIFY_TIMEOUT).await,
            (OpTarget::Node { host, port }, Link::Cluster { client, connection }) => {
                let send = async {
                    let mut con = cluster_connection(client, connection).await?;
                    let to = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.to_owned(),
                        port,
                    });
                    con.route_command(cmd, to).await
                };
                settle(tokio::time::timeout(VERIFY_TIMEOUT, send).await)
            }
            (_, _) => self.send(cmd, None, VERIFY_TIMEOUT).await,
        }
    }

    /// The entry of the canonical address `key`: `IPCHECK.LGET <its key>` (the lean read), or
    /// `IPCHECK GET <key>` while verification finds `IPCHECK.LGET` unusable. Either is routed by the
    /// address, whose slot is the key's (its hash tag).
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, RedisError> {
        let (reply, lean) = self
            .call(
                Op::Get,
                &self.read,
                || self.read_cmd(key, true),
                || self.read_cmd(key, false),
                Some(key),
            )
            .await?;
        self.parse_read(lean, reply)
    }

    /// The lookups' read of the canonical address `key`: `IPCHECK.LGET <its key>` when `lean`,
    /// else `IPCHECK GET <key>`.
    fn read_cmd(&self, key: &str, lean: bool) -> redis::Cmd {
        if lean {
            lean::lean_cmd(&self.expected.key_prefix, key, self.expected.cluster)
        } else {
            let mut cmd = redis::cmd(protocol::COMMAND);
            cmd.arg(protocol::sub::GET).arg(key);
            cmd
        }
    }

    /// The entry in a reply to [`Self::read_cmd`]; a malformed reply counts against the tier's
    /// health.
    fn parse_read(&self, lean: bool, reply: Value) -> Result<Option<Stored>, RedisError> {
        let parsed = if lean {
            lean::parse_lean(&reply)
        } else {
            parse_get(reply)
        };
        if let Err(e) = &parsed {
            self.health.failed(Op::Get, e);
        }
        parsed
    }

    /// The entries of several canonical addresses, one result per address in order: one
    /// pipeline of the lookups' read (`IPCHECK.LGET`, or `GET` as [`RedisTier::get`] chooses) on one
    /// server, one call each side by side in a cluster (the keys live on as many slots). Past
    /// the breaker like a lookup, and recorded as one call: it is the background read of
    /// `on_miss = "allow"` ([`crate::lookup::cold_read`]). Its time is not observed in the
    /// lookup latency, which describes what a request waits for.
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Result<Option<Stored>, RedisError>> {
        if self.expected.cluster || keys.len() == 1 {
            return futures_util::future::join_all(keys.iter().map(|k| self.get(k))).await;
        }
        let pipe = |lean: bool| {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.add_command(self.read_cmd(key, lean));
            }
            pipe
        };
        let each = |e: RedisError| keys.iter().map(|_| Err(e.clone())).collect();
        if self.breaker.admit() == Admit::Reject {
            return each(RedisError::bare(ErrorKind::BreakerOpen));
        }
        let mut lean = self.read.is_lean();
        let mut result = self.pipeline(&pipe(lean), self.timeout).await;
        // As in `call`: a lean read refused as unusable goes out again in full at once.
        if lean && self.refused_lean(&self.read, &result) {
            lean = false;
            result = self.pipeline(&pipe(false), self.timeout).await;
        }
        self.record(Op::Get, &result);
        self.breaker.record(result.is_ok());
        let replies = match result {
            Ok(Value::Array(replies)) if replies.len() == keys.len() => replies,
            Ok(_) => return each(RedisError::bare(ErrorKind::Reply)),
            Err(e) => return each(e),
        };
        replies
            .into_iter()
            .map(|reply| self.parse_read(lean, reply))
            .collect()
    }

    /// Writes an entry, source `api`, fresh for `fresh` then stale for `stale`; a kept manual pin
    /// is fine. With `IPCHECK.LSET` (the lean write, once verification proves it, see [`lean`]),
    /// else `IPCHECK SET <key> <verdict> EX <fresh> [STALE <stale>] [REASON <reasons>] SOURCE
    /// api [COUNTRY <cc>] [ASN <n>] [SCORE <n>]`, built by core's protocol: STALE is left out
    /// when it is 0, so `redis.stale_ttl = "0s"` works with a module that predates stale
    /// windows; the attributes are left out when unknown, and while verification finds a module
    /// that predates them (see [`super::redis_attributes`]).
    pub async fn set(
        &self,
        key: &str,
        verdict: Verdict,
        reasons: &Reasons,
        attributes: Attributes,
        fresh: Duration,
        stale: Duration,
    ) -> Result<(), RedisError> {
        let lean = || {
            let entry = EntryView {
                verdict,
                reasons: reasons.as_str(),
                source: Source::API,
                stale_secs: u32::try_from(stale.as_secs()).unwrap_or(u32::MAX),
                attributes,
            };
            lean::lean_write_cmd(
                &self.expected.key_prefix,
                key,
                self.expected.cluster,
                &entry,
                fresh.as_secs(),
            )
        };
        let full = || {
            let request = SetRequest {
                lifetime: Lifetime::Seconds(fresh.as_secs()),
                stale_secs: stale.as_secs(),
                reasons: reasons.as_str(),
                source: "api",
                attributes: self.attributes.sent(attributes),
                ..SetRequest::new(key, verdict)
            };
            let mut cmd = redis::cmd(protocol::COMMAND);
            cmd.arg(request.args());
            cmd
        };
        let (reply, _) = self
            .call(Op::Set, &self.write, lean, full, Some(key))
            .await?;
        match reply {
            Value::Okay | Value::Nil => Ok(()),
            Value::SimpleString(s) if s == "OK" => Ok(()),
            _ => {
                let e = RedisError::bare(ErrorKind::Reply);
                self.health.failed(Op::Set, &e);
                Err(e)
            }
        }
    }

    /// `SET <key_prefix>refresh:{<address>} 1 NX PX <hold>`: whether this instance may refresh
    /// `address` ([`crate::lookup::refresh`]). The hash tag is the address, so in a cluster the lock
    /// lives on the node that serves the entry. Not sent while the breaker is not closed; its
    /// failures change neither the tier's state nor its breaker (the caller decides what they
    /// mean), and it needs `+set` on the key, which the lookups do not.
    pub async fn refresh_lock(&self, address: &str, hold: Duration) -> Result<bool, RedisError> {
        if self.breaker.state() != BreakerState::Closed {
            return Err(RedisError::bare(ErrorKind::BreakerOpen));
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(crate::lookup::refresh::lock_key(self.key_prefix(), address))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(hold.as_millis()).unwrap_or(u64::MAX));
        match self.send(cmd, Some(address), self.timeout).await? {
            Value::Okay => Ok(true),
            Value::SimpleString(s) if s == "OK" => Ok(true),
            Value::Nil => Ok(false),
            _ => Err(RedisError::bare(ErrorKind::Reply)),
        }
    }

    /// Sends `pipe` (commands on keys of one slot, which routes it in a cluster) under
    /// `deadline`: the events stream's appends ([`crate::events`]). Past the breaker and without
    /// touching the tier's health or breaker, which describe the lookups; the caller counts its
    /// failures and skips it while the breaker is open.
    pub async fn pipeline(
        &self,
        pipe: &redis::Pipeline,
        deadline: Duration,
    ) -> Result<Value, RedisError> {
        let send = async {
            match &self.link {
                Link::Server(manager) => {
                    let mut con = manager.clone();
                    pipe.query_async::<Value>(&mut con).await
                }
                Link::Cluster { client, connection } => {
                    let mut con = cluster_connection(client, connection).await?;
                    pipe.query_async::<Value>(&mut con).await
                }
            }
        };
        settle(tokio::time::timeout(deadline, send).await)
    }

    /// The key prefix the module uses (`redis.key_prefix`).
    pub fn key_prefix(&self) -> &str {
        &self.expected.key_prefix
    }

    /// Asks the provider budget shared through Redis ([`budget_shared`]): the script's reply.
    /// Not asked while the breaker is not closed. Its failures are counted (`op="budget"`) but
    /// change neither the tier's state nor its breaker: its permissions (`+eval +incr +expire`)
    /// are not the lookups', and the caller falls back to the instance's own budget.
    pub async fn shared_budget(&self, ask: &Ask) -> Result<i64, RedisError> {
        if self.breaker.state() != BreakerState::Closed {
            return Err(RedisError::bare(ErrorKind::BreakerOpen));
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(budget_shared::SCRIPT)
            .arg(2)
            .arg(&ask.keys[0])
            .arg(&ask.keys[1])
            .arg(&ask.args[..]);
        let result = self
            .send(cmd, Some(&ask.keys[0]), self.timeout)
            .await
            .and_then(|reply| int(&reply).ok_or_else(|| RedisError::bare(ErrorKind::Reply)));
        if let Err(e) = &result {
            self.health.count(Op::Budget, e);
        }
        result
    }

    /// Whether Redis works as the service needs (see [`verify`]). A result is reused for
    /// [`VERIFY_CACHE`] unless the tier's state changed meanwhile (Redis went down or came
    /// back), so `/readyz` probes neither hammer Redis nor lag behind it. The result also sets
    /// the tier's state.
    pub async fn verified(&self) -> Result<(), RedisError> {
        let mut last = self.verification.lock().await;
        if let Some(v) = last.as_ref() {
            if v.at.elapsed() < VERIFY_CACHE && v.state == self.health.state() {
                return v.result.clone();
            }
        }
        let result = self.verify().await;
        if let Err(e) = &result {
            self.health.failed(Op::Verify, e);
        }
        // The breaker's other way back: a passing verification (watch_redis runs one every few
        // seconds while the tier is not ok) closes it even when no lookup probes.
        self.breaker.record(result.is_ok());
        self.health.verified(result.as_ref().map(|_| ()));
        *last = Some(Verification {
            at: Instant::now(),
            state: self.health.state(),
            result: result.clone(),
        });
        result
    }

    /// A lean command's probe (see [`lean::Lean`]): its answer sets `mode`; any failure that
    /// does not say the lean command is unusable fails the verification.
    async fn probe_lean(&self, mode: &LeanMode) -> Result<(), RedisError> {
        let lean = mode.lean();
        let prefix = &self.expected.key_prefix;
        let answer = self
            .send(
                (lean.probe)(prefix, verify::PROBE_ADDRESS, self.expected.cluster),
                Some(verify::PROBE_ADDRESS),
                VERIFY_TIMEOUT,
            )
            .await;
        let outcome = (lean.sort)(answer.as_ref());
        if outcome == lean::ProbeOutcome::Failed {
            let e = answer.err().unwrap_or_else(|| {
                verify::misconfigured(ErrorKind::Reply, "unexpected reply".to_owned())
            });
            let step = format!("{} of {}", lean.command, verify::PROBE_ADDRESS);
            return Err(verify::explain(&step, &e, prefix));
        }
        mode.apply(&outcome, &self.display);
        Ok(())
    }

    /// One verification, uncached.
    async fn verify(&self) -> Result<(), RedisError> {
        let prefix = &self.expected.key_prefix;
        let probe = |args: &[&str]| {
            let mut cmd = redis::cmd(protocol::COMMAND);
            cmd.arg(args);
            cmd
        };
        let step = format!("IPCHECK GET {}", verify::PROBE_ADDRESS);
        self.send(
            probe(&[protocol::sub::GET, verify::PROBE_ADDRESS]),
            Some(verify::PROBE_ADDRESS),
            VERIFY_TIMEOUT,
        )
        .await
        .map_err(|e| verify::explain(&step, &e, prefix))?;
        self.probe_lean(&self.read).await?;
        let step = format!("IPCHECK SET {}", verify::PROBE_ADDRESS);
        let answer = self
            .send(
                probe(&verify::SET_PROBE),
                Some(verify::PROBE_ADDRESS),
                VERIFY_TIMEOUT,
            )
            .await;
        match verify::set_probe_outcome(answer.as_ref().map(|_| ()), self.stale_secs > 0) {
            Ok(knows_attributes) => self.attributes.apply(knows_attributes, &self.display),
            Err(Some(e)) => return Err(e),
            // A refusal that is not the module's (NOPERM, a read-only replica, ...).
            Err(None) => {
                let e = answer.err().unwrap_or_else(|| {
                    verify::misconfigured(ErrorKind::Reply, "no answer".to_owned())
                });
                return Err(verify::explain(&step, &e, prefix));
            }
        }
        // After the SET probe, so a user who may not write at all is told that first.
        self.probe_lean(&self.write).await?;
        for probe_spec in verify::KEY_PROBES {
            let address = probe_spec.0;
            let step = format!("IPCHECK KEY {address}");
            let reply = match self
                .send(
                    probe(&[protocol::sub::KEY, address]),
                    Some(address),
                    VERIFY_TIMEOUT,
                )
                .await
            {
                Ok(reply) => reply,
                Err(e) if e.kind == ErrorKind::NoPerm => {
                    tracing::debug!(redis = %self.display, "{step}: not permitted, so the module's prefixes are not checked (grant +ipcheck|key to check them)");
                    return Ok(());
                }
                Err(e) => return Err(verify::explain(&step, &e, prefix)),
            };
            let Some(key) = text(&reply) else {
                return Err(RedisError {
                    kind: ErrorKind::Reply,
                    detail: format!("{step}: unexpected reply {reply:?}"),
                });
            };
            verify::compare_key(&self.expected, probe_spec, key)?;
        }
        Ok(())
    }
}

/// A call's outcome under its deadline, as the tier reports it.
fn settle(
    outcome: Result<redis::RedisResult<Value>, tokio::time::error::Elapsed>,
) -> Result<Value, RedisError> {
    match outcome {
        // A cluster connection hands a server's error reply back as a value.
        Ok(Ok(v)) => v.extract_error().map_err(|e| RedisError::from(&e)),
        Ok(Err(e)) => Err(RedisError::from(&e)),
        Err(_) => Err(RedisError::bare(ErrorKind::Timeout)),
    }
}

/// A reply element as text, without copying (`IPCHECK` replies are ASCII).
fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A reply element as an integer (RESP integer, or its text).
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other)?.parse().ok(),
    }
}

/// A reply element as core's protocol parser takes it.
fn reply_value(v: &Value) -> ReplyValue<'_> {
    match v {
        Value::BulkString(b) => ReplyValue::Text(b),
        Value::SimpleString(s) => ReplyValue::Text(s.as_bytes()),
        Value::Int(n) => ReplyValue::Int(*n),
        _ => ReplyValue::Other,
    }
}

/// Reads the GET reply: nil, or field/value pairs (a flat array in RESP2, a map in RESP3), with
/// core's protocol parser (which knows what older modules leave out).
pub(crate) fn parse_get(reply: Value) -> Result<Option<Stored>, RedisError> {
    let bad = |e: protocol::ReplyError| RedisError {
        kind: ErrorKind::Reply,
        detail: e.to_string(),
    };
    let hit = match &reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => protocol::parse_get(
            items
                .chunks_exact(2)
                .map(|kv| (reply_value(&kv[0]), reply_value(&kv[1]))),
        ),
        Value::Map(items) => {
            protocol::parse_get(items.iter().map(|(k, v)| (reply_value(k), reply_value(v))))
        }
        _ => return Err(RedisError::bare(ErrorKind::Reply)),
    }
    .map_err(bad)?;
    // -1: a key without expiry (a `PERSIST` pin).
    let secs = |s: i64| u64::try_from(s).map_or(NO_EXPIRY, Duration::from_secs);
    Ok(Some(Stored {
        entry: hit.to_entry().map_err(bad)?,
        ttl: secs(hit.ttl_secs),
        fresh: hit.freshness.fresh,
        fresh_ttl: secs(hit.freshness.fresh_ttl_secs),
    }))
}

/// The lookup's view of Redis.
impl crate::lookup::SharedTier for RedisTier {
    async fn get(&self, key: &str) -> Result<Option<Stored>, RedisError> {
        RedisTier::get(self, key).await
    }

    async fn get_many(&self, keys: &[&str]) -> Vec<Result<Option<Stored>, RedisError>> {
        RedisTier::get_many(self, keys).await
    }

    fn failing(&self) -> bool {
        self.breaker.state() != BreakerState::Closed
    }

    async fn set(
        &self,
        key: &str,
        verdict: Verdict,
        reasons: &Reasons,
        attributes: Attributes,
        fresh: Duration,
        stale: Duration,
    ) -> Result<(), RedisError> {
        RedisTier::set(self, key, verdict, reasons, attributes, fresh, stale).await
    }

    async fn refresh_lock(&self, key: &str, hold: Duration) -> Result<bool, RedisError> {
        RedisTier::refresh_lock(self, key, hold).await
    }

    fn display(&self) -> &str {
        RedisTier::display(self)
    }

    fn key_prefix(&self) -> &str {
        RedisTier::key_prefix(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn get_reply() {
        assert_eq!(parse_get(Value::Nil), Ok(None));
        let reply = Value::Array(vec![
            bulk("verdict"),
            bulk("block"),
            bulk("reason"),
            bulk("vpn,tor"),
            bulk("source"),
            bulk("manual"),
            bulk("ttl"),
            Value::Int(42),
            bulk("key"),
            bulk("ipcheck:192.0.2.1"),
        ]);
        let stored = parse_get(reply).unwrap().unwrap();
        assert_eq!(stored.entry.verdict, Verdict::Block);
        assert!(stored.entry.source.is_manual());
        assert_eq!(stored.entry.reasons.as_str(), "vpn,tor");
        assert_eq!(stored.ttl, Duration::from_secs(42));
        // A module without stale windows: fresh until gone.
        assert!(stored.fresh);
        assert_eq!(stored.fresh_ttl, Duration::from_secs(42));
        let stale = Value::Array(vec![
            bulk("verdict"),
            bulk("block"),
            bulk("ttl"),
            Value::Int(600),
            bulk("fresh"),
            Value::Int(0),
            bulk("fresh_ttl"),
            Value::Int(0),
        ]);
        let stored = parse_get(stale).unwrap().unwrap();
        assert!(!stored.fresh);
        assert_eq!(
            (stored.ttl, stored.fresh_ttl),
            (Duration::from_secs(600), Duration::ZERO)
        );
        let pinned = Value::Array(vec![
            bulk("verdict"),
            bulk("block"),
            bulk("source"),
            bulk("manual"),
            bulk("ttl"),
            Value::Int(-1),
            bulk("fresh"),
            Value::Int(1),
            bulk("fresh_ttl"),
            Value::Int(-1),
        ]);
        let stored = parse_get(pinned).unwrap().unwrap();
        assert!(stored.fresh);
        assert_eq!((stored.ttl, stored.fresh_ttl), (NO_EXPIRY, NO_EXPIRY));
        let reply_error = |r: Result<Option<Stored>, RedisError>| r.map_err(|e| e.kind);
        assert_eq!(reply_error(parse_get(Value::Int(1))), Err(ErrorKind::Reply));
        assert_eq!(
            reply_error(parse_get(Value::Array(vec![
                bulk("verdict"),
                bulk("maybe")
            ]))),
            Err(ErrorKind::Reply)
        );
        // Attributes, in a RESP3 map too.
        let facts = Value::Map(vec![
            (bulk("verdict"), bulk("block")),
            (bulk("ttl"), Value::Int(60)),
            (bulk("country"), bulk("US")),
            (bulk("asn"), bulk("13335")),
            (bulk("score"), bulk("")),
        ]);
        let stored = parse_get(facts).unwrap().unwrap();
        assert_eq!(stored.entry.attributes.asn.map(|a| a.get()), Some(13335));
        assert_eq!(
            stored.entry.attributes.country.map(|c| c.to_string()),
            Some("US".to_owned())
        );
        assert_eq!(stored.entry.attributes.score, None);
    }
}
