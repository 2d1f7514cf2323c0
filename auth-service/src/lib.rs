//! `ipcheck-auth`: the service nginx asks, through `auth_request`, whether a request may pass.
//!
//! A request's client address is normalized (`ipcheck-core`), looked up in three look-aside tiers
//! (an in-process LRU, Redis through the `IPCHECK` command, then a third-party provider over
//! HTTP), and the named policy nginx asked for turns the facts found into 204 (allow), 403
//! (block) or 401 (challenge). Lookups for one address are coalesced, every outside call has a
//! deadline, and any failure falls to the policy's `on_error`, so nothing behind the service can
//! hang or crash it. See README.md for the HTTP contract and every configuration key.
//!
//! The binary (`main.rs`) is only the command line; everything else is this library, so the
//! benchmarks in `benches/` and `bench/` reach the same types the service runs.

#![warn(missing_docs)]

pub mod app;
pub mod breaker;
pub mod budget;
pub mod budget_shared;
pub mod cache;
pub mod client_ip;
pub mod coalesce;
pub mod config;
pub mod databases;
pub mod decide;
pub mod decision_counts;
pub mod decision_log;
pub mod detached;
pub mod duration;
pub mod enrich;
pub mod events;
pub mod explain;
pub mod exposition;
pub mod fact_headers;
pub mod feeds;
pub mod histogram;
pub mod listen;
pub mod lists;
pub mod lookup;
pub mod metrics;
pub mod mode;
pub mod ops;
pub mod plain_name;
pub mod provider;
pub mod reason_header;
pub mod reload;
pub mod routes;
pub mod shutdown;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::app::App;
use crate::config::{LogFormat, Settings};
use crate::listen::Listen;

