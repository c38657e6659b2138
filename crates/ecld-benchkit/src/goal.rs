//! The goals a section is measured against, each marked met or missed with its figure.

use std::fmt::Write as _;

/// Whether a measured figure reaches its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The figure reaches the goal.
    Met,
    /// The figure misses the goal.
    Missed,
    /// This run did not measure it (a peer was absent, or a smaller size than the goal's).
    NotMeasured,
}

/// One goal of a section and what this run measured for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// What is measured, `add, 1024 MiB through the HTTP API`.
    pub what: String,
    /// The goal, `≥ 500 MB/s`.
    pub target: String,
    /// The figure this run measured, `804 MB/s`, or why there is none.
    pub measured: String,
    /// Met, missed or not measured.
    pub verdict: Verdict,
}

impl Goal {
    /// A goal of at least `min` (in `unit`) for a figure `value`.
    #[must_use]
    pub fn at_least(what: impl Into<String>, value: f64, min: f64, unit: &str) -> Self {
        Self::compare(what, value, min, unit, "≥", value >= min)
    }

    /// A goal of at most `max` (in `unit`) for a figure `value`.
    #[must_use]
    pub fn at_most(what: impl Into<String>, value: f64, max: f64, unit: &str) -> Self {
        Self::compare(what, value, max, unit, "≤", value <= max)
    }

    /// A goal this run could not measure, and why.
    #[must_use]
    pub fn not_measured(what: impl Into<String>, target: impl Into<String>, why: &str) -> Self {
        Self {
            what: what.into(),
            target: target.into(),
            measured: why.to_owned(),
            verdict: Verdict::NotMeasured,
        }
    }

    fn compare(
        what: impl Into<String>,
        value: f64,
        bound: f64,
        unit: &str,
        op: &str,
        met: bool,
    ) -> Self {
        let sep = if unit.is_empty() || unit.starts_with('×') { "" } else { " " };
        Self {
            what: what.into(),
            target: format!("{op} {}{sep}{unit}", figure(bound)),
            measured: format!("{}{sep}{unit}", figure(value)),
            verdict: if met { Verdict::Met } else { Verdict::Missed },
        }
    }
}

/// A figure to three significant digits, whole numbers of 100 and more in full: `183384`,
/// `101`, `23.1`, `3.7`, `0.304`.
fn figure(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        return format!("{v:.0}");
    }
    // Digits before the point: 1 for 1..10, 2 for 10..100, 0 below 1 (then 3 decimals).
    let whole = if a >= 10.0 { 2 } else { usize::from(a >= 1.0) };
    let text = format!("{:.*}", 3 - whole, v);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The goals of a section as a table, each marked `met`, `**MISSED**` or `not measured`,
/// followed by a blank line.
#[must_use]
pub fn goals_table(goals: &[Goal]) -> String {
    let mut s = String::from("| goal | target | this run | met? |\n| --- | --- | ---: | --- |\n");
    for g in goals {
        let verdict = match g.verdict {
            Verdict::Met => "met",
            Verdict::Missed => "**MISSED**",
            Verdict::NotMeasured => "not measured",
        };
        let _ = writeln!(s, "| {} | {} | {} | {verdict} |", g.what, g.target, g.measured);
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_are_marked_met_missed_or_not_measured_with_the_figure() {
        let goals = [
            Goal::at_least("throughput, 16 clients", 101.3, 200.0, "tasks/s"),
            Goal::at_most("latency p50", 23.14, 150.0, "ms"),
            Goal::at_most("wasm / native", 0.99, 1.5, "×"),
            Goal::at_least("devnet / hardhat", 3.7, 3.0, "×"),
            Goal::not_measured("add, 1 GiB", "≥ 500 MB/s", "run on 16 MiB"),
        ];
        assert_eq!(
            goals_table(&goals),
            "| goal | target | this run | met? |\n| --- | --- | ---: | --- |\n\
             | throughput, 16 clients | ≥ 200 tasks/s | 101 tasks/s | **MISSED** |\n\
             | latency p50 | ≤ 150 ms | 23.1 ms | met |\n\
             | wasm / native | ≤ 1.5× | 0.99× | met |\n\
             | devnet / hardhat | ≥ 3× | 3.7× | met |\n\
             | add, 1 GiB | ≥ 500 MB/s | run on 16 MiB | not measured |\n\n"
        );
    }

    #[test]
    fn a_figure_on_the_bound_meets_it() {
        assert_eq!(Goal::at_most("gas", 200_000.0, 200_000.0, "gas").verdict, Verdict::Met);
        assert_eq!(Goal::at_least("x", 499.9, 500.0, "MB/s").verdict, Verdict::Missed);
    }
}
