//! The local stack as four OS processes of their own — `ecld devnet`, `ecld store serve`,
//! `ecld cas serve`, `ecld node` — on loopback ports fixed for the whole run, each with its
//! data directory, so that any one can be killed with SIGKILL and started again with the same
//! command line. A supervisor thread injects the faults at seeded random moments and watches
//! for processes that exit without being killed (restarting them, as systemd would, and
//! counting each such exit: the harness expects none).

use std::{
    collections::BTreeMap,
    ffi::OsString,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::e2e_stack::ecld_bin;

/// The copy of the binary every service of a run starts from (and the node's enclaves, as
/// its own executable): a rebuild of the workspace during a long run must not change it.
pub(crate) fn run_bin(dir: &Path) -> PathBuf {
    dir.join("bin/ecld")
}

/// A small xorshift generator: a run is reproducible from its printed seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // xorshift is stuck at zero; any other seed is fine.
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub(crate) fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// Three loopback ports free now, kept for the whole run (every restart binds them again).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) rpc: u16,
    pub(crate) store: u16,
    pub(crate) cas: u16,
}

impl Ports {
    /// Ports below the system's ephemeral range, so that no outgoing connection and no other
    /// test's port-0 listener takes one while its service is down between a kill and a
    /// restart.
    pub(crate) fn pick(rng: &mut Rng) -> Self {
        let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u64>().ok()))
            .unwrap_or(32768);
        let (lo, hi) = (10_000u64, first_ephemeral.max(10_100) - 1);
        let mut held: Vec<TcpListener> = Vec::new();
        while held.len() < 3 {
            let port = u16::try_from(lo + rng.below(hi - lo)).unwrap();
            if held.iter().any(|l| l.local_addr().unwrap().port() == port) {
                continue;
            }
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(l);
            }
        }
        let p: Vec<u16> = held.iter().map(|l| l.local_addr().unwrap().port()).collect();
        Self { rpc: p[0], store: p[1], cas: p[2] }
    }
}

/// The faults the harness injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Fault {
    /// SIGKILL the chain, start it again on its journal.
    KillDevnet,
    /// SIGKILL the store, start it again on its block directory.
    KillStore,
    /// SIGKILL the CAS, start it again on its state directory.
    KillCas,
    /// SIGKILL the node, start it again on its journal.
    KillNode,
    /// SIGSTOP the node, SIGCONT it later.
    PauseNode,
    /// SIGKILL one of the node's enclave processes.
    KillEnclave,
}

impl Fault {
    pub(crate) const ALL: [Self; 6] = [
        Self::KillDevnet,
        Self::KillStore,
        Self::KillCas,
        Self::KillNode,
        Self::PauseNode,
        Self::KillEnclave,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::KillDevnet => "kill -9 devnet",
            Self::KillStore => "kill -9 store",
            Self::KillCas => "kill -9 CAS",
            Self::KillNode => "kill -9 node",
            Self::PauseNode => "SIGSTOP/SIGCONT node",
            Self::KillEnclave => "kill -9 enclave",
        }
    }

    fn service(self) -> Option<usize> {
        match self {
            Self::KillDevnet => Some(DEVNET),
            Self::KillStore => Some(STORE),
            Self::KillCas => Some(CAS),
            Self::KillNode => Some(NODE),
            Self::PauseNode | Self::KillEnclave => None,
        }
    }
}

const DEVNET: usize = 0;
const STORE: usize = 1;
const CAS: usize = 2;
const NODE: usize = 3;
const NAMES: [&str; 4] = ["devnet", "store", "cas", "node"];

/// One supervised service: its command line never changes between restarts.
struct Service {
    name: &'static str,
    bin: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    rust_log: String,
    child: Child,
    starts: u32,
}

