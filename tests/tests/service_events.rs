//! Decision events (`[events]`): appended to a Redis stream with the documented fields, the
//! original method and URI nginx sent, filtered by `decisions`; when Redis cannot take them they
//! are dropped and counted, and `/auth` answers as ever.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipcheck_tests::client::request_from;
use ipcheck_tests::stack::{example_service_config, KEY_VAR, SECRET};
use ipcheck_tests::{workspace_root, Backend, NginxSetup, Provider, RedisServer, Reply, Service};

type Entry = (String, Vec<(String, String)>);

/// Every entry of `stream`, oldest first.
fn xrange(redis: &RedisServer, stream: &str) -> Vec<Entry> {
    let mut con = redis.client();
    let reply: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut con)
        .expect("XRANGE");
    reply
}

fn field<'a>(entry: &'a Entry, name: &str) -> &'a str {
    entry
        .1
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {entry:?}"))
}

/// Polls `done` for up to 15 s; panics with `what` when it never holds.
fn await_that(what: &str, done: impl FnMut() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(15), done);
}

fn sample(svc: &Service, series: &str) -> u64 {
    svc.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// The field names the docs' table lists, in order.
fn documented_fields() -> Vec<String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/observe-and-events.md"))
        .expect("docs/observe-and-events.md");
    let table = doc
        .split("<!-- event fields -->")
        .nth(1)
        .expect("the docs mark the event field table");
    table
        .lines()
        .skip_while(|l| !l.starts_with("| `"))
        .take_while(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn events_appear_on_the_stream_with_the_documented_fields() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond(
        "127.0.0.81",
        Reply::flags(&["vpn"]).with(ipcheck_tests::ReplyAttributes {
            country: Some("NL"),
            asn: Some(64496),
            score: None,
        }),
    );
    provider.respond("127.0.0.82", Reply::clean());
    let backend = Backend::start();
    let service = Service::builder(&example_service_config(&redis, &provider, "60s"))
        .env(KEY_VAR, SECRET)
        .env("IPCHECK_EVENTS_DECISIONS", "all")
        .start();
    let nginx = NginxSetup::new(service.port(), backend.port()).start();
    let send = |source: &str, method: &str, path: &str| {
        let source: IpAddr = source.parse().expect("source");
        let dest = SocketAddr::from(([127, 0, 0, 1], nginx.port()));
        request_from(
            source,
            dest,
            method,
            path,
            &[("X-Request-Id", "client-made")],
        )
        .expect("request through nginx")
    };
    assert_eq!(
        send("127.0.0.81", "POST", "/login?next=%2Fhome").status,
        403
    );
    assert_eq!(send("127.0.0.82", "GET", "/account?tab=1").status, 200);
    // URIs nginx takes but the check does not carry as they are (a raw non-ASCII byte, more
    // than 2048 bytes): sent as "-", and still checked.
    assert_eq!(send("127.0.0.81", "GET", "/login/caf\u{e9}").status, 403);
    let long = format!("/login?{}", "a".repeat(3000));
    assert_eq!(send("127.0.0.81", "GET", &long).status, 403);

    await_that("four events on the stream", || {
        xrange(&redis, "ipcheck:{events}").len() == 4
    });
    let events = xrange(&redis, "ipcheck:{events}");
    let names: Vec<&str> = events[0].1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        documented_fields(),
        "the stream's fields are the documented ones"
    );

    let blocked = &events[0];
    let want = [
        ("address", "127.0.0.81"),
        ("key", "127.0.0.81"),
        ("policy", "strict"),
        ("mode", "enforce"),
        ("verdict", "block"),
        ("reason", "vpn"),
        ("answer", "block"),
        ("tier", "provider"),
        // The facts the provider gave (the shipped config maps no score).
        ("country", "NL"),
        ("asn", "64496"),
        ("score", "-"),
        ("method", "POST"),
        ("uri", "/login?next=%2Fhome"),
    ];
    for (name, value) in want {
        assert_eq!(field(blocked, name), value, "{name} in {blocked:?}");
    }
    // nginx's request id, never the client's, as the backend and the access log have it.
    let request_id = field(blocked, "request_id");
    assert_eq!(request_id.len(), 32, "{blocked:?}");
    assert!(nginx.access_log().contains(request_id));
    let ts: u64 = field(blocked, "ts").parse().expect("ts in ms");
    assert!(ts > 1_600_000_000_000, "{ts}");

    let allowed = &events[1];
    assert_eq!(
        (
            field(allowed, "policy"),
            field(allowed, "verdict"),
            field(allowed, "reason")
        ),
        ("lenient", "allow", "")
    );
    assert_eq!(field(allowed, "uri"), "/account?tab=1");
    let seen = backend.last_request_for("/account?tab=1").expect("backend");
    assert_eq!(
        seen.header("x-request-id"),
        Some(field(allowed, "request_id"))
    );

    for odd in &events[2..] {
        assert_eq!(field(odd, "uri"), "-", "{odd:?}");
        assert_eq!(field(odd, "verdict"), "block");
    }

    assert_eq!(sample(&service, "ipcheck_events_written_total"), 4);
    assert_eq!(
        sample(&service, "ipcheck_events_dropped_total{cause=\"full\"}"),
        0
    );
}

