//! ACL rules per subcommand and per key pattern.
//!
//! Redis matches key patterns against the declared key argument. The module's command filter
//! rewrites the address argument of GET/SET/DEL to the real key before Redis checks ACLs, so key
//! patterns apply to `ipcheck:<canonical>`, the key actually read or written.

use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::Value;

/// Whether an error is an ACL refusal (redis-rs renders the NOPERM code as `NoPerm`).
fn noperm(e: &str) -> bool {
    e.to_lowercase().contains("noperm")
}

#[test]
fn subcommand_rules() {
    let server = RedisServer::start();
    let mut admin = server.client();
    ipcheck::set(&mut admin, &["192.0.2.1", "block"]).unwrap();
    server.acl_user("reader", &["~*", "+ipcheck|get"]);
    let mut con = server.client_as("reader", "pass").unwrap();
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "block");
    let e = err_text(ipcheck::set(&mut con, &["192.0.2.1", "allow"]));
    assert!(noperm(&e) && e.contains("ipcheck|set"), "{e}");
    let e = err_text(ipcheck::del(&mut con, "192.0.2.1"));
    assert!(noperm(&e), "{e}");
    let e = err_text(
        redis::cmd("GET")
            .arg("ipcheck:192.0.2.1")
            .query::<Value>(&mut con),
    );
    assert!(noperm(&e), "{e}");
    assert_eq!(ipcheck::verdict(&mut admin, "192.0.2.1"), "block");
}

#[test]
fn read_only_key_pattern_on_the_prefix() {
    let server = RedisServer::start();
    let mut admin = server.client();
    ipcheck::set(&mut admin, &["192.0.2.1", "block"]).unwrap();
    ipcheck::set(&mut admin, &["2001:db8:1:2::/64", "challenge"]).unwrap();
    server.acl_user("ro", &["%R~ipcheck:*", "+ipcheck", "+eval", "+eval_ro"]);
    let mut con = server.client_as("ro", "pass").unwrap();
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "block");
    // Any spelling of the address: the pattern is matched against the real key.
    let h = ipcheck::get(&mut con, "2001:DB8:1:2:aaaa::1")
        .unwrap()
        .unwrap();
    assert_eq!(h.verdict, "challenge");
    assert_eq!(ipcheck::get(&mut con, "192.0.2.200").unwrap(), None);
    // Read-only: SET and DEL are refused before they touch anything.
    let e = err_text(ipcheck::set(&mut con, &["192.0.2.1", "allow"]));
    assert!(noperm(&e), "{e}");
    let e = err_text(ipcheck::del(&mut con, "192.0.2.1"));
    assert!(noperm(&e), "{e}");
    // The same holds inside scripts.
    let v: Value = redis::cmd("EVAL_RO")
        .arg("return redis.call('IPCHECK', 'GET', ARGV[1])")
        .arg(0)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(ipcheck::parse_get_reply(v).unwrap().verdict, "block");
    let e = err_text(
        redis::cmd("EVAL")
            .arg("return redis.call('IPCHECK', 'SET', ARGV[1], 'allow')")
            .arg(0)
            .arg("192.0.2.1")
            .query::<Value>(&mut con),
    );
    assert!(e.contains("can't access"), "{e}");
    assert_eq!(ipcheck::verdict(&mut admin, "192.0.2.1"), "block");
}

#[test]
fn patterns_never_match_the_address_text_instead_of_the_key() {
    // A pattern that matches the address text but not the key must not grant access.
    let server = RedisServer::start();
    let mut admin = server.client();
    ipcheck::set(&mut admin, &["192.0.2.1", "block"]).unwrap();
    server.acl_user("sneaky", &["~192.*", "+ipcheck"]);
    let mut con = server.client_as("sneaky", "pass").unwrap();
    let e = err_text(ipcheck::get(&mut con, "192.0.2.1"));
    assert!(noperm(&e), "{e}");
    let e = err_text(ipcheck::set(&mut con, &["192.0.2.1", "allow"]));
    assert!(noperm(&e), "{e}");
    // A pattern narrower than the prefix is honoured too.
    server.acl_user("v4only", &["~ipcheck:192.0.2.*", "+ipcheck"]);
    let mut con = server.client_as("v4only", "pass").unwrap();
    assert_eq!(
        ipcheck::set(&mut con, &["192.0.2.9", "allow"]).unwrap(),
        Some("OK".into())
    );
    let e = err_text(ipcheck::set(&mut con, &["198.51.100.1", "allow"]));
    assert!(noperm(&e), "{e}");
}

#[test]
fn write_only_pattern_can_set_and_delete() {
    let server = RedisServer::start();
    server.acl_user("writer", &["%RW~ipcheck:*", "+ipcheck|set", "+ipcheck|del"]);
    let mut con = server.client_as("writer", "pass").unwrap();
    assert_eq!(
        ipcheck::set(&mut con, &["192.0.2.1", "allow"]).unwrap(),
        Some("OK".into())
    );
    assert_eq!(ipcheck::del(&mut con, "192.0.2.1").unwrap(), 1);
}
