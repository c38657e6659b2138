//! Which run produced a section: the line every section of docs/BENCHMARKS.md starts with, so
//! a file whose sections come from several runs says so section by section.

use std::{path::Path, process::Command};

use crate::{Machine, load_average};

/// The environment variable through which `ecld bench all` gives every bench it runs the
/// provenance line of its section, so that all sections of one run name the same run.
pub const RUN_ENV: &str = "ECLD_BENCH_RUN";

/// What a provenance line starts with; a section's first paragraph that starts so is its
/// provenance, replaced when the section is written again.
pub const PREFIX: &str = "Run ";

/// Where a section's figures come from: the run (its start, UTC, which is also its id), the
/// command, the commit of the tree it ran in and the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// When the run started, UTC, `2026-11-28T10:42:07Z`: the run's id.
    pub run: String,
    /// What was run: `ecld bench all --only store,e2e`, or a bench binary and its arguments.
    pub command: String,
    /// When the section's own bench started, `10:43:12Z`, and the 1-minute load average then,
    /// when it differs from the start of the run (one of several benches of a run).
    pub bench_started: Option<(String, Option<String>)>,
    /// `49814eb1c2`, `49814eb1c2 with uncommitted changes`, or `unknown (not a git work tree)`.
    pub commit: String,
    /// [`Machine::describe`].
    pub machine: String,
    /// The 1-minute load average when the run started.
    pub load: Option<String>,
}

impl Provenance {
    /// A run of `command` starting now, in the git work tree that holds `dir` (or else the
    /// current directory), on this machine.
    #[must_use]
    pub fn starting_now(command: String, dir: &Path) -> Self {
        Self {
            run: utc_now(),
            command,
            bench_started: None,
            commit: commit(dir),
            machine: Machine::detect().describe(),
            load: load_average(),
        }
    }

    /// The same run, for the section of a bench that starts now.
    #[must_use]
    pub fn for_bench_starting_now(&self) -> Self {
        let time = utc_now();
        let time = time.split_once('T').map_or(time.as_str(), |(_, t)| t).to_owned();
        Self { bench_started: Some((time, load_average())), ..self.clone() }
    }

    /// The provenance line: `Run 2026-11-28T10:42:07Z: `…` (this bench from 10:43:12Z, load
    /// average 2.71); commit 49814eb1c2; 2 cores, …`.
    #[must_use]
    pub fn line(&self) -> String {
        let when = match &self.bench_started {
            Some((time, load)) => format!(
                " (this section's bench from {time}{})",
                load.as_ref().map_or_else(String::new, |l| format!(", load average {l}"))
            ),
            None => self.load.as_ref().map_or_else(String::new, |l| format!(" (load average {l})")),
        };
        format!(
            "{PREFIX}{}: `{}`{when}; commit {}; {}.",
            self.run, self.command, self.commit, self.machine
        )
    }
}

