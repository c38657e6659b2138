//! A whole local stack started with the built `ecld up`, as a user would, for end-to-end
//! tests: chain, store, CAS and one node (with its enclave processes) are real OS processes
//! (one process tree), and the test talks to them through the `ecld` binary or the SDK.
//!
//! The services log into a file (at `info` unless the test asks for another level), and when
//! the stack stops — [`Stack::stop`], or the end of the test — that log and those of the
//! processes the test registered are scanned for every secret the stack holds
//! ([`log_scan`]); a secret found fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

pub(crate) mod log_scan;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The built binary under test.
pub(crate) fn ecld_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ecld"))
}

/// The repository root.
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The example programs, built by `scripts/build-programs`.
pub(crate) fn programs_dir() -> PathBuf {
    let dir = repo_root().join("programs/out");
    assert!(
        dir.join("stats.wasm").is_file(),
        "{} has no stats.wasm: run scripts/build-programs first (scripts/test does)",
        dir.display()
    );
    dir
}

/// Waits for the JSON ready line of a spawned `ecld up --json` (stdout piped), then keeps
/// draining its stdout so the stack never blocks on a full pipe.
pub(crate) fn ready_line(child: &mut Child) -> Value {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(180)) else {
        let _ = child.kill();
        panic!("`ecld up` did not print its ready line within 180 s");
    };
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("`ecld up --json` printed {line:?}: {e}"))
}

/// The level the stack's services log at unless a test asks for another: what an operator
/// would run, and what the secret scan reads.
const STACK_LOG: &str = "info";

/// A running `ecld up`.
pub(crate) struct Stack {
    /// Its data directory (a temporary directory removed on drop).
    pub(crate) dir: tempfile::TempDir,
    /// What `ecld up --json` printed when it was ready.
    pub(crate) info: Value,
    child: Child,
    // Closing this tells `ecld up` to stop (also when the test process dies).
    stdin: Option<ChildStdin>,
    /// The services' stderr.
    log: PathBuf,
    /// Holds `log` unless the test chose where it goes.
    _log_dir: Option<tempfile::TempDir>,
    /// Secrets the test names beside those the scan finds itself.
    secrets: std::sync::Mutex<Vec<log_scan::Secret>>,
    /// Whether the logs were scanned (the stack stopped).
    scanned: bool,
}

impl Stack {
    /// Starts a stack on ephemeral ports in a fresh data directory and waits until it is
    /// ready.
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir)
    }

    /// Starts a stack in `dir` (possibly holding the state of an earlier run).
    pub(crate) fn start_in(dir: tempfile::TempDir) -> Self {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("stack.log");
        Self::spawn(dir, STACK_LOG, log, Some(log_dir))
    }

    /// Starts a stack whose processes (chain, store, CAS, node, enclaves) all log at
    /// `rust_log` into the file `log`.
    pub(crate) fn start_logging(dir: tempfile::TempDir, rust_log: &str, log: &Path) -> Self {
        Self::spawn(dir, rust_log, log.to_owned(), None)
    }

    fn spawn(
        dir: tempfile::TempDir,
        rust_log: &str,
        log: PathBuf,
        log_dir: Option<tempfile::TempDir>,
    ) -> Self {
        let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
        let mut child = Command::new(ecld_bin())
            .args(["up", "--json", "--ephemeral-ports", "--stop-on-stdin-eof", "--data-dir"])
            .arg(dir.path())
            .arg("--programs")
            .arg(programs_dir())
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let info = ready_line(&mut child);
        Self {
            dir,
            info,
            child,
            stdin,
            log,
            _log_dir: log_dir,
            secrets: std::sync::Mutex::default(),
            scanned: false,
        }
    }

    /// Adds `bytes` to what the secret scan looks for (a plaintext the scan cannot read back
    /// from the chain and the store itself, say because the test altered the store).
    pub(crate) fn add_secret(&self, what: &str, bytes: &[u8]) {
        let secret = log_scan::Secret::bytes(what, bytes.to_vec());
        self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(secret);
    }

    /// The client configuration file `ecld up` wrote.
    pub(crate) fn config(&self) -> PathBuf {
        PathBuf::from(self.info["config"].as_str().unwrap())
    }

    /// An `ecld` command pointed at this stack.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(ecld_bin());
        cmd.env("ECLD_CONFIG", self.config())
            .env_remove("ECLD_RPC")
            .env_remove("ECLD_STORE")
            .env_remove("ECLD_KEY")
            .env_remove("ECLD_IDENTITY")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Runs `ecld ARGS` against this stack and returns what it printed.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs `ecld --json ARGS` and parses stdout, asserting the exit code.
    pub(crate) fn json(&self, args: &[&str], expect_exit: i32) -> Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(expect_exit),
            "ecld {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("ecld {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Stops the stack the way Ctrl-C would, waits for it to exit and scans its logs for
    /// secrets (failing the test on a find).
    pub(crate) fn stop(mut self) -> tempfile::TempDir {
        self.stop_and_scan();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    /// The secret scan of [`log_scan`]: the plaintexts are read while the stack still runs,
    /// the logs once it stopped (so they are complete).
    fn stop_and_scan(&mut self) {
        self.scanned = true;
        let named = std::mem::take(
            &mut *self.secrets.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (data, info, log) = (self.dir.path().to_owned(), self.info.clone(), self.log.clone());
        // User, publisher and node accounts, the user's identity, the CAS token and master key,
        // the node's sim platform key, the second node's key.
        log_scan::check_stack(&data, &info, 8, &[log], named, || self.shutdown());
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("`ecld up` did not stop within 20 s of its stdin closing");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.scanned {
            return;
        }
        if !std::thread::panicking() {
            self.stop_and_scan();
            return;
        }
        if self.stdin.is_some() {
            drop(self.stdin.take());
            let _ = self.child.wait();
        }
        // The test failed: what the services said last.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!("--- the stack's log ({}), last lines:", self.log.display());
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
