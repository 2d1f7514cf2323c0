//! `ipcheck-auth`: the command line over the [`ipcheck_auth`] library (see its crate docs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ipcheck_auth::listen::Listen;
use ipcheck_auth::ops::{self, OpsCommand};
use ipcheck_auth::ListenOverrides;

/// Command line: `ipcheck-auth [--config FILE] [--listen ADDR] [--metrics-listen ADDR]
/// [--admin-listen ADDR]`, `ipcheck-auth check-config FILE`, or an operator command (`pin`,
/// `unpin`, `pins`, which use the Redis settings of `--config FILE`; `explain`, which asks the
/// running service's admin listener).
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
        /// The country stored with the pin (two letters, e.g. US), sent as X-IPCheck-Country.
        #[arg(long, value_name = "CC")]
        country: Option<String>,
        /// The AS number stored with the pin (13335 or AS13335), sent as X-IPCheck-ASN.
        #[arg(long, value_name = "N")]
        asn: Option<String>,
        /// The score stored with the pin (0 to 100), sent as X-IPCheck-Score.
        #[arg(long, value_name = "0-100")]
        score: Option<String>,
    },
    /// Remove an operator's pin (`IPCHECK DEL`); an entry that is not a pin only with --any.
    Unpin {
        /// The address or network as pinned.
        address: String,
        /// Also delete an entry that is not a pin (a provider's answer: asked again next time).
        #[arg(long)]
        any: bool,
    },
    /// List every operator's pin: address, verdict, reasons, time left ("never"), the
    /// attributes stored with it (country=.. asn=.. score=..), then a count.
    Pins,
    /// Explain the decision for an address: what each tier of the running service holds, the
    /// facts, the rule and the verdict (asks its admin listener, admin.listen).
    Explain {
        /// The client address.
        address: String,
        /// The policy (default: the default policy).
        #[arg(long, value_name = "NAME")]
        policy: Option<String>,
    },
    /// Run an enrichment worker: read the queue of cold addresses (policies with
    /// on_miss = "allow") from Redis as one consumer of the group, ask the provider under the
    /// configured breaker and budget, write the facts with IPCHECK SET. Until SIGTERM.
    Worker {
        /// This worker's name in the consumer group (default: <hostname>-<pid>). A restarted
        /// worker with the same name picks up what it left unacknowledged.
        #[arg(long, value_name = "NAME")]
        consumer: Option<String>,
        /// The /metrics listen address (host:port or unix:/path; "" for none), overriding
        /// `metrics.listen` in the config.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// Run feeds once (every configured feed when none is named): download, check and swap each
    /// into its network list in Redis, as the service does on its interval. For cron.
    Feed {
        /// Feed names (`[feeds.<name>]`).
        names: Vec<String>,
        /// Load this local file (in the feed's format) instead of downloading; one feed only.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
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
            country,
            asn,
            score,
        }) => ops::run(
            cli.config.as_deref(),
            OpsCommand::Pin {
                address,
                verdict,
                reason,
                for_,
                attributes: ops::pin_attributes::AttributeArgs {
                    country,
                    asn,
                    score,
                },
            },
        ),
        Some(Command::Unpin { address, any }) => {
            ops::run(cli.config.as_deref(), OpsCommand::Unpin { address, any })
        }
        Some(Command::Pins) => ops::run(cli.config.as_deref(), OpsCommand::Pins),
        Some(Command::Explain { address, policy }) => {
            ops::explain::run(cli.config.as_deref(), &address, policy.as_deref())
        }
        Some(Command::Worker {
            consumer,
            metrics_listen,
        }) => match optional_listen("--metrics-listen", metrics_listen.as_deref()) {
            Ok(metrics_listen) => ipcheck_auth::enrich::worker::run(
                cli.config.as_deref(),
                ipcheck_auth::enrich::worker::Options {
                    consumer,
                    metrics_listen,
                },
            ),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Feed { names, file }) => {
            ipcheck_auth::feeds::cli::run(cli.config.as_deref(), names, file)
        }
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
