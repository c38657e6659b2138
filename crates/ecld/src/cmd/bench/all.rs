//! `ecld bench all`: every benchmark of the project in turn, each rewriting its section of one
//! Markdown file (docs/BENCHMARKS.md), then a summary table. The benches of other crates are
//! their bench binaries, run from the directory this `ecld` was built in; `ecld bench e2e`
//! and `ecld bench node` run as child processes of this binary, so every bench has its own
//! process, its own failure and its own exit status.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use ecld_benchkit::{BENCHMARKS_FILE_ENV, Provenance, provenance::RUN_ENV};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

/// How to build what `ecld bench all` runs, with the profile docs/BENCHMARKS.md states.
pub(super) const BUILD_HINT: &str = "build the bench binaries with `scripts/bench` (or \
    `cargo build --workspace --bins --features ecld-contracts/bench`, then \
    `scripts/build-programs`)";

/// Arguments of `ecld bench all`.
#[derive(Debug, clap::Args)]
pub(super) struct AllArgs {
    /// Small sizes and one run each: checks that every benchmark runs end to end. The
    /// figures mean nothing, so `--write` must name a file.
    #[arg(long)]
    quick: bool,
    /// Markdown file whose sections the benchmarks rewrite [default: docs/BENCHMARKS.md; with
    /// `--quick`, required].
    #[arg(long)]
    write: Option<PathBuf>,
    /// Run only these benchmarks (comma-separated names, see `--list`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Do not run these benchmarks (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Directory of the bench binaries [default: the directory of this `ecld`].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// List the benchmarks (name, section, peer) and exit.
    #[arg(long)]
    list: bool,
}

/// What runs a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    /// A bench binary of another crate, next to `ecld` in the target directory.
    Sibling(&'static str),
    /// `ecld bench <sub>` (takes `--write FILE`).
    Ecld(&'static str),
    /// The web page's benchmark: `web/bench` or the `bench` script of web/package.json,
    /// when there is one.
    Web,
}

/// One benchmark of the project.
#[derive(Debug)]
struct Bench {
    name: &'static str,
    /// The heading of the section it writes.
    section: &'static str,
    /// What it is compared with in the same run.
    peers: &'static str,
    program: Program,
    /// Arguments for the figures of docs/BENCHMARKS.md (each bench's defaults).
    full: &'static [&'static str],
    /// Arguments of `--quick`.
    quick: &'static [&'static str],
}

/// Every benchmark, in the order they run.
const BENCHES: &[Bench] = &[
    Bench {
        name: "crypto",
        section: "## Crypto",
        peers: "–",
        program: Program::Sibling("ecld-crypto-bench"),
        full: &[],
        quick: &["16", "1"],
    },
    Bench {
        name: "store",
        section: "## Store",
        peers: "js-ipfs daemon",
        program: Program::Sibling("ecld-store-bench"),
        full: &[],
        quick: &["16", "1"],
    },
    Bench {
        name: "cas",
        section: "## CAS",
        peers: "–",
        program: Program::Sibling("ecld-cas-bench"),
        full: &[],
        quick: &["--n", "16", "--rounds", "1"],
    },
    Bench {
        name: "gas",
        section: "## Chain gas",
        peers: "hardhat node",
        program: Program::Sibling("ecld-contracts-bench"),
        full: &[],
        quick: &[],
    },
    Bench {
        name: "devnet",
        section: "## Devnet",
        peers: "hardhat node",
        program: Program::Sibling("devnet-bench"),
        full: &[],
        quick: &["40", "1", "2"],
    },
    Bench {
        name: "enclave",
        section: "## Enclave",
        peers: "native",
        program: Program::Sibling("ecld-enclave-bench"),
        full: &[],
        quick: &["20", "1000000"],
    },
    Bench {
        name: "runners",
        section: "## Runners",
        peers: "CPython, Node.js",
        program: Program::Sibling("ecld-runner-bench"),
        full: &[],
        // TASKS, CPU_RUNS, then the sieve sizes of the Python and JavaScript comparison.
        quick: &["1", "1", "100000", "100000"],
    },
    Bench {
        name: "node",
        section: "## Node",
        peers: "–",
        program: Program::Ecld("node"),
        full: &[],
        quick: &["--tasks", "8", "--runs", "1"],
    },
    Bench {
        name: "e2e",
        section: "## End to end",
        peers: "–",
        program: Program::Ecld("e2e"),
        full: &[],
        quick: &["--tasks", "5", "--clients", "2", "--throughput-tasks", "10"],
    },
    Bench {
        name: "web",
        section: "## Web",
        peers: "–",
        program: Program::Web,
        full: &[],
        quick: &[],
    },
];

