//! Attestations per second through the CAS HTTP API (sim evidence), written to the `## CAS`
//! section of `docs/BENCHMARKS.md`.
//!
//! Usage: `cargo run -p ecld-cas --bin ecld-cas-bench [-- --n 300 --rounds 5 --out FILE]`
//! (`--out` defaults to `ECLD_BENCHMARKS_FILE`, else the repository's docs/BENCHMARKS.md).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use ecld_cas::{AdminToken, CasClient, CasConfig};
use ecld_tee::{Policy, SimPlatform, SimPlatformKey};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n").map_or(Ok(300), |s| s.parse()).context("--n")?;
    let rounds: usize = arg(&args, "--rounds").map_or(Ok(5), |s| s.parse()).context("--rounds")?;
    let out = arg(&args, "--out").map_or_else(
        || ecld_benchkit::benchmarks_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")),
        PathBuf::from,
    );
    anyhow::ensure!(n >= 8 && rounds >= 1, "--n must be at least 8 and --rounds at least 1");

    let load = ecld_benchkit::load_average().unwrap_or_else(|| "unknown".into());
    let dir = tempfile::tempdir()?;
    let token = AdminToken::generate();
    let cas =
        ecld_cas::spawn(CasConfig::new("127.0.0.1:0".parse()?, dir.path(), token.clone())).await?;
    let key = SimPlatformKey::generate();
    let platform = SimPlatform::new(key.clone(), b"\0asm\x01\0\0\0 benchmark module");
    let policy = Policy::danger_sim(platform.measurement(), vec![key.public_key()]);
    let client = CasClient::new(&cas.url())?.with_admin_token(token);
    client.create_session("bench@1", &policy).await?;
    let identity = cas.identity();

    let mut table = Vec::new();
    for concurrency in [1usize, 8] {
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..concurrency {
                let (client, platform) = (client.clone(), platform.clone());
                let per = n / concurrency;
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per {
                        client.attest("bench@1", &platform, identity).await?;
                    }
                    Ok::<_, ecld_cas::CasError>(per)
                }));
            }
            let mut done = 0;
            for t in tasks {
                done += t.await??;
            }
            rates.push(done as f64 / start.elapsed().as_secs_f64());
        }
        let med = median(rates.clone());
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        println!(
            "concurrency {concurrency:>2}: median {med:>7.1} attestations/s (min {min:.1}, max {max:.1}, {rounds} rounds of {n})"
        );
        table.push((concurrency, med, min, max));
    }
    cas.shutdown().await;

    let machine = ecld_benchkit::Machine::detect();
    let mut section = format!(
        "## CAS\n\nAttestations per second through the HTTP API (`cargo run -p ecld-cas --bin \
         ecld-cas-bench`, dev profile): each attestation is `POST /v1/nonce` + `POST /v1/attest` \
         with `sim` evidence from a fresh ephemeral age key, verified by the CAS, secrets unsealed \
         from the master key, sealed to the ephemeral key, signed, and checked and opened by the \
         client (`CasClient::attest`). Every nonce issue/use and every decision is fsynced (nonce \
         journal + audit log: 4 fsyncs per attestation). Client and server in one process on \
         127.0.0.1; state on the local disk.\n\nMachine: {} CPUs, {}; {}; load average \
         at the start {} (other work on the machine makes the figures noisy).\n\n\
         | concurrent clients | median attestations/s | min | max | rounds × attestations |\n\
         | --- | --- | --- | --- | --- |\n",
        machine.cores, machine.cpu, machine.date, load
    );
    for (c, med, min, max) in &table {
        section.push_str(&format!("| {c} | {med:.0} | {min:.0} | {max:.0} | {rounds} × {n} |\n"));
    }
    ecld_benchkit::write_section(&out, "## CAS", &section)?;
    println!("wrote the CAS section of {}", out.display());
    Ok(())
}
