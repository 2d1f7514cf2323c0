//! ipcheck-auth end to end: feeds. A download served by a local stand-in is loaded into a network
//! list in Redis (by the service on its interval, or once by `ipcheck-auth feed`, or from a file
//! with `--file`); a second run swaps the list atomically under a reader that never sees it
//! missing; an empty, shrinking or broken download is refused, the list unchanged, the failure
//! logged, counted and reported in `/readyz`; of two instances only one downloads per interval.

use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipcheck_tests::http_stub::{HttpStub, Response};
use ipcheck_tests::service::service_command;
use ipcheck_tests::{RedisServer, Service};
use redis::Value;

const LIVE: &str = "ipcheck:{lists}:drop";

/// A feed stand-in: serves whatever `body`/`status` hold now, counting requests.
struct Feed {
    stub: HttpStub,
    body: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

impl Feed {
    fn start(body: &str) -> Feed {
        let state = Arc::new(Mutex::new((200, body.to_owned())));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (Arc::clone(&state), Arc::clone(&hits));
        let stub = HttpStub::start(move |_req| {
            h.fetch_add(1, Ordering::SeqCst);
            let (status, body) = s.lock().unwrap().clone();
            Response {
                status,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: body.into_bytes(),
            }
        });
        Feed {
            stub,
            body: state,
            hits,
        }
    }

