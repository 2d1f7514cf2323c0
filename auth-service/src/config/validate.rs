//! From the file's shape to [`Settings`]: every check, every error naming its key.

use super::*;
use crate::provider::mapping::Attribute;

pub(super) fn parse_cidrs(
    key: &str,
    list: &[String],
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    err(
                        &format!("{key}[{i}]"),
                        format!("'{text}' is not an address or CIDR network (e.g. 10.0.0.0/8)"),
                    )
                })
        })
        .collect()
}

pub(super) fn validate(
    origin: &str,
    raw: RawConfig,
    err: &dyn Fn(&str, String) -> ConfigError,
    mut warnings: Vec<String>,
) -> Result<Settings, ConfigError> {
    let listen: Listen = raw
        .listen
        .as_deref()
        .unwrap_or(DEFAULT_LISTEN)
        .trim()
        .parse()
        .map_err(|e| err("listen", e))?;
    let metrics_listen = match raw
        .metrics
        .listen
        .as_deref()
        .unwrap_or(DEFAULT_METRICS_LISTEN)
        .trim()
    {
        // An empty address turns the metrics listener off.
        "" => None,
        text => Some(text.parse().map_err(|e| err("metrics.listen", e))?),
    };
    if metrics_listen.as_ref() == Some(&listen) {
        return Err(err(
            "metrics.listen",
            format!("'{listen}' is also `listen`: give /metrics a listener of its own (or \"\" for none)"),
        ));
    }

    let admin_listen = match raw
        .admin
        .listen
        .as_deref()
        .unwrap_or(DEFAULT_ADMIN_LISTEN)
        .trim()
    {
        "" => None,
        text => Some(text.parse().map_err(|e| err("admin.listen", e))?),
    };
    if let Some(admin) = &admin_listen {
        check_admin_listen(admin, &listen, metrics_listen.as_ref())
            .map_err(|e| err("admin.listen", e))?;
    }
    let decision_log = decision_log(&raw.log, err, &mut warnings)?;
    let log_level = raw.log.level.unwrap_or_else(|| "info".to_owned());
    tracing_subscriber::EnvFilter::try_new(&log_level)
        .map_err(|e| err("log.level", format!("'{log_level}': {e}")))?;

    let trusted = parse_cidrs(
        "client_ip.trusted_proxies",
        &raw.client_ip.trusted_proxies,
        err,
    )?;
    // Trusting every address means the leftmost X-Forwarded-For hop, which the client writes,
    // would be the client: anyone could choose their own address.
    if let Some(i) = trusted.iter().position(|n| n.prefix_len() == 0) {
        return Err(err(
            &format!("client_ip.trusted_proxies[{i}]"),
            format!(
                "'{}' trusts every address, so any client could name its own address in X-Forwarded-For; list only your proxies' addresses or networks",
                trusted[i]
            ),
        ));
    }
    let client_ip = match raw.client_ip.header.as_deref().unwrap_or("x-real-ip") {
        h if h.eq_ignore_ascii_case("x-real-ip") => {
            if !trusted.is_empty() {
                warnings.push(
                    "client_ip.trusted_proxies is set but client_ip.header is x-real-ip: the list is unused"
                        .to_owned(),
                );
            }
            ClientIpSource::RealIp
        }
        h if h.eq_ignore_ascii_case("x-forwarded-for") => {
            if trusted.is_empty() {
                warnings.push(
                    "client_ip.header is x-forwarded-for without client_ip.trusted_proxies: \
                     X-Forwarded-For is ignored and X-Real-IP is used"
                        .to_owned(),
                );
                ClientIpSource::RealIp
            } else {
                ClientIpSource::ForwardedFor { trusted }
            }
        }
        other => {
            return Err(err(
                "client_ip.header",
                format!("'{other}': expected x-real-ip or x-forwarded-for"),
            ))
        }
    };

    let v4 = raw.aggregation.ipv4_prefix.unwrap_or(32);
    let v6 = raw.aggregation.ipv6_prefix.unwrap_or(64);
    let aggregation = Aggregation::new(v4, v6).map_err(|e| {
        let key = if (16..=32).contains(&v4) {
            "aggregation.ipv6_prefix"
        } else {
            "aggregation.ipv4_prefix"
        };
        err(key, e.to_string())
    })?;

    // 0 is allowed: no local tier, so every decision asks Redis (benchmarks measure that tier
    // alone this way, and a deployment may want pins to apply at once).
    let capacity = raw.cache.capacity.unwrap_or(100_000);
    let cache = CacheSettings {
        capacity,
        local_ttl: raw.cache.local_ttl.map_or(Duration::from_secs(60), |d| d.0),
        negative_ttl: raw
            .cache
            .negative_ttl
            .map_or(Duration::from_secs(30), |d| d.0),
        degraded_ttl: raw
            .cache
            .degraded_ttl
            .map_or(Duration::from_secs(5), |d| d.0),
    };

    let redis = match raw.redis {
        None => None,
        Some(r) => match r.url.as_deref().map(str::trim) {
            // An empty URL switches Redis off, so `IPCHECK_REDIS_URL=` can disable it.
            None | Some("") => None,
            Some(url) => {
                let cluster = r.cluster.unwrap_or(false);
                let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
                if nodes.len() > 1 && !cluster {
                    return Err(err(
                        "redis.url",
                        "a list of nodes needs `cluster = true` (one URL for a single server)"
                            .to_owned(),
                    ));
                }
                let tls_ca_pem = match r.tls_ca_file.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(path) => {
                        if !nodes.iter().all(|n| n.starts_with("rediss://")) {
                            return Err(err(
                                "redis.tls_ca_file",
                                "only for TLS: the URL must be rediss://".to_owned(),
                            ));
                        }
                        let pem = std::fs::read(path).map_err(|e| {
                            err("redis.tls_ca_file", format!("cannot read {path}: {e}"))
                        })?;
                        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                            return Err(err(
                                "redis.tls_ca_file",
                                format!("{path} holds no PEM certificate"),
                            ));
                        }
                        Some(pem)
                    }
                };
                for node in nodes {
                    redis::Client::open(node).map_err(|e| {
                        err(
                            "redis.url",
                            format!(
                                "not a usable Redis URL: {}",
                                e.detail().unwrap_or("invalid URL")
                            ),
                        )
                    })?;
                }
                let ttl = r.ttl.map_or(Duration::from_secs(86_400), |d| d.0);
                if ttl > Duration::from_secs(31_536_000) {
                    return Err(err(
                        "redis.ttl",
                        "at most 365d (the module's EX limit)".to_owned(),
                    ));
                }
                if ttl.subsec_nanos() != 0 {
                    return Err(err(
                        "redis.ttl",
                        "must be whole seconds (it is sent as EX)".to_owned(),
                    ));
                }
                let stale_ttl = r.stale_ttl.map_or(Duration::from_secs(7 * 86_400), |d| d.0);
                if stale_ttl > Duration::from_secs(31_536_000) {
                    return Err(err(
                        "redis.stale_ttl",
                        "at most 365d (the module's STALE limit); \"0s\" keeps no stale answers"
                            .to_owned(),
                    ));
                }
                if stale_ttl.subsec_nanos() != 0 {
                    return Err(err(
                        "redis.stale_ttl",
                        "must be whole seconds (it is sent as STALE)".to_owned(),
                    ));
                }
                let refresh_ahead = match r.refresh_ahead {
                    // An hour, but never so much of a short ttl that most hits refresh.
                    None => Duration::from_secs(3600).min(ttl / 4),
                    Some(d) if d.0 >= ttl => {
                        return Err(err(
                            "redis.refresh_ahead",
                            format!(
                                "must be less than redis.ttl ({}s), or every hit would refresh; \"0s\" turns refresh-ahead off",
                                ttl.as_secs()
                            ),
                        ));
                    }
                    Some(d) => d.0,
                };
                let key_prefix = r.key_prefix.unwrap_or_else(|| "ipcheck:".to_owned());
                if key_prefix.is_empty() || key_prefix.len() > 64 {
                    return Err(err(
                        "redis.key_prefix",
                        "1 to 64 bytes, the module's ipcheck.key-prefix (default \"ipcheck:\")"
                            .to_owned(),
                    ));
                }
                Some(RedisSettings {
                    url: url.to_owned(),
                    cluster,
                    tls_ca_pem,
                    timeout: r.timeout.map_or(Duration::from_millis(50), |d| d.0),
                    ttl,
                    stale_ttl,
                    refresh_ahead,
                    key_prefix,
                    breaker: breaker_settings("redis.breaker", r.breaker, err)?,
                    invalidation: r.invalidation.unwrap_or(true),
                })
            }
        },
    };

    let mut provider = match raw.provider {
        None => None,
        Some(p) => provider_spec(p, err)?,
    };

    let policies = policies(raw.policies, err)?;
    warnings.extend(crate::mode::observe_warning(&policies.observed()));
    let lists = super::lists::validate(raw.lists, &policies, redis.is_some(), err)?;
    let databases = crate::databases::settings::validate(raw.databases, err)?;
    let gives = |a| {
        provider
            .as_ref()
            .is_some_and(|p| p.mapping.has_attribute(a))
            || crate::databases::settings::gives(&databases, a)
    };
    super::facts::require_attribute_sources(&policies, &gives, err)?;
    if let Some(spec) = &mut provider {
        require_decisive_fields(spec, &policies, err)?;
        spec.mapping
            .expect_attributes(super::facts::needed_attributes(&policies));
        if spec.budget.shared && redis.is_none() {
            return Err(err(
                "provider.budget.shared",
                "shares the budget through Redis, which is not configured: set redis.url or shared = false".to_owned(),
            ));
        }
    }

    let unknown_policy = match raw.unknown_policy.as_deref().map(str::trim) {
        None | Some("closed") => UnknownPolicy::Closed,
        Some("open") => UnknownPolicy::Open,
        Some("default") => UnknownPolicy::Default,
        Some(other) => {
            return Err(err(
                "unknown_policy",
                format!("'{other}': expected closed (block), open (allow) or default (use the default policy)"),
            ))
        }
    };

    let enrich = crate::enrich::settings::validate(raw.enrich, err)?;
    crate::enrich::settings::require_queue(&policies, redis.is_some(), provider.is_some(), err)?;
    let feeds = crate::feeds::settings::validate(raw.feeds, err)?;
    if !feeds.is_empty() && redis.is_none() {
        return Err(err(
            "feeds",
            "feeds load network lists in Redis: configure [redis] url (or IPCHECK_REDIS_URL)"
                .to_owned(),
        ));
    }
    let events = crate::events::settings::validate(
        raw.events,
        redis.as_ref().map(|r| r.key_prefix.as_str()),
        err,
    )?;
    Ok(Settings {
        enrich,
        feeds,
        databases,
        events,
        origin: origin.to_owned(),
        listen,
        metrics_listen,
        admin_listen,
        log_format: raw.log.format.unwrap_or(LogFormat::Plain),
        log_level,
        decision_log,
        client_ip,
        aggregation,
        cache,
        redis,
        provider,
        policies,
        lists,
        unknown_policy,
        warnings,
    })
}

