//! ipcheck-auth end to end: `on_miss = "allow"` and the enrichment workers. A cold address is
//! answered at once and queued once (dedupe) to the Redis stream; workers read it as one
//! consumer group, and a worker killed mid-lookup leaves its entries to another, so that each
//! address is still written into Redis exactly once.

use std::net::IpAddr;
use std::time::Duration;

use ipcheck_tests::ipcheck;
use ipcheck_tests::{Provider, RedisServer, Reply, Service, Worker};
use redis::Value;

const QUEUE: &str = "ipcheck:{enrich}:queue";

fn config(provider: &Provider, redis: &RedisServer) -> String {
    format!(
        r#"
[cache]
local_ttl = "60s"

[redis]
url = "{redis}"
timeout = "1s"

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = ""
timeout = "10s"

[enrich]
claim_idle = "1s"
batch = 2

[policies.default]
block = ["tor"]
on_miss = "allow"

[policies.waiting]
block = ["tor"]
"#,
        redis = redis.url(),
        url = provider.url_template(),
    )
}

/// redis-server logging every command to its slow log, so a test can count writes.
fn recording_redis() -> RedisServer {
    RedisServer::builder()
        .conf("slowlog-log-slower-than 0")
        .conf("slowlog-max-len 100000")
        .start()
}

/// How many writes of `ip`'s entry Redis has run: `IPCHECK.LSET <key> ...` (the lean write) or
/// `IPCHECK SET <ip> ...` (the slow log shows the module's key, e.g. `ipcheck:192.0.2.1`, where
/// the address was).
fn writes_of(redis: &RedisServer, ip: &str) -> usize {
    let log: Value = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut redis.client())
        .expect("SLOWLOG GET");
    let Value::Array(entries) = log else {
        panic!("SLOWLOG GET: {log:?}")
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).to_ascii_uppercase(),
        Value::SimpleString(s) => s.to_ascii_uppercase(),
        _ => String::new(),
    };
    entries
        .iter()
        .filter(|e| {
            let Value::Array(fields) = e else {
                return false;
            };
            let Some(Value::Array(args)) = fields.get(3) else {
                return false;
            };
            let ip = ip.to_ascii_uppercase();
            let names = |at: usize| {
                let target = text(args.get(at).unwrap_or(&Value::Nil)).replace(['{', '}'], "");
                target == ip || target.ends_with(&format!(":{ip}"))
            };
            match args.first().map(text).as_deref() {
                Some("IPCHECK.LSET") => names(1),
                Some("IPCHECK") => args.get(1).map(text).as_deref() == Some("SET") && names(2),
                _ => false,
            }
        })
        .count()
}

fn xlen(redis: &RedisServer) -> usize {
    redis::cmd("XLEN")
        .arg(QUEUE)
        .query(&mut redis.client())
        .expect("XLEN")
}

/// Polls until `done` holds (20 s at most), naming `what` if it never does.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(20), done);
}

#[test]
fn a_cold_address_is_answered_at_once_queued_once_and_decided_on_facts_once_a_worker_ran() {
    let provider = Provider::start();
    let redis = recording_redis();
    let tor = "192.0.2.66";
    provider.respond(tor, Reply::flags(&["tor"]));
    provider.set_delay(Duration::from_secs(2));
    let svc = Service::start(&config(&provider, &redis));
    assert_eq!(svc.get("/readyz", &[]).status, 200);

    // Answered without asking anybody: no facts yet, so allowed, and queued.
    assert_eq!(svc.auth(tor).decision(), (204, "allow", "", "queued"));
    assert_eq!(provider.calls(), 0);
    wait_until("the address is in the queue", || xlen(&redis) == 1);
    // Asked again: answered the same way, queued once (within a second of the first read the
    // address is not read again; later the dedupe marker stops it).
    assert_eq!(svc.auth(tor).decision(), (204, "allow", "", "queued"));
    wait_until("the repeat is skipped or counted as a duplicate", || {
        let m = svc.metrics();
        m.contains("ipcheck_enrich_reads_total{result=\"skipped\"} 1\n")
            || m.contains("ipcheck_enrich_queued_total{result=\"duplicate\"} 1\n")
    });
    assert_eq!(xlen(&redis), 1);
    assert!(svc
        .metrics()
        .contains("ipcheck_enrich_queued_total{result=\"added\"} 1\n"));

    // A policy that waits still waits for the provider, on the same service.
    let other = "192.0.2.67";
    provider.respond(other, Reply::flags(&["tor"]));
    assert_eq!(
        svc.auth_policy(other, "waiting").decision(),
        (403, "block", "tor", "provider")
    );

    let _worker = Worker::start(&config(&provider, &redis), "w1", &[]);
    let hit = ipcheck::wait_for(&mut redis.client(), tor, "written by the worker", |_| true);
    assert_eq!(
        (hit.verdict.as_str(), hit.source.as_str()),
        ("block", "api")
    );
    // Read in the background (within a second of the write), then kept locally.
    wait_until("decided on the worker's facts", || {
        svc.auth(tor).decision() == (403, "block", "tor", "local")
    });
    assert_eq!(provider.calls_for(tor), 1, "{:?}", provider.seen());
    assert_eq!(writes_of(&redis, tor), 1);
}

