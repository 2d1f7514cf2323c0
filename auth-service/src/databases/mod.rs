//! Local IP databases (`.mmdb` files: country, ASN, anonymous-IP): a tier before the provider.
//!
//! Every configured database is asked on each request that reaches the tiers (one in-memory
//! lookup each, decoding only the record paths the mapping reads). When together they give every
//! fact the request's policy decides on ([`answer::DbAnswer::covers`]), the lookup decides
//! without the provider; an operator's pin in the local tier or Redis still wins (see
//! [`crate::lookup::databases`]). Otherwise the provider is asked as before and the databases
//! fill what its answer does not say.
//!
//! A file replaced on disk is taken into use without a restart: each database's file identity is
//! checked every `check_interval` and on `SIGHUP`; a new version is verified whole before it
//! replaces the old one ([`load`]), and a corrupt one is refused with the old one kept.

pub mod answer;
pub mod database;
pub mod load;
pub mod preset;
pub mod settings;
pub mod status;

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use answer::DbAnswer;
use database::Database;
use settings::DatabaseSpec;

/// Every configured database, in name order.
#[derive(Default)]
pub struct Databases {
    list: Vec<Arc<Database>>,
}

impl Databases {
    /// Opens every database of a new configuration. A database whose settings did not change
    /// keeps its state and file (checked again now); any other is loaded and verified. The error
    /// names the database's `file` key and what is wrong with the file.
    pub fn open(
        origin: &str,
        specs: &[DatabaseSpec],
        running: Option<&Databases>,
    ) -> anyhow::Result<Databases> {
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let same = running.and_then(|r| r.list.iter().find(|d| d.spec == *spec));
            let db = match same {
                Some(db) => db.reused(),
                None => Arc::new(Database::open(spec.clone()).map_err(|e| {
                    anyhow::anyhow!("{origin}: key `databases.{}.file`: {e}", spec.name)
                })?),
            };
            list.push(db);
        }
        Ok(Databases { list })
    }

    /// Whether none is configured (the lookup then skips this tier).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The databases, in name order.
    pub fn all(&self) -> &[Arc<Database>] {
        &self.list
    }

    /// What the databases together say about `ip`.
    pub fn lookup(&self, ip: IpAddr) -> DbAnswer {
        let mut answer = DbAnswer::NOTHING;
        for db in &self.list {
            if let Some((facts, answered)) = db.lookup(ip) {
                answer.add(facts, answered);
            }
        }
        answer
    }

    /// Checks every database file on its `check_interval`, for as long as this set is in use (a
    /// reload's new set starts checkers of its own).
    pub fn spawn_checks(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for i in 0..self.list.len() {
            let weak: Weak<Databases> = Arc::downgrade(self);
            let every = self.list[i].spec.check_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(db) = weak.upgrade().map(|set| Arc::clone(&set.list[i])) else {
                        return;
                    };
                    // Reading and walking a file blocks: off the request threads.
                    let _ = tokio::task::spawn_blocking(move || db.check()).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
