//! The third-party IP-intelligence API: one pooled HTTP client, a deadline on every call, and
//! nothing about the API key or the request URL (which may carry the key) in any error.

pub mod gate;
pub mod health;
pub mod mapping;
pub mod missing;
pub mod preset;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use ipcheck_core::Facts;
use thiserror::Error;

use health::{Health, KindLogLimiter, LOG_INTERVAL};
use mapping::FieldMapping;

/// Largest reply body read; anything bigger is not an IP lookup.
const MAX_BODY: usize = 256 * 1024;

/// The provider as configured: where to ask, how to authenticate, how to read the reply.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// The preset name, or `custom`.
    pub name: String,
    /// URL template with `{ip}` and optionally `{key}`.
    pub url: String,
    /// The header that carries the key, if any.
    pub auth_header: Option<HeaderName>,
    /// The auth header's value template, with `{key}`.
    pub auth_value: String,
    /// The environment variable holding the key.
    pub api_key_env: Option<String>,
    /// The file holding the key (instead of a variable): read at start and on every reload,
    /// so a key can be rotated without a restart.
    pub api_key_file: Option<std::path::PathBuf>,
    /// Deadline of one call, connect to last byte.
    pub timeout: Duration,
    /// JSON fields to categories.
    pub mapping: FieldMapping,
    /// `[provider.breaker]`.
    pub breaker: crate::breaker::BreakerSettings,
    /// `[provider.budget]`.
    pub budget: crate::budget::BudgetSettings,
}

/// The API key; prints as `***` so it cannot leak through `{:?}`. Compared on reload, to tell a
/// rotated key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The key could not be had (the message names the variable or the file, never a value).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct MissingKey(pub String);

impl ProviderSpec {
    /// Reads the key from the file or the environment variable the config names.
    pub fn api_key(&self) -> Result<Option<ApiKey>, MissingKey> {
        if let Some(path) = &self.api_key_file {
            return match std::fs::read_to_string(path) {
                Ok(text) if !text.trim().is_empty() => Ok(Some(ApiKey(text.trim().to_owned()))),
                Ok(_) => Err(MissingKey(format!(
                    "provider.api_key_file: {} is empty",
                    path.display()
                ))),
                Err(e) => Err(MissingKey(format!(
                    "provider.api_key_file: cannot read {}: {}",
                    path.display(),
                    e.kind()
                ))),
            };
        }
        match &self.api_key_env {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(ApiKey(v.trim().to_owned()))),
                _ => Err(MissingKey(format!(
                    "provider.api_key_env: environment variable {var} is not set or empty"
                ))),
            },
        }
    }

    /// `host:port` of the URL, for logs and the readiness check (never the path or query).
    pub fn endpoint(&self) -> Option<(String, u16)> {
        let sample = self.url.replace("{ip}", "192.0.2.1").replace("{key}", "k");
        let url = reqwest::Url::parse(&sample).ok()?;
        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
    }
}

/// Why a lookup gave no facts. Kinds are metric labels; none carries a URL or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// No complete answer within the deadline.
    #[error("timed out")]
    Timeout,
    /// Could not connect.
    #[error("connection failed")]
    Connect,
    /// HTTP 429: over quota or rate limit.
    #[error("rate limited (HTTP 429)")]
    RateLimited,
    /// HTTP 401 or 403: the provider refused the API key (every lookup will fail alike).
    #[error("the provider refused the API key (HTTP {0})")]
    Auth(u16),
    /// Any other non-2xx status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body is not JSON (or too big).
    #[error("undecodable body")]
    Decode,
    /// Valid JSON without the mapped fields (any of them, or one a policy decides on).
    #[error("schema drift: the reply lacks a mapped field the policies need")]
    SchemaDrift,
    /// Any other transport failure.
    #[error("request failed")]
    Request,
}

impl ProviderError {
    /// Every kind, in metric order.
    pub const KINDS: [&'static str; 8] = [
        "timeout",
        "connect",
        "rate_limited",
        "status",
        "decode",
        "schema_drift",
        "request",
        "auth",
    ];

    /// The index of this kind in [`ProviderError::KINDS`].
    pub fn kind_index(self) -> usize {
        match self {
            ProviderError::Timeout => 0,
            ProviderError::Connect => 1,
            ProviderError::RateLimited => 2,
            ProviderError::Status(_) => 3,
            ProviderError::Decode => 4,
            ProviderError::SchemaDrift => 5,
            ProviderError::Request => 6,
            ProviderError::Auth(_) => 7,
        }
    }

    /// Whether the failure points at the configuration (or the provider's format) rather than
    /// at an outage: a 4xx other than 429, an answer that is not JSON, or a decisive field gone.
    pub fn is_misconfiguration(self) -> bool {
        match self {
            ProviderError::Status(code) => (400..500).contains(&code),
            ProviderError::Decode | ProviderError::SchemaDrift | ProviderError::Auth(_) => true,
            _ => false,
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            ProviderError::Timeout
        } else if e.is_connect() {
            ProviderError::Connect
        } else if e.is_decode() || e.is_body() {
            ProviderError::Decode
        } else {
            ProviderError::Request
        }
    }
}