impl Service {
    fn spawn(
        name: &'static str,
        bin: &Path,
        args: &[OsString],
        log: &Path,
        rust_log: &str,
    ) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Command::new(bin)
            .args(args)
            .env("RUST_LOG", rust_log)
            .env_remove("ECLD_NODE_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ecld {name}: {e}"))
    }

    fn start(name: &'static str, args: Vec<OsString>, dir: &Path, rust_log: &str) -> Self {
        let log = dir.join("logs").join(format!("{name}.log"));
        let bin = run_bin(dir);
        let child = Self::spawn(name, &bin, &args, &log, rust_log);
        Self { name, bin, args, log, rust_log: rust_log.to_owned(), child, starts: 1 }
    }

    fn restart(&mut self) {
        self.child = Self::spawn(self.name, &self.bin, &self.args, &self.log, &self.rust_log);
        self.starts += 1;
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A process that ended without the harness killing it.
#[derive(Debug, Clone)]
pub(crate) struct UnplannedExit {
    pub(crate) service: &'static str,
    pub(crate) status: String,
    pub(crate) after: Duration,
}

/// The four services.
pub(crate) struct Services {
    procs: Vec<Service>,
    dir: PathBuf,
    started: Instant,
    pub(crate) unplanned: Vec<UnplannedExit>,
}

fn os(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    args.iter().map(|a| a.as_ref().to_owned()).collect()
}

/// Waits until something listens on `port` (a fresh start, not a restart: those are left to
/// the clients' and the node's own retries).
fn wait_listening(port: u16, what: &str) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(120), "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Services {
    /// Starts the four services on the state `ecld up` left in `dir`.
    pub(crate) fn start(dir: &Path, ports: Ports, rust_log: &str) -> Self {
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let devnet = Service::start(
            NAMES[DEVNET],
            os(&[&"devnet", &"--port", &ports.rpc.to_string(), &"--state", &dir.join("chain")]),
            dir,
            rust_log,
        );
        wait_listening(ports.rpc, "the devnet");
        let store = Service::start(
            NAMES[STORE],
            os(&[
                &"store",
                &"serve",
                &"--listen",
                &format!("127.0.0.1:{}", ports.store),
                &"--data-dir",
                &dir.join("store"),
            ]),
            dir,
            rust_log,
        );
        let cas = Service::start(
            NAMES[CAS],
            os(&[
                &"cas",
                &"serve",
                &"--listen",
                &format!("127.0.0.1:{}", ports.cas),
                &"--state-dir",
                &dir.join("cas"),
                &"--admin-token-file",
                &dir.join("keys/cas-admin.token"),
            ]),
            dir,
            rust_log,
        );
        wait_listening(ports.store, "the store");
        wait_listening(ports.cas, "the CAS");
        let node = Service::start(
            NAMES[NODE],
            os(&[&"node", &"--config", &dir.join("node/node.toml")]),
            dir,
            rust_log,
        );
        Self {
            procs: vec![devnet, store, cas, node],
            dir: dir.to_owned(),
            started: Instant::now(),
            unplanned: Vec::new(),
        }
    }

    /// Restarts any service that exited without being killed, and records it.
    fn reap(&mut self) {
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                self.unplanned.push(UnplannedExit {
                    service: p.name,
                    status: status.to_string(),
                    after: self.started.elapsed(),
                });
                eprintln!("chaos: {} exited on its own ({status}); restarting it", p.name);
                p.restart();
            }
        }
    }

    /// Injects one fault; `downtime` is how long a killed service stays down or the node
    /// stays paused. Returns false when there was nothing to hit (no enclave running).
    fn inject(&mut self, fault: Fault, downtime: Duration, rng: &mut Rng) -> bool {
        if let Some(i) = fault.service() {
            self.procs[i].kill9();
            std::thread::sleep(downtime);
            self.procs[i].restart();
            return true;
        }
        let node = self.procs[NODE].pid();
        match fault {
            Fault::PauseNode => {
                signal("STOP", node);
                std::thread::sleep(downtime);
                signal("CONT", node);
                true
            }
            _ => {
                let enclaves = children(node);
                if enclaves.is_empty() {
                    return false;
                }
                let n = enclaves.len() as u64;
                signal("KILL", enclaves[usize::try_from(rng.below(n)).unwrap()]);
                true
            }
        }
    }

    /// Stops every service the way an operator would (SIGTERM, node first) and returns, per
    /// service, how it exited.
    pub(crate) fn stop(mut self) -> Vec<(&'static str, Option<ExitStatus>)> {
        let mut out = Vec::new();
        for i in [NODE, CAS, STORE, DEVNET] {
            let p = &mut self.procs[i];
            signal("CONT", p.pid());
            signal("TERM", p.pid());
            let deadline = Instant::now() + Duration::from_secs(90);
            let status = loop {
                if let Ok(Some(s)) = p.child.try_wait() {
                    break Some(s);
                }
                if Instant::now() > deadline {
                    p.kill9();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            out.push((p.name, status));
        }
        self.procs.clear();
        out
    }

    /// How often each service was started (1 + restarts).
    pub(crate) fn starts(&self) -> BTreeMap<&'static str, u32> {
        self.procs.iter().map(|p| (p.name, p.starts)).collect()
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for p in &mut self.procs {
            signal("CONT", p.pid());
            p.kill9();
        }
    }
}