/// The admin listener answers only this machine, on an address of its own.
pub fn check_admin_listen(
    admin: &Listen,
    listen: &Listen,
    metrics: Option<&Listen>,
) -> Result<(), String> {
    if !admin.is_local() {
        return Err(format!("'{admin}' is not a loopback address: the admin listener explains decisions and may spend provider calls, so it listens on 127.0.0.1, [::1] or a unix socket only (\"\" for none)"
        ));
    }
    if admin == listen || Some(admin) == metrics {
        return Err(format!("'{admin}' is also `listen` or `metrics.listen`: give the admin listener its own address (or \"\" for none)"
        ));
    }
    Ok(())
}

/// Every category a policy decides on must be readable from a reply: a mapping without a path
/// for it could never flag it (a silent hole), and a reply missing it is drift, not "clean".
fn require_decisive_fields(
    spec: &mut ProviderSpec,
    policies: &Policies,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let decisive = policies.decisive_categories();
    if let Some(c) = decisive.iter().find(|c| !spec.mapping.has_paths(*c)) {
        let users: Vec<&str> = policies
            .names()
            .into_iter()
            .filter(|n| {
                policies
                    .get(n)
                    .is_some_and(|p| p.block.union(p.challenge).contains(c))
            })
            .collect();
        return Err(err(
            &format!("provider.fields.{}", c.as_str()),
            format!(
                "no JSON path for '{}', which policies {} block or challenge on: add its provider field (e.g. {} = [\"privacy.{}\"]) or remove it from those policies",
                c.as_str(),
                users.join(", "),
                c.as_str(),
                c.as_str()
            ),
        ));
    }
    spec.mapping.require(decisive);
    Ok(())
}

