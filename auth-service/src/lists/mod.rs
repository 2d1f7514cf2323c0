//! Named network lists (`[lists.<name>]`): the service's local copy of each, matched per
//! request without a Redis round trip.
//!
//! Each list is a [`table::Table`] behind an `ArcSwap`, so a request reads whichever copy is
//! current and a reload swaps a whole new one in (a reader never sees a half-loaded list).
//! Copies come from the list's `file` at start, then from Redis ([`refresh`]) when Redis is
//! configured and holds the key. What a match means is in [`precedence`].

pub mod name;
pub mod precedence;
pub mod refresh;
pub mod report;
pub mod table;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ipcheck_core::{Policy, Verdict};

use crate::config::lists::{ListMeaning, ListSpec};
pub use precedence::{Listed, Matched};
use table::Table;

/// Where a list's current copy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing loaded yet (no file, Redis not answered yet or without the key).
    None,
    /// The list's `file`.
    File,
    /// The Redis key.
    Redis,
}

impl Source {
    /// The word in `/readyz` and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::None => "none",
            Source::File => "file",
            Source::Redis => "redis",
        }
    }
}

/// The load state of one list, for `/readyz` and metrics.
#[derive(Debug, Clone)]
pub struct LoadState {
    /// Where the current copy came from.
    pub source: Source,
    /// When it was loaded (Unix time).
    pub loaded_at: Option<SystemTime>,
    /// The last load error, until a load succeeds.
    pub error: Option<String>,
}

/// One configured list.
pub struct Slot {
    /// Its configuration.
    pub spec: ListSpec,
    /// `spec.name`, shared: a decision names its list without copying the text.
    name: Arc<str>,
    table: ArcSwap<Table>,
    state: Mutex<LoadState>,
    decisions: AtomicU64,
}

impl Slot {
    /// The current copy.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Replaces the copy at once.
    pub fn install(&self, table: Table, source: Source) {
        self.table.store(Arc::new(table));
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s = LoadState {
            source,
            loaded_at: Some(SystemTime::now()),
            error: None,
        };
    }

    /// Records a failed load; the copy in use stays.
    pub fn failed(&self, error: String) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).error = Some(error);
    }

    /// The load state.
    pub fn state(&self) -> LoadState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Decisions this list made before any tier was asked.
    pub fn decisions(&self) -> u64 {
        self.decisions.load(Ordering::Relaxed)
    }
}

/// Every configured list, in name order.
pub struct ListStore {
    slots: Vec<Slot>,
}

impl ListStore {
    /// The lists of `specs`, each loaded from its file if it has one (a file that cannot be
    /// read or parsed is logged, and the list starts empty until Redis supplies it).
    pub fn new(specs: &[ListSpec]) -> Self {
        let slots = specs
            .iter()
            .map(|spec| {
                let slot = Slot {
                    spec: spec.clone(),
                    name: Arc::from(spec.name.as_str()),
                    table: ArcSwap::from_pointee(Table::default()),
                    state: Mutex::new(LoadState {
                        source: Source::None,
                        loaded_at: None,
                        error: None,
                    }),
                    decisions: AtomicU64::new(0),
                };
                if let Some(path) = &spec.file {
                    match load_file(path) {
                        Ok(t) => slot.install(t, Source::File),
                        Err(e) => {
                            tracing::error!(list = %spec.name, "{e}");
                            slot.failed(e);
                        }
                    }
                }
                slot
            })
            .collect();
        ListStore { slots }
    }

    /// Takes over the copies `running` read from Redis, for lists of the same name (a reload:
    /// the Redis key is the same, so that copy is current until this store's first read).
    pub fn adopt(&self, running: &ListStore) {
        for slot in &self.slots {
            let Some(old) = running.slots.iter().find(|o| o.spec.name == slot.spec.name) else {
                continue;
            };
            let state = old.state();
            if state.source == Source::Redis {
                slot.table.store(old.table());
                *slot.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
            }
        }
    }

    /// Every list.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The list at `index`'s name.
    pub fn name(&self, index: usize) -> Option<Arc<str>> {
        self.slots.get(index).map(|s| Arc::clone(&s.name))
    }

    /// What `policy`'s lists say about `ip` at `now_ms` (Unix milliseconds).
    pub fn matched(&self, policy: &Policy, ip: IpAddr, now_ms: u64) -> Matched {
        let mut m = Matched::default();
        for name in &policy.lists {
            // A handful of lists: a scan of short names beats hashing them.
            let Some(i) = self.slots.iter().position(|s| &s.spec.name == name) else {
                continue;
            };
            let slot = &self.slots[i];
            let hit = |m: &Option<usize>| m.is_none() && slot.table.load().matches(ip, now_ms);
            match slot.spec.meaning {
                ListMeaning::Verdict(Verdict::Block) if hit(&m.block) => m.block = Some(i),
                ListMeaning::Verdict(Verdict::Block) => {}
                ListMeaning::Verdict(_) if hit(&m.allow) => m.allow = Some(i),
                ListMeaning::Verdict(_) => {}
                ListMeaning::Category(c) => {
                    if !m.categories.contains(c) && slot.table.load().matches(ip, now_ms) {
                        m.categories.insert(c);
                        m.first_category.get_or_insert(i);
                    }
                }
            }
        }
        m
    }

    /// What `policy`'s lists decide for `ip` now; a decision is counted for its list.
    pub fn judge(&self, policy: &Policy, ip: IpAddr) -> Listed {
        if policy.lists.is_empty() {
            return Listed::Nothing;
        }
        let listed = precedence::judge(policy, &self.matched(policy, ip, now_ms()));
        if let Listed::Decided(_, i) = listed {
            if let Some(slot) = self.slots.get(i) {
                slot.decisions.fetch_add(1, Ordering::Relaxed);
            }
        }
        listed
    }
}

/// The wall clock in Unix milliseconds (list expiries are absolute, as in Redis).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn load_file(path: &std::path::Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read list file {}: {e}", path.display()))?;
    table::parse_file(&text)
        .map_err(|e| format!("list file {}: {e}; fix that line", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lists::ListMeaning;
    use ipcheck_core::Category;

    fn spec(name: &str) -> ListSpec {
        ListSpec {
            name: name.to_owned(),
            meaning: ListMeaning::Category(Category::Tor),
            file: None,
            refresh: std::time::Duration::from_secs(2),
        }
    }

    #[test]
    fn a_reload_starts_from_the_running_redis_copies() {
        let running = ListStore::new(&[spec("tor"), spec("gone")]);
        let mut t = Table::default();
        t.insert("192.0.2.0/24".parse().expect("net"), None);
        running.slots()[1].install(t, Source::Redis);
        let next = ListStore::new(&[spec("tor"), spec("tor2")]);
        next.adopt(&running);
        assert!(
            next.slots().iter().all(|s| s.table().is_empty()),
            "other names"
        );
        let next = ListStore::new(&[spec("gone")]);
        next.adopt(&running);
        assert_eq!(next.slots()[0].table().len(), 1);
        assert_eq!(next.slots()[0].state().source, Source::Redis);
    }
}