/// The provenance line for a section written now to `file` by this process: the one
/// `ecld bench all` handed down in [`RUN_ENV`], otherwise this process as a run of its own
/// (its program name and arguments, the load average at the time of writing).
#[must_use]
pub fn current_line(file: &Path) -> String {
    match std::env::var(RUN_ENV) {
        Ok(line) if line.starts_with(PREFIX) => line,
        _ => {
            let mut args = std::env::args();
            let program = args
                .next()
                .map(|p| {
                    Path::new(&p)
                        .file_name()
                        .map_or_else(|| p.clone(), |n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            let command = std::iter::once(program).chain(args).collect::<Vec<_>>().join(" ");
            let dir = file.parent().unwrap_or_else(|| Path::new("."));
            Provenance::starting_now(command, dir).line()
        }
    }
}

/// `section` (heading line first, or not) with `line` as its first paragraph after the
/// heading, in place of the provenance paragraph it had.
#[must_use]
pub fn stamp(heading: &str, section: &str, line: &str) -> String {
    let body = section.trim_start_matches('\n');
    let body = match body.split_once('\n') {
        Some((first, rest)) if first.trim_end() == heading => rest,
        None if body.trim_end() == heading => "",
        _ => body,
    };
    let body = body.trim_start_matches('\n');
    let body = if body.starts_with(PREFIX) {
        body.split_once("\n\n").map_or("", |(_, rest)| rest)
    } else {
        body
    };
    format!("{heading}\n\n{line}\n\n{}", body.trim_start_matches('\n'))
}

/// The provenance line of a section (heading line first), if it has one.
#[must_use]
pub fn line_of(section: &str) -> Option<&str> {
    let body = section.split_once('\n')?.1.trim_start_matches('\n');
    body.starts_with(PREFIX).then(|| body.lines().next().unwrap_or(body))
}

/// `git rev-parse --short=10 HEAD`, and whether tracked files differ from it, in the work tree
/// that holds `dir`, or else in the current directory.
fn commit(dir: &Path) -> String {
    let git = |dir: &Path, args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let here = Path::new(".");
    for dir in [dir, here] {
        if let Some(head) = git(dir, &["rev-parse", "--short=10", "HEAD"]) {
            let dirty = git(dir, &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            return if dirty { format!("{head} with uncommitted changes") } else { head };
        }
    }
    "unknown (not a git work tree)".to_owned()
}

/// Now, UTC, to the second: `2026-11-28T10:42:07Z`.
#[must_use]
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

fn utc(secs: u64) -> String {
    let (y, m, d) = crate::civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Provenance {
        Provenance {
            run: "2026-11-28T10:42:07Z".into(),
            command: "ecld bench all --only store".into(),
            bench_started: None,
            commit: "49814eb1c2".into(),
            machine: "2 cores, AMD EPYC".into(),
            load: Some("1.50".into()),
        }
    }

    #[test]
    fn a_line_names_run_command_commit_and_machine() {
        assert_eq!(
            run().line(),
            "Run 2026-11-28T10:42:07Z: `ecld bench all --only store` (load average 1.50); \
             commit 49814eb1c2; 2 cores, AMD EPYC."
        );
        let bench =
            Provenance { bench_started: Some(("10:43:12Z".into(), Some("2.71".into()))), ..run() };
        assert_eq!(
            bench.line(),
            "Run 2026-11-28T10:42:07Z: `ecld bench all --only store` (this section's bench from \
             10:43:12Z, load average 2.71); commit 49814eb1c2; 2 cores, AMD EPYC."
        );
        let later = run().for_bench_starting_now();
        assert_eq!(later.run, run().run, "a bench of a run keeps the run's id");
        assert!(later.line().contains("this section's bench from "), "{}", later.line());
    }

    #[test]
    fn stamping_puts_the_line_first_and_replaces_an_older_one() {
        let line = run().line();
        let fresh = stamp("## Store", "## Store\n\nfigures\n", &line);
        assert_eq!(fresh, format!("## Store\n\n{line}\n\nfigures\n"));
        assert_eq!(line_of(&fresh), Some(line.as_str()));
        let old = "## Store\n\nRun 2026-01-01T00:00:00Z: `x`; commit a; m.\n\nold figures\n";
        let again = stamp("## Store", old, &line);
        assert_eq!(again, format!("## Store\n\n{line}\n\nold figures\n"));
        assert_eq!(stamp("## Store", &again, &line), again, "stamping twice changes nothing");
        // Text without its heading, and a section that is only a heading.
        assert_eq!(stamp("## Web", "page\n", &line), format!("## Web\n\n{line}\n\npage\n"));
        assert_eq!(stamp("## Web", "## Web", &line), format!("## Web\n\n{line}\n\n"));
        assert_eq!(line_of("## Store\n\nfigures"), None);
    }

    #[test]
    fn utc_times_are_calendar_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(20_784 * 86_400 + 10 * 3600 + 42 * 60 + 7), "2026-11-27T10:42:07Z");
        assert!(utc_now().ends_with('Z') && utc_now().len() == 20);
    }

    #[test]
    fn the_commit_is_read_from_the_work_tree() {
        let c = commit(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(
            c.starts_with("unknown") || c.split(' ').next().is_some_and(|h| h.len() == 10),
            "{c}"
        );
    }
}
