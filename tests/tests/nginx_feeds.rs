//! A feed through nginx, with the shipped configs plus a `[feeds.tor]` filling the shipped
//! `[lists.tor]` (category tor, named by strict): while the service's own schedule swaps the
//! list again and again (each a different download, every one listing the client), a client
//! asking continuously for a strict location is blocked every time, with reason tor and no
//! provider call: no request ever sees the list empty or half loaded.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipcheck_tests::http_stub::{HttpStub, Response};
use ipcheck_tests::nginx::NginxSetup;
use ipcheck_tests::stack::{example_service_config, KEY_VAR, SECRET};
use ipcheck_tests::{Backend, Provider, RedisServer, Reply, Service, Stack};
use redis::Value;

const TOR: &str = "ipcheck:{lists}:tor";
/// The client every download lists, among thousands of others (10.x.y.z: the feed loads
/// networks in order, so a load a batch at a time would list the client last).
const CLIENT: &str = "127.0.0.70";
/// How often the service downloads the feed: far longer than the list's [`REFRESH`], so the
/// service's copy catches up with each swap before the next one.
const INTERVAL: &str = "1s";
/// The Tor list's `refresh` here (2 s as shipped): the service reads the list's NETINFO this
/// often, so a swap that is not atomic in Redis (the list emptied, then filled a batch at a
/// time) would be read half loaded, not slip between two reads.
const REFRESH: &str = "10ms";
/// Swaps watched while the client asks.
const SWAPS: usize = 5;
const BLOCKED: &str = "{\"error\":\"access denied\",\"reason\":\"tor\"}\n";

/// The `n`th download in the Tor bulk-exit format: the client and 3000 to 3400 other
/// addresses, different ones (and a different count than the download before) every time.
fn exits(n: usize) -> String {
    let others = 3000 + 100 * (n % 5);
    let mut text = format!("{CLIENT}\n");
    for i in 0..others {
        text.push_str(&format!("10.{}.{}.{}\n", n % 200, i >> 8, i & 255));
    }
    text
}

/// The Tor list's network count in Redis (`NETINFO`), `None` while the key does not exist.
fn redis_count(redis: &RedisServer) -> Option<i64> {
    let info: Option<Vec<Value>> = redis::cmd("IPCHECK")
        .arg("NETINFO")
        .arg(TOR)
        .query(&mut redis.client())
        .expect("NETINFO");
    let info = info?;
    let num = |i: usize| match &info[i] {
        Value::Int(n) => *n,
        other => panic!("NETINFO: {other:?}"),
    };
    Some(num(1) + num(3))
}

/// The service's copy's network count (`ipcheck_list_networks{list="tor"}`), 0 when absent.
fn service_count(service: &Service) -> i64 {
    service
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("ipcheck_list_networks{list=\"tor\"}")?
                .strip_prefix(' ')
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as i64)
}

/// Waits (30 s at most) until `check` holds, panicking with `what` otherwise.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(30), check);
}

/// The stack as shipped, its service also running `[feeds.tor]` from `feed_url` every
/// [`INTERVAL`], its Tor list refreshed every [`REFRESH`].
fn stack_with_tor_feed(feed_url: &str) -> Stack {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let backend = Backend::start();
    let shipped = example_service_config(&redis, &provider, "60s");
    let header = "[lists.tor]\ncategory = \"tor\"\n";
    let (before, after) = shipped
        .split_once(header)
        .expect("the shipped config has [lists.tor] with category tor");
    let after = after.replacen("refresh = \"2s\"", &format!("refresh = \"{REFRESH}\""), 1);
    let config = format!(
        "{before}{header}{after}\n[feeds.tor]\nurl = \"{feed_url}\"\nformat = \"tor-exits\"\ninterval = \"{INTERVAL}\"\n"
    );
    assert!(
        config.contains(&format!("refresh = \"{REFRESH}\"")),
        "the shipped [lists.tor] no longer sets refresh = \"2s\""
    );
    let service = Service::builder(&config).env(KEY_VAR, SECRET).start();
    let nginx = NginxSetup::new(service.port(), backend.port()).start();
    Stack {
        nginx,
        service,
        backend,
        provider,
        redis,
    }
}

#[test]
fn a_feed_swap_under_load_never_lets_a_listed_client_through() {
    // The stand-in Tor list: each request gets the next download.
    let downloads = Arc::new(AtomicUsize::new(0));
    let stub = {
        let downloads = Arc::clone(&downloads);
        HttpStub::start(move |_req| Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: exits(downloads.fetch_add(1, Ordering::SeqCst)).into_bytes(),
        })
    };
    let stack = stack_with_tor_feed(&format!("http://127.0.0.1:{}/torbulkexitlist", stub.port()));
    // The provider would call the client clean: only the list blocks it.
    stack.provider.respond_default(Reply::clean());
    eventually("the first download is in Redis and in the service", || {
        let loaded = redis_count(&stack.redis);
        loaded.is_some() && loaded == Some(service_count(&stack.service))
    });

    let stop = AtomicBool::new(false);
    let (asked, wrong) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut asked = 0usize;
            let mut wrong = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = stack.get_as(CLIENT, "/login", &[]);
                asked += 1;
                if r.status != 403 || r.body != BLOCKED {
                    wrong.push(format!("{r:?}"));
                }
            }
            (asked, wrong)
        });
        let mut last = redis_count(&stack.redis);
        for swap in 1..=SWAPS {
            eventually(
                &format!("swap {swap} reaches Redis and the service"),
                || {
                    let now = redis_count(&stack.redis);
                    now.is_some() && now != last && now == Some(service_count(&stack.service))
                },
            );
            last = redis_count(&stack.redis);
        }
        stop.store(true, Ordering::Relaxed);
        client.join().expect("the client thread")
    });

    assert!(
        downloads.load(Ordering::SeqCst) > SWAPS,
        "{SWAPS} swaps after the first load"
    );
    assert!(
        wrong.is_empty(),
        "{} of {asked} answers during the swaps were not a tor block, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert!(
        asked >= 300,
        "only {asked} requests during {SWAPS} swaps: too few to show anything"
    );
    assert_eq!(stack.provider.calls_for(CLIENT), 0, "no provider call");
}