#[test]
fn two_workers_share_the_queue_and_a_killed_ones_entries_are_written_exactly_once() {
    let provider = Provider::start();
    let redis = recording_redis();
    let ips = ["192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13"];
    provider.respond_default(Reply::flags(&["vpn"]));
    provider.set_delay(Duration::from_secs(2));
    let cfg = config(&provider, &redis);
    let svc = Service::start(&cfg);
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    for ip in ips {
        assert_eq!(svc.auth(ip).decision(), (204, "allow", "", "queued"));
    }
    wait_until("four entries queued", || xlen(&redis) == 4);

    // The first worker takes a batch of two and is killed while the provider holds both.
    let mut a = Worker::start(&cfg, "a", &[]);
    wait_until("worker a holds two lookups", || provider.in_flight() == 2);
    let held: Vec<String> = provider.seen().into_iter().map(|s| s.ip).collect();
    a.kill();

    // The second takes the other two from the queue, then claims the killed one's.
    let mut b = Worker::start(&cfg, "b", &[]);
    for ip in ips {
        ipcheck::wait_for(&mut redis.client(), ip, "written", |h| h.reason == "vpn");
    }
    wait_until("every entry acknowledged", || {
        let pending: Value = redis::cmd("XPENDING")
            .arg(QUEUE)
            .arg("ipcheck-enrich")
            .query(&mut redis.client())
            .expect("XPENDING");
        matches!(pending, Value::Array(ref p) if p.first() == Some(&Value::Int(0)))
    });
    for ip in ips {
        assert_eq!(writes_of(&redis, ip), 1, "IPCHECK SET of {ip}");
        let asked = if held.contains(&ip.to_owned()) { 2 } else { 1 };
        assert_eq!(provider.calls_for(ip), asked, "{ip}: {:?}", provider.seen());
    }
    assert_eq!(b.metric("ipcheck_enrich_claimed_total"), 2);
    assert_eq!(
        b.metric("ipcheck_enrich_entries_total{result=\"written\"}"),
        4
    );

    // An entry delivered again for an address that is fresh in Redis costs no provider call.
    let again: IpAddr = ips[0].parse().unwrap();
    let _: String = redis::cmd("XADD")
        .arg(QUEUE)
        .arg("*")
        .arg("ip")
        .arg(again.to_string())
        .query(&mut redis.client())
        .expect("XADD");
    wait_until("the repeat is acknowledged as fresh", || {
        b.metric("ipcheck_enrich_entries_total{result=\"fresh\"}") == 1
    });
    assert_eq!(provider.calls(), 6);
    assert_eq!(writes_of(&redis, ips[0]), 1);

    // The queue deleted under a running worker (an operator's DEL): made again, and read.
    let _: i64 = redis::cmd("DEL")
        .arg(QUEUE)
        .query(&mut redis.client())
        .expect("DEL");
    let late = "192.0.2.14";
    let _: String = redis::cmd("XADD")
        .arg(QUEUE)
        .arg("*")
        .arg("ip")
        .arg(late)
        .query(&mut redis.client())
        .expect("XADD");
    ipcheck::wait_for(&mut redis.client(), late, "written after the DEL", |h| {
        h.reason == "vpn"
    });

    // SIGTERM: a clean exit.
    assert!(
        b.terminate(Duration::from_secs(10)),
        "worker b log:\n{}",
        b.log()
    );
}

