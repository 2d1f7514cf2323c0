//! `ipcheck-auth`: the service nginx asks, through `auth_request`, whether a request may pass.
//!
//! A request's client address is normalized (`ipcheck-core`), looked up in three look-aside tiers
//! (an in-process LRU, Redis through the `IPCHECK` command, then a third-party provider over
//! HTTP), and the named policy nginx asked for turns the facts found into 204 (allow), 403
//! (block) or 401 (challenge). Lookups for one address are coalesced, every outside call has a
//! deadline, and any failure falls to the policy's `on_error`, so nothing behind the service can
//! hang or crash it. See README.md for the HTTP contract and every configuration key.

mod app;
mod cache;
mod client_ip;
mod coalesce;
mod config;
mod decide;
mod duration;
mod metrics;
mod provider;
mod routes;
mod shutdown;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::{LogFormat, Settings};

/// Command line: `ipcheck-auth [--config FILE] [--listen ADDR]` or `ipcheck-auth check-config FILE`.
#[derive(Parser)]
#[command(
    name = "ipcheck-auth",
    version,
    about = "nginx auth_request service: allow, block or challenge by client address"
)]
struct Cli {
    /// TOML config file (default: the embedded default: LRU only, no provider, fail open).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address, overriding `listen` in the config and IPCHECK_LISTEN.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file (with IPCHECK_... overrides applied) and exit: 0 if valid.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => check_config(&file),
        None => run(cli.config.as_deref(), cli.listen),
    }
}

fn check_config(file: &Path) -> ExitCode {
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
                "{}: ok; listen {}; tiers: {}; policies: {}",
                settings.origin,
                settings.listen,
                App::tiers_summary(&settings),
                settings.policies.names().join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config_path: Option<&Path>, listen: Option<SocketAddr>) -> ExitCode {
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
