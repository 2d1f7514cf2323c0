//! The lists in `/readyz` and `/metrics`.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ListStore, Source};
use crate::exposition::{header, Kind};

impl ListStore {
    /// Whether every list has a copy (from its file or Redis); `/readyz` says degraded if not.
    pub fn all_loaded(&self) -> bool {
        self.slots()
            .iter()
            .all(|s| s.state().source != Source::None)
    }

    /// Waits, at most `limit`, until every list has a copy or a load error (Redis answered or
    /// failed once for each list without a file).
    pub async fn first_attempt(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let pending = || {
            self.slots().iter().any(|s| {
                let st = s.state();
                st.source == Source::None && st.error.is_none()
            })
        };
        while pending() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The `/readyz` line: `lists: tor loaded from redis, 1200 networks, 3s ago; ...`.
    pub fn line(&self) -> String {
        if self.slots().is_empty() {
            return String::new();
        }
        let now = SystemTime::now();
        let parts: Vec<String> = self
            .slots()
            .iter()
            .map(|s| {
                let st = s.state();
                let mut part = match (st.source, st.loaded_at) {
                    (Source::None, _) | (_, None) => format!("{} not loaded", s.spec.name),
                    (source, Some(at)) => format!(
                        "{} loaded from {}, {} networks, {}s ago",
                        s.spec.name,
                        source.as_str(),
                        s.table().len(),
                        now.duration_since(at).map_or(0, |d| d.as_secs())
                    ),
                };
                if let Some(e) = st.error {
                    let _ = write!(part, " (last error: {e})");
                }
                part
            })
            .collect();
        format!("lists: {}\n", parts.join("; "))
    }

    /// `ipcheck_list_networks`, `ipcheck_list_loaded_timestamp_seconds`,
    /// `ipcheck_list_decisions_total`.
    pub fn render(&self, out: &mut String) {
        if self.slots().is_empty() {
            return;
        }
        header(
            out,
            "ipcheck_list_networks",
            "Networks in the service's copy of each list.",
            Kind::Gauge,
        );
        for s in self.slots() {
            let _ = writeln!(
                out,
                "ipcheck_list_networks{{list=\"{}\"}} {}",
                s.spec.name,
                s.table().len()
            );
        }
        header(
            out,
            "ipcheck_list_loaded_timestamp_seconds",
            "When each list's copy was last loaded (0: never).",
            Kind::Gauge,
        );
        for s in self.slots() {
            let at = s
                .state()
                .loaded_at
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            let _ = writeln!(
                out,
                "ipcheck_list_loaded_timestamp_seconds{{list=\"{}\"}} {at:.3}",
                s.spec.name
            );
        }
        header(
            out,
            "ipcheck_list_decisions_total",
            "Decisions a list made before any tier was asked: no Redis read, no provider call.",
            Kind::Counter,
        );
        for s in self.slots() {
            let _ = writeln!(
                out,
                "ipcheck_list_decisions_total{{list=\"{}\"}} {}",
                s.spec.name,
                s.decisions()
            );
        }
    }
}
