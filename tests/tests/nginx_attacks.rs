//! What a client (or a wrong deployment) might try against the shipped `nginx/example.conf`:
//! odd or many headers, spellings of the protected routes, planted address and decision headers,
//! and an `ipcheck_auth` upstream that is not ipcheck-auth at all. Real processes throughout.

use ipcheck_tests::http_stub::{HttpStub, Response};
use ipcheck_tests::stack::get_via;
use ipcheck_tests::{Backend, NginxSetup, Reply, Stack};

#[test]
fn many_or_odd_client_headers_never_cause_a_5xx() {
    let stack = Stack::start();
    let many: Vec<(String, String)> = (0..100)
        .map(|i| (format!("X-Extra-{i}"), format!("value {i}")))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let long = "a".repeat(6000);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("100 extra headers", many),
        ("DEL byte", vec![("X-Odd", "a\x7fb")]),
        ("0x01 byte", vec![("X-Odd", "a\x01b")]),
        ("ESC byte", vec![("X-Odd", "a\x1b[31mred")]),
        ("non-ASCII", vec![("X-Odd", "caf\u{e9} \u{2603}")]),
        ("very long header", vec![("X-Long", long.as_str())]),
        ("long cookie", vec![("Cookie", long.as_str())]),
        (
            "odd bytes in the service's own headers",
            vec![
                ("X-Real-IP", "\x01\x7f"),
                ("X-IPCheck-Policy", "strict\x1b"),
                ("X-Forwarded-For", "\x7f, 1.2.3.4"),
            ],
        ),
        (
            "empty values",
            vec![("X-Real-IP", ""), ("X-IPCheck-Policy", "")],
        ),
        ("bogus content length on GET", vec![("Content-Length", "0")]),
    ];
    let mut n = 0;
    for (what, headers) in &cases {
        for path in ["/", "/login"] {
            n += 1;
            let client = format!("127.0.2.{n}");
            let r = stack.get_as(&client, path, headers);
            assert_eq!(
                r.status,
                200,
                "{what} on {path}: a clean client is allowed, whatever it sends: {r:?}\n{}",
                stack.nginx.error_log()
            );
        }
    }
    // Other methods take the same route to the service.
    for method in ["HEAD", "DELETE", "OPTIONS", "PROPFIND"] {
        n += 1;
        let source = format!("127.0.2.{n}").parse().expect("address");
        let dest = ([127, 0, 0, 1], stack.nginx.port()).into();
        let r =
            ipcheck_tests::client::request_from(source, dest, method, "/", &[]).expect("request");
        assert_eq!(r.status, 200, "{method}: {r:?}");
    }
    // HEAD, then other methods, over the same keepalive connections to the backend: every
    // answer is whole (a HEAD answered with a body would leave bytes that break the next one).
    for round in 0..3 {
        for method in ["HEAD", "DELETE", "GET", "HEAD", "POST"] {
            let source = "127.0.2.250".parse().expect("address");
            let dest = ([127, 0, 0, 1], stack.nginx.port()).into();
            let r = ipcheck_tests::client::request_from(source, dest, method, "/", &[])
                .unwrap_or_else(|e| panic!("{method} in round {round}: {e}"));
            assert_eq!(r.status, 200, "{method} in round {round}: {r:?}");
        }
    }
}

