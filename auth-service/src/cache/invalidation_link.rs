//! The connections that receive Redis's invalidation messages for the local tier (what they
//! mean is in [`super::invalidation`]).
//!
//! One plain connection per Redis primary (one on a single server; in a cluster one per
//! primary, since each primary only announces its own keys), on a thread of its own, because it
//! blocks on reads for as long as nothing changes. Each connection tracks itself: `CLIENT ID`,
//! then `CLIENT TRACKING on REDIRECT <own id> BCAST PREFIX <key_prefix>`, then `SUBSCRIBE
//! __redis__:invalidate` — RESP2, so no `HELLO 3` is needed, and tracking ends with the
//! connection, leaving nothing behind on the server.
//!
//! A connection that is idle for [`IDLE`] is pinged, so a silently dead peer is noticed within
//! about two of them. Any failure ends every connection of the round, marks the link down, and a
//! new round starts after a backoff (doubling up to [`MAX_BACKOFF`]); in a cluster each round
//! re-discovers the primaries, and a change of primaries (a failover, a reshard to a new node)
//! also starts a new round. Every round that subscribes clears the local tier first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, Value};

use tokio::runtime::Handle;

use super::invalidation::{Coherence, RECHECK_DELAY};
use super::Known;
use crate::app::App;
use crate::config::RedisSettings;

/// The channel Redis sends tracking messages on in RESP2.
const CHANNEL: &str = "__redis__:invalidate";
/// Connect and command deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle time after which a connection is pinged; also how often a round checks the topology.
const IDLE: Duration = Duration::from_secs(1);
/// Longest wait between two rounds.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a cluster round re-reads the primaries.
const TOPOLOGY_CHECK: Duration = Duration::from_secs(5);

/// One primary to follow.
#[derive(Clone)]
struct Target {
    info: ConnectionInfo,
    display: String,
}

/// Starts following Redis for `app`'s local tier, if it has one and Redis is configured.
pub fn spawn(app: Arc<App>) {
    let (Some(settings), Some(co)) = (app.settings.redis.clone(), app.coherence.clone()) else {
        return;
    };
    // The re-reads after a change run on the service's runtime.
    let runtime = Handle::current();
    let spawned = std::thread::Builder::new()
        .name("ipcheck-invalidation".to_owned())
        .spawn(move || supervise(&app, &co, &settings, &runtime));
    if let Err(e) = spawned {
        tracing::error!("cannot start the invalidation thread: {e}; local answers may lag Redis by up to cache.local_ttl");
    }
}

