//! The EC Node as an OS process (`ecld node`): a second node competes with the stack's node for
//! open tasks, is killed with SIGKILL while it works and restarted from its journal, and every
//! task still settles exactly once with a verified proof.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::e2e_stack::{Stack, ecld_bin};

/// Hardhat/anvil test account 19 (funded with ether by the devnet; unused by `ecld up`).
pub(crate) const SECOND_NODE_KEY: &str =
    "0xdf57089febbacf7ba0bc227dafbffa9fc08a93fdc68e1e42411a14efcf23656e";

/// Above the stack's offer price (1e15), so that any node's offer fits an open task.
pub(crate) const MAX_PRICE: &str = "2000000000000000";

/// A config for a second node: the stack node's config with its own key and data directory.
pub(crate) fn second_node_config(stack: &Stack, dir: &Path) -> PathBuf {
    node_config(stack, dir, None)
}

/// The stack node's data directory.
pub(crate) fn stack_node_dir(stack: &Stack) -> PathBuf {
    PathBuf::from(stack.info["node"]["data_dir"].as_str().unwrap())
}

/// A config for a second node (key [`SECOND_NODE_KEY`], data in `dir/data`): the stack node's
/// config, with `offers` (TOML `[[offers]]` tables) instead of the stack's offers if given.
pub(crate) fn node_config(stack: &Stack, dir: &Path, offers: Option<&str>) -> PathBuf {
    let mut text = std::fs::read_to_string(stack_node_dir(stack).join("node.toml")).unwrap();
    if let Some(offers) = offers {
        let cut = text.find("[[offers]]").unwrap_or(text.len());
        text.truncate(cut);
        text.push_str(offers);
    }
    let key = dir.join("node.key");
    std::fs::write(&key, format!("{SECOND_NODE_KEY}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let data = dir.join("data");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("data_dir =") {
            out.push_str(&format!("data_dir = {:?}\n", data.display().to_string()));
        } else if line.starts_with("key_file =") {
            out.push_str(&format!("key_file = {:?}\n", key.display().to_string()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let file = dir.join("node.toml");
    std::fs::write(&file, out).unwrap();
    file
}

pub(crate) fn start_node(config: &Path, log: &Path) -> Child {
    start_node_with(config, log, &[])
}

/// Starts `ecld node` with extra environment variables, its stderr appended to `log` (which
/// the stack's secret scan reads too).
pub(crate) fn start_node_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    crate::e2e_stack::log_scan::include(log);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(ecld_bin())
        .args(["node", "--config"])
        .arg(config)
        .env("RUST_LOG", "ecld_node=info")
        .env_remove("ECLD_NODE_CRASH_AT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub(crate) fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

fn submit_open(stack: &Stack, n: usize) -> u64 {
    // Retries a submission whose gas estimate raced a settlement (see `node_faults::submit`).
    crate::node_faults::submit(stack, "stats", n, None).get()
}

/// The offer ids the node's journal remembers.
pub(crate) fn offer_ids(journal: &Path) -> Vec<u64> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "offer")
        .map(|v| v["offer"].as_u64().unwrap())
        .collect()
}

/// [`offer_ids`] of a journal that may not exist yet.
fn offer_ids_so_far(journal: &Path) -> Vec<u64> {
    if journal.exists() { offer_ids(journal) } else { Vec::new() }
}

fn status(stack: &Stack, id: u64) -> Value {
    stack.json(&["task", "status", &id.to_string()], 0)
}

#[test]
fn a_second_node_competes_survives_sigkill_and_every_task_settles_once() {
    let stack = Stack::start();
    let dir = tempfile::tempdir().unwrap();
    let config = second_node_config(&stack, dir.path());
    let log = dir.path().join("node.log");
    let mut node = start_node(&config, &log);
    let journal = dir.path().join("data/journal.jsonl");
    // Every configured offer is registered before the first kill: a kill in the middle of
    // registering would rightly register the rest after the restart.
    let configured = std::fs::read_to_string(&config).unwrap().matches("[[offers]]").count();
    let start = Instant::now();
    while offer_ids_so_far(&journal).len() < configured {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the second node registered {:?} of {configured} offers",
            offer_ids_so_far(&journal)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let offers_before = offer_ids(&journal);

    // Open tasks while the second node is killed twice and restarted.
    let mut ids = Vec::new();
    for n in 0..18 {
        ids.push(submit_open(&stack, n));
        if n == 5 || n == 11 {
            std::thread::sleep(Duration::from_millis(30 * n as u64));
            kill9(&mut node);
            node = start_node(&config, &log);
        }
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let s = status(&stack, *id);
            if s["state"] == "done" {
                assert_eq!(s["status"], 0, "task {id} settled with {s}");
                break;
            }
            assert!(Instant::now() < deadline, "task {id} did not settle: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Each task has one verified proof; the contract refuses a second submitResult.
    for id in &ids {
        let v = stack.json(&["task", "verify", &id.to_string()], 0);
        assert_eq!(v["status"], 0, "{v}");
    }
    node.kill().ok();
    node.wait().ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let settled_by_second = text.matches("task settled").count();
    assert!(settled_by_second >= 1, "the second node settled no task; its log:\n{text}");
    assert!(settled_by_second < ids.len(), "the stack's node took no task; its log:\n{text}");
    // Restarts re-used the offer the journal remembers instead of registering new ones.
    assert_eq!(offers_before, offer_ids(&journal), "a restart registered new offers");
    assert!(!text.contains("panicked"), "{text}");
}