/// A ready client for the configured provider.
pub struct Provider {
    spec: ProviderSpec,
    client: reqwest::Client,
    key: Option<ApiKey>,
    auth: Option<(HeaderName, HeaderValue)>,
    health: Health,
    warnings: KindLogLimiter,
    /// Whether any lookup has been answered since startup.
    answered_once: AtomicBool,
    /// Opens after consecutive failed calls (see [`gate`]).
    breaker: crate::breaker::Breaker,
    /// `[provider.budget]` (see [`gate`]).
    budget: crate::budget::Budget,
    /// The fleet's budget in Redis, with `provider.budget.shared`.
    shared: Option<crate::budget_shared::Shared>,
    /// When the shared budget could not be asked: one log line per interval.
    shared_log: std::sync::Mutex<ipcheck_core::LogLimiter>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.spec.name)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Builds the pooled client; the key must already have been read.
    pub fn new(spec: ProviderSpec, key: Option<ApiKey>) -> anyhow::Result<Self> {
        let auth = match (&spec.auth_header, &key) {
            (Some(name), Some(key)) => {
                let mut value = HeaderValue::from_str(&spec.auth_value.replace("{key}", &key.0))
                    // The error names the setting, never the value.
                    .map_err(|_| anyhow::anyhow!("provider auth header value is not a valid header value (check the key's characters)"))?;
                // Kept out of HTTP/2 header compression tables and Debug output.
                value.set_sensitive(true);
                Some((name.clone(), value))
            }
            _ => None,
        };
        let client = reqwest::Client::builder()
            .timeout(spec.timeout)
            .connect_timeout(spec.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("ipcheck-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                anyhow::anyhow!("cannot build the provider HTTP client: {}", e.without_url())
            })?;
        Ok(Provider {
            client,
            key,
            auth,
            health: Health::default(),
            warnings: KindLogLimiter::new(ProviderError::KINDS.len(), LOG_INTERVAL),
            answered_once: AtomicBool::new(false),
            breaker: crate::breaker::Breaker::new("provider", spec.breaker),
            budget: crate::budget::Budget::new(spec.budget),
            shared: spec
                .budget
                .shared
                .then(|| crate::budget_shared::Shared::new(&spec.budget)),
            shared_log: std::sync::Mutex::new(ipcheck_core::LogLimiter::new(LOG_INTERVAL)),
            spec,
        })
    }

    /// The circuit breaker of the calls.
    pub fn breaker(&self) -> &crate::breaker::Breaker {
        &self.breaker
    }

    /// The call budget.
    pub fn budget(&self) -> &crate::budget::Budget {
        &self.budget
    }

    /// The configuration this client runs.
    pub fn spec(&self) -> &ProviderSpec {
        &self.spec
    }

    /// Asks the provider about one address; records the outcome for `/readyz` and logs failures,
    /// rate-limited.
    pub async fn lookup(&self, ip: IpAddr) -> Result<Facts, ProviderError> {
        let result = self.call(ip).await;
        self.observe(result.map(|_| ()), Instant::now());
        result
    }

    /// Whether the latest real call failed (`/readyz` then says the instance is degraded).
    pub fn failing(&self) -> bool {
        self.health.failing()
    }

    /// The `/readyz` line about the provider, from the latest real calls.
    pub fn status_line(&self) -> String {
        self.health.line(&self.spec, Instant::now())
    }

    fn observe(&self, outcome: Result<(), ProviderError>, now: Instant) {
        let previous = self.health.record(outcome, now);
        let name = &self.spec.name;
        let e = match outcome {
            Ok(()) => {
                self.answered_once.store(true, Ordering::Relaxed);
                if let Some(Err(e)) = previous {
                    tracing::info!(provider = %name, "provider answering again (it was failing: {e})");
                }
                return;
            }
            Err(e) => e,
        };
        let Some(failures) = self.warnings.admit(e.kind_index(), now) else {
            return;
        };
        let interval = crate::duration::display(LOG_INTERVAL);
        match e {
            ProviderError::Auth(code) => tracing::error!(
                provider = %name,
                failures,
                "the provider refused {} (HTTP {code}): every lookup fails and each policy's on_error decides; set a valid key and restart ({failures} failed lookups since the last such line, at most one per {interval})",
                health::refused_key(&self.spec)
            ),
            e if e.is_misconfiguration() || !self.answered_once.load(Ordering::Relaxed) => {
                tracing::error!(
                    provider = %name,
                    failures,
                    kind = ProviderError::KINDS[e.kind_index()],
                    "provider lookups failing: {e}, and no lookup has been answered since startup or the answer says the configuration is wrong (check provider.url and provider.fields); on_error decides everywhere ({failures} failed lookups since the last such line, at most one per {interval})"
                )
            }
            e => tracing::warn!(
                provider = %name,
                failures,
                kind = ProviderError::KINDS[e.kind_index()],
                "provider lookups failing: {e}; on_error decides and each failure is remembered for negative_ttl ({failures} failed lookups since the last such line, at most one per {interval})"
            ),
        }
    }

    async fn call(&self, ip: IpAddr) -> Result<Facts, ProviderError> {
        let mut url = self.spec.url.replace("{ip}", &ip.to_string());
        if let Some(key) = &self.key {
            url = url.replace("{key}", &key.0);
        }
        let mut request = self
            .client
            .get(url)
            .header(axum::http::header::ACCEPT, "application/json");
        if let Some((name, value)) = &self.auth {
            request = request.header(name.clone(), value.clone());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(&e))?;
        let status = response.status();
        match status.as_u16() {
            429 => return Err(ProviderError::RateLimited),
            code @ (401 | 403) => return Err(ProviderError::Auth(code)),
            _ => {}
        }
        if !status.is_success() {
            return Err(ProviderError::Status(status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ProviderError::from_reqwest(&e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ProviderError::Decode);
            }
            body.extend_from_slice(&chunk);
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| ProviderError::Decode)?;
        self.spec
            .mapping
            .map(&json)
            .map_err(|_| ProviderError::SchemaDrift)
    }
}
