//! The EC Node (`ecld node`, an OS process) and its chain: new heads arrive by WebSocket
//! subscription (with a poll interval of an hour, only the subscription explains a pickup) and
//! without one it polls; the chain process is killed with SIGKILL and restarted on the same
//! port with the same state while the node runs and holds a task; a reorganisation (`evm_revert`) drops a claim
//! the node holds (the node drops the task; submitted again, it settles once) or drops the
//! node's settlement (the node runs the task again; it settles once), also when the block with
//! the settlement is replaced before the node read it; with chain time moved
//! ahead of the wall clock (`evm_increaseTime`), deadlines are judged in chain time: a task
//! whose deadline is near in chain time (far by the wall clock) is not claimed, and a proof
//! that chain time made too late is not sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use ecld_node::chain::{ChainEvent, OnChain};
use ecld_types::OfferId;
use serde_json::{Value, json};

use crate::{
    chaos::services::{Ports, Rng},
    e2e_stack::{Stack, ecld_bin, log_scan, programs_dir, ready_line},
    node::{SECOND_NODE_KEY, kill9, node_config},
    node_faults::{
        ChainView, LOW_PRICE, MID_PRICE, count_steps, enclave_wrapper, image_id, journal_steps,
        offers_for, offers_priced, sample, scrape, set_config, start_node_with_metrics, stop,
        strip_ansi, submit, submit_open_at, submit_with, wait_for_offers,
    },
};

/// An hour: a node polling this rarely picks a task up within the test only if a new-head
/// notification woke it.
const NEVER_MS: &str = "3600000";

/// Waits until `cond` holds, failing with `what` after `within`.
fn wait_until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the node serving `/metrics` on `port` has handled the chain's newest block.
fn wait_handled_head(chain: &ChainView, port: u16, what: &str) {
    let head = chain.rt.block_on(chain.chain.head()).unwrap() as f64;
    wait_until(Duration::from_secs(30), what, || {
        sample(&scrape(port), "ecld_node_chain_block").is_some_and(|b| b >= head)
    });
}

/// Makes the enclaves of the node configured in `config` wait, before starting, until the
/// returned gate file exists (in `dir`).
fn gate_enclaves(config: &Path, dir: &Path) -> PathBuf {
    let gate = dir.join("gate");
    let wrapper = enclave_wrapper(
        dir,
        &format!("while [ ! -e {g:?} ]; do sleep 0.05; done", g = gate.display().to_string()),
    );
    set_config(config, "[enclave]", "command", &format!("[{:?}]", wrapper.display().to_string()));
    gate
}

/// A node of these tests whose enclaves wait at a gate (see [`gate_enclaves`]).
struct GatedNode {
    _dir: tempfile::TempDir,
    gate: PathBuf,
    log: PathBuf,
    journal: PathBuf,
    child: Child,
    port: u16,
    offers: Vec<OfferId>,
}

/// Starts a node with `offers` (TOML `[[offers]]`), its config edited by `configure`, its
/// enclaves gated, and waits until its `n` offers are on chain.
fn start_gated(stack: &Stack, offers: &str, n: usize, configure: impl FnOnce(&Path)) -> GatedNode {
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(stack, dir.path(), Some(offers));
    configure(&config);
    let gate = gate_enclaves(&config, dir.path());
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let (child, port) = start_node_with_metrics(&config, &log, &[]);
    let offers = wait_for_offers(&journal, n);
    GatedNode { _dir: dir, gate, log, journal, child, port, offers }
}

/// Offers that take the `stats` and `hash` tasks of [`submit_open_at`] (cheaper than their
/// maximum price; the stack's own node asks more, so it takes none of them).
fn cheap_offers(stack: &Stack) -> String {
    offers_priced(&image_id(stack, "stats"), 1, LOW_PRICE)
        + "\n"
        + &offers_priced(&image_id(stack, "hash"), 1, LOW_PRICE)
}

fn log_text(log: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(log).unwrap_or_default())
}

