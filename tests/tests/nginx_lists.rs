//! Named network lists through nginx, with the shipped configs (`[lists.tor]`, category tor,
//! named by strict, lenient and default; `[lists.googlebot]`, category crawler): a listed Tor
//! exit is blocked on strict with no provider call, a listed Googlebot address passes, changes in
//! Redis (NETADD, a RENAME swap) reach the service within a few seconds, and without Redis a
//! list loads from its file.

use std::time::Duration;

use ipcheck_tests::nginx::NginxSetup;
use ipcheck_tests::{Backend, Provider, Reply, Service, Stack};

const TOR: &str = "ipcheck:{lists}:tor";
const GOOGLEBOT: &str = "ipcheck:{lists}:googlebot";

fn netadd(stack: &Stack, key: &str, networks: &[&str]) {
    let mut con = stack.redis.client();
    let added: i64 = redis::cmd("IPCHECK")
        .arg("NETADD")
        .arg(key)
        .arg(networks)
        .query(&mut con)
        .expect("NETADD");
    assert_eq!(added, networks.len() as i64);
}

/// The value of one metric line, 0 when absent.
fn metric(text: &str, line: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits (5 s at most) until `check` holds, panicking with `what` otherwise.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(5), check);
}

fn networks(stack: &Stack, list: &str) -> f64 {
    metric(
        &stack.service.metrics(),
        &format!("ipcheck_list_networks{{list=\"{list}\"}}"),
    )
}

#[test]
fn listed_tor_exits_are_blocked_on_strict_without_a_provider_call_and_changes_follow_redis() {
    let stack = Stack::start();
    let (tor, swapped) = ("127.0.0.70", "127.0.0.80");
    // The provider would call both clean: only the list can block them.
    stack.provider.respond_default(Reply::clean());
    netadd(&stack, TOR, &["127.0.0.64/28"]);
    eventually("the service loads the tor list", || {
        networks(&stack, "tor") == 1.0
    });

    let r = stack.get_as(tor, "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"tor\"}\n");
    assert_eq!(stack.provider.calls_for(tor), 0, "no provider call");
    let text = stack.service.metrics();
    assert_eq!(
        metric(&text, "ipcheck_list_decisions_total{list=\"tor\"}"),
        1.0
    );
    assert!(metric(&text, "ipcheck_list_loaded_timestamp_seconds{list=\"tor\"}") > 0.0);
    let explained = stack.service.explain(tor, Some("strict"));
    assert!(
        explained
            .body
            .contains("rule: the list 'tor', before any tier was asked"),
        "{}",
        explained.body
    );
    assert_eq!(
        stack.provider.calls_for(tor),
        0,
        "explain asked no provider either"
    );
    // Lenient only challenges tor: the provider is asked, and the list's fact still counts.
    let r = stack.get_as(tor, "/", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(stack.provider.calls_for(tor), 1);

    // A network added in Redis takes effect (the address was allowed from the local tier).
    let r = stack.get_as(swapped, "/login", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let bystander = "127.0.0.99";
    assert_eq!(stack.get_as(bystander, "/login", &[]).status, 200);
    netadd(&stack, TOR, &["127.0.0.80"]);
    eventually("NETADD reaches the service", || {
        stack.get_as(swapped, "/login", &[]).status == 403
    });
    // The list's invalidation did not empty the local tier: other answers are still local.
    assert_eq!(stack.get_as(bystander, "/login", &[]).status, 200);
    let seen = stack
        .backend
        .last_request_for("/login")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-cache"), Some("local"));

    // A feed's swap: a staging key RENAMEd over the live one, with the old network gone.
    netadd(
        &stack,
        "ipcheck:{lists}:tor.new",
        &["127.0.0.80", "127.0.0.90"],
    );
    let mut con = stack.redis.client();
    let _: () = redis::cmd("RENAME")
        .arg("ipcheck:{lists}:tor.new")
        .arg(TOR)
        .query(&mut con)
        .expect("RENAME");
    eventually("the RENAME swap reaches the service", || {
        stack.get_as(tor, "/login", &[]).status == 200
            && stack.get_as("127.0.0.90", "/login", &[]).status == 403
    });
    assert_eq!(stack.get_as(swapped, "/login", &[]).status, 403);
    let ready = stack.service.get("/readyz", &[]);
    assert!(
        ready
            .body
            .contains("lists: googlebot loaded from redis, 0 networks")
            && ready.body.contains("tor loaded from redis, 2 networks"),
        "{}",
        ready.body
    );
}

#[test]
fn a_listed_googlebot_address_is_a_verified_crawler() {
    let stack = Stack::start();
    let bot = "127.0.1.5";
    // The provider calls it a Tor exit, which lenient challenges: only the list lets it in.
    stack.provider.respond(bot, Reply::flags(&["tor"]));
    netadd(&stack, GOOGLEBOT, &["127.0.1.0/24"]);
    eventually("the service loads the googlebot list", || {
        networks(&stack, "googlebot") == 1.0
    });
    let r = stack.get_as(bot, "/", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let seen = stack
        .backend
        .last_request_for("/")
        .expect("backend reached");
    assert_eq!(seen.header("x-ipcheck-verdict"), Some("allow"));
    assert_eq!(seen.header("x-ipcheck-reason"), Some("crawler"));
    assert_eq!(stack.provider.calls_for(bot), 0, "no provider call");
    // Strict does not allow crawlers: the provider is asked and its tor flag blocks.
    let r = stack.get_as(bot, "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(stack.provider.calls_for(bot), 1);
}

#[test]
fn without_redis_lists_load_from_their_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tor.txt");
    std::fs::write(
        &file,
        "# tor exits\n127.0.2.0/24 ; a whole /24\n127.0.3.7\n",
    )
    .expect("write list");
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let backend = Backend::start();
    let config = format!(
        "{}\n[policies.strict]\nblock = [\"tor\"]\nlists = [\"tor\"]\non_error = \"closed\"\n\
         [policies.lenient]\nlists = [\"tor\"]\n\
         [lists.tor]\ncategory = \"tor\"\nfile = \"{}\"\n",
        provider.config_section(),
        file.display()
    );
    let service = Service::start(&config);
    let nginx = NginxSetup::new(service.port(), backend.port()).start();
    for ip in ["127.0.2.200", "127.0.3.7"] {
        let r = ipcheck_tests::stack::get_via(&nginx, ip, "/login", &[]);
        assert_eq!(r.status, 403, "{ip}: {r:?}");
        assert_eq!(provider.calls_for(ip), 0, "{ip}: no provider call");
    }
    let r = ipcheck_tests::stack::get_via(&nginx, "127.0.3.8", "/login", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let ready = service.get("/readyz", &[]);
    assert!(
        ready.body.starts_with("ready\n")
            && ready
                .body
                .contains("lists: tor loaded from file, 2 networks"),
        "{}",
        ready.body
    );
}
