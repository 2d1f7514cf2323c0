//! ipcheck-auth end to end: which address a request is about.

use ipcheck_tests::{Provider, Reply, Service};

fn config(provider: &Provider, client_ip: &str) -> String {
    format!(
        r#"
[client_ip]
{client_ip}

[provider]
preset = "ipasis"
url = "{url}"
api_key_env = ""

[policies.default]
block = ["tor"]
"#,
        url = provider.url_template()
    )
}

#[test]
fn x_real_ip_by_default_and_forwarded_for_ignored() {
    let provider = Provider::start();
    provider.respond("203.0.113.9", Reply::flags(&["tor"]));
    let svc = Service::start(&config(&provider, ""));
    // The client cannot pick an address: X-Forwarded-For means nothing here.
    let r = svc.get(
        "/auth",
        &[
            ("X-Real-IP", "198.51.100.1"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(r.decision(), (204, "allow", "", "provider"));
    assert_eq!(r.header("x-ipcheck-key"), Some("198.51.100.1"));
    let r = svc.get("/auth", &[("X-Forwarded-For", "203.0.113.9")]);
    assert_eq!(r.decision(), (204, "allow", "no-client-ip", "none"));
    // Ports and brackets are stripped.
    assert_eq!(
        svc.auth("203.0.113.9:51234").decision(),
        (403, "block", "tor", "provider")
    );
    let r = svc.auth("[2001:DB8:0:0:1::7]:443");
    assert_eq!(r.header("x-ipcheck-key"), Some("2001:db8::/64"));
    assert_eq!(
        provider.calls_for("2001:db8::1:0:0:7"),
        1,
        "{:?}",
        provider.seen()
    );
}

#[test]
fn forwarded_for_without_trusted_proxies_is_ignored() {
    let provider = Provider::start();
    provider.respond("203.0.113.9", Reply::flags(&["tor"]));
    let svc = Service::start(&config(&provider, "header = \"x-forwarded-for\""));
    let r = svc.get(
        "/auth",
        &[
            ("X-Real-IP", "198.51.100.1"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(r.header("x-ipcheck-key"), Some("198.51.100.1"));
    assert!(
        svc.log().contains("without client_ip.trusted_proxies"),
        "{}",
        svc.log()
    );
}

#[test]
fn forwarded_for_rightmost_untrusted_beats_a_spoofed_leftmost() {
    let provider = Provider::start();
    provider.respond("203.0.113.9", Reply::flags(&["tor"]));
    let svc = Service::start(&config(
        &provider,
        "header = \"x-forwarded-for\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.250\"]",
    ));
    // The client wrote 1.1.1.1 itself; the trusted proxies appended the real address and theirs.
    let r = svc.get(
        "/auth",
        &[
            ("X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.0.0.3"),
            ("X-Real-IP", "192.0.2.250"),
        ],
    );
    assert_eq!(r.decision(), (403, "block", "tor", "provider"));
    assert_eq!(r.header("x-ipcheck-key"), Some("203.0.113.9"));
    assert_eq!(provider.calls_for("1.1.1.1"), 0);
    // A request that did not come through the proxies is judged by its real peer.
    let r = svc.get(
        "/auth",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Real-IP", "198.51.100.8"),
        ],
    );
    assert_eq!(r.header("x-ipcheck-key"), Some("198.51.100.8"));
    // Garbage right of the first untrusted hop: no address, never a guess.
    let r = svc.get(
        "/auth",
        &[
            ("X-Forwarded-For", "203.0.113.9, bogus"),
            ("X-Real-IP", "10.0.0.1"),
        ],
    );
    assert_eq!(r.decision(), (204, "allow", "no-client-ip", "none"));
    // Ports and brackets inside the chain.
    let r = svc.get(
        "/auth",
        &[
            ("X-Forwarded-For", "[2001:db8::5]:8443, 10.0.0.3:80"),
            ("X-Real-IP", "10.0.0.4"),
        ],
    );
    assert_eq!(r.header("x-ipcheck-key"), Some("2001:db8::/64"));
}

#[test]
fn a_non_utf8_byte_left_of_the_client_changes_nothing() {
    let provider = Provider::start();
    provider.respond("203.0.113.9", Reply::flags(&["tor"]));
    // The default policy blocks tor and fails open.
    let svc = Service::start(&config(
        &provider,
        "header = \"x-forwarded-for\"\ntrusted_proxies = [\"10.0.0.0/8\"]",
    ));
    // The client wrote a \xff in its own hop; the trusted proxy appended the real address.
    // Before the fix the whole header was unreadable: no address, and on_error let a Tor exit in.
    let r = svc.get_raw(
        "/auth",
        &[
            ("X-Forwarded-For", b"1.1.1.1\xff, 203.0.113.9"),
            ("X-Real-IP", b"10.0.0.3"),
        ],
    );
    assert_eq!(r.decision(), (403, "block", "tor", "provider"));
    assert_eq!(r.header("x-ipcheck-key"), Some("203.0.113.9"));
    // Only a hop the walk reaches can end it: here the \xff hop is the one to judge.
    let r = svc.get_raw(
        "/auth",
        &[
            ("X-Forwarded-For", b"203.0.113.9\xff, 10.0.0.7"),
            ("X-Real-IP", b"10.0.0.3"),
        ],
    );
    assert_eq!(r.decision(), (204, "allow", "no-client-ip", "none"));
}

#[test]
fn ports_above_65535_are_not_an_address() {
    let provider = Provider::start();
    let svc = Service::start(&config(&provider, ""));
    for text in ["1.2.3.4:99999", "1.2.3.4:65536", "[2001:db8::1]:70000"] {
        let r = svc.auth(text);
        assert_eq!(
            r.decision(),
            (204, "allow", "no-client-ip", "none"),
            "{text}"
        );
        assert_eq!(r.header("x-ipcheck-key"), Some(""), "{text}");
    }
    assert_eq!(provider.calls(), 0, "{:?}", provider.seen());
    let r = svc.auth("1.2.3.4:65535");
    assert_eq!(r.header("x-ipcheck-key"), Some("1.2.3.4"));
}
