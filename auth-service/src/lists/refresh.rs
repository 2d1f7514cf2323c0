//! Keeps each list's local copy in step with its Redis key (`<key_prefix>{lists}:<name>`).
//!
//! Every `refresh` the list's `IPCHECK NETINFO` (counts and memory) is read; when it differs from
//! the copy's, when the invalidation link (`CLIENT TRACKING`, which announces list keys as any
//! other key under the prefix) saw a list key change, or when [`FULL_RELOAD`] has passed (a
//! `RENAME` swap to a list of exactly the same size leaves NETINFO unchanged), the whole list is
//! read with `NETDUMP` into a new table, which replaces the copy at once. A key Redis does not have leaves the list's file content (or
//! nothing). Redis failing keeps the copy in use, logged once per change of error.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use redis::Value;

use super::table::{parse_network, Table};
use super::{ListStore, Slot, Source};
use crate::cache::invalidation::Coherence;
use crate::cache::redis::{OpTarget, RedisTier};

/// The longest a copy goes without a full re-read while Redis answers.
pub const FULL_RELOAD: Duration = Duration::from_secs(60);
/// Networks per `NETDUMP` call.
const DUMP_COUNT: &str = "5000";

/// `NETINFO`'s numbers: v4 count, v6 count, memory.
type Signature = Vec<i64>;

pub use super::name::key;

/// Starts one task per list following Redis; each ends when `store` is dropped (a reload
/// builds a new store with its own tasks).
pub fn spawn(store: &Arc<ListStore>, redis: Arc<RedisTier>, link: Option<Arc<Coherence>>) {
    for i in 0..store.slots().len() {
        let weak = Arc::downgrade(store);
        let redis = Arc::clone(&redis);
        tokio::spawn(follow(weak, i, redis, link.clone()));
    }
}

async fn follow(
    store: Weak<ListStore>,
    index: usize,
    redis: Arc<RedisTier>,
    link: Option<Arc<Coherence>>,
) {
    let mut seen: Option<Signature> = None;
    let mut last_full = Instant::now();
    let mut last_error: Option<String> = None;
    let mut generation = link.as_ref().map(|l| l.lists_generation());
    loop {
        // The invalidation link saw a list key change (or may have missed one): re-read in
        // full, whatever NETINFO says (a RENAME swap can leave it unchanged).
        let now_generation = link.as_ref().map(|l| l.lists_generation());
        if now_generation != generation {
            seen = None;
            generation = now_generation;
        }
        let Some(store) = store.upgrade() else {
            return;
        };
        let Some(slot) = store.slots().get(index) else {
            return;
        };
        let key = key(redis.key_prefix(), &slot.spec.name);
        let outcome = step(&redis, slot, &key, &mut seen, &mut last_full).await;
        match outcome {
            Ok(()) => {
                if last_error.take().is_some() {
                    tracing::info!(list = %slot.spec.name, "list follows Redis again");
                }
            }
            Err(e) => {
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(list = %slot.spec.name, %key, "cannot read the list from Redis: {e}; matching goes on with the copy in use");
                }
                slot.failed(e.clone());
                last_error = Some(e);
            }
        }
        let wait = slot.spec.refresh;
        drop(store);
        tokio::time::sleep(wait).await;
    }
}

async fn step(
    redis: &RedisTier,
    slot: &Slot,
    key: &str,
    seen: &mut Option<Signature>,
    last_full: &mut Instant,
) -> Result<(), String> {
    let mut info = redis::cmd("IPCHECK");
    info.arg("NETINFO").arg(key);
    let reply = redis
        .operator_call(info, OpTarget::Address(key))
        .await
        .map_err(|e| format!("IPCHECK NETINFO: {e}"))?;
    let signature = match reply {
        Value::Nil => None,
        other => Some(numbers(&other)),
    };
    let Some(signature) = signature else {
        // No key: the file's content (or nothing) is the list.
        if seen.take().is_some() || slot.state().source == Source::None {
            let table = match &slot.spec.file {
                Some(path) => super::load_file(path)?,
                None => Table::default(),
            };
            let source = if slot.spec.file.is_some() {
                Source::File
            } else {
                Source::Redis
            };
            slot.install(table, source);
        }
        return Ok(());
    };
    if seen.as_ref() == Some(&signature) && last_full.elapsed() < FULL_RELOAD {
        return Ok(());
    }
    let table = dump(redis, key).await?;
    tracing::info!(list = %slot.spec.name, networks = table.len(), "list loaded from Redis");
    slot.install(table, Source::Redis);
    *seen = Some(signature);
    *last_full = Instant::now();
    Ok(())
}

