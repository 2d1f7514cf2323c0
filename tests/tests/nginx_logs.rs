//! Logs of one request, as an operator joins them: the shipped `ipcheck` access log format in
//! `nginx/example.conf`, and the service's per-decision log (`[log] decisions`), both carrying
//! nginx's own `$request_id`. The stack runs the shipped configs; only `log.decisions` is set,
//! through its environment variable.

use std::time::{Duration, Instant};

use ipcheck_tests::stack::{example_service_config, KEY_VAR, SECRET};
use ipcheck_tests::{Backend, NginxSetup, Provider, RedisServer, Reply, Service, Stack};

/// The shipped stack with `IPCHECK_LOG_DECISIONS` set to `decisions`.
fn stack_logging(decisions: &str) -> Stack {
    let redis = RedisServer::start();
    let provider = Provider::start();
    let backend = Backend::start();
    let service = Service::builder(&example_service_config(&redis, &provider, "60s"))
        .env(KEY_VAR, SECRET)
        .env("IPCHECK_LOG_DECISIONS", decisions)
        .start();
    let nginx = NginxSetup::new(service.port(), backend.port()).start();
    Stack {
        nginx,
        service,
        backend,
        provider,
        redis,
    }
}

/// Polls `find` until it returns something (nginx writes a request's log line after answering).
fn wait_for<T>(what: &str, mut find: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = find() {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what} within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One line of the `ipcheck` access log format, split into its fields.
#[derive(Debug)]
struct AccessLine {
    request_id: String,
    remote_addr: String,
    request: String,
    status: String,
    /// `verdict=... reason=... cache=... key=...`.
    decision: String,
}

fn parse_access(line: &str) -> AccessLine {
    // $time_iso8601 $request_id $remote_addr "$request" $status verdict=.. reason=.. cache=.. key=..
    let (head, rest) = line.split_once(" \"").expect("a quoted request");
    let (request, tail) = rest.split_once("\" ").expect("the request's closing quote");
    let head: Vec<&str> = head.split(' ').collect();
    let (status, decision) = tail.split_once(' ').expect("status, then the decision");
    assert_eq!(head.len(), 3, "time, request id, address: {line}");
    AccessLine {
        request_id: head[1].to_owned(),
        remote_addr: head[2].to_owned(),
        request: request.to_owned(),
        status: status.to_owned(),
        decision: decision.to_owned(),
    }
}

/// The access log line of the request `request` (`GET /x HTTP/1.1`) from `addr`.
fn access_line(stack: &Stack, addr: &str, request: &str) -> AccessLine {
    wait_for(
        &format!("access log line for {request} from {addr}"),
        || {
            stack
                .nginx
                .access_log()
                .lines()
                .map(parse_access)
                .find(|l| l.remote_addr == addr && l.request == request)
        },
    )
}

/// The service's decision lines naming this request id.
fn decision_lines(stack: &Stack, request_id: &str) -> Vec<String> {
    let needle = format!("request_id={request_id} ");
    stack
        .service
        .log()
        .lines()
        .filter(|l| l.contains("ipcheck::decision") && l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

fn assert_nginx_request_id(id: &str) {
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "not nginx's $request_id: {id:?}"
    );
}

#[test]
fn one_request_id_joins_the_access_log_and_the_decision_log() {
    let stack = stack_logging("all");
    stack.provider.respond("127.0.0.2", Reply::flags(&["vpn"]));
    let forged = [("X-Request-Id", "client-chosen-id")];

    // A VPN on the strict location: blocked.
    let r = stack.get_as("127.0.0.2", "/login", &forged);
    assert_eq!(r.status, 403, "{r:?}");
    let line = access_line(&stack, "127.0.0.2", "GET /login HTTP/1.1");
    assert_eq!(line.status, "403");
    assert_eq!(
        line.decision,
        "verdict=block reason=vpn cache=provider key=127.0.0.2"
    );
    // nginx's own id, not the one the client sent.
    assert_nginx_request_id(&line.request_id);
    let decided = decision_lines(&stack, &line.request_id);
    assert_eq!(decided.len(), 1, "{}", stack.service.log());
    for field in [
        " INFO ",
        "key=127.0.0.2",
        "policy=strict",
        "verdict=block",
        "reason=vpn",
        "tier=provider",
        "latency_us=",
    ] {
        assert!(
            decided[0].contains(field),
            "{field} missing: {}",
            decided[0]
        );
    }

    // A clean client on the lenient rest of the site: allowed, and logged too (decisions = all).
    let r = stack.get_as("127.0.0.3", "/account", &forged);
    assert_eq!(r.status, 200, "{r:?}");
    let line = access_line(&stack, "127.0.0.3", "GET /account HTTP/1.1");
    assert_eq!(line.status, "200");
    // An empty reason is written empty; "-" is for a variable never set (no check ran, below).
    assert_eq!(
        line.decision,
        "verdict=allow reason= cache=provider key=127.0.0.3"
    );
    assert_nginx_request_id(&line.request_id);
    let decided = decision_lines(&stack, &line.request_id);
    assert_eq!(decided.len(), 1, "{}", stack.service.log());
    for field in [
        "policy=lenient",
        "verdict=allow",
        "reason= ",
        "tier=provider",
    ] {
        assert!(
            decided[0].contains(field),
            "{field} missing: {}",
            decided[0]
        );
    }

    // The backend got the same id, not the client's.
    let seen = stack
        .backend
        .last_request_for("/account")
        .expect("backend reached");
    assert_eq!(seen.header("x-request-id"), Some(line.request_id.as_str()));
    // Two requests, two ids; the client's header never reached the service as an id.
    assert!(!stack.service.log().contains("client-chosen-id"));
    let ids: Vec<String> = stack
        .nginx
        .access_log()
        .lines()
        .map(|l| parse_access(l).request_id)
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1]);

    // An unchecked location is logged by nginx without a decision.
    let r = stack.get_as("127.0.0.3", "/static/a.js", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let line = access_line(&stack, "127.0.0.3", "GET /static/a.js HTTP/1.1");
    assert_eq!(line.decision, "verdict=- reason=- cache=- key=-");
    assert!(decision_lines(&stack, &line.request_id).is_empty());
}

#[test]
fn non_allow_logs_blocks_and_challenges_only() {
    let stack = stack_logging("non-allow");
    stack
        .provider
        .respond("127.0.0.5", Reply::flags(&["hosting"]));

    // Allowed: nginx logs it, the service does not. The service logs before it answers, so once
    // nginx has logged the request any decision line would be there.
    let r = stack.get_as("127.0.0.4", "/account", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let allowed = access_line(&stack, "127.0.0.4", "GET /account HTTP/1.1");
    assert!(
        allowed.decision.starts_with("verdict=allow "),
        "{allowed:?}"
    );
    assert!(
        decision_lines(&stack, &allowed.request_id).is_empty(),
        "{}",
        stack.service.log()
    );

    // Challenged (hosting on the strict location): logged, with the id nginx logged.
    let r = stack.get_as("127.0.0.5", "/login", &[]);
    assert_eq!(r.status, 302, "{r:?}");
    let challenged = access_line(&stack, "127.0.0.5", "GET /login HTTP/1.1");
    assert_eq!(
        challenged.decision,
        "verdict=challenge reason=hosting cache=provider key=127.0.0.5"
    );
    let decided = decision_lines(&stack, &challenged.request_id);
    assert_eq!(decided.len(), 1, "{}", stack.service.log());
    assert!(decided[0].contains("verdict=challenge"), "{}", decided[0]);
    assert!(!stack.service.log().contains("verdict=allow"));
}

#[test]
fn a_check_without_a_verdict_is_logged_empty() {
    // The service unreachable: the location's $ipcheck_on_unreachable decides, and the access
    // log says a check ran but had no verdict (empty, where an unchecked location has "-").
    let backend = Backend::start();
    let nginx = NginxSetup::new(ipcheck_tests::free_port(), backend.port()).start();
    let r = ipcheck_tests::stack::get_via(&nginx, "127.0.0.6", "/login", &[]);
    assert_eq!(r.status, 403, "{r:?}");
    let line = wait_for("access log line for /login", || {
        nginx
            .access_log()
            .lines()
            .map(parse_access)
            .find(|l| l.request == "GET /login HTTP/1.1")
    });
    assert_eq!(line.status, "403");
    assert_eq!(line.decision, "verdict= reason= cache= key=");
    assert_nginx_request_id(&line.request_id);
}
