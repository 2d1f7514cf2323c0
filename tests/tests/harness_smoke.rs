//! The harness itself: a server with the module comes up and answers.

use ipcheck_tests::RedisServer;

#[test]
fn redis_with_module_answers_ping() {
    let server = RedisServer::start();
    let mut con = server.client();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}
