//! The optional Lua fast path (`nginx/ipcheck-fastpath.lua`, docs/fast-path.md) through a real
//! nginx with Debian's Lua module: the stock path's policies, fail-closed behaviour and attack
//! cases against both configurations, repeat clients answered from the shared dict without the
//! service, answers never shared between policies, and an operator's pin and unpin reaching
//! clients through nginx within a second, with the fast path and with the micro-cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcheck_tests::http_stub::{HttpStub, Response};
use ipcheck_tests::nginx_cases::{self, denied_body};
use ipcheck_tests::service::service_command;
use ipcheck_tests::stack::{example_service_config, get_via, KEY_VAR, SECRET};
use ipcheck_tests::{
    free_port, workspace_root, Backend, Nginx, NginxSetup, Provider, RedisServer, Reply, Service,
    Stack,
};

/// The shipped answer lifetime, as ipcheck-fastpath-http.conf sets it.
const SHIPPED_TTL: &str = "default 1;";

/// The fast path with answers kept for a minute instead of a second, so a test's repeat
/// requests are answered from the dict however slow the machine is.
fn fastpath_for_a_minute(n: NginxSetup) -> NginxSetup {
    n.with_fastpath()
        .edit("ipcheck-fastpath-http.conf", SHIPPED_TTL, "default 60;")
}

/// How many decisions the service has made: the sum over its tiers.
fn decisions(stack: &Stack) -> u64 {
    stack
        .service
        .metrics()
        .lines()
        .filter(|l| l.starts_with("ipcheck_cache_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn run_shared_cases(stack: &Stack) {
    nginx_cases::policies_reach_the_user_and_the_backend(stack, 10);
    nginx_cases::every_spelling_of_a_protected_route_is_protected(stack, 11);
    nginx_cases::planted_headers_change_nothing(stack, 12);
    nginx_cases::odd_client_headers_never_cause_a_5xx(stack, 13);
    nginx_cases::methods_and_bodies_take_the_same_route(stack, 14);
}

#[test]
fn stock_path_passes_the_shared_cases() {
    run_shared_cases(&Stack::start());
}

#[test]
fn fast_path_passes_the_shared_cases() {
    run_shared_cases(&Stack::start_with("60s", NginxSetup::with_fastpath));
}

#[test]
fn fast_path_with_answers_kept_passes_the_shared_cases() {
    // Every repeat of the cases is then answered from the dict.
    let stack = Stack::start_with("60s", fastpath_for_a_minute);
    run_shared_cases(&stack);
}

#[test]
fn repeat_clients_are_answered_from_the_dict_without_the_service() {
    let stack = Stack::start_with("60s", fastpath_for_a_minute);
    stack.provider.respond("127.0.0.2", Reply::flags(&["vpn"]));
    stack
        .provider
        .respond("127.0.0.5", Reply::flags(&["hosting"]));
    let first_block = stack.get_as("127.0.0.2", "/login", &[]);
    let first_challenge = stack.get_as("127.0.0.5", "/login", &[]);
    assert_eq!(stack.get_as("127.0.0.3", "/a?n=0", &[]).status, 200);
    let first_seen = stack.backend.last_request_for("/a?n=0").expect("backend");
    let asked = decisions(&stack);
    assert_eq!(asked, 3, "{}", stack.service.metrics());
    let calls = stack.provider.calls();

    for n in 1..4 {
        let r = stack.get_as("127.0.0.2", "/login", &[]);
        assert_eq!((r.status, &r.body), (first_block.status, &first_block.body));
        assert_eq!(r.body, denied_body("vpn"));
        let r = stack.get_as("127.0.0.5", "/login", &[]);
        assert_eq!(r.status, 302, "{r:?}");
        assert_eq!(r.header("location"), first_challenge.header("location"));
        let path = format!("/a?n={n}");
        assert_eq!(stack.get_as("127.0.0.3", &path, &[]).status, 200);
        // The backend gets what the service answered the first time, header for header.
        let seen = stack.backend.last_request_for(&path).expect("backend");
        for name in [
            "x-ipcheck-verdict",
            "x-ipcheck-reason",
            "x-ipcheck-cache",
            "x-ipcheck-key",
            "x-real-ip",
        ] {
            assert_eq!(seen.header(name), first_seen.header(name), "{name}");
        }
    }
    assert_eq!(
        decisions(&stack),
        asked,
        "a repeat client reached the service"
    );
    assert_eq!(stack.provider.calls(), calls);
    // The access log names the same verdict on every line of a client.
    let log = stack.nginx.access_log();
    let lines: Vec<_> = log.lines().filter(|l| l.contains(" 127.0.0.2 ")).collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with("403 verdict=block reason=vpn cache=provider key=127.0.0.2")),
        "{log}"
    );
}

