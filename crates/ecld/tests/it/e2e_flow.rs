//! The data flow end to end through the `ecld` binary: a stack from `ecld up`, tasks from
//! `ecld task …`, each status class, restarts, and the token books at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::time::Duration;

use ecld_sdk::{Client, ClientConfig, TaskRequest, TaskState};
use ecld_types::{StatusCode, U256, content_hash};

use crate::e2e_stack::Stack;

const NOTES: &str = "north 1280 1314 1199 1402\nsouth 980 1011 1045 1120\n";

fn r_node(stack: &Stack) -> ecld_types::Address {
    stack.info["node"]["account"].as_str().unwrap().parse().unwrap()
}

async fn client(stack: &Stack) -> Client {
    Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap()
}

#[test]
fn task_run_prints_the_verified_decrypted_result_and_exits_zero() {
    let stack = Stack::start();
    let input = stack.dir.path().join("notes.txt");
    std::fs::write(&input, NOTES).unwrap();

    let out = stack.run(&["task", "run", "stats", "--input", input.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stdout.trim().is_empty(), "no result on stdout; stderr: {stderr}");
    assert!(stderr.contains("SUCCESS (0)") && stderr.contains("proof verified"), "{stderr}");

    // The same task through each step on its own.
    let submitted = stack.json(&["task", "submit", "stats", "--input", input.to_str().unwrap()], 0);
    let id = submitted["task"].as_u64().unwrap().to_string();
    let watched = stack.json(&["task", "watch", &id, "--timeout-s", "60"], 0);
    assert_eq!(watched["state"], "done", "{watched}");
    let verified = stack.json(&["task", "verify", &id], 0);
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["status"], 0);
    let fetched = stack.json(&["task", "fetch", &id], 0);
    assert_eq!(fetched["result"].as_str().unwrap(), stdout, "fetch and run disagree");
    let status = stack.json(&["task", "status", &id], 0);
    assert_eq!(status["state"], "done");
    let list = stack.json(&["task", "list"], 0);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // Images and offers are visible, and sim is flagged.
    let images = stack.json(&["image", "list"], 0);
    assert!(images.as_array().unwrap().iter().any(|i| i["name"] == "stats"), "{images}");
    let show = stack.run(&["image", "show", "stats"]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("INSECURE"));
    let offers = stack.json(&["offers", "list"], 0);
    assert!(!offers.as_array().unwrap().is_empty());
}

#[test]
fn user_commands_without_a_stack_say_to_run_ecld_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::e2e_stack::ecld_bin())
        .args(["task", "list"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("ECLD_CONFIG")
        .env_remove("XDG_DATA_HOME")
        .env_remove("ECLD_RPC")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no local stack found") && stderr.contains("ecld up"), "{stderr}");
}

/// Every status class from real executions, the settlement each one implies, and the token
/// books balancing afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_class_settles_as_the_protocol_says() {
    let stack = Stack::start();
    let c = client(&stack).await;
    let primes = c.resolve_image("primes").await.expect("the `primes` example image");
    // Program error (not a number), resource limit (a sieve of 4·10^9 needs 2 GB), timeout
    // (a module that never ends, run by the `wasm` runner image): the program's fault, the
    // node is paid.
    let wasm = c.resolve_image("wasm").await.expect("the `wasm` runner image");
    let spin = std::fs::read(crate::e2e_stack::repo_root().join("testdata/e2e/spin.wasm")).unwrap();
    for (image, code, input, expect) in [
        (primes.id, None, "not a number", StatusCode::ProgramError),
        (primes.id, None, "4000000000", StatusCode::ResourceLimit),
        (wasm.id, Some(spin.clone()), "", StatusCode::Timeout),
    ] {
        let mut req = TaskRequest::new(image, input.as_bytes().to_vec());
        req.code = code;
        req.max_runtime = Duration::from_secs(1);
        req.memory_mb = 256;
        let node_before = c.balance(Some(r_node(&stack))).await.unwrap();
        let r = c.run(&req, Duration::from_secs(60), |_, _| ()).await.unwrap();
        assert_eq!(r.status, expect, "input {input:?}");
        assert_eq!(r.status.exit_class(), 1);
        assert!(c.balance(Some(r_node(&stack))).await.unwrap() > node_before, "node not paid");
    }

    // The CLI reports the class in its exit code.
    let out = stack.run(&["task", "run", "primes", "--input-text", "not a number"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));

    // Invalid input: bytes that are not an age file for the image key.
    let stats = c.resolve_image("stats").await.unwrap();
    let garbage = b"not an age file".to_vec();
    let cid = c.upload(&garbage).await.unwrap();
    let req = TaskRequest::new(stats.id, Vec::new());
    let s = c.submit_uploaded(&req, &cid, content_hash(&garbage)).await.unwrap();
    let info = c.wait(s.task, Duration::from_secs(60)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::InputInvalid });
    let out = stack.run(&["task", "fetch", &s.task.to_string()]);
    assert_eq!(out.status.code(), Some(2));

    // The requester's own fault: the bytes of the CID it chose do not hash to the inputHash it
    // committed. The node ran the task and is paid; the requester pays the price.
    let before = c.balance(None).await.unwrap();
    let ciphertext =
        c.encrypt_input(&TaskRequest::new(stats.id, NOTES.as_bytes().to_vec())).await.unwrap();
    let cid = c.upload(&ciphertext).await.unwrap();
    let s = c.submit_uploaded(&req, &cid, content_hash(b"other bytes")).await.unwrap();
    let info = c.wait(s.task, Duration::from_secs(60)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::InputMismatch });
    let paid = info.matched_price;
    assert!(paid > U256::ZERO);
    assert_eq!(c.balance(None).await.unwrap(), before - paid, "the requester pays its lie");
    let out = stack.run(&["task", "status", &s.task.to_string()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("INPUT_MISMATCH"));

    let ledger = c.ledger().await.unwrap();
    assert!(ledger.conserved(), "token books do not balance: {ledger:?}");
}

/// State survives `ecld up` stopping and starting again in the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_stack_keeps_its_chain_images_and_tasks() {
    let stack = Stack::start();
    let first = stack.json(&["task", "run", "stats", "--input-text", NOTES], 0);
    let images = stack.info["images"].clone();
    let dir = stack.stop();

    let stack = Stack::start_in(dir);
    assert_eq!(stack.info["images"], images, "images were published again with new ids");
    let id = first["task"].as_u64().unwrap().to_string();
    let fetched = stack.json(&["task", "fetch", &id], 0);
    assert_eq!(fetched["result"], first["result"]);
    let second = stack.json(&["task", "run", "stats", "--input-text", NOTES], 0);
    assert_eq!(second["result"], first["result"]);
    let c = client(&stack).await;
    assert!(c.ledger().await.unwrap().conserved());
}
