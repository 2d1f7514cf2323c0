//! The queue as Redis sees it: its key names, each command the queue and the workers send, and
//! the parsing of their replies, in one place both ends use.
//!
//! - The stream `<key_prefix>{enrich}:queue`, one entry per cold address: `ip <address>`.
//!   Its hash tag `{enrich}` keeps it on one slot of a cluster.
//! - The dedupe marker `<key_prefix>enrich:{<key>}` (the address's cache key): `SET ... NX EX
//!   <dedupe>` before `XADD`, so every instance sharing Redis queues one address once per window.
//!   Its hash tag is the key, like the entry's, so markers spread over the cluster.
//! - The consumer group [`GROUP`] of the workers.

use std::net::IpAddr;
use std::time::Duration;

use redis::Value;

/// The consumer group every worker joins.
pub const GROUP: &str = "ipcheck-enrich";

/// What the stream's commands are routed by in a cluster: the text of its hash tag, whose
/// slot is the stream's.
pub const ROUTE: &str = "enrich";

/// What every key of the queue starts with after the key prefix: the stream's and the markers'
/// (the invalidation link ignores them: each queued address writes both).
pub const KEY_STARTS: [&str; 2] = [QUEUE_START, MARKER_START];
const QUEUE_START: &str = "{enrich}:";
const MARKER_START: &str = "enrich:{";

/// The stream key.
pub fn queue_key(key_prefix: &str) -> String {
    format!("{key_prefix}{QUEUE_START}queue")
}

/// The dedupe marker of the cache key `key` (its canonical text).
pub fn marker_key(key_prefix: &str, key: &str) -> String {
    format!("{key_prefix}{MARKER_START}{key}}}")
}

/// `SET <marker> 1 NX EX <dedupe>`: OK when this is the first offer in the window.
pub fn marker_cmd(key_prefix: &str, key: &str, dedupe: Duration) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(marker_key(key_prefix, key))
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(dedupe.as_secs().max(1));
    cmd
}

/// `XADD <queue> MAXLEN ~ <max_len> * ip <address>`.
pub fn add_cmd(key_prefix: &str, ip: IpAddr, max_len: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(queue_key(key_prefix))
        .arg("MAXLEN")
        .arg("~")
        .arg(max_len)
        .arg("*")
        .arg("ip")
        .arg(ip.to_string());
    cmd
}

/// `XGROUP CREATE <queue> ipcheck-enrich 0 MKSTREAM`: entries queued before the first worker
/// started are read too.
pub fn create_group_cmd(key_prefix: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("CREATE")
        .arg(queue_key(key_prefix))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM");
    cmd
}

/// Which entries `XREADGROUP` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// New entries (`>`), waiting up to this long for one.
    New(Duration),
    /// The entries already delivered to this consumer and not acknowledged (`0`): what a
    /// restarted worker of the same name left.
    OwnPending,
}

/// `XREADGROUP GROUP ipcheck-enrich <consumer> COUNT <count> [BLOCK <ms>] STREAMS <queue> >|0`.
pub fn read_cmd(key_prefix: &str, consumer: &str, count: usize, read: Read) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count);
    if let Read::New(block) = read {
        cmd.arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1));
    }
    cmd.arg("STREAMS").arg(queue_key(key_prefix));
    cmd.arg(match read {
        Read::New(_) => ">",
        Read::OwnPending => "0",
    });
    cmd
}

/// `XAUTOCLAIM <queue> ipcheck-enrich <consumer> <min-idle ms> <cursor> COUNT <count>`.
pub fn claim_cmd(
    key_prefix: &str,
    consumer: &str,
    min_idle: Duration,
    cursor: &str,
    count: usize,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XAUTOCLAIM");
    cmd.arg(queue_key(key_prefix))
        .arg(GROUP)
        .arg(consumer)
        .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
        .arg(cursor)
        .arg("COUNT")
        .arg(count);
    cmd
}

/// `XCLAIM <queue> ipcheck-enrich <consumer> 0 <id>... JUSTID`: claims entries this consumer
/// already holds, which only resets their idle time, so that no other worker's `XAUTOCLAIM`
/// takes an entry whose lookup is still under way (waiting for the budget, say).
pub fn touch_cmd<'a>(
    key_prefix: &str,
    consumer: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XCLAIM");
    cmd.arg(queue_key(key_prefix))
        .arg(GROUP)
        .arg(consumer)
        .arg(0);
    for id in ids {
        cmd.arg(id);
    }
    cmd.arg("JUSTID");
    cmd
}

/// `XACK <queue> ipcheck-enrich <id>`.
pub fn ack_cmd(key_prefix: &str, id: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(queue_key(key_prefix)).arg(GROUP).arg(id);
    cmd
}

/// `XINFO GROUPS <queue>`.
pub fn groups_cmd(key_prefix: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XINFO");
    cmd.arg("GROUPS").arg(queue_key(key_prefix));
    cmd
}

/// One delivered entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Its stream id, to acknowledge.
    pub id: String,
    /// The address it asks about; None when the entry is not one the service writes (or was
    /// trimmed from the stream while pending).
    pub ip: Option<IpAddr>,
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// `[id, [field, value, ...]]` (fields nil for an entry trimmed away while pending).
fn entry(v: &Value) -> Option<Delivered> {
    let Value::Array(pair) = v else { return None };
    let [id, fields] = pair.as_slice() else {
        return None;
    };
    let id = text(id)?.to_owned();
    let ip = match fields {
        Value::Array(kv) => kv
            .chunks_exact(2)
            .find(|kv| text(&kv[0]) == Some("ip"))
            .and_then(|kv| text(&kv[1]))
            .and_then(|t| t.parse::<IpAddr>().ok()),
        Value::Map(kv) => kv
            .iter()
            .find(|(k, _)| text(k) == Some("ip"))
            .and_then(|(_, v)| text(v))
            .and_then(|t| t.parse::<IpAddr>().ok()),
        _ => None,
    };
    Some(Delivered { id, ip })
}

