//! The EC Node under faults, as OS processes against `ecld up`: two nodes share 50 open tasks
//! and each runs exactly once; SIGKILL at every journal step (the test-only hook
//! `ECLD_NODE_CRASH_AT`) and a restart settle every task once with one result; the store goes
//! away for a while and the task still settles; an image whose enclave cannot attest is
//! released, not swallowed, retried a few times with backoff and then left alone; an enclave
//! that dies once at start-up costs seconds, not the task's deadline; `/metrics` shows what
//! happened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use ecld_node::chain::{Chain, ChainEvent, OnChain};
use ecld_types::{OfferId, TaskId};
use serde_json::Value;

use crate::{
    e2e_stack::{Stack, programs_dir},
    node::{
        MAX_PRICE, kill9, node_config, offer_ids, second_node_config, stack_node_dir,
        start_node_with,
    },
};

/// Reads the Marketplace of a stack (as a throwaway account that never sends).
pub(crate) struct ChainView {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) chain: Chain,
    deploy_block: u64,
}

impl ChainView {
    pub(crate) fn new(stack: &Stack) -> Self {
        Self::at(&stack.info)
    }

    /// The chain of a stack described by `ecld up --json`'s ready line.
    pub(crate) fn at(info: &Value) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let d = ecld_contracts::Deployment::load(Path::new(info["deployment"].as_str().unwrap()))
            .unwrap();
        let rpc = info["rpc"].as_str().unwrap().parse().unwrap();
        let signer = ecld_crypto::SignerKey::generate().signer().clone();
        let chain = rt.block_on(Chain::connect(rpc, signer, d.marketplace, d.registry)).unwrap();
        Self { rt, chain, deploy_block: d.deploy_block }
    }

    /// A raw JSON-RPC call (the devnet's `evm_*` controls).
    pub(crate) fn rpc(&self, method: &'static str, params: Value) -> Value {
        use alloy::providers::Provider;
        self.rt
            .block_on(self.chain.provider().raw_request::<_, Value>(method.into(), params))
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Every Marketplace event since the deployment.
    pub(crate) fn events(&self) -> Vec<ChainEvent> {
        self.rt.block_on(async {
            let head = self.chain.head().await.unwrap();
            let evs = self.chain.events(self.deploy_block, head).await.unwrap();
            evs.into_iter().map(|(_, e)| e).collect()
        })
    }

    /// The block of each `ResultSubmitted` event, per task.
    pub(crate) fn settlement_blocks(&self) -> BTreeMap<TaskId, u64> {
        self.rt.block_on(async {
            let head = self.chain.head().await.unwrap();
            let evs = self.chain.events(self.deploy_block, head).await.unwrap();
            evs.into_iter()
                .filter_map(|(b, e)| match e {
                    ChainEvent::Settled { task, .. } => Some((task, b)),
                    _ => None,
                })
                .collect()
        })
    }

    /// `ResultSubmitted` events per task: (offer, status) of each.
    pub(crate) fn settlements(&self) -> BTreeMap<TaskId, Vec<(OfferId, u16)>> {
        let mut out: BTreeMap<TaskId, Vec<(OfferId, u16)>> = BTreeMap::new();
        for e in self.events() {
            if let ChainEvent::Settled { task, offer, status } = e {
                out.entry(task).or_default().push((offer, status));
            }
        }
        out
    }

    pub(crate) fn state(&self, task: TaskId) -> OnChain {
        self.rt.block_on(self.chain.task_state(task)).unwrap()
    }

    /// Waits until every task in `ids` has a `ResultSubmitted` event.
    pub(crate) fn wait_settled(
        &self,
        ids: &[TaskId],
        within: Duration,
    ) -> BTreeMap<TaskId, Vec<(OfferId, u16)>> {
        let deadline = Instant::now() + within;
        loop {
            let s = self.settlements();
            if ids.iter().all(|id| s.contains_key(id)) {
                return s;
            }
            let missing: Vec<_> = ids.iter().filter(|id| !s.contains_key(id)).collect();
            assert!(Instant::now() < deadline, "tasks {missing:?} did not settle");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn task_id(v: &Value) -> TaskId {
    let raw = v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap();
    TaskId::new(raw).unwrap()
}

/// Submits a task for `image`: matched to `offer`, or open when `offer` is `None`.
pub(crate) fn submit(stack: &Stack, image: &str, n: usize, offer: Option<OfferId>) -> TaskId {
    submit_with(&|| stack.cmd(), &stack.info, image, n, offer, MAX_PRICE)
}

/// Submits an open task for `image` that pays at most `price`: a node whose offer asks more
/// (the stack's node asks 1e15) cannot take it.
pub(crate) fn submit_open_at(stack: &Stack, image: &str, n: usize, price: &str) -> TaskId {
    submit_with(&|| stack.cmd(), &stack.info, image, n, None, price)
}

/// [`submit`] through `cmd` (an `ecld` command pointed at a stack described by `info`), an open
/// task paying at most `price`.
pub(crate) fn submit_with(
    cmd: &dyn Fn() -> std::process::Command,
    info: &Value,
    image: &str,
    n: usize,
    offer: Option<OfferId>,
    price: &str,
) -> TaskId {
    let offer = offer.map_or_else(|| "0".to_owned(), |o| o.get().to_string());
    let text = format!("task {n} words for the node fault tests");
    let mut args = vec!["task", "submit", image, "--input-text", &text, "--offer", &offer];
    if offer == "0" {
        args.extend(["--price", price]);
    }
    // The SDK sends submitTask with the gas eth_estimateGas gave; when a node settles the
    // last escrowed task in between, the Marketplace's token balance slot goes from zero to
    // non-zero in the real run and the token transfer runs out of gas (seen here: gas used
    // within 0.1% of the limit). That is the SDK's concern (no gas headroom), not the node's:
    // submit again.
    for _ in 0..3 {
        let out = cmd().arg("--json").args(&args).output().unwrap();
        if out.status.success() {
            return task_id(&serde_json::from_slice::<Value>(&out.stdout).unwrap()["task"]);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("reverted"), "ecld {args:?} failed: {err}");
        eprintln!("submit reverted; retrying: {err} {}", gas_of_reverted(info, &err));
    }
    panic!("ecld {args:?} reverted three times")
}

/// "gas used/limit" of the transaction named in an error message, to tell out-of-gas apart.
fn gas_of_reverted(info: &Value, err: &str) -> String {
    use alloy::providers::Provider;
    let Some(hash) = err.split_whitespace().find(|w| w.starts_with("0x") && w.len() == 66) else {
        return String::new();
    };
    let hash: alloy::primitives::B256 = hash.parse().unwrap();
    let view = ChainView::at(info);
    view.rt.block_on(async {
        let p = view.chain.provider();
        let r = p.get_transaction_receipt(hash).await.unwrap().unwrap();
        let t = p.get_transaction_by_hash(hash).await.unwrap().unwrap();
        format!(
            "(gas used {} of limit {})",
            r.gas_used,
            alloy::consensus::Transaction::gas_limit(&t)
        )
    })
}

/// Task journal lines of a node: (task, step line).
pub(crate) fn journal_steps(journal: &Path) -> Vec<(TaskId, Value)> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "task")
        .map(|v| (task_id(&v["task"]), v))
        .collect()
}

pub(crate) fn count_steps(steps: &[(TaskId, Value)], task: TaskId, step: &str) -> usize {
    steps.iter().filter(|(t, v)| *t == task && v["step"] == step).count()
}

pub(crate) fn wait_for_offers(journal: &Path, n: usize) -> Vec<OfferId> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(journal).unwrap_or_default();
        if text.matches("\"offer\"").count() >= n && text.contains("\"kind\":\"offer\"") {
            let ids = offer_ids(journal);
            if ids.len() >= n {
                return ids.into_iter().map(|o| OfferId::new(o).unwrap()).collect();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the node registered no offer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`start_node_with`] serving `/metrics` on a port the node binds itself
/// (`ECLD_NODE_METRICS_ADDR=127.0.0.1:0`, so no other process can take it in between): waits
/// for the node's `--json` ready line and returns the port it names. The stack's secret scan
/// reads `log` too.
pub(crate) fn start_node_with_metrics(
    config: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> (Child, u16) {
    use std::io::BufRead;
    crate::e2e_stack::log_scan::include(log);
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut child = std::process::Command::new(crate::e2e_stack::ecld_bin())
        .args(["--json", "node", "--config"])
        .arg(config)
        .env("RUST_LOG", "ecld_node=info")
        .env_remove("ECLD_NODE_CRASH_AT")
        .envs(env.iter().copied())
        .env("ECLD_NODE_METRICS_ADDR", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(120)) else {
        kill9(&mut child);
        let text = std::fs::read_to_string(log).unwrap_or_default();
        panic!("`ecld node` printed no ready line within 120 s:\n{text}");
    };
    let v: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("`ecld --json node` printed {line:?}: {e}"));
    let addr: std::net::SocketAddr = v["metrics"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics address in {v}"))
        .parse()
        .unwrap();
    (child, addr.port())
}

/// Calls `probe` every 100 ms until `reached` holds of what it returns, and returns that;
/// fails after `within`, naming `what` and the last value seen.
pub(crate) fn poll_until<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> T,
    reached: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let seen = probe();
        if reached(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {within:?}; last seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long a test watches, once the expected events are there, that nothing more happens.
pub(crate) const SETTLE: Duration = Duration::from_secs(3);

/// `GET /metrics` of a node.
pub(crate) fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the first sample line starting with `prefix`.
pub(crate) fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn stop(mut child: Child) {
    kill9(&mut child);
}

#[test]
fn two_nodes_share_50_open_tasks_each_runs_exactly_once_and_metrics_show_it() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let config = second_node_config(&stack, dir.path());
    let log = dir.path().join("node.log");
    let (node, port) = start_node_with_metrics(&config, &log, &[]);
    let journal = dir.path().join("data/journal.jsonl");
    let second_offers: BTreeSet<OfferId> = wait_for_offers(&journal, 1).into_iter().collect();

    let ids: Vec<TaskId> = (0..50).map(|n| submit(&stack, "hash", n, None)).collect();
    let settled = chain.wait_settled(&ids, Duration::from_secs(180));
    // Which node settled each task (by the offer on its ResultSubmitted event).
    let by_second_node =
        |id: &TaskId| settled[id].first().is_some_and(|(o, _)| second_offers.contains(o));
    // A node journals a task's end (then counts it in /metrics) after the receipt of its
    // submitResult: the event can be on chain before that.
    let stack_journal_path = stack_node_dir(&stack).join("journal.jsonl");
    poll_until(
        "each node journals the end of every task it settled (tasks without one)",
        Duration::from_secs(30),
        || {
            let (stack_steps, second_steps) =
                (journal_steps(&stack_journal_path), journal_steps(&journal));
            let unfinished: Vec<TaskId> = ids
                .iter()
                .copied()
                .filter(|id| {
                    let mine = if by_second_node(id) { &second_steps } else { &stack_steps };
                    count_steps(mine, *id, "done") == 0
                })
                .collect();
            unfinished
        },
        Vec::is_empty,
    );
    let stack_journal = journal_steps(&stack_journal_path);
    let second_journal = journal_steps(&journal);
    let mut by_second = 0usize;
    for id in &ids {
        let s = &settled[id];
        assert_eq!(s.len(), 1, "task {id} has {} ResultSubmitted events: {s:?}", s.len());
        let (_, status) = s[0];
        assert_eq!(status, 0, "task {id} settled with status {status}");
        // The node that settled it ran its enclave on it once; the other never did.
        let (mine, other) = if by_second_node(id) {
            by_second += 1;
            (&second_journal, &stack_journal)
        } else {
            (&stack_journal, &second_journal)
        };
        assert_eq!(count_steps(mine, *id, "proven"), 1, "task {id}: runs by its node");
        assert_eq!(count_steps(other, *id, "proven"), 0, "task {id} also ran on the other node");
    }
    assert!(by_second >= 1, "the second node settled none of the 50 tasks");
    assert!(by_second < ids.len(), "the stack's node settled none of the 50 tasks");

    // /metrics: Prometheus text with what the second node did. The node counts a task right
    // after journaling its end, and its slot gauge when its main loop sees the worker end.
    let settled_sample = "ecld_node_tasks_total{end=\"settled\",status=\"0\"}";
    poll_until(
        "the second node's /metrics count its settled tasks, none active",
        Duration::from_secs(30),
        || scrape(port),
        |m: &String| {
            sample(m, settled_sample).is_some_and(|n| n >= by_second as f64)
                && sample(m, "ecld_node_tasks_active") == Some(0.0)
        },
    );
    let m = scrape(port);
    let settled_metric = sample(&m, settled_sample);
    assert_eq!(settled_metric, Some(by_second as f64), "{m}");
    assert!(m.contains("# TYPE ecld_node_tasks_total counter"), "{m}");
    for step in ["claim", "fetch_input", "enclave_run", "upload", "submit"] {
        let count = sample(&m, &format!("ecld_node_step_seconds_count{{step=\"{step}\"}}"));
        assert!(count.is_some_and(|c| c >= by_second as f64), "step {step}: {count:?}\n{m}");
    }
    let gas = sample(&m, "ecld_node_gas_used_total{tx=\"submitResult\"}");
    assert!(gas.is_some_and(|g| g > 50_000.0 * by_second as f64), "{gas:?}\n{m}");
    assert!(sample(&m, "ecld_node_gas_spent_gwei_total").is_some_and(|g| g > 0.0), "{m}");
    // The stack's offer price is 1e15 base units; earnings are counted in units of 1e9.
    let earned = sample(&m, "ecld_node_earnings_tokens_total");
    assert_eq!(earned, Some(1e6 * by_second as f64), "{m}");
    assert!(sample(&m, "ecld_node_enclaves").is_some_and(|n| n >= 1.0), "{m}");
    assert_eq!(sample(&m, "ecld_node_tasks_active"), Some(0.0), "{m}");
    stop(node);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

/// The `[[offers]]` of a node serving only `image` (an id), with `slots` slots.
pub(crate) fn offers_for(image: &str, slots: u32) -> String {
    offers_priced(image, slots, "1000000000000000")
}

/// [`offers_for`] at `price` per task.
pub(crate) fn offers_priced(image: &str, slots: u32, price: &str) -> String {
    format!(
        "[[offers]]\nimage = \"{image}\"\nslots = {slots}\nmemory_mb = 256\nmax_runtime_s = 60\nprice = \"{price}\"\n"
    )
}

/// Below the stack node's price (1e15): a task paying at most [`MID_PRICE`] fits an offer at
/// [`LOW_PRICE`] and not the stack node's.
pub(crate) const LOW_PRICE: &str = "100000000000000";
/// See [`LOW_PRICE`].
pub(crate) const MID_PRICE: &str = "500000000000000";

/// Sets `key = value` (TOML) in `section` (e.g. `[chain]`) of a node config: replaces the line
/// of that key, or adds one right under the section header.
pub(crate) fn set_config(config: &Path, section: &str, key: &str, value: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let line = format!("{key} = {value}");
    let mut out: Vec<String> = Vec::new();
    let mut done = false;
    let mut current = String::new();
    for l in text.lines() {
        if l.starts_with('[') {
            current = l.to_owned();
        }
        if !done && current == section && l.starts_with(&format!("{key} =")) {
            out.push(line.clone());
            done = true;
        } else {
            out.push(l.to_owned());
        }
    }
    if !done {
        let at = out.iter().position(|l| l == section).unwrap_or_else(|| panic!("no {section}"));
        out.insert(at + 1, line);
    }
    std::fs::write(config, out.join("\n") + "\n").unwrap();
}

/// A script to use as `enclave.command`: runs `sh_body` (a shell fragment that may `exit`),
/// then `ecld enclave` with the node's arguments.
pub(crate) fn enclave_wrapper(dir: &Path, sh_body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("enclave-wrapper.sh");
    let ecld = crate::e2e_stack::ecld_bin();
    std::fs::write(
        &path,
        format!("#!/bin/sh\n{sh_body}\nexec {:?} enclave \"$@\"\n", ecld.display().to_string()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

pub(crate) fn image_id(stack: &Stack, name: &str) -> String {
    let v = stack.json(&["image", "show", name], 0);
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// The log without its colour escapes.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits for the node process to end and returns how.
fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the node did not reach its crash point");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Distinct values of `field` (a JSON pointer) in the journal's `step` lines, per task.
fn collect(
    into: &mut BTreeMap<TaskId, BTreeSet<String>>,
    steps: &[(TaskId, Value)],
    step: &str,
    pointer: &str,
) {
    for (t, v) in steps.iter().filter(|(_, v)| v["step"] == step) {
        into.entry(*t).or_default().insert(v.pointer(pointer).unwrap().to_string());
    }
}

#[test]
fn sigkill_at_each_journal_step_then_restart_settles_every_task_once_with_one_result() {
    use std::os::unix::process::ExitStatusExt;

    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    let config = node_config(&stack, dir.path(), Some(&offers_for(&image, 4)));
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let mut results: BTreeMap<TaskId, BTreeSet<String>> = BTreeMap::new();
    let mut cids: BTreeMap<TaskId, BTreeSet<String>> = BTreeMap::new();
    let mut ids = Vec::new();
    let mut offer = None;
    // One task per crash point, matched to this node's offer so that only it can run it; a
    // task that crashed earlier is resumed by the next run (and may meet its crash point).
    for (n, point) in
        ["after_claim", "after_run", "after_upload", "after_submit"].iter().enumerate()
    {
        let mut node = start_node_with(&config, &log, &[("ECLD_NODE_CRASH_AT", point)]);
        let o = *offer.get_or_insert_with(|| wait_for_offers(&journal, 1)[0]);
        ids.push(submit(&stack, "stats", n, Some(o)));
        let status = wait_exit(&mut node, Duration::from_secs(60));
        assert_eq!(status.signal(), Some(9), "{point}: the node ended with {status}");
        let steps = journal_steps(&journal);
        collect(&mut results, &steps, "proven", "/outcome/result_hash");
        collect(&mut cids, &steps, "uploaded", "/cid");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    for point in ["after_claim", "after_run", "after_upload", "after_submit"] {
        assert!(
            text.contains(&format!("ECLD_NODE_CRASH_AT={point}")),
            "{point} never hit:\n{text}"
        );
    }
    let node = start_node_with(&config, &log, &[]);
    let settled = chain.wait_settled(&ids, Duration::from_secs(60));
    // Let the node journal the ends, then read what it did.
    poll_until(
        "the node journals the end of every task (tasks without one)",
        Duration::from_secs(30),
        || {
            let steps = journal_steps(&journal);
            let unfinished: Vec<TaskId> =
                ids.iter().copied().filter(|id| count_steps(&steps, *id, "done") == 0).collect();
            unfinished
        },
        Vec::is_empty,
    );
    let steps = journal_steps(&journal);
    collect(&mut results, &steps, "proven", "/outcome/result_hash");
    collect(&mut cids, &steps, "uploaded", "/cid");
    stop(node);
    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    for id in &ids {
        assert_eq!(settled[id].len(), 1, "task {id}: {:?}", settled[id]);
        assert_eq!(settled[id][0].1, 0, "task {id} settled with {:?}", settled[id]);
        assert_eq!(results[id].len(), 1, "task {id} got different results: {:?}", results[id]);
        assert_eq!(cids[id].len(), 1, "task {id} uploaded under different CIDs: {:?}", cids[id]);
        // The enclave ran each task once, whatever the crashes.
        let finished = text
            .lines()
            .filter(|l| l.contains(&format!("task{{task={id}}}")) && l.contains("enclave finished"))
            .count();
        assert_eq!(finished, 1, "task {id} ran {finished} times:\n{text}");
        let v = stack.json(&["task", "verify", &id.get().to_string()], 0);
        assert_eq!(v["status"], 0, "{v}");
    }
    assert!(!text.contains("panicked"), "{text}");
}

/// A TCP proxy in front of the store that can be taken down (connections refused, open ones
/// cut) and brought back on the same port, as a store that restarts would.
struct Outage {
    port: u16,
    up: Arc<AtomicBool>,
}

impl Outage {
    fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let up2 = Arc::clone(&up);
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            loop {
                if !up2.load(Ordering::SeqCst) {
                    // Down: nobody listens, so connections are refused.
                    listener = None;
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let l = listener.get_or_insert_with(|| {
                    TcpListener::bind(("127.0.0.1", port)).expect("rebinding the store port")
                });
                l.set_nonblocking(true).unwrap();
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let server = TcpStream::connect(&target).unwrap();
                        pipe(client, server, &up2);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, up }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

/// Copies both ways until either side closes or the proxy goes down.
fn pipe(a: TcpStream, b: TcpStream, up: &Arc<AtomicBool>) {
    for (mut from, mut to) in [(a.try_clone().unwrap(), b.try_clone().unwrap()), (b, a)] {
        let up = Arc::clone(up);
        std::thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 16 * 1024];
            loop {
                if !up.load(Ordering::SeqCst) {
                    break;
                }
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

#[test]
fn the_store_goes_down_for_a_while_and_the_task_still_settles() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    let config = node_config(&stack, dir.path(), Some(&offers_for(&image, 1)));
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let store = Outage::start(stack.info["store"].as_str().unwrap());
    let node = start_node_with(
        &config,
        &log,
        &[("ECLD_NODE_STORE_URL", &store.url()), ("RUST_LOG", "ecld_node=debug")],
    );
    let offer = wait_for_offers(&journal, 1)[0];
    // A first task while the store is up: the module is cached and an enclave is warm.
    let first = submit(&stack, "stats", 0, Some(offer));
    chain.wait_settled(&[first], Duration::from_secs(60));

    // The store goes away; the task's input cannot be fetched; the node retries with backoff.
    store.set_up(false);
    let second = submit(&stack, "stats", 1, Some(offer));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap().contains("store_cat failed, retrying") {
        assert!(Instant::now() < deadline, "the node did not retry the store");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(SETTLE);
    assert!(!chain.settlements().contains_key(&second), "settled while the store was down");
    store.set_up(true);
    let settled = chain.wait_settled(&[second], Duration::from_secs(60));
    stop(node);
    assert_eq!(settled[&second], vec![(offer, 0)], "the task did not settle with SUCCESS");
    let v = stack.json(&["task", "verify", &second.get().to_string()], 0);
    assert_eq!(v["status"], 0, "{v}");
}

/// A valid secp256k1 public key (the generator) that is no node's sim platform key.
const STRANGER_SIM_KEY: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

#[test]
fn a_task_released_for_an_image_that_cannot_attest_is_retried_with_backoff_then_left_alone() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    // An image whose CAS policy admits another machine's sim platform only: this node's
    // enclave cannot attest, so the CAS gives it no keys.
    // Published through the SDK as `ecld up` publishes its examples.
    let module = std::fs::read(programs_dir().join("hash.wasm")).unwrap();
    let image = chain.rt.block_on(async {
        let config = ecld_sdk::ClientConfig::load(&stack.config()).unwrap();
        let client = ecld_sdk::Client::connect(&config).await.unwrap();
        let policy =
            ecld_sdk::PublishRequest::sim_policy(&module, &[STRANGER_SIM_KEY.to_owned()]).unwrap();
        let req = ecld_sdk::PublishRequest {
            name: "unattestable".to_owned(),
            version: "1".to_owned(),
            module,
            policy,
            cas: None,
            cas_token: None,
        };
        client.publish_image(&req).await.unwrap().id.to_string()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(&stack, dir.path(), Some(&offers_for(&image, 1)));
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let node = start_node_with(&config, &log, &[]);
    wait_for_offers(&journal, 1);
    // Open, so that this node claims it itself (only its offer serves the image).
    let task = submit(&stack, "unattestable", 0, None);

    // Released after each failed attestation, claimed again after 2 s then 4 s (jittered
    // down to half), and after the third failure left alone.
    let attempts = ecld_node::Tuning::default().release_backoff.attempts as usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    while !std::fs::read_to_string(&log).unwrap().contains("leaving it to other nodes") {
        assert!(Instant::now() < deadline, "the node never gave up on the task");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Open again for any other node, and this node leaves it alone instead of claiming and
    // releasing it in a loop (each round costs gas and attests in vain). The log line comes
    // with the journaled release; the releaseTask transaction and the journaled end follow.
    let released_events = || {
        chain
            .events()
            .iter()
            .filter(|e| matches!(e, ChainEvent::Released { task: t, .. } if *t == task))
            .count()
    };
    poll_until(
        "the last release is on chain and journaled as done (Released events, done steps)",
        Duration::from_secs(30),
        || (released_events(), count_steps(&journal_steps(&journal), task, "done")),
        |&(released, done)| released >= attempts && done >= attempts,
    );
    std::thread::sleep(SETTLE);
    let steps = journal_steps(&journal);
    let released = released_events();
    let state = chain.state(task);
    stop(node);
    assert_eq!(state, OnChain::Open);
    assert_eq!(released, attempts, "Released events");
    assert_eq!(count_steps(&steps, task, "releasing"), attempts, "{steps:?}");
    assert_eq!(count_steps(&steps, task, "done"), attempts, "{steps:?}");
    assert_eq!(count_steps(&steps, task, "claiming"), attempts, "claimed again: {steps:?}");
    assert!(!chain.settlements().contains_key(&task), "settled without an attested enclave");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("enclave did not start or attest"), "{text}");
    assert!(text.contains("will try the task again after a backoff"), "{text}");
}

/// With a batch window, proofs that finish close together settle in one `submitResults`:
/// fewer settlement transactions than tasks, every task settled once, paid, and verifiable.
#[test]
fn proofs_finished_together_settle_in_batches() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    let config = node_config(&stack, dir.path(), Some(&offers_priced(&image, 8, LOW_PRICE)));
    set_config(&config, "[chain]", "batch_window_ms", "3000");
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let node = start_node_with(&config, &log, &[]);
    let offer = wait_for_offers(&journal, 1)[0];
    let tasks: Vec<TaskId> = (0..4).map(|n| submit(&stack, "stats", n, Some(offer))).collect();
    let settled = chain.wait_settled(&tasks, Duration::from_secs(120));
    let blocks = chain.settlement_blocks();
    stop(node);
    for t in &tasks {
        assert_eq!(settled[t], vec![(offer, 0)], "task {t}: {settled:?}");
    }
    let txs: BTreeSet<u64> = tasks.iter().map(|t| blocks[t]).collect();
    assert!(txs.len() < tasks.len(), "4 tasks settled in {} blocks: {blocks:?}", txs.len());
    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(text.contains("batch of proofs settled in one transaction"), "{text}");
    for t in &tasks {
        let v = stack.json(&["task", "verify", &t.get().to_string()], 0);
        assert_eq!(v["status"], 0, "{v}");
    }
}

#[test]
fn an_enclave_that_dies_once_at_start_up_costs_a_short_backoff_not_the_deadline() {
    enclave_dies_once(false);
}

/// The same with the task matched to the node's offer at submission: after the release it is
/// open, and the node that released it (the only one that can take it) must see it so.
#[test]
fn a_matched_task_released_after_an_enclave_death_is_claimed_again_by_the_same_node() {
    enclave_dies_once(true);
}

fn enclave_dies_once(matched: bool) {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    // The only node that can take the task: its offer is cheaper than the task's maximum,
    // the stack's node asks more.
    let config = node_config(&stack, dir.path(), Some(&offers_priced(&image, 1, LOW_PRICE)));
    // The first enclave process dies at start-up (exit 3 before its ready line); later ones
    // start normally.
    let mark = dir.path().join("enclave-died");
    let wrapper = enclave_wrapper(
        dir.path(),
        &format!(
            "if [ ! -e {m:?} ]; then : > {m:?}; echo 'test wrapper: this enclave dies at start-up' >&2; exit 3; fi",
            m = mark.display().to_string()
        ),
    );
    set_config(&config, "[enclave]", "command", &format!("[{:?}]", wrapper.display().to_string()));
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let node = start_node_with(&config, &log, &[]);
    let offer = wait_for_offers(&journal, 1)[0];
    let task = if matched {
        submit(&stack, "stats", 0, Some(offer))
    } else {
        submit_open_at(&stack, "stats", 0, MID_PRICE)
    };
    // With one node, the old fixed 5-minute cooldown left the task waiting; the backoff after
    // a first failure is 1-2 s.
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    poll_until(
        "the node journals the task's two ends (its release, its settlement)",
        Duration::from_secs(30),
        || count_steps(&journal_steps(&journal), task, "done"),
        |&done| done >= 2,
    );
    let steps = journal_steps(&journal);
    stop(node);
    assert!(mark.exists(), "the wrapper never failed an enclave start");
    assert_eq!(settled[&task], vec![(offer, 0)], "{settled:?}");
    assert_eq!(count_steps(&steps, task, "releasing"), 1, "{steps:?}");
    // Matched: the first "claiming" is the adoption of the task the submission gave it.
    assert_eq!(count_steps(&steps, task, "claiming"), 2, "{steps:?}");
    assert_eq!(count_steps(&steps, task, "proven"), 1, "{steps:?}");
    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(text.contains("enclave did not start or attest"), "{text}");
    assert!(text.contains("will try the task again after a backoff"), "{text}");
    let v = stack.json(&["task", "verify", &task.get().to_string()], 0);
    assert_eq!(v["status"], 0, "{v}");
}

#[test]
fn a_store_down_past_the_retry_budget_refunds_the_requester_with_input_unavailable() {
    let stack = Stack::start();
    let chain = ChainView::new(&stack);
    let dir = tempfile::tempdir().unwrap();
    let image = image_id(&stack, "stats");
    let config = node_config(&stack, dir.path(), Some(&offers_for(&image, 1)));
    // A small budget (3 attempts, well under a second of backoff) so that the test is quick.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[store]\n", "[store]\nretry_attempts = 3\n")).unwrap();
    let log = dir.path().join("node.log");
    let journal = dir.path().join("data/journal.jsonl");
    let store = Outage::start(stack.info["store"].as_str().unwrap());
    let node = start_node_with(&config, &log, &[("ECLD_NODE_STORE_URL", &store.url())]);
    let offer = wait_for_offers(&journal, 1)[0];
    let first = submit(&stack, "stats", 0, Some(offer));
    chain.wait_settled(&[first], Duration::from_secs(60));

    store.set_up(false);
    let task = submit(&stack, "stats", 1, Some(offer));
    let settled = chain.wait_settled(&[task], Duration::from_secs(60));
    stop(node);
    // Status 16 INPUT_UNAVAILABLE: a system fault, so the contract refunds the requester.
    assert_eq!(settled[&task], vec![(offer, 16)], "{settled:?}");
    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    assert!(text.contains("input unavailable; the enclave will sign INPUT_UNAVAILABLE"), "{text}");
}
