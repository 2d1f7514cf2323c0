//! `[events]`: the file's shape and its validation into [`EventsSettings`].

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::decision_log::{DecisionLog, Decisions};
use crate::duration::ConfigDuration;

/// The stream key under `redis.key_prefix` when `stream` is not given, and what a stream under
/// the prefix must start with: every key under the prefix is watched by each instance's
/// invalidation link ([`crate::cache::invalidation::classify`]), which ignores these (any other
/// key there, not an address, would empty the local tier on every append). The hash tag keeps
/// a cluster's stream on one slot.
pub const RESERVED: &str = "{events}";
/// The stream key under `redis.key_prefix` when `stream` is not given.
pub const DEFAULT_STREAM_SUFFIX: &str = RESERVED;
/// `maxlen` when not given: about this many events are kept (`XADD ... MAXLEN ~`).
pub const DEFAULT_MAXLEN: u64 = 1_000_000;
/// `buffer` when not given: events waiting for Redis before new ones are dropped.
pub const DEFAULT_BUFFER: usize = 10_000;
/// `timeout` when not given: the deadline of one batch of appends.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// `[events]` as serde reads it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvents {
    decisions: Option<String>,
    sample: Option<f64>,
    stream: Option<String>,
    maxlen: Option<u64>,
    buffer: Option<usize>,
    timeout: Option<ConfigDuration>,
}

/// What is appended where; `None` in [`crate::config::Settings`] when `decisions = "off"`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsSettings {
    /// Which decisions, and the sampled fraction of them (the decision log's rule).
    pub filter: DecisionLog,
    /// Only a restart changes these: the writer is started once.
    pub writer: WriterSettings,
}

/// The background writer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSettings {
    /// The stream's key.
    pub stream: String,
    /// `MAXLEN ~` of every `XADD`.
    pub maxlen: u64,
    /// Events held for the writer at most.
    pub buffer: usize,
    /// Deadline of one batch.
    pub timeout: Duration,
}

