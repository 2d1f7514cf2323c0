//! Cluster mode: canonical addresses only, keys hash-tagged to the slot the client routed to.

use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::Connection;

fn keyslot(con: &mut Connection, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(con)
        .unwrap()
}

#[test]
fn keys_live_in_the_slot_of_the_address_argument() {
    let server = RedisServer::builder().cluster().start();
    server.own_slots(0, 16383);
    let mut con = server.client();
    assert_eq!(
        ipcheck::set(&mut con, &["192.0.2.1", "block"]).unwrap(),
        Some("OK".into())
    );
    let h = ipcheck::get(&mut con, "192.0.2.1").unwrap().unwrap();
    assert_eq!(h.key, "ipcheck:{192.0.2.1}");
    assert_eq!(keyslot(&mut con, &h.key), keyslot(&mut con, "192.0.2.1"));
    ipcheck::set(&mut con, &["2001:db8:1:2::/64", "challenge"]).unwrap();
    let h = ipcheck::get(&mut con, "2001:db8:1:2::/64")
        .unwrap()
        .unwrap();
    assert_eq!(h.key, "ipcheck:{2001:db8:1:2::/64}");
    assert_eq!(
        keyslot(&mut con, &h.key),
        keyslot(&mut con, "2001:db8:1:2::/64")
    );
    assert_eq!(ipcheck::del(&mut con, "192.0.2.1").unwrap(), 1);
    // Scripts declare the address as their key; the filtered key hashes to the same slot.
    let v: redis::Value = redis::cmd("EVAL")
        .arg("return redis.call('IPCHECK', 'GET', KEYS[1])")
        .arg(1)
        .arg("2001:db8:1:2::/64")
        .query(&mut con)
        .unwrap();
    assert_eq!(ipcheck::parse_get_reply(v).unwrap().verdict, "challenge");
    // KEY accepts any spelling and tells the client what to send.
    assert_eq!(
        ipcheck::key(&mut con, "2001:DB8:1:2::99").unwrap(),
        "ipcheck:{2001:db8:1:2::/64}"
    );
}

#[test]
fn non_canonical_addresses_are_refused_with_the_canonical_form() {
    let server = RedisServer::builder().cluster().start();
    server.own_slots(0, 16383);
    let mut con = server.client();
    for (given, canonical) in [
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("[2001:db8::]", "2001:db8::/64"),
    ] {
        let e = err_text(ipcheck::get(&mut con, given));
        assert!(
            e.contains(&format!("in cluster mode send '{canonical}'")),
            "{given}: {e}"
        );
        let e = err_text(ipcheck::set(&mut con, &[given, "block"]));
        assert!(e.contains(canonical), "{given}: {e}");
    }
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0);
}

#[test]
fn the_server_routes_by_the_address_argument() {
    let server = RedisServer::builder().cluster().start();
    let mut con = server.client();
    let slot = keyslot(&mut con, "192.0.2.1") as u16;
    server.own_slots(slot, slot);
    ipcheck::set(&mut con, &["192.0.2.1", "allow"]).unwrap();
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "allow");
    // An address whose slot this node does not serve is refused by Redis's own slot check.
    let other = (1..255)
        .map(|i| format!("198.51.100.{i}"))
        .find(|a| keyslot(&mut con, a) as u16 != slot)
        .unwrap();
    let e = err_text(ipcheck::set(&mut con, &[&other, "allow"]));
    assert!(
        e.contains("CLUSTERDOWN") || e.contains("MOVED") || e.to_lowercase().contains("slot"),
        "{e}"
    );
}