/// A service without nginx, with `[events]` as given.
fn start(redis: &RedisServer, provider: &Provider, events: &str) -> Service {
    let config = format!(
        r#"
[redis]
url = "{url}"
[provider]
preset = "ipasis"
url = "{provider}"
api_key_env = "{KEY_VAR}"
[policies.default]
block = ["tor"]
on_error = "open"
[policies.preview]
block = ["tor"]
mode = "observe"
[events]
{events}
"#,
        url = redis.url(),
        provider = provider.url_template()
    );
    Service::builder(&config).env(KEY_VAR, SECRET).start()
}

#[test]
fn non_allow_appends_only_blocks_and_challenges_observed_ones_included() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond("192.0.2.1", Reply::clean());
    provider.respond("192.0.2.2", Reply::flags(&["tor"]));
    let svc = start(&redis, &provider, "decisions = \"non-allow\"\nmaxlen = 100");
    let cleared = || sample(&svc, "ipcheck_local_invalidations_total{kind=\"all\"}");
    await_that("the invalidation link up", || {
        sample(&svc, "ipcheck_local_invalidation_up") == 1
    });
    let cleared_before = cleared();
    assert_eq!(svc.auth("192.0.2.1").status, 204);
    assert_eq!(svc.auth("192.0.2.2").status, 403);
    assert_eq!(svc.auth_policy("192.0.2.2", "preview").status, 204);
    await_that("two events written", || {
        sample(&svc, "ipcheck_events_written_total") == 2
    });
    let events = xrange(&redis, "ipcheck:{events}");
    let seen: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                field(e, "policy"),
                field(e, "mode"),
                field(e, "verdict"),
                field(e, "answer"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("default", "enforce", "block", "block"),
            ("preview", "observe", "block", "allow")
        ]
    );
    // Appending is a write Redis announces to every instance's invalidation link: it must not
    // empty the local tier. A pin's announcement, which follows the appends on the same link,
    // drops exactly its address.
    let mut con = redis.client();
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", "192.0.2.1", "block", "SOURCE", "manual"])
        .query(&mut con)
        .expect("pin");
    await_that("the pin's invalidation", || {
        sample(&svc, "ipcheck_local_invalidations_total{kind=\"address\"}") == 1
    });
    assert_eq!(cleared(), cleared_before, "an event emptied the local tier");

    // Without nginx there is no original request to describe.
    assert_eq!(field(&events[0], "method"), "-");
    assert_eq!(field(&events[0], "uri"), "-");
    assert_eq!(field(&events[0], "request_id"), "-");
}

#[test]
fn with_redis_down_events_are_dropped_and_counted_and_decisions_go_on() {
    let mut redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond("192.0.2.2", Reply::flags(&["tor"]));
    provider.respond("192.0.2.3", Reply::clean());
    let svc = start(&redis, &provider, "decisions = \"all\"");
    assert_eq!(svc.auth("192.0.2.3").status, 204);
    await_that("the first event written", || {
        sample(&svc, "ipcheck_events_written_total") == 1
    });
    redis.kill();
    for _ in 0..5 {
        assert_eq!(svc.auth("192.0.2.2").status, 403);
        assert_eq!(svc.auth("192.0.2.3").status, 204);
    }
    await_that("ten events dropped for Redis", || {
        sample(&svc, "ipcheck_events_dropped_total{cause=\"redis\"}") == 10
    });
    assert_eq!(sample(&svc, "ipcheck_events_written_total"), 1);
    svc.wait_for_log_line(&[
        "WARN",
        "decision events not appended",
        "decisions are not affected",
    ]);
}