#[test]
fn new_heads_by_subscription_wake_the_node_and_without_one_it_polls() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    let config = node_config(&stack, dir.path(), Some(&offers_for(&image, 1)));
    set_config(&config, "[chain]", "poll_interval_ms", NEVER_MS);
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let (node, port) = start_node_with_metrics(&config, &log, &[]);
    let offer = wait_for_offers(&journal, 1)[0];
    wait_until(Duration::from_secs(30), "the node did not subscribe to new heads", || {
        sample(&scrape(port), "ecld_node_chain_subscribed") == Some(1.0)
    });
    // A block mined now is read at once: the follower is woken by the notification (its next
    // poll is an hour away), and the wake-up of the subscription itself is behind us.
    chain.rpc("evm_mine", json!([]));
    wait_handled_head(&chain, port, "a mined block did not wake the node");
    // A task matched to this node's offer is adopted and settled, within seconds.
    let task = submit(&stack, "stats", 0, Some(offer));
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    assert_eq!(settled[&task], vec![(offer, 0)]);
    let m = scrape(port);
    assert!(sample(&m, "ecld_node_chain_heads_total").is_some_and(|n| n >= 2.0), "{m}");
    assert_eq!(sample(&m, "ecld_node_chain_subscribed"), Some(1.0), "{m}");
    stop(node);
    assert!(
        log_text(&log).contains("following the chain by newHeads subscription"),
        "{}",
        log_text(&log)
    );

    // The subscription URL is a plain HTTP JSON-API without WebSocket (the store's Kubo API):
    // the node says so, polls every 100 ms, and still settles the next task.
    let store_ws = stack.info["store"].as_str().unwrap().replacen("http://", "ws://", 1);
    set_config(&config, "[chain]", "ws_url", &format!("{store_ws:?}"));
    set_config(&config, "[chain]", "poll_interval_ms", "100");
    let log2 = dir.path().join("node2.log");
    let (node, port2) = start_node_with_metrics(&config, &log2, &[]);
    wait_until(Duration::from_secs(30), "the node did not report polling", || {
        log_text(&log2).contains("no new-head subscription; polling the chain")
    });
    let task = submit(&stack, "stats", 1, Some(offer));
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    assert_eq!(settled[&task], vec![(offer, 0)]);
    let m = scrape(port2);
    assert_eq!(sample(&m, "ecld_node_chain_subscribed"), Some(0.0), "{m}");
    assert_eq!(sample(&m, "ecld_node_chain_heads_total").unwrap_or(0.0), 0.0, "{m}");
    stop(node);
    assert!(!log_text(&log2).contains("panicked"));
}

/// `ecld up --no-node` on fixed ports, so that a restart serves the same URLs; the chain,
/// store and CAS are in this one process, so SIGKILL takes the chain down at once.
struct Up {
    child: Child,
    _stdin: ChildStdin,
    info: Value,
}

