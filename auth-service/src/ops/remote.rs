//! The Redis side of the operator commands, through the service's own Redis tier (same URL,
//! credentials, TLS and cluster settings), always by the `IPCHECK` command except the key scan.

use ipcheck_core::protocol::{self, SetRequest};
use ipcheck_core::{normalize, Aggregation, NormalizedIp, Source};
use redis::Value;

use super::listing::{self, Pin};
use super::request::{Lifetime, PinRequest};
use super::OpsError;
use crate::cache::redis::{parse_get, ErrorKind, OpTarget, RedisError, RedisTier, Stored};
use crate::cache::redis_verify;

/// Keys asked per `SCAN` step.
const SCAN_COUNT: u64 = 1000;

/// A failed call of `step`, explained: a missing permission names `grant`.
fn explain(tier: &RedisTier, step: &str, grant: &str, e: &RedisError) -> OpsError {
    let e = match e.kind {
        ErrorKind::NoPerm => RedisError {
            kind: e.kind,
            detail: format!("the Redis user may not run {step}: grant {grant} ({e})"),
        },
        ErrorKind::Refused | ErrorKind::Timeout => RedisError {
            kind: e.kind,
            detail: format!(
                "Redis at {} gave no answer to {step}: is it running, and is redis.url right? ({e})",
                tier.display()
            ),
        },
        _ => redis_verify::explain(step, e, tier.key_prefix()),
    };
    OpsError::Redis(e)
}

/// A reply of the wrong shape.
fn unexpected(e: redis::ParsingError) -> RedisError {
    RedisError {
        kind: ErrorKind::Reply,
        detail: e.to_string(),
    }
}

/// `IPCHECK GET <address>`.
pub async fn get(tier: &RedisTier, address: &str) -> Result<Option<Stored>, OpsError> {
    let step = format!("IPCHECK GET {address}");
    let grant = format!("+ipcheck|get and %R~{}*", tier.key_prefix());
    let mut cmd = redis::cmd(protocol::COMMAND);
    cmd.arg(protocol::sub::GET).arg(address);
    let reply = tier
        .operator_call(cmd, OpTarget::Address(address))
        .await
        .map_err(|e| explain(tier, &step, &grant, &e))?;
    parse_get(reply).map_err(|e| explain(tier, &step, &grant, &e))
}

/// `IPCHECK SET <address> <verdict> SOURCE manual [REASON ..] (EX <secs> | PERSIST)
/// [COUNTRY ..] [ASN ..] [SCORE ..]`, then the entry as Redis now holds it.
pub async fn pin(tier: &RedisTier, req: &PinRequest) -> Result<Stored, OpsError> {
    let address = req.address.to_string();
    let request = SetRequest {
        lifetime: match req.lifetime {
            Lifetime::Never => protocol::Lifetime::Persist,
            Lifetime::Seconds(secs) => protocol::Lifetime::Seconds(secs),
        },
        reasons: req.reasons.as_str(),
        source: Source::MANUAL,
        attributes: req.attributes,
        ..SetRequest::new(&address, req.verdict)
    };
    let mut cmd = redis::cmd(protocol::COMMAND);
    cmd.arg(request.args());
    let step = format!("IPCHECK SET {address}");
    let grant = format!("+ipcheck|set and %RW~{}*", tier.key_prefix());
    tier.operator_call(cmd, OpTarget::Address(&address))
        .await
        .map_err(|e| explain(tier, &step, &grant, &e))?;
    get(tier, &address).await?.ok_or_else(|| {
        OpsError::Redis(RedisError {
            kind: ErrorKind::Reply,
            detail: format!("{step} answered, but the entry is not there to read back"),
        })
    })
}

