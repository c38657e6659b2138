//! `ecld bench all`: runs real benchmarks one after another, each writing its section of the
//! given file, and names the ones that cannot run without stopping the others.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::process::Command;

use crate::e2e_stack::{ecld_bin, programs_dir, repo_root};

#[test]
fn bench_all_quick_writes_the_sections_that_ran_and_names_a_missing_bench_binary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("BENCHMARKS.md");
    // No bench binaries here: `crypto` cannot run; `e2e` is this ecld and runs.
    let no_binaries = dir.path().join("bin");
    std::fs::create_dir(&no_binaries).unwrap();
    let o = Command::new(ecld_bin())
        .current_dir(repo_root())
        .args(["bench", "all", "--quick", "--only", "crypto,e2e", "--bin-dir"])
        .arg(&no_binaries)
        .arg("--write")
        .arg(&out)
        .env("ECLD_PROGRAMS", programs_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a failed benchmark must fail the run\n{stdout}\n{stderr}");
    assert!(stderr.contains("1 of 2 benchmarks failed: crypto"), "{stderr}");

    // The summary: a row per benchmark, the failure with its cause and its remedy.
    assert!(stdout.contains("| e2e | End to end | – | ok |"), "{stdout}\n{stderr}");
    let crypto = stdout.lines().find(|l| l.starts_with("| crypto |")).expect(&stdout);
    assert!(crypto.contains("**FAILED**") && crypto.contains("ecld-crypto-bench is missing"));
    assert!(crypto.contains("scripts/bench"), "{crypto}");
    assert!(stdout.contains("1 of 2 benchmarks wrote their section of"), "{stdout}");

    // The file: a new one holding the section of the benchmark that ran, with its figures,
    // first the run that produced it (the one the summary names), then its goals.
    let doc = std::fs::read_to_string(&out).unwrap();
    assert!(doc.starts_with("# Benchmarks\n\n## End to end\n\nRun "), "{doc}");
    let run = doc.lines().nth(4).unwrap();
    assert!(run.contains(": `ecld bench all --quick --only crypto,e2e "), "{run}");
    assert!(run.contains("; commit ") && run.contains(" cores, "), "{run}");
    assert!(stdout.contains(&run[..run.find(':').unwrap()]), "{stdout}");
    assert!(doc.contains("| **total** |") && doc.contains("tasks/s**"), "{doc}");
    assert!(doc.contains("| goal | target | this run | met? |"), "{doc}");
    assert!(!doc.contains("## Crypto"), "{doc}");
}
