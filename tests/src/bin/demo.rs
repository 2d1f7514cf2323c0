//! The whole stack on loopback for a person to poke at: redis-server with the module, the
//! stand-in provider, ipcheck-auth with the shipped example config, a stand-in backend and nginx
//! with the shipped example server. Prints curl lines that show allow, block and challenge, then
//! runs until Ctrl-C (which reaches every process of the foreground group, so all of them stop).
//! Run through `nginx/demo.sh`, which builds what it needs first.

use ipcheck_tests::{Reply, Stack};

fn main() {
    let stack = Stack::start();
    let p = &stack.provider;
    p.respond("127.0.0.2", Reply::flags(&["vpn"]));
    p.respond("127.0.0.3", Reply::flags(&["hosting"]));
    p.respond("127.0.0.4", Reply::flags(&["tor"]));
    p.respond("127.0.0.5", Reply::flags(&["hosting", "crawler"]));
    let port = stack.nginx.port();
    let redis = stack.redis.port();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    println!("ipcheck demo: nginx on 127.0.0.1:{port} and [::1]:{port}, ipcheck-auth on 127.0.0.1:{}, redis on 127.0.0.1:{redis}", stack.service.port());
    println!("The stand-in provider flags 127.0.0.2 as a VPN, .3 as hosting, .4 as Tor, .5 as a hosting crawler.");
    println!("curl picks the client address with --interface:\n");
    println!(
        "  # allow: a clean client reaches the backend (the echo shows the X-IPCheck-* headers)"
    );
    println!("  curl -s --interface 127.0.0.1 {}", url("/"));
    println!("  # block: a VPN on the strict /login gets 403 and a JSON body");
    println!("  curl -si --interface 127.0.0.2 {}", url("/login"));
    println!("  # challenge: hosting on /login is redirected to the challenge page");
    println!("  curl -si --interface 127.0.0.3 {}", url("/login"));
    println!("  # crawlers crawl the lenient pages even from hosting ranges ...");
    println!("  curl -si --interface 127.0.0.5 {}", url("/"));
    println!("  # ... but do not log in: the strict policy has allow_crawlers = false");
    println!("  curl -si --interface 127.0.0.5 {}", url("/login"));
    println!("  # every spelling of /login is /login");
    println!("  curl -si --interface 127.0.0.2 {}", url("/LOGIN/"));
    println!("  # what Redis holds, and an operator's pin (every instance applies it at once)");
    println!("  redis-cli -p {redis} IPCHECK GET 127.0.0.2");
    println!("  redis-cli -p {redis} IPCHECK SET 127.0.0.1 block SOURCE manual");
    println!("  # the service directly");
    println!(
        "  curl -si -H 'X-Real-IP: 127.0.0.4' http://127.0.0.1:{}/auth",
        stack.service.port()
    );
    println!(
        "  curl -s http://127.0.0.1:{}/metrics | head",
        stack.service.metrics_port()
    );
    println!("  # why an address gets its verdict (the admin listener: ipcheck-auth explain)");
    println!(
        "  curl -s 'http://127.0.0.1:{}/explain?address=127.0.0.2&policy=strict'",
        stack.service.admin_port()
    );
    println!("\nCtrl-C stops everything.");
    loop {
        std::thread::park();
    }
}
