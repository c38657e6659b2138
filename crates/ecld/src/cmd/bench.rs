//! `ecld bench`: measurements that write their section of docs/BENCHMARKS.md; `ecld bench all`
//! runs every benchmark of the project.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use ecld_sdk::{Client, Step, TaskRequest, Timings};

use super::up;

mod all;
mod node;

/// Arguments of `ecld bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// End-to-end latency and throughput of a trivial task on a fresh local stack: submit to
    /// verified, decrypted result.
    E2e(E2eArgs),
    /// Tasks per second one node drains with its slots, and where a task's time goes
    /// (chain, store, enclave).
    Node(node::NodeArgs),
    /// Every benchmark of the project in turn (the bench binaries of the other crates, `e2e`,
    /// `node`, the web page's where there is one), each rewriting its section of
    /// docs/BENCHMARKS.md, then a summary table. `scripts/bench` builds what it needs first.
    All(all::AllArgs),
}

#[derive(Debug, clap::Args)]
struct E2eArgs {
    /// Tasks run one after another for the latency figures.
    #[arg(long, default_value_t = 200)]
    tasks: usize,
    /// Concurrent clients (each its own account) for the throughput figure.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Tasks run by all clients together for the throughput figure.
    #[arg(long, default_value_t = 1000)]
    throughput_tasks: usize,
    /// The image to run (its program should do almost nothing).
    #[arg(long, default_value = "hash")]
    image: String,
    /// The input of every task.
    #[arg(long, default_value = "1 2 3")]
    input: String,
    /// Example programs to publish.
    #[arg(long, env = "ECLD_PROGRAMS", default_value = "programs/out")]
    programs: PathBuf,
    /// The node's batch windows to compare, in milliseconds (each on a fresh stack): how long
    /// a proof waits for others to settle with it in one `submitResults`. The first is the
    /// stack the latency steps and the goals are measured on.
    #[arg(long, value_delimiter = ',', default_value = "0,100,400")]
    batch_windows: Vec<u64>,
    /// Tasks run one after another for the latency figure of each further batch window.
    #[arg(long, default_value_t = 40)]
    window_tasks: usize,
    /// Markdown file whose `## End to end` section is replaced with the results.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    write: PathBuf,
}

/// Runs `ecld bench`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::E2e(a) => e2e(a).await,
        Command::Node(a) => node::run(a).await,
        Command::All(a) => all::run(a).await,
    }
}

async fn e2e(a: E2eArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!a.batch_windows.is_empty(), "--batch-windows needs at least one window");
    let mut runs = Vec::new();
    for (i, window) in a.batch_windows.iter().enumerate() {
        let tasks = if i == 0 { a.tasks } else { a.window_tasks.min(a.tasks) };
        eprintln!(
            "bench: batch window {window} ms: {tasks} tasks one at a time, then {} tasks by {} clients",
            a.throughput_tasks, a.clients
        );
        let dir = tempfile::tempdir()?;
        let stack = up::start(&up::Args {
            data_dir: Some(dir.path().to_owned()),
            rpc_port: 0,
            store_port: 0,
            cas_port: 0,
            web_port: 0,
            ephemeral_ports: true,
            programs: a.programs.clone(),
            no_node: false,
            node_slots: u16::try_from(a.clients.max(8) * 2).unwrap_or(u16::MAX),
            batch_window_ms: *window,
            stop_on_stdin_eof: false,
        })
        .await?;
        let result = measure(&stack, &a, tasks).await;
        stack.stop().await;
        runs.push((*window, result?));
    }
    let report = render(&a, &runs);
    println!("{report}");
    ecld_benchkit::write_section(&a.write, "## End to end", &report)?;
    eprintln!("bench: wrote the `## End to end` section of {}", a.write.display());
    Ok(())
}

/// What one stack measured.
#[derive(Debug)]
struct Run {
    /// Submit to verified result, one task at a time.
    totals: Vec<Duration>,
    steps: Vec<Timings>,
    /// How long the clients took to run their tasks together.
    elapsed: Duration,
    /// Submit to verified result of each task run by the concurrent clients.
    loaded: Vec<Duration>,
    /// Settlement transactions, and the proofs they settled.
    settle_txs: usize,
    proofs: usize,
}

impl Run {
    /// Tasks the concurrent clients ran.
    fn done(&self) -> usize {
        self.loaded.len()
    }

    fn per_second(&self) -> f64 {
        self.done() as f64 / self.elapsed.as_secs_f64()
    }
}