#[test]
fn a_full_buffer_drops_and_counts_and_never_waits() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond("192.0.2.3", Reply::clean());
    // One event waits at most; Redis frozen holds the writer in its batch for 30 s.
    let svc = start(
        &redis,
        &provider,
        "decisions = \"all\"\nbuffer = 1\ntimeout = \"30s\"\nstream = \"app:{ev}\"",
    );
    assert_eq!(svc.auth("192.0.2.3").status, 204);
    await_that("the first event written", || {
        sample(&svc, "ipcheck_events_written_total") == 1
    });
    redis.signal("STOP");
    // The first is taken by the writer (stuck on Redis), the next waits in the buffer, the rest
    // find it full: every answer comes at once from the local tier.
    for _ in 0..6 {
        assert_eq!(svc.auth("192.0.2.3").status, 204);
    }
    await_that("events dropped for a full buffer", || {
        sample(&svc, "ipcheck_events_dropped_total{cause=\"full\"}") >= 3
    });
    redis.signal("CONT");
}

#[test]
fn in_a_cluster_the_stream_lives_on_the_node_serving_its_slot() {
    let cluster = RedisServer::start_cluster(3);
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let svc = Service::builder(&format!(
        "[redis]\nurl = \"{}\"\ncluster = true\ntimeout = \"500ms\"\n\n{}\n[events]\ndecisions = \"all\"\n",
        cluster[0].url(),
        provider.config_section()
    ))
    .start();
    for i in 1..=5 {
        assert_eq!(svc.auth(&format!("198.51.100.{i}")).status, 204);
    }
    await_that("five events written", || {
        sample(&svc, "ipcheck_events_written_total") == 5
    });
    let slot = cluster[0].keyslot("ipcheck:{events}");
    let share = 16384 / cluster.len();
    let owner = &cluster[(usize::from(slot) / share).min(cluster.len() - 1)];
    assert_eq!(xrange(owner, "ipcheck:{events}").len(), 5);
    assert_eq!(
        sample(&svc, "ipcheck_events_dropped_total{cause=\"redis\"}"),
        0
    );
}

#[test]
fn without_xadd_events_are_dropped_and_the_log_names_the_permission() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond("192.0.2.3", Reply::clean());
    // The service's documented ACL (docs/ipcheck-command.md), without +xadd.
    redis.service_user(
        "svc",
        &[
            "&__redis__:invalidate",
            "+ipcheck|netinfo",
            "+ipcheck|netdump",
            "+set",
            "+eval",
            "+incr",
            "+expire",
            "+client|id",
            "+client|tracking",
            "+subscribe",
            "+ping",
        ],
    );
    let svc = Service::builder(&format!(
        "[redis]\nurl = \"redis://svc:pass@127.0.0.1:{}/\"\n\n{}\n[events]\ndecisions = \"all\"\n",
        redis.port(),
        provider.config_section()
    ))
    .start();
    assert_eq!(svc.auth("192.0.2.3").status, 204);
    await_that("the event dropped", || {
        sample(&svc, "ipcheck_events_dropped_total{cause=\"redis\"}") == 1
    });
    svc.wait_for_log_line(&["decision events not appended", "+xadd"]);
    assert_eq!(svc.auth("192.0.2.3").status, 204);
    assert_eq!(xrange(&redis, "ipcheck:{events}").len(), 0);
}

#[test]
fn a_stop_appends_what_is_buffered() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond("192.0.2.3", Reply::clean());
    let mut svc = start(&redis, &provider, "decisions = \"all\"\ntimeout = \"30s\"");
    assert_eq!(svc.auth("192.0.2.3").status, 204);
    await_that("the first event written", || {
        sample(&svc, "ipcheck_events_written_total") == 1
    });
    // Redis frozen: the writer holds the next event in its batch, the rest wait in the buffer
    // when SIGTERM comes.
    redis.signal("STOP");
    for _ in 0..5 {
        assert_eq!(svc.auth("192.0.2.3").status, 204);
    }
    let pid = svc.pid().expect("the service runs");
    let term = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(term.success());
    // The stop waits for Redis (within twice events.timeout) ...
    svc.wait_for_log_line(&["stopping: appending the buffered decision events"]);
    redis.signal("CONT");
    let status = svc
        .terminate(Duration::from_secs(20))
        .expect("the service ends");
    assert!(status.success(), "{status}\n{}", svc.log());
    // ... and every buffered event is on the stream.
    assert_eq!(xrange(&redis, "ipcheck:{events}").len(), 6);
}