/// `ipcheck-auth check-config FILE`: validates the file and prints a summary; 0 if valid.
pub fn check_config(file: &Path) -> ExitCode {
    match config::load(Some(file)) {
        Ok(settings) => {
            for warning in &settings.warnings {
                eprintln!("warning: {warning}");
            }
            if let Some(spec) = &settings.provider {
                if let Err(e) = spec.api_key() {
                    eprintln!("warning: {e} (the service will refuse to start without it)");
                }
            }
            // The service refuses to start on a missing or corrupt database file: so does this.
            if let Err(e) = databases::Databases::open(&settings.origin, &settings.databases, None)
            {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
            println!(
                "{}: ok; listen {}; metrics {}; tiers: {}; policies: {}; unknown policy names: {}",
                settings.origin,
                settings.listen,
                metrics_summary(&settings),
                App::tiers_summary(&settings),
                settings.policies.names().join(", "),
                settings.unknown_policy.as_str()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Verifies Redis at startup, then keeps its state honest: re-verifies while it is not known to
/// work (a misconfiguration is cleared only by a passing check), and writes the summary of
/// state changes the log gate held back. Redis may come up after the service, so a failed
/// check never stops the start; the tier's state change logs it (ERROR when misconfigured).
async fn watch_redis(redis: Arc<cache::redis::RedisTier>) {
    let mut tick = tokio::time::interval(cache::redis::VERIFY_CACHE);
    loop {
        tick.tick().await;
        if redis.health().state() != cache::redis_health::State::Ok {
            let _ = redis.verified().await;
        }
        redis.health().flush();
    }
}

/// Where `/metrics` is served, for the first log line and `check-config`.
fn metrics_summary(settings: &Settings) -> String {
    settings
        .metrics_listen
        .as_ref()
        .map_or_else(|| "off".to_owned(), Listen::to_string)
}

/// Where the admin listener is, for the first log line and `check-config`.
fn admin_summary(settings: &Settings) -> String {
    settings
        .admin_listen
        .as_ref()
        .map_or_else(|| "off".to_owned(), Listen::to_string)
}

/// Addresses given on the command line, each overriding the configured one (`Some(None)` turns
/// that listener off).
#[derive(Debug, Default, Clone)]
pub struct ListenOverrides {
    /// `--listen`.
    pub listen: Option<Listen>,
    /// `--metrics-listen`.
    pub metrics: Option<Option<Listen>>,
    /// `--admin-listen`.
    pub admin: Option<Option<Listen>>,
}

/// Runs the service until SIGTERM/SIGINT (SIGHUP reloads the file: [`reload`]) with the config file (or the embedded default), the
/// command line's addresses overriding the configured ones.
pub fn run(config_path: Option<&Path>, overrides: ListenOverrides) -> ExitCode {
    let mut settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = apply_overrides(&mut settings, &overrides) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    init_logging(&settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reload = (config_path.map(Path::to_path_buf), overrides);
    match runtime.block_on(serve(settings, reload)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Applies the command line's addresses to loaded settings (at start and on every reload), then
/// checks the listeners do not collide.
pub(crate) fn apply_overrides(
    settings: &mut Settings,
    overrides: &ListenOverrides,
) -> anyhow::Result<()> {
    if let Some(addr) = &overrides.listen {
        settings.listen = addr.clone();
    }
    if let Some(addr) = &overrides.metrics {
        settings.metrics_listen = addr.clone();
    }
    if let Some(addr) = &overrides.admin {
        settings.admin_listen = addr.clone();
    }
    if let Some(admin) = &settings.admin_listen {
        config::check_admin_listen(admin, &settings.listen, settings.metrics_listen.as_ref())
            .map_err(|e| anyhow::anyhow!("--admin-listen: {e}"))?;
    }
    if settings.metrics_listen.is_some()
        && settings.metrics_listen.as_ref() == Some(&settings.listen)
    {
        anyhow::bail!(
            "the metrics listener {} is also the /auth listener: give it its own address",
            settings.listen
        );
    }
    Ok(())
}

pub(crate) fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match settings.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(
    settings: Settings,
    (path, overrides): (Option<std::path::PathBuf>, ListenOverrides),
) -> anyhow::Result<()> {
    let key = match &settings.provider {
        Some(spec) => spec
            .api_key()
            .with_context(|| format!("{}: provider enabled but no API key", settings.origin))?,
        None => None,
    };
    let listen = settings.listen.clone();
    let metrics_listen = settings.metrics_listen.clone();
    let admin_listen = settings.admin_listen.clone();
    let summary = App::tiers_summary(&settings);
    let metrics_text = metrics_summary(&settings);
    let admin_text = admin_summary(&settings);
    let warnings = settings.warnings.clone();
    let app = Arc::new(App::new(settings, key)?);
    // Before the first log line says the service is up, so a HUP from then on reloads.
    let current: reload::Current = Arc::new(arc_swap::ArcSwap::new(Arc::clone(&app)));
    if let Some(queue) = &app.enrich {
        // The background reads of on_miss = "allow" use whichever configuration is running.
        let running = Arc::clone(&current);
        queue.start(move || running.load_full());
    }
    tokio::spawn(
        reload::Reloader {
            path,
            overrides,
            current: Arc::clone(&current),
        }
        .on_hangup(),
    );
    let auth = listen::bind(&listen).await?;
    let metrics = match &metrics_listen {
        Some(addr) => Some(listen::bind(addr).await?),
        None => None,
    };
    let admin = match &admin_listen {
        Some(addr) => Some(listen::bind(addr).await?),
        None => None,
    };
    tracing::info!(
        "ipcheck-auth {} listening on {listen} (metrics: {metrics_text}, admin: {admin_text}); tiers: {summary}",
        env!("CARGO_PKG_VERSION")
    );
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    app.settings.decision_log.warn_if_filtered();
    if let Some(line) = enrich::settings::allow_on_miss_line(&app.settings.policies) {
        tracing::info!("{line}");
    }
    if let Some(redis) = &app.redis {
        // The Redis tier outlives every reload, so its watcher holds the tier, not the App.
        tokio::spawn(watch_redis(Arc::clone(redis)));
        // The link uses only what a reload cannot change (the tiers, the key prefix, the
        // aggregation), so the first configuration's App serves it for good.
        cache::invalidation_link::spawn(Arc::clone(&app));
        // Feeds run from the configuration the service started with; a reload leaves them.
        feeds::schedule::spawn(
            app.settings.feeds.clone(),
            Arc::clone(redis),
            Arc::clone(&app.metrics),
        );
        if let Some(coherence) = &app.coherence {
            coherence
                .first_attempt(std::time::Duration::from_secs(1))
                .await;
        }
        // So the first requests are matched against the lists in Redis, not only their files.
        app.lists
            .first_attempt(std::time::Duration::from_secs(2))
            .await;
    }
    // From here on the handlers read `current`; the first configuration goes with its last request.
    drop(app);
    // One signal stops both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown::signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let auth_server = listen::serve(
        auth,
        routes::router(Arc::clone(&current)),
        until_stopped(stopped.clone()),
    );
    let metrics_server = async {
        match metrics {
            Some(bound) => {
                listen::serve(
                    bound,
                    routes::metrics_router(Arc::clone(&current)),
                    until_stopped(stopped.clone()),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let admin_server = async {
        match admin {
            Some(bound) => {
                listen::serve(
                    bound,
                    routes::admin_router(Arc::clone(&current)),
                    until_stopped(stopped.clone()),
                )
                .await
            }
            None => Ok(()),
        }
    };
    let (auth_result, metrics_result, admin_result) =
        tokio::join!(auth_server, metrics_server, admin_server);
    // The listeners are closed: decision events still buffered are appended before the end.
    if let Some(events) = &current.load().events {
        events.writer().finish().await;
    }
    auth_result.context("server error")?;
    metrics_result.context("metrics server error")?;
    admin_result.context("admin server error")?;
    for addr in [
        Some(&listen),
        metrics_listen.as_ref(),
        admin_listen.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if let Listen::Unix(path) = addr {
            let _ = std::fs::remove_file(path);
        }
    }
    tracing::info!("stopped");
    Ok(())
}
