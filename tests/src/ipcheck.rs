//! Typed helpers for calling the `IPCHECK` command from tests.

use ipcheck_core::protocol::{parse_get, GetField, ReplyValue, SetRequest, COMMAND, GET_FIELDS};
use ipcheck_core::Attributes;
use redis::{Connection, RedisResult, Value};

/// A parsed `IPCHECK GET` hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `allow`, `block` or `challenge`.
    pub verdict: String,
    /// Comma-separated reasons, possibly empty.
    pub reason: String,
    /// The source token.
    pub source: String,
    /// Seconds left.
    pub ttl: i64,
    /// The Redis key.
    pub key: String,
    /// Within its fresh time (`fresh 1`), or stale (`fresh 0`).
    pub fresh: bool,
    /// Seconds of fresh time left (0 when stale).
    pub fresh_ttl: i64,
    /// Country, AS number and score, where known.
    pub attributes: Attributes,
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".to_owned(),
        Value::Int(n) => n.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

/// A reply element as the protocol parser takes it.
pub fn reply_value(v: &Value) -> ReplyValue<'_> {
    match v {
        Value::BulkString(b) => ReplyValue::Text(b),
        Value::SimpleString(s) => ReplyValue::Text(s.as_bytes()),
        Value::Int(n) => ReplyValue::Int(*n),
        _ => ReplyValue::Other,
    }
}

/// Parses a GET reply with core's protocol parser, checking first that the fields are exactly
/// the protocol's, in its order, and that each value has the type the contract says.
pub fn parse_get_reply(v: Value) -> Option<Hit> {
    let items = match v {
        Value::Nil => return None,
        Value::Array(items) => items,
        other => panic!("IPCHECK GET replied {other:?}"),
    };
    assert_eq!(items.len(), 2 * GET_FIELDS.len(), "{items:?}");
    let names: Vec<String> = items.iter().step_by(2).map(text).collect();
    let expected: Vec<&str> = GET_FIELDS.iter().map(|f| f.name()).collect();
    assert_eq!(names, expected);
    for (field, value) in GET_FIELDS.iter().zip(items.iter().skip(1).step_by(2)) {
        let integer = matches!(field, GetField::Ttl | GetField::Fresh | GetField::FreshTtl);
        assert_eq!(
            matches!(value, Value::Int(_)),
            integer,
            "{}: {value:?}",
            field.name()
        );
    }
    let hit = parse_get(
        items
            .chunks_exact(2)
            .map(|kv| (reply_value(&kv[0]), reply_value(&kv[1]))),
    )
    .unwrap_or_else(|e| panic!("{e}: {items:?}"));
    assert!(
        matches!(hit.freshness.fresh_ttl_secs, -1..),
        "fresh_ttl {}",
        hit.freshness.fresh_ttl_secs
    );
    Some(Hit {
        verdict: hit.verdict.as_str().to_owned(),
        reason: hit.reasons.to_owned(),
        source: hit.source.to_owned(),
        ttl: hit.ttl_secs,
        key: hit.key_text(),
        fresh: hit.freshness.fresh,
        fresh_ttl: hit.freshness.fresh_ttl_secs,
        attributes: hit.attributes,
    })
}

/// `IPCHECK GET <ip>`.
pub fn get(con: &mut Connection, ip: &str) -> RedisResult<Option<Hit>> {
    let v: Value = redis::cmd("IPCHECK").arg("GET").arg(ip).query(con)?;
    Ok(parse_get_reply(v))
}

/// The verdict stored for `ip`; panics on a miss or an error, for tests that expect a hit.
pub fn verdict(con: &mut Connection, ip: &str) -> String {
    match get(con, ip) {
        Ok(Some(hit)) => hit.verdict,
        other => panic!("expected an entry for {ip}, got {other:?}"),
    }
}

/// `IPCHECK SET <args...>`: `Some("OK")`, or `None` when a manual pin was kept.
pub fn set(con: &mut Connection, args: &[&str]) -> RedisResult<Option<String>> {
    let v: Value = redis::cmd("IPCHECK").arg("SET").arg(args).query(con)?;
    Ok(match v {
        Value::Nil => None,
        other => Some(text(&other)),
    })
}

/// `IPCHECK SET` built by the protocol's request builder, as the service builds it.
pub fn set_request(con: &mut Connection, req: &SetRequest) -> RedisResult<Option<String>> {
    let v: Value = redis::cmd(COMMAND).arg(req.args()).query(con)?;
    Ok(match v {
        Value::Nil => None,
        other => Some(text(&other)),
    })
}

/// `IPCHECK DEL <ip>`.
pub fn del(con: &mut Connection, ip: &str) -> RedisResult<i64> {
    redis::cmd("IPCHECK").arg("DEL").arg(ip).query(con)
}

/// `IPCHECK KEY <ip>`.
pub fn key(con: &mut Connection, ip: &str) -> RedisResult<String> {
    redis::cmd("IPCHECK").arg("KEY").arg(ip).query(con)
}

/// `IPCHECK STATS` as (name, value) pairs in reply order.
pub fn stats(con: &mut Connection) -> RedisResult<Vec<(String, i64)>> {
    redis::cmd("IPCHECK").arg("STATS").query(con)
}

/// One counter from `IPCHECK STATS`.
pub fn stat(con: &mut Connection, name: &str) -> i64 {
    stats(con)
        .expect("IPCHECK STATS")
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no counter {name}"))
}

/// The error text of a failed call (code and message), for `contains` assertions.
pub fn err_text<T: std::fmt::Debug>(r: RedisResult<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Polls `IPCHECK GET ip` (every 20 ms, up to 10 s) until `done` holds for the entry, and
/// returns it; panics naming `what` if it never does.
pub fn wait_for(con: &mut Connection, ip: &str, what: &str, done: impl Fn(&Hit) -> bool) -> Hit {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let hit = get(con, ip).expect("IPCHECK GET");
        if let Some(h) = hit.as_ref().filter(|h| done(h)) {
            return h.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ip} never {what}: {hit:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
