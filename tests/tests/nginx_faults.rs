//! Faults behind the service, through nginx as a user sees them: the shipped `nginx/example.conf`
//! and `auth-service/ipcheck.example.toml` (strict `/login` fails closed on a Redis error, lenient
//! `/` goes on without Redis), with redis-server frozen (SIGSTOP) or killed (SIGKILL) while
//! clients whose addresses an operator pinned to `block` keep coming.

use std::time::{Duration, Instant};

use ipcheck_tests::{RedisServer, Stack};

/// The example config's `cache.degraded_ttl`.
const DEGRADED_TTL: Duration = Duration::from_secs(5);
/// Room for the service to notice Redis is back (reconnect, first answers).
const MARGIN: Duration = Duration::from_secs(5);

/// A Redis that keeps its data across a SIGKILL (every write fsynced to the AOF).
fn persistent_redis() -> RedisServer {
    RedisServer::builder()
        .conf("appendonly yes")
        .conf("appendfsync always")
        .start()
}

fn pin(stack: &Stack, ips: &[&str]) {
    let mut con = stack.redis.client();
    for ip in ips {
        let _: () = redis::cmd("IPCHECK")
            .arg(&["SET", ip, "block", "SOURCE", "manual"])
            .query(&mut con)
            .unwrap_or_else(|e| panic!("pin {ip}: {e}"));
    }
}

/// While Redis is unusable: clients from pinned addresses keep asking for `/login` (strict) and
/// `/` (lenient), a bounded number of times. `/login` never lets one in; `/` may (lenient goes
/// on without Redis). Returns how many `/` requests passed.
fn hammer_while_redis_is_out(stack: &Stack, pinned: &[&str]) -> usize {
    let mut lenient_passed = 0;
    let until = Instant::now() + Duration::from_secs(4);
    for _round in 0..8 {
        for ip in pinned {
            let r = stack.get_as(ip, "/login", &[]);
            assert!(
                !(200..300).contains(&r.status),
                "a block-pinned client got into the strict /login while Redis was out: {r:?}"
            );
            assert_eq!(r.status, 403, "{r:?}");
            let r = stack.get_as(ip, "/", &[]);
            assert!(r.status < 500, "{r:?}");
            if (200..300).contains(&r.status) {
                lenient_passed += 1;
            }
        }
        if Instant::now() > until {
            break;
        }
    }
    lenient_passed
}

/// Polls `/` from every pinned address until each is blocked again; panics if that takes
/// longer than `degraded_ttl` plus a margin after `since`.
fn pins_win_again(stack: &Stack, pinned: &[&str], since: Instant, what: &str) -> Duration {
    let deadline = since + DEGRADED_TTL + MARGIN;
    let mut waiting: Vec<&str> = pinned.to_vec();
    while !waiting.is_empty() {
        waiting.retain(|ip| stack.get_as(ip, "/", &[]).status != 403);
        if waiting.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {what}, {waiting:?} still pass / after {:?} (degraded_ttl {DEGRADED_TTL:?})\nservice log:\n{}",
            since.elapsed(),
            stack.service.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Blocked because of the pin, not by chance.
    for ip in pinned {
        let r = stack.get_as(ip, "/", &[]);
        assert_eq!(r.status, 403, "{r:?}");
        assert_eq!(stack.get_as(ip, "/login", &[]).status, 403);
    }
    since.elapsed()
}

#[test]
fn block_pins_hold_on_strict_locations_while_redis_is_frozen_and_win_again_after() {
    let stack = Stack::start_on(persistent_redis(), "60s", |n| n);
    // The provider calls every address clean; only the operator's pins block them.
    let pinned = ["127.0.0.11", "127.0.0.12", "127.0.0.13"];
    pin(&stack, &pinned);

    stack.redis.signal("STOP");
    let passed = hammer_while_redis_is_out(&stack, &pinned);
    let resumed = Instant::now();
    stack.redis.signal("CONT");
    let took = pins_win_again(&stack, &pinned, resumed, "SIGCONT");
    eprintln!("frozen: {passed} lenient requests passed; pins won again {took:?} after SIGCONT");

    // What the operator sees: redis-error on the strict location, and the state in metrics.
    let metrics = stack.service.metrics();
    assert!(
        metrics
            .contains("ipcheck_decision_reasons_total{verdict=\"block\",reason=\"redis-error\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("ipcheck_redis_errors_total{op=\"get\",kind=\"timeout\"} 0"),
        "{metrics}"
    );
}

#[test]
fn block_pins_hold_on_strict_locations_while_redis_is_killed_and_win_again_after_restart() {
    let mut stack = Stack::start_on(persistent_redis(), "60s", |n| n);
    let pinned = ["127.0.0.21", "127.0.0.22", "127.0.0.23"];
    pin(&stack, &pinned);

    stack.redis.kill();
    let passed = hammer_while_redis_is_out(&stack, &pinned);
    stack.redis.restart();
    let restarted = Instant::now();
    // The pins were persisted: the restarted server still holds them.
    let mut con = stack.redis.client();
    let held: Option<Vec<String>> = redis::cmd("IPCHECK")
        .arg(&["GET", pinned[0]])
        .query(&mut con)
        .expect("IPCHECK GET");
    assert!(held.is_some_and(|f| f.contains(&"manual".to_owned())));
    let took = pins_win_again(&stack, &pinned, restarted, "restart");
    eprintln!("killed: {passed} lenient requests passed; pins won again {took:?} after restart");
}
