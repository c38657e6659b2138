//! Benchmark of the store through its HTTP API: add and cat throughput and the peak RSS of the
//! store process, beside js-ipfs on the same machine, on the same file sizes, runs taking
//! turns, where Node.js is present. Writes the `## Store` section of `docs/BENCHMARKS.md`.
//!
//! `cargo run -p ecld-store --bin ecld-store-bench -- [MiB] [runs]` (default 1024 MiB, 3 runs):
//! each store is measured on MiB and, when MiB is larger, on 256 MiB too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecld_store::{AddOptions, CatOptions, ContentStore, KuboClient, StoreConfig};

const PIECE: usize = 251 * 4096;

fn piece() -> Bytes {
    Bytes::from((0..PIECE).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn mib_to_pieces(mib: u64) -> usize {
    ((mib << 20) / PIECE as u64) as usize
}

/// A scratch directory removed on drop.
struct TmpDir(PathBuf);

impl TmpDir {
    fn new() -> Self {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("ecld-store-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Peer {
    child: Child,
    url: String,
    _dir: TmpDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

/// The store in a child process of this binary, so its RSS is its own.
fn spawn_store() -> Peer {
    let dir = TmpDir::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .arg(dir.path().join("store"))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    Peer { child, url: line.trim().to_owned(), _dir: dir }
}

fn spawn_jsipfs(root: &Path) -> Option<Peer> {
    if Command::new("node").arg("--version").output().is_err() {
        return None;
    }
    let tools = root.join("tools");
    let bin = tools.join("node_modules/.bin/jsipfs");
    if !bin.exists() {
        eprintln!("{} missing: run scripts/setup; js-ipfs column skipped", bin.display());
        return None;
    }
    let dir = TmpDir::new();
    let repo = dir.path().join("repo");
    let env = |c: &mut Command| {
        c.env("IPFS_PATH", &repo)
            .env("NODE_OPTIONS", format!("--require={}", tools.join("ipfs-polyfill.cjs").display()))
            .stdin(Stdio::null());
    };
    let mut init = Command::new(&bin);
    init.args(["init", "--empty-repo"]).stdout(Stdio::null());
    env(&mut init);
    assert!(init.status().unwrap().success());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["Bootstrap"] = serde_json::json!([]);
    config["Addresses"]["Swarm"] = serde_json::json!([]);
    config["Addresses"]["Delegates"] = serde_json::json!([]);
    config["Addresses"]["API"] = serde_json::json!(format!("/ip4/127.0.0.1/tcp/{port}"));
    config["Addresses"]["Gateway"] = serde_json::json!("");
    config["Addresses"]["RPC"] = serde_json::json!("");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    let mut daemon = Command::new(&bin);
    daemon.args(["daemon", "--offline"]).stdout(Stdio::piped());
    env(&mut daemon);
    let mut child = daemon.spawn().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    for line in out.lines().map_while(Result::ok) {
        if line.contains("Daemon is ready") {
            break;
        }
    }
    Some(Peer { child, url: format!("http://127.0.0.1:{port}"), _dir: dir })
}

struct Run {
    add_mbs: f64,
    cat_mbs: f64,
    raw_cat_mbs: f64,
}

async fn run_once(client: &KuboClient, pieces: usize) -> Result<Run, String> {
    let bytes = (pieces * PIECE) as f64;
    let piece = piece();
    let stream =
        futures::stream::iter(std::iter::repeat_n(piece, pieces).map(Ok::<_, std::io::Error>));
    let reader = tokio_util::io::StreamReader::new(stream);
    let t = Instant::now();
    let cid =
        client.add(Box::new(reader), AddOptions::default()).await.map_err(|e| e.to_string())?;
    let add = t.elapsed();
    let t = Instant::now();
    let n = client
        .cat(&cid, &mut tokio::io::sink(), CatOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let cat = t.elapsed();
    assert_eq!(n as f64, bytes);
    // The store's own streaming cat, unverified: what the server alone sustains.
    let t = Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v0/cat?arg={cid}", client.url()))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let mut body = resp.bytes_stream();
    let mut got = 0usize;
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        got += chunk.map_err(|e| e.to_string())?.len();
    }
    let raw = t.elapsed();
    assert_eq!(got as f64, bytes);
    client.unpin(&cid).await.map_err(|e| e.to_string())?;
    client.repo_gc().await.ok();
    let mbs = |d: Duration| bytes / 1e6 / d.as_secs_f64();
    Ok(Run { add_mbs: mbs(add), cat_mbs: mbs(cat), raw_cat_mbs: mbs(raw) })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One store's figures on one file size: medians of its runs and its process's peak RSS over
/// them, or why it could not finish.
struct Measured {
    add: f64,
    cat: f64,
    raw: f64,
    rss_mib: f64,
}

impl Measured {
    fn of(runs: &[Run], rss_mib: f64) -> Self {
        Self {
            add: median(runs.iter().map(|r| r.add_mbs).collect()),
            cat: median(runs.iter().map(|r| r.cat_mbs).collect()),
            raw: median(runs.iter().map(|r| r.raw_cat_mbs).collect()),
            rss_mib,
        }
    }
}

/// Both stores on one file size, each in a fresh process (so its peak RSS is this size's),
/// runs taking turns so that a busy moment of the machine falls on both.
async fn compare(
    root: &Path,
    mib: u64,
    runs: usize,
) -> (Measured, Option<Result<Measured, String>>) {
    let store = spawn_store();
    let ours_client = KuboClient::new(&store.url).unwrap();
    let peer = spawn_jsipfs(root);
    let peer_client = peer.as_ref().map(|p| KuboClient::new(&p.url).unwrap());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut peer_failed = None;
    for i in 0..runs {
        let r = run_once(&ours_client, mib_to_pieces(mib)).await.unwrap();
        eprintln!(
            "{mib} MiB run {i} ecld-store: add {:.0} MB/s, cat {:.0} MB/s, raw cat {:.0} MB/s",
            r.add_mbs, r.cat_mbs, r.raw_cat_mbs
        );
        ours.push(r);
        if let (Some(c), None) = (&peer_client, &peer_failed) {
            match run_once(c, mib_to_pieces(mib)).await {
                Ok(r) => {
                    eprintln!(
                        "{mib} MiB run {i} js-ipfs: add {:.0} MB/s, cat {:.0} MB/s, raw cat {:.0} MB/s",
                        r.add_mbs, r.cat_mbs, r.raw_cat_mbs
                    );
                    theirs.push(r);
                }
                Err(e) => {
                    eprintln!("{mib} MiB run {i} js-ipfs failed: {e}");
                    peer_failed = Some(e);
                }
            }
        }
    }
    let ours = Measured::of(&ours, store.peak_rss_mib());
    let theirs = peer.as_ref().map(|p| match peer_failed {
        Some(e) => Err(e),
        None => Ok(Measured::of(&theirs, p.peak_rss_mib())),
    });
    (ours, theirs)
}

async fn serve(dir: PathBuf) {
    let handle = ecld_store::spawn(StoreConfig::ephemeral(dir)).await.unwrap();
    println!("{}", handle.url());
    handle.wait().await.unwrap();
}

/// The js-ipfs version installed in tools/ (`ipfs` package).
fn jsipfs_version(root: &Path) -> String {
    std::fs::read(root.join("tools/node_modules/ipfs/package.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(unknown version)".to_owned())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve(PathBuf::from(&args[2])).await;
    }
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sizes: Vec<u64> = if mib > 256 { vec![256, mib] } else { vec![mib] };

    let mut rows = Vec::new();
    for &size in &sizes {
        let (ours, theirs) = compare(&root, size, runs).await;
        rows.push((size, ours, theirs));
    }

    let machine = ecld_benchkit::Machine::detect();
    let peer_name = format!("js-ipfs {} (`jsipfs daemon --offline`)", jsipfs_version(&root));
    let mut s = String::new();
    s.push_str("## Store\n\n");
    s.push_str(&format!(
        "Machine: {}; {}; dev profile (hot dependencies at opt-level 2, the rest at 1). \
         `cargo run -p ecld-store --bin ecld-store-bench -- {mib} {runs}`.\n\n",
        machine.cores_and_cpu(),
        machine.date,
    ));
    s.push_str(&format!(
        "One file through the HTTP API on loopback, each store in its own process, ecld-store's \
         blocks fsynced to disk. Both stores get the same file sizes ({}), a fresh process of \
         each per size, their runs taking turns. *add*: `KuboClient::add` streaming the file \
         (the client also computes the CID to check the answer); *cat (verified)*: \
         `KuboClient::cat`, `block/get` per block with 8 blocks prefetched, every block hashed \
         before it is written; *cat (raw)*: the store's own streaming `/api/v0/cat`, unverified. \
         Median of {runs} runs. Peak RSS is the store process's VmHWM over its runs on that \
         size.\n\n",
        sizes.iter().map(|m| format!("{m} MiB")).collect::<Vec<_>>().join(" and "),
    ));
    s.push_str(
        "| file | store | add MB/s | cat (verified) MB/s | cat (raw) MB/s | peak RSS MiB |\n",
    );
    s.push_str("| --- | --- | ---: | ---: | ---: | ---: |\n");
    let mut ratios = Vec::new();
    for (size, ours, theirs) in &rows {
        s.push_str(&format!(
            "| {size} MiB | ecld-store | {:.0} | {:.0} | {:.0} | {:.0} |\n",
            ours.add, ours.cat, ours.raw, ours.rss_mib
        ));
        match theirs {
            Some(Ok(t)) => {
                s.push_str(&format!(
                    "| {size} MiB | {peer_name} | {:.0} | {:.0} | {:.0} | {:.0} |\n",
                    t.add, t.cat, t.raw, t.rss_mib
                ));
                ratios.push(format!(
                    "{size} MiB: add {:.1}×, verified cat {:.1}×, raw cat {:.1}×, peak RSS {:.2}×",
                    ours.add / t.add,
                    ours.cat / t.cat,
                    ours.raw / t.raw,
                    ours.rss_mib / t.rss_mib
                ));
            }
            Some(Err(e)) => s.push_str(&format!(
                "| {size} MiB | {peer_name} | failed: {} | – | – | – |\n",
                e.replace('|', "\\|")
            )),
            None => {}
        }
    }
    if rows.iter().all(|(_, _, t)| t.is_none()) {
        s.push_str("\njs-ipfs rows skipped: Node.js or tools/node_modules not present.\n");
    } else if !ratios.is_empty() {
        s.push_str(&format!(
            "\nRatios (ecld-store / js-ipfs, same file, same run): {}.\n",
            ratios.join("; ")
        ));
    }
    // The goals are stated for 1 GiB; a smaller run does not show them.
    let goals = match rows.iter().find(|(size, _, _)| *size >= 1024) {
        Some((size, ours, _)) => vec![
            ecld_benchkit::Goal::at_least(
                format!("ecld-store add, {size} MiB on loopback"),
                ours.add,
                500.0,
                "MB/s",
            ),
            ecld_benchkit::Goal::at_most(
                format!("ecld-store peak RSS, {size} MiB"),
                ours.rss_mib,
                64.0,
                "MiB",
            ),
        ],
        None => {
            let why = format!("run on {mib} MiB, the goal is for 1024");
            vec![
                ecld_benchkit::Goal::not_measured(
                    "ecld-store add, 1 GiB on loopback",
                    "≥ 500 MB/s",
                    &why,
                ),
                ecld_benchkit::Goal::not_measured("ecld-store peak RSS, 1 GiB", "≤ 64 MiB", &why),
            ]
        }
    };
    s.push('\n');
    s.push_str(&ecld_benchkit::goals_table(&goals));
    println!("{s}");
    ecld_benchkit::write_section(&ecld_benchkit::benchmarks_file(&root), "## Store", &s).unwrap();
}