/// Rounds of connections, forever.
fn supervise(app: &Arc<App>, co: &Arc<Coherence>, settings: &RedisSettings, runtime: &Handle) {
    let mut backoff = Duration::from_millis(50);
    // In a cluster, the primaries last followed are asked too, so losing the configured seed
    // node does not lose the whole link.
    let mut known: Vec<ConnectionInfo> = Vec::new();
    loop {
        let result = seeds(settings)
            .map(|mut seeds| {
                seeds.extend(known.iter().cloned());
                seeds
            })
            .and_then(|seeds| targets(&seeds, settings.cluster))
            .and_then(|targets| {
                if settings.cluster {
                    known = targets.iter().map(|t| t.info.clone()).collect();
                }
                round(app, co, settings, targets, runtime)
            });
        let display = super::redis::display_address(&settings.url);
        match result {
            // A topology change: start over at once.
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                co.failed(&display, &e);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The configured nodes as connection settings (TLS and credentials included).
fn seeds(settings: &RedisSettings) -> Result<Vec<ConnectionInfo>, String> {
    settings
        .url
        .split(',')
        .map(|node| {
            let node = node.trim();
            let client = match &settings.tls_ca_pem {
                Some(ca) => redis::Client::build_with_tls(
                    node,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(ca.clone()),
                    },
                ),
                None => redis::Client::open(node),
            };
            client
                .map(|c| c.get_connection_info().clone())
                .map_err(|e| format!("redis.url: {e}"))
        })
        .collect()
}

fn host_port(info: &ConnectionInfo) -> String {
    info.addr().to_string()
}

/// The primaries to follow: the one server, or every primary the cluster's slot map names.
fn targets(seeds: &[ConnectionInfo], cluster: bool) -> Result<Vec<Target>, String> {
    if !cluster {
        return Ok(seeds
            .iter()
            .take(1)
            .map(|info| Target {
                info: info.clone(),
                display: host_port(info),
            })
            .collect());
    }
    let mut last_error = "no seed node".to_owned();
    for seed in seeds {
        match primaries(seed) {
            Ok(t) if !t.is_empty() => return Ok(t),
            Ok(_) => last_error = format!("{}: CLUSTER SLOTS names no primary", host_port(seed)),
            Err(e) => last_error = format!("{}: {e}", host_port(seed)),
        }
    }
    Err(last_error)
}

/// The primaries in `CLUSTER SLOTS`, sorted, each with the seed's credentials and TLS settings.
fn primaries(seed: &ConnectionInfo) -> Result<Vec<Target>, String> {
    let client = redis::Client::open(seed.clone()).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(CALL_TIMEOUT)
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let slots: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut con)
        .map_err(|e| e.to_string())?;
    let seed_host = match seed.addr() {
        ConnectionAddr::Tcp(h, _) => h.clone(),
        ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => String::new(),
    };
    let mut nodes: Vec<(String, u16)> = Vec::new();
    let Value::Array(ranges) = slots else {
        return Err("CLUSTER SLOTS: unexpected reply".to_owned());
    };
    for range in ranges {
        let Value::Array(fields) = range else {
            continue;
        };
        // [start, end, [host, port, id, ...], replicas...]
        let Some(Value::Array(primary)) = fields.get(2) else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) if !b.is_empty() => String::from_utf8_lossy(b).into_owned(),
            _ => seed_host.clone(),
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        if !nodes.contains(&(host.clone(), port)) {
            nodes.push((host, port));
        }
    }
    nodes.sort();
    Ok(nodes
        .into_iter()
        .map(|(host, port)| {
            let addr = match seed.addr().clone() {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port,
                    insecure,
                    tls_params,
                },
                _ => ConnectionAddr::Tcp(host.clone(), port),
            };
            Target {
                info: seed.clone().set_addr(addr),
                display: format!("{host}:{port}"),
            }
        })
        .collect())
}