async fn measure(stack: &up::Stack, a: &E2eArgs, tasks: usize) -> anyhow::Result<Run> {
    let config = stack.config()?;
    let user = Client::connect(&config).await?;
    let image = user.resolve_image(&a.image).await.with_context(|| {
        format!("the benchmark runs image `{}`; is programs/out/{}.wasm built?", a.image, a.image)
    })?;
    let req = TaskRequest::new(image.id, a.input.clone().into_bytes());
    let timeout = Duration::from_secs(60);

    // Steady state: every client has a deposit in the Marketplace that its tasks draw on.
    let deposit = alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(21u64));
    user.deposit(deposit).await?;
    // Warm up: the node's enclave for the image starts and attests once.
    for _ in 0..3 {
        user.run(&req, timeout, |_, _| ()).await?;
    }

    // Latency: one client, one task at a time.
    let mut totals = Vec::with_capacity(tasks);
    let mut steps: Vec<Timings> = Vec::with_capacity(tasks);
    for i in 0..tasks {
        let t = Instant::now();
        let r = user.run(&req, timeout, |_, _| ()).await?;
        anyhow::ensure!(r.output.is_some(), "task {i} produced no result: {}", r.status);
        totals.push(t.elapsed());
        steps.push(r.timings);
    }

    // Throughput: many clients, each with its own funded account and identity.
    let keys = stack.spare_accounts(a.clients)?;
    let mut clients = Vec::new();
    for key in keys {
        clients.push(
            Client::with_parts(
                &config,
                *user.deployment(),
                Some(key),
                Some(ecld_crypto::AgeIdentity::generate()),
            )
            .await?,
        );
    }
    for c in &clients {
        c.deposit(deposit).await?;
        c.run(&req, timeout, |_, _| ()).await?;
    }
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(a.throughput_tasks));
    let start = Instant::now();
    let mut joins = Vec::new();
    for c in clients {
        let remaining = Arc::clone(&remaining);
        let req = req.clone();
        joins.push(tokio::spawn(async move {
            let mut took = Vec::new();
            while remaining
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let t = Instant::now();
                c.run(&req, timeout, |_, _| ()).await?;
                took.push(t.elapsed());
            }
            Ok::<Vec<Duration>, ecld_sdk::Error>(took)
        }));
    }
    let mut loaded = Vec::new();
    for j in joins {
        loaded.extend(j.await??);
    }
    let elapsed = start.elapsed();
    let ledger = user.ledger().await?;
    anyhow::ensure!(
        ledger.conserved(),
        "token books do not balance after the benchmark: {ledger:?}"
    );
    let (settle_txs, proofs) = settlements(&config, user.deployment()).await?;
    Ok(Run { totals, steps, elapsed, loaded, settle_txs, proofs })
}

/// Settlement transactions on the chain and the proofs they settled (`ResultSubmitted` logs).
async fn settlements(
    config: &ecld_sdk::ClientConfig,
    deployment: &ecld_contracts::Deployment,
) -> anyhow::Result<(usize, usize)> {
    use alloy::{providers::Provider, rpc::types::Filter, sol_types::SolEvent};
    let provider = alloy::providers::ProviderBuilder::new().connect_http(config.rpc.parse()?);
    let filter = Filter::new()
        .address(deployment.marketplace)
        .event_signature(ecld_contracts::Marketplace::ResultSubmitted::SIGNATURE_HASH)
        .from_block(deployment.deploy_block);
    let logs = provider.get_logs(&filter).await?;
    let txs: std::collections::HashSet<_> =
        logs.iter().filter_map(|l| l.transaction_hash).collect();
    Ok((txs.len(), logs.len()))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn render(a: &E2eArgs, runs: &[(u64, Run)]) -> String {
    let Some((window, first)) = runs.first() else { return String::new() };
    let (totals, steps, done, elapsed, per_second) =
        (&first.totals, &first.steps, first.done(), first.elapsed, first.per_second());
    let mut sorted = totals.to_vec();
    sorted.sort();
    let machine = ecld_benchkit::Machine::detect();
    let mut s = String::new();
    s.push_str(&format!(
        "Machine: {} cores, {}. Date: {}. Dev profile (hot dependencies at opt-level 2, the rest at 1). \
         Measured with `ecld bench e2e` on a fresh `ecld up` stack (devnet, store, CAS, one node, \
         sim TEE), image `{}`, input `{}`. Reproduce: `scripts/build-programs && cargo run -p ecld -- bench e2e`.\n\n",
        machine.cores,
        machine.cpu,
        machine.date,
        a.image,
        a.input
    ));
    s.push_str(&format!(
        "Latency, submit to verified decrypted result, {} tasks one at a time (node batch window \
         {window} ms):\n\n\
         | | p50 ms | p99 ms | mean ms |\n| --- | ---: | ---: | ---: |\n",
        totals.len()
    ));
    let mean =
        |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1);
    let p50 = percentile(&sorted, 50.0);
    s.push_str(&format!(
        "| **total** | **{}** | **{}** | {} |\n",
        ms(p50),
        ms(percentile(&sorted, 99.0)),
        ms(mean(totals))
    ));
    for step in Step::ALL {
        let mut v: Vec<Duration> = steps.iter().map(|t| t.get(step)).collect();
        v.sort();
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            step.label(),
            ms(percentile(&v, 50.0)),
            ms(percentile(&v, 99.0)),
            ms(mean(&v))
        ));
    }
    s.push_str(&format!(
        "\nThroughput with {} concurrent clients: {done} tasks in {:.2} s = **{per_second:.0} \
         tasks/s**.\n\n",
        a.clients,
        elapsed.as_secs_f64()
    ));
    s.push_str(&windows_table(a, runs));
    s.push_str(&ecld_benchkit::goals_table(&[
        ecld_benchkit::Goal::at_most(
            format!("latency p50, {} tasks one at a time", totals.len()),
            p50.as_secs_f64() * 1e3,
            150.0,
            "ms",
        ),
        ecld_benchkit::Goal::at_least(
            format!("throughput, {} clients, {} cores", a.clients, machine.cores),
            per_second,
            200.0,
            "tasks/s",
        ),
    ]));
    s.push_str(
        "The steps, as `ecld_sdk::Step` names and times them: *encrypt* the payload to the \
         image's enclave key; *upload* the ciphertext to the store; *submit* \
         `submitTask`, its escrow drawn from the account's deposit (each client deposited once \
         before the run); *execute* is steps 3–8, the wait until the \
         task is settled (the node claims nothing: tasks are matched at submission; it fetches \
         the input, runs the enclave, uploads the result and relays the proof); *proof* reads \
         the task's `ResultSubmitted` log; *download* fetches the encrypted result from the \
         store, every block checked against its CID; *verify* checks the proof (signer, chain, \
         contract, input, result and code hashes); *decrypt* opens the result. All but \
         *execute* run in the client.\n",
    );
    s
}

