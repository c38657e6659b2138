//! The example programs, built by `scripts/build-programs`, run in the enclave runtime.

#![allow(clippy::unwrap_used)] // Test helpers unwrap like the tests they serve.

use std::path::PathBuf;

use ecld_enclave::{
    protocol::Limits,
    runtime::{Exit, Program, Runtime, RuntimeOptions},
};
use serde_json::{Value, json};

fn load(rt: &Runtime, name: &str) -> Program {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../programs/out")
        .join(format!("{name}.wasm"));
    let module = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-programs first", path.display()));
    rt.compile(&module).unwrap()
}

fn run_json(program: &Program, input: &[u8]) -> Value {
    let run = program.run(input, &Limits::default());
    assert_eq!(run.exit, Exit::Exited(0), "stderr: {}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&run.stdout).unwrap()
}

#[test]
fn stats_counts_lines_words_and_top_words() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let stats = load(&rt, "stats");
    let out = run_json(&stats, b"The cat sat.\nThe cat ran!\nA dog.");
    assert_eq!(out["lines"], 3);
    assert_eq!(out["words"], 8);
    assert_eq!(out["bytes"], 32);
    assert_eq!(out["unique_words"], 6);
    assert_eq!(out["top_words"][0], json!({"word": "cat", "count": 2}));
    assert_eq!(out["top_words"][1], json!({"word": "the", "count": 2}));
    assert_eq!(run_json(&stats, b"")["words"], 0);
}

#[test]
fn hash_matches_known_digests() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let out = run_json(&load(&rt, "hash"), b"abc");
    assert_eq!(out["length"], 3);
    assert_eq!(out["sha256"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_eq!(
        out["keccak256"],
        "0x4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    );
    // Streams inputs larger than its read buffer.
    let big = vec![b'a'; 1_000_000];
    let out = run_json(&load(&rt, "hash"), &big);
    assert_eq!(out["length"], 1_000_000);
    assert_eq!(out["sha256"], "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

#[test]
fn auction_reveals_only_winner_and_second_price() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let auction = load(&rt, "auction");
    let bids = json!({"item": "lot 7", "reserve": "100", "bids": [
        {"bidder": "alice", "amount": "250"},
        {"bidder": "bob", "amount": 180},
        {"bidder": "carol", "amount": 90}
    ]});
    let out = run_json(&auction, bids.to_string().as_bytes());
    assert_eq!(
        out,
        json!({"item": "lot 7", "winner": "alice", "price": "180", "bids": 3, "valid_bids": 2})
    );
    let text = out.to_string();
    assert!(!text.contains("250") && !text.contains("bob"), "losing bids stay secret: {text}");
    // Bad bids are the program's error: non-zero exit with an explanation.
    let run = auction.run(b"{\"bids\": 5}", &Limits::default());
    assert_eq!(run.exit, Exit::Exited(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("invalid bids"));
}

#[test]
fn primes_counts_below_n() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let primes = load(&rt, "primes");
    assert_eq!(run_json(&primes, b"100")["primes"], 25);
    assert_eq!(run_json(&primes, b"1000000")["primes"], 78_498);
    assert_eq!(run_json(&primes, b"2")["primes"], 0);
    assert_eq!(run_json(&primes, b"3")["primes"], 1);
}
