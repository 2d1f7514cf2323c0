//! ipcheck-auth with a Redis Cluster as the shared tier: every `IPCHECK` call reaches the primary
//! serving its address's slot, and instances that know different seed nodes share verdicts.

use std::thread::sleep;
use std::time::{Duration, Instant};

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service};

fn config(provider: &Provider, nodes: &str) -> String {
    format!(
        r#"
[redis]
url = "{nodes}"
cluster = true
timeout = "500ms"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
challenge = ["vpn"]
"#,
        provider_section = provider.config_section()
    )
}

/// The node of `cluster` that serves `slot` (each holds an equal, consecutive share).
fn owner(cluster: &[RedisServer], slot: u16) -> &RedisServer {
    let share = 16384 / cluster.len();
    &cluster[(usize::from(slot) / share).min(cluster.len() - 1)]
}

/// An IPv4 address in 198.51.100.0/24 whose slot lives on node `index`.
fn address_on(cluster: &[RedisServer], index: usize) -> String {
    (1..255)
        .map(|i| format!("198.51.100.{i}"))
        .find(|a| std::ptr::eq(owner(cluster, cluster[0].keyslot(a)), &cluster[index]))
        .expect("some address hashes to every node")
}

/// Polls `node` until it holds an entry for `canonical` (written off the response path).
fn wait_for_entry(node: &RedisServer, canonical: &str) -> ipcheck::Hit {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(hit)) = ipcheck::get(&mut node.client(), canonical) {
            return hit;
        }
        assert!(Instant::now() < deadline, "no entry for {canonical}");
        sleep(Duration::from_millis(20));
    }
}

fn dbsize(node: &RedisServer) -> i64 {
    redis::cmd("DBSIZE").query(&mut node.client()).unwrap()
}

/// `MOVED` redirections a node has answered: none when every call went to the right node.
fn moved_replies(node: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut node.client())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("errorstat_MOVED:count="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// `IPCHECK.LSET` calls a node ran that were not refused (the verification's probe is).
fn lean_writes(node: &RedisServer) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut node.client())
        .unwrap();
    let Some(stats) = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_ipcheck.lset:"))
    else {
        return 0;
    };
    let field = |name: &str| -> i64 {
        stats
            .split(',')
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    field("calls=") - field("failed_calls=")
}

#[test]
fn each_entry_lives_on_the_node_serving_its_address() {
    let cluster = RedisServer::start_cluster(3);
    let provider = Provider::start();
    let on_first = address_on(&cluster, 0);
    let on_last = address_on(&cluster, 2);
    provider.respond(&on_first, Reply::flags(&["tor"]));
    provider.respond(&on_last, Reply::flags(&["vpn"]));
    // Seeded with the first node only: the service learns the others from it.
    let svc = Service::start(&config(&provider, &cluster[0].url()));
    // Verified first, so the write-backs below are the lean write.
    ipcheck_tests::eventually("ready", Duration::from_secs(15), || {
        svc.get("/readyz", &[]).status == 200
    });

    assert_eq!(
        svc.auth(&on_first).decision(),
        (403, "block", "tor", "provider")
    );
    assert_eq!(
        svc.auth(&on_last).decision(),
        (401, "challenge", "vpn", "provider")
    );
    assert_eq!(wait_for_entry(&cluster[0], &on_first).reason, "tor");
    let hit = wait_for_entry(&cluster[2], &on_last);
    assert_eq!((hit.reason.as_str(), hit.source.as_str()), ("vpn", "api"));
    assert_eq!(hit.key, format!("ipcheck:{{{on_last}}}"));

    // IPv6: routed by the canonical /64 text, which is the key's hash tag.
    let v6 = "2001:db8:5:5::/64";
    assert_eq!(svc.auth("2001:db8:5:5::1").status, 204);
    let v6_node = owner(&cluster, cluster[0].keyslot(v6));
    assert_eq!(wait_for_entry(v6_node, v6).verdict, "allow");

    // Nothing landed anywhere else.
    let per_node: Vec<i64> = cluster.iter().map(dbsize).collect();
    assert_eq!(per_node.iter().sum::<i64>(), 3, "{per_node:?}");
    assert!(per_node[0] >= 1 && per_node[2] >= 1, "{per_node:?}");

    // A second instance seeded with a list starting at another node shares every verdict.
    let seeds = format!("{},{}", cluster[2].url(), cluster[1].url());
    let other = Service::start(&config(&provider, &seeds));
    assert_eq!(
        other.auth(&on_first).decision(),
        (403, "block", "tor", "redis")
    );
    assert_eq!(
        other.auth(&on_last).decision(),
        (401, "challenge", "vpn", "redis")
    );
    assert_eq!(
        other.auth("2001:db8:5:5::77").header("x-ipcheck-cache"),
        Some("redis")
    );
    assert_eq!(
        provider.calls(),
        3,
        "one provider call per address, cluster-wide"
    );
    // Routed by slot up front, never by trial and redirection.
    let moved: Vec<u64> = cluster.iter().map(moved_replies).collect();
    assert_eq!(moved, [0, 0, 0]);
    // The three write-backs were lean writes, each on the node serving its address.
    let stored: i64 = cluster.iter().map(lean_writes).sum();
    assert_eq!(stored, 3);
    let ready = other.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    let log = other.log();
    assert!(log.contains("redis cluster ("), "{log}");
}

#[test]
fn a_manual_pin_set_on_the_right_node_wins_for_every_instance() {
    let cluster = RedisServer::start_cluster(2);
    let provider = Provider::start();
    let ip = address_on(&cluster, 1);
    provider.respond(&ip, Reply::flags(&["tor"]));
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", &ip, "allow", "REASON", "partner", "SOURCE", "manual"])
        .query(&mut cluster[1].client())
        .unwrap();
    let svc = Service::start(&config(&provider, &cluster[0].url()));
    assert_eq!(svc.auth(&ip).decision(), (204, "allow", "partner", "redis"));
    assert_eq!(provider.calls(), 0);
}
