//! Cases any nginx configuration of the example must pass, as a user sees them, written once so
//! `tests/tests/nginx_fastpath.rs` runs them against the stock path and the Lua fast path alike:
//! the policies' verdicts, every spelling of a protected route, planted client headers, and odd
//! headers. Each takes a started [`Stack`] and its own client addresses (a group of the
//! 127.0.0.0/8 loopback range, so a second run on another stack does not collide).

use crate::provider::Reply;
use crate::stack::Stack;

/// The JSON body a refused client gets, as example.conf's `@ipcheck_denied` writes it.
pub fn denied_body(reason: &str) -> String {
    format!("{{\"error\":\"access denied\",\"reason\":\"{reason}\"}}\n")
}

/// The strict and lenient policies through nginx, each twice (the second answer is the repeat a
/// cache of any kind may give): a VPN refused on /login with its reason, a crawler-and-hosting
/// client challenged on /login and let into / with its reason, a clean client reaching the
/// backend with the decision headers.
pub fn policies_reach_the_user_and_the_backend(stack: &Stack, group: u8) {
    let vpn = format!("127.{group}.0.2");
    let crawler = format!("127.{group}.0.4");
    let clean = format!("127.{group}.0.3");
    stack.provider.respond(&vpn, Reply::flags(&["vpn"]));
    stack
        .provider
        .respond(&crawler, Reply::flags(&["crawler", "hosting"]));
    for round in 0..2 {
        let r = stack.get_as(&vpn, "/login", &[]);
        assert_eq!(r.status, 403, "round {round}: {r:?}");
        assert_eq!(r.body, denied_body("vpn"), "round {round}");

        let r = stack.get_as(&crawler, "/login", &[]);
        assert_eq!(r.status, 302, "round {round}: {r:?}");
        assert!(
            r.header("location")
                .is_some_and(|l| l.ends_with("/challenge")),
            "round {round}: {r:?}"
        );
        let path = format!("/about?round={round}");
        let r = stack.get_as(&crawler, &path, &[]);
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        let seen = stack
            .backend
            .last_request_for(&path)
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
        assert_eq!(seen.header("x-ipcheck-reason"), Some("crawler"));

        let path = format!("/account?round={round}");
        let r = stack.get_as(&clean, &path, &[]);
        assert_eq!(r.status, 200, "round {round}: {r:?}");
        let seen = stack
            .backend
            .last_request_for(&path)
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
        assert_eq!(seen.header("x-ipcheck-key"), Some(clean.as_str()));
        assert_eq!(seen.header("x-ipcheck-reason"), None);
        assert!(seen.header("x-ipcheck-cache").is_some(), "{seen:?}");
        assert_eq!(seen.header("x-real-ip"), Some(clean.as_str()));
    }
    assert!(
        stack.backend.last_request_for("/login").is_none(),
        "a refused client reached the backend"
    );
}

