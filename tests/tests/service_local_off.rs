//! ipcheck-auth end to end with `cache.capacity = 0`: no local tier, every decision from Redis
//! (what benchmark (d) in `bench/` measures).

use ipcheck_tests::{RedisServer, Service};

#[test]
fn capacity_zero_answers_every_request_from_redis() {
    let redis = RedisServer::start();
    let mut con = redis.client();
    let _: () = redis::cmd("IPCHECK")
        .arg("SET")
        .arg("192.0.2.10")
        .arg("block")
        .arg("REASON")
        .arg("tor")
        .query(&mut con)
        .expect("IPCHECK SET");
    let service = Service::start(&format!(
        "[cache]\ncapacity = 0\n\n[redis]\nurl = \"{}\"\ntimeout = \"2s\"\n\n[policies.default]\nblock = [\"tor\"]\n",
        redis.url()
    ));
    assert!(
        service.log().contains("local off (capacity 0)"),
        "{}",
        service.log()
    );
    for _ in 0..3 {
        let reply = service.auth("192.0.2.10");
        assert_eq!(reply.decision(), (403, "block", "tor", "redis"));
    }
    // A change in Redis applies to the very next request: nothing is held in between.
    let _: () = redis::cmd("IPCHECK")
        .arg("SET")
        .arg("192.0.2.10")
        .arg("allow")
        .arg("SOURCE")
        .arg("manual")
        .query(&mut con)
        .expect("IPCHECK SET manual");
    assert_eq!(
        service.auth("192.0.2.10").decision(),
        (204, "allow", "", "redis")
    );
    let metrics = service.metrics();
    assert!(metrics.contains("ipcheck_local_entries 0"), "{metrics}");
}
