//! `ecld bench node`: how many trivial tasks one node drains per second with its slots, and
//! where the time of a task goes (chain, store, enclave), from the node's own step metrics.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use ecld_sdk::{Client, OfferChoice, TaskRequest};
use ecld_types::U256;

use super::up;

/// Arguments of `ecld bench node`.
#[derive(Debug, clap::Args)]
pub(super) struct NodeArgs {
    /// Open tasks submitted before the node starts; the node drains them.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Slots of the node's offer (tasks run at once).
    #[arg(long, default_value_t = 4)]
    slots: u16,
    /// The image to run (its program should do almost nothing).
    #[arg(long, default_value = "hash")]
    image: String,
    /// The input of every task.
    #[arg(long, default_value = "1 2 3")]
    input: String,
    /// Example programs to publish.
    #[arg(long, env = "ECLD_PROGRAMS", default_value = "programs/out")]
    programs: PathBuf,
    /// Fresh stacks measured; the run with the median throughput is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Markdown file whose `## Node` section is replaced with the results.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    write: PathBuf,
}

/// The offer price of the benchmark's node (as `ecld up`'s).
const PRICE: u64 = 1_000_000_000_000_000;

pub(super) async fn run(a: NodeArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for i in 0..a.runs.max(1) {
        let r = once(&a).await?;
        eprintln!("bench: run {}: {} tasks in {:.2} s", i + 1, a.tasks, r.0.as_secs_f64());
        runs.push(r);
    }
    runs.sort_by_key(|r| r.0);
    let all: Vec<f64> = runs.iter().map(|r| a.tasks as f64 / r.0.as_secs_f64()).collect();
    let (elapsed, before, after) = &runs[runs.len() / 2];
    let report = render(&a, *elapsed, before, after, &all);
    println!("{report}");
    ecld_benchkit::write_section(&a.write, "## Node", &report)?;
    eprintln!("bench: wrote the `## Node` section of {}", a.write.display());
    Ok(())
}

/// One fresh stack: (drain time, metrics before, metrics after).
async fn once(a: &NodeArgs) -> anyhow::Result<(Duration, String, String)> {
    let dir = tempfile::tempdir()?;
    let stack = up::start(&up::Args {
        data_dir: Some(dir.path().to_owned()),
        rpc_port: 0,
        store_port: 0,
        cas_port: 0,
        web_port: 0,
        ephemeral_ports: true,
        programs: a.programs.clone(),
        no_node: true,
        node_slots: a.slots,
        batch_window_ms: 0,
        stop_on_stdin_eof: false,
    })
    .await?;
    let result = measure(&stack, a).await;
    stack.stop().await;
    result
}

/// The node's configuration: `ecld up`'s node key and sim platform key, one offer.
fn node_config(stack: &up::Stack, image: &str, slots: u16) -> anyhow::Result<PathBuf> {
    let data = stack.data_dir();
    let config = stack.config()?;
    let node_dir = data.join("node");
    let toml = format!(
        "data_dir = {dir:?}\n\n[chain]\nrpc_url = {rpc:?}\nkey_file = {key:?}\ndeployment_file = {dep:?}\npoll_interval_ms = 5\nreorg_depth = 0\n\n\
         [store]\nurl = {store:?}\n\n[cas]\nurl = {cas:?}\n\n[enclave]\nplatform = \"sim\"\nsim_key_file = {sim:?}\n\n\
         [[offers]]\nimage = \"{image}\"\nslots = {slots}\nmemory_mb = 256\nmax_runtime_s = 60\nprice = \"{PRICE}\"\n",
        dir = node_dir.display().to_string(),
        rpc = config.rpc,
        key = data.join("keys/node.eth.key").display().to_string(),
        dep = data.join("deployment.json").display().to_string(),
        store = config.store,
        cas = config.cas.clone().unwrap_or_default(),
        sim = node_dir.join("sim-platform.key").display().to_string(),
    );
    std::fs::create_dir_all(&node_dir)?;
    let file = node_dir.join("node.toml");
    std::fs::write(&file, toml)?;
    Ok(file)
}

