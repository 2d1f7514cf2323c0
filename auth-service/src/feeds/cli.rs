//! `ipcheck-auth feed [<name>...]` (every configured feed when none is named) and
//! `ipcheck-auth feed <name> --file <path>`: one run each, for cron or a systemd timer, with the
//! service's config (file and `IPCHECK_...` overrides), so the lists land where it reads them.
//!
//! Exit codes, as the operator commands: 0 every feed loaded (or skipped: another instance holds
//! its lock and runs it); 2 an argument is wrong (unknown feed, `--file` without exactly one
//! feed); 1 anything else (no Redis, a download refused or failed: the list is unchanged).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::run::{self, Lock, Outcome, Source};
use super::schedule::holder_id;
use crate::cache::redis::RedisTier;
use crate::config;

/// How long past the feed's timeout the one-shot run holds the lock (parsing and loading).
const LOAD_MARGIN: Duration = Duration::from_secs(120);

/// Runs the named feeds (all when `names` is empty) once; `file` replaces the download.
pub fn run(config_path: Option<&Path>, names: Vec<String>, file: Option<PathBuf>) -> ExitCode {
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
    runtime.block_on(execute(config_path, names, file))
}

async fn execute(
    config_path: Option<&Path>,
    names: Vec<String>,
    file: Option<PathBuf>,
) -> ExitCode {
    let settings = match config::load(config_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let configured: Vec<&str> = settings.feeds.iter().map(|f| f.name.as_str()).collect();
    for name in &names {
        if !configured.contains(&name.as_str()) {
            eprintln!(
                "error: no feed '{name}' in {}: configured: {}",
                settings.origin,
                if configured.is_empty() {
                    "none".to_owned()
                } else {
                    configured.join(", ")
                }
            );
            return ExitCode::from(2);
        }
    }
    if file.is_some() && names.len() != 1 {
        eprintln!("error: --file loads one feed: name it (ipcheck-auth feed <name> --file <path>)");
        return ExitCode::from(2);
    }
    let Some(redis) = &settings.redis else {
        eprintln!("error: {}: no Redis configured: feeds load lists in Redis; set [redis] url (or IPCHECK_REDIS_URL)", settings.origin);
        return ExitCode::FAILURE;
    };
    let tier = match RedisTier::new(redis, settings.aggregation) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: redis.url: {e}");
            return ExitCode::FAILURE;
        }
    };
    let holder = holder_id();
    let source = file.as_deref().map_or(Source::Download, Source::File);
    let mut failed = false;
    for feed in settings
        .feeds
        .iter()
        .filter(|f| names.is_empty() || names.contains(&f.name))
    {
        let lock = Lock {
            holder: &holder,
            hold: feed.timeout + LOAD_MARGIN,
            release: true,
        };
        match run::run(&tier, tier.key_prefix(), feed, source, lock).await {
            Ok(Outcome::Loaded { networks, before }) => println!(
                "feed {}: loaded {networks} networks into list {} (was {})",
                feed.name,
                feed.list,
                before.map_or_else(|| "absent".to_owned(), |n| n.to_string())
            ),
            Ok(Outcome::Skipped) => {
                let msg = format!(
                    "feed {}: skipped: another instance holds its lock ({}{{lists}}:{}.lock) and runs it",
                    feed.name,
                    tier.key_prefix(),
                    feed.list
                );
                if file.is_some() {
                    eprintln!("error: {msg}; {} not loaded", source_text(file.as_deref()));
                    failed = true;
                } else {
                    println!("{msg}");
                }
            }
            Err(e) => {
                eprintln!(
                    "error: feed {} ({}): {e}; list {} unchanged",
                    feed.name,
                    e.kind(),
                    feed.list
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn source_text(file: Option<&Path>) -> String {
    file.map_or_else(|| "the download".to_owned(), |p| p.display().to_string())
}
