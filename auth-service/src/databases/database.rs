//! One configured database at run time: the verified file in use, its lookups, and the check
//! that replaces it when the file on disk changes.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use ipcheck_core::{Categories, Category, Facts};
use maxminddb::PathElement;
use serde_json::{Map, Value};

use super::load::{identity, load, FileIdentity, Loaded};
use super::settings::DatabaseSpec;

/// Lookup outcomes, for `ipcheck_database_lookups_total{result}`.
pub const RESULTS: [&str; 3] = ["hit", "miss", "error"];

/// One database: its settings, the file version in use, and its counters.
pub struct Database {
    /// Its settings.
    pub spec: DatabaseSpec,
    /// Every mapped path, the only parts of a record a lookup decodes.
    paths: Vec<Vec<String>>,
    /// The categories with a path: what a record answers when `absent_is_false`.
    mapped: Categories,
    current: ArcSwap<Loaded>,
    /// Lookups by [`RESULTS`].
    lookups: [AtomicU64; 3],
    /// Replacement files refused, and files that could not be read.
    pub load_errors: AtomicU64,
    /// Replacement files taken into use.
    pub reloads: AtomicU64,
    /// The latest refused version and why (reported once, kept for `/readyz`).
    refused: Mutex<Option<(Option<FileIdentity>, String)>>,
    /// Held by the one check at a time: just after a reload the previous configuration's checker
    /// may still run beside the new one's, and a file is read and counted once.
    checking: Mutex<()>,
}

impl Database {
    /// Loads and verifies the file; the error names it and what is wrong.
    pub fn open(spec: DatabaseSpec) -> Result<Database, String> {
        let loaded = load(&spec.file)?;
        Ok(Database::with(spec, loaded))
    }

    fn with(spec: DatabaseSpec, loaded: Loaded) -> Database {
        let paths = spec.mapping.paths().map(<[String]>::to_vec).collect();
        let mapped = Category::ALL
            .into_iter()
            .filter(|c| spec.mapping.has_paths(*c))
            .fold(Categories::EMPTY, Categories::with);
        Database {
            spec,
            paths,
            mapped,
            current: ArcSwap::from_pointee(loaded),
            lookups: Default::default(),
            load_errors: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            refused: Mutex::new(None),
            checking: Mutex::new(()),
        }
    }

    /// The file version in use.
    pub fn loaded(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Lookups so far, by [`RESULTS`].
    pub fn lookups(&self) -> [u64; 3] {
        [0, 1, 2].map(|i| self.lookups[i].load(Ordering::Relaxed))
    }

    /// Why the latest replacement was refused, while the file on disk is still that one.
    pub fn refused(&self) -> Option<String> {
        lock(&self.refused).as_ref().map(|(_, why)| why.clone())
    }

    /// What the record for `ip` says (facts, categories answered); None when the database does
    /// not hold the address, its record has none of the mapped fields, or it could not be read
    /// (counted as an error).
    pub fn lookup(&self, ip: IpAddr) -> Option<(Facts, Categories)> {
        let loaded = self.current.load();
        let found = match loaded.reader.lookup(ip) {
            Ok(found) if found.has_data() => found,
            Ok(_) => {
                self.count(1);
                return None;
            }
            Err(_) => {
                self.count(2);
                return None;
            }
        };
        // Only the mapped parts of the record, rebuilt as JSON for the shared field mapping: a
        // country record carries names in eight languages that no rule reads.
        let mut record = Value::Object(Map::new());
        for path in &self.paths {
            let elements: Vec<PathElement<'_>> =
                path.iter().map(|s| PathElement::Key(s.as_str())).collect();
            // Absent, or not a map where the path goes on: that path says nothing.
            if let Ok(Some(value)) = found.decode_path::<Value>(&elements) {
                insert(&mut record, path, value);
            }
        }
        // A record with none of the mapped fields (some files fill the gaps between their
        // networks with empty records) gives nothing, as an address not held does.
        if record.as_object().is_some_and(Map::is_empty) {
            self.count(1);
            return None;
        }
        self.count(0);
        let mapped = self.spec.mapping.read(&record);
        let answered = if self.spec.absent_is_false {
            mapped.answered.union(self.mapped)
        } else {
            mapped.answered
        };
        Some((mapped.facts, answered))
    }

    fn count(&self, result: usize) {
        self.lookups[result].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the file on disk into use when it is another version than the one in use and it
    /// verifies; a refused version is reported once (log line, `load_errors`) and the one in use
    /// stays. Blocking: reads and walks the whole file. True when a new version was taken.
    pub fn check(&self) -> bool {
        let _one = lock(&self.checking);
        let now = identity(&self.spec.file).ok();
        if now == Some(self.current.load().identity) {
            *lock(&self.refused) = None;
            return false;
        }
        if lock(&self.refused)
            .as_ref()
            .is_some_and(|(id, _)| *id == now)
        {
            return false;
        }
        match load(&self.spec.file) {
            Ok(loaded) => {
                tracing::info!(
                    database = %self.spec.name,
                    file = %self.spec.file.display(),
                    build_epoch = loaded.build_epoch,
                    "database file replaced on disk: the new version is in use"
                );
                self.current.store(Arc::new(loaded));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                *lock(&self.refused) = None;
                true
            }
            Err(why) => {
                tracing::error!(
                    database = %self.spec.name,
                    "database file refused, the previous version stays in use: {why}; replace it with a good file (write it elsewhere, then rename it over the old one)"
                );
                self.load_errors.fetch_add(1, Ordering::Relaxed);
                *lock(&self.refused) = Some((now, why));
                false
            }
        }
    }

    /// This database for a new configuration with the same settings: the same state, the file
    /// checked again now (a SIGHUP also picks up a replaced file).
    pub fn reused(self: &Arc<Self>) -> Arc<Database> {
        self.check();
        Arc::clone(self)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Puts `value` at `path` in `record`, making the maps on the way.
fn insert(record: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = record;
    for segment in parents {
        let Value::Object(map) = at else { return };
        at = map
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = at {
        map.insert(last.clone(), value);
    }
}