#[test]
fn answers_are_never_shared_between_policies() {
    let stack = Stack::start_with("60s", fastpath_for_a_minute);
    // A VPN: allowed by the lenient policy of /, refused by the strict one of /login.
    let vpn = "127.0.0.80";
    stack.provider.respond(vpn, Reply::flags(&["vpn"]));
    for round in 0..3 {
        let r = stack.get_as(vpn, "/", &[]);
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        let r = stack.get_as(vpn, "/login", &[]);
        assert_eq!(
            r.status, 403,
            "round {round}: the lenient answer was reused: {r:?}"
        );
        assert_eq!(r.body, denied_body("vpn"));
    }
    assert!(stack.backend.last_request_for("/login").is_none());
    // One decision per policy, then the dict.
    assert_eq!(decisions(&stack), 2, "{}", stack.service.metrics());
}

/// A stand-in for an application that is not ipcheck-auth, counting what it is asked.
fn counting_app(status: u16, headers: &[(&str, &str)]) -> (HttpStub, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let stub = HttpStub::start(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        Response {
            status,
            headers: headers.clone(),
            body: Vec::new(),
        }
    });
    (stub, count)
}

/// Strict locations refuse as "unavailable", the lenient one lets the client through without a
/// verdict, exactly as the stock path does; `rounds` times each.
fn fails_as_without_a_verdict(nginx: &Nginx, backend: &Backend, rounds: usize, what: &str) {
    for round in 0..rounds {
        for path in ["/login", "/signup", "/LOGIN/"] {
            let r = get_via(nginx, "127.0.0.50", path, &[]);
            assert_eq!(
                r.status,
                403,
                "{what}, round {round}, {path}: {r:?}\n{}",
                nginx.error_log()
            );
            assert_eq!(r.body, denied_body("unavailable"), "{what}, {path}");
        }
        let path = format!("/lenient?round={round}");
        let r = get_via(nginx, "127.0.0.50", &path, &[]);
        assert_eq!(r.status, 200, "{what}, round {round}: {r:?}");
        let seen = backend.last_request_for(&path).expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-verdict"), None, "{what}");
    }
    assert!(
        backend.last_request_for("/login").is_none(),
        "{what}: a strict location leaked"
    );
}

#[test]
fn no_verdict_is_handled_as_without_the_fast_path_and_never_remembered() {
    let backend = Backend::start();
    // Nothing listens where the service should.
    let nowhere = free_port();
    for (name, setup) in [
        ("stock", NginxSetup::new(nowhere, backend.port())),
        (
            "fast path",
            fastpath_for_a_minute(NginxSetup::new(nowhere, backend.port())),
        ),
    ] {
        let nginx = setup.start();
        fails_as_without_a_verdict(&nginx, &backend, 2, &format!("{name}, service down"));
        // The access log says a check ran without a verdict: empty fields, not "-".
        let log = nginx.access_log();
        assert!(
            log.lines()
                .filter(|l| l.contains("/lenient"))
                .all(|l| l.ends_with("200 verdict= reason= cache= key=")),
            "{name}: {log}"
        );
    }

    // Something that is not ipcheck answers: every request asks it again (nothing remembered).
    let cases: [(u16, &[(&str, &str)]); 3] = [
        (200, &[]),
        (200, &[("X-IPCheck-Verdict", "block")]),
        (403, &[("X-IPCheck-Verdict", "allow")]),
    ];
    for (status, headers) in cases {
        let (app, asked) = counting_app(status, headers);
        let nginx = fastpath_for_a_minute(NginxSetup::new(app.port(), backend.port())).start();
        let what = format!("an app answering {status} {headers:?}");
        fails_as_without_a_verdict(&nginx, &backend, 2, &what);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            8,
            "{what}: each check asked it"
        );
    }
}

