//! `[feeds.<name>]`: the file's shape and its validation into [`FeedSettings`].

use std::collections::BTreeMap;
use std::time::Duration;

use ipcheck_core::Reasons;
use serde::Deserialize;

use super::parse::Format;
use crate::duration::ConfigDuration;

/// `interval` when not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// `timeout` when not given: the whole download, connect to last byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// `max_shrink` when not given: a download may hold half the networks of the list it replaces.
pub const DEFAULT_MAX_SHRINK: f64 = 0.5;
/// `max_networks` when not given.
pub const DEFAULT_MAX_NETWORKS: usize = 1_000_000;
/// `max_bytes` when not given.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// One `[feeds.<name>]` table as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFeed {
    url: Option<String>,
    format: Option<String>,
    list: Option<String>,
    interval: Option<ConfigDuration>,
    max_shrink: Option<f64>,
    value: Option<String>,
    timeout: Option<ConfigDuration>,
    max_networks: Option<usize>,
    max_bytes: Option<u64>,
}

/// A validated feed.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedSettings {
    /// The table's name (`feeds.<name>`), used in logs, metrics and the lock.
    pub name: String,
    /// `http://` or `https://` URL of the download.
    pub url: String,
    /// How the download is parsed.
    pub format: Format,
    /// The list loaded: the key `<prefix>{lists}:<list>`.
    pub list: String,
    /// How often the service runs it.
    pub interval: Duration,
    /// Fraction (0..=1) by which a download may shrink the list it replaces.
    pub max_shrink: f64,
    /// `VALUE` of every network (reason tokens), none when empty.
    pub value: Reasons,
    /// Deadline of the download.
    pub timeout: Duration,
    /// Most networks a download may hold.
    pub max_networks: usize,
    /// Most bytes a download may hold.
    pub max_bytes: u64,
}

/// Validates every feed; `err(key, message)` names the key (`feeds.tor.url`).
pub(crate) fn validate<E>(
    raw: BTreeMap<String, RawFeed>,
    err: &dyn Fn(&str, String) -> E,
) -> Result<Vec<FeedSettings>, E> {
    let mut feeds = Vec::new();
    let mut lists: BTreeMap<String, String> = BTreeMap::new();
    for (name, r) in raw {
        let key = |k: &str| format!("feeds.{name}.{k}");
        crate::lists::name::check(&name).map_err(|e| err(&format!("feeds.{name}"), e))?;
        let url = r
            .url
            .ok_or_else(|| err(&key("url"), "missing: the feed's http(s) URL".into()))?;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(&url).is_err()
        {
            return Err(err(
                &key("url"),
                format!("'{url}' is not an http:// or https:// URL"),
            ));
        }
        let format = Format::parse(r.format.as_deref().ok_or_else(|| {
            err(
                &key("format"),
                "missing: cidr, tor-exits or crawler-json".into(),
            )
        })?)
        .map_err(|e| err(&key("format"), e))?;
        let list = r.list.unwrap_or_else(|| name.clone());
        crate::lists::name::check(&list).map_err(|e| err(&key("list"), e))?;
        if let Some(other) = lists.insert(list.clone(), name.clone()) {
            return Err(err(
                &key("list"),
                format!("list '{list}' is already loaded by feeds.{other}: each would replace the other's networks"),
            ));
        }
        let max_shrink = r.max_shrink.unwrap_or(DEFAULT_MAX_SHRINK);
        if !(0.0..=1.0).contains(&max_shrink) {
            return Err(err(
                &key("max_shrink"),
                format!("{max_shrink} must be a fraction from 0 (never shrink) to 1 (any shrink)"),
            ));
        }
        let value = Reasons::parse(r.value.as_deref().unwrap_or(""))
            .map_err(|e| err(&key("value"), format!("{e}")))?;
        let max_networks = r.max_networks.unwrap_or(DEFAULT_MAX_NETWORKS);
        if max_networks == 0 {
            return Err(err(&key("max_networks"), "must be at least 1".into()));
        }
        let max_bytes = r.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(err(&key("max_bytes"), "must be at least 1".into()));
        }
        feeds.push(FeedSettings {
            url,
            format,
            list,
            interval: r.interval.map_or(DEFAULT_INTERVAL, |d| d.0),
            max_shrink,
            value,
            timeout: r.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
            max_networks,
            max_bytes,
            name,
        });
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feeds(text: &str) -> Result<Vec<FeedSettings>, String> {
        let raw: BTreeMap<String, RawFeed> = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(raw, &|k, m| format!("{k}: {m}"))
    }

    #[test]
    fn defaults() {
        let f =
            feeds("[tor]\nurl = \"https://x.example/exits\"\nformat = \"tor-exits\"\n").unwrap();
        assert_eq!(f[0].list, "tor");
        assert_eq!(f[0].interval, DEFAULT_INTERVAL);
        assert_eq!(f[0].max_shrink, 0.5);
        assert!(f[0].value.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("[tor]\nformat = \"cidr\"\n", "feeds.tor.url"),
            ("[tor]\nurl = \"ftp://x/\"\nformat = \"cidr\"\n", "feeds.tor.url"),
            ("[tor]\nurl = \"http://x/\"\nformat = \"csv\"\n", "feeds.tor.format"),
            ("[tor]\nurl = \"http://x/\"\nformat = \"cidr\"\nmax_shrink = 1.5\n", "feeds.tor.max_shrink"),
            ("[tor]\nurl = \"http://x/\"\nformat = \"cidr\"\nvalue = \"Bad Token\"\n", "feeds.tor.value"),
            ("[tor]\nurl = \"http://x/\"\nformat = \"cidr\"\nlist = \"a{b}\"\n", "feeds.tor.list"),
            ("[a]\nurl = \"http://x/\"\nformat = \"cidr\"\nlist = \"drop\"\n[b]\nurl = \"http://y/\"\nformat = \"cidr\"\nlist = \"drop\"\n", "feeds.b.list"),
        ] {
            let e = feeds(text).unwrap_err();
            assert!(e.starts_with(key), "{text}: {e}");
        }
    }
}