/// The value of the sample `name{labels}` in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn measure(stack: &up::Stack, a: &NodeArgs) -> anyhow::Result<(Duration, String, String)> {
    let user = Client::connect(&stack.config()?).await?;
    let image = user.resolve_image(&a.image).await.with_context(|| {
        format!("the benchmark runs image `{}`; is programs/out/{}.wasm built?", a.image, a.image)
    })?;
    let mut req = TaskRequest::new(image.id, a.input.clone().into_bytes());
    req.offer = OfferChoice::Open;
    req.price = Some(U256::from(PRICE));

    // A backlog of open tasks, then the node: its drain rate is the node's throughput.
    let warmup = a.slots as usize;
    for _ in 0..a.tasks + warmup {
        user.submit(&req).await?;
    }
    let cfg = ecld_node::NodeConfig::load(&node_config(stack, &image.id.to_string(), a.slots)?)?;
    let metrics = ecld_node::metrics::handle();
    // The recorder is process-wide: count from what earlier runs left.
    let count = || {
        sample(&metrics.render(), "ecld_node_tasks_total{end=\"settled\",status=\"0\"}")
            .unwrap_or(0.0) as usize
    };
    let base = count();
    let settled = || count() - base;
    let node = ecld_node::spawn(cfg).await?;
    // The first `slots` tasks start the enclaves (attestation) and fill the module cache.
    let deadline = Instant::now() + Duration::from_secs(120);
    while settled() < warmup {
        anyhow::ensure!(Instant::now() < deadline, "the node settled no task within 120 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = metrics.render();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    while settled() < a.tasks + warmup {
        anyhow::ensure!(Instant::now() < deadline, "the node did not drain its backlog in 600 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed();
    let after = metrics.render();
    node.stop().await?;
    let ledger = user.ledger().await?;
    anyhow::ensure!(ledger.conserved(), "token books do not balance: {ledger:?}");
    Ok((elapsed, before, after))
}

fn render(a: &NodeArgs, elapsed: Duration, before: &str, after: &str, all: &[f64]) -> String {
    let per_second = a.tasks as f64 / elapsed.as_secs_f64();
    let machine = ecld_benchkit::Machine::detect();
    let mut s = format!(
        "Machine: {} cores, {}. Date: {}. Dev profile (hot dependencies at opt-level 2, the rest at 1). \
         Measured with `ecld bench node`: a fresh `ecld up --no-node` stack (devnet, store, CAS, \
         sim TEE); {} open tasks of image `{}` (input `{}`) are submitted first, then one node \
         (in process) with one offer of {} slots drains them: it claims each task, fetches the \
         input, runs the enclave, uploads the result and relays the proof. The first {} tasks \
         (enclave start and attestation) are not counted. Reproduce: \
         `scripts/build-programs && cargo run -p ecld -- bench node`.\n\n",
        machine.cores, machine.cpu, machine.date, a.tasks, a.image, a.input, a.slots, a.slots,
    );
    s.push_str(&format!(
        "Throughput, median of {} runs: {} tasks in {:.2} s = **{per_second:.1} tasks/s** with {} \
         slots (all runs: {} tasks/s). The table below is from the median run.\n\n",
        all.len(),
        a.tasks,
        elapsed.as_secs_f64(),
        a.slots,
        all.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(", "),
    ));
    s.push_str(
        "Where a task's time goes (the node's `ecld_node_step_seconds`; median over all runs, \
         mean and share of step time over the measured tasks):\n\n\
         | step | part | median ms | mean ms | share |\n| --- | --- | ---: | ---: | ---: |\n",
    );
    let steps = [
        ("claim", "chain"),
        ("fetch_input", "store"),
        ("enclave_run", "enclave"),
        ("upload", "store"),
        ("submit", "chain"),
    ];
    let delta =
        |series: &str| sample(after, series).unwrap_or(0.0) - sample(before, series).unwrap_or(0.0);
    let sums: Vec<(f64, f64)> = steps
        .iter()
        .map(|(step, _)| {
            (
                delta(&format!("ecld_node_step_seconds_sum{{step=\"{step}\"}}")),
                delta(&format!("ecld_node_step_seconds_count{{step=\"{step}\"}}")),
            )
        })
        .collect();
    let total: f64 = sums.iter().map(|(sum, _)| sum).sum();
    for ((step, part), (sum, count)) in steps.iter().zip(&sums) {
        let median =
            sample(after, &format!("ecld_node_step_seconds{{step=\"{step}\",quantile=\"0.5\"}}"))
                .unwrap_or(0.0);
        let mean = if *count > 0.0 { sum / count } else { 0.0 };
        let share = if total > 0.0 { sum / total * 100.0 } else { 0.0 };
        s.push_str(&format!(
            "| {step} | {part} | {:.1} | {:.1} | {share:.0}% |\n",
            median * 1e3,
            mean * 1e3
        ));
    }
    let by_part = |p: &str| -> f64 {
        steps.iter().zip(&sums).filter(|((_, part), _)| *part == p).map(|(_, (sum, _))| sum).sum()
    };
    let pct = |x: f64| if total > 0.0 { x / total * 100.0 } else { 0.0 };
    let gas =
        |tx: &str| delta(&format!("ecld_node_gas_used_total{{tx=\"{tx}\"}}")) / a.tasks as f64;
    s.push_str(&format!(
        "\nBy part: chain {:.0}%, store {:.0}%, enclave {:.0}% of the step time. Gas per task paid \
         by the node: claimTask {:.0}, submitResult {:.0}. Step times overlap ({} tasks run at \
         once; the node estimates gas and awaits receipts concurrently but hands the chain one \
         transaction at a time per account, to give each its nonce), so the throughput is not \
         1 / the sum of the medians.\n",
        pct(by_part("chain")),
        pct(by_part("store")),
        pct(by_part("enclave")),
        gas("claimTask"),
        gas("submitResult"),
        a.slots,
    ));
    s
}