/// How one benchmark ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed(String),
    Skipped(String),
}

/// What the benchmarks share: where they write, where the binaries are, quick or not.
#[derive(Debug)]
struct Run {
    out: PathBuf,
    bin_dir: PathBuf,
    ecld: PathBuf,
    quick: bool,
}

/// Runs `ecld bench all`.
pub(super) async fn run(a: AllArgs) -> anyhow::Result<()> {
    let selected = select(&a.only, &a.skip)?;
    if a.list {
        for b in &selected {
            println!("{:<8} {:<14} compared with {}", b.name, b.section, b.peers);
        }
        return Ok(());
    }
    let out = match (&a.write, a.quick) {
        (Some(w), _) => w.clone(),
        (None, false) => PathBuf::from("docs/BENCHMARKS.md"),
        (None, true) => bail!(
            "--quick figures mean nothing and would replace those of docs/BENCHMARKS.md: \
             give --write FILE"
        ),
    };
    let out = absolute(&out)?;
    let ecld = std::env::current_exe().context("cannot find the path of this ecld binary")?;
    let bin_dir = match a.bin_dir {
        Some(d) => d,
        None => ecld.parent().context("this ecld binary has no directory")?.to_owned(),
    };
    let command = std::iter::once("ecld".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let provenance =
        Provenance::starting_now(command, out.parent().unwrap_or_else(|| Path::new(".")));
    let r = Run { out, bin_dir, ecld, quick: a.quick };
    eprintln!(
        "bench all: {} benchmark(s){} writing {}; {}",
        selected.len(),
        if r.quick { " (quick)" } else { "" },
        r.out.display(),
        provenance.line()
    );

    let mut results = Vec::new();
    for b in selected {
        eprintln!("bench all: ── {} ──", b.name);
        let started = Instant::now();
        let outcome = run_one(b, &r, &provenance.for_bench_starting_now().line()).await;
        let took = started.elapsed();
        match &outcome {
            Outcome::Ok => eprintln!("bench all: {} done in {:.1} s", b.name, took.as_secs_f64()),
            Outcome::Failed(why) => eprintln!("bench all: {} FAILED: {why}", b.name),
            Outcome::Skipped(why) => eprintln!("bench all: {} skipped: {why}", b.name),
        }
        results.push((b, outcome, took));
    }
    print!("{}", summary(&provenance.line(), &r, &results));
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, o, _)| matches!(o, Outcome::Failed(_)))
        .map(|(b, _, _)| b.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} benchmarks failed: {} (see the table and the logs above)",
            failed.len(),
            results.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// The benchmarks `--only` and `--skip` leave, in run order.
fn select(only: &[String], skip: &[String]) -> anyhow::Result<Vec<&'static Bench>> {
    let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
    if let Some(unknown) = only.iter().chain(skip).find(|n| !names.contains(&n.as_str())) {
        bail!("no benchmark is called `{unknown}`; the benchmarks are: {}", names.join(", "));
    }
    Ok(BENCHES
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|n| n == b.name))
        .filter(|b| !skip.iter().any(|n| n == b.name))
        .collect())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    let path =
        if path.is_absolute() { path.to_owned() } else { std::env::current_dir()?.join(path) };
    let dir = path.parent().context("--write names no file")?;
    if !dir.is_dir() {
        bail!(
            "{} does not exist: run `ecld bench all` from the repository root or give --write",
            dir.display()
        );
    }
    Ok(path)
}

