//! Benchmark of ecld-crypto: envelope encrypt/decrypt throughput streaming a large input
//! in constant memory, peak RSS, and proof sign/verify rates. Prints a table and rewrites
//! the `## Crypto` section of `docs/BENCHMARKS.md`.
//!
//! `cargo run [--release] -p ecld-crypto --bin ecld-crypto-bench -- [MIB] [RUNS]`
//! (defaults: 1024 MiB, 3 runs; medians are reported).

use std::{
    io::{self, Read, Write},
    path::Path,
    time::{Duration, Instant},
};

use ecld_crypto::{AgeIdentity, AgeRecipient, ProofDomain, ResultProof, SignerKey};
use ecld_types::{Address, B256, StatusCode};

/// Yields `remaining` bytes of a fixed pseudo-random pattern without holding them.
struct Source {
    pattern: Vec<u8>,
    pos: usize,
    remaining: u64,
}

impl Source {
    fn new(len: u64) -> Self {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let pattern = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        Self { pattern, pos: 0, remaining: len }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.pattern.len() - self.pos;
        let n = buf.len().min(avail).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pattern.len();
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Counts and drops what is written.
#[derive(Default)]
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader of ciphertext produced on demand, in this thread, by encrypting a [`Source`]:
/// decryption can stream a file of any size without it existing anywhere.
struct CiphertextSource {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl CiphertextSource {
    /// Runs the encryptor in a helper thread that hands over 64 KiB pieces through a
    /// bounded channel, so at most 16 pieces (1 MiB) wait at a time.
    fn new(recipient: AgeRecipient, len: u64) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            struct Pipe(std::sync::mpsc::SyncSender<Vec<u8>>);
            impl Write for Pipe {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    self.0.send(b.to_vec()).map_err(|_| io::Error::other("reader gone"))?;
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let out = io::BufWriter::with_capacity(64 * 1024, Pipe(tx));
            let _ = ecld_crypto::encrypt(&[recipient], false, Source::new(len), out);
        });
        Self { rx, buf: Vec::new(), pos: 0 }
    }
}

impl Read for CiphertextSource {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.buf = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mb_per_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn rate(mut op: impl FnMut(), window: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3).max(1);
    let bytes = mib * 1024 * 1024;
    let profile = if cfg!(debug_assertions) { "dev" } else { "release" };
    let id = AgeIdentity::generate();
    let machine = ecld_benchkit::Machine::detect();
    eprintln!("ecld-crypto-bench: {mib} MiB x {runs} runs, {profile} profile");

    let mut enc = Vec::new();
    for _ in 0..runs {
        let mut sink = Sink::default();
        let t = Instant::now();
        ecld_crypto::encrypt(&[id.recipient()], false, Source::new(bytes), &mut sink)?;
        enc.push(mb_per_s(bytes, t.elapsed()));
        eprintln!("  encrypt {:.0} MB/s ({} ciphertext bytes)", enc[enc.len() - 1], sink.0);
    }
    let rss_encrypt = vm_hwm_kib();

    let mut dec = Vec::new();
    for _ in 0..runs {
        let mut sink = Sink::default();
        let source = CiphertextSource::new(id.recipient(), bytes);
        let t = Instant::now();
        ecld_crypto::decrypt(&id, source, &mut sink)?;
        let elapsed = t.elapsed();
        assert_eq!(sink.0, bytes, "decrypted length");
        dec.push(mb_per_s(bytes, elapsed));
        eprintln!(
            "  decrypt {:.0} MB/s (ciphertext made on the fly by a second thread)",
            dec[dec.len() - 1]
        );
    }
    let rss_total = vm_hwm_kib();