/// Processes still alive whose command line names `dir` (enclaves of a killed node, say).
pub(crate) fn strays(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        // A zombie has an empty command line and is no longer running.
        if cmd.contains(&needle) {
            out.push((pid, cmd.trim().to_owned()));
        }
    }
    out
}

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

pub(crate) fn signal(name: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// How the supervisor injects faults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) seed: u64,
    /// Time between two faults, ms (uniform).
    pub(crate) gap_ms: (u64, u64),
    /// How long a killed service stays down or the node stays paused, ms (uniform).
    pub(crate) downtime_ms: (u64, u64),
}

/// The supervisor thread: injects faults while `inject` is set, restarts what exits on its
/// own until `stop` is set, and returns the services with the count of faults per kind.
pub(crate) struct Supervisor {
    pub(crate) inject: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    counts: Arc<std::sync::Mutex<BTreeMap<Fault, u32>>>,
    thread: std::thread::JoinHandle<Services>,
}

impl Supervisor {
    pub(crate) fn spawn(mut services: Services, schedule: Schedule) -> Self {
        let inject = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let thread = {
            let (inject, stop, counts) = (inject.clone(), stop.clone(), counts.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(schedule.seed);
                // Every kind once, in a seeded order, then kinds at random.
                let mut first: Vec<Fault> = Fault::ALL.to_vec();
                for i in (1..first.len()).rev() {
                    first.swap(i, usize::try_from(rng.below(i as u64 + 1)).unwrap());
                }
                let mut next_at = Instant::now() + rng.millis(schedule.gap_ms.0, schedule.gap_ms.1);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    services.reap();
                    if !inject.load(Ordering::Relaxed) || Instant::now() < next_at {
                        continue;
                    }
                    let fault = first.first().copied().unwrap_or_else(|| {
                        Fault::ALL[usize::try_from(rng.below(Fault::ALL.len() as u64)).unwrap()]
                    });
                    let downtime = rng.millis(schedule.downtime_ms.0, schedule.downtime_ms.1);
                    // An enclave kill with no enclave running hits nothing: the kind stays
                    // first in line for the next fault.
                    if services.inject(fault, downtime, &mut rng) {
                        *counts.lock().unwrap().entry(fault).or_default() += 1;
                        first.retain(|f| *f != fault);
                    }
                    next_at = Instant::now() + rng.millis(schedule.gap_ms.0, schedule.gap_ms.1);
                }
                services.reap();
                services
            })
        };
        Self { inject, stop, counts, thread }
    }

    /// Faults injected so far, per kind.
    pub(crate) fn counts(&self) -> BTreeMap<Fault, u32> {
        self.counts.lock().unwrap().clone()
    }

    /// Stops injecting (the supervisor keeps restarting what exits on its own).
    pub(crate) fn calm(&self) {
        self.inject.store(false, Ordering::Relaxed);
    }

    /// Stops the thread and hands the services back.
    pub(crate) fn join(self) -> Services {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Copies the binary into `dir` ([`run_bin`]) and runs `ecld up` from it once, on fixed
/// ports, to deploy the contracts, publish the programs in `programs` and register the node's
/// offers; stops it, leaving its state in `dir`. Returns what `ecld up --json` printed.
pub(crate) fn set_up(dir: &Path, ports: Ports, programs: &Path) -> serde_json::Value {
    use std::io::{BufRead, BufReader};
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(ecld_bin(), run_bin(dir)).unwrap();
    let log = std::fs::File::create(dir.join("up.log")).unwrap();
    let mut child = Command::new(run_bin(dir))
        .args(["up", "--json", "--stop-on-stdin-eof", "--data-dir"])
        .arg(dir)
        .arg("--programs")
        .arg(programs)
        .args(["--rpc-port", &ports.rpc.to_string()])
        .args(["--store-port", &ports.store.to_string()])
        .args(["--cas-port", &ports.cas.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("`ecld up` printed no ready line; see {}", dir.join("up.log").display())
    });
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "`ecld up` stopped with {status}");
    info
}