#[test]
fn a_live_workers_slow_lookups_are_not_claimed_by_another() {
    let provider = Provider::start();
    let redis = recording_redis();
    let ips = ["192.0.2.30", "192.0.2.31"];
    // Longer than claim_idle (1 s): only the holder's touching keeps the entries its own.
    provider.set_delay(Duration::from_millis(2500));
    let cfg = config(&provider, &redis);
    let svc = Service::start(&cfg);
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    for ip in ips {
        assert_eq!(svc.auth(ip).decision(), (204, "allow", "", "queued"));
    }
    wait_until("two entries queued", || xlen(&redis) == 2);
    let _a = Worker::start(&cfg, "a", &[]);
    wait_until("worker a holds both lookups", || provider.in_flight() == 2);
    let b = Worker::start(&cfg, "b", &[]);
    for ip in ips {
        ipcheck::wait_for(&mut redis.client(), ip, "written", |_| true);
    }
    for ip in ips {
        assert_eq!(provider.calls_for(ip), 1, "{ip}: {:?}", provider.seen());
        assert_eq!(writes_of(&redis, ip), 1, "IPCHECK SET of {ip}");
    }
    assert_eq!(b.metric("ipcheck_enrich_claimed_total"), 0, "{}", b.log());
}

#[test]
fn two_instances_queue_one_cold_address_once() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let cfg = config(&provider, &redis);
    let (a, b) = (Service::start(&cfg), Service::start(&cfg));
    let ip = "192.0.2.40";
    assert_eq!(a.auth(ip).decision(), (204, "allow", "", "queued"));
    wait_until("queued by the first instance", || xlen(&redis) == 1);
    // The second instance has never seen it: the marker in Redis is what stops it.
    assert_eq!(b.auth(ip).decision(), (204, "allow", "", "queued"));
    wait_until("the second instance finds the marker", || {
        b.metrics()
            .contains("ipcheck_enrich_queued_total{result=\"duplicate\"} 1\n")
    });
    assert_eq!(xlen(&redis), 1);
    assert_eq!(provider.calls(), 0);
}

