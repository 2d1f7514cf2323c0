//! What the databases tell operators: their metrics and their `/readyz` line.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use super::database::RESULTS;
use super::Databases;
use crate::exposition::{header, Kind};

/// Decisions made from the databases without the provider (`ipcheck_database_decisions_total`),
/// kept in [`crate::metrics::Metrics`] so it survives reloads.
#[derive(Default)]
pub struct DecisionCount(AtomicU64);

impl DecisionCount {
    /// One request decided from the databases, no provider asked.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Its exposition.
    pub fn render(&self, out: &mut String) {
        header(out, "ipcheck_database_decisions_total", "Requests decided from the local databases with no provider call (X-IPCheck-Cache: database).", Kind::Counter);
        let _ = writeln!(
            out,
            "ipcheck_database_decisions_total {}",
            self.0.load(Ordering::Relaxed)
        );
    }
}

impl Databases {
    /// `ipcheck_database_*`, one series per database (nothing without databases).
    pub fn render(&self, out: &mut String) {
        if self.is_empty() {
            return;
        }
        header(
            out,
            "ipcheck_database_lookups_total",
            "Local database lookups: hit (the database holds the address), miss, error.",
            Kind::Counter,
        );
        for db in self.all() {
            for (result, n) in RESULTS.iter().zip(db.lookups()) {
                let _ = writeln!(
                    out,
                    "ipcheck_database_lookups_total{{database=\"{}\",result=\"{result}\"}} {n}",
                    db.spec.name
                );
            }
        }
        let per_db = |out: &mut String,
                      name: &str,
                      kind: Kind,
                      help: &str,
                      value: &dyn Fn(&super::database::Database) -> String| {
            header(out, name, help, kind);
            for db in self.all() {
                let _ = writeln!(out, "{name}{{database=\"{}\"}} {}", db.spec.name, value(db));
            }
        };
        per_db(
            out,
            "ipcheck_database_build_epoch_seconds",
            Kind::Gauge,
            "When the vendor built the database version in use (its build_epoch); age = time() - this.",
            &|db| db.loaded().build_epoch.to_string(),
        );
        per_db(
            out,
            "ipcheck_database_loaded_timestamp_seconds",
            Kind::Gauge,
            "When this process took the database version in use.",
            &|db| {
                db.loaded()
                    .loaded_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    .to_string()
            },
        );
        per_db(
            out,
            "ipcheck_database_reloads_total",
            Kind::Counter,
            "Database files replaced on disk and taken into use.",
            &|db| db.reloads.load(Ordering::Relaxed).to_string(),
        );
        per_db(
            out,
            "ipcheck_database_load_errors_total",
            Kind::Counter,
            "Database files refused (corrupt or unreadable); the previous version stayed in use.",
            &|db| db.load_errors.load(Ordering::Relaxed).to_string(),
        );
    }

    /// The `explain` line: what each database says about `ip`, and whether together they give
    /// every fact a policy with `needs` decides on.
    pub fn explain(&self, ip: std::net::IpAddr, needs: &ipcheck_core::Needs) -> String {
        let mut parts: Vec<String> = self
            .all()
            .iter()
            .map(|db| match db.lookup(ip) {
                Some((facts, answered)) => format!(
                    "{} {} (answers {})",
                    db.spec.name,
                    crate::explain::categories(facts),
                    match answered.to_reasons().as_str() {
                        "" => "no category",
                        some => some,
                    }
                ),
                None => format!("{} does not hold it", db.spec.name),
            })
            .collect();
        let covered = if self.lookup(ip).covers(needs) {
            "every fact the policy needs, so no provider call"
        } else {
            "not every fact the policy needs, so the tiers and the provider are asked"
        };
        parts.push(covered.to_owned());
        parts.join("; ")
    }

    /// Whether a replacement file was refused and is still on disk.
    pub fn degraded(&self) -> bool {
        self.all().iter().any(|db| db.refused().is_some())
    }

    /// The `/readyz` line (empty without databases).
    pub fn line(&self) -> String {
        if self.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .all()
            .iter()
            .map(|db| {
                let loaded = db.loaded();
                let mut part = format!(
                    "{} ({}, built {})",
                    db.spec.name, loaded.database_type, loaded.build_epoch
                );
                if let Some(why) = db.refused() {
                    let _ = write!(part, ", replacement refused: {why}");
                }
                part
            })
            .collect();
        format!("databases: {}\n", parts.join("; "))
    }
}