/// `IPCHECK DEL <address>`: 1 when an entry was removed.
pub async fn del(tier: &RedisTier, address: &NormalizedIp) -> Result<bool, OpsError> {
    let address = address.to_string();
    let step = format!("IPCHECK DEL {address}");
    let grant = format!("+ipcheck|del and %W~{}*", tier.key_prefix());
    let mut cmd = redis::cmd(protocol::COMMAND);
    cmd.arg(protocol::sub::DEL).arg(&address);
    match tier.operator_call(cmd, OpTarget::Address(&address)).await {
        Ok(Value::Int(n)) => Ok(n > 0),
        Ok(_) => Err(explain(
            tier,
            &step,
            &grant,
            &RedisError::bare(ErrorKind::Reply),
        )),
        Err(e) => Err(explain(tier, &step, &grant, &e)),
    }
}

/// Every manual entry: `SCAN` of each primary (every primary in a cluster) for keys under the
/// prefix, then `IPCHECK GET` of each that names an address.
pub async fn pins(tier: &RedisTier, aggregation: Aggregation) -> Result<Vec<Pin>, OpsError> {
    let mut found = Vec::new();
    let nodes = if tier.is_cluster() {
        primaries(tier).await?.into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    for node in &nodes {
        for key in scan(tier, node.as_ref()).await? {
            let address = listing::address_of_key(tier.key_prefix(), &key);
            // Other keys under the prefix (refresh locks, budget counters) are not entries.
            let canonical = normalize(address, aggregation).map(|ip| ip.to_string());
            if canonical.as_deref() != Ok(address) {
                continue;
            }
            let Some(stored) = get(tier, address).await? else {
                continue; // expired meanwhile
            };
            if stored.entry.source.is_manual() {
                found.push(Pin {
                    address: address.to_owned(),
                    verdict: stored.entry.verdict,
                    reasons: stored.entry.reasons,
                    left: stored.ttl,
                    attributes: stored.entry.attributes,
                });
            }
        }
    }
    Ok(found)
}

/// Every key under the prefix on one node (`None`: the only server).
async fn scan(tier: &RedisTier, node: Option<&(String, u16)>) -> Result<Vec<String>, OpsError> {
    let pattern = listing::scan_pattern(tier.key_prefix());
    let to = match node {
        Some((host, port)) => OpTarget::Node { host, port: *port },
        None => OpTarget::Any,
    };
    let step = "SCAN";
    let grant = "+scan";
    let mut keys = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(&cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT);
        let reply = tier
            .operator_call(cmd, to)
            .await
            .map_err(|e| explain(tier, step, grant, &e))?;
        let (next, page): (String, Vec<String>) = redis::from_redis_value(reply)
            .map_err(|e| explain(tier, step, grant, &unexpected(e)))?;
        keys.extend(page);
        if next == "0" {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The primaries of the cluster, from `CLUSTER NODES`: `host:port` of each line flagged
/// `master` and not `fail`.
async fn primaries(tier: &RedisTier) -> Result<Vec<(String, u16)>, OpsError> {
    let step = "CLUSTER NODES";
    let grant = "+cluster|nodes";
    let reply = tier
        .operator_call(redis::cmd("CLUSTER").arg("NODES").clone(), OpTarget::Any)
        .await
        .map_err(|e| explain(tier, step, grant, &e))?;
    let text: String =
        redis::from_redis_value(reply).map_err(|e| explain(tier, step, grant, &unexpected(e)))?;
    Ok(parse_primaries(&text))
}

/// The primaries listed in a `CLUSTER NODES` reply.
fn parse_primaries(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let primary = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
            let host_port = addr.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            let port = port.parse().ok()?;
            (primary && !host.is_empty()).then(|| (host.to_owned(), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_from_cluster_nodes() {
        let text = "\
07c3 127.0.0.1:30004@31004,host-a slave e7d1 0 1 4 connected
67ed 127.0.0.1:30002@31002 master - 0 1 2 connected 5461-10922
292f 127.0.0.1:30003@31003 master,fail - 0 1 3 disconnected 10923-16383
e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            parse_primaries(text),
            [
                ("127.0.0.1".to_owned(), 30002),
                ("127.0.0.1".to_owned(), 30001)
            ]
        );
    }
}
