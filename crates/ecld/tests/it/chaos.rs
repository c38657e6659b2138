//! Fault injection at small scale: tasks keep flowing while the node is paused (SIGSTOP /
//! SIGCONT) and its enclave processes are killed (SIGKILL) at random moments. Every task
//! must end settled or reclaimed, and the Marketplace's books must balance.
//!
//! `ECLD_CHAOS_TASKS` sets the number of tasks (default 20); `scripts/chaos` runs it at
//! 1,000.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use ecld_sdk::{Client, ClientConfig, OfferChoice, TaskRequest, TaskState};

use crate::e2e_stack::Stack;

/// The direct children of `pid` (from `/proc/<pid>/task/*/children`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
        }
    }
    out
}

fn kill(signal: &str, pid: u32) {
    let _ =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// A small xorshift generator: the run is reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_settle_or_are_reclaimed_while_the_node_is_paused_and_enclaves_killed() {
    let n: usize =
        std::env::var("ECLD_CHAOS_TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = std::env::var("ECLD_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    eprintln!("chaos: {n} tasks, seed {seed}");
    let stack = Stack::start();
    let c = Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap();
    let stats = c.resolve_image("stats").await.unwrap();
    let node = u32::try_from(stack.info["node"]["pid"].as_u64().expect("the node's pid")).unwrap();
    let before = c.balance(None).await.unwrap();

    // The chaos thread: pause the node, or kill one of its enclaves, every 50–400 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let (pauses, kills) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let chaos = {
        let (stop, pauses, kills) = (stop.clone(), pauses.clone(), kills.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(seed);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50 + rng.below(350)));
                if rng.below(2) == 0 {
                    kill("STOP", node);
                    std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
                    kill("CONT", node);
                    pauses.fetch_add(1, Ordering::Relaxed);
                } else {
                    let enclaves = children(node);
                    if !enclaves.is_empty() {
                        let victim =
                            enclaves[usize::try_from(rng.below(enclaves.len() as u64)).unwrap()];
                        kill("KILL", victim);
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            kill("CONT", node);
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut req =
            TaskRequest::new(stats.id, format!("chaos task {i} alpha beta\n").into_bytes());
        req.deadline = Duration::from_secs(600);
        // Open tasks: more than the node's slots are in flight, and it claims them as it can.
        req.offer = OfferChoice::Open;
        req.price = Some(alloy::primitives::U256::from(2_000_000_000_000_000_u64));
        tasks.push(c.submit(&req).await.unwrap().task);
    }
    // Let the faults go on while the node works, then give it time to recover.
    let chaos_until = started + Duration::from_secs(20.max(n as u64 / 5));
    while Instant::now() < chaos_until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    chaos.join().unwrap();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unfinished = Vec::new();
    // One recovery budget for all tasks, so a stuck task costs it once, not once per task.
    let recovered_by = Instant::now() + Duration::from_secs(60.max(n as u64 / 2));
    for &t in &tasks {
        let left =
            recovered_by.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
        match c.wait(t, left).await {
            Ok(info) if info.state.is_final() => {
                let key = match info.state {
                    TaskState::Done { .. } => "done",
                    _ => "reclaimed",
                };
                *states.entry(key).or_default() += 1;
            }
            _ => unfinished.push(t),
        }
    }
    // Whatever a node still holds after recovery is taken back after its deadline.
    if !unfinished.is_empty() {
        eprintln!("chaos: {} tasks unfinished after recovery: {unfinished:?}", unfinished.len());
        let rpc: std::net::SocketAddr = stack.info["rpc"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"evm_increaseTime","params":[700]},{"jsonrpc":"2.0","id":2,"method":"evm_mine","params":[]}]"#;
        let (status, answer) = crate::adversarial::http(
            rpc,
            "POST",
            "/",
            "Content-Type: application/json\r\n",
            body.as_bytes(),
        );
        assert!(status == 200 && !answer.contains("\"error\""), "{answer}");
        for &t in &unfinished {
            c.reclaim(t).await.unwrap();
            *states.entry("reclaimed after the deadline").or_default() += 1;
        }
    }
    eprintln!(
        "chaos: {n} tasks in {:.1}s, {} pauses, {} enclave kills: {states:?}",
        started.elapsed().as_secs_f64(),
        pauses.load(Ordering::Relaxed),
        kills.load(Ordering::Relaxed)
    );
    for &t in &tasks {
        assert!(c.task(t).await.unwrap().state.is_final(), "task {t} is not final");
    }
    let ledger = c.ledger().await.unwrap();
    assert!(ledger.conserved(), "escrowed ≠ paid + refunded + held: {ledger:?}");
    assert_eq!(ledger.held, ledger.balance, "the Marketplace's balance is what it holds");
    assert!(c.balance(None).await.unwrap() <= before, "the requester gained tokens");
    assert!(states.get("done").copied().unwrap_or(0) > 0, "no task ran at all: {states:?}");
}
