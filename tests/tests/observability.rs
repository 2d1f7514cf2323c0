//! The shipped alert rules and Grafana dashboard (`packaging/prometheus`, `packaging/grafana`)
//! only name metrics the service really exports, with label values it really uses: a renamed
//! metric would otherwise leave an alert that can never fire.

use std::collections::BTreeSet;

use ipcheck_tests::{workspace_root, Provider, RedisServer, Service};

const FILES: [&str; 2] = [
    "packaging/prometheus/ipcheck-alerts.yml",
    "packaging/grafana/ipcheck-dashboard.json",
];

/// Every `ipcheck_...` name in `text`, with the exact-match label pairs that follow it in braces.
fn references(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("ipcheck_") {
        // `$ipcheck_policy` is an nginx variable, not a metric.
        let variable = rest[..at].ends_with('$');
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..len].to_owned();
        rest = &tail[len..];
        // `ipcheck_*` in a comment is prose, not a metric.
        if variable || name.ends_with('_') {
            continue;
        }
        let mut labels = Vec::new();
        if let Some(inner) = tail[len..].strip_prefix('{') {
            let inner = &inner[..inner.find('}').unwrap_or(0)];
            // `k="v"` only: `k=~"..."` is a pattern, checked by name alone.
            for pair in inner.split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    if !v.starts_with('~') {
                        labels.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
                    }
                }
            }
        }
        found.push((name, labels));
    }
    found
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    // Redis and a provider configured, so every metric family is exported.
    let provider = Provider::start();
    let redis = RedisServer::start();
    // A feed too, whose download fails (nothing listens on port 9): its families are exported
    // from the start. Decision events on, for theirs.
    let svc = Service::start(&format!(
        "[redis]\nurl = \"{}\"\n\n{}\n\n[feeds.drop]\nurl = \"http://127.0.0.1:9/drop.txt\"\nformat = \"cidr\"\n\n[events]\ndecisions = \"all\"\n",
        redis.url(),
        provider.config_section()
    ));
    let metrics = svc.metrics();
    let families: BTreeSet<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut checked = 0;
    for file in FILES {
        let text = std::fs::read_to_string(workspace_root().join(file)).expect(file);
        let refs = references(&text);
        assert!(!refs.is_empty(), "{file} names no ipcheck metric");
        for (name, labels) in refs {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(f)))
                .unwrap_or(&name);
            assert!(
                families.contains(family),
                "{file}: {name} is not exported; /metrics has {families:?}"
            );
            for (k, v) in labels {
                let pair = format!("{k}=\"{v}\"");
                assert!(
                    metrics
                        .lines()
                        .any(|l| l.starts_with(&format!("{name}{{")) && l.contains(&pair)),
                    "{file}: {name} never carries {pair}:\n{metrics}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} references checked");
}

#[test]
fn the_dashboard_is_valid_json_with_a_query_in_every_panel() {
    let text = std::fs::read_to_string(workspace_root().join(FILES[1])).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| e.contains("ipcheck_"))),
            "{panel}"
        );
    }
}
