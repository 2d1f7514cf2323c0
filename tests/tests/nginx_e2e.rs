//! Through nginx, as a user sees it: the shipped `nginx/example.conf` in front of a stand-in
//! backend, `ipcheck-auth` with the shipped example config, redis-server with the module, and the
//! stand-in provider. Each client is its own loopback source address.

use std::process::Command;
use std::time::{Duration, Instant};

use ipcheck_tests::ipcheck;
use ipcheck_tests::nginx::nginx_binary;
use ipcheck_tests::stack::{get_via, SECRET};
use ipcheck_tests::{free_port, workspace_root, Backend, NginxSetup, Reply, Stack};

fn ipcheck_get(stack: &Stack, ip: &str) -> Option<ipcheck::Hit> {
    let mut con = stack.redis.client();
    ipcheck::get(&mut con, ip).expect("IPCHECK GET")
}

#[test]
fn verdicts_reach_the_user_and_the_backend() {
    let stack = Stack::start();
    let p = &stack.provider;
    p.respond("127.0.0.2", Reply::flags(&["vpn"]));
    p.respond("127.0.0.4", Reply::flags(&["crawler", "hosting"]));
    p.respond("127.0.0.5", Reply::flags(&["hosting"]));

    // A VPN on a strict location: 403 with the JSON body, and the backend never sees it.
    let r = stack.get_as("127.0.0.2", "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"vpn\"}\n");
    assert!(stack.backend.last_request_for("/login").is_none());
    // What Redis holds: the facts, with the default policy's verdict (which challenges VPNs).
    let entry = ipcheck_get(&stack, "127.0.0.2").expect("verdict cached in Redis");
    assert_eq!(entry.reason, "vpn");
    assert_eq!(entry.source, "api");
    assert_eq!(entry.verdict, "challenge");

    // A clean client reaches the backend, which sees the decision as request headers.
    let r = stack.get_as("127.0.0.3", "/account?x=1", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/account?x=1")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-key"), Some("127.0.0.3"));
    assert_eq!(seen.header("x-ipcheck-cache"), Some("provider"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.3"));
    // The second visit is answered from the service's memory.
    stack.get_as("127.0.0.3", "/account?x=2", &[]);
    let seen = stack
        .backend
        .last_request_for("/account?x=2")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-cache"), Some("local"));

    // Crawlers do not log in: a crawler flagged as hosting is challenged by the strict policy
    // like any hosting address (allow_crawlers = false there) ...
    let r = stack.get_as("127.0.0.4", "/login", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(stack.backend.last_request_for("/login").is_none());
    // ... and still crawls the lenient rest of the site.
    let r = stack.get_as("127.0.0.4", "/about", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/about")
        .expect("crawler reached /about");
    assert_eq!(seen.header("x-ipcheck-reason"), Some("crawler"));

    // Hosting without the crawler flag is challenged: redirected to the challenge page,
    // which itself stays reachable.
    let r = stack.get_as("127.0.0.5", "/signup", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.ends_with("/challenge")),
        "{r:?}"
    );
    assert_eq!(stack.get_as("127.0.0.5", "/challenge", &[]).status, 200);

    // Static assets are not checked: the VPN gets them and the provider is not asked again.
    let before = p.calls();
    assert_eq!(
        stack.get_as("127.0.0.2", "/static/app.css", &[]).status,
        200
    );
    assert_eq!(p.calls(), before);

    // Every provider call carried the key, and the key is nowhere in the service's log.
    assert!(p
        .seen()
        .iter()
        .all(|s| s.headers.get("x-api-key").map(String::as_str) == Some(SECRET)));
    assert!(!stack.service.log().contains(SECRET));
}

#[test]
fn client_supplied_headers_change_nothing() {
    let stack = Stack::start();
    stack.provider.respond("127.0.0.6", Reply::flags(&["vpn"]));
    let spoof = [
        ("X-Real-IP", "127.0.0.7"),
        ("X-Forwarded-For", "127.0.0.7, 127.0.0.1"),
        ("X-IPCheck-Policy", "lenient"),
        ("X-IPCheck-Verdict", "allow"),
        ("X-IPCheck-Key", "127.0.0.7"),
    ];
    let r = stack.get_as("127.0.0.6", "/login", &spoof);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("\"reason\":\"vpn\""), "{r:?}");
    assert_eq!(
        stack.provider.calls_for("127.0.0.7"),
        0,
        "the spoofed address was never looked up"
    );
    assert_eq!(stack.provider.calls_for("127.0.0.6"), 1);

    // A clean client cannot plant decision headers for the backend either.
    let r = stack.get_as(
        "127.0.0.7",
        "/",
        &[
            ("X-IPCheck-Verdict", "block"),
            ("X-IPCheck-Reason", "spoofed"),
            ("X-Real-IP", "192.0.2.1"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-reason"), None);
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.7"));
}

#[test]
fn a_crawler_that_is_also_tor_is_refused_on_strict_locations_only() {
    let stack = Stack::start();
    let crawler = "127.0.0.12";
    stack
        .provider
        .respond(crawler, Reply::flags(&["crawler", "tor"]));
    for path in ["/login", "/signup"] {
        let r = stack.get_as(crawler, path, &[]);
        assert_eq!(r.status, 403, "{path}: {r:?}");
        assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"tor\"}\n");
    }
    assert!(stack.backend.last_request_for("/login").is_none());
    // The lenient policy still lets crawlers through, whatever else they are.
    let r = stack.get_as(crawler, "/", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("crawler reached /");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-reason"), Some("crawler"));
}

#[test]
fn provider_down_strict_fails_closed_lenient_fails_open() {
    let stack = Stack::start();
    stack.provider.respond_default(Reply::Status(500));
    let r = stack.get_as("127.0.0.8", "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("\"reason\":\"provider-error\""), "{r:?}");
    let r = stack.get_as("127.0.0.9", "/", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-reason"), Some("provider-error"));
}

/// The protected locations of the shipped example: every `location` block with `auth_request`,
/// as a path that reaches it.
fn protected_paths() -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join("nginx/example.conf"))
        .expect("read example.conf");
    let mut paths = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("location ") {
            let words: Vec<&str> = rest.trim_end_matches('{').split_whitespace().collect();
            current = match words.as_slice() {
                ["=", path] => Some(vec![path.to_string()]),
                [path] if path.starts_with('/') => Some(vec![format!("{path}probe")]),
                // `~* ^/(?:login|signup)...`: one path per name of the alternation.
                ["~*", regex] => regex
                    .strip_prefix("^/(?:")
                    .and_then(|r| r.split_once(')'))
                    .map(|(names, _)| names.split('|').map(|n| format!("/{n}")).collect()),
                _ => None,
            };
        } else if line.starts_with("auth_request ") {
            if let Some(found) = current.take() {
                paths.extend(found);
            }
        } else if line == "}" {
            current = None;
        }
    }
    paths
}

#[test]
fn every_protected_location_is_refused_when_the_service_is_unreachable_and_closed() {
    let paths = protected_paths();
    assert!(
        paths.len() >= 3,
        "expected /signup, /login and / in {paths:?}"
    );
    let backend = Backend::start();
    let nowhere = free_port();

    // As shipped: strict locations fail closed, the lenient one open, static is unchecked.
    let nginx = NginxSetup::new(nowhere, backend.port()).start();
    for path in &paths {
        let r = get_via(&nginx, "127.0.0.20", path, &[]);
        let want = if path.starts_with("/login") || path.starts_with("/signup") {
            403
        } else {
            200
        };
        assert_eq!(r.status, want, "{path}: {r:?}");
        if want == 403 {
            assert!(r.body.contains("\"reason\":\"unavailable\""), "{r:?}");
        }
    }
    assert_eq!(
        get_via(&nginx, "127.0.0.20", "/static/a.js", &[]).status,
        200
    );
    drop(nginx);

    // With every policy failing closed, no protected location leaks through (a `return` in a
    // protected location would, since it runs before auth_request).
    let nginx = NginxSetup::new(nowhere, backend.port())
        .edit(
            "example.conf",
            "set $ipcheck_on_unreachable open;",
            "set $ipcheck_on_unreachable closed;",
        )
        .start();
    let before = backend.requests().len();
    for path in &paths {
        assert_eq!(
            get_via(&nginx, "127.0.0.20", path, &[]).status,
            403,
            "{path} leaked"
        );
    }
    assert_eq!(
        backend.requests().len(),
        before,
        "the backend saw a refused request"
    );
}

#[test]
fn redis_killed_and_restarted_causes_no_5xx() {
    let mut stack = Stack::start();
    let mut statuses = Vec::new();
    let mut ask = |stack: &Stack, n: usize| {
        let source = format!("127.0.{}.{}", 1 + n / 200, 1 + n % 200);
        for path in ["/", "/login"] {
            statuses.push((
                source.clone(),
                path,
                stack.get_as(&source, path, &[]).status,
            ));
        }
    };
    for n in 0..15 {
        ask(&stack, n);
    }
    stack.redis.kill();
    for n in 15..30 {
        ask(&stack, n);
    }
    stack.redis.restart();
    for n in 30..45 {
        ask(&stack, n);
    }
    let errors: Vec<_> = statuses.iter().filter(|(_, _, s)| *s >= 500).collect();
    assert!(errors.is_empty(), "5xx answers: {errors:?}");
    // The lenient `/` goes on without Redis; the strict `/login` fails closed while Redis cannot
    // be asked (on_redis_error = "closed": a pin there would be invisible), and until the
    // service has reconnected after the restart.
    for (i, (source, path, status)) in statuses.iter().enumerate() {
        let phase = i / 30;
        let ok = match (*path, phase) {
            ("/", _) | ("/login", 0) => *status == 200,
            ("/login", 1) => *status == 403,
            _ => *status == 200 || *status == 403,
        };
        assert!(
            ok,
            "{source} {path} in phase {phase}: {status}\n{statuses:?}"
        );
    }

    // The service reconnects by itself: a new client's verdict lands in Redis again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 100;
    loop {
        let source = format!("127.0.9.{n}");
        stack.get_as(&source, "/", &[]);
        if ipcheck_get(&stack, &source).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict reached Redis after its restart"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ipv6_client_is_stored_once_per_64() {
    let stack = Stack::start();
    for path in ["/", "/login", "/"] {
        let r = stack.get_as("::1", path, &[]);
        assert_eq!(r.status, 200, "{r:?}");
    }
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-key"), Some("::/64"));
    assert_eq!(
        stack.provider.calls(),
        1,
        "one lookup for the /64: {:?}",
        stack.provider.seen()
    );

    let entry = ipcheck_get(&stack, "::1").expect("stored in Redis");
    assert_eq!(entry.key, "ipcheck:::/64");
    // Any other address in the /64 reads the same entry.
    let other = ipcheck_get(&stack, "0:0:0:0:dead:beef:1:2").expect("same /64");
    assert_eq!(other.key, "ipcheck:::/64");
    let mut con = stack.redis.client();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("ipcheck:*")
        .query(&mut con)
        .expect("KEYS");
    assert_eq!(keys, vec!["ipcheck:::/64".to_owned()]);
}

#[test]
fn operator_pin_with_redis_cli_takes_effect_within_local_ttl() {
    let stack = Stack::start_with("1s", |n| n);
    let client = "127.0.0.30";
    assert_eq!(stack.get_as(client, "/", &[]).status, 200);
    assert_eq!(stack.get_as(client, "/", &[]).status, 200);
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-cache"), Some("local"));

    let out = Command::new("redis-cli")
        .args([
            "-p",
            &stack.redis.port().to_string(),
            "IPCHECK",
            "SET",
            client,
            "block",
            "SOURCE",
            "manual",
        ])
        .output()
        .expect("run redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let pinned = Instant::now();

    let mut status = 200;
    while pinned.elapsed() < Duration::from_secs(5) {
        status = stack.get_as(client, "/", &[]).status;
        if status == 403 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 403, "the manual block never took effect");
    // local_ttl is 1 s; allow scheduling slack on a loaded 2-core machine, but not a cache
    // that ignores local_ttl (60 s as shipped).
    assert!(
        pinned.elapsed() < Duration::from_secs(4),
        "took {:?}",
        pinned.elapsed()
    );
    // A later API answer does not overwrite the pin.
    let entry = ipcheck_get(&stack, client).expect("pin stored");
    assert_eq!(entry.source, "manual");
}

#[test]
fn micro_cache_answers_repeat_clients_without_the_service() {
    let stack = Stack::start_with("60s", NginxSetup::with_microcache);
    stack.provider.respond("127.0.0.41", Reply::flags(&["vpn"]));
    // How many decisions the service has made (the sum over its tiers).
    let decisions = || -> u64 {
        stack
            .service
            .metrics()
            .lines()
            .filter(|l| l.starts_with("ipcheck_cache_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // nginx keeps an answer until the end of the second it was given in (so that a pin reaches
    // clients within a second: nginx_fastpath.rs), so a repeat right after it is answered by
    // nginx alone, unless that second ended in between: then the next round is tried.
    for _ in 0..20 {
        let before = decisions();
        for _ in 0..2 {
            assert_eq!(stack.get_as("127.0.0.40", "/login", &[]).status, 200);
            let r = stack.get_as("127.0.0.41", "/login", &[]);
            assert_eq!(r.status, 403);
            assert!(
                r.body.contains("\"reason\":\"vpn\""),
                "a cached answer keeps its reason: {r:?}"
            );
        }
        if decisions() == before + 2 {
            return;
        }
    }
    panic!("the micro-cache never answered a repeat client");
}

#[test]
fn without_micro_cache_every_request_asks_the_service() {
    let mut stack = Stack::start();
    assert_eq!(stack.get_as("127.0.0.40", "/login", &[]).status, 200);
    assert!(stack.service.terminate(Duration::from_secs(5)).is_some());
    assert_eq!(stack.get_as("127.0.0.40", "/login", &[]).status, 403);
}

#[test]
fn shipped_nginx_files_pass_nginx_t_as_shipped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_dir = dir.path().join("ipcheck");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
    for file in [
        "ipcheck.conf",
        "ipcheck-upstream.conf",
        "ipcheck-microcache.conf",
        "example.conf",
    ] {
        std::fs::copy(
            workspace_root().join("nginx").join(file),
            conf_dir.join(file),
        )
        .expect("copy");
    }
    let d = dir.path().display();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{}}\n\
         http {{\n include ipcheck/ipcheck-upstream.conf;\n include ipcheck/ipcheck-microcache.conf;\n\
         include ipcheck/example.conf;\n}}\n"
    );
    assert_nginx_t_passes(dir.path(), &main);
}

/// docs/nginx.md's protected-location snippet, as it shows it (the test fails if it moves).
fn readme_snippet() -> String {
    let readme =
        std::fs::read_to_string(workspace_root().join("docs/nginx.md")).expect("docs/nginx.md");
    let start = readme
        .find("A protected location sets two variables and asks:\n\n```nginx\n")
        .expect("docs/nginx.md's protected-location snippet");
    let body = &readme[start..];
    let body = &body[body.find("```nginx\n").expect("fence") + "```nginx\n".len()..];
    body[..body.find("```").expect("closing fence")].to_owned()
}

#[test]
fn the_drop_in_alone_protects_a_location_without_a_cache_directory() {
    // A server of the operator's own: the two drop-in files, one location protected with the
    // README's snippet, nothing from example.conf, no micro-cache file and no cache directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let conf_dir = dir.path().join("ipcheck");
    std::fs::create_dir_all(&conf_dir).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
    let d = dir.path().display();
    for file in ["ipcheck.conf", "ipcheck-upstream.conf"] {
        let text = std::fs::read_to_string(workspace_root().join("nginx").join(file))
            .expect("read shipped file");
        assert!(
            !text.contains("proxy_cache_path"),
            "{file} needs a cache directory"
        );
        // Only paths change: the gate's log, which the test cannot write under /var/log.
        let text = text.replace(
            "/var/log/nginx/ipcheck-gate.log",
            &format!("{d}/logs/ipcheck-gate.log"),
        );
        std::fs::write(conf_dir.join(file), text).expect("write");
    }
    // Only the address changes: nginx -t resolves upstream host names.
    let snippet =
        readme_snippet().replace("proxy_pass http://app;", "proxy_pass http://127.0.0.1:9;");
    let port = free_port();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{}}\n\
         http {{\n include ipcheck/ipcheck-upstream.conf;\n\
           server {{\n listen 127.0.0.1:{port};\n include ipcheck/ipcheck.conf;\n{snippet}\n}}\n}}\n"
    );
    assert_nginx_t_passes(dir.path(), &main);
}

/// Writes `main` as `nginx.conf` in `prefix` and asserts `nginx -t` accepts it.
fn assert_nginx_t_passes(prefix: &std::path::Path, main: &str) {
    std::fs::write(prefix.join("nginx.conf"), main).expect("write nginx.conf");
    let out = Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .output()
        .expect("run nginx -t");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("test is successful"),
        "{stderr}"
    );
}