/// Latency and throughput against the node's batch window, one fresh stack per window.
fn windows_table(a: &E2eArgs, runs: &[(u64, Run)]) -> String {
    let mut s = format!(
        "Against the node's batch window (`ecld up --batch-window-ms`; each row a fresh stack; \
         the one-at-a-time latency from {} tasks on the first row's stack, {} on the others'; \
         under load: {} clients, {} tasks):\n\n\
         | batch window ms | latency p50 ms, one at a time | latency p50 ms, under load | \
         throughput tasks/s | proofs per settlement transaction |\n\
         | ---: | ---: | ---: | ---: | ---: |\n",
        a.tasks,
        a.window_tasks.min(a.tasks),
        a.clients,
        a.throughput_tasks
    );
    for (window, run) in runs {
        let mut one = run.totals.clone();
        one.sort();
        let mut loaded = run.loaded.clone();
        loaded.sort();
        s.push_str(&format!(
            "| {window} | {} | {} | {:.0} | {:.2} |\n",
            ms(percentile(&one, 50.0)),
            ms(percentile(&loaded, 50.0)),
            run.per_second(),
            run.proofs as f64 / run.settle_txs.max(1) as f64
        ));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_step_and_marks_a_missed_throughput_goal() {
        let a = E2eArgs {
            tasks: 200,
            clients: 16,
            throughput_tasks: 1000,
            image: "hash".into(),
            input: "1 2 3".into(),
            programs: PathBuf::from("programs/out"),
            batch_windows: vec![0, 100],
            window_tasks: 40,
            write: PathBuf::from("B.md"),
        };
        let mut t = Timings::default();
        t.set(Step::Proof, Duration::from_micros(1500));
        t.set(Step::Download, Duration::from_micros(700));
        let run = |latency_ms: u64, per_second: f64, settle_txs: usize| Run {
            totals: vec![Duration::from_millis(latency_ms); 200],
            steps: vec![t; 200],
            elapsed: Duration::from_secs_f64(1000.0 / per_second),
            loaded: vec![Duration::from_millis(2 * latency_ms); 1000],
            settle_txs,
            proofs: 1000,
        };
        let s = render(&a, &[(0, run(23, 100.0, 1000)), (100, run(130, 150.0, 125))]);
        let labels: Vec<&str> = s
            .lines()
            .filter(|l| {
                l.starts_with("| ") && !l.starts_with("| **total") && !l.starts_with("| ---")
            })
            .filter_map(|l| l.split(" | ").next()?.strip_prefix("| "))
            .take(Step::ALL.len())
            .collect();
        assert_eq!(labels, Step::ALL.map(Step::label), "{s}");
        assert!(s.contains("| proof | 1.5 | 1.5 | 1.5 |\n| download | 0.7 | 0.7 | 0.7 |"), "{s}");
        assert!(
            s.contains("| latency p50, 200 tasks one at a time | ≤ 150 ms | 23 ms | met |"),
            "{s}"
        );
        assert!(s.contains("| ≥ 200 tasks/s | 100 tasks/s | **MISSED** |"), "{s}");
        assert!(
            s.contains("| 0 | 23.0 | 46.0 | 100 | 1.00 |\n| 100 | 130.0 | 260.0 | 150 | 8.00 |"),
            "{s}"
        );
    }

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
    }
}
