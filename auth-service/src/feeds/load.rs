//! The Redis side of a feed run: the lock, the live list's size (`IPCHECK NETINFO`), and the
//! swap: `DEL <list>.new`, `IPCHECK NETADD <list>.new ...` in batches, `RENAME <list>.new <list>`.
//!
//! Every key shares the `{lists}` hash tag, so in a cluster all of them live in the live list's
//! slot and `RENAME` is legal; each call is routed by the live key.

use std::time::Duration;

use ipcheck_core::Reasons;
use redis::Value;

use super::parse::Networks;
use crate::cache::redis::{OpTarget, RedisTier};

/// Networks per `NETADD` call: large enough that a 100k-network feed is 100 round trips, small
/// enough that one call stays well within the call deadline and never stalls Redis.
pub const BATCH: usize = 1000;

/// The keys of one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKeys {
    /// `<prefix>{lists}:<list>`, what readers match.
    pub live: String,
    /// `<live>.new`, where a download is loaded before the swap.
    pub staging: String,
    /// `<live>.lock`, held by the instance running the feed.
    pub lock: String,
}

impl ListKeys {
    /// The keys of `list` under the module's key prefix.
    pub fn new(prefix: &str, list: &str) -> Self {
        let live = crate::lists::name::key(prefix, list);
        ListKeys {
            staging: format!("{live}.new"),
            lock: format!("{live}.lock"),
            live,
        }
    }
}

/// Sends one command, routed by the list's slot; errors say which step failed.
async fn call(
    tier: &RedisTier,
    keys: &ListKeys,
    cmd: redis::Cmd,
    step: &str,
) -> Result<Value, String> {
    tier.operator_call(cmd, OpTarget::Address(&keys.live))
        .await
        .map_err(|e| {
            format!(
                "Redis at {}: {step}: {} {}",
                tier.display(),
                e.kind,
                e.detail
            )
        })
}

/// `SET <lock> <holder> NX PX <hold>`: whether this run holds the feed now.
pub async fn lock(
    tier: &RedisTier,
    keys: &ListKeys,
    holder: &str,
    hold: Duration,
) -> Result<bool, String> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(&keys.lock)
        .arg(holder)
        .arg("NX")
        .arg("PX")
        .arg(hold.as_millis().max(1) as u64);
    let reply = call(tier, keys, cmd, &format!("SET {} NX", keys.lock)).await?;
    Ok(matches!(reply, Value::Okay | Value::SimpleString(_)))
}

/// Deletes the lock if `holder` still holds it (a script, so another holder's lock stays).
pub async fn unlock(tier: &RedisTier, keys: &ListKeys, holder: &str) -> Result<(), String> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
        .arg(1)
        .arg(&keys.lock)
        .arg(holder);
    call(tier, keys, cmd, &format!("unlock {}", keys.lock))
        .await
        .map(drop)
}

/// `IPCHECK NETINFO <live>`: its live networks (v4 + v6), `None` without the list.
pub async fn live_count(tier: &RedisTier, keys: &ListKeys) -> Result<Option<u64>, String> {
    let mut cmd = redis::cmd("IPCHECK");
    cmd.arg("NETINFO").arg(&keys.live);
    let step = format!("IPCHECK NETINFO {}", keys.live);
    match call(tier, keys, cmd, &step).await? {
        Value::Nil => Ok(None),
        Value::Array(items) => netinfo_count(&items)
            .map(Some)
            .ok_or_else(|| format!("{step}: unexpected reply {items:?}")),
        other => Err(format!("{step}: unexpected reply {other:?}")),
    }
}

/// `v4 <n> v6 <n> memory <bytes>` → v4 + v6.
fn netinfo_count(items: &[Value]) -> Option<u64> {
    let mut total = 0u64;
    for pair in items.chunks(2) {
        let [name, value] = pair else { return None };
        let name = match name {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        if name == "v4" || name == "v6" {
            let Value::Int(n) = value else { return None };
            total += u64::try_from(*n).ok()?;
        }
    }
    Some(total)
}

/// Loads `networks` into the staging key and renames it over the live list.
pub async fn replace(
    tier: &RedisTier,
    keys: &ListKeys,
    networks: &Networks,
    value: &Reasons,
) -> Result<(), String> {
    let mut del = redis::cmd("DEL");
    del.arg(&keys.staging);
    call(tier, keys, del, &format!("DEL {}", keys.staging)).await?;
    // Text is made a batch at a time: a million-network feed never holds all of it at once.
    let all: Vec<&ipnet::IpNet> = networks.iter().collect();
    for batch in all.chunks(BATCH) {
        let mut cmd = redis::cmd("IPCHECK");
        cmd.arg("NETADD").arg(&keys.staging);
        for net in batch {
            cmd.arg(net.to_string());
            if !value.is_empty() {
                cmd.arg("VALUE").arg(value.as_str());
            }
        }
        call(tier, keys, cmd, &format!("IPCHECK NETADD {}", keys.staging)).await?;
    }
    let mut rename = redis::cmd("RENAME");
    rename.arg(&keys.staging).arg(&keys.live);
    call(
        tier,
        keys,
        rename,
        &format!("RENAME {} {}", keys.staging, keys.live),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = ListKeys::new("ipcheck:", "tor");
        assert_eq!(k.live, "ipcheck:{lists}:tor");
        assert_eq!(k.staging, "ipcheck:{lists}:tor.new");
        assert_eq!(k.lock, "ipcheck:{lists}:tor.lock");
    }

    #[test]
    fn netinfo_reply() {
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let reply = [
            s("v4"),
            Value::Int(3),
            s("v6"),
            Value::Int(2),
            s("memory"),
            Value::Int(900),
        ];
        assert_eq!(netinfo_count(&reply), Some(5));
        assert_eq!(netinfo_count(&reply[..3]), None);
    }
}
