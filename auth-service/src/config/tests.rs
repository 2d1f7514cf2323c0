use super::*;
use ipcheck_core::Verdict;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(text: &str) -> Settings {
    parse("test.toml", text, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str, vars: &[(&str, &str)]) -> String {
    match parse("test.toml", text, &env(vars)) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn embedded_default() {
    let s = parse("embedded", EMBEDDED_DEFAULT, &[]).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:9217");
    assert_eq!(
        s.metrics_listen.map(|l| l.to_string()).as_deref(),
        Some("127.0.0.1:9218")
    );
    assert_eq!(s.cache.degraded_ttl, Duration::from_secs(5));
    assert_eq!(
        s.policies.default_policy().on_redis_error,
        RedisFailureMode::Continue
    );
    assert!(s.redis.is_none());
    assert!(s.provider.is_none());
    assert_eq!(s.cache.local_ttl, Duration::from_secs(60));
    assert_eq!(s.cache.negative_ttl, Duration::from_secs(30));
    assert_eq!(s.policies.default_policy().on_error, FailureMode::Open);
    assert_eq!(s.aggregation, Aggregation::DEFAULT);
}

#[test]
fn full_file() {
    let s = ok(r#"
        listen = "0.0.0.0:9000"
        [client_ip]
        header = "x-forwarded-for"
        trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]
        [cache]
        local_ttl = "1s"
        [redis]
        url = "redis://127.0.0.1:6379/"
        timeout = "20ms"
        [provider]
        preset = "ipasis"
        [policies.strict]
        block = ["tor", "vpn"]
        challenge = ["hosting"]
        deny = ["198.51.100.0/24"]
        on_error = "closed"
    "#);
    assert_eq!(s.cache.local_ttl, Duration::from_secs(1));
    let redis = s.redis.unwrap();
    assert_eq!(redis.timeout, Duration::from_millis(20));
    assert_eq!(redis.ttl, Duration::from_secs(86_400));
    assert_eq!(redis.stale_ttl, Duration::from_secs(7 * 86_400));
    let provider = s.provider.unwrap();
    assert_eq!(provider.name, "ipasis");
    assert_eq!(provider.api_key_env.as_deref(), Some("IPASIS_API_KEY"));
    assert_eq!(provider.auth_header.unwrap().as_str(), "x-api-key");
    let strict = s.policies.get("strict").unwrap();
    assert_eq!(strict.on_error.verdict(), Verdict::Block);
    assert!(strict.block.contains(Category::Tor));
    assert!(s.policies.get("default").is_some());
    assert!(matches!(s.client_ip, ClientIpSource::ForwardedFor { .. }));
}

#[test]
fn redis_cluster_seeds() {
    let s = ok("[redis]\nurl = \"redis://10.0.0.1:7000, redis://10.0.0.2:7000\"\ncluster = true\n");
    let r = s.redis.expect("redis configured");
    assert!(r.cluster);
    let s = parse(
        "test.toml",
        "[redis]\nurl = \"redis://10.0.0.1:7000\"\n",
        &env(&[("IPCHECK_REDIS_CLUSTER", "true")]),
    )
    .unwrap();
    assert!(s.redis.expect("redis configured").cluster);
    let e = error(
        "[redis]\nurl = \"redis://10.0.0.1:7000,redis://10.0.0.2:7000\"\n",
        &[],
    );
    assert!(
        e.contains("redis.url") && e.contains("cluster = true"),
        "{e}"
    );
    let e = error(
        "[redis]\nurl = \"redis://10.0.0.1:7000,nonsense\"\ncluster = true\n",
        &[],
    );
    assert!(e.contains("redis.url"), "{e}");
}

#[test]
fn redis_tls_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text = |url: &str, path: &std::path::Path| {
        format!(
            "[redis]\nurl = \"{url}\"\ntls_ca_file = \"{}\"\n",
            path.display()
        )
    };
    let s = ok(&text("rediss://10.0.0.1:6380/", &ca));
    assert!(s.redis.expect("redis").tls_ca_pem.is_some());
    let e = error(&text("redis://10.0.0.1:6379/", &ca), &[]);
    assert!(
        e.contains("redis.tls_ca_file") && e.contains("rediss://"),
        "{e}"
    );
    let e = error(
        &text("rediss://10.0.0.1:6380/", &dir.path().join("nope.pem")),
        &[],
    );
    assert!(
        e.contains("redis.tls_ca_file") && e.contains("cannot read"),
        "{e}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let e = error(&text("rediss://10.0.0.1:6380/", &empty), &[]);
    assert!(e.contains("no PEM certificate"), "{e}");
}

#[test]
fn errors_name_key_and_file() {
    let e = error("[policies.strict]\nblock = [\"tor\", \"bogus\"]\n", &[]);
    assert!(
        e.contains("test.toml") && e.contains("policies.strict.block[1]"),
        "{e}"
    );
    let e = error("[cache]\nlocal_ttl = \"10x\"\n", &[]);
    assert!(e.contains("cache.local_ttl"), "{e}");
    let e = error("[cache]\nlocal_tll = \"10s\"\n", &[]);
    assert!(e.contains("cache") && e.contains("local_tll"), "{e}");
    let e = error("listen = \"nowhere\"\n", &[]);
    assert!(e.contains("key `listen`"), "{e}");
    let e = error("[client_ip]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[]);
    assert!(e.contains("client_ip.trusted_proxies[0]"), "{e}");
    let e = error("[policies.default]\non_error = \"maybe\"\n", &[]);
    assert!(e.contains("policies.default.on_error"), "{e}");
    let e = error(
        "[provider]\nurl = \"https://x.example/lookup\"\nfields.vpn = [\"vpn\"]\n",
        &[],
    );
    assert!(e.contains("provider.url") && e.contains("{ip}"), "{e}");
    let e = error("[provider]\npreset = \"nope\"\n", &[]);
    assert!(e.contains("provider.preset"), "{e}");
    let e = error("[aggregation]\nipv6_prefix = 16\n", &[]);
    assert!(e.contains("aggregation.ipv6_prefix"), "{e}");
    let e = error("[redis]\nurl = \"http://nope\"\n", &[]);
    assert!(e.contains("redis.url"), "{e}");
    let e = error("[cache\n", &[]);
    assert!(e.contains("test.toml") && e.contains("invalid TOML"), "{e}");
}

#[test]
fn environment_overrides() {
    let vars = env(&[
        ("IPCHECK_LISTEN", "127.0.0.1:9999"),
        ("IPCHECK_CACHE_LOCAL_TTL", "2s"),
        ("IPCHECK_REDIS_URL", "redis://127.0.0.1:1/"),
        ("IPCHECK_POLICIES_STRICT_BLOCK", "tor, vpn"),
        ("IPCHECK_POLICIES_STRICT_ALLOW_CRAWLERS", "false"),
        ("IPCHECK_POLICIES_NEW_ONE_ON_ERROR", "closed"),
        ("IPCHECK_PROFILE", "debug"),
    ]);
    let s = parse(
        "test.toml",
        "[policies.strict]\nblock = [\"relay\"]\n",
        &vars,
    )
    .unwrap();
    assert_eq!(s.listen.port(), Some(9999));
    assert_eq!(s.cache.local_ttl, Duration::from_secs(2));
    assert!(s.redis.is_some());
    let strict = s.policies.get("strict").unwrap();
    assert!(strict.block.contains(Category::Vpn) && !strict.block.contains(Category::Relay));
    assert!(!strict.allow_crawlers);
    assert_eq!(
        s.policies.get("new_one").unwrap().on_error,
        FailureMode::Closed
    );
    assert!(s.warnings.iter().any(|w| w.contains("IPCHECK_PROFILE")));
    // An empty URL switches the tier off.
    let s = parse(
        "t",
        "[redis]\nurl = \"redis://x/\"\n",
        &env(&[("IPCHECK_REDIS_URL", "")]),
    )
    .unwrap();
    assert!(s.redis.is_none());
}

#[test]
fn environment_errors_name_the_variable() {
    let e = error("", &[("IPCHECK_CACHE_CAPACITY", "lots")]);
    assert!(
        e.contains("cache.capacity") && e.contains("IPCHECK_CACHE_CAPACITY"),
        "{e}"
    );
    let e = error("", &[("IPCHECK_REDIS_TIMEOUT", "fast")]);
    assert!(
        e.contains("redis.timeout") && e.contains("IPCHECK_REDIS_TIMEOUT"),
        "{e}"
    );
    let e = error("", &[("IPCHECK_POLICIES_DEFAULT_BLOCK", "vpn,spam")]);
    assert!(
        e.contains("policies.default.block[1]") && e.contains("IPCHECK_POLICIES_DEFAULT_BLOCK"),
        "{e}"
    );
}

#[test]
fn capacity_zero_turns_the_local_tier_off() {
    let s = ok("[cache]\ncapacity = 0\n");
    assert_eq!(s.cache.capacity, 0);
    assert_eq!(crate::app::App::tiers_summary(&s), "local off (capacity 0)");
}

#[test]
fn every_fixed_key_has_a_distinct_variable() {
    let mut names: Vec<String> = KEYS
        .iter()
        .map(|(k, _)| env_name(k))
        .chain(super::env::field_keys().map(|(k, _)| env_name(&k)))
        .collect();
    let all = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all);
    // One variable per category of the vocabulary.
    for c in ipcheck_core::Category::ALL {
        let var = format!(
            "IPCHECK_PROVIDER_FIELDS_{}",
            c.as_str().to_ascii_uppercase()
        );
        assert!(names.contains(&var), "{var}");
    }
}

#[test]
fn custom_provider_by_configuration_alone() {
    let s = ok(r#"
        [provider]
        url = "http://127.0.0.1:1/check/{ip}"
        api_key_env = "MY_KEY"
        auth_header = "Authorization"
        auth_value = "Token {key}"
        fields.vpn = ["flags.anonymous"]
        fields.tor = ["flags.tor"]
    "#);
    let p = s.provider.unwrap();
    assert_eq!(p.name, "custom");
    assert_eq!(p.auth_value, "Token {key}");
}

#[test]
fn unknown_policy_defaults_to_closed_and_is_validated() {
    assert_eq!(ok("").unknown_policy, UnknownPolicy::Closed);
    assert_eq!(
        ok("unknown_policy = \"open\"").unknown_policy,
        UnknownPolicy::Open
    );
    let s = parse(
        "test.toml",
        "unknown_policy = \"open\"",
        &env(&[("IPCHECK_UNKNOWN_POLICY", "default")]),
    )
    .unwrap();
    assert_eq!(s.unknown_policy, UnknownPolicy::Default);
    let e = error("unknown_policy = \"allow\"", &[]);
    assert!(
        e.contains("unknown_policy") && e.contains("'allow'") && e.contains("closed"),
        "{e}"
    );
    let e = error("", &[("IPCHECK_UNKNOWN_POLICY", "strict")]);
    assert!(e.contains("IPCHECK_UNKNOWN_POLICY"), "{e}");
}

#[test]
fn every_decisive_category_needs_a_field() {
    let s = ok(r#"
        [provider]
        preset = "ipasis"
        [policies.default]
        block = ["tor"]
        [policies.strict]
        block = ["vpn"]
        challenge = ["hosting"]
    "#);
    let policies = &s.policies;
    assert_eq!(
        policies.decisive_categories().to_reasons().as_str(),
        "vpn,tor,hosting"
    );
    // A reply without vpn is drift, because policy strict blocks on it.
    let mapping = &s.provider.unwrap().mapping;
    let lost_vpn =
        serde_json::json!({"privacy": {"tor": false, "hosting": false, "crawler": false}});
    assert!(mapping.map(&lost_vpn).is_err());
    // ipqs maps no hosting: a policy that challenges on it could never see it.
    let e = error(
        "[provider]\npreset = \"ipqs\"\napi_key_env = \"\"\nurl = \"https://x.example/{ip}\"\n[policies.edge]\nchallenge = [\"hosting\"]\n",
        &[],
    );
    assert!(
        e.contains("provider.fields.hosting") && e.contains("edge"),
        "{e}"
    );
}

#[test]
fn listeners_redis_failure_and_degraded_ttl() {
    let s = ok(r#"
        listen = "unix:/run/ipcheck/auth.sock"
        [metrics]
        listen = ""
        [cache]
        degraded_ttl = "2s"
        [redis]
        url = "redis://127.0.0.1:6379/"
        key_prefix = "ic:"
        [policies.strict]
        on_redis_error = "closed"
        [policies.lenient]
        on_redis_error = "open"
    "#);
    assert_eq!(s.listen.to_string(), "unix:/run/ipcheck/auth.sock");
    assert!(s.metrics_listen.is_none(), "\"\" turns /metrics off");
    assert_eq!(s.cache.degraded_ttl, Duration::from_secs(2));
    assert_eq!(s.redis.unwrap().key_prefix, "ic:");
    let mode = |name: &str| s.policies.get(name).unwrap().on_redis_error;
    assert_eq!(mode("strict"), RedisFailureMode::Closed);
    assert_eq!(mode("lenient"), RedisFailureMode::Open);
    assert_eq!(mode("default"), RedisFailureMode::Continue);

    let s = parse(
        "test.toml",
        "",
        &env(&[
            ("IPCHECK_METRICS_LISTEN", "127.0.0.1:9300"),
            ("IPCHECK_POLICIES_STRICT_ON_REDIS_ERROR", "closed"),
        ]),
    )
    .unwrap();
    assert_eq!(s.metrics_listen.unwrap().port(), Some(9300));
    assert_eq!(
        s.policies.get("strict").unwrap().on_redis_error,
        RedisFailureMode::Closed
    );

    let e = error("[policies.x]\non_redis_error = \"fail\"\n", &[]);
    assert!(
        e.contains("policies.x.on_redis_error") && e.contains("continue, open or closed"),
        "{e}"
    );
    let e = error(
        "listen = \"127.0.0.1:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n",
        &[],
    );
    assert!(e.contains("key `metrics.listen`"), "{e}");
    let e = error("[redis]\nurl = \"redis://h/\"\nkey_prefix = \"\"\n", &[]);
    assert!(e.contains("key `redis.key_prefix`"), "{e}");
}

#[test]
fn trusting_every_address_is_refused() {
    for net in ["0.0.0.0/0", "::/0"] {
        let e = error(
            &format!("[client_ip]\nheader = \"x-forwarded-for\"\ntrusted_proxies = [\"10.0.0.0/8\", \"{net}\"]\n"),
            &[],
        );
        assert!(
            e.contains("client_ip.trusted_proxies[1]") && e.contains("trusts every address"),
            "{e}"
        );
    }
}

#[test]
fn redis_stale_ttl() {
    let redis = |stale: &str| {
        ok(&format!(
            "[redis]\nurl = \"redis://127.0.0.1:6379/\"\nstale_ttl = \"{stale}\"\n"
        ))
        .redis
        .unwrap()
        .stale_ttl
    };
    assert_eq!(redis("0s"), Duration::ZERO);
    assert_eq!(redis("2d"), Duration::from_secs(172_800));
    for bad in ["366d", "1500ms"] {
        let e = error(
            &format!("[redis]\nurl = \"redis://127.0.0.1:6379/\"\nstale_ttl = \"{bad}\"\n"),
            &[],
        );
        assert!(e.contains("redis.stale_ttl"), "{e}");
    }
}

#[test]
fn redis_refresh_ahead() {
    let redis = |extra: &str| {
        ok(&format!(
            "[redis]\nurl = \"redis://127.0.0.1:6379/\"\n{extra}"
        ))
        .redis
        .unwrap()
        .refresh_ahead
    };
    assert_eq!(redis(""), Duration::from_secs(3600));
    // A short ttl gets a quarter of it by default, so most hits do not refresh.
    assert_eq!(redis("ttl = \"1h\"\n"), Duration::from_secs(900));
    assert_eq!(redis("refresh_ahead = \"0s\"\n"), Duration::ZERO);
    assert_eq!(redis("refresh_ahead = \"2h\"\n"), Duration::from_secs(7200));
    let e = error(
        "[redis]\nurl = \"redis://127.0.0.1:6379/\"\nttl = \"1h\"\nrefresh_ahead = \"1h\"\n",
        &[],
    );
    assert!(e.contains("key `redis.refresh_ahead`"), "{e}");
}

#[test]
fn breakers_and_budget() {
    let base = "[redis]\nurl = \"redis://127.0.0.1/\"\n[provider]\npreset = \"ipasis\"\n";
    let s = ok(base);
    let provider = s.provider.as_ref().unwrap();
    assert_eq!(
        s.redis.as_ref().unwrap().breaker,
        crate::breaker::BreakerSettings::default()
    );
    assert_eq!(provider.breaker.failures, 5);
    assert_eq!(
        (provider.budget.rate, provider.budget.daily_quota),
        (0.0, 0),
        "unlimited by default"
    );
    let text = format!(
        "{base}[provider.breaker]\nfailures = 3\ncooldown = \"30s\"\n[provider.budget]\nrate = 2.5\ndaily_quota = 1000\n"
    );
    let s = ok(&text);
    let provider = s.provider.unwrap();
    assert_eq!(provider.breaker.failures, 3);
    assert_eq!(provider.breaker.cooldown, Duration::from_secs(30));
    assert_eq!(provider.budget.rate, 2.5);
    assert_eq!(provider.budget.burst, 3, "one second's worth by default");
    assert_eq!(provider.budget.daily_quota, 1000);
    let s = parse(
        "test.toml",
        base,
        &env(&[
            ("IPCHECK_REDIS_BREAKER_FAILURES", "2"),
            ("IPCHECK_PROVIDER_BUDGET_RATE", "0.5"),
        ]),
    )
    .unwrap();
    assert_eq!(s.redis.unwrap().breaker.failures, 2);
    assert_eq!(s.provider.unwrap().budget.burst, 1);
    let e = error(&format!("{base}[provider.budget]\nrate = -1\n"), &[]);
    assert!(e.contains("key `provider.budget.rate`"), "{e}");
    let e = error(
        &format!("{base}[provider.budget]\nrate = 1\nburst = 0\n"),
        &[],
    );
    assert!(e.contains("key `provider.budget.burst`"), "{e}");
    let e = error(&format!("{base}[redis.breaker]\ncooldown = \"0s\"\n"), &[]);
    assert!(e.contains("key `redis.breaker.cooldown`"), "{e}");
    let e = error(
        "[provider]\npreset = \"ipasis\"\n[provider.budget]\nshared = true\n",
        &[],
    );
    assert!(e.contains("key `provider.budget.shared`"), "{e}");
    assert!(
        ok(&format!("{base}[provider.budget]\nshared = true\n"))
            .provider
            .unwrap()
            .budget
            .shared
    );
}

#[test]
fn decision_log_keys() {
    use crate::decision_log::{DecisionLog, Decisions};
    // Off by default.
    assert!(!ok("").decision_log.enabled());
    let s = ok("[log]\ndecisions = \"non-allow\"\ndecisions_sample = 0.01\n");
    assert_eq!(s.decision_log, DecisionLog::new(Decisions::NonAllow, 0.01));
    assert_eq!(
        ok("[log]\ndecisions = \"all\"\n").decision_log,
        DecisionLog::new(Decisions::All, 1.0)
    );
    // From the environment, as the e2e tests and containers set it.
    let s = parse(
        "test.toml",
        "",
        &env(&[
            ("IPCHECK_LOG_DECISIONS", "all"),
            ("IPCHECK_LOG_DECISIONS_SAMPLE", "0.5"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.decision_log, DecisionLog::new(Decisions::All, 0.5));
    // A sample without a kind is unused: said, not an error.
    let s = ok("[log]\ndecisions_sample = 0.5\n");
    assert!(!s.decision_log.enabled());
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("log.decisions_sample")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn decision_log_errors_name_the_key() {
    let e = error("[log]\ndecisions = \"blocks\"\n", &[]);
    assert!(e.contains("key `log.decisions`"), "{e}");
    assert!(
        e.contains("'blocks': expected off, all or non-allow"),
        "{e}"
    );
    for bad in ["0", "0.0", "1.5", "-0.1", "nan"] {
        let e = error(
            &format!("[log]\ndecisions = \"all\"\ndecisions_sample = {bad}\n"),
            &[],
        );
        assert!(e.contains("key `log.decisions_sample`"), "{bad}: {e}");
    }
    let e = error("", &[("IPCHECK_LOG_DECISIONS", "everything")]);
    assert!(e.contains("(set by IPCHECK_LOG_DECISIONS)"), "{e}");
}

#[test]
fn invalidation_is_on_by_default_and_can_be_switched_off() {
    let on = ok("[redis]\nurl = \"redis://127.0.0.1:6379/\"\n");
    assert!(on.redis.as_ref().unwrap().invalidation);
    assert!(crate::app::App::tiers_summary(&on).contains("invalidation on"));
    let off = ok("[redis]\nurl = \"redis://127.0.0.1:6379/\"\ninvalidation = false\n");
    assert!(!off.redis.as_ref().unwrap().invalidation);
    assert!(crate::app::App::tiers_summary(&off).contains("invalidation off"));
    // Without a local tier there is nothing to keep coherent.
    let no_local = ok("[cache]\ncapacity = 0\n[redis]\nurl = \"redis://127.0.0.1:6379/\"\n");
    assert!(crate::app::App::tiers_summary(&no_local).contains("invalidation off"));
    let e = error(
        "[redis]\nurl = \"redis://h/\"\ninvalidation = \"yes\"\n",
        &[],
    );
    assert!(e.contains("invalidation"), "{e}");
}

#[test]
fn the_key_may_come_from_a_file_instead_of_a_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "secret-value\n").unwrap();
    let base = "[provider]\npreset = \"ipasis\"\n";
    let s = ok(&format!("{base}api_key_file = \"{}\"\n", file.display()));
    let spec = s.provider.unwrap();
    assert_eq!(
        spec.api_key_env, None,
        "the file replaces the preset's variable"
    );
    assert!(spec.api_key().unwrap().is_some());
    std::fs::write(&file, "  \n").unwrap();
    let e = spec.api_key().unwrap_err().to_string();
    assert!(
        e.contains("provider.api_key_file") && e.contains("is empty"),
        "{e}"
    );
    std::fs::remove_file(&file).unwrap();
    let e = spec.api_key().unwrap_err().to_string();
    assert!(e.contains("cannot read") && !e.contains("secret"), "{e}");
    let e = error(
        &format!("{base}api_key_env = \"K\"\napi_key_file = \"/k\"\n"),
        &[],
    );
    assert!(e.contains("not both"), "{e}");
    let e = error(&format!("{base}api_key_file = \"relative/key\"\n"), &[]);
    assert!(e.contains("must be an absolute path"), "{e}");
}

#[test]
fn lists_are_validated_and_policies_name_them() {
    let s = ok(r#"
[lists.tor]
category = "tor"
file = "/tmp/tor.txt"
[lists.drop]
verdict = "block"
refresh = "10s"
file = "/tmp/drop.txt"
[policies.strict]
block = ["tor"]
lists = ["drop", "tor"]
"#);
    let names: Vec<&str> = s.lists.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["drop", "tor"]);
    assert_eq!(
        s.lists[0].meaning,
        lists::ListMeaning::Verdict(ipcheck_core::Verdict::Block)
    );
    assert_eq!(s.lists[0].refresh, Duration::from_secs(10));
    assert_eq!(
        s.lists[1].meaning,
        lists::ListMeaning::Category(Category::Tor)
    );
    assert_eq!(s.lists[1].refresh, lists::DEFAULT_REFRESH);
    let strict = s.policies.get("strict").expect("strict");
    assert_eq!(strict.lists, ["drop", "tor"]);

    let e = error("[lists.x]\ncategory = \"tor\"\n", &[]);
    assert!(
        e.contains("`lists.x`: has no file and Redis is not configured"),
        "{e}"
    );
    let e = error("[lists.x]\ncategory = \"tor\"\nverdict = \"block\"\n", &[]);
    assert!(e.contains("`lists.x`: set exactly one of category"), "{e}");
    let e = error("[lists.x]\n", &[]);
    assert!(e.contains("`lists.x`: set exactly one of category"), "{e}");
    let e = error("[lists.x]\ncategory = \"bots\"\n", &[]);
    assert!(
        e.contains("`lists.x.category`: 'bots': expected one of vpn"),
        "{e}"
    );
    let e = error("[lists.x]\nverdict = \"deny\"\n", &[]);
    assert!(
        e.contains("`lists.x.verdict`: 'deny': expected block or allow"),
        "{e}"
    );
    let e = error("[lists.x]\nverdict = \"block\"\nrefresh = \"0s\"\n", &[]);
    assert!(
        e.contains("`lists.x.refresh`: duration '0s' must be greater than zero"),
        "{e}"
    );
    let e = error("[lists.\"a b\"]\nverdict = \"block\"\n", &[]);
    assert!(e.contains("must be 1 to 64 of a-z"), "{e}");
    let e = error(
        "[lists.tor]\ncategory = \"tor\"\nfile = \"/f\"\n[policies.strict]\nlists = [\"tor\", \"tro\"]\n",
        &[],
    );
    assert!(
        e.contains("`policies.strict.lists[1]`: 'tro' is not a configured list: add [lists.tro]"),
        "{e}"
    );
    // A policy's lists from the environment, as its other keys.
    let e = error(
        "[lists.tor]\ncategory = \"tor\"\nfile = \"/f\"\n",
        &[("IPCHECK_POLICIES_STRICT_LISTS", "tor,nope")],
    );
    assert!(e.contains("'nope' is not a configured list"), "{e}");
}

#[test]
fn attribute_policy_keys() {
    let s = ok(r#"
        [provider]
        preset = "ipqs"
        api_key_env = ""
        url = "https://x.example/{ip}"
        [policies.strict]
        block_countries = ["kp", "IR"]
        challenge_countries = ["RU"]
        allow_countries = ["US", "DE"]
        block_asns = [64500, "AS64501", "as64502"]
        challenge_asns = ["64503"]
        block_score = 90
        challenge_score = 75
    "#);
    let p = s.policies.get("strict").unwrap();
    let text = |v: &[ipcheck_core::Country]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(text(&p.block_countries), ["KP", "IR"]);
    assert_eq!(text(&p.challenge_countries), ["RU"]);
    assert_eq!(text(&p.allow_countries), ["US", "DE"]);
    let asns: Vec<u32> = p.block_asns.iter().map(|a| a.get()).collect();
    assert_eq!(asns, [64500, 64501, 64502]);
    assert_eq!(
        p.challenge_asns.iter().map(|a| a.get()).collect::<Vec<_>>(),
        [64503]
    );
    assert_eq!(p.block_score.map(|s| s.get()), Some(90));
    assert_eq!(p.challenge_score.map(|s| s.get()), Some(75));
    // The provider mapping expects what the policies decide on, and counts it when missing.
    let mapping = &s.provider.unwrap().mapping;
    let f = mapping
        .map(&serde_json::json!({"vpn": false, "ASN": 1}))
        .unwrap();
    let missing: Vec<&str> = mapping.missing(&f.attributes).map(|a| a.name()).collect();
    assert_eq!(missing, ["country", "score"]);
}

#[test]
fn attribute_policy_keys_from_the_environment() {
    let s = parse(
        "test.toml",
        "[provider]\npreset = \"ipqs\"\napi_key_env = \"\"\nurl = \"https://x.example/{ip}\"\n",
        &env(&[
            ("IPCHECK_POLICIES_STRICT_BLOCK_ASNS", "AS64500, 64501"),
            ("IPCHECK_POLICIES_STRICT_BLOCK_SCORE", "90"),
            ("IPCHECK_POLICIES_STRICT_CHALLENGE_SCORE", "70"),
            ("IPCHECK_POLICIES_STRICT_ALLOW_COUNTRIES", "us,de"),
            ("IPCHECK_POLICIES_STRICT_CHALLENGE_COUNTRIES", "FR"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = s.policies.get("strict").unwrap();
    assert_eq!(p.block_asns.len(), 2);
    assert_eq!(p.block_score.map(|s| s.get()), Some(90));
    assert_eq!(p.challenge_score.map(|s| s.get()), Some(70));
    assert_eq!(p.allow_countries.len(), 2);
    assert_eq!(p.challenge_countries.len(), 1);
    // Field paths for attributes have environment keys too, derived from the same table.
    let s = parse(
        "test.toml",
        "[provider]\npreset = \"ipasis\"\napi_key_env = \"\"\n[policies.default]\nblock_score = 80\n",
        &env(&[("IPCHECK_PROVIDER_FIELDS_SCORE", "risk.score")]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mapping = &s.provider.unwrap().mapping;
    let f = mapping
        .map(&serde_json::json!({"privacy": {"vpn": false}, "risk": {"score": 81}}))
        .unwrap();
    assert_eq!(f.attributes.score.map(|s| s.get()), Some(81));
    let e = error(
        "[provider]\npreset = \"ipqs\"\napi_key_env = \"\"\n",
        &[("IPCHECK_POLICIES_STRICT_BLOCK_SCORE", "high")],
    );
    assert!(
        e.contains("IPCHECK_POLICIES_STRICT_BLOCK_SCORE") && e.contains("'high'"),
        "{e}"
    );
}

#[test]
fn bad_attribute_policy_values_name_the_key() {
    let provider =
        "[provider]\npreset = \"ipqs\"\napi_key_env = \"\"\nurl = \"https://x.example/{ip}\"\n";
    for (policy, key, words) in [
        (
            "block_countries = [\"US\", \"USA\"]",
            "policies.p.block_countries[1]",
            "ISO 3166-1",
        ),
        (
            "allow_countries = [\"1x\"]",
            "policies.p.allow_countries[0]",
            "'1x'",
        ),
        (
            "challenge_countries = [\"\"]",
            "policies.p.challenge_countries[0]",
            "alpha-2",
        ),
        (
            "block_asns = [0]",
            "policies.p.block_asns[0]",
            "1 to 4294967295",
        ),
        (
            "block_asns = [4294967296]",
            "policies.p.block_asns[0]",
            "AS13335",
        ),
        (
            "challenge_asns = [\"ASx\"]",
            "policies.p.challenge_asns[0]",
            "\"ASx\"",
        ),
        ("block_asns = [true]", "policies.p.block_asns[0]", "true"),
        ("block_score = 101", "policies.p.block_score", "0 to 100"),
        (
            "challenge_score = -1",
            "policies.p.challenge_score",
            "0 to 100",
        ),
        (
            "block_score = 80\nchallenge_score = 80",
            "policies.p.challenge_score",
            "block_score (80)",
        ),
    ] {
        let e = error(&format!("{provider}[policies.p]\n{policy}\n"), &[]);
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(words),
            "{policy}: {e}"
        );
    }
    let e = error(
        &format!("{provider}[policies.p]\nblock_score = \"90\"\n"),
        &[],
    );
    assert!(e.contains("policies.p.block_score"), "{e}");
    let e = error(
        "[provider]\nurl = \"https://x.example/{ip}\"\nfields.city = [\"city\"]\n",
        &[],
    );
    assert!(
        e.contains("provider.fields.city") && e.contains("country, asn, score"),
        "{e}"
    );
}

#[test]
fn an_attribute_no_source_gives_is_refused() {
    // ipinfo gives no score: a score threshold could never match.
    let e = error(
        "[provider]\npreset = \"ipinfo\"\napi_key_env = \"\"\n[policies.signup]\nblock_score = 90\n",
        &[],
    );
    assert!(
        e.contains("provider.fields.score")
            && e.contains("signup")
            && e.contains("block_score, challenge_score"),
        "{e}"
    );
    // No provider at all: nothing gives a country, and allow_countries would block everyone.
    let e = error("[policies.default]\nallow_countries = [\"US\"]\n", &[]);
    assert!(
        e.contains("provider.fields.country") && e.contains("default"),
        "{e}"
    );
    // A path for it makes the same policy valid.
    ok("[provider]\npreset = \"ipinfo\"\napi_key_env = \"\"\nfields.score = [\"risk\"]\n[policies.signup]\nblock_score = 90\n");
    // Policies without attribute keys need no attribute source.
    ok("[policies.default]\nblock = [\"tor\"]\n");
}

#[test]
fn the_facts_doc_example_loads() {
    let doc = include_str!("../../../docs/facts.md");
    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/facts.md has a ```toml example");
    let s = ok(example);
    let signup = s.policies.get("signup").unwrap();
    assert_eq!(signup.block_asns.len(), 2);
    assert_eq!(signup.challenge_score.map(|s| s.get()), Some(75));
    assert_eq!(s.policies.get("payments").unwrap().allow_countries.len(), 2);
}

#[test]
fn policy_modes() {
    use crate::mode::Mode;
    let s = ok(r#"
        [policies.preview]
        block = ["tor"]
        mode = "observe"
        [policies.strict]
        mode = "enforce"
    "#);
    assert_eq!(s.policies.mode("preview"), Mode::Observe);
    assert_eq!(s.policies.mode("strict"), Mode::Enforce);
    assert_eq!(s.policies.mode("default"), Mode::Enforce);
    assert_eq!(s.policies.mode("not-configured"), Mode::Enforce);
    assert_eq!(s.policies.observed(), vec!["preview"]);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("observe mode: preview") && w.contains("ALLOWED")),
        "{:?}",
        s.warnings
    );
    assert!(ok("").policies.observed().is_empty());
    assert!(!ok("").warnings.iter().any(|w| w.contains("observe")));

    let s = parse(
        "test.toml",
        "[policies.default]\nblock = [\"tor\"]\n",
        &env(&[("IPCHECK_POLICIES_DEFAULT_MODE", "observe")]),
    )
    .unwrap();
    assert_eq!(s.policies.observed(), vec!["default"]);

    let e = error("[policies.x]\nmode = \"report\"\n", &[]);
    assert!(
        e.contains("policies.x.mode") && e.contains("'report': expected enforce or observe"),
        "{e}"
    );
}

#[test]
fn on_miss_defaults_to_wait_and_allow_needs_redis_and_a_provider() {
    let s = ok("[policies.default]\n");
    assert_eq!(s.policies.default_policy().on_miss, OnMiss::Wait);
    assert_eq!(s.enrich, crate::enrich::settings::EnrichSettings::default());
    let e = error("[policies.lax]\non_miss = \"later\"\n", &[]);
    assert!(
        e.contains("policies.lax.on_miss") && e.contains("'later'"),
        "{e}"
    );
    let e = error("[policies.lax]\non_miss = \"allow\"\n", &[]);
    assert!(
        e.contains("policies.lax.on_miss") && e.contains("[redis]"),
        "{e}"
    );
    let redis = "[redis]\nurl = \"redis://127.0.0.1:6379/\"\n";
    let e = error(
        &format!("{redis}[policies.lax]\non_miss = \"allow\"\n"),
        &[],
    );
    assert!(e.contains("[provider]"), "{e}");
    let s = ok(&format!(
        "{redis}[provider]\npreset = \"ipasis\"\napi_key_env = \"\"\n[enrich]\nbatch = 4\n[policies.lax]\non_miss = \"allow\"\n"
    ));
    assert_eq!(s.policies.get("lax").unwrap().on_miss, OnMiss::Allow);
    assert_eq!(s.enrich.batch, 4);
    let e = error("[enrich]\nbatch = 0\n", &[]);
    assert!(e.contains("enrich.batch"), "{e}");
}
