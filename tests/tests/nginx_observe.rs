//! Through nginx: a location whose policy is in observe mode lets every client through, while
//! the backend receives the verdict the policy would have sent (`X-IPCheck-Observed-Verdict`,
//! `-Reason`); the same client is blocked on an enforcing location; an operator's pin is only
//! observed too; switching the policy to enforce is a config change applied by a reload.

use std::process::Command;
use std::time::{Duration, Instant};

use ipcheck_tests::stack::{example_service_config, get_via, KEY_VAR, SECRET};
use ipcheck_tests::{Backend, NginxSetup, Provider, RedisServer, Reply, Service};

const TOR: &str = "127.0.0.91";
const CLEAN: &str = "127.0.0.92";
const PINNED: &str = "127.0.0.93";

/// The shipped example config plus `preview`: the strict policy's rules, in `mode`.
fn config(redis: &RedisServer, provider: &Provider, mode: &str) -> String {
    format!(
        "{}\n[policies.preview]\nblock = [\"tor\", \"vpn\", \"proxy\", \"relay\"]\nchallenge = [\"hosting\"]\nallow_crawlers = false\nlists = [\"tor\"]\non_error = \"closed\"\non_redis_error = \"closed\"\nmode = \"{mode}\"\n",
        example_service_config(redis, provider, "60s")
    )
}

fn sample(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn an_observe_location_lets_a_tor_client_through_and_tells_the_backend() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond(TOR, Reply::flags(&["tor"]));
    provider.respond(CLEAN, Reply::clean());
    provider.respond(PINNED, Reply::clean());
    let backend = Backend::start();
    let service = Service::builder(&config(&redis, &provider, "observe"))
        .env(KEY_VAR, SECRET)
        .env("IPCHECK_LOG_DECISIONS", "all")
        .start();
    // The site's lenient rest uses the observed policy; /login stays strict and enforcing.
    let nginx = NginxSetup::new(service.port(), backend.port())
        .edit(
            "example.conf",
            "set $ipcheck_policy lenient;",
            "set $ipcheck_policy preview;",
        )
        .start();

    // Observe: the Tor client reaches the backend, which is told what would have happened.
    let r = get_via(&nginx, TOR, "/account", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = backend
        .last_request_for("/account")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(
        seen.header("x-ipcheck-reason"),
        None,
        "no reason for the allow"
    );
    assert_eq!(seen.header("x-ipcheck-observed-verdict"), Some("block"));
    assert_eq!(seen.header("x-ipcheck-observed-reason"), Some("tor"));
    assert_eq!(seen.header("x-ipcheck-key"), Some(TOR));
    // nginx's access log has the answer it acted on.
    assert!(
        wait_for(|| nginx.access_log().contains(&format!(
            "{TOR} \"GET /account HTTP/1.1\" 200 verdict=allow reason= "
        ))),
        "{}",
        nginx.access_log()
    );

    // The decision log has the policy's verdict, and says it was only observed.
    let line =
        service.wait_for_log_line(&["ipcheck::decision", "policy=preview", "key=127.0.0.91"]);
    assert!(
        line.contains("verdict=block reason=tor ") && line.ends_with("mode=observe"),
        "{line}"
    );

    // Enforce: the same client on /login gets the strict policy's 403.
    let r = get_via(&nginx, TOR, "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"tor\"}\n");
    assert!(backend.last_request_for("/login").is_none());

    // A clean client is observed as allowed.
    assert_eq!(get_via(&nginx, CLEAN, "/about", &[]).status, 200);
    let seen = backend.last_request_for("/about").expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-observed-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-observed-reason"), None);

    // An operator's block pin is observed, not enforced, on the observed location.
    let mut con = redis.client();
    let _: () = redis::cmd("IPCHECK")
        .arg(&[
            "SET", PINNED, "block", "SOURCE", "manual", "REASON", "abuse",
        ])
        .query(&mut con)
        .expect("pin");
    assert_eq!(get_via(&nginx, PINNED, "/pinned", &[]).status, 200);
    let seen = backend
        .last_request_for("/pinned")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-observed-verdict"), Some("block"));
    assert_eq!(seen.header("x-ipcheck-observed-reason"), Some("abuse"));
    assert_eq!(get_via(&nginx, PINNED, "/login", &[]).status, 403);

    // The metrics keep what was sent apart from what was observed.
    let m = service.metrics();
    assert_eq!(
        sample(&m, "ipcheck_observed_decisions_total{verdict=\"block\"}"),
        Some(2),
        "{m}"
    );
    assert_eq!(
        sample(&m, "ipcheck_observed_decisions_total{verdict=\"allow\"}"),
        Some(1)
    );
    assert_eq!(
        sample(
            &m,
            "ipcheck_observed_decision_reasons_total{verdict=\"block\",reason=\"tor\"}"
        ),
        Some(1)
    );
    assert_eq!(
        sample(&m, "ipcheck_decisions_total{verdict=\"allow\"}"),
        Some(3)
    );
    assert_eq!(
        sample(&m, "ipcheck_decisions_total{verdict=\"block\"}"),
        Some(2)
    );

    // An operator cannot miss it: a WARN at start, a line in /readyz (still ready), /explain.
    let warn = service.wait_for_log_line(&["WARN", "policies in observe mode: preview"]);
    assert!(warn.contains("ALLOWED"), "{warn}");
    let ready = service.get("/readyz", &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.starts_with("ready"), "{}", ready.body);
    assert!(
        ready
            .body
            .contains("observe: policies preview answer allow to every request"),
        "{}",
        ready.body
    );
    let explained = service.explain(TOR, Some("preview"));
    assert!(
        explained
            .body
            .contains("\nmode: observe (nginx is answered allow"),
        "{}",
        explained.body
    );
    assert!(
        explained.body.contains("\nverdict: block\n"),
        "{}",
        explained.body
    );
    let explained = service.explain(TOR, Some("strict"));
    assert!(
        explained.body.contains("\nmode: enforce\n"),
        "{}",
        explained.body
    );

    // Switching to enforce is a config change: after a reload the Tor client is refused there.
    std::fs::write(service.config_path(), config(&redis, &provider, "enforce"))
        .expect("rewrite the config");
    let pid = service.pid().expect("the service runs");
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(hup.success());
    service.wait_for_log_line(&["configuration reloaded", "policies"]);
    let r = get_via(&nginx, TOR, "/account2", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(backend.last_request_for("/account2").is_none());
    let ready = service.get("/readyz", &[]);
    assert!(!ready.body.contains("observe:"), "{}", ready.body);
}

/// Polls `done` for up to 10 s.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