fn entries(v: &Value) -> Vec<Delivered> {
    match v {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREADGROUP` reply on the one stream (nil: none within the block time).
pub fn parse_read(reply: &Value) -> Vec<Delivered> {
    match reply {
        // RESP2: [[stream, entries]].
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) if pair.len() == 2 => Some(entries(&pair[1])),
                _ => None,
            })
            .flatten()
            .collect(),
        // RESP3: {stream: entries}.
        Value::Map(streams) => streams.iter().flat_map(|(_, e)| entries(e)).collect(),
        _ => Vec::new(),
    }
}

/// The next cursor and the claimed entries of an `XAUTOCLAIM` reply (`0-0`: the pending list
/// has been gone through).
pub fn parse_claim(reply: &Value) -> (String, Vec<Delivered>) {
    match reply {
        Value::Array(parts) if parts.len() >= 2 => (
            text(&parts[0]).unwrap_or("0-0").to_owned(),
            entries(&parts[1]),
        ),
        _ => ("0-0".to_owned(), Vec::new()),
    }
}

/// The group's pending entries and lag from `XINFO GROUPS` (lag: 0 when Redis cannot say).
pub fn parse_backlog(reply: &Value) -> Option<(u64, u64)> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|g| {
        let fields: Vec<(&Value, &Value)> = match g {
            Value::Array(kv) => kv.chunks_exact(2).map(|kv| (&kv[0], &kv[1])).collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (k, v)).collect(),
            _ => return None,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| text(k) == Some(name))
                .map(|(_, v)| *v)
        };
        if field("name").and_then(text) != Some(GROUP) {
            return None;
        }
        let pending = field("pending").and_then(int)?;
        let lag = field("lag").and_then(int).unwrap_or(0);
        Some((pending, lag))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn packed(cmd: &redis::Cmd) -> String {
        String::from_utf8_lossy(&cmd.get_packed_command()).replace("\r\n", " ")
    }

    #[test]
    fn keys_route_the_queue_to_one_slot_and_markers_by_address() {
        assert_eq!(queue_key("ipcheck:"), "ipcheck:{enrich}:queue");
        assert_eq!(
            marker_key("ipcheck:", "2001:db8::/64"),
            "ipcheck:enrich:{2001:db8::/64}"
        );
        let add = packed(&add_cmd("ipcheck:", "192.0.2.1".parse().unwrap(), 1000));
        assert!(add.contains("XADD"), "{add}");
        assert!(
            add.contains("MAXLEN $1 ~ $4 1000 $1 * $2 ip $9 192.0.2.1"),
            "{add}"
        );
        let read = packed(&read_cmd("p:", "w1", 4, Read::New(Duration::from_secs(1))));
        assert!(
            read.contains("BLOCK $4 1000 $7 STREAMS $16 p:{enrich}:queue $1 >"),
            "{read}"
        );
        let touch = packed(&touch_cmd("p:", "w1", ["1-0", "2-0"]));
        assert!(
            touch.ends_with("$2 w1 $1 0 $3 1-0 $3 2-0 $6 JUSTID "),
            "{touch}"
        );
        let own = packed(&read_cmd("p:", "w1", 4, Read::OwnPending));
        assert!(!own.contains("BLOCK") && own.ends_with("$1 0 "), "{own}");
    }

    #[test]
    fn replies_give_entries_and_skip_what_is_not_ours() {
        let e = |id: &str, fields: Value| Value::Array(vec![bulk(id), fields]);
        let good = e("1-0", Value::Array(vec![bulk("ip"), bulk("192.0.2.7")]));
        let bad = e("2-0", Value::Array(vec![bulk("ip"), bulk("not-an-ip")]));
        let trimmed = e("3-0", Value::Nil);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("ipcheck:{enrich}:queue"),
            Value::Array(vec![good.clone(), bad, trimmed]),
        ])]);
        let got = parse_read(&reply);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!((got[1].ip, got[2].ip), (None, None));
        assert_eq!(parse_read(&Value::Nil), vec![]);
        let claim = Value::Array(vec![
            bulk("0-0"),
            Value::Array(vec![good]),
            Value::Array(vec![]),
        ]);
        let (cursor, claimed) = parse_claim(&claim);
        assert_eq!((cursor.as_str(), claimed.len()), ("0-0", 1));
        assert_eq!(parse_claim(&Value::Int(3)).1, vec![]);
    }

    #[test]
    fn backlog_reads_our_group() {
        let group = |name: &str, pending: i64| {
            Value::Array(vec![
                bulk("name"),
                bulk(name),
                bulk("pending"),
                Value::Int(pending),
                bulk("lag"),
                Value::Int(7),
            ])
        };
        let reply = Value::Array(vec![group("other", 1), group(GROUP, 2)]);
        assert_eq!(parse_backlog(&reply), Some((2, 7)));
        assert_eq!(parse_backlog(&Value::Nil), None);
    }

    /// Any reply shape a Redis user could produce (the stream is writable by anyone with
    /// `+xadd`): the parsers never panic.
    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            "[ -~]{0,12}".prop_map(|s: String| Value::BulkString(s.into_bytes())),
            Just(bulk("ip")),
            Just(bulk("192.0.2.1")),
            Just(bulk("2001:db8::1")),
            Just(bulk(GROUP)),
            Just(bulk("pending")),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic_on_any_reply(v in any_value()) {
            let _ = parse_read(&v);
            let _ = parse_claim(&v);
            let _ = parse_backlog(&v);
        }
    }
}
