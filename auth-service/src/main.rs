//! `ipcheck-auth`: the command line over the [`ipcheck_auth`] library (see its crate docs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipcheck_auth::listen::Listen;
use ipcheck_auth::ops::{self, OpsCommand};

/// Command line: `ipcheck-auth [--config FILE] [--listen ADDR] [--metrics-listen ADDR]`,
/// `ipcheck-auth check-config FILE`, or an operator command (`pin`, `unpin`, `pins`, which use
/// the Redis settings of `--config FILE`).
#[derive(Parser)]
#[command(
    name = "ipcheck-auth",
    version,
    about = "nginx auth_request service: allow, block or challenge by client address"
)]
struct Cli {
    /// TOML config file (default: the embedded default: in-process cache only, no provider, fail open).
    /// Also read by the operator commands, for their Redis settings.
    #[arg(long, value_name = "FILE", global = true)]
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
    /// Pin an address or network to a verdict in Redis (`IPCHECK SET ... SOURCE manual`); every
    /// instance answers it, from Redis, once its local copy expires (cache.local_ttl).
    Pin {
        /// An address or network, keyed as the service keys it (IPv6 aggregated to its /64 by
        /// default).
        address: String,
        /// allow, block or challenge.
        verdict: String,
        /// Comma-separated reason tokens (a-z, 0-9, _, -), e.g. abuse,spam.
        #[arg(long, value_name = "TOKENS")]
        reason: Option<String>,
        /// How long the pin lasts (90s, 30m, 12h, 7d; at most 365d); without it, it never expires.
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
    },
    /// Remove an operator's pin (`IPCHECK DEL`); an entry that is not a pin only with --any.
    Unpin {
        /// The address or network as pinned.
        address: String,
        /// Also delete an entry that is not a pin (a provider's answer: asked again next time).
        #[arg(long)]
        any: bool,
    },
    /// List every operator's pin: address, verdict, reasons, time left ("never"), then a count.
    Pins,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig { file }) => ipcheck_auth::check_config(&file),
        Some(Command::Pin {
            address,
            verdict,
            reason,
            for_,
        }) => ops::run(
            cli.config.as_deref(),
            OpsCommand::Pin {
                address,
                verdict,
                reason,
                for_,
            },
        ),
        Some(Command::Unpin { address, any }) => {
            ops::run(cli.config.as_deref(), OpsCommand::Unpin { address, any })
        }
        Some(Command::Pins) => ops::run(cli.config.as_deref(), OpsCommand::Pins),
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