/// `ipcheck-auth --config <the stack's config> <args>`, which must succeed.
fn ops(stack: &Stack, args: &[&str]) {
    let out = service_command()
        .env(KEY_VAR, SECRET)
        .arg("--config")
        .arg(stack.service.config_path())
        .args(args)
        .output()
        .expect("run ipcheck-auth");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bound the tests hold nginx to: the fast path's (and the micro-cache's) one second, plus
/// room for the service dropping its own copy (CLIENT TRACKING) and the test's own requests on a
/// loaded machine. The former micro-cache (5 s; or `proxy_cache_valid 1s` alone, up to 2 s) and
/// any answer kept 1.5 s or more fail it.
const BOUND: Duration = Duration::from_millis(1500);

/// Asks `/` as `client` every 20 ms until it answers `want`; how long that took from `since`.
fn until_status(stack: &Stack, client: &str, want: u16, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(10);
    loop {
        let status = stack.get_as(client, "/", &[]).status;
        if status == want {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{client}: still {status} 10 s later, want {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pin_and_unpin_apply_within_a_second(setup: fn(NginxSetup) -> NginxSetup, what: &str) {
    // The shipped local_ttl (60 s): the service's own copy changes through CLIENT TRACKING.
    let stack = Stack::start_with("60s", setup);
    let client = "127.0.0.90";
    for _ in 0..3 {
        assert_eq!(stack.get_as(client, "/", &[]).status, 200, "{what}");
    }
    // The answer nginx keeps is fresh when the pin lands: the worst case.
    assert_eq!(stack.get_as(client, "/", &[]).status, 200, "{what}");
    ops(&stack, &["pin", client, "block", "--reason", "abuse"]);
    let took = until_status(&stack, client, 403, Instant::now());
    assert!(
        took <= BOUND,
        "{what}: the pin took {took:?} to reach the client"
    );
    let r = stack.get_as(client, "/", &[]);
    assert_eq!(r.body, denied_body("abuse"), "{what}");

    ops(&stack, &["unpin", client]);
    let took = until_status(&stack, client, 200, Instant::now());
    assert!(
        took <= BOUND,
        "{what}: the unpin took {took:?} to reach the client"
    );
}

#[test]
fn pin_and_unpin_apply_within_a_second_with_the_fast_path() {
    pin_and_unpin_apply_within_a_second(NginxSetup::with_fastpath, "fast path");
}

#[test]
fn pin_and_unpin_apply_within_a_second_with_the_micro_cache() {
    pin_and_unpin_apply_within_a_second(NginxSetup::with_microcache, "micro-cache");
}

#[test]
fn a_shorter_answer_lifetime_is_honoured() {
    // Half a second, as an operator would configure it; the bound shrinks with it.
    let stack = Stack::start_with("60s", |n| {
        n.with_fastpath()
            .edit("ipcheck-fastpath-http.conf", SHIPPED_TTL, "default 0.5;")
    });
    let client = "127.0.0.91";
    assert_eq!(stack.get_as(client, "/", &[]).status, 200);
    let asked = decisions(&stack);
    // Within the lifetime the dict answers; after it, the service is asked again.
    let start = Instant::now();
    loop {
        assert_eq!(stack.get_as(client, "/", &[]).status, 200);
        if decisions(&stack) > asked {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the answer was kept past its lifetime"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "a 0.5 s answer was kept {:?}",
        start.elapsed()
    );
}

#[test]
fn a_miss_carries_the_request_id_the_access_log_and_the_backend_see() {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let backend = Backend::start();
    let service = Service::builder(&example_service_config(&redis, &provider, "60s"))
        .env(KEY_VAR, SECRET)
        .env("IPCHECK_LOG_DECISIONS", "all")
        .start();
    let nginx = fastpath_for_a_minute(NginxSetup::new(service.port(), backend.port())).start();
    let r = get_via(
        &nginx,
        "127.0.0.95",
        "/account",
        &[("X-Request-Id", "client-chosen")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = backend.last_request_for("/account").expect("backend");
    let id = seen.header("x-request-id").expect("request id").to_owned();
    assert_eq!(id.len(), 32, "nginx's own id: {id}");
    // The service decided this very request under the same id.
    let line = service.wait_for_log_line(&[&format!("request_id={id}"), "key=127.0.0.95"]);
    assert!(line.contains("policy=lenient"), "{line}");
    // And nginx's access line names it too (written after the answer: polled).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nginx.access_log().contains(&format!(" {id} 127.0.0.95 ")) {
        assert!(Instant::now() < deadline, "{}", nginx.access_log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shipped_fast_path_files_pass_nginx_t_as_documented() {
    // docs/fast-path.md's setup: the stock files and the fast path's, the modules loaded, the
    // example's auth_request replaced by the Lua file at its installed path.
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_dir = dir.path().join("ipcheck");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
    for file in [
        "ipcheck.conf",
        "ipcheck-upstream.conf",
        "ipcheck-fastpath-http.conf",
        "ipcheck-fastpath.lua",
        "example.conf",
    ] {
        let mut text =
            std::fs::read_to_string(workspace_root().join("nginx").join(file)).expect("read");
        if file == "example.conf" {
            assert!(text.contains("auth_request /_ipcheck;"));
            text = text.replace(
                "auth_request /_ipcheck;",
                "access_by_lua_file /etc/nginx/ipcheck/ipcheck-fastpath.lua;",
            );
        }
        std::fs::write(conf_dir.join(file), text).expect("write");
    }
    let d = dir.path().display();
    let m = ipcheck_tests::nginx::LUA_MODULES;
    let main = format!(
        "load_module {m}/ndk_http_module.so;\nload_module {m}/ngx_http_lua_module.so;\n\
         pid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{}}\n\
         http {{\n include ipcheck/ipcheck-upstream.conf;\n include ipcheck/ipcheck-fastpath-http.conf;\n\
         include ipcheck/example.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).expect("write nginx.conf");
    let out = std::process::Command::new(ipcheck_tests::nginx::nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .output()
        .expect("run nginx -t");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("test is successful"),
        "{stderr}"
    );
}

#[test]
fn an_ipv6_client_is_answered_from_the_dict_with_its_64() {
    let stack = Stack::start_with("60s", fastpath_for_a_minute);
    for n in 0..3 {
        let path = format!("/v6?n={n}");
        let r = stack.get_as("::1", &path, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        let seen = stack.backend.last_request_for(&path).expect("backend");
        assert_eq!(seen.header("x-ipcheck-key"), Some("::/64"));
        assert_eq!(seen.header("x-real-ip"), Some("::1"));
    }
    assert_eq!(decisions(&stack), 1, "{}", stack.service.metrics());
}

#[test]
fn the_check_carries_only_what_the_service_reads() {
    // A stand-in service that allows and records what it was sent, behind the stock path and the
    // fast path: a client's headers and body never reach it, only nginx's three.
    let backend = Backend::start();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let service = HttpStub::start(move |req| {
        if let Ok(mut seen) = record.lock() {
            seen.push(req.clone());
        }
        Response {
            status: 204,
            headers: vec![("X-IPCheck-Verdict".into(), "allow".into())],
            body: Vec::new(),
        }
    });
    for (name, setup) in [
        ("stock", NginxSetup::new(service.port(), backend.port())),
        (
            "fast path",
            NginxSetup::new(service.port(), backend.port()).with_fastpath(),
        ),
    ] {
        let nginx = setup.start();
        let source = "127.0.0.97".parse().expect("address");
        let dest = ([127, 0, 0, 1], nginx.port()).into();
        let request = "POST /login?x=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                       Cookie: session=secret\r\nAuthorization: Bearer secret\r\n\
                       X-Real-IP: 192.0.2.1\r\nX-IPCheck-Policy: lenient\r\n\
                       Content-Length: 11\r\n\r\nhello=world";
        let r = ipcheck_tests::client::raw_request_from(source, dest, request.as_bytes())
            .expect("request");
        assert_eq!(r.status, 200, "{name}: {r:?}");
        let asked = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let last = asked.last().expect("the service was asked");
        assert_eq!(last.method, "GET", "{name}");
        assert_eq!(last.target, "/auth", "{name}");
        let names: Vec<&str> = last.headers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "host",
                "x-ipcheck-policy",
                "x-original-method",
                "x-original-uri",
                "x-real-ip",
                "x-request-id"
            ],
            "{name}: {last:?}"
        );
        // The client's method and URI, for the decision events only.
        assert_eq!(last.header("x-original-method"), Some("POST"), "{name}");
        assert_eq!(last.header("x-original-uri"), Some("/login?x=1"), "{name}");
        assert_eq!(last.header("x-real-ip"), Some("127.0.0.97"), "{name}");
        assert_eq!(last.header("x-ipcheck-policy"), Some("strict"), "{name}");
    }
}