/// Every live network of `key`, walked with `NETDUMP`.
async fn dump(redis: &RedisTier, key: &str) -> Result<Table, String> {
    let mut table = Table::default();
    let mut cursor = "0".to_owned();
    loop {
        let mut cmd = redis::cmd("IPCHECK");
        cmd.arg("NETDUMP")
            .arg(key)
            .arg(&cursor)
            .arg("COUNT")
            .arg(DUMP_COUNT);
        let reply = redis
            .operator_call(cmd, OpTarget::Address(key))
            .await
            .map_err(|e| format!("IPCHECK NETDUMP: {e}"))?;
        match page(reply, &mut table)? {
            Some(next) => cursor = next,
            None => return Ok(table),
        }
    }
}

/// Adds one `NETDUMP` reply's networks to `table`; the next cursor, or `None` when done (cursor
/// `0`, or the key went away during the walk: nil).
fn page(reply: Value, table: &mut Table) -> Result<Option<String>, String> {
    let bad = |what: &str| {
        format!("IPCHECK NETDUMP: unexpected reply ({what}); is the module the one this service was built with?")
    };
    let Value::Array(parts) = reply else {
        return Ok(None);
    };
    let [next, Value::Array(items)] = parts.as_slice() else {
        return Err(bad("not [cursor, items]"));
    };
    for item in items {
        let Value::Array(fields) = item else {
            return Err(bad("an item is not an array"));
        };
        let (Some(net), Some(expires)) = (fields.first(), fields.get(2)) else {
            return Err(bad("an item has fewer than 3 fields"));
        };
        let net = text(net).ok_or_else(|| bad("network is not text"))?;
        let net = parse_network(&net).map_err(|e| bad(&e))?;
        let expires = match int(expires) {
            Some(ms) if ms > 0 => Some(ms as u64),
            _ => None,
        };
        table.insert(net, expires);
    }
    let cursor = text(next).ok_or_else(|| bad("cursor is not text"))?;
    Ok((cursor != "0").then_some(cursor))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

/// The numbers of a `NETINFO` reply, in order (the words between them dropped).
fn numbers(v: &Value) -> Signature {
    match v {
        Value::Array(items) => items.iter().filter_map(int).collect(),
        Value::Map(pairs) => pairs.iter().filter_map(|(_, v)| int(v)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn dump_pages_fill_the_table_until_cursor_zero() {
        let mut t = Table::default();
        let first = Value::Array(vec![
            bulk("10.0.0.0/8"),
            Value::Array(vec![
                Value::Array(vec![bulk("10.0.0.0/8"), bulk("tor"), Value::Int(-1)]),
                Value::Array(vec![bulk("192.0.2.0/24"), bulk(""), Value::Int(1_000)]),
            ]),
        ]);
        assert_eq!(page(first, &mut t), Ok(Some("10.0.0.0/8".to_owned())));
        let last = Value::Array(vec![
            bulk("0"),
            Value::Array(vec![Value::Array(vec![
                bulk("2001:db8::/32"),
                bulk(""),
                Value::Int(-1),
            ])]),
        ]);
        assert_eq!(page(last, &mut t), Ok(None));
        assert_eq!(t.len(), 3);
        assert!(t.matches("10.1.1.1".parse().unwrap(), 5_000));
        assert!(t.matches("192.0.2.1".parse().unwrap(), 999));
        assert!(!t.matches("192.0.2.1".parse().unwrap(), 1_000), "expired");
        // The key went away mid-walk: done.
        assert_eq!(page(Value::Nil, &mut t), Ok(None));
    }

    #[test]
    fn a_reply_of_another_shape_is_an_error_naming_it() {
        let mut t = Table::default();
        let e = page(Value::Array(vec![bulk("0")]), &mut t).unwrap_err();
        assert!(e.contains("not [cursor, items]"), "{e}");
        let e = page(
            Value::Array(vec![
                bulk("0"),
                Value::Array(vec![Value::Array(vec![bulk("x")])]),
            ]),
            &mut t,
        )
        .unwrap_err();
        assert!(e.contains("fewer than 3 fields"), "{e}");
        let bad_net = Value::Array(vec![bulk("nope"), bulk(""), Value::Int(-1)]);
        let e = page(
            Value::Array(vec![bulk("0"), Value::Array(vec![bad_net])]),
            &mut t,
        )
        .unwrap_err();
        assert!(e.contains("'nope' is not a network"), "{e}");
        assert_eq!(
            numbers(&Value::Array(vec![
                bulk("v4"),
                Value::Int(2),
                bulk("v6"),
                Value::Int(0)
            ])),
            [2, 0]
        );
    }
}