pub(super) fn provider_spec(
    p: RawProvider,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Option<ProviderSpec>, ConfigError> {
    let preset = match p.preset.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(
            name.parse::<Preset>()
                .map_err(|e| err("provider.preset", e))?,
        ),
    };
    let url = match (p.url.as_deref().map(str::trim), preset) {
        (Some(u), _) if !u.is_empty() => u.to_owned(),
        (_, Some(preset)) => preset.url().to_owned(),
        // Neither a preset nor a URL: `[provider]` with only defaults means "no provider".
        (_, None) if p.fields.is_empty() && p.api_key_env.is_none() && p.api_key_file.is_none() => {
            return Ok(None)
        }
        (_, None) => {
            return Err(err(
                "provider.url",
                "required without provider.preset (e.g. \"https://api.example.com/v1/{ip}\")"
                    .to_owned(),
            ))
        }
    };
    if !url.contains("{ip}") {
        return Err(err(
            "provider.url",
            "must contain {ip}, where the client address goes".to_owned(),
        ));
    }
    let sample = url.replace("{ip}", "192.0.2.1").replace("{key}", "key");
    match reqwest::Url::parse(&sample) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => {
            return Err(err(
                "provider.url",
                "must be an http:// or https:// URL template".to_owned(),
            ))
        }
    }
    let api_key_file = match p.api_key_file.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(path) if !path.starts_with('/') => {
            return Err(err(
                "provider.api_key_file",
                format!("'{path}' must be an absolute path"),
            ))
        }
        Some(path) => Some(std::path::PathBuf::from(path)),
    };
    let api_key_env = match (p.api_key_env.as_deref().map(str::trim), &api_key_file) {
        (Some(name), Some(_)) if !name.is_empty() => {
            return Err(err(
                "provider.api_key_file",
                "set either provider.api_key_env or provider.api_key_file, not both".to_owned(),
            ))
        }
        // The file replaces the preset's variable.
        (_, Some(_)) | (Some(""), None) => None,
        (Some(name), None) => Some(name.to_owned()),
        (None, None) => preset.map(|p| p.api_key_env().to_owned()),
    };
    let has_key = api_key_env.is_some() || api_key_file.is_some();
    let auth_header = match p.auth_header.as_deref().map(str::trim) {
        Some("") => None,
        Some(h) => Some(h.to_owned()),
        // `api_key_env = ""` means the vendor needs no key: no preset auth header either.
        None if !has_key => None,
        None => preset.and_then(Preset::auth_header).map(str::to_owned),
    };
    let auth_header = auth_header
        .map(|h| {
            HeaderName::try_from(h.as_str()).map_err(|_| {
                err(
                    "provider.auth_header",
                    format!("'{h}' is not a valid header name"),
                )
            })
        })
        .transpose()?;
    let auth_value = p
        .auth_value
        .clone()
        .unwrap_or_else(|| preset.map_or("{key}", Preset::auth_value).to_owned());
    if auth_header.is_some() && !auth_value.contains("{key}") {
        return Err(err(
            "provider.auth_value",
            "must contain {key}, where the API key goes".to_owned(),
        ));
    }
    if (auth_header.is_some() || url.contains("{key}")) && !has_key {
        return Err(err(
            "provider.api_key_env",
            "required: the name of the environment variable holding the API key (or provider.api_key_file)".to_owned(),
        ));
    }
    let mut mapping = preset.map_or_else(|| FieldMapping::new([]), Preset::mapping);
    for (name, paths) in &p.fields {
        let category = Category::from_token(name);
        let attribute = Attribute::from_name(name);
        if category.is_none() && attribute.is_none() {
            return Err(err(
                &format!("provider.fields.{name}"),
                format!(
                    "unknown category or attribute: expected one of {}, {}",
                    ipcheck_core::vocabulary::category_list(),
                    Attribute::ALL.map(Attribute::name).join(", ")
                ),
            ));
        }
        if let Some(bad) = paths
            .iter()
            .find(|p| p.is_empty() || p.split('.').any(str::is_empty))
        {
            return Err(err(
                &format!("provider.fields.{name}"),
                format!("'{bad}' is not a dotted JSON path (e.g. privacy.vpn)"),
            ));
        }
        // One of the two, checked above (the vocabularies share no name).
        if let Some(category) = category {
            mapping.set(category, paths);
        }
        if let Some(attribute) = attribute {
            mapping.set_attribute(attribute, paths);
        }
    }
    if mapping.is_empty() {
        return Err(err(
            "provider.fields",
            "no field mapping: set provider.preset or provider.fields (e.g. vpn = [\"privacy.vpn\"])"
                .to_owned(),
        ));
    }
    Ok(Some(ProviderSpec {
        name: preset.map_or("custom", Preset::name).to_owned(),
        url,
        auth_header,
        auth_value,
        api_key_env,
        api_key_file,
        timeout: p.timeout.map_or(Duration::from_millis(500), |d| d.0),
        mapping,
        breaker: breaker_settings("provider.breaker", p.breaker, err)?,
        budget: budget_settings(p.budget, err)?,
    }))
}

