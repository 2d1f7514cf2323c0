//! Local `.mmdb` databases through nginx: the public MaxMind test files (copied into the test's
//! temp dir) as `[databases.*]`, clients placed at their addresses by nginx's real-IP module
//! (`set_real_ip_from` the loopback, `X-Forwarded-For`, as `example.conf` documents for a load
//! balancer). Policies: `strict` (/login) blocks GB, `lenient` (/) blocks VPNs, neither allows
//! crawlers, so the databases can give everything each needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipcheck_tests::client::HttpReply;
use ipcheck_tests::nginx::{Nginx, NginxSetup};
use ipcheck_tests::{Backend, Provider, RedisServer, Reply, Service};

/// GB in the country file, in no anonymous-IP network.
const GB: &str = "2.125.160.217";
/// A VPN in the anonymous-IP file (1.2.0.0/16), in no country network.
const VPN: &str = "1.2.3.4";
/// SE in the country file.
const SE: &str = "89.160.20.130";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mmdb")
        .join(name)
}

/// Puts fixture `name` at `to` the way a database update should be installed: written beside,
/// then renamed over.
fn install(name: &str, to: &Path) {
    let staged = to.with_extension("staged");
    std::fs::copy(fixture(name), &staged).expect("copy fixture");
    std::fs::rename(&staged, to).expect("rename over");
}

struct Setup {
    nginx: Nginx,
    service: Service,
    provider: Provider,
    redis: RedisServer,
    _backend: Backend,
    geo: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(geo_fixture: &str, check_interval: &str) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let geo = dir.path().join("country.mmdb");
    let anon = dir.path().join("anonymous.mmdb");
    let asn = dir.path().join("asn.mmdb");
    install(geo_fixture, &geo);
    install("GeoIP2-Anonymous-IP-Test.mmdb", &anon);
    install("GeoLite2-ASN-Test.mmdb", &asn);
    let redis = RedisServer::start();
    let provider = Provider::start();
    provider.respond_default(Reply::clean());
    let backend = Backend::start();
    let config = format!(
        "{}\n[redis]\nurl = \"{}\"\n\
         [policies.strict]\nblock_countries = [\"GB\"]\nallow_crawlers = false\non_error = \"closed\"\n\
         [policies.lenient]\nblock = [\"vpn\"]\nallow_crawlers = false\n\
         [databases.anon]\nfile = \"{}\"\npreset = \"anonymous-ip\"\n\
         [databases.asn]\nfile = \"{}\"\npreset = \"asn\"\n\
         [databases.geo]\nfile = \"{}\"\npreset = \"country\"\ncheck_interval = \"{check_interval}\"\n",
        provider.config_section(),
        redis.url(),
        anon.display(),
        asn.display(),
        geo.display()
    );
    let service = Service::start(&config);
    let nginx = NginxSetup::new(service.port(), backend.port())
        .edit(
            "example.conf",
            "# set_real_ip_from  10.0.0.0/8;",
            "set_real_ip_from  127.0.0.0/8;",
        )
        .edit(
            "example.conf",
            "# real_ip_header    X-Forwarded-For;",
            "real_ip_header    X-Forwarded-For;",
        )
        .start();
    Setup {
        nginx,
        service,
        provider,
        redis,
        _backend: backend,
        geo,
        _dir: dir,
    }
}

impl Setup {
    /// `GET path` as the client `ip`, behind the loopback "load balancer".
    fn get(&self, ip: &str, path: &str) -> HttpReply {
        ipcheck_tests::stack::get_via(&self.nginx, "127.0.0.1", path, &[("X-Forwarded-For", ip)])
    }

