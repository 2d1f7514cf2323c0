//! Writing Prometheus text exposition: one place for the shape of a metric family (its `# HELP`
//! and `# TYPE` lines, and one-label counter rows), so the hand-rolled renderers (see
//! bench/README.md "Why the metrics are hand-rolled") cannot drift.

use std::fmt::Write as _;

/// A metric family's type, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, a sum and a count (see [`crate::histogram`]).
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Appends a family's `# HELP` and `# TYPE` lines; its samples follow.
pub fn header(out: &mut String, name: &str, help: &str, kind: Kind) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
}

/// Appends a counter family with one label: its `# HELP` and `# TYPE` lines, then
/// `name{label="value"} count` per row, in the order given.
pub fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) {
    header(out, name, help, Kind::Counter);
    for (value, count) in rows {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_in_exposition_format() {
        let mut out = String::new();
        counter_family(
            &mut out,
            "x_total",
            "Things, by kind.",
            "kind",
            [("a", 1), ("b", 0)],
        );
        assert_eq!(
            out,
            "# HELP x_total Things, by kind.\n# TYPE x_total counter\nx_total{kind=\"a\"} 1\nx_total{kind=\"b\"} 0\n"
        );
    }
}
