//! `ipcheck-auth`: the command line over the [`ipcheck_auth`] library (see its crate docs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipcheck_auth::listen::Listen;
use ipcheck_auth::ListenOverrides;

/// Command line: `ipcheck-auth [--config FILE] [--listen ADDR] [--metrics-listen ADDR]
/// [--admin-listen ADDR]` or
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
    /// The admin listen address (/explain; 127.0.0.1:port, [::1]:port or unix:/path; "" for
    /// none), overriding `admin.listen` in the config and IPCHECK_ADMIN_LISTEN.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
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
            let overrides = match (
                optional_listen("--metrics-listen", cli.metrics_listen.as_deref()),
                optional_listen("--admin-listen", cli.admin_listen.as_deref()),
            ) {
                (Ok(metrics), Ok(admin)) => ListenOverrides {
                    listen: cli.listen,
                    metrics,
                    admin,
                },
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            ipcheck_auth::run(cli.config.as_deref(), overrides)
        }
    }
}

/// A listener's address from the command line: absent, "" (off), or an address.
fn optional_listen(flag: &str, text: Option<&str>) -> Result<Option<Option<Listen>>, String> {
    match text.map(str::trim) {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(addr) => addr
            .parse::<Listen>()
            .map(|l| Some(Some(l)))
            .map_err(|e| format!("{flag}: {e}")),
    }
}
