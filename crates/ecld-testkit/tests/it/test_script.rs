//! `scripts/test` itself, run in a scratch repository whose every step is a stand-in (setup,
//! preflight, cargo, the demo, test-js): it closes with the skip summary, and under CI a test
//! that recorded a skip fails the run even though every step passed.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn executable(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A scratch repository with the real `scripts/test`, `env.sh` and `skip-log`, and stand-ins
/// for everything they run. `cargo nextest` records one skip when `FAKE_SKIP` is set.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
        for name in ["test", "env.sh", "skip-log"] {
            let to = repo.join("scripts").join(name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(scripts.join(name), &to).unwrap();
        }
        for step in ["setup", "peers", "build-programs", "test-js"] {
            executable(&repo.join("scripts").join(step), &format!("echo \"ran {step} $*\" >&2"));
        }
        executable(&repo.join("scripts/demo"), "echo 'the verified, decrypted result'");
        let bin = dir.path().join("bin");
        executable(
            &bin.join("cargo"),
            "echo \"ran cargo $*\" >&2\n\
             if [ \"$1\" = nextest ] && [ -n \"${FAKE_SKIP:-}\" ]; then\n\
               echo 'ecld-x::it t::needs_node: node (Node.js) is missing; run scripts/setup' >>\"$ECLD_SKIP_LOG\"\n\
             fi",
        );
        executable(&bin.join("cargo-nextest"), "exit 0");
        // `git clone --quiet SRC DST`: a copy is clone enough for the demo step.
        executable(&bin.join("git"), "cp -r \"$3\" \"$4\"");
        Self { dir }
    }

    fn run(&self, ci: Option<&str>, skip: bool) -> Output {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            std::iter::once(self.dir.path().join("bin")).chain(std::env::split_paths(&path)),
        )
        .unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(self.dir.path().join("repo/scripts/test"))
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", self.dir.path().join("target"))
            .env_remove("ECLD_SKIP_LOG")
            .env_remove("CI")
            .env_remove("FAKE_SKIP");
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        if skip {
            cmd.env("FAKE_SKIP", "1");
        }
        cmd.output().unwrap()
    }

    fn skip_logs_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.path().join("target"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_run_without_skips_closes_with_0_tests_skipped_and_passes_under_ci() {
    let scratch = Scratch::new();
    let out = scratch.run(Some("true"), false);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.ends_with("\n0 tests skipped\n"), "{stdout}");
    // Every step ran, the preflight after setup and again after the programs were built.
    for step in ["ran setup", "ran peers --tools", "ran build-programs", "ran peers --images"] {
        assert!(stderr.contains(step), "{step}: {stderr}");
    }
    assert!(stderr.contains("ran cargo nextest run") && stderr.contains("ran test-js"), "{stderr}");
    assert!(scratch.skip_logs_left().is_empty(), "{:?}", scratch.skip_logs_left());
}

#[test]
fn a_recorded_skip_is_listed_at_the_end_and_fails_the_run_under_ci_only() {
    let scratch = Scratch::new();
    let outside = scratch.run(None, true);
    let (stdout, stderr) = text(&outside);
    assert!(outside.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with(
            "\n1 test skipped:\n  ecld-x::it t::needs_node: node (Node.js) is missing; run \
             scripts/setup\n"
        ),
        "{stdout}"
    );

    let under_ci = scratch.run(Some("true"), true);
    let (stdout_ci, stderr_ci) = text(&under_ci);
    assert_eq!(under_ci.status.code(), Some(1), "{stdout_ci}\n{stderr_ci}");
    assert_eq!(stdout_ci, stdout, "the same summary under CI");
    assert!(stderr_ci.contains("a skipped test is a failure"), "{stderr_ci}");
    // It failed at the end, after every step had run.
    assert!(stderr_ci.contains("ran test-js"), "{stderr_ci}");
}

#[test]
fn a_failing_step_fails_the_run_and_still_prints_the_summary() {
    let scratch = Scratch::new();
    executable(
        &scratch.dir.path().join("repo/scripts/peers"),
        "echo 'peers: hardhat is missing' >&2; exit 1",
    );
    let out = scratch.run(Some("true"), false);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("peers: hardhat is missing"), "{stderr}");
    assert!(!stderr.contains("ran cargo"), "nothing runs after a failed preflight: {stderr}");
    assert!(stdout.ends_with("0 tests skipped\n"), "{stdout}");
}
