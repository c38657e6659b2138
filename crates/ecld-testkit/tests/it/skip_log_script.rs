//! `scripts/skip-log`, which the shell and Node.js tests record skips with and whose summary
//! closes `scripts/test`: it lists every skip, and under CI a skip fails the run.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn skip_log(log: &Path, ci: Option<&str>, args: &[&str]) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/skip-log");
    let mut cmd = Command::new("bash");
    cmd.arg(script).args(args).env("ECLD_SKIP_LOG", log).env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn with_nothing_recorded_the_summary_says_0_tests_skipped_and_passes_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skipped.txt");
    for ci in [None, Some("true")] {
        let out = skip_log(&log, ci, &["summary"]);
        assert!(out.status.success(), "CI={ci:?}");
        assert_eq!(stdout(&out), "0 tests skipped\n");
    }
    std::fs::write(&log, "").unwrap();
    assert_eq!(stdout(&skip_log(&log, Some("true"), &["summary"])), "0 tests skipped\n");
}

#[test]
fn recorded_skips_are_listed_and_fail_the_run_under_ci_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("skipped.txt");
    let first = "scripts/test-js (every sdk-js and web test): node (Node.js) is missing; run it";
    assert!(skip_log(&log, None, &["record", first]).status.success());
    let out = skip_log(&log, None, &["summary"]);
    assert_eq!(stdout(&out), format!("1 test skipped:\n  {first}\n"));

    // A line as ecld-testkit writes it, beside the recorded one.
    let second = "ecld-store::it jsipfs::t: js-ipfs is missing; run scripts/setup";
    std::fs::write(&log, format!("{}{second}\n", std::fs::read_to_string(&log).unwrap())).unwrap();
    let outside = skip_log(&log, None, &["summary"]);
    assert!(outside.status.success());
    assert_eq!(stdout(&outside), format!("2 tests skipped:\n  {first}\n  {second}\n"));
    for ci in ["true", "1"] {
        let under_ci = skip_log(&log, Some(ci), &["summary"]);
        assert_eq!(under_ci.status.code(), Some(1), "CI={ci}");
        assert_eq!(stdout(&under_ci), stdout(&outside), "the list is printed under CI too");
        let err = String::from_utf8_lossy(&under_ci.stderr);
        assert!(err.contains("a skipped test is a failure"), "{err}");
    }
}