/// One round: a connection per target until one fails (`Err`) or, in a cluster, the primaries
/// change (`Ok`).
fn round(
    app: &Arc<App>,
    co: &Arc<Coherence>,
    settings: &RedisSettings,
    targets: Vec<Target>,
    runtime: &Handle,
) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ended_tx, ended) = mpsc::channel::<Result<(), String>>();
    let (subscribed_tx, subscribed) = mpsc::channel::<()>();
    let names: Vec<String> = targets.iter().map(|t| t.display.clone()).collect();
    let names = names.join(",");
    let mut handles = Vec::new();
    for target in targets.iter().cloned() {
        let (app, co, stop) = (Arc::clone(app), Arc::clone(co), Arc::clone(&stop));
        let runtime = runtime.clone();
        let (ended_tx, subscribed_tx) = (ended_tx.clone(), subscribed_tx.clone());
        let handle = std::thread::Builder::new()
            .name("ipcheck-invalidation".to_owned())
            .spawn(move || {
                let result = follow(&target, &app, &runtime, &co, &stop, &subscribed_tx)
                    .map_err(|e| format!("{}: {e}", target.display));
                let _ = ended_tx.send(result);
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(handle);
    }
    drop((ended_tx, subscribed_tx));
    let finish = |result: Result<(), String>, handles: Vec<std::thread::JoinHandle<()>>| {
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        result
    };
    // Up once every primary is subscribed; the tier is cleared then (and by each later
    // subscription, which only happens in a new round).
    let mut pending = targets.len();
    let give_up = std::time::Instant::now() + CALL_TIMEOUT * 2;
    while pending > 0 {
        match subscribed.recv_timeout(Duration::from_millis(20)) {
            Ok(()) => pending -= 1,
            Err(_) => {
                // A connection that failed (refused, NOPERM) says so at once.
                if let Ok(result) = ended.try_recv() {
                    let why = result
                        .err()
                        .unwrap_or_else(|| "connection ended".to_owned());
                    return finish(Err(why), handles);
                }
                if std::time::Instant::now() >= give_up {
                    return finish(Err("subscribing timed out".to_owned()), handles);
                }
            }
        }
    }
    co.connected(&app.local, &names);
    let mut since_check = Duration::ZERO;
    loop {
        match ended.recv_timeout(IDLE) {
            Ok(result) => {
                return finish(
                    Err(result
                        .err()
                        .unwrap_or_else(|| "connection ended".to_owned())),
                    handles,
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return finish(Err("connection ended".to_owned()), handles)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        since_check += IDLE;
        if settings.cluster && since_check >= TOPOLOGY_CHECK {
            since_check = Duration::ZERO;
            let now = seeds(settings).and_then(|s| targets_of(&s));
            if let Ok(now) = now {
                if now != names {
                    tracing::info!(
                        before = %names,
                        now = %now,
                        "cluster primaries changed: following the new ones"
                    );
                    return finish(Ok(()), handles);
                }
            }
        }
    }
}

fn targets_of(seeds: &[ConnectionInfo]) -> Result<String, String> {
    let t = targets(seeds, true)?;
    Ok(t.iter()
        .map(|t| t.display.clone())
        .collect::<Vec<_>>()
        .join(","))
}

/// Re-reads addresses whose entries changed and keeps or drops their local copies.
async fn settle(app: Arc<App>, addresses: Vec<ipcheck_core::NormalizedIp>) {
    let (Some(redis), Some(co)) = (&app.redis, &app.coherence) else {
        return;
    };
    for ip in addresses {
        let now = match redis.get(ip.canonical_text().as_str()).await {
            Ok(Some(stored)) if stored.fresh => Some(Known::from_entry(&stored.entry)),
            _ => None,
        };
        co.settle(&app.local, &ip, now.as_ref());
    }
}

/// Follows one primary until it fails or `stop` is set.
fn follow(
    target: &Target,
    app: &Arc<App>,
    runtime: &Handle,
    co: &Coherence,
    stop: &AtomicBool,
    subscribed: &mpsc::Sender<()>,
) -> Result<(), String> {
    let e = |e: redis::RedisError| e.to_string();
    let client = redis::Client::open(target.info.clone()).map_err(e)?;
    let mut con = client
        .get_connection_with_timeout(CALL_TIMEOUT)
        .map_err(e)?;
    con.set_read_timeout(Some(CALL_TIMEOUT)).map_err(e)?;
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut con)
        .map_err(|err| format!("CLIENT ID: {err}"))?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("REDIRECT")
        .arg(id)
        .arg("BCAST")
        .arg("PREFIX")
        .arg(co.prefix())
        .query::<()>(&mut con)
        .map_err(|err| format!("CLIENT TRACKING: {err}"))?;
    let mut pubsub = con.as_pubsub();
    pubsub
        .subscribe(CHANNEL)
        .map_err(|err| format!("SUBSCRIBE {CHANNEL}: {err}"))?;
    pubsub.set_read_timeout(Some(IDLE)).map_err(e)?;
    let _ = subscribed.send(());
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        match pubsub.get_message() {
            Ok(msg) if msg.get_channel_name() == CHANNEL => {
                let recheck = match msg.get_payload::<Value>().map_err(e)? {
                    Value::Nil => co.apply(&app.local, None),
                    Value::Array(items) => {
                        let keys: Vec<Vec<u8>> = items
                            .into_iter()
                            .map(|v| match v {
                                Value::BulkString(b) => b,
                                // Not a key name: maps to no address, so the tier is cleared.
                                _ => Vec::new(),
                            })
                            .collect();
                        co.apply(&app.local, Some(&keys))
                    }
                    _ => co.apply(&app.local, None),
                };
                if !recheck.now.is_empty() {
                    runtime.spawn(settle(Arc::clone(app), recheck.now));
                }
                if !recheck.later.is_empty() {
                    let app = Arc::clone(app);
                    runtime.spawn(async move {
                        tokio::time::sleep(RECHECK_DELAY).await;
                        let now = std::time::Instant::now();
                        let held = recheck
                            .later
                            .into_iter()
                            .filter(|ip| app.local.get(ip, now).is_some())
                            .collect();
                        settle(app, held).await;
                    });
                }
            }
            Ok(_) => {}
            Err(err) if err.is_timeout() => {
                pubsub
                    .ping::<Value>()
                    .map_err(|err| format!("PING: {err}"))?;
            }
            Err(err) => return Err(err.to_string()),
        }
    }
}
