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
use std::time::Duration;

use ipcheck_core::{Entry, Reasons, Source, Verdict};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{TlsCertificates, Value};
use thiserror::Error;
use tokio::sync::OnceCell;

use crate::config::RedisSettings;

/// A Redis call that gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RedisError {
    /// The deadline passed.
    #[error("timed out")]
    Timeout,
    /// Connection or command error.
    #[error("failed")]
    Failed,
    /// The reply was not what `IPCHECK` sends.
    #[error("unexpected reply")]
    Reply,
}

impl RedisError {
    /// Metric label.
    pub fn kind(self) -> &'static str {
        match self {
            RedisError::Timeout => "timeout",
            RedisError::Failed => "error",
            RedisError::Reply => "reply",
        }
    }
}

/// An entry read back with `IPCHECK GET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The entry.
    pub entry: Entry,
    /// Seconds it has left in Redis.
    pub ttl: Duration,
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

/// The Redis tier.
pub struct RedisTier {
    link: Link,
    timeout: Duration,
    ttl_secs: u64,
    display: String,
}

impl RedisTier {
    /// A lazily connecting tier (the service starts, and says it is not ready, while Redis is down).
    ///
    /// With `cluster`, `url` holds one or more seed nodes separated by commas; any one that
    /// answers is enough to learn the whole cluster. `rediss://` URLs speak TLS, verified against
    /// the system's roots or the configured CA.
    pub fn new(settings: &RedisSettings) -> Result<Self, String> {
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
            ttl_secs: settings.ttl.as_secs(),
            display,
        })
    }

    /// `host:port` for log lines (never the password).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Sends `cmd` under the deadline; in a cluster, to the primary serving `address`'s slot
    /// (or wherever redis-rs routes it when there is no address).
    async fn call(&self, cmd: redis::Cmd, address: Option<&str>) -> Result<Value, RedisError> {
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
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(RedisError::Failed),
            Err(_) => Err(RedisError::Timeout),
        }
    }

    /// `IPCHECK GET <key>`.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, RedisError> {
        let mut cmd = redis::cmd("IPCHECK");
        cmd.arg("GET").arg(key);
        parse_get(self.call(cmd, Some(key)).await?)
    }

    /// `IPCHECK SET <key> <verdict> EX <ttl> REASON <reasons> SOURCE api`; a kept manual pin is fine.
    pub async fn set(
        &self,
        key: &str,
        verdict: Verdict,
        reasons: &Reasons,
    ) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("IPCHECK");
        cmd.arg("SET")
            .arg(key)
            .arg(verdict.as_str())
            .arg("EX")
            .arg(self.ttl_secs);
        if !reasons.is_empty() {
            cmd.arg("REASON").arg(reasons.as_str());
        }
        cmd.arg("SOURCE").arg("api");
        match self.call(cmd, Some(key)).await? {
            Value::Okay | Value::Nil => Ok(()),
            Value::SimpleString(s) if s == "OK" => Ok(()),
            _ => Err(RedisError::Reply),
        }
    }

    /// `PING`, for the readiness check.
    pub async fn ping(&self) -> Result<(), RedisError> {
        self.call(redis::cmd("PING"), None).await.map(|_| ())
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

/// The fields of a GET hit, borrowed from the reply.
#[derive(Default)]
struct Fields<'a> {
    verdict: Option<&'a str>,
    reason: Option<&'a str>,
    source: Option<&'a str>,
    ttl: Option<i64>,
}

impl<'a> Fields<'a> {
    fn visit(&mut self, k: &'a Value, v: &'a Value) {
        match text(k) {
            Some("verdict") => self.verdict = text(v),
            Some("reason") => self.reason = text(v),
            Some("source") => self.source = text(v),
            Some("ttl") => self.ttl = int(v),
            _ => {}
        }
    }
}

/// Reads the GET reply: nil, or field/value pairs (a flat array in RESP2, a map in RESP3).
///
/// Runs once per Redis-tier decision, so it borrows from the reply instead of copying fields.
fn parse_get(reply: Value) -> Result<Option<Stored>, RedisError> {
    let mut fields = Fields::default();
    match &reply {
        Value::Nil => return Ok(None),
        Value::Array(items) => {
            for kv in items.chunks_exact(2) {
                if let [k, v] = kv {
                    fields.visit(k, v);
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                fields.visit(k, v);
            }
        }
        _ => return Err(RedisError::Reply),
    }
    let verdict = fields
        .verdict
        .and_then(|v| v.parse::<Verdict>().ok())
        .ok_or(RedisError::Reply)?;
    let reasons = Reasons::parse(fields.reason.unwrap_or("")).map_err(|_| RedisError::Reply)?;
    let source = Source::parse(fields.source.unwrap_or("api")).map_err(|_| RedisError::Reply)?;
    let ttl = fields.ttl.unwrap_or(0);
    Ok(Some(Stored {
        entry: Entry {
            verdict,
            reasons,
            source,
        },
        ttl: Duration::from_secs(ttl.max(0) as u64),
    }))
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
        assert_eq!(parse_get(Value::Int(1)), Err(RedisError::Reply));
        assert_eq!(
            parse_get(Value::Array(vec![bulk("verdict"), bulk("maybe")])),
            Err(RedisError::Reply)
        );
    }
}
