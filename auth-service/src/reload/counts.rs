//! `ipcheck_config_reloads_total{result}` and `ipcheck_config_last_reload_success_timestamp_seconds`,
//! named as Prometheus names its own, so the same alert rules fit.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::exposition::{header, Kind};

/// Reload outcomes and when the running configuration was last loaded.
#[derive(Debug)]
pub struct ReloadCounts {
    ok: AtomicU64,
    error: AtomicU64,
    last_success: AtomicU64,
}

impl Default for ReloadCounts {
    /// The start is the first successful load, as in Prometheus: the timestamp is never 0.
    fn default() -> Self {
        ReloadCounts {
            ok: AtomicU64::new(0),
            error: AtomicU64::new(0),
            last_success: AtomicU64::new(unix_now()),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ReloadCounts {
    /// A reload that took effect.
    pub fn succeeded(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        self.last_success.store(unix_now(), Ordering::Relaxed);
    }

    /// A reload refused; the previous configuration still runs.
    pub fn failed(&self) {
        self.error.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus exposition.
    pub fn render(&self, out: &mut String) {
        header(out, "ipcheck_config_reloads_total", "Configuration reloads (SIGHUP), by result; on error the previous configuration still runs.", Kind::Counter);
        for (result, count) in [("ok", &self.ok), ("error", &self.error)] {
            let _ = writeln!(
                out,
                "ipcheck_config_reloads_total{{result=\"{result}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "ipcheck_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (start or SIGHUP), Unix seconds.",
            Kind::Gauge,
        );
        let _ = writeln!(
            out,
            "ipcheck_config_last_reload_success_timestamp_seconds {}",
            self.last_success.load(Ordering::Relaxed)
        );
    }
}