/// The command that runs benchmark `b` for the run whose provenance line is `line`, or why it
/// cannot run.
fn command(b: &Bench, r: &Run, line: &str) -> Result<tokio::process::Command, Outcome> {
    let args = if r.quick { b.quick } else { b.full };
    let mut cmd = match b.program {
        Program::Sibling(name) => {
            let path = r.bin_dir.join(name);
            if !path.is_file() {
                return Err(Outcome::Failed(format!(
                    "{} is missing: {BUILD_HINT}",
                    path.display()
                )));
            }
            let mut cmd = tokio::process::Command::new(path);
            cmd.args(args);
            cmd
        }
        Program::Ecld(sub) => {
            let mut cmd = tokio::process::Command::new(&r.ecld);
            cmd.args(["bench", sub]).args(args).arg("--write").arg(&r.out);
            cmd
        }
        Program::Web => {
            let script = Path::new("web/bench");
            let mut cmd = if script.is_file() {
                tokio::process::Command::new(script.canonicalize().map_err(|e| {
                    Outcome::Failed(format!("cannot resolve {}: {e}", script.display()))
                })?)
            } else if has_npm_bench_script(Path::new("web/package.json")) {
                let mut cmd = tokio::process::Command::new("npm");
                cmd.args(["run", "--silent", "bench"]);
                cmd
            } else {
                return Err(Outcome::Skipped(
                    "no web/bench and no `bench` script in web/package.json".into(),
                ));
            };
            cmd.current_dir("web");
            if r.quick {
                cmd.env("ECLD_BENCH_QUICK", "1");
            }
            cmd
        }
    };
    cmd.env(BENCHMARKS_FILE_ENV, &r.out)
        .env(RUN_ENV, line)
        .env("ECLD_BIN", &r.ecld)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    Ok(cmd)
}

fn has_npm_bench_script(package_json: &Path) -> bool {
    std::fs::read(package_json)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["scripts"]["bench"].is_string())
}

/// Runs benchmark `b` to its end; its output goes to stderr, each line under its name. The
/// section it rewrote starts with `line`, the provenance of this run (the benches written with
/// `ecld_benchkit::write_section` put it there themselves; others get it here).
async fn run_one(b: &Bench, r: &Run, line: &str) -> Outcome {
    let section_now = || {
        let doc = std::fs::read_to_string(&r.out).unwrap_or_default();
        ecld_benchkit::find_section(&doc, b.section).map(str::to_owned)
    };
    let before = section_now();
    let mut cmd = match command(b, r, line) {
        Ok(cmd) => cmd,
        Err(outcome) => return outcome,
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot start: {e}")),
    };
    let stdout = child.stdout.take().map(|s| tokio::spawn(forward(b.name, s)));
    let stderr = child.stderr.take().map(|s| tokio::spawn(forward(b.name, s)));
    let status = child.wait().await;
    let mut tail = VecDeque::new();
    for task in [stdout, stderr].into_iter().flatten() {
        if let Ok(lines) = task.await {
            tail.extend(lines);
        }
    }
    match status {
        Err(e) => Outcome::Failed(format!("lost the process: {e}")),
        Ok(s) if !s.success() => Outcome::Failed(failure_reason(&s.to_string(), &tail)),
        Ok(_) => match section_now() {
            None => Outcome::Failed(format!(
                "exited successfully but {} has no `{}` section",
                r.out.display(),
                b.section
            )),
            Some(after) if Some(&after) == before.as_ref() => Outcome::Failed(format!(
                "exited successfully but did not rewrite the `{}` section of {}",
                b.section,
                r.out.display()
            )),
            Some(_) => match ecld_benchkit::stamp_section(&r.out, b.section, line) {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Failed(format!("cannot mark its section with this run: {e}")),
            },
        },
    }
}

/// Copies each line of `from` to stderr as `[name] line`; returns the last lines (enough to
/// hold an error with its causes and a backtrace).
async fn forward(name: &'static str, from: impl AsyncRead + Unpin) -> VecDeque<String> {
    const KEEP: usize = 500;
    let mut lines = BufReader::new(from).lines();
    let mut tail = VecDeque::with_capacity(KEEP);
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{name}] {line}");
        if tail.len() == KEEP {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail
}

