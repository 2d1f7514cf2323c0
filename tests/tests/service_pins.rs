//! The operator commands `ipcheck-auth pin`, `unpin` and `pins` against a real redis-server with
//! the module and a running service: what the operator is told, what Redis holds, and what the
//! service answers.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use ipcheck_tests::service::run_ops as ops;
use ipcheck_tests::{free_port, Provider, RedisServer, Reply, Service};

fn config(provider: &Provider, redis_url: &str) -> String {
    format!(
        r#"
[cache]
local_ttl = "1s"
negative_ttl = "1s"

[redis]
url = "{redis_url}"
ttl = "1h"

{provider_section}
[policies.default]
block = ["tor"]
"#,
        provider_section = provider.config_section()
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs an operator command that must succeed; its stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let out = ops(config, args);
    assert!(
        out.status.success(),
        "{args:?}: {:?}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asks the service until it answers `want` (its local tier lets a Redis change through only
/// once its copy expires, after cache.local_ttl).
fn wait_decision(svc: &Service, ip: &str, want: (u16, &str, &str, &str)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = svc.auth(ip);
        if reply.decision() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ip}: still {:?}, want {want:?}",
            reply.decision()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(con).unwrap()
}

#[test]
fn pin_blocks_pins_lists_and_unpin_allows_again() {
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    // A one-second default TTL: a pin that expired with it would be gone within the test.
    let redis = RedisServer::builder()
        .module_args(&["default-ttl", "1"])
        .start();
    let mut con = redis.client();
    let svc = Service::start(&config(&provider, &redis.url()));
    let cfg = svc.config_path();

    assert_eq!(
        svc.auth("192.0.2.60").decision(),
        (204, "allow", "", "provider")
    );
    let out = ok(&cfg, &["pin", "192.0.2.60", "block", "--reason", "abuse"]);
    assert!(
        out.starts_with(
            "pinned 192.0.2.60 (key ipcheck:192.0.2.60): block, reason abuse, expires never\n"
        ),
        "{out}"
    );
    assert_eq!(
        ttl(&mut con, "ipcheck:192.0.2.60"),
        -1,
        "a pin without --for has no TTL"
    );
    wait_decision(&svc, "192.0.2.60", (403, "block", "abuse", "redis"));

    // A manual pin written without PERSIST still lives for default-ttl only; ours outlives it.
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", "192.0.2.61", "block", "SOURCE", "manual"])
        .query(&mut con)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ttl(&mut con, "ipcheck:192.0.2.61") != -2 {
        assert!(
            Instant::now() < deadline,
            "the default-ttl pin never expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ttl(&mut con, "ipcheck:192.0.2.60"), -1);
    assert_eq!(
        svc.auth("192.0.2.60").decision().0,
        403,
        "still pinned past default-ttl"
    );

    // IPv6 is pinned under the key the service reads: its /64.
    let out = ok(
        &cfg,
        &["pin", "2001:db8:5:5::1", "challenge", "--for", "1h"],
    );
    assert!(
        out.starts_with(
            "pinned 2001:db8:5:5::/64 (key ipcheck:2001:db8:5:5::/64): challenge, reason -, expires in 3"
        ),
        "{out}"
    );
    let left = ttl(&mut con, "ipcheck:2001:db8:5:5::/64");
    assert!((3590..=3600).contains(&left), "{left}");
    assert_eq!(
        svc.auth("2001:db8:5:5::abcd").decision(),
        (401, "challenge", "", "redis")
    );

    // The listing shows pins only, not the provider's answers the service stored.
    assert_eq!(
        svc.auth("192.0.2.62").decision(),
        (204, "allow", "", "provider")
    );
    ipcheck_tests::ipcheck::wait_for(&mut con, "192.0.2.62", "the provider's answer", |_| true);
    let list = ok(&cfg, &["pins"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(lines[0], "192.0.2.60 block abuse never");
    assert!(
        lines[1].starts_with("2001:db8:5:5::/64 challenge - 3") && lines[1].ends_with('s'),
        "{list}"
    );
    assert_eq!(lines[2], "2 pins");

    // Unpinning a provider's answer needs --any; nothing is removed without it.
    let out = ops(&cfg, &["unpin", "192.0.2.62"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds no pin") && stderr(&out).contains("--any"),
        "{}",
        stderr(&out)
    );
    assert!(ipcheck_tests::ipcheck::get(&mut con, "192.0.2.62")
        .unwrap()
        .is_some());
    let out = ok(&cfg, &["unpin", "192.0.2.62", "--any"]);
    assert!(out.starts_with("unpinned 192.0.2.62"), "{out}");

    // Unpin: the service asks again and allows.
    let out = ok(&cfg, &["unpin", "192.0.2.60"]);
    assert_eq!(
        out,
        "unpinned 192.0.2.60 (key ipcheck:192.0.2.60): removed block, reason abuse, expires never, source manual\n"
    );
    assert!(ipcheck_tests::ipcheck::get(&mut con, "192.0.2.60")
        .unwrap()
        .is_none());
    wait_decision(&svc, "192.0.2.60", (204, "allow", "", "provider"));
    let out = ok(&cfg, &["unpin", "192.0.2.99"]);
    assert_eq!(
        out,
        "nothing to unpin: no entry for 192.0.2.99 (key ipcheck:192.0.2.99)\n"
    );
    let list = ok(&cfg, &["pins"]);
    assert!(list.ends_with("\n1 pin\n"), "{list}");
}

#[test]
fn bad_arguments_exit_2_naming_the_argument() {
    let provider = Provider::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ipcheck.toml");
    // Nothing listens there: arguments are checked before Redis is asked.
    let url = format!("redis://127.0.0.1:{}/", free_port());
    std::fs::write(&cfg, config(&provider, &url)).unwrap();
    for (args, named) in [
        (&["pin", "192.0.2.300", "block"][..], "<address>"),
        (&["pin", "2001:db8::/32", "block"][..], "<address>"),
        (&["pin", "192.0.2.1", "deny"][..], "<verdict>"),
        (&["pin", "192.0.2.1", "block", "--for", "soon"][..], "--for"),
        (&["pin", "192.0.2.1", "block", "--for", "2y"][..], "--for"),
        (
            &["pin", "192.0.2.1", "block", "--reason", "Bad Reason"][..],
            "--reason",
        ),
        (&["unpin", "not-an-ip"][..], "<address>"),
        (&["pin", "192.0.2.1"][..], "<VERDICT>"),
    ] {
        let out = ops(&cfg, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn redis_faults_exit_1_saying_what_to_fix_without_the_password() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ipcheck.toml");

    // Unreachable: named by host:port, never with the password.
    let port = free_port();
    let url = format!("redis://ops:s3cret-pw@127.0.0.1:{port}/");
    std::fs::write(&cfg, config(&provider, &url)).unwrap();
    for args in [
        &["pin", "192.0.2.1", "block"][..],
        &["pins"][..],
        &["unpin", "192.0.2.1"][..],
    ] {
        let out = ops(&cfg, args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&format!("127.0.0.1:{port}")),
            "{args:?}: {text}"
        );
        assert!(!text.contains("s3cret-pw"), "{args:?}: {text}");
    }

    // A user that may only read: told what to grant.
    redis.acl_user("reader", &["%R~ipcheck:*", "+ipcheck|get"]);
    let url = format!("redis://reader:pass@127.0.0.1:{}/", redis.port());
    std::fs::write(&cfg, config(&provider, &url)).unwrap();
    let out = ops(&cfg, &["pin", "192.0.2.1", "block"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("grant +ipcheck|set"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("pass@"), "{}", stderr(&out));
    let out = ops(&cfg, &["pins"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("grant +scan"), "{}", stderr(&out));

    // No Redis in the config at all.
    std::fs::write(&cfg, "[policies.default]\nblock = [\"tor\"]\n").unwrap();
    let out = ops(&cfg, &["pins"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no Redis configured"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn in_a_cluster_pins_land_on_their_slot_and_every_primary_is_listed() {
    let cluster = RedisServer::start_cluster(3);
    let provider = Provider::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ipcheck.toml");
    // Seeded with one node only: the commands learn the others.
    let text = config(&provider, &cluster[0].url()).replace(
        "ttl = \"1h\"",
        "ttl = \"1h\"\ncluster = true\ntimeout = \"500ms\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let share = 16384 / cluster.len();
    let node_of = |address: &str| (usize::from(cluster[0].keyslot(address)) / share).min(2);
    // One address on each of the first and the last node.
    let on = |index: usize| {
        (1..255)
            .map(|i| format!("198.51.100.{i}"))
            .find(|a| node_of(a) == index)
            .expect("some address hashes to every node")
    };
    let (first, last) = (on(0), on(2));
    for (address, verdict) in [(&first, "block"), (&last, "allow")] {
        let out = ok(&cfg, &["pin", address, verdict]);
        assert!(
            out.starts_with(&format!(
                "pinned {address} (key ipcheck:{{{address}}}): {verdict}"
            )),
            "{out}"
        );
    }
    let mut con = cluster[2].client();
    assert_eq!(ttl(&mut con, &format!("ipcheck:{{{last}}}")), -1);
    let mut expected = vec![
        format!("{first} block - never"),
        format!("{last} allow - never"),
    ];
    expected.sort();
    expected.push("2 pins".to_owned());
    assert_eq!(ok(&cfg, &["pins"]).lines().collect::<Vec<_>>(), expected);
    let out = ok(&cfg, &["unpin", &last]);
    assert!(out.starts_with(&format!("unpinned {last}")), "{out}");
    assert!(ok(&cfg, &["pins"]).ends_with("\n1 pin\n"));
}