#[test]
fn a_flood_of_cold_addresses_from_two_instances_is_queued_once_each() {
    // Offers that pile up are added in batches (one pipeline of markers, one of XADDs): every
    // address still reaches the stream exactly once, the second instance's copies are all
    // duplicates, and none is dropped.
    let provider = Provider::start();
    let redis = RedisServer::start();
    let cfg = config(&provider, &redis);
    let (a, b) = (Service::start(&cfg), Service::start(&cfg));
    let addresses: Vec<String> = (0..200)
        .map(|i| format!("198.51.100.{}", i % 250 + 1))
        .chain((0..200).map(|i| format!("2001:db8:{i:x}::1")))
        .collect();
    std::thread::scope(|scope| {
        for chunk in addresses.chunks(50) {
            let (a, b) = (&a, &b);
            scope.spawn(move || {
                for ip in chunk {
                    assert_eq!(a.auth(ip).decision().3, "queued", "{ip}");
                    assert_eq!(b.auth(ip).decision().3, "queued", "{ip}");
                }
            });
        }
    });
    let counted = |svc: &Service, result: &str| -> usize {
        let series = format!("ipcheck_enrich_queued_total{{result=\"{result}\"}} ");
        svc.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until("every offer settled", || {
        [&a, &b]
            .iter()
            .map(|s| counted(s, "added") + counted(s, "duplicate"))
            .sum::<usize>()
            == 2 * addresses.len()
    });
    assert_eq!(xlen(&redis), addresses.len());
    assert_eq!(counted(&a, "added") + counted(&b, "added"), addresses.len());
    for svc in [&a, &b] {
        assert_eq!(counted(svc, "dropped") + counted(svc, "failed"), 0);
    }
    assert_eq!(provider.calls(), 0);
}

#[test]
fn in_a_redis_cluster_the_queue_and_the_writes_reach_their_nodes() {
    let cluster = RedisServer::start_cluster(3);
    let provider = Provider::start();
    let ip = "198.51.100.77";
    provider.respond(ip, Reply::flags(&["tor"]));
    let cfg = format!(
        r#"
[redis]
url = "{nodes}"
cluster = true
timeout = "1s"

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = ""
timeout = "10s"

[policies.default]
block = ["tor"]
on_miss = "allow"
"#,
        nodes = cluster[0].url(),
        url = provider.url_template(),
    );
    let svc = Service::start(&cfg);
    assert_eq!(svc.auth(ip).decision(), (204, "allow", "", "queued"));
    let _worker = Worker::start(&cfg, "w1", &[]);
    wait_until("decided on the facts the worker wrote", || {
        svc.auth(ip).decision() == (403, "block", "tor", "local")
    });
    assert_eq!(provider.calls_for(ip), 1);
    let moved: u64 = cluster
        .iter()
        .map(|node| {
            let info: String = redis::cmd("INFO")
                .arg("errorstats")
                .query(&mut node.client())
                .expect("INFO errorstats");
            info.lines()
                .find_map(|l| l.strip_prefix("errorstat_MOVED:count="))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(moved, 0, "every command went to the node serving its slot");
}

#[test]
fn a_pin_on_a_cold_address_applies_from_the_first_request_after_the_background_read() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    let ip = "192.0.2.90";
    ipcheck::set(
        &mut redis.client(),
        &[ip, "block", "SOURCE", "manual", "REASON", "fraud-ring"],
    )
    .expect("pin");
    let svc = Service::start(&config(&provider, &redis));
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    // The start-up log says so.
    svc.wait_for_log_line(&[
        "on_miss = \"allow\": default",
        "applies from the next request",
    ]);
    // This instance has not seen the address: answered at once, without reading Redis.
    assert_eq!(svc.auth(ip).decision(), (204, "allow", "", "queued"));
    // The background read finds the pin a moment later (within a second) and keeps it locally.
    wait_until("the pin applies", || {
        svc.auth(ip).decision() == (403, "block", "fraud-ring", "local")
    });
    assert!(svc
        .metrics()
        .contains("ipcheck_enrich_reads_total{result=\"hit\"} 1\n"));
    // A pin is an answer: nothing was queued, nobody asked.
    assert_eq!(xlen(&redis), 0);
    assert_eq!(provider.calls(), 0);
}

#[test]
fn a_stalled_redis_does_not_hold_up_a_cold_address() {
    let provider = Provider::start();
    let redis = RedisServer::start();
    // A policy that refuses when Redis cannot be asked: waiting for the stalled Redis (up to
    // redis.timeout) would end in a refusal; not waiting answers by the on_miss rule.
    let cfg = config(&provider, &redis).replace(
        "[policies.default]\nblock = [\"tor\"]\non_miss = \"allow\"\n",
        "[policies.default]\nblock = [\"tor\"]\non_miss = \"allow\"\non_redis_error = \"closed\"\n",
    );
    assert!(cfg.contains("on_redis_error = \"closed\""), "{cfg}");
    let svc = Service::start(&cfg);
    assert_eq!(svc.get("/readyz", &[]).status, 200);
    redis.signal("STOP");
    let reply = svc.auth("192.0.2.91");
    assert_eq!(reply.decision(), (204, "allow", "", "queued"));
    wait_until("the background read gives up", || {
        svc.metrics()
            .contains("ipcheck_enrich_reads_total{result=\"error\"} 1\n")
    });
    redis.signal("CONT");
    // Nothing was kept: once Redis answers again the address is read (and queued) as usual.
    wait_until("queued once Redis is back", || {
        svc.auth("192.0.2.91").decision().3 == "queued" && xlen(&redis) == 1
    });
    assert_eq!(provider.calls(), 0);
}
