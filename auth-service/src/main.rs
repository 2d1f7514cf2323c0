//! `ipcheck-auth`: the command line over the [`ipcheck_auth`] library (see its crate docs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipcheck_auth::listen::Listen;

/// Command line: `ipcheck-auth [--config FILE] [--listen ADDR] [--metrics-listen ADDR]` or
/// `ipcheck-auth check-config FILE`.
#[derive(Parser)]
#[command(
    name = "ipcheck-auth",
    version,
    about = "nginx auth_request service: allow, block or challenge by client address"
)]
struct Cli {
    /// TOML config file (default: the embedded default: in-process cache only, no provider, fail open).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address (host:port or unix:/path), overriding `listen` in the config and
    /// IPCHECK_LISTEN.
    #[arg(long, value_name = "ADDR")]
    listen: Option<Listen>,
    /// The /metrics listen address (host:port or unix:/path; "" for none), overriding
    /// `metrics.listen` in the config and IPCHECK_METRICS_LISTEN.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
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
        Some(Command::CheckConfig { file }) => ipcheck_auth::check_config(&file),
        None => {
            let metrics_listen = match cli.metrics_listen.as_deref().map(str::trim) {
                None => None,
                Some("") => Some(None),
                Some(addr) => match addr.parse::<Listen>() {
                    Ok(listen) => Some(Some(listen)),
                    Err(e) => {
                        eprintln!("error: --metrics-listen: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            ipcheck_auth::run(cli.config.as_deref(), cli.listen, metrics_listen)
        }
    }
}
