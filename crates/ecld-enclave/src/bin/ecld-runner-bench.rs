//! Benchmark of the runner images (docs/runners.md); prints a table and writes the
//! `## Runners` section of docs/BENCHMARKS.md.
//!
//! Needs `scripts/build-programs` (which builds `programs/out/python.wasm` and `hash.wasm`).
//! Usage: `cargo run -p ecld-enclave --bin ecld-runner-bench [-- TASKS]`.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use anyhow::{Context as _, bail};
use ecld_crypto::{AgeIdentity, Payload, SignerKey, envelope};
use ecld_enclave::{
    attest::ImageSecrets,
    enclave::Enclave,
    image::Measurement,
    protocol::{Limits, TaskBinding},
    runner::wasm_runner_image,
    runtime::{Runtime, RuntimeOptions},
};
use ecld_types::{ImageId, StatusCode, TaskId, content_hash};

struct Image {
    enclave: Enclave,
    requester: AgeIdentity,
}

impl Image {
    fn start(runtime: &Runtime, module: &[u8]) -> anyhow::Result<(Self, Duration)> {
        let t = Instant::now();
        let program = runtime.compile(module)?;
        let compile = t.elapsed();
        let secrets =
            ImageSecrets { identity: AgeIdentity::generate(), signer: SignerKey::generate() };
        let enclave = Enclave::new(program, secrets, Measurement::of(module), "none", None);
        Ok((Self { enclave, requester: AgeIdentity::generate() }, compile))
    }

    /// One task through the whole enclave path (decrypt, run, encrypt, sign); its status
    /// and wall time.
    fn task(
        &self,
        code: &[u8],
        input: &[u8],
        memory_mb: u64,
    ) -> anyhow::Result<(StatusCode, Duration)> {
        let payload = Payload::new(
            Address::repeat_byte(1),
            &self.requester.recipient(),
            Some(code.to_vec()),
            input.to_vec(),
        )?;
        let key = self.enclave.ready().recipient.parse::<ecld_crypto::AgeRecipient>()?;
        let ciphertext = envelope::encrypt_bytes(&[key], false, &payload.encode())?;
        let binding = TaskBinding {
            task_id: TaskId::new(1).context("task id")?,
            image_id: ImageId(B256::ZERO),
            input_hash: content_hash(&ciphertext),
            chain_id: 31337,
            marketplace: Address::ZERO,
        };
        let limits = Limits { memory_bytes: memory_mb << 20, ..Limits::default() };
        let t = Instant::now();
        let answer = self.enclave.run(&binding, &limits, &ciphertext)?;
        Ok((answer.done.proof.status, t.elapsed()))
    }

    fn median(&self, code: &[u8], input: &[u8], reps: usize) -> anyhow::Result<Duration> {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let (status, took) = self.task(code, input, 256)?;
            if status != StatusCode::Success {
                bail!("the benchmark task ended with {status}");
            }
            times.push(took);
        }
        times.sort();
        Ok(times[times.len() / 2])
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let reps: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let out = root.join("programs/out");
    let python = std::fs::read(out.join("python.wasm"))
        .context("programs/out/python.wasm is missing: run scripts/build-runners")?;
    let hash = std::fs::read(out.join("hash.wasm"))
        .context("programs/out/hash.wasm is missing: run scripts/build-programs")?;
    let js = std::fs::read(out.join("js.wasm"))
        .context("programs/out/js.wasm is missing: run scripts/build-runners")?;
    let bid_js = std::fs::read(root.join("examples/js/sealed_bid.js"))?;
    let bids = std::fs::read(root.join("examples/js/bids.json"))?;
    let stats_py = std::fs::read(root.join("examples/python/stats.py"))?;
    let csv = std::fs::read(root.join("examples/python/salaries.csv"))?;
    let runtime = Runtime::new(RuntimeOptions::default())?;

    let (py, py_compile) = Image::start(&runtime, &python)?;
    let (first_status, py_first) = py.task(b"print(1)", b"", 256)?;
    let hello = py.median(b"print(1)", b"", reps)?;
    let stats = py.median(&stats_py, &csv, reps)?;
    let (status_64, _) = py.task(b"print(1)", b"", 64)?;

    let (js_image, js_compile) = Image::start(&runtime, &js)?;
    let js_hello = js_image.median(b"print(1)", b"", reps)?;
    let js_bid = js_image.median(&bid_js, &bids, reps)?;

    let (wasm, _) = Image::start(&runtime, &wasm_runner_image())?;
    let (_, wasm_first) = wasm.task(&hash, b"secret", 64)?;
    let wasm_cached = wasm.median(&hash, b"secret", reps)?;

    let ecld_benchkit::Machine { cores, cpu, date, .. } = ecld_benchkit::Machine::detect();
    let section = format!(
        "## Runners\n\n\
Machine: {cores} cores, {cpu}; {date}; dev profile (dependencies at opt-level 2; the runner \
modules are release wasm32-wasip1 builds). `scripts/build-programs && cargo run -p ecld-enclave \
--bin ecld-runner-bench -- {reps}`. Each task goes through the whole in-enclave path (keccak \
input check, age decrypt, payload parse, run, result envelope, age encrypt, EIP-712 sign), \
in process, without the frame protocol, chain or store (see `## Enclave` for the process \
boundary, ~1 ms). Median of {reps}; 256 MiB memory limit.\n\n\
| measure | ms |\n| --- | ---: |\n\
| python image: compile the {} MB module (once per enclave start) | {} |\n\
| python: first task on the fresh enclave (`print(1)`, status {}) | {} |\n\
| **python: task on a warm enclave, `print(1)`** | **{}** |\n\
| **python: task on a warm enclave, `examples/python/stats.py` over 10 CSV rows** | **{}** |\n\
| js image: compile the {} MB module (once per enclave start) | {} |\n\
| **js: task on a warm enclave, `print(1)`** | **{}** |\n\
| **js: task on a warm enclave, `examples/js/sealed_bid.js`** | **{}** |\n\
| wasm runner: first task with `hash.wasm` as code (compile + run) | {} |\n\
| wasm runner: same code again (module cache hit) | {} |\n\n\
A `print(1)` Python task under the default 64 MiB memory limit: {}. Every Python task starts a fresh interpreter (a fresh WebAssembly store), \
as does every JavaScript task, so no state leaks from one user's task to the next; pre-initialising the module (e.g. with \
wizer) would cut the start-up share.\n",
        python.len() / 1_000_000,
        ms(py_compile),
        first_status.code(),
        ms(py_first),
        ms(hello),
        ms(stats),
        js.len() / 1_000_000,
        ms(js_compile),
        ms(js_hello),
        ms(js_bid),
        ms(wasm_first),
        ms(wasm_cached),
        if status_64 == StatusCode::Success {
            "SUCCESS (the interpreter fits)".to_owned()
        } else {
            format!("{status_64}: give Python tasks more memory (`--memory-mb 256`)")
        },
    );
    println!("{section}");
    ecld_benchkit::write_section(&ecld_benchkit::benchmarks_file(&root), "## Runners", &section)?;
    Ok(())
}
