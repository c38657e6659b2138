//! What a developer sees of `ecld up` left running: a node that dies is restarted, a program
//! of their own is published and run in one command each, other shells find the stack, and
//! errors and proofs say what they are.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::e2e_stack::{Stack, ecld_bin, programs_dir};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Waits until the file `log` contains `needle`.
fn wait_for_log(log: &Path, needle: &str, within: Duration) -> String {
    let start = Instant::now();
    loop {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.contains(needle) {
            return s;
        }
        assert!(start.elapsed() < within, "{needle:?} not in the log within {within:?}:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_node_killed_with_sigkill_is_restarted_and_the_stack_keeps_running_tasks() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("up.log");
    let stack = Stack::start_logging(tempfile::tempdir().unwrap(), "warn", &log);
    let first = stack.json(&["task", "run", "stats", "--input-text", "3 1 4"], 0);
    assert_eq!(first["status_name"], "SUCCESS", "{first}");

    let pid = stack.info["node"]["pid"].as_u64().expect("ecld up names its node's pid");
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    assert!(killed.unwrap().success(), "kill -9 {pid}");
    let after = wait_for_log(&log, "the node restarted (pid", Duration::from_secs(30));
    assert!(after.contains("the node exited (signal: 9"), "no line says the node died:\n{after}");

    // The stack is still up and the restarted node takes new work.
    let second = stack.json(&["task", "run", "stats", "--input-text", "2 7 1 8"], 0);
    assert_eq!(second["status_name"], "SUCCESS", "{second}");
    assert!(!std::fs::read_to_string(&log).unwrap().contains("stopping"), "ecld up stopped");
    let _ = stack.stop();
}

#[test]
fn a_program_of_ones_own_is_published_and_run_with_one_command_each() {
    let stack = Stack::start();
    let module = programs_dir().join("hash.wasm");
    let out = stack
        .cmd()
        .args(["image", "publish", "--name", "mine", "--module"])
        .arg(&module)
        .arg("--allow-sim")
        .output()
        .unwrap();
    assert_ok(&out, "ecld image publish --allow-sim");
    let shown = text(&out.stdout);
    assert!(shown.contains("image mine") && shown.contains("INSECURE"), "{shown}");

    let run = stack.json(&["task", "run", "mine", "--input-text", "hello"], 0);
    assert_eq!(run["status_name"], "SUCCESS", "{run}");
    assert!(run["platform"].as_str().unwrap().contains("sim — INSECURE"), "{run}");

    // Without keys from `ecld up`, --allow-sim says what it needs instead of publishing.
    let bare = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(stack.config()).unwrap();
    let keys = config.lines().filter(|l| l.starts_with("sim_platform_keys")).count();
    assert_eq!(keys, 1, "ecld up names its node's sim key:\n{config}");
    let bare_config = bare.path().join("client.toml");
    let without: Vec<&str> =
        config.lines().filter(|l| !l.starts_with("sim_platform_keys")).collect();
    std::fs::write(&bare_config, without.join("\n")).unwrap();
    let out = stack
        .cmd()
        .env("ECLD_CONFIG", &bare_config)
        .args(["image", "publish", "--name", "other", "--module"])
        .arg(&module)
        .arg("--allow-sim")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--sim-platform-key"), "{}", text(&out.stderr));
    let _ = stack.stop();
}

#[test]
fn another_shell_finds_the_stack_through_ecld_data_dir() {
    let stack = Stack::start();
    let dir = stack.dir.path().canonicalize().unwrap();
    assert_eq!(
        stack.info["export"].as_str(),
        Some(format!("export ECLD_DATA_DIR={}", dir.display()).as_str()),
        "{}",
        stack.info
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |data_dir: Option<&Path>| {
        let mut cmd = std::process::Command::new(ecld_bin());
        cmd.args(["image", "list"])
            .current_dir(elsewhere.path())
            .env("XDG_DATA_HOME", elsewhere.path().join("xdg"))
            .env_remove("ECLD_CONFIG")
            .env_remove("ECLD_RPC")
            .env_remove("ECLD_STORE")
            .env_remove("ECLD_DATA_DIR");
        if let Some(d) = data_dir {
            cmd.env("ECLD_DATA_DIR", d);
        }
        cmd.output().unwrap()
    };
    let lost = run(None);
    assert!(!lost.status.success(), "found a stack with no hint: {}", text(&lost.stdout));
    let found = run(Some(&dir));
    assert_ok(&found, "ecld image list with ECLD_DATA_DIR");
    assert!(text(&found.stdout).contains("stats"), "{}", text(&found.stdout));
    let _ = stack.stop();
}

#[test]
fn errors_under_json_are_json_with_their_exit_class() {
    let stack = Stack::start();
    let out = stack.cmd().args(["--json", "task", "status", "999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(v["error"]["exit_code"], 1, "{v}");
    assert_eq!(v["error"]["exit_class"], "error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("999"), "{v}");

    let out = stack.cmd().args(["--json", "task", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(v["error"]["exit_class"], "usage", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("<IMAGE>"), "{v}");
    let _ = stack.stop();
}

#[test]
fn a_verified_proof_names_its_platform_and_sim_is_insecure() {
    let stack = Stack::start();
    let out = stack.run(&["task", "run", "stats", "--input-text", "1 2 3"]);
    assert_ok(&out, "ecld task run");
    assert!(
        text(&out.stderr).contains("proof verified: signed by enclave")
            && text(&out.stderr).contains("platform sim — INSECURE"),
        "{}",
        text(&out.stderr)
    );
    let out = stack.run(&["task", "verify", "1"]);
    assert_ok(&out, "ecld task verify");
    assert!(text(&out.stdout).contains("platform    sim — INSECURE"), "{}", text(&out.stdout));
    let v = stack.json(&["task", "verify", "1"], 0);
    assert_eq!(v["platform"], "sim — INSECURE", "{v}");
    let _ = stack.stop();
}
