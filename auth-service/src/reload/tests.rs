//! The reload rules, on parsed configurations (no process).

use super::diff::{provider_changed, restart_only, summary};
use crate::config::{parse, Settings};

const BASE: &str = r#"
[provider]
preset = "ipasis"
url = "http://127.0.0.1:9/v1/{ip}"
api_key_env = "K"

[redis]
url = "redis://127.0.0.1:6379"

[policies.default]
block = ["tor"]
challenge = ["vpn"]
on_error = "open"
"#;

fn settings(text: &str) -> Settings {
    parse("test.toml", text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn edited(from: &str, to: &str) -> Settings {
    assert!(BASE.contains(from), "{from}");
    settings(&BASE.replacen(from, to, 1))
}

#[test]
fn the_same_file_changes_nothing() {
    let (a, b) = (settings(BASE), settings(BASE));
    assert!(restart_only(&a, &b).is_empty());
    assert!(!provider_changed(&a, &b, None, None));
    assert_eq!(summary(&a, &b, false), "no change");
}

#[test]
fn policy_and_list_changes_apply_without_a_restart() {
    let old = settings(BASE);
    let new = edited(
        "block = [\"tor\"]\nchallenge = [\"vpn\"]",
        "block = [\"tor\", \"vpn\"]",
    );
    assert!(restart_only(&old, &new).is_empty());
    assert_eq!(summary(&old, &new, false), "policies");
    let named = settings(&format!("{BASE}\n[policies.strict]\nblock = [\"vpn\"]\n"));
    assert_eq!(summary(&old, &named, false), "policies");
    let unknown = settings(&format!("unknown_policy = \"open\"\n{BASE}"));
    assert_eq!(summary(&old, &unknown, false), "unknown_policy");
    let listed = settings(&format!(
        "{BASE}\n[lists.tor]\ncategory = \"tor\"\nfile = \"/f\"\n"
    ));
    assert!(restart_only(&old, &listed).is_empty());
    assert_eq!(summary(&old, &listed, false), "lists");
}

#[test]
fn restart_only_keys_are_named() {
    let old = settings(BASE);
    let cases = [
        (
            "[redis]\n",
            "[cache]\ncapacity = 10\n\n[redis]\n",
            "cache.capacity",
        ),
        (
            "[redis]\n",
            "[cache]\nlocal_ttl = \"5s\"\n\n[redis]\n",
            "cache.local_ttl",
        ),
        (
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6380",
            "redis.url",
        ),
        (
            "[redis]\n",
            "[aggregation]\nipv6_prefix = 56\n\n[redis]\n",
            "aggregation",
        ),
        ("[redis]\n", "[redis]\ntimeout = \"1s\"\n", "redis.timeout"),
    ];
    for (from, to, key) in cases {
        let new = edited(from, to);
        assert_eq!(restart_only(&old, &new), vec![key], "{to}");
    }
    let without_redis = settings(&BASE.replace("[redis]\nurl = \"redis://127.0.0.1:6379\"\n", ""));
    assert_eq!(restart_only(&old, &without_redis), vec!["redis"]);
}

#[test]
fn redis_ttls_reload() {
    let old = settings(BASE);
    let new = edited("[redis]\n", "[redis]\nttl = \"2h\"\n");
    assert!(restart_only(&old, &new).is_empty());
    assert_eq!(summary(&old, &new, false), "redis.ttl/refresh_ahead");
}

#[test]
fn the_provider_is_rebuilt_only_when_its_settings_change() {
    let old = settings(BASE);
    // vpn moves from challenge to block: the same fields are needed, the same client serves.
    let policies = edited(
        "block = [\"tor\"]\nchallenge = [\"vpn\"]",
        "block = [\"tor\", \"vpn\"]",
    );
    assert!(!provider_changed(&old, &policies, None, None));
    // A policy deciding on a new category needs its field in every reply (schema drift else).
    let hosting = edited(
        "challenge = [\"vpn\"]",
        "challenge = [\"vpn\", \"hosting\"]",
    );
    assert!(provider_changed(&old, &hosting, None, None));
    let slower = edited(
        "api_key_env = \"K\"",
        "api_key_env = \"K\"\ntimeout = \"3s\"",
    );
    assert!(provider_changed(&old, &slower, None, None));
    assert!(summary(&old, &slower, true).contains("new provider client"));
    let without = settings(&BASE.replace(
        "[provider]\npreset = \"ipasis\"\nurl = \"http://127.0.0.1:9/v1/{ip}\"\napi_key_env = \"K\"\n",
        "",
    ));
    assert!(provider_changed(&old, &without, None, None));
    assert_eq!(summary(&old, &without, true), "provider removed");
}

#[test]
fn a_feed_change_needs_a_restart() {
    let feed = "\n[feeds.drop]\nurl = \"http://127.0.0.1:9/drop.txt\"\nformat = \"cidr\"\n";
    let old = settings(&format!("{BASE}{feed}"));
    let new = settings(&format!("{BASE}{}", feed.replace("cidr", "tor-exits")));
    assert_eq!(restart_only(&old, &new), ["feeds"]);
    assert_eq!(restart_only(&settings(BASE), &old), ["feeds"]);
    assert!(restart_only(&old, &settings(&format!("{BASE}{feed}"))).is_empty());
}

#[test]
fn a_mode_change_reloads_as_a_policy_change() {
    let old = settings(BASE);
    let observe = edited(
        "on_error = \"open\"",
        "on_error = \"open\"\nmode = \"observe\"",
    );
    assert!(restart_only(&old, &observe).is_empty());
    assert_eq!(summary(&old, &observe, false), "policies");
    assert_eq!(observe.policies.observed(), vec!["default"]);
    assert!(observe
        .warnings
        .iter()
        .any(|w| w.contains("observe mode: default")));
    let back = edited(
        "on_error = \"open\"",
        "on_error = \"open\"\nmode = \"enforce\"",
    );
    assert_eq!(summary(&observe, &back, false), "policies");
    assert!(back.policies.observed().is_empty());
    assert_eq!(summary(&old, &back, false), "no change");
}

#[test]
fn the_events_selection_reloads_and_the_writer_needs_a_restart() {
    let all = settings(&format!("{BASE}\n[events]\ndecisions = \"all\"\n"));
    let non_allow = settings(&format!(
        "{BASE}\n[events]\ndecisions = \"non-allow\"\nsample = 0.5\n"
    ));
    assert!(restart_only(&all, &non_allow).is_empty());
    assert_eq!(summary(&all, &non_allow, false), "events.decisions/sample");
    let off = settings(BASE);
    assert_eq!(restart_only(&off, &all), vec!["events"]);
    assert_eq!(restart_only(&all, &off), vec!["events"]);
    let bigger = settings(&format!(
        "{BASE}\n[events]\ndecisions = \"all\"\nbuffer = 5\n"
    ));
    assert_eq!(restart_only(&all, &bigger), vec!["events"]);
}

#[test]
fn on_miss_applies_at_once_and_the_queues_own_keys_need_a_restart() {
    let old = settings(BASE);
    let allow = edited(
        "on_error = \"open\"\n",
        "on_error = \"open\"\non_miss = \"allow\"\n",
    );
    assert!(restart_only(&old, &allow).is_empty());
    let queue = settings(&format!(
        "{BASE}\n[enrich]\nmax_len = 10\ndedupe = \"5s\"\nbatch = 2\n"
    ));
    assert_eq!(
        restart_only(&old, &queue),
        ["enrich.max_len", "enrich.dedupe"]
    );
}