    fn serve(&self, status: u16, body: &str) {
        *self.body.lock().unwrap() = (status, body.to_owned());
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/drop.txt", self.stub.port())
    }
}

fn config(redis: &RedisServer, feed: &Feed, format: &str, interval: &str) -> String {
    format!(
        r#"
[redis]
url = "{redis}"

[policies.default]
on_error = "open"

[feeds.drop]
url = "{url}"
format = "{format}"
list = "drop"
interval = "{interval}"
max_shrink = 0.5
value = "drop"
timeout = "5s"
"#,
        redis = redis.url(),
        url = feed.url()
    )
}

/// `n` distinct /24 networks in the DROP format, `10.0.0.0/24` first.
fn drop_list(n: u32) -> String {
    let mut text = String::from("; Spamhaus DROP List\n; Last-Modified: test\n");
    for i in 0..n {
        let a = 10 + (i >> 16);
        text.push_str(&format!(
            "{a}.{}.{}.0/24 ; SBL{i}\n",
            (i >> 8) & 255,
            i & 255
        ));
    }
    text
}

/// Every network of the list, by `NETDUMP`.
fn dump(redis: &RedisServer) -> Vec<(String, String)> {
    let mut con = redis.client();
    let mut cursor = "0".to_owned();
    let mut all = Vec::new();
    loop {
        let (next, page): (String, Vec<(String, String, i64)>) = redis::cmd("IPCHECK")
            .arg("NETDUMP")
            .arg(LIVE)
            .arg(&cursor)
            .arg("COUNT")
            .arg(10000)
            .query(&mut con)
            .unwrap();
        all.extend(page.into_iter().map(|(n, v, _)| (n, v)));
        if next == "0" {
            return all;
        }
        cursor = next;
    }
}

fn count(redis: &RedisServer) -> Option<u64> {
    let info: Option<Vec<Value>> = redis::cmd("IPCHECK")
        .arg("NETINFO")
        .arg(LIVE)
        .query(&mut redis.client())
        .unwrap();
    let info = info?;
    let num = |i: usize| match &info[i] {
        Value::Int(n) => *n as u64,
        other => panic!("NETINFO: {other:?}"),
    };
    Some(num(1) + num(3))
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("ipcheck.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `ipcheck-auth --config <path> feed <args>`.
fn feed_cli(path: &std::path::Path, args: &[&str]) -> Output {
    service_command()
        .arg("--config")
        .arg(path)
        .arg("feed")
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A metric's value (0 when absent).
fn metric(svc: &Service, line: &str) -> u64 {
    svc.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (up to 30 s) until `done` holds.
fn eventually(what: &str, done: impl FnMut() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(30), done);
}

#[test]
fn the_service_loads_a_feed_into_its_list() {
    let redis = RedisServer::start();
    let feed = Feed::start("# FireHOL level1\n10.0.0.0/8\n192.0.2.7 # one host\n2001:db8::/32\n");
    let svc = Service::start(&config(&redis, &feed, "cidr", "1h"));

    eventually("the list is loaded", || count(&redis) == Some(3));
    assert_eq!(
        dump(&redis),
        [
            ("10.0.0.0/8".to_owned(), "drop".to_owned()),
            ("192.0.2.7/32".to_owned(), "drop".to_owned()),
            ("2001:db8::/32".to_owned(), "drop".to_owned()),
        ]
    );
    eventually("the run is counted", || {
        metric(&svc, "ipcheck_feed_runs_total{feed=\"drop\",result=\"ok\"}") == 1
    });
    assert_eq!(metric(&svc, "ipcheck_feed_networks{feed=\"drop\"}"), 3);
    assert!(
        metric(
            &svc,
            "ipcheck_feed_last_success_timestamp_seconds{feed=\"drop\"}"
        ) > 0
    );
    let ready = svc.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.starts_with("ready\n"), "{}", ready.body);
    assert!(
        ready.body.contains("feeds: drop ok (3 networks"),
        "{}",
        ready.body
    );
    assert_eq!(feed.hits.load(Ordering::SeqCst), 1);
    // Neither the staging key nor anything but the claim is left behind.
    let mut con = redis.client();
    let staging: bool = redis::cmd("EXISTS")
        .arg(format!("{LIVE}.new"))
        .query(&mut con)
        .unwrap();
    assert!(!staging);
    let lock: Option<String> = redis::cmd("GET")
        .arg(format!("{LIVE}.lock"))
        .query(&mut con)
        .unwrap();
    assert!(lock.is_some_and(|l| l.starts_with("ipcheck-auth:")));
}

#[test]
fn a_second_run_swaps_the_list_atomically_under_readers() {
    let redis = RedisServer::start();
    let old = drop_list(6000);
    let new = drop_list(4000);
    let feed = Feed::start(&old);
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config(&redis, &feed, "cidr", "1h"));
    let out = feed_cli(&path, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded 6000 networks into list drop (was absent)"),
        "{}",
        text(&out)
    );

    // A reader matching an address in both downloads while the list is swapped back and forth
    // (each load is several NETADD batches): it must always find it.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let mut con = redis.client();
        std::thread::spawn(move || {
            let (mut asked, mut missing) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let reply: Value = redis::cmd("IPCHECK")
                    .arg("NETMATCH")
                    .arg("10.0.5.9")
                    .arg(LIVE)
                    .query(&mut con)
                    .unwrap();
                asked += 1;
                if reply == Value::Nil {
                    missing += 1;
                }
            }
            (asked, missing)
        })
    };
    for body in [&new, &old, &new] {
        feed.serve(200, body);
        let out = feed_cli(&path, &["drop"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    stop.store(true, Ordering::Relaxed);
    let (asked, missing) = reader.join().unwrap();
    assert!(asked > 0);
    assert_eq!(
        missing, 0,
        "{missing} of {asked} matches found no list during the swaps"
    );
    assert_eq!(count(&redis), Some(4000));
    assert_eq!(dump(&redis).len(), 4000);
}

#[test]
fn refused_downloads_leave_the_list_unchanged() {
    let redis = RedisServer::start();
    let feed = Feed::start(&drop_list(10));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config(&redis, &feed, "cidr", "1h"));
    assert!(feed_cli(&path, &[]).status.success());
    let before = dump(&redis);
    assert_eq!(before.len(), 10);

    for (status, body, says) in [
        (200, drop_list(4), "shrink"),
        (200, "; nothing today\n".to_owned(), "no network"),
        (
            200,
            format!("{}not-a-network\n", drop_list(10)),
            "line 13: 'not-a-network'",
        ),
        (500, drop_list(10), "HTTP 500"),
    ] {
        feed.serve(status, &body);
        let out = feed_cli(&path, &["drop"]);
        assert_eq!(out.status.code(), Some(1), "{says}: {}", text(&out));
        assert!(text(&out).contains(says), "{says}: {}", text(&out));
        assert!(text(&out).contains("list drop unchanged"), "{}", text(&out));
        assert_eq!(dump(&redis), before, "{says}");
    }
    // Within max_shrink (half) it loads.
    feed.serve(200, &drop_list(5));
    assert!(feed_cli(&path, &["drop"]).status.success());
    assert_eq!(count(&redis), Some(5));
}

#[test]
fn broken_crawler_json_is_refused() {
    let redis = RedisServer::start();
    let feed = Feed::start(
        r#"{"creationTime":"x","prefixes":[{"ipv4Prefix":"66.249.64.0/27"},{"ipv6Prefix":"2001:4860:4801:10::/64"}]}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config(&redis, &feed, "crawler-json", "1h"));
    assert!(feed_cli(&path, &[]).status.success());
    assert_eq!(count(&redis), Some(2));
    feed.serve(200, r#"{"prefixes":[{"ipv4Prefix":"66.249.64.0/27"}"#);
    let out = feed_cli(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not the crawler-json format"),
        "{}",
        text(&out)
    );
    assert_eq!(count(&redis), Some(2));
}

#[test]
fn the_service_refuses_broken_downloads_logs_counts_and_reports_them() {
    let redis = RedisServer::start();
    let feed = Feed::start(&drop_list(10));
    let svc = Service::start(&config(&redis, &feed, "cidr", "1s"));
    eventually("the list is loaded", || count(&redis) == Some(10));
    let before = dump(&redis);

    for (status, body, result) in [
        (200, drop_list(2), "shrink"),
        (200, String::new(), "empty"),
        (200, "10.0.0.0/24\n10.0.0.0/33\n".to_owned(), "invalid"),
        (503, drop_list(10), "fetch_error"),
    ] {
        feed.serve(status, &body);
        let counter = format!("ipcheck_feed_runs_total{{feed=\"drop\",result=\"{result}\"}}");
        eventually(&format!("a {result} run is counted"), || {
            metric(&svc, &counter) >= 1
        });
        assert_eq!(dump(&redis), before, "{result}");
        let ready = svc.get("/readyz", &[]);
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert!(
            ready.body.starts_with("ready, degraded: feeds"),
            "{}",
            ready.body
        );
        assert!(
            ready.body.contains(&format!("drop failing ({result}")),
            "{}",
            ready.body
        );
        let log = svc.log();
        assert!(
            log.contains(&format!("feed drop ({result})")) && log.contains("list drop unchanged"),
            "{log}"
        );
    }
    feed.serve(200, &drop_list(12));
    eventually("a good download loads again", || count(&redis) == Some(12));
    eventually("ready again", || {
        svc.get("/readyz", &[]).body.starts_with("ready\n")
    });
}

#[test]
fn of_two_instances_only_one_downloads_per_interval() {
    let redis = RedisServer::start();
    let feed = Feed::start(&drop_list(10));
    let config = config(&redis, &feed, "cidr", "1h");
    let first = Service::start(&config);
    let second = Service::start(&config);
    let runs = |svc: &Service| {
        ["ok", "skipped"].map(|r| {
            metric(
                svc,
                &format!("ipcheck_feed_runs_total{{feed=\"drop\",result=\"{r}\"}}"),
            )
        })
    };
    eventually("both instances ran the feed", || {
        let (a, b) = (runs(&first), runs(&second));
        a[0] + a[1] == 1 && b[0] + b[1] == 1
    });
    let (a, b) = (runs(&first), runs(&second));
    assert_eq!(a[0] + b[0], 1, "exactly one loaded it: {a:?} {b:?}");
    let idle = if a[1] == 1 { &first } else { &second };
    let ready = idle.get("/readyz", &[]);
    assert!(ready.body.starts_with("ready\n"), "{}", ready.body);
    assert!(
        ready
            .body
            .contains("feeds: drop ok (run by another instance)"),
        "{}",
        ready.body
    );
    assert_eq!(feed.hits.load(Ordering::SeqCst), 1);
    assert_eq!(count(&redis), Some(10));
}

#[test]
fn the_one_shot_command_loads_a_file_and_checks_its_arguments() {
    let redis = RedisServer::start();
    let feed = Feed::start("");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config(&redis, &feed, "cidr", "1h"));
    let file = dir.path().join("drop.txt");
    std::fs::write(&file, drop_list(7)).unwrap();

    let out = feed_cli(&path, &["drop", "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(count(&redis), Some(7));
    assert_eq!(
        feed.hits.load(Ordering::SeqCst),
        0,
        "--file downloads nothing"
    );
    let lock: bool = redis::cmd("EXISTS")
        .arg(format!("{LIVE}.lock"))
        .query(&mut redis.client())
        .unwrap();
    assert!(!lock, "the one-shot command releases the feed's lock");

    for (args, says) in [
        (vec!["nope"], "no feed 'nope'"),
        (
            vec!["--file", file.to_str().unwrap()],
            "--file loads one feed",
        ),
    ] {
        let out = feed_cli(&path, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    let missing = dir.path().join("missing.txt");
    let out = feed_cli(&path, &["drop", "--file", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot read"), "{}", text(&out));
    assert_eq!(count(&redis), Some(7));

    // The empty download (the stand-in's body) is refused: the file's networks stay.
    let out = feed_cli(&path, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(count(&redis), Some(7));
}

#[test]
fn feeds_load_and_swap_in_a_redis_cluster() {
    let cluster = RedisServer::start_cluster(3);
    let feed = Feed::start(&drop_list(1500));
    let nodes: Vec<String> = cluster.iter().map(RedisServer::url).collect();
    let config = format!(
        "[redis]\nurl = \"{}\"\ncluster = true\n\n[policies.default]\non_error = \"open\"\n\n[feeds.drop]\nurl = \"{}\"\nformat = \"cidr\"\n",
        nodes.join(","),
        feed.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &config);
    // The node serving the {lists} slot answers for the key; the others redirect (MOVED).
    let owner = cluster
        .iter()
        .find(|node| {
            redis::cmd("EXISTS")
                .arg(LIVE)
                .query::<Value>(&mut node.client())
                .is_ok()
        })
        .expect("a node serves the {lists} slot");
    for n in [1500, 1200] {
        feed.serve(200, &drop_list(n));
        let out = feed_cli(&path, &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(count(owner), Some(u64::from(n)));
        let left: i64 = redis::cmd("EXISTS")
            .arg(format!("{LIVE}.lock"))
            .arg(format!("{LIVE}.new"))
            .query(&mut owner.client())
            .unwrap();
        assert_eq!(left, 0, "neither the lock nor the staging key is left");
    }
}

#[test]
fn a_feed_redis_failed_at_start_is_tried_again_soon() {
    let mut redis = RedisServer::start();
    let feed = Feed::start(&drop_list(10));
    let config = config(&redis, &feed, "cidr", "1h");
    redis.shutdown();
    let svc = Service::start(&config);
    eventually("the run Redis failed is counted", || {
        metric(
            &svc,
            "ipcheck_feed_runs_total{feed=\"drop\",result=\"redis_error\"}",
        ) >= 1
    });
    redis.restart();
    eventually("the feed is loaded once Redis is back", || {
        count(&redis) == Some(10)
    });
    eventually("the load is counted", || {
        metric(&svc, "ipcheck_feed_runs_total{feed=\"drop\",result=\"ok\"}") == 1
    });
}
