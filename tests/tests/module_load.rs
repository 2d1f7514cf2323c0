//! Load arguments, module configs, and refused loads.

use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::{module_path, RedisServer};
use redis::Connection;

fn config_get(con: &mut Connection, name: &str) -> String {
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(con)
        .unwrap();
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

#[test]
fn bad_load_arguments_refuse_the_load_and_say_why() {
    for (args, needle) in [
        (&["ttl", "5"][..], "unknown argument 'ttl'"),
        (&["default-ttl"][..], "argument 'default-ttl' needs a value"),
        (
            &["default-ttl", "0"][..],
            "argument 'default-ttl': 0 is out of range 1..31536000",
        ),
        (
            &["default-ttl", "soon"][..],
            "argument 'default-ttl': 'soon' is not an integer",
        ),
        (
            &["ipv4-prefix", "8"][..],
            "argument 'ipv4-prefix': 8 is out of range 16..32",
        ),
        (
            &["ipv6-prefix", "129"][..],
            "argument 'ipv6-prefix': 129 is out of range 32..128",
        ),
        (&["key-prefix", "1"][..], "argument 'key-prefix'"),
        (
            &["ipv6-prefix", "64", "ipv6-prefix", "56"][..],
            "argument 'ipv6-prefix' given more than once",
        ),
    ] {
        let result = RedisServer::builder()
            .module_args(args)
            .start_expecting_failure();
        let Err(log) = result else {
            panic!("{args:?} loaded");
        };
        assert!(log.contains(needle), "{args:?}: {log}");
        assert!(log.contains("refusing to load"), "{args:?}: {log}");
    }
}

#[test]
fn load_arguments_take_effect_and_show_as_configs() {
    let server = RedisServer::builder()
        .module_args(&[
            "default-ttl",
            "60",
            "ipv4-prefix",
            "24",
            "IPV6-PREFIX",
            "48",
            "key-prefix",
            "vc:",
        ])
        .start();
    let mut con = server.client();
    assert_eq!(
        ipcheck::key(&mut con, "192.0.2.77").unwrap(),
        "vc:192.0.2.0/24"
    );
    assert_eq!(
        ipcheck::key(&mut con, "2001:db8:1:2::1").unwrap(),
        "vc:2001:db8:1::/48"
    );
    ipcheck::set(&mut con, &["192.0.2.200", "block"]).unwrap();
    let h = ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap();
    assert_eq!((h.ttl, h.key.as_str()), (60, "vc:192.0.2.0/24"));
    assert_eq!(config_get(&mut con, "ipcheck.default-ttl"), "60");
    assert_eq!(config_get(&mut con, "ipcheck.ipv4-prefix"), "24");
    assert_eq!(config_get(&mut con, "ipcheck.ipv6-prefix"), "48");
    assert_eq!(config_get(&mut con, "ipcheck.key-prefix"), "vc:");
}

#[test]
fn config_set_changes_settings_and_validates() {
    let server = RedisServer::start();
    let mut con = server.client();
    let set = |con: &mut Connection, name: &str, value: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query::<()>(con)
    };
    set(&mut con, "ipcheck.default-ttl", "120").unwrap();
    ipcheck::set(&mut con, &["192.0.2.1", "allow"]).unwrap();
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap().ttl,
        120
    );
    set(&mut con, "ipcheck.ipv6-prefix", "56").unwrap();
    assert_eq!(
        ipcheck::key(&mut con, "2001:db8:1:2::1").unwrap(),
        "ipcheck:2001:db8:1::/56"
    );
    set(&mut con, "ipcheck.key-prefix", "ipc2:").unwrap();
    assert_eq!(
        ipcheck::key(&mut con, "192.0.2.1").unwrap(),
        "ipc2:192.0.2.1"
    );
    assert_eq!(config_get(&mut con, "ipcheck.key-prefix"), "ipc2:");
    for (name, value) in [
        ("ipcheck.default-ttl", "0"),
        ("ipcheck.default-ttl", "31536001"),
        ("ipcheck.ipv4-prefix", "15"),
        ("ipcheck.ipv6-prefix", "200"),
        ("ipcheck.key-prefix", "a b"),
        ("ipcheck.key-prefix", ""),
        ("ipcheck.key-prefix", "{x}"),
        ("ipcheck.key-prefix", "2001:"),
    ] {
        let e = err_text(set(&mut con, name, value));
        assert!(
            e.contains(name) || e.contains("argument"),
            "{name} {value}: {e}"
        );
    }
    assert_eq!(config_get(&mut con, "ipcheck.key-prefix"), "ipc2:");
    assert_eq!(config_get(&mut con, "ipcheck.default-ttl"), "120");
}

#[test]
fn config_file_lines_override_load_arguments() {
    let server = RedisServer::builder()
        .module_args(&["default-ttl", "60"])
        .conf("ipcheck.default-ttl 45")
        .conf("ipcheck.key-prefix cfg:")
        .start();
    let mut con = server.client();
    assert_eq!(config_get(&mut con, "ipcheck.default-ttl"), "45");
    assert_eq!(
        ipcheck::key(&mut con, "192.0.2.1").unwrap(),
        "cfg:192.0.2.1"
    );
}

#[test]
fn module_load_at_runtime() {
    let server = RedisServer::builder().without_module().start();
    let mut con = server.client();
    let path = module_path().display().to_string();
    let e = err_text(
        redis::cmd("MODULE")
            .arg("LOAD")
            .arg(&path)
            .arg("ipv4-prefix")
            .arg("40")
            .query::<()>(&mut con),
    );
    assert!(e.contains("Error loading the extension"), "{e}");
    assert!(server
        .log()
        .contains("argument 'ipv4-prefix': 40 is out of range 16..32"));
    let _: () = redis::cmd("MODULE")
        .arg("LOAD")
        .arg(&path)
        .arg("default-ttl")
        .arg("30")
        .arg("ipv4-prefix")
        .arg("16")
        .query(&mut con)
        .unwrap();
    ipcheck::set(&mut con, &["10.1.2.3", "block"]).unwrap();
    let h = ipcheck::get(&mut con, "10.1.99.99").unwrap().unwrap();
    assert_eq!((h.ttl, h.key.as_str()), (30, "ipcheck:10.1.0.0/16"));
}