impl Up {
    fn start(data: &Path, ports: Ports, log: &Path) -> Self {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(ecld_bin())
            .args(["up", "--json", "--no-node", "--stop-on-stdin-eof", "--data-dir"])
            .arg(data)
            .arg("--programs")
            .arg(programs_dir())
            .args(["--rpc-port", &ports.rpc.to_string()])
            .args(["--store-port", &ports.store.to_string()])
            .args(["--cas-port", &ports.cas.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let info = ready_line(&mut child);
        Self { child, _stdin: stdin, info }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(ecld_bin());
        cmd.env("ECLD_CONFIG", self.info["config"].as_str().unwrap())
            .env_remove("ECLD_RPC")
            .env_remove("ECLD_STORE")
            .env_remove("ECLD_KEY")
            .env_remove("ECLD_IDENTITY")
            .env("RUST_LOG", "warn");
        cmd
    }

    fn image(&self, name: &str) -> String {
        let image = self.info["images"].as_array().unwrap().iter().find(|i| i["name"] == name);
        image.unwrap()["id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node config for the stack `info` (key [`SECOND_NODE_KEY`], data in `dir/data`).
fn config_for(info: &Value, dir: &Path, offers: &str) -> PathBuf {
    let key = dir.join("node.key");
    std::fs::write(&key, format!("{SECOND_NODE_KEY}\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let data = Path::new(info["data_dir"].as_str().unwrap());
    let toml = format!(
        "data_dir = {d:?}\n\n[chain]\nrpc_url = {rpc:?}\nkey_file = {key:?}\ndeployment_file = {dep:?}\npoll_interval_ms = {NEVER_MS}\n\n[store]\nurl = {store:?}\n\n[cas]\nurl = {cas:?}\n\n[enclave]\nplatform = \"sim\"\nsim_key_file = {sim:?}\n\n{offers}",
        d = dir.join("data").display().to_string(),
        rpc = info["rpc"].as_str().unwrap(),
        key = key.display().to_string(),
        dep = info["deployment"].as_str().unwrap(),
        store = info["store"].as_str().unwrap(),
        cas = info["cas"].as_str().unwrap(),
        sim = data.join("node/sim-platform.key").display().to_string(),
    );
    let file = dir.join("node.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

#[test]
fn the_chain_killed_with_sigkill_and_restarted_does_not_wedge_the_node() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let up_log = dir.path().join("up.log");
    // Below the ephemeral range: no other test's port-0 listener takes one while `up` is down.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    let ports = Ports::pick(&mut Rng::new(seed ^ u64::from(std::process::id())));
    let mut up = Up::start(data.path(), ports, &up_log);
    let offers = offers_for(&up.image("stats"), 2) + "\n" + &offers_for(&up.image("hash"), 1);
    let config = config_for(&up.info, dir.path(), &offers);
    // Enclaves start once the gate file exists: a task of the second image is held, claimed
    // and not yet run, across the chain's death and restart. An enclave launch marks the
    // `started` file first (the node launches it once it has fetched the module and input).
    let gate = dir.path().join("gate");
    let started = dir.path().join("started");
    std::fs::write(&gate, b"").unwrap();
    let wrapper = enclave_wrapper(
        dir.path(),
        &format!(
            ": > {s:?}\nwhile [ ! -e {g:?} ]; do sleep 0.05; done",
            s = started.display().to_string(),
            g = gate.display().to_string()
        ),
    );
    set_config(&config, "[enclave]", "command", &format!("[{:?}]", wrapper.display().to_string()));
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let (mut node, port) = start_node_with_metrics(&config, &log, &[]);
    let offers = wait_for_offers(&journal, 2);
    let (offer, hash_offer) = (offers[0], offers[1]);
    let subscribed = || sample(&scrape(port), "ecld_node_chain_subscribed") == Some(1.0);
    wait_until(Duration::from_secs(30), "the node did not subscribe", subscribed);
    let first = submit_with(&|| up.cmd(), &up.info, "stats", 0, Some(offer), MID_PRICE);
    ChainView::at(&up.info).wait_settled(&[first], Duration::from_secs(60));
    std::fs::remove_file(&started).unwrap();
    std::fs::remove_file(&gate).unwrap();
    let held = submit_with(&|| up.cmd(), &up.info, "hash", 9, Some(hash_offer), MID_PRICE);
    wait_until(Duration::from_secs(30), "the node did not take the held task", || {
        count_steps(&journal_steps(&journal), held, "claimed") == 1
    });
    // Its input is fetched and its enclave waits at the gate: the outage below finds the node
    // waiting for the enclave, not in the middle of a fetch from the store.
    wait_until(Duration::from_secs(60), "the held task's enclave did not start", || {
        started.exists()
    });

    // SIGKILL the chain (with the store and CAS of the same process) while the node runs.
    kill9(&mut up.child);
    wait_until(Duration::from_secs(30), "the node did not notice the chain was gone", || {
        let text = log_text(&log);
        text.contains("new-head subscription lost") && text.contains("following the chain failed")
    });
    assert!(!subscribed(), "still subscribed to a dead chain");
    std::thread::sleep(Duration::from_secs(2));
    assert!(node.try_wait().unwrap().is_none(), "the node exited when the chain went away");

    // The same chain (persisted state) on the same port.
    let up2 = Up::start(data.path(), ports, &up_log);
    assert_eq!(up2.info["rpc"], up.info["rpc"]);
    wait_until(Duration::from_secs(60), "the node did not re-subscribe", subscribed);
    // Matched to this node and only seen through the re-established subscription (the node
    // polls once an hour), each task settles.
    let ids: Vec<_> = (1..3)
        .map(|n| submit_with(&|| up2.cmd(), &up2.info, "stats", n, Some(offer), MID_PRICE))
        .collect();
    // The task held across the outage runs now and settles too.
    std::fs::write(&gate, b"").unwrap();
    let chain = ChainView::at(&up2.info);
    let settled = chain.wait_settled(&[&ids[..], &[held]].concat(), Duration::from_secs(60));
    for id in &ids {
        assert_eq!(settled[id], vec![(offer, 0)], "task {id}");
    }
    assert_eq!(settled[&held], vec![(hash_offer, 0)]);
    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    stop(node);
    let text = log_text(&log);
    assert_eq!(text.matches("node started").count(), 1, "the node restarted:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    // The secret scan a `Stack` runs when it stops, over both runs of `ecld up` and the node.
    let info = up2.info.clone();
    log_scan::check_stack(data.path(), &info, 6, &[up_log], Vec::new(), || drop(up2));
}

#[test]
fn a_reorg_dropping_the_nodes_claim_or_settlement_is_noticed_and_the_task_settles_once() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    // The only node that can take the tasks. Its enclaves wait for a gate file before
    // starting, so that a claim is held, not yet run, when the chain reorganises.
    let GatedNode { _dir, gate, log, journal, child: mut node, port, .. } =
        start_gated(&stack, &cheap_offers(&stack), 2, |_| {});
    let steps_of = |task, step: &str| count_steps(&journal_steps(&journal), task, step);

    // 1. The claim is dropped. Snapshot, submit an open task, and let the node claim it.
    let snapshot = chain.rpc("evm_snapshot", json!([]));
    let task = submit_open_at(&stack, "stats", 0, MID_PRICE);
    wait_until(Duration::from_secs(30), "the node did not claim the task", || {
        steps_of(task, "claimed") == 1
    });
    // The blocks the reorganisation drops are ones the node has handled (its follower may
    // read a block after its own transaction's receipt).
    wait_handled_head(&chain, port, "the node did not handle the block with its claim");
    // The reorganisation: the blocks with the submission and the claim are gone, and a new
    // block is mined on the old head.
    assert_eq!(chain.rpc("evm_revert", json!([snapshot])), json!(true));
    chain.rpc("evm_mine", json!([]));
    // The node notices that its claim is gone and drops the task (it never ran).
    wait_until(Duration::from_secs(30), "the node did not drop the reverted claim", || {
        journal_steps(&journal)
            .iter()
            .any(|(t, v)| *t == task && v["step"] == "done" && v["end"] == "lost")
    });
    std::fs::write(&gate, b"").unwrap();
    // The same task, submitted again (the task counter was reverted too: same id), settles
    // once, by this node, which kept running.
    let again = submit_open_at(&stack, "stats", 0, MID_PRICE);
    assert_eq!(again, task, "the reverted chain gave the task another id");
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    assert_eq!(settled[&task].len(), 1, "{settled:?}");
    assert_eq!(settled[&task][0].1, 0, "{settled:?}");
    wait_until(Duration::from_secs(20), "the node did not journal the end", || {
        steps_of(task, "done") == 2
    });
    assert_eq!(steps_of(task, "proven"), 1, "ran more than once");
    assert_eq!(steps_of(task, "claiming"), 2);

    // 2. The settlement is dropped, the claim kept: the node runs the task again. The gate
    // closes again for the first enclave of the other image.
    std::fs::remove_file(&gate).unwrap();
    let second = submit_open_at(&stack, "hash", 1, MID_PRICE);
    wait_until(Duration::from_secs(30), "the node did not claim the second task", || {
        steps_of(second, "claimed") == 1
    });
    let snapshot = chain.rpc("evm_snapshot", json!([]));
    std::fs::write(&gate, b"").unwrap();
    chain.wait_settled(&[second], Duration::from_secs(60));
    wait_until(Duration::from_secs(20), "the node did not journal the end", || {
        steps_of(second, "done") == 1
    });
    wait_handled_head(&chain, port, "the node did not handle the block with its settlement");
    assert_eq!(chain.rpc("evm_revert", json!([snapshot])), json!(true));
    // (Checked before a new block wakes the node: until then it polls every 15 s at most.)
    assert!(!chain.settlements().contains_key(&second), "the settlement survived the revert");
    chain.rpc("evm_mine", json!([]));
    let settled = chain.wait_settled(&[second], Duration::from_secs(60));
    assert_eq!(settled[&second].len(), 1, "{settled:?}");
    assert_eq!(settled[&second][0].1, 0, "{settled:?}");
    // Once per chain history: the first run's settlement went with the dropped blocks.
    assert_eq!(steps_of(second, "proven"), 2);

    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    kill9(&mut node);
    let text = log_text(&log);
    assert!(text.contains("no longer on the chain (reorganisation"), "{text}");
    assert!(text.contains("claim is gone after the reorganisation"), "{text}");
    assert_eq!(text.matches("node started").count(), 1, "the node restarted:\n{text}");
    for id in [task, second] {
        let v = stack.json(&["task", "verify", &id.get().to_string()], 0);
        assert_eq!(v["status"], 0, "{v}");
    }
}

/// A reorganisation that replaces the block with the node's settlement before the node's
/// follower read that block (the follower polls every few seconds; the node is stopped with
/// SIGSTOP while the chain changes): the follower's cursor block is untouched, so only the
/// missing `ResultSubmitted` event in the re-read block tells. The node checks the task on
/// chain, finds it held by its offer again, runs it again, and it settles once.
#[test]
fn a_settlement_replaced_before_the_node_read_its_block_is_noticed_and_the_task_runs_again() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let offers = offers_priced(&image_id(&stack, "hash"), 1, LOW_PRICE);
    // Polling only, and seldom: the follower reads blocks after the node's own transactions.
    let GatedNode { _dir, gate, log, journal, child: mut node, .. } =
        start_gated(&stack, &offers, 1, |config| {
            set_config(config, "[chain]", "ws_url", "\"none\"");
            set_config(config, "[chain]", "poll_interval_ms", "5000");
        });
    let steps_of = |task, step: &str| count_steps(&journal_steps(&journal), task, step);

    let task = submit_open_at(&stack, "hash", 0, MID_PRICE);
    wait_until(Duration::from_secs(60), "the node did not claim the task", || {
        steps_of(task, "claimed") == 1
    });
    let snapshot = chain.rpc("evm_snapshot", json!([]));
    // The follower reads the block with the claim (so the re-read after the reorganisation
    // starts after it, and no Claimed event there tells), then the task runs and settles.
    let claimed_by = chain.rt.block_on(chain.chain.head()).unwrap();
    wait_until(Duration::from_secs(30), "the node's follower did not read its claim", || {
        journal_cursor(&journal) >= claimed_by
    });
    std::fs::write(&gate, b"").unwrap();
    wait_until(Duration::from_secs(60), "the node did not journal its settlement", || {
        steps_of(task, "done") == 1
    });
    // Nothing of the node runs while the chain is changed.
    signal(&node, "STOP");
    let (head, settled_in) = chain.rt.block_on(async {
        let head = chain.chain.head().await.unwrap();
        let evs = chain.chain.events(0, head).await.unwrap();
        let at = evs.iter().find_map(|(b, e)| match e {
            ChainEvent::Settled { task: t, .. } if *t == task => Some(*b),
            _ => None,
        });
        (head, at.expect("no ResultSubmitted event for the task"))
    });
    let cursor = journal_cursor(&journal);
    assert_eq!(chain.rpc("evm_revert", json!([snapshot])), json!(true));
    assert!(!chain.settlements().contains_key(&task), "the settlement survived the revert");
    // The chain grows past the block the settlement was in, with other blocks.
    let reverted = chain.rt.block_on(chain.chain.head()).unwrap();
    for _ in reverted..=head {
        chain.rpc("evm_mine", json!([]));
    }
    signal(&node, "CONT");
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    assert_eq!(settled[&task].len(), 1, "{settled:?}");
    assert_eq!(settled[&task][0].1, 0, "{settled:?}");
    assert_eq!(steps_of(task, "proven"), 2, "the task did not run again");
    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    kill9(&mut node);
    let text = log_text(&log);
    if cursor < settled_in {
        // The usual case: the follower had not read the settlement's block.
        assert!(text.contains("is not in the block it was mined in"), "cursor {cursor}:\n{text}");
    } else {
        // A poll landed between the settlement and SIGSTOP: the cursor block itself changed.
        assert!(text.contains("no longer on the chain (reorganisation"), "{text}");
    }
    assert!(text.contains("held by it again on chain"), "{text}");
    assert_eq!(text.matches("node started").count(), 1, "the node restarted:\n{text}");
    let v = stack.json(&["task", "verify", &task.get().to_string()], 0);
    assert_eq!(v["status"], 0, "{v}");
}

/// Sends `SIGSTOP` or `SIGCONT` (`sig`) to `child`.
fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// The last block the node's journal says its follower handled.
fn journal_cursor(journal: &Path) -> u64 {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "cursor")
        .find_map(|v| v["block"].as_u64())
        .expect("no cursor in the journal")
}

/// Submits an open task for `image` paying at most [`MID_PRICE`], due `deadline_s` seconds
/// after chain now.
fn submit_due(stack: &Stack, image: &str, n: usize, deadline_s: u64) -> ecld_types::TaskId {
    let text = format!("task {n} words for the deadline test");
    let deadline = deadline_s.to_string();
    let v = stack.json(
        &[
            "task",
            "submit",
            image,
            "--input-text",
            &text,
            "--offer",
            "0",
            "--price",
            MID_PRICE,
            "--deadline-s",
            &deadline,
        ],
        0,
    );
    let raw = v["task"].as_u64().or_else(|| v["task"].as_str().and_then(|s| s.parse().ok()));
    ecld_types::TaskId::new(raw.unwrap()).unwrap()
}

#[test]
fn deadlines_are_judged_in_chain_time_a_near_one_is_not_claimed_and_a_late_proof_is_not_sent() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    // The only node that can take the tasks (see the reorg test); its enclaves start once the
    // gate file exists, which it does from the start here.
    let GatedNode { _dir, gate, log, journal, child: mut node, port, offers } =
        start_gated(&stack, &cheap_offers(&stack), 2, |_| {});
    std::fs::write(&gate, b"").unwrap();
    let hash_offer = offers[1];
    let steps_of = |task, step: &str| count_steps(&journal_steps(&journal), task, step);

    // Chain time runs ten minutes ahead of the wall clock.
    chain.rpc("evm_increaseTime", json!([600]));
    chain.rpc("evm_mine", json!([]));
    // Due 6 s after chain now: ten minutes away by the wall clock, too near in chain time for
    // the 5 s margin and the 3 s run allowance. The next task, due in two minutes, is claimed
    // and settles; the first (older, so considered first) was never claimed.
    let near = submit_due(&stack, "stats", 0, 6);
    let later = submit_due(&stack, "stats", 1, 120);
    chain.wait_settled(&[later], Duration::from_secs(60));
    assert_eq!(steps_of(near, "claiming"), 0, "the node tried to claim a task due in 6 s");
    assert_eq!(chain.state(near), OnChain::Open);

    // A task claimed in time whose deadline passes in chain time while it runs: the node does
    // not upload or submit (the contract would refuse the proof), and says so in /metrics.
    std::fs::remove_file(&gate).unwrap();
    let late = submit_due(&stack, "hash", 2, 60);
    wait_until(Duration::from_secs(30), "the node did not claim the task", || {
        steps_of(late, "claimed") == 1
    });
    chain.rpc("evm_increaseTime", json!([120]));
    chain.rpc("evm_mine", json!([]));
    // The node has read the block stamped past the deadline before the enclave starts.
    wait_handled_head(&chain, port, "the node did not read the new block");
    std::fs::write(&gate, b"").unwrap();
    wait_until(Duration::from_secs(60), "the node did not give the late task up", || {
        journal_steps(&journal)
            .iter()
            .any(|(t, v)| *t == late && v["step"] == "done" && v["end"] == "expired")
    });
    assert_eq!(steps_of(late, "proven"), 1, "the task did not run");
    assert_eq!(steps_of(late, "uploaded"), 0, "the result of a late task was uploaded");
    // Neither a proof nor a release was sent: the task is still held, for the requester to
    // reclaim.
    assert_eq!(chain.state(late), OnChain::HeldBy(hash_offer));
    let m = scrape(port);
    assert_eq!(sample(&m, "ecld_node_tasks_late_total{phase=\"proven\"}"), Some(1.0), "{m}");
    assert!(sample(&m, "ecld_node_chain_time_ahead_seconds").is_some_and(|s| s >= 700.0), "{m}");

    assert!(node.try_wait().unwrap().is_none(), "the node exited");
    kill9(&mut node);
    let text = log_text(&log);
    assert!(text.contains("chain time is past the task's deadline"), "{text}");
}
