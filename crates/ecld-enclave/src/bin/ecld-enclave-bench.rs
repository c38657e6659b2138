//! Enclave benchmark: per-task overhead of a warm `ecld enclave` process and a compute kernel
//! in the enclave against the same code run natively. Prints a table and replaces the
//! `## Enclave` section of docs/BENCHMARKS.md.
//!
//! Needs the `ecld` binary (`cargo build -p ecld`; path from `ECLD_BIN` or next to this
//! binary) and `scripts/build-programs`. Usage: `ecld-enclave-bench [TASKS] [PRIMES_BELOW]`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use ecld_crypto::{AgeIdentity, Payload, SignerKey, envelope};
use ecld_enclave::{
    attest::{DangerLocalSecrets, ImageSecrets},
    client::{EnclaveProcess, Task},
    protocol::{Limits, TaskBinding},
    runtime::{Exit, Runtime, RuntimeOptions},
};
use ecld_types::{Address, B256, ImageId, StatusCode, TaskId, content_hash};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

struct Bench {
    root: PathBuf,
    ecld: PathBuf,
    secrets_file: PathBuf,
    image_key: AgeIdentity,
    requester: AgeIdentity,
}

impl Bench {
    fn input(&self, stdin: &[u8]) -> anyhow::Result<Vec<u8>> {
        let payload =
            Payload::new(Address::ZERO, &self.requester.recipient(), None, stdin.to_vec())?;
        Ok(envelope::encrypt_bytes(&[self.image_key.recipient()], false, &payload.encode())?)
    }

    async fn spawn(&self, module: &Path) -> anyhow::Result<EnclaveProcess> {
        let module = module.display().to_string();
        let secrets = self.secrets_file.display().to_string();
        Ok(EnclaveProcess::spawn(
            &self.ecld,
            ["enclave", "--module", &module, "--danger-secrets-file", &secrets],
        )
        .await?)
    }

    /// Round trips of one task through a warm enclave process, under the limits of a spec
    /// with `memory_mb` and `max_runtime_s` (the enclave meters fuel, as always).
    async fn round_trips(
        &self,
        module: &Path,
        stdin: &[u8],
        n: usize,
        (memory_mb, max_runtime_s): (u32, u32),
    ) -> anyhow::Result<Vec<Duration>> {
        let mut enclave = self.spawn(module).await?;
        let input = self.input(stdin)?;
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 3 {
            let task = Task {
                binding: TaskBinding {
                    task_id: TaskId::new(i as u64 + 1).context("task id")?,
                    image_id: ImageId(B256::ZERO),
                    input_hash: content_hash(&input),
                    input_cid_hash: ecld_enclave::enclave::cid_hash(&input),
                    memory_mb,
                    max_runtime_s,
                    deadline: u64::MAX,
                    chain_id: 31337,
                    marketplace: Address::ZERO,
                },
                input: input.clone(),
            };
            let started = Instant::now();
            let outcome = enclave.run(task).await?;
            let took = started.elapsed();
            if outcome.proof.status != StatusCode::Success {
                bail!("benchmark task failed: {}", outcome.message);
            }
            // The first runs warm caches up; they are not counted.
            if i >= 3 {
                times.push(took);
            }
        }
        enclave.shutdown().await?;
        Ok(times)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let tasks: usize = args.get(1).map_or(Ok(200), |a| a.parse()).context("TASKS")?;
    let below: u32 = args.get(2).map_or(Ok(100_000_000), |a| a.parse()).context("PRIMES_BELOW")?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let ecld = match std::env::var_os("ECLD_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?.with_file_name("ecld"),
    };
    if !ecld.exists() {
        bail!("{} not found: run `cargo build -p ecld` or set ECLD_BIN", ecld.display());
    }
    let primes_wasm = root.join("programs/out/primes.wasm");
    if !primes_wasm.exists() {
        bail!("{} not found: run scripts/build-programs", primes_wasm.display());
    }

    let dir = tempfile::tempdir()?;
    let secrets = ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
    let secrets_file = dir.path().join("secrets.json");
    std::fs::write(&secrets_file, DangerLocalSecrets::file_contents(&secrets).as_bytes())?;
    let bench = Bench {
        root,
        ecld,
        secrets_file,
        image_key: secrets.identity,
        requester: AgeIdentity::generate(),
    };

    // 1. Per-task overhead: a trivial program (echo of 32 bytes) through the process boundary,
    // minus the same program run in process.
    let echo = bench.root.join("testdata/enclave/echo.wasm");
    let echo_spec = (256, 10);
    let limits = Limits::for_spec(echo_spec.0, echo_spec.1);
    let round_trip = median(bench.round_trips(&echo, &[b'x'; 32], tasks, echo_spec).await?);
    let rt = Runtime::new(RuntimeOptions::default())?;
    let echo_program = rt.compile(&std::fs::read(&echo)?)?;
    // wasmtime-wasi's synchronous calls must not run on an async worker thread.
    let program_time = median(
        tokio::task::spawn_blocking(move || {
            (0..tasks).map(|_| echo_program.run(&[b'x'; 32], &limits).elapsed).collect()
        })
        .await?,
    );
    let overhead = round_trip.saturating_sub(program_time);

    // 2. Compute kernel: primes below N, wasm in the enclave runtime vs the same source native.
    let native_bin = build_native_primes(&bench.root)?;
    let reps = 5;
    let input = below.to_string();
    let kernel_spec = (1024, 600);
    let kernel_limits = Limits::for_spec(kernel_spec.0, kernel_spec.1);
    let primes = rt.compile(&std::fs::read(&primes_wasm)?)?;
    // The cost of counting run time in fuel: the same kernel in an engine without metering.
    let unmetered_rt = Runtime::new(RuntimeOptions { meter_fuel: false })?;
    let unmetered = unmetered_rt.compile(&std::fs::read(&primes_wasm)?)?;
    let kernel_input = input.clone();
    let (runs, unmetered_runs) = tokio::task::spawn_blocking(move || {
        let metered = (0..reps)
            .map(|_| primes.run(kernel_input.as_bytes(), &kernel_limits))
            .collect::<Vec<_>>();
        let bare = (0..reps)
            .map(|_| unmetered.run(kernel_input.as_bytes(), &kernel_limits))
            .collect::<Vec<_>>();
        (metered, bare)
    })
    .await?;
    let mut unmetered_times = Vec::new();
    for run in unmetered_runs {
        if run.exit != Exit::Exited(0) {
            bail!("primes without fuel metering failed: {:?}", run.exit);
        }
        unmetered_times.push(run.elapsed);
    }
    let mut wasm_times = Vec::new();
    let mut wasm_out = Vec::new();
    for run in runs {
        if run.exit != Exit::Exited(0) {
            bail!("primes in the enclave runtime failed: {:?}", run.exit);
        }
        wasm_times.push(run.elapsed);
        wasm_out = run.stdout;
    }
    let mut native_times = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        let out = Command::new(&native_bin)
            .stdin(std::fs::File::open(write_temp(dir.path(), &input)?)?)
            .output()?;
        native_times.push(started.elapsed());
        if out.stdout != wasm_out {
            bail!("native and wasm primes disagree");
        }
    }
    let boundary =
        median(bench.round_trips(&primes_wasm, input.as_bytes(), reps, kernel_spec).await?);
    let (wasm, native) = (median(wasm_times), median(native_times));
    let ratio = wasm.as_secs_f64() / native.as_secs_f64();
    let unmetered = median(unmetered_times);
    let fuel_cost = wasm.as_secs_f64() / unmetered.as_secs_f64();