    fn metric(&self, line: &str) -> f64 {
        self.service
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

/// Waits (10 s at most) until `check` holds, panicking with `what` otherwise.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    ipcheck_tests::eventually(what, Duration::from_secs(10), check);
}

#[test]
fn the_databases_decide_what_they_cover_a_pin_still_wins_and_the_rest_asks_the_provider() {
    let s = start("GeoLite2-Country-Test.mmdb", "5s");

    // A blocked country, decided by the country database: no provider call.
    let r = s.get(GB, "/login");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        r.body,
        "{\"error\":\"access denied\",\"reason\":\"country\"}\n"
    );
    assert_eq!(s.provider.calls_for(GB), 0, "no provider call");
    // The service's answer carries the country the database gave, as for a provider's.
    let answer = s.service.auth_policy(GB, "strict");
    assert_eq!(
        (
            answer.header("x-ipcheck-cache"),
            answer.header("x-ipcheck-country")
        ),
        (Some("database"), Some("GB")),
        "{answer:?}"
    );
    assert_eq!(s.provider.calls_for(GB), 0, "no provider call");
    // An anonymous-IP VPN on the policy that blocks VPNs: no provider call either.
    let r = s.get(VPN, "/");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.body, "{\"error\":\"access denied\",\"reason\":\"vpn\"}\n");
    assert_eq!(s.provider.calls_for(VPN), 0, "no provider call");
    assert_eq!(s.metric("ipcheck_database_decisions_total"), 3.0);
    assert_eq!(s.metric("ipcheck_cache_total{tier=\"database\"}"), 3.0);
    assert!(s.metric("ipcheck_database_build_epoch_seconds{database=\"geo\"}") > 0.0);
    // Not written to Redis as if the provider had said it.
    let mut con = s.redis.client();
    let held: Option<String> = redis::cmd("IPCHECK")
        .arg(&["GET", GB])
        .query(&mut con)
        .expect("IPCHECK GET");
    assert_eq!(held, None);

    // A policy that needs more than the databases give: strict needs the country, which no
    // database knows for the VPN address, so the provider is asked.
    let r = s.get(VPN, "/login");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.provider.calls_for(VPN), 1, "the provider was asked");
    // SE: covered, allowed, still no call.
    assert_eq!(s.get(SE, "/login").status, 200);
    assert_eq!(s.provider.calls_for(SE), 0);

    // An operator's pin beats the database's verdict.
    let _: () = redis::cmd("IPCHECK")
        .arg(&["SET", GB, "allow", "SOURCE", "manual"])
        .query(&mut con)
        .expect("IPCHECK SET");
    let r = s.get(GB, "/login");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.provider.calls_for(GB), 0);

    // explain shows the databases' answer.
    let explained = s.service.explain(GB, Some("strict")).body;
    assert!(
        explained.contains(
            "databases: anon does not hold it; asn does not hold it; geo none, country GB"
        ) && explained.contains("rule: an operator's pin"),
        "{explained}"
    );
}

#[test]
fn a_database_replaced_on_disk_takes_effect_and_a_broken_one_is_refused() {
    // The country database starts as a file without countries: GB is unknown, so asked.
    let s = start("GeoLite2-ASN-Test.mmdb", "100ms");
    assert_eq!(s.get(GB, "/login").status, 200);
    assert_eq!(s.provider.calls_for(GB), 1);

    install("GeoLite2-Country-Test.mmdb", &s.geo);
    eventually("the new country file is used", || {
        s.get(GB, "/login").status == 403
    });
    assert_eq!(s.provider.calls_for(GB), 1, "decided by the new file");
    assert_eq!(
        s.metric("ipcheck_database_reloads_total{database=\"geo\"}"),
        1.0
    );

    install("MaxMind-DB-test-broken-search-tree-24.mmdb", &s.geo);
    eventually("the broken file is refused", || {
        s.metric("ipcheck_database_load_errors_total{database=\"geo\"}") == 1.0
    });
    s.service
        .wait_for_log_line(&["database file refused", "country.mmdb"]);
    // The previous file still answers.
    let r = s.get(GB, "/login");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(s.provider.calls_for(GB), 1);
    let ready = s.service.get("/readyz", &[]);
    assert_eq!(ready.status, 200);
    assert!(
        ready.body.starts_with("ready, degraded: databases\n")
            && ready.body.contains("geo (GeoLite2-Country, built ")
            && ready.body.contains("replacement refused"),
        "{}",
        ready.body
    );
}

#[test]
fn sighup_takes_a_replaced_database_file_at_once() {
    // Checked only hourly: the reload is what picks the new file up.
    let s = start("GeoLite2-ASN-Test.mmdb", "1h");
    assert_eq!(s.get(GB, "/login").status, 200);
    assert_eq!(s.provider.calls_for(GB), 1);
    install("GeoLite2-Country-Test.mmdb", &s.geo);
    assert_eq!(s.get(GB, "/login").status, 200, "not checked yet");
    let pid = s.service.pid().expect("the service runs");
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    s.service
        .wait_for_log_line(&["database file replaced on disk", "geo"]);
    s.service.wait_for_log_line(&["configuration reloaded"]);
    // The provider's cached answer (no country) with the new file's country filled in.
    let r = s.get(GB, "/login");
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(s.provider.calls_for(GB), 1);
}