/// Validates `[events]`; `key_prefix` is `redis.key_prefix` (`None`: no Redis configured).
pub(crate) fn validate(
    raw: Option<RawEvents>,
    key_prefix: Option<&str>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<EventsSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let decisions = match raw.decisions.as_deref().map(str::trim) {
        None => Decisions::Off,
        Some(word) => Decisions::parse(word).ok_or_else(|| {
            err(
                "events.decisions",
                format!("'{word}': expected {}", Decisions::WORDS),
            )
        })?,
    };
    let sample = raw.sample.unwrap_or(1.0);
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(err(
            "events.sample",
            format!("{sample}: expected a fraction above 0 and at most 1 (0.01 appends one decision in a hundred; decisions = \"off\" none)"),
        ));
    }
    if decisions == Decisions::Off {
        return Ok(None);
    }
    let Some(prefix) = key_prefix else {
        return Err(err(
            "events.decisions",
            "events are appended to a Redis stream: configure [redis] url (or IPCHECK_REDIS_URL), or set decisions = \"off\"".to_owned(),
        ));
    };
    let stream = match raw.stream.as_deref().map(str::trim) {
        None => format!("{prefix}{DEFAULT_STREAM_SUFFIX}"),
        Some(s) if s.is_empty() || s.len() > 256 || s.bytes().any(|b| !b.is_ascii_graphic()) => {
            return Err(err(
                "events.stream",
                format!("'{s}': 1 to 256 visible ASCII characters, the stream's key (default \"{prefix}{DEFAULT_STREAM_SUFFIX}\")"),
            ))
        }
        Some(s) if s.starts_with(prefix) && !s[prefix.len()..].starts_with(RESERVED) => {
            return Err(err(
                "events.stream",
                format!("'{s}' is under redis.key_prefix, where every instance's invalidation link takes a key for a cached address: name a key outside \"{prefix}\", or one starting with \"{prefix}{RESERVED}\""),
            ))
        }
        Some(s) => s.to_owned(),
    };
    let maxlen = match raw.maxlen {
        Some(0) => {
            return Err(err(
                "events.maxlen",
                "at least 1: about this many events are kept in the stream".to_owned(),
            ))
        }
        Some(n) => n,
        None => DEFAULT_MAXLEN,
    };
    let buffer = match raw.buffer {
        Some(0) => {
            return Err(err(
                "events.buffer",
                "at least 1: events waiting for Redis before new ones are dropped".to_owned(),
            ))
        }
        Some(n) => n,
        None => DEFAULT_BUFFER,
    };
    let timeout = match raw.timeout {
        Some(ConfigDuration(d)) if d.is_zero() => {
            return Err(err(
                "events.timeout",
                "above 0: the deadline of one batch of appends".to_owned(),
            ))
        }
        Some(ConfigDuration(d)) => d,
        None => DEFAULT_TIMEOUT,
    };
    Ok(Some(EventsSettings {
        filter: DecisionLog::new(decisions, sample),
        writer: WriterSettings {
            stream,
            maxlen,
            buffer,
            timeout,
        },
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use std::time::Duration;

    const REDIS: &str = "[redis]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"ic:\"\n";

    fn error(text: &str) -> String {
        match parse("test.toml", text, &[]) {
            Ok(_) => panic!("expected an error for {text:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_and_off() {
        let s = parse("t", &format!("{REDIS}[events]\ndecisions = \"all\"\n"), &[]).unwrap();
        let e = s.events.expect("events on");
        assert_eq!(e.writer.stream, "ic:{events}");
        assert_eq!(e.writer.maxlen, super::DEFAULT_MAXLEN);
        assert_eq!(e.writer.buffer, super::DEFAULT_BUFFER);
        assert_eq!(e.writer.timeout, Duration::from_secs(1));
        for off in ["", "[events]\n", "[events]\ndecisions = \"off\"\n"] {
            let s = parse("t", &format!("{REDIS}{off}"), &[]).unwrap();
            assert!(s.events.is_none(), "{off:?}");
        }
        let s = parse(
            "t",
            &format!("{REDIS}[events]\ndecisions = \"non-allow\"\nsample = 0.5\nstream = \"app:{{ev}}\"\nmaxlen = 50\nbuffer = 3\ntimeout = \"250ms\"\n"),
            &[],
        )
        .unwrap();
        let w = s.events.expect("events on").writer;
        assert_eq!(
            (w.stream.as_str(), w.maxlen, w.buffer, w.timeout),
            ("app:{ev}", 50, 3, Duration::from_millis(250))
        );
        let s = parse(
            "t",
            &format!("{REDIS}[events]\ndecisions = \"all\"\nstream = \"ic:{{events}}:login\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            s.events.expect("events on").writer.stream,
            "ic:{events}:login"
        );
        let s = parse(
            "t",
            REDIS,
            &[("IPCHECK_EVENTS_DECISIONS".to_owned(), "all".to_owned())],
        )
        .unwrap();
        assert!(s.events.is_some());
    }

    #[test]
    fn errors_name_the_key() {
        let on = |extra: &str| format!("{REDIS}[events]\ndecisions = \"all\"\n{extra}");
        let e = error("[events]\ndecisions = \"all\"\n");
        assert!(
            e.contains("events.decisions") && e.contains("[redis]"),
            "{e}"
        );
        let e = error(&format!("{REDIS}[events]\ndecisions = \"some\"\n"));
        assert!(
            e.contains("events.decisions") && e.contains("off, all or non-allow"),
            "{e}"
        );
        for (extra, key) in [
            ("sample = 0.0", "events.sample"),
            ("sample = 1.5", "events.sample"),
            ("maxlen = 0", "events.maxlen"),
            ("buffer = 0", "events.buffer"),
            ("timeout = \"0s\"", "events.timeout"),
            ("stream = \"\"", "events.stream"),
            ("stream = \"a b\"", "events.stream"),
            ("stream = \"ic:events\"", "events.stream"),
            ("size = 1", "events"),
        ] {
            let e = error(&on(extra));
            assert!(e.contains(key), "{extra}: {e}");
        }
    }
}