/// Why a bench failed, from its exit status and its last lines: the last error it reported
/// (`Error: …` and its `Caused by:` lines from a `main` returning an error, or a panic and its
/// message), else its last line.
fn failure_reason(status: &str, lines: &VecDeque<String>) -> String {
    let lines: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    let error = lines.iter().rposition(|l| l.starts_with("Error:") || l.contains("panicked at"));
    let said = match error {
        Some(at) if lines[at].contains("panicked at") => {
            // The message is on the line after `thread '…' panicked at file:line:col:`.
            match lines.get(at + 1).filter(|m| !m.trim().is_empty()) {
                Some(message) => format!("{}: {}", lines[at].trim(), message.trim()),
                None => lines[at].trim().to_owned(),
            }
        }
        Some(at) => {
            let rest = lines[at + 1..].iter().skip_while(|l| l.is_empty());
            let mut rest = rest.peekable();
            let mut said = lines[at].to_owned();
            if rest.peek() == Some(&&"Caused by:") {
                for cause in rest.skip(1).take_while(|l| l.starts_with(' ')) {
                    // `    0: cause` when there are several, `    cause` when one.
                    let cause = cause.trim();
                    let text = cause
                        .split_once(": ")
                        .filter(|(n, _)| n.parse::<u32>().is_ok())
                        .map_or(cause, |(_, c)| c);
                    said.push_str(": ");
                    said.push_str(text);
                }
            }
            said
        }
        None => match lines.iter().rev().find(|l| !l.trim().is_empty()) {
            Some(last) => last.trim().to_owned(),
            None => return format!("{status}, with no output"),
        },
    };
    format!("{said} ({status})")
}

