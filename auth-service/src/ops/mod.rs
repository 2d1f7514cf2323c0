//! Operator commands: `ipcheck-auth pin`, `unpin` and `pins` (and `explain`, which asks the
//! running service: [`explain`]), which write, remove and list an
//! operator's pins (`IPCHECK SET ... SOURCE manual`) in the service's Redis, with the service's
//! own config (file and `IPCHECK_...` overrides): the same Redis settings, key prefix and
//! address aggregation, so a pin lands on the key the service reads.
//!
//! Exit codes: 0 done; 2 an argument is wrong (named in the message); 1 anything else (no Redis
//! configured, Redis unreachable or refusing, an entry that is not a pin). Nothing printed ever
//! holds the Redis password: Redis is named by `host:port` only.

pub mod explain;
pub mod listing;
pub mod pin_attributes;
pub mod remote;
pub mod request;

use std::path::Path;
use std::process::ExitCode;

use crate::cache::redis::{RedisError, RedisTier, Stored};
use crate::config::{self, Settings};
use pin_attributes::AttributeArgs;
use request::{BadArgument, PinRequest};

/// One operator command, as the command line gave it.
#[derive(Debug, Clone)]
pub enum OpsCommand {
    /// `pin <address> <verdict> [--reason R] [--for D] [--country C] [--asn N] [--score S]`.
    Pin {
        /// Address or network.
        address: String,
        /// `allow`, `block` or `challenge`.
        verdict: String,
        /// `--reason`.
        reason: Option<String>,
        /// `--for`.
        for_: Option<String>,
        /// `--country`, `--asn`, `--score`.
        attributes: AttributeArgs,
    },
    /// `unpin <address> [--any]`.
    Unpin {
        /// Address or network.
        address: String,
        /// Delete the entry even when it is not a pin.
        any: bool,
    },
    /// `pins`.
    Pins,
}

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A wrong argument (exit 2).
    #[error(transparent)]
    Argument(#[from] BadArgument),
    /// The config cannot be used.
    #[error("{0}")]
    Config(String),
    /// Redis gave no usable answer (already explained).
    #[error("{}", .0.detail)]
    Redis(RedisError),
    /// The command was refused for what Redis holds.
    #[error("{0}")]
    Refused(String),
}

impl OpsError {
    fn exit_code(&self) -> ExitCode {
        match self {
            OpsError::Argument(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs `command` with the config at `config_path` (or the embedded default): 0 when done.
pub fn run(config_path: Option<&Path>, command: OpsCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(config_path, command)) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// The command's output lines.
async fn execute(config_path: Option<&Path>, command: OpsCommand) -> Result<Vec<String>, OpsError> {
    let settings = config::load(config_path).map_err(|e| OpsError::Config(e.to_string()))?;
    let tier = tier(&settings)?;
    let aggregation = settings.aggregation;
    let prefix = tier.key_prefix().to_owned();
    let key = |address: &str| listing::key_of(&prefix, tier.is_cluster(), address);
    match command {
        OpsCommand::Pin {
            address,
            verdict,
            reason,
            for_,
            attributes,
        } => {
            // Every argument is checked before anything is sent.
            let req = PinRequest::parse(
                &address,
                &verdict,
                reason.as_deref(),
                for_.as_deref(),
                aggregation,
            )?
            .with_attributes(attributes.parse()?);
            let stored = remote::pin(&tier, &req).await?;
            let address = req.address.to_string();
            Ok(vec![
                format!(
                    "pinned {address} (key {}): {}",
                    key(&address),
                    describe(&stored)
                ),
                local_copies(&settings),
            ])
        }
        OpsCommand::Unpin { address, any } => {
            let ip = request::parse_address(&address, aggregation)?;
            let address = ip.to_string();
            let Some(stored) = remote::get(&tier, &address).await? else {
                return Ok(vec![format!(
                    "nothing to unpin: no entry for {address} (key {})",
                    key(&address)
                )]);
            };
            if !stored.entry.source.is_manual() && !any {
                return Err(OpsError::Refused(format!(
                    "{address} (key {}) holds no pin but an answer from source '{}' ({}); nothing removed. Pass --any to delete it anyway",
                    key(&address),
                    stored.entry.source.as_str(),
                    describe(&stored)
                )));
            }
            let removed = remote::del(&tier, &ip).await?;
            Ok(vec![if removed {
                format!(
                    "unpinned {address} (key {}): removed {}, source {}",
                    key(&address),
                    describe(&stored),
                    stored.entry.source.as_str()
                )
            } else {
                format!("nothing to unpin: the entry for {address} expired meanwhile")
            }])
        }
        OpsCommand::Pins => Ok(listing::render(remote::pins(&tier, aggregation).await?)),
    }
}

/// The service's Redis tier, as the config describes it.
fn tier(settings: &Settings) -> Result<RedisTier, OpsError> {
    let redis = settings.redis.as_ref().ok_or_else(|| {
        OpsError::Config(format!(
            "{}: no Redis configured: pins live in Redis; set [redis] url (or IPCHECK_REDIS_URL)",
            settings.origin
        ))
    })?;
    RedisTier::new(redis, settings.aggregation)
        .map_err(|e| OpsError::Config(format!("redis.url: {e}")))
}

/// `block, reason abuse, expires never` / `... expires in 3600s`, then the attributes stored
/// with the entry when it carries any (`, country=US asn=13335 score=87`).
fn describe(stored: &Stored) -> String {
    let left = listing::left_text(stored.ttl);
    let attributes = pin_attributes::text(&stored.entry.attributes);
    format!(
        "{}, reason {}, expires {}{}{}",
        stored.entry.verdict.as_str(),
        if stored.entry.reasons.is_empty() {
            "-"
        } else {
            stored.entry.reasons.as_str()
        },
        if left == "never" {
            left
        } else {
            format!("in {left}")
        },
        if attributes.is_empty() { "" } else { ", " },
        attributes
    )
}

/// What becomes of the instances' local copies of a pinned address.
fn local_copies(settings: &Settings) -> String {
    let ttl = crate::duration::display(settings.cache.local_ttl);
    if settings.redis.as_ref().is_some_and(|r| r.invalidation) {
        format!("instances following Redis (redis.invalidation) drop their local copies at once; any other answers from its local tier for up to {ttl} (cache.local_ttl)")
    } else {
        format!("instances that cached it answer from their local tier for up to {ttl} (cache.local_ttl)")
    }
}
