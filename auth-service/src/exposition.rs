//! Writing Prometheus text exposition: one place for the shape of a metric family, so the
//! hand-rolled renderers (see bench/README.md "Why the metrics are hand-rolled") cannot drift.

use std::fmt::Write as _;

/// Appends a counter family with one label: its `# HELP` and `# TYPE` lines, then
/// `name{label="value"} count` per row, in the order given.
pub fn counter_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    rows: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
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