#[test]
fn malformed_or_unusual_requests_never_cause_a_5xx() {
    let stack = Stack::start();
    let dest = ([127, 0, 0, 1], stack.nginx.port()).into();
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let huge = "b".repeat(20_000);
    // (request, the status a clean client must get; None = any 4xx will do)
    let cases: Vec<(String, Option<u16>)> = vec![
        (
            "POST /login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello=world".into(),
            Some(200),
        ),
        (
            "POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".into(),
            Some(200),
        ),
        ("GET /login HTTP/1.0\r\n\r\n".into(), Some(200)),
        (format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{many_headers}\r\n"), Some(200)),
        (format!("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Huge: {huge}\r\n\r\n"), None),
        ("GET /login%zz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), None),
        ("GET /login%00 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), None),
        ("GET /../login HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".into(), None),
        ("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Bin: \x02\x03\x04\x7f\r\n\r\n".into(), Some(200)),
    ];
    for (n, (request, want)) in cases.iter().enumerate() {
        let source = format!("127.0.3.{}", n + 1).parse().expect("address");
        let r = ipcheck_tests::client::raw_request_from(source, dest, request.as_bytes())
            .unwrap_or_else(|e| panic!("{request:.80?}: {e}"));
        match want {
            Some(status) => assert_eq!(r.status, *status, "{request:.80?}: {r:?}"),
            None => assert!((400..500).contains(&r.status), "{request:.80?}: {r:?}"),
        }
    }
}

/// A stand-in for "some other application" on the port `ipcheck_auth` points at.
fn wrong_app(status: u16, headers: &[(&str, &str)]) -> HttpStub {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    HttpStub::start(move |_| Response {
        status,
        headers: headers.clone(),
        body: Vec::new(),
    })
}

#[test]
fn an_answer_that_is_not_from_ipcheck_never_allows() {
    let backend = Backend::start();
    let cases: [(u16, &[(&str, &str)]); 7] = [
        (200, &[]),
        (204, &[]),
        (403, &[]),
        (401, &[]),
        (302, &[("Location", "/elsewhere")]),
        // Headers that do not match the status are not ipcheck's either.
        (200, &[("X-IPCheck-Verdict", "block")]),
        (403, &[("X-IPCheck-Verdict", "allow")]),
    ];
    for (status, headers) in cases {
        let app = wrong_app(status, headers);
        let nginx = NginxSetup::new(app.port(), backend.port()).start();
        let what = format!("wrong app answering {status} {headers:?}");

        // Strict, fail closed: refused as "unavailable", never reaching the backend.
        let before = backend.requests().len();
        for path in ["/login", "/signup"] {
            let r = get_via(&nginx, "127.0.0.50", path, &[]);
            assert_eq!(r.status, 403, "{what}, {path}: {r:?}");
            assert_eq!(
                r.body, "{\"error\":\"access denied\",\"reason\":\"unavailable\"}\n",
                "{what}, {path}"
            );
        }
        assert_eq!(backend.requests().len(), before, "{what}: backend reached");

        // Lenient, fail open: passes exactly as when the service is unreachable, without a
        // verdict for the backend to mistake for ipcheck's.
        let r = get_via(&nginx, "127.0.0.50", "/lenient", &[]);
        assert_eq!(r.status, 200, "{what}: {r:?}");
        let seen = backend
            .last_request_for("/lenient")
            .expect("backend reached");
        assert_eq!(seen.header("x-ipcheck-verdict"), None, "{what}");

        // And it is on record.
        let log = nginx.gate_log();
        assert!(
            log.contains(&format!("answered status \"{status}\"")),
            "{what}: gate log {log:?}"
        );
    }
}

#[test]
fn every_spelling_of_a_protected_route_is_protected() {
    let stack = Stack::start();
    let vpn = "127.0.0.60";
    stack.provider.respond(vpn, Reply::flags(&["vpn"]));
    let aliases = [
        "/login",
        "/LOGIN",
        "/Login",
        "/login/",
        "/login//",
        "/login/?next=/account",
        "/login;jsessionid=1",
        "/login%3Bjsessionid=1",
        "/login%2F",
        "/logi%6E/",
        "/LOGI%6e",
        "/login.json",
        "/Login.JSON",
        "/login%2Ejson",
        "/login%20",
        "/login~",
        "/login\\",
        "//login",
        "/./login",
        "/static/../login",
        "/a;b/../login",
        "/signup",
        "/signup/",
        "/SIGNUP",
        "/sign%75p",
        "/SignUp;x=1",
        "/signup.html",
    ];
    for path in aliases {
        let r = stack.get_as(vpn, path, &[]);
        assert_eq!(r.status, 403, "{path} let a VPN in: {r:?}");
        assert_eq!(
            r.body, "{\"error\":\"access denied\",\"reason\":\"vpn\"}\n",
            "{path}"
        );
    }
    assert!(
        stack.backend.requests().is_empty(),
        "the backend saw {:?}",
        stack.backend.requests()
    );
    // Path parameters mid-path, which servlet containers strip before resolving dot segments,
    // so that they reach /login: refused outright, for everyone.
    for path in [
        "/;x/login",
        "/.;/login",
        "/static/..;/login",
        "/static/%2e%2e;/login",
        "/static/..%3B/login",
    ] {
        for client in [vpn, "127.0.0.61"] {
            let r = stack.get_as(client, path, &[]);
            assert_eq!(r.status, 400, "{path} as {client}: {r:?}");
        }
    }
    assert!(stack.backend.requests().is_empty());
    // Other routes that merely start with the name stay on the lenient policy.
    for path in [
        "/loginhelp",
        "/login-form",
        "/login_old",
        "/signups",
        "/logins",
    ] {
        let r = stack.get_as(vpn, path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
}

#[test]
fn client_address_and_decision_headers_never_reach_the_backend() {
    let stack = Stack::start();
    let spoof = "192.0.2.66";
    let planted = [
        ("X-Real-IP", spoof),
        ("X-Forwarded-For", spoof),
        ("Forwarded", "for=192.0.2.66;proto=https"),
        ("X-Forwarded", "for=192.0.2.66"),
        ("Forwarded-For", spoof),
        ("X-Original-Forwarded-For", spoof),
        ("Client-IP", spoof),
        ("X-Client-IP", spoof),
        ("True-Client-IP", spoof),
        ("CF-Connecting-IP", spoof),
        ("CF-Connecting-IPv6", "2001:db8::66"),
        ("CF-Pseudo-IPv4", spoof),
        ("Fastly-Client-IP", spoof),
        ("X-Cluster-Client-IP", spoof),
        ("X-Appengine-User-IP", spoof),
        ("X-ProxyUser-IP", spoof),
        ("X-IPCheck-Verdict", "planted"),
        ("x-ipcheck-reason", "planted"),
        ("X-IPCheck-Cache", "planted"),
        ("X-IPCheck-Key", "planted"),
        ("X-IPCheck-Policy", "planted"),
        ("X-IPCHECK-COUNTRY", "planted"),
        ("X-IPCheck-ASN", "planted"),
        ("X-IPCheck-Score", "planted"),
        ("X-IPCheck-Gate", "planted"),
        ("X-IPCheck-Observed-Verdict", "planted"),
        ("X-IPCheck-Observed-Reason", "planted"),
        // Twice, in case a second copy slipped past.
        ("X-Real-IP", spoof),
        ("True-Client-IP", spoof),
    ];
    let client = "127.0.0.70";
    for path in ["/", "/login", "/static/a.css", "/challenge"] {
        let r = stack.get_as(client, path, &planted);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        let seen = stack
            .backend
            .last_request_for(path)
            .expect("backend reached");
        let leaked: Vec<_> = seen
            .headers
            .iter()
            .filter(|(_, v)| {
                v.contains("192.0.2.66") || v.contains("2001:db8::66") || v.contains("planted")
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "{path}: client values reached the backend: {leaked:?}"
        );
        // What the backend may trust is what nginx set.
        assert_eq!(seen.header("x-real-ip"), Some(client), "{path}");
        assert_eq!(seen.header("x-forwarded-for"), Some(client), "{path}");
        let ipcheck: Vec<_> = seen
            .headers
            .keys()
            .filter(|k| k.starts_with("x-ipcheck-"))
            .cloned()
            .collect();
        let want: &[&str] = if path == "/" || path == "/login" {
            &["x-ipcheck-cache", "x-ipcheck-key", "x-ipcheck-verdict"]
        } else {
            &[]
        };
        assert_eq!(ipcheck, want, "{path}");
    }
    // The planted address was never looked up.
    assert_eq!(stack.provider.calls_for(spoof), 0);
}