pub(super) fn policies(
    raw: BTreeMap<String, RawPolicy>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Policies, ConfigError> {
    let mut named = HashMap::new();
    let mut modes = BTreeMap::new();
    for (name, p) in raw {
        let key = |field: &str| format!("policies.{name}.{field}");
        let category_list = |field: &str, list: &[String]| {
            Categories::parse_policy_list(list).map_err(|e| {
                let i = list.iter().position(|c| *c == e.0).unwrap_or(0);
                err(&format!("{}[{i}]", key(field)), e.to_string())
            })
        };
        let on_error = match p.on_error.as_deref().unwrap_or("open") {
            "open" => FailureMode::Open,
            "closed" => FailureMode::Closed,
            other => {
                return Err(err(
                    &key("on_error"),
                    format!("'{other}': expected open or closed"),
                ))
            }
        };
        let on_redis_error = match p.on_redis_error.as_deref().unwrap_or("continue") {
            "continue" => RedisFailureMode::Continue,
            "open" => RedisFailureMode::Open,
            "closed" => RedisFailureMode::Closed,
            other => {
                return Err(err(
                    &key("on_redis_error"),
                    format!("'{other}': expected continue, open or closed"),
                ))
            }
        };
        let mode = match p.mode.as_deref() {
            None => crate::mode::Mode::Enforce,
            Some(word) => crate::mode::Mode::parse(word).ok_or_else(|| {
                err(
                    &key("mode"),
                    format!("'{word}': expected {}", crate::mode::Mode::WORDS),
                )
            })?,
        };
        modes.insert(name.clone(), mode);
        let on_miss = match p.on_miss.as_deref().unwrap_or("wait") {
            "wait" => OnMiss::Wait,
            "allow" => OnMiss::Allow,
            other => {
                return Err(err(
                    &key("on_miss"),
                    format!("'{other}': expected wait (ask the provider) or allow (answer at once, enrich in the background)"),
                ))
            }
        };
        let mut policy = Policy {
            block: category_list("block", &p.block)?,
            challenge: category_list("challenge", &p.challenge)?,
            allow_crawlers: p.allow_crawlers.unwrap_or(true),
            allow: parse_cidrs(&key("allow"), &p.allow, err)?,
            deny: parse_cidrs(&key("deny"), &p.deny, err)?,
            on_error,
            on_redis_error,
            lists: p.lists.clone(),
            on_miss,
            ..Policy::default()
        };
        super::facts::policy_attributes(&name, &p, &mut policy, err)?;
        named.insert(name, Arc::new(policy));
    }
    let default = named
        .entry("default".to_owned())
        .or_insert_with(|| Arc::new(Policy::default()))
        .clone();
    Ok(Policies {
        default,
        named,
        modes,
    })
}

/// `[redis.breaker]` / `[provider.breaker]`: `failures` (0 turns the breaker off), `cooldown`.
fn breaker_settings(
    key: &str,
    raw: Option<RawBreaker>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<BreakerSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let default = BreakerSettings::default();
    let cooldown = raw.cooldown.map_or(default.cooldown, |d| d.0);
    if cooldown.is_zero() {
        return Err(err(
            &format!("{key}.cooldown"),
            "must be more than 0 (e.g. \"5s\"); set failures = 0 to turn the breaker off"
                .to_owned(),
        ));
    }
    Ok(BreakerSettings {
        failures: raw.failures.unwrap_or(default.failures),
        cooldown,
    })
}

/// `[provider.budget]`: `rate` (calls/s, 0 = unlimited), `burst` (default: one second's worth),
/// `daily_quota` (0 = none).
fn budget_settings(
    raw: Option<RawBudget>,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<BudgetSettings, ConfigError> {
    let raw = raw.unwrap_or_default();
    let rate = raw.rate.unwrap_or(0.0);
    if !rate.is_finite() || rate < 0.0 || (rate > 0.0 && rate < 1.0 / 86_400.0) {
        return Err(err(
            "provider.budget.rate",
            format!(
                "'{rate}': calls per second, 0 (unlimited) or at least one a day (e.g. 20 or 0.5)"
            ),
        ));
    }
    let burst = match raw.burst {
        Some(0) => {
            return Err(err(
                "provider.budget.burst",
                "at least 1 (calls allowed at once above the rate)".to_owned(),
            ))
        }
        Some(b) => b,
        None => rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
    };
    Ok(BudgetSettings {
        rate,
        burst,
        daily_quota: raw.daily_quota.unwrap_or(0),
        shared: raw.shared.unwrap_or(false),
    })
}

/// `log.decisions` and `log.decisions_sample`.
fn decision_log(
    raw: &RawLog,
    err: &dyn Fn(&str, String) -> ConfigError,
    warnings: &mut Vec<String>,
) -> Result<DecisionLog, ConfigError> {
    let decisions = match raw.decisions.as_deref().map(str::trim) {
        None => Decisions::Off,
        Some(word) => Decisions::parse(word).ok_or_else(|| {
            err(
                "log.decisions",
                format!("'{word}': expected {}", Decisions::WORDS),
            )
        })?,
    };
    let sample = raw.decisions_sample.unwrap_or(1.0);
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(err(
            "log.decisions_sample",
            format!("{sample}: expected a fraction above 0 and at most 1 (0.01 logs one decision in a hundred; log.decisions = \"off\" logs none)"),
        ));
    }
    if decisions == Decisions::Off && raw.decisions_sample.is_some() {
        warnings.push(
            "log.decisions_sample is set but log.decisions is off: no decision is logged"
                .to_owned(),
        );
    }
    Ok(DecisionLog::new(decisions, sample))
}
