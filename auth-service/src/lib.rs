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
pub mod cache;
pub mod client_ip;
pub mod coalesce;
pub mod config;
pub mod decide;
pub mod duration;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod shutdown;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;

use crate::app::App;
use crate::config::{LogFormat, Settings};

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
            println!(
                "{}: ok; listen {}; tiers: {}; policies: {}; unknown policy names: {}",
                settings.origin,
                settings.listen,
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

/// Runs the service until SIGTERM/SIGINT with the config file (or the embedded default),
/// `listen` overriding the configured address.
pub fn run(config_path: Option<&Path>, listen: Option<SocketAddr>) -> ExitCode {
    let mut settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(addr) = listen {
        settings.listen = addr;
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
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
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

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let key = match &settings.provider {
        Some(spec) => spec
            .api_key()
            .with_context(|| format!("{}: provider enabled but no API key", settings.origin))?,
        None => None,
    };
    let listen = settings.listen;
    let summary = App::tiers_summary(&settings);
    let warnings = settings.warnings.clone();
    let app = Arc::new(App::new(settings, key)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?
        // Decisions are tiny single writes; never let Nagle hold one back.
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    tracing::info!(
        "ipcheck-auth {} listening on {listen}; tiers: {summary}",
        env!("CARGO_PKG_VERSION")
    );
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    axum::serve(listener, routes::router(app))
        .with_graceful_shutdown(shutdown::signal())
        .await
        .context("server error")?;
    tracing::info!("stopped");
    Ok(())
}