    let ecld_benchkit::Machine { cores, cpu, date, .. } = ecld_benchkit::Machine::detect();
    let section = format!(
        "## Enclave\n\n\
Machine: {cores} cores, {cpu}; {date}; dev profile (hot dependencies at opt-level 2, the rest at 1; the example \
programs are release wasm32-wasip1 builds). `cargo build -p ecld && scripts/build-programs && \
cargo run -p ecld-enclave --bin ecld-enclave-bench -- {tasks} {below}`.\n\n\
*Per-task overhead*: a warm `ecld enclave` process (module compiled once) runs a trivial \
program (`testdata/enclave/echo.wasm`, 32 bytes in and out) {tasks} times through the real frame \
protocol on stdin/stdout: write frame, keccak input check, age decrypt, payload parse, fresh \
wasm store, run, result envelope, age encrypt, EIP-712 sign, frame back. The overhead is the \
median round trip minus the median in-process run of the same program (instantiate + run).\n\n\
| measure | median ms |\n| --- | ---: |\n\
| round trip through the process boundary | {} |\n\
| the program alone, in process | {} |\n\
| **enclave overhead per task** | **{}** |\n\n\
*Compute kernel*: `programs/primes` (sieve of Eratosthenes, primes below {below}), the same \
Rust source as release wasm in the enclave runtime (cranelift, epoch interruption and fuel \
metering on, as in every enclave: a task's run time is fuel) and as a release native binary \
(its process start included, ~1 ms). Median of {reps}.\n\n\
| run | median ms |\n| --- | ---: |\n\
| native (x86_64, release) | {} |\n\
| enclave runtime, in process, without fuel metering | {} |\n\
| enclave runtime, in process (fuel metered) | {} |\n\
| through a warm `ecld enclave` (round trip) | {} |\n\n\
Ratio wasm / native: **{ratio:.2}×**. Cost of fuel metering (metered / unmetered): \
**{fuel_cost:.2}×**.\n\n{}",
        ms(round_trip),
        ms(program_time),
        ms(overhead),
        ms(native),
        ms(unmetered),
        ms(wasm),
        ms(boundary),
        ecld_benchkit::goals_table(&[
            ecld_benchkit::Goal::at_most(
                "enclave overhead per task, warm enclave",
                overhead.as_secs_f64() * 1e3,
                5.0,
                "ms",
            ),
            ecld_benchkit::Goal::at_most(
                format!("compute kernel, wasm / native (primes below {below})"),
                ratio,
                1.5,
                "×",
            ),
        ]),
    );
    println!("{section}");
    ecld_benchkit::write_section(
        &ecld_benchkit::benchmarks_file(&bench.root),
        "## Enclave",
        &section,
    )?;
    Ok(())
}

fn write_temp(dir: &Path, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("primes-input");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn build_native_primes(root: &Path) -> anyhow::Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let target = target.join("programs-native");
    let status = Command::new("cargo")
        .args(["build", "--quiet", "--release", "--manifest-path"])
        .arg(root.join("programs/primes/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()?;
    if !status.success() {
        bail!("building the native primes binary failed");
    }
    Ok(target.join("release/primes"))
}