/// Every spelling of /login and /signup refuses a VPN (nginx_attacks.rs has the reasons), each
/// twice; mid-path parameters are refused outright; other routes stay lenient.
pub fn every_spelling_of_a_protected_route_is_protected(stack: &Stack, group: u8) {
    let vpn = format!("127.{group}.0.60");
    stack.provider.respond(&vpn, Reply::flags(&["vpn"]));
    let aliases = [
        "/login",
        "/LOGIN",
        "/login/",
        "/login//",
        "/login;jsessionid=1",
        "/login%3Bjsessionid=1",
        "/logi%6E/",
        "/login.json",
        "/login%20",
        "//login",
        "/static/../login",
        "/signup",
        "/sign%75p",
        "/SignUp;x=1",
    ];
    let before = stack.backend.requests().len();
    for _ in 0..2 {
        for path in aliases {
            let r = stack.get_as(&vpn, path, &[]);
            assert_eq!(r.status, 403, "{path} let a VPN in: {r:?}");
            assert_eq!(r.body, denied_body("vpn"), "{path}");
        }
        for path in ["/;x/login", "/.;/login", "/static/..;/login"] {
            let r = stack.get_as(&vpn, path, &[]);
            assert_eq!(r.status, 400, "{path}: {r:?}");
        }
    }
    assert_eq!(
        stack.backend.requests().len(),
        before,
        "the backend saw a VPN's request"
    );
    for path in ["/loginhelp", "/login-form", "/signups"] {
        let r = stack.get_as(&vpn, path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
}

/// Client-sent address and decision headers neither pick the address or policy looked up nor
/// reach the backend; the backend gets exactly the headers nginx set. Each location twice.
pub fn planted_headers_change_nothing(stack: &Stack, group: u8) {
    let spoof = "192.0.2.66";
    let planted = [
        ("X-Real-IP", spoof),
        ("X-Forwarded-For", spoof),
        ("Forwarded", "for=192.0.2.66"),
        ("True-Client-IP", spoof),
        ("CF-Connecting-IP", spoof),
        ("X-IPCheck-Verdict", "planted"),
        ("X-IPCheck-Reason", "planted"),
        ("X-IPCheck-Cache", "planted"),
        ("X-IPCheck-Key", "planted"),
        ("X-IPCheck-Policy", "lenient"),
        ("X-IPCheck-Country", "planted"),
        ("X-IPCheck-Gate", "planted"),
    ];
    let vpn = format!("127.{group}.0.72");
    stack.provider.respond(&vpn, Reply::flags(&["vpn"]));
    let client = format!("127.{group}.0.70");
    for round in 0..2 {
        // A planted policy does not make a VPN's login lenient.
        let r = stack.get_as(&vpn, "/login", &planted);
        assert_eq!(r.status, 403, "round {round}: {r:?}");
        for path in ["/", "/login", "/static/a.css"] {
            let path = format!("{path}?round={round}");
            let r = stack.get_as(&client, &path, &planted);
            assert_eq!(r.status, 200, "{path}: {r:?}");
            let seen = stack
                .backend
                .last_request_for(&path)
                .expect("backend reached");
            let leaked: Vec<_> = seen
                .headers
                .iter()
                .filter(|(_, v)| v.contains(spoof) || v.contains("planted"))
                .collect();
            assert!(
                leaked.is_empty(),
                "{path}: client values leaked: {leaked:?}"
            );
            assert_eq!(seen.header("x-real-ip"), Some(client.as_str()), "{path}");
            let ipcheck: Vec<_> = seen
                .headers
                .keys()
                .filter(|k| k.starts_with("x-ipcheck-"))
                .cloned()
                .collect();
            let want: &[&str] = if path.starts_with("/static/") {
                &[]
            } else {
                &["x-ipcheck-cache", "x-ipcheck-key", "x-ipcheck-verdict"]
            };
            assert_eq!(ipcheck, want, "{path}");
        }
    }
    assert_eq!(
        stack.provider.calls_for(spoof),
        0,
        "the planted address was looked up"
    );
}

/// Many or odd client headers never turn a clean client's check into a 5xx.
pub fn odd_client_headers_never_cause_a_5xx(stack: &Stack, group: u8) {
    let many: Vec<(String, String)> = (0..100)
        .map(|i| (format!("X-Extra-{i}"), format!("value {i}")))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let long = "a".repeat(6000);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("100 extra headers", many),
        ("DEL byte", vec![("X-Odd", "a\x7fb")]),
        ("very long header", vec![("X-Long", long.as_str())]),
        (
            "odd bytes in the service's own headers",
            vec![
                ("X-Real-IP", "\x01\x7f"),
                ("X-IPCheck-Policy", "strict\x1b"),
            ],
        ),
    ];
    let mut n = 0;
    for (what, headers) in &cases {
        for path in ["/", "/login", "/", "/login"] {
            n += 1;
            let client = format!("127.{group}.2.{}", n / 2);
            let r = stack.get_as(&client, path, headers);
            assert_eq!(r.status, 200, "{what} on {path}: {r:?}");
        }
    }
}

/// Other methods, request bodies (plain and chunked) and HTTP/1.0 take the same route to the
/// service and reach the backend; a VPN's POST to /login is refused.
pub fn methods_and_bodies_take_the_same_route(stack: &Stack, group: u8) {
    let dest = ([127, 0, 0, 1], stack.nginx.port()).into();
    let vpn = format!("127.{group}.0.9");
    stack.provider.respond(&vpn, Reply::flags(&["vpn"]));
    let post = "POST /login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello=world";
    let chunked = "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let old = "GET /login HTTP/1.0\r\n\r\n";
    for round in 0..2 {
        for (n, request) in [post, chunked, old].iter().enumerate() {
            let source = format!("127.{group}.1.{}", n + 1).parse().expect("address");
            let r = crate::client::raw_request_from(source, dest, request.as_bytes())
                .unwrap_or_else(|e| panic!("{request:.40?}: {e}"));
            assert_eq!(r.status, 200, "round {round}, {request:.40?}: {r:?}");
        }
        for (n, method) in ["DELETE", "OPTIONS", "PROPFIND"].iter().enumerate() {
            let source = format!("127.{group}.1.{}", n + 10)
                .parse()
                .expect("address");
            let r = crate::client::request_from(source, dest, method, "/", &[])
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            assert_eq!(r.status, 200, "round {round}, {method}: {r:?}");
        }
        let source = vpn.parse().expect("address");
        let r = crate::client::raw_request_from(source, dest, post.as_bytes()).expect("request");
        assert_eq!(r.status, 403, "round {round}: a VPN's POST: {r:?}");
    }
    let seen = stack
        .backend
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(seen, 4, "the clean POSTs reached the backend");
}