/// The table printed at the end: one row a benchmark, under the run's provenance line.
fn summary(run: &str, r: &Run, results: &[(&Bench, Outcome, Duration)]) -> String {
    let mut s = format!(
        "\n{run}{}\n\n| bench | section | compared with | result | time s |\n\
         | --- | --- | --- | --- | ---: |\n",
        if r.quick { " Quick run: the figures mean nothing." } else { "" }
    );
    for (b, outcome, took) in results {
        let result = match outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Failed(why) => format!("**FAILED**: {}", why.replace('|', "\\|")),
            Outcome::Skipped(why) => format!("skipped: {why}"),
        };
        let section = b.section.trim_start_matches("## ");
        let _ = writeln!(
            s,
            "| {} | {section} | {} | {result} | {:.1} |",
            b.name,
            b.peers,
            took.as_secs_f64()
        );
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|(_, o, _)| f(o)).count();
    let _ = writeln!(
        s,
        "\n{} of {} benchmarks wrote their section of {} ({} failed, {} skipped).",
        count(|o| *o == Outcome::Ok),
        results.len(),
        r.out.display(),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_))),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "Run 2026-11-28T10:42:07Z: `ecld bench all`; commit 49814eb1c2; m.";

    fn run_in(bin_dir: &Path, out: &Path) -> Run {
        Run {
            out: out.to_owned(),
            bin_dir: bin_dir.to_owned(),
            ecld: bin_dir.join("ecld"),
            quick: true,
        }
    }

    #[test]
    fn names_and_sections_are_unique_and_cover_the_project() {
        let names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let sections: Vec<&str> = BENCHES.iter().map(|b| b.section).collect();
        for heading in [
            "## Store",
            "## Chain gas",
            "## Enclave",
            "## Devnet",
            "## Crypto",
            "## Runners",
            "## Node",
            "## CAS",
            "## End to end",
            "## Web",
        ] {
            assert!(sections.contains(&heading), "no benchmark writes {heading}");
        }
    }

    #[test]
    fn only_and_skip_select_in_run_order_and_reject_unknown_names() {
        let names = |v: Vec<&Bench>| v.iter().map(|b| b.name).collect::<Vec<_>>();
        let s = select(&["e2e".into(), "crypto".into()], &[]).unwrap();
        assert_eq!(names(s), ["crypto", "e2e"]);
        let s = select(&[], &["web".into(), "runners".into()]).unwrap();
        assert_eq!(s.len(), BENCHES.len() - 2);
        let err = select(&["crypt".into()], &[]).unwrap_err().to_string();
        assert!(err.contains("`crypt`") && err.contains("crypto, store"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_bench_binary_fails_naming_it_and_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let r = run_in(dir.path(), &dir.path().join("B.md"));
        let crypto = BENCHES.iter().find(|b| b.name == "crypto").unwrap();
        let Outcome::Failed(why) = run_one(crypto, &r, LINE).await else { panic!("not a failure") };
        assert!(why.contains("ecld-crypto-bench is missing"), "{why}");
        assert!(why.contains("scripts/bench") && why.contains("cargo build"), "{why}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_failing_bench_reports_its_error_and_one_that_writes_nothing_fails() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("B.md");
        let r = run_in(dir.path(), &out);
        let crypto = BENCHES.iter().find(|b| b.name == "crypto").unwrap();
        let bin = dir.path().join("ecld-crypto-bench");
        let script = |body: &str| {
            std::fs::write(&bin, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        };

        script("echo working; echo 'Error: hardhat node did not start in 90 s' >&2; exit 3");
        let Outcome::Failed(why) = run_one(crypto, &r, LINE).await else { panic!("not a failure") };
        assert_eq!(why, "Error: hardhat node did not start in 90 s (exit status: 3)");

        script("echo 'figures on stdout only'");
        let Outcome::Failed(why) = run_one(crypto, &r, LINE).await else { panic!("not a failure") };
        assert!(why.contains("has no `## Crypto` section"), "{why}");

        // The bench is told where to write, which run it is part of (and given the quick
        // arguments); its section is marked with the run.
        script(&format!(
            "printf '# Benchmarks\\n\\n## Crypto\\n\\nargs %s; run %s\\n' \"$*\" \"${RUN_ENV}\" > \"${BENCHMARKS_FILE_ENV}\""
        ));
        assert_eq!(run_one(crypto, &r, LINE).await, Outcome::Ok);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            format!("# Benchmarks\n\n## Crypto\n\n{LINE}\n\nargs 16 1; run {LINE}\n")
        );

        // A bench that leaves its old section as it was did not produce it.
        script("true");
        let Outcome::Failed(why) = run_one(crypto, &r, LINE).await else { panic!("not a failure") };
        assert!(why.contains("did not rewrite the `## Crypto` section"), "{why}");
    }

    #[test]
    fn an_error_is_reported_with_its_causes_and_without_its_backtrace() {
        let lines: VecDeque<String> = [
            "run 1/1 ecld-devnet: 2000 tx/s",
            "Error: start hardhat node",
            "",
            "Caused by:",
            "    0: hardhat node did not answer",
            "    1: connection refused (os error 111)",
            "",
            "Stack backtrace:",
            "   0: std::backtrace::Backtrace::capture",
            "  19: _start",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            failure_reason("exit status: 1", &lines),
            "Error: start hardhat node: hardhat node did not answer: connection refused (os \
             error 111) (exit status: 1)"
        );
        let one: VecDeque<String> =
            ["Error: no bytecode", "", "Caused by:", "    missing field"].map(String::from).into();
        assert_eq!(
            failure_reason("exit status: 1", &one),
            "Error: no bytecode: missing field (exit status: 1)"
        );
        let last: VecDeque<String> = ["working", "out of disk", ""].map(String::from).into();
        assert_eq!(failure_reason("exit status: 2", &last), "out of disk (exit status: 2)");
    }

    #[test]
    fn a_panic_is_reported_with_its_message() {
        let tail: VecDeque<String> = [
            "working",
            "thread 'main' panicked at crates/ecld-store/src/bin/ecld-store-bench.rs:88:9:",
            "called `Result::unwrap()` on an `Err` value: Os { code: 2 }",
            "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        ]
        .map(String::from)
        .into();
        let why = failure_reason("exit status: 101", &tail);
        assert!(why.starts_with("thread 'main' panicked at crates/ecld-store"), "{why}");
        assert!(why.contains("Os { code: 2 }") && why.ends_with("(exit status: 101)"), "{why}");
        assert_eq!(failure_reason("signal: 9", &VecDeque::new()), "signal: 9, with no output");
    }

    #[test]
    fn the_summary_has_a_row_per_benchmark() {
        let r = run_in(Path::new("/t"), Path::new("/t/B.md"));
        let [crypto, devnet, web] =
            ["crypto", "devnet", "web"].map(|n| BENCHES.iter().find(|b| b.name == n).unwrap());
        let s = summary(
            LINE,
            &r,
            &[
                (crypto, Outcome::Ok, Duration::from_millis(4100)),
                (devnet, Outcome::Failed("a | b".into()), Duration::from_secs(30)),
                (web, Outcome::Skipped("no web/bench".into()), Duration::ZERO),
            ],
        );
        assert!(s.starts_with(&format!("\n{LINE} Quick run")), "{s}");
        assert!(s.contains("| crypto | Crypto | – | ok | 4.1 |\n"), "{s}");
        assert!(
            s.contains("| devnet | Devnet | hardhat node | **FAILED**: a \\| b | 30.0 |\n"),
            "{s}"
        );
        assert!(s.contains("| web | Web | – | skipped: no web/bench | 0.0 |\n"), "{s}");
        assert!(
            s.contains("1 of 3 benchmarks wrote their section of /t/B.md (1 failed, 1 skipped)."),
            "{s}"
        );
    }
}
