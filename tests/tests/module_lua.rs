//! IPCHECK from Lua: EVAL, EVAL_RO, and Redis Functions (FCALL, FCALL_RO).

use ipcheck_tests::ipcheck::{self, err_text};
use ipcheck_tests::RedisServer;
use redis::Value;

#[test]
fn eval_reads_and_writes() {
    let server = RedisServer::start();
    let mut con = server.client();
    let ok: String = redis::cmd("EVAL")
        .arg("return redis.call('IPCHECK', 'SET', KEYS[1], 'block', 'REASON', ARGV[1])")
        .arg(1)
        .arg("192.0.2.1")
        .arg("vpn")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    let v: Value = redis::cmd("EVAL")
        .arg("return redis.call('ipcheck', 'get', KEYS[1])")
        .arg(1)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    let h = ipcheck::parse_get_reply(v).unwrap();
    assert_eq!((h.verdict.as_str(), h.reason.as_str()), ("block", "vpn"));
    // A miss is nil, which Lua sees as false.
    let miss: Value = redis::cmd("EVAL")
        .arg("local r = redis.call('IPCHECK', 'GET', KEYS[1]); if r == false then return 'miss' end; return r")
        .arg(1)
        .arg("192.0.2.99")
        .query(&mut con)
        .unwrap();
    assert_eq!(miss, Value::BulkString(b"miss".to_vec()));
    // Errors reach Lua as error replies (redis.pcall returns them as a table).
    let caught: String = redis::cmd("EVAL")
        .arg("local r = redis.pcall('IPCHECK', 'GET', 'nope'); return r['err']")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert!(caught.contains("invalid IP address 'nope'"), "{caught}");
    let deleted: i64 = redis::cmd("EVAL")
        .arg("return redis.call('IPCHECK', 'DEL', KEYS[1])")
        .arg(1)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(deleted, 1);
}

#[test]
fn eval_ro_serves_get_and_refuses_set() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(&mut con, &["192.0.2.1", "allow"]).unwrap();
    let v: Value = redis::cmd("EVAL_RO")
        .arg("return redis.call('IPCHECK', 'GET', KEYS[1])")
        .arg(1)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(ipcheck::parse_get_reply(v).unwrap().verdict, "allow");
    let k: String = redis::cmd("EVAL_RO")
        .arg("return redis.call('IPCHECK', 'KEY', ARGV[1])")
        .arg(0)
        .arg("192.0.2.1")
        .query(&mut con)
        .unwrap();
    assert_eq!(k, "ipcheck:192.0.2.1");
    // Every read-only subcommand is allowed in a read-only script.
    let n: i64 = redis::cmd("EVAL_RO")
        .arg("local s = redis.call('IPCHECK', 'STATS'); local h = redis.call('IPCHECK', 'HELP'); return #s + #h")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert!(n > 10, "{n}");
    let e = err_text(
        redis::cmd("EVAL_RO")
            .arg("return redis.call('IPCHECK', 'SET', KEYS[1], 'block')")
            .arg(1)
            .arg("192.0.2.1")
            .query::<Value>(&mut con),
    );
    assert!(e.to_lowercase().contains("write"), "{e}");
    assert_eq!(ipcheck::verdict(&mut con, "192.0.2.1"), "allow");
}

#[test]
fn functions_call_ipcheck() {
    let server = RedisServer::start();
    let mut con = server.client();
    let lib = "#!lua name=ipc\n\
        redis.register_function('verdict_of', function(keys, args)\n\
          local r = redis.call('IPCHECK', 'GET', keys[1])\n\
          if not r then return 'unknown' end\n\
          return r[2]\n\
        end)\n\
        redis.register_function{function_name='verdict_ro', callback=function(keys, args)\n\
          local r = redis.call('IPCHECK', 'GET', keys[1])\n\
          if not r then return 'unknown' end\n\
          return r[2]\n\
        end, flags={'no-writes'}}\n\
        redis.register_function('pin', function(keys, args)\n\
          return redis.call('IPCHECK', 'SET', keys[1], args[1], 'SOURCE', 'manual')\n\
        end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut con)
        .unwrap();
    let r: String = redis::cmd("FCALL")
        .arg("verdict_of")
        .arg(1)
        .arg("192.0.2.5")
        .query(&mut con)
        .unwrap();
    assert_eq!(r, "unknown");
    let r: String = redis::cmd("FCALL")
        .arg("pin")
        .arg(1)
        .arg("192.0.2.5")
        .arg("challenge")
        .query(&mut con)
        .unwrap();
    assert_eq!(r, "OK");
    let r: String = redis::cmd("FCALL_RO")
        .arg("verdict_ro")
        .arg(1)
        .arg("192.0.2.5")
        .query(&mut con)
        .unwrap();
    assert_eq!(r, "challenge");
    assert_eq!(
        ipcheck::get(&mut con, "192.0.2.5").unwrap().unwrap().source,
        "manual"
    );
}

#[test]
fn lua_tells_fresh_from_stale() {
    let server = RedisServer::start();
    let mut con = server.client();
    ipcheck::set(
        &mut con,
        &[
            "192.0.2.5",
            "block",
            "REASON",
            "tor",
            "EX",
            "1",
            "STALE",
            "600",
        ],
    )
    .unwrap();
    // The README's Lua: r[12] is fresh (1/0), r[14] fresh_ttl.
    let script = "local r = redis.call('IPCHECK', 'GET', KEYS[1]); \
                  if r[12] == 1 then return 'fresh' else return 'stale ' .. r[14] end";
    let read = |con: &mut redis::Connection| -> String {
        redis::cmd("EVAL_RO")
            .arg(script)
            .arg(1)
            .arg("192.0.2.5")
            .query(con)
            .unwrap()
    };
    assert_eq!(read(&mut con), "fresh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while read(&mut con) == "fresh" {
        assert!(std::time::Instant::now() < deadline, "never stale");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(read(&mut con), "stale 0");
}