    let key = SignerKey::generate();
    let domain = ProofDomain { chain_id: 31337, verifying_contract: Address::repeat_byte(0x42) };
    let proof = ResultProof {
        task_id: 1,
        image_id: B256::repeat_byte(1),
        input_hash: B256::repeat_byte(2),
        input_cid_hash: B256::repeat_byte(4),
        memory_mb: 256,
        max_runtime_s: 60,
        deadline: 1_900_000_000,
        code_hash: B256::ZERO,
        result_hash: B256::repeat_byte(3),
        result_cid_hash: B256::repeat_byte(5),
        status: StatusCode::Success,
        runtime_ms: 10,
    };
    let sig = proof.sign(&key, &domain)?;
    let window = Duration::from_millis(1000);
    let signs = median(
        (0..runs)
            .map(|_| {
                rate(
                    || {
                        let _ = std::hint::black_box(proof.sign(&key, &domain));
                    },
                    window,
                )
            })
            .collect(),
    );
    let verifies = median(
        (0..runs)
            .map(|_| {
                rate(
                    || {
                        let _ = std::hint::black_box(proof.verify(&domain, &sig, key.address()));
                    },
                    window,
                )
            })
            .collect(),
    );

    let (enc_m, dec_m) = (median(enc), median(dec));
    let table = format!(
        "| measure | value |\n| --- | ---: |\n\
         | envelope encrypt, {mib} MiB streamed, 1 core | {enc_m:.0} MB/s |\n\
         | envelope decrypt, {mib} MiB streamed | {dec_m:.0} MB/s |\n\
         | peak RSS after encrypt runs (VmHWM) | {:.1} MiB |\n\
         | peak RSS after decrypt runs (VmHWM) | {:.1} MiB |\n\
         | proof sign (EIP-712 digest + secp256k1) | {signs:.0} /s |\n\
         | proof verify (digest + recover + compare) | {verifies:.0} /s |\n",
        rss_encrypt as f64 / 1024.0,
        rss_total as f64 / 1024.0,
    );
    // The goals are stated for 1 GiB streamed; a smaller run does not show them.
    let rss_mib = rss_encrypt as f64 / 1024.0;
    let goals = if mib >= 1024 {
        vec![
            ecld_benchkit::Goal::at_least(
                format!("envelope encrypt, {mib} MiB streamed, 1 core"),
                enc_m,
                500.0,
                "MB/s",
            ),
            ecld_benchkit::Goal::at_most("peak RSS while encrypting", rss_mib, 64.0, "MiB"),
        ]
    } else {
        let why = format!("run on {mib} MiB, the goal is for 1024");
        vec![
            ecld_benchkit::Goal::not_measured(
                "envelope encrypt, 1 GiB, 1 core",
                "≥ 500 MB/s",
                &why,
            ),
            ecld_benchkit::Goal::not_measured("peak RSS while encrypting", "≤ 64 MiB", &why),
        ]
    };
    let goals = ecld_benchkit::goals_table(&goals);
    let section = format!(
        "## Crypto\n\n\
         Machine: {}; {}; {profile} profile{}. \
         `cargo run{} -p ecld-crypto --bin ecld-crypto-bench -- {mib} {runs}`.\n\n\
         age v1 envelopes to one X25519 recipient, binary (no armor), input generated on the fly \
         and output counted and dropped, so nothing of the {mib} MiB is ever held. Encryption runs \
         on one thread. Decryption reads ciphertext that a second thread encrypts on demand \
         through a bounded channel (1 MiB in flight), so its figure is bounded by the encrypt thread too and is \
         a lower bound on a cold-file decrypt. Medians of {runs} runs; sign/verify are medians of \
         {runs} one-second windows on one core. Peak RSS is the whole bench process's VmHWM \
         (including the 1 MiB pattern buffer and the runtime).\n\n{table}\n{goals}",
        machine.cores_and_cpu(),
        machine.date,
        if profile == "release" { "" } else { " (hot dependencies at opt-level 2, the rest at 1)" },
        if profile == "release" { " --release" } else { "" },
    );
    println!("{section}");

    let path = ecld_benchkit::benchmarks_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    ecld_benchkit::write_section(&path, "## Crypto", &section)?;
    eprintln!("wrote the Crypto section of {}", path.display());
    Ok(())
}
