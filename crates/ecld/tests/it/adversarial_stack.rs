//! Adversarial scenarios against a whole stack from `ecld up` plus a second node process: an
//! image whose module was altered in the store, an image registered with a measurement that
//! is not its module's, and a store that returns wrong bytes to the node and to the client.
//! See `docs/threat-model.md` for the map of threats to tests.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use ecld_contracts::{ImageManifest, ImageRegistry};
use ecld_node::chain::{Chain, ChainEvent};
use ecld_sdk::{
    Client, ClientConfig, Error, OfferChoice, PublishRequest, TaskRequest, TaskState, VerifyError,
};
use ecld_types::{B256, ImageId, OfferId, StatusCode, TaskId, U256};
use serde_json::Value;

use crate::{
    adversarial::http,
    e2e_stack::{Stack, contains, files_under, programs_dir},
    node::{MAX_PRICE, kill9, node_config, offer_ids, stack_node_dir, start_node_with},
    node_faults::{SETTLE, sample, scrape, start_node_with_metrics, strip_ansi},
};

async fn client(stack: &Stack) -> Client {
    Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap()
}

/// A second `ecld node`, killed when the test ends however it ends.
struct Node {
    child: Child,
    log: std::path::PathBuf,
    journal: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node (its own account and data directory) offering one slot for each of
    /// `images`, its store calls sent to `store_url`, and waits for its offers.
    fn start(stack: &Stack, images: &[ImageId], store_url: &str) -> (Self, Vec<OfferId>) {
        let dir = tempfile::tempdir().unwrap();
        let offers: String = images
            .iter()
            .map(|i| {
                format!(
                    "\n[[offers]]\nimage = \"{i}\"\nslots = 1\nmemory_mb = 256\nmax_runtime_s = 60\nprice = \"1000000000000000\"\n"
                )
            })
            .collect();
        let config = node_config(stack, dir.path(), Some(&offers));
        let log = dir.path().join("node.log");
        let journal = dir.path().join("data/journal.jsonl");
        let child = start_node_with(&config, &log, &[("ECLD_NODE_STORE_URL", store_url)]);
        let node = Self { child, log, journal, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ids = std::fs::read_to_string(&node.journal)
                .ok()
                .map(|_| offer_ids(&node.journal))
                .unwrap_or_default();
            if ids.len() >= images.len() {
                return (node, ids.into_iter().map(|o| OfferId::new(o).unwrap()).collect());
            }
            assert!(Instant::now() < deadline, "the node registered no offers: {}", node.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log, without colour codes.
    fn text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The journal's task steps for `task`: (step, the whole line).
    fn steps(&self, task: TaskId) -> Vec<(String, Value)> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["kind"] == "task" && same_task(&v["task"], task))
            .map(|v| (v["step"].as_str().unwrap_or_default().to_owned(), v))
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn same_task(v: &Value, task: TaskId) -> bool {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) == Some(task.get())
}

/// Reads the stack's Marketplace events (as a throwaway account that never sends).
async fn chain_of(stack: &Stack) -> (Chain, u64) {
    let d = ecld_contracts::Deployment::load(Path::new(stack.info["deployment"].as_str().unwrap()))
        .unwrap();
    let rpc = stack.info["rpc"].as_str().unwrap().parse().unwrap();
    let signer = ecld_crypto::SignerKey::generate().signer().clone();
    let chain = Chain::connect(rpc, signer, d.marketplace, d.registry).await.unwrap();
    (chain, d.deploy_block)
}

async fn events(chain: &(Chain, u64)) -> Vec<ChainEvent> {
    let head = chain.0.head().await.unwrap();
    chain.0.events(chain.1, head).await.unwrap().into_iter().map(|(_, e)| e).collect()
}

/// (Claimed, Released) events of `task` in `evs`.
fn claims_releases(evs: &[ChainEvent], task: TaskId) -> (usize, usize) {
    let count = |released: bool| {
        evs.iter()
            .filter(|e| match e {
                ChainEvent::Released { task: t, .. } => released && *t == task,
                ChainEvent::Claimed { task: t, .. } => !released && *t == task,
                _ => false,
            })
            .count()
    };
    (count(false), count(true))
}

/// Polls, every 200 ms for at most 30 s, the (Claimed, Released) events on chain and the
/// journaled `done` steps of each of `tasks` until each task has at least the
/// (claims, releases, dones) given. A node logs that it gives a task up when it journals the
/// release; the releaseTask transaction and the journaled end come after.
async fn wait_for_rounds(
    chain: &(Chain, u64),
    node: &Node,
    tasks: &[(TaskId, (usize, usize, usize))],
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let evs = events(chain).await;
        let seen: Vec<(TaskId, (usize, usize, usize))> = tasks
            .iter()
            .map(|&(t, _)| {
                let (claims, releases) = claims_releases(&evs, t);
                let dones = node.steps(t).iter().filter(|(s, _)| s == "done").count();
                (t, (claims, releases, dones))
            })
            .collect();
        let reached = tasks
            .iter()
            .zip(&seen)
            .all(|((_, want), (_, got))| got.0 >= want.0 && got.1 >= want.1 && got.2 >= want.2);
        if reached {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "(claims, releases, done steps) per task not reached within 30 s: expected \
             {tasks:?}, seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Moves the chain's clock `secs` ahead and mines a block.
fn time_travel(stack: &Stack, secs: u64) {
    let rpc: std::net::SocketAddr = stack.info["rpc"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let json = "Content-Type: application/json\r\n";
    for body in [
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"evm_increaseTime","params":[{secs}]}}"#),
        r#"{"jsonrpc":"2.0","id":2,"method":"evm_mine","params":[]}"#.to_owned(),
    ] {
        let (status, answer) = http(rpc, "POST", "/", json, body.as_bytes());
        assert!(status == 200 && !answer.contains("\"error\""), "{body}: {answer}");
    }
}

/// `module` with a custom section carrying `marker` appended: a different, valid module
/// (new bytes, new measurement, new CID) that runs exactly like the original.
fn with_marker(module: &[u8], marker: &[u8]) -> Vec<u8> {
    let name = b"ecld-test";
    let size = 1 + name.len() + marker.len();
    assert!(size < 128 && marker.len() < 100, "one-byte LEB128 sizes only");
    let mut out = module.to_vec();
    out.extend([0u8, u8::try_from(size).unwrap(), u8::try_from(name.len()).unwrap()]);
    out.extend_from_slice(name);
    out.extend_from_slice(marker);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A node whose store altered an image's module, and an image registered with the
/// measurement of one module and the CID of another: the node refuses to run either (the
/// module is checked against its CID block by block and against the registered measurement
/// before an enclave starts), releases each task with `releaseTask` (three attempts with
/// backoff, as the node does for any failure that may be transient, then it leaves the task),
/// and the requester takes back the whole price after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_image_is_never_run_and_its_tasks_are_refunded_in_full() {
    let stack = Stack::start();
    let c = client(&stack).await;
    let chain = chain_of(&stack).await;
    let sim_key = ecld_tee::SimPlatformKey::load_or_generate(
        &stack_node_dir(&stack).join("sim-platform.key"),
    )
    .unwrap()
    .public_hex();
    let base = std::fs::read(programs_dir().join("hash.wasm")).unwrap();
    let publish = |name: &str, module: &[u8]| PublishRequest {
        name: name.to_owned(),
        version: "1".to_owned(),
        module: module.to_vec(),
        policy: PublishRequest::sim_policy(module, std::slice::from_ref(&sim_key)).unwrap(),
        cas: None,
        cas_token: None,
    };

    // 1. A properly published image whose module blocks are then altered in the store.
    let marker = b"altered in the store after publishing";
    let altered = c.publish_image(&publish("altered-in-store", &with_marker(&base, marker))).await;
    let altered = altered.unwrap();
    let mut flipped = 0;
    for file in files_under(Path::new(stack.info["store_dir"].as_str().unwrap())) {
        let mut bytes = std::fs::read(&file).unwrap();
        if let Some(at) = find(&bytes, marker) {
            bytes[at] ^= 0x20;
            std::fs::write(&file, bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 1, "expected the module's last block once in the store");

    // 2. A manifest whose measurement is that of another module than its CID's.
    let claimed = with_marker(&base, b"the module the measurement names");
    let served = with_marker(&base, b"the module the CID names");
    let honest = c.publish_image(&publish("claimed", &claimed)).await.unwrap();
    let served_cid = c.upload(&served).await.unwrap();
    let manifest = ImageManifest {
        codeCid: served_cid.clone(),
        measurement: honest.measurement,
        enclaveKey: honest.enclave_key,
        enclaveSigner: honest.enclave_signer,
        casIdentity: honest.cas_identity,
        platforms: honest.platforms,
        owner: c.account().unwrap(),
        name: "mismatched-measurement".into(),
        version: "1".into(),
    };
    let registry = ImageRegistry::new(c.deployment().registry, c.provider().clone());
    let id = ImageId(registry.imageIdOf(manifest.clone()).call().await.unwrap());
    let receipt = registry.publish(manifest).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "publishing the mismatched manifest reverted");
    let mismatched = c.image(id).await.unwrap();
    let served_measurement = B256::from(ecld_tee::sim::measure(&served));
    assert_eq!(mismatched.code_cid, served_cid);
    assert_ne!(mismatched.measurement, served_measurement);

    // A node serving both images; each gets an open task.
    let store = stack.info["store"].as_str().unwrap();
    let (mut node, _) = Node::start(&stack, &[altered.id, mismatched.id], store);
    let before = c.balance(None).await.unwrap();
    let submit = |image: ImageId| {
        let mut req = TaskRequest::new(image, b"input for a tampered image\n".to_vec());
        req.offer = OfferChoice::Open;
        req.price = Some(MAX_PRICE.parse::<U256>().unwrap());
        req
    };
    let mut tasks = Vec::new();
    for image in [altered.id, mismatched.id] {
        tasks.push(c.submit(&submit(image)).await.unwrap().task);
    }
    assert!(c.balance(None).await.unwrap() < before, "the prices are escrowed");

    // The module registered with another measurement can never match: the node refuses its
    // image at the first attempt, releases that task once and claims no task of the image
    // again. The altered module may be a store's lie that a later fetch does not repeat: the
    // node tries that task a bounded number of times, then leaves it. Nothing settles, no
    // enclave runs.
    let gave_up = "failed the task 3 times; leaving it to other nodes";
    let refused = format!("image {} refused for good", mismatched.id);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !node.text().contains(&refused) {
        assert!(Instant::now() < deadline, "the node did not refuse the image: {}", node.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A task submitted after the refusal, while the node still retries the altered one.
    let later = c.submit(&submit(mismatched.id)).await.unwrap().task;
    while node.text().matches(gave_up).count() < 1 {
        assert!(Instant::now() < deadline, "the node did not give up: {}", node.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expected =
        [(3, "image module unavailable"), (1, "image module does not match its registration")];
    let rounds: Vec<_> = tasks.iter().zip(expected).map(|(&t, (n, _))| (t, (n, n, n))).collect();
    wait_for_rounds(&chain, &node, &rounds).await;
    // Then nothing more happens.
    tokio::time::sleep(SETTLE).await;
    let evs = events(&chain).await;
    let text = node.text();
    for (&t, (rounds, reason)) in tasks.iter().zip(expected) {
        assert_eq!(claims_releases(&evs, t), (rounds, rounds), "task {t}: {evs:?}");
        assert!(
            !evs.iter().any(|e| matches!(e, ChainEvent::Settled { task, .. } if *task == t)),
            "task {t} settled although its image is not the published one"
        );
        assert_eq!(c.task(t).await.unwrap().state, TaskState::Open);
        let steps = node.steps(t);
        let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["claiming", "claimed", "releasing", "done"].repeat(rounds), "task {t}");
        for (step, line) in &steps {
            if step == "releasing" {
                assert_eq!(line["reason"], reason, "task {t}: {line}");
            }
        }
    }
    assert_eq!(claims_releases(&evs, later), (0, 0), "{evs:?}");
    assert!(node.steps(later).is_empty(), "the node journaled a task of a refused image");
    assert_eq!(c.task(later).await.unwrap().state, TaskState::Open);
    assert_eq!(
        text.matches(gave_up).count(),
        1,
        "only the altered module's task is retried:\n{text}"
    );
    assert_eq!(text.matches(&refused).count(), 1, "the refusal is logged once:\n{text}");
    // The exact refusals: a block of the first module does not hash to its CID (each attempt
    // fetches again and is refused again); the second module hashes to another measurement
    // than the registered one, found once.
    let tampered = format!("the store served tampered content for {}", altered.code_cid);
    assert_eq!(text.matches(&tampered).count(), 3, "`{tampered}` in the node's log:\n{text}");
    let mismatch = format!(
        "module {served_cid} does not match: expected {}, got {served_measurement}",
        mismatched.measurement
    );
    // In the refusal's `detail` field, logged once.
    assert_eq!(text.matches(&mismatch).count(), 1, "`{mismatch}` in the node's log:\n{text}");
    assert!(!text.contains("enclave finished"), "an enclave ran a tampered image:\n{text}");
    // Neither module reached the node's module cache.
    let data_dir = node.journal.parent().unwrap().to_owned();
    for file in files_under(&data_dir.join("modules")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for cid in [&altered.code_cid, &served_cid] {
            assert!(!name.starts_with(cid.as_str()), "{name} was cached");
        }
    }
    // The refusal is kept in the data directory: a restarted node still claims no task of
    // the image, while it tries the altered module's task again (its count is in memory).
    let kept: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("refused-images.json")).unwrap())
            .unwrap();
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    assert_eq!(kept[0]["image"], mismatched.id.to_string(), "{kept}");
    assert_eq!(kept[0]["reason"], "measurement", "{kept}");
    kill9(&mut node.child);
    let (child, port) = start_node_with_metrics(
        &node._dir.path().join("node.toml"),
        &node.log,
        &[("ECLD_NODE_STORE_URL", store)],
    );
    node.child = child;
    let deadline = Instant::now() + Duration::from_secs(90);
    while node.text().matches(gave_up).count() < 2 {
        assert!(Instant::now() < deadline, "the restarted node did not give up: {}", node.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = node.text();
    assert!(text.contains("image refused (remembered)"), "{text}");
    // Three rounds more on chain; the journal, compacted at the start, holds the new ones.
    wait_for_rounds(&chain, &node, &[(tasks[0], (6, 6, 3))]).await;
    // Then nothing more happens.
    tokio::time::sleep(SETTLE).await;
    let evs = events(&chain).await;
    assert_eq!(claims_releases(&evs, tasks[0]), (6, 6), "{evs:?}");
    assert_eq!(claims_releases(&evs, tasks[1]), (1, 1), "{evs:?}");
    assert_eq!(claims_releases(&evs, later), (0, 0), "{evs:?}");
    let metrics = scrape(port);
    assert_eq!(sample(&metrics, "ecld_node_images_refused "), Some(1.0), "{metrics}");
    let tampered_fetches = "ecld_node_module_rejections_total{reason=\"tampered\"} ";
    assert_eq!(sample(&metrics, tampered_fetches), Some(3.0), "{metrics}");
    assert!(!metrics.contains("reason=\"measurement\""), "nothing fetched again: {metrics}");
    drop(node);
    tasks.push(later);

    // Nothing waits for a human: no node holds the released tasks, so the requester cancels
    // them at once; the rest come back after the deadline.
    for &t in &tasks {
        if c.task(t).await.unwrap().state == TaskState::Open {
            c.reclaim(t).await.unwrap();
            assert_eq!(c.task(t).await.unwrap().state, TaskState::Reclaimed);
        }
    }
    time_travel(&stack, 700);
    for &t in &tasks {
        if c.task(t).await.unwrap().state == TaskState::Reclaimed {
            continue;
        }
        c.reclaim(t).await.unwrap();
        assert_eq!(c.task(t).await.unwrap().state, TaskState::Reclaimed);
    }
    assert_eq!(c.balance(None).await.unwrap(), before, "the requester got every token back");
    let ledger = c.ledger().await.unwrap();
    assert!(ledger.conserved(), "escrowed ≠ paid + refunded + held: {ledger:?}");
}

/// What a [`LyingStore`] lies about.
#[derive(Default)]
struct Lies {
    /// Flip one byte of every `/api/v0/block/get` answer.
    blocks: AtomicBool,
    /// Answer every `/api/v0/add` with this CID instead of the real one.
    adds: std::sync::Mutex<Option<String>>,
    /// Lies told so far.
    told: AtomicUsize,
}

/// An HTTP proxy in front of the store that, when told to, lies: it flips one byte in the
/// body of every `/api/v0/block/get` answer (wrong bytes for a CID), or names another CID in
/// every `/api/v0/add` answer (a wrong CID for the bytes given). Honest, it passes everything
/// through. Each connection carries one request (`Connection: close`) so that every request
/// is judged on its own.
struct LyingStore {
    port: u16,
    lies: Arc<Lies>,
}

impl LyingStore {
    fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lies = Arc::new(Lies::default());
        let shared = Arc::clone(&lies);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (target, lies) = (target.clone(), Arc::clone(&shared));
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, &target, &lies);
                });
            }
        });
        Self { port, lies }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lie_about_blocks(&self, lie: bool) {
        self.lies.blocks.store(lie, Ordering::SeqCst);
    }

    fn lie_about_adds(&self, cid: Option<&str>) {
        *self.lies.adds.lock().unwrap() = cid.map(str::to_owned);
    }

    fn told(&self) -> usize {
        self.lies.told.load(Ordering::SeqCst)
    }
}

fn proxy_one(mut client: TcpStream, target: &str, lies: &Lies) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let end = loop {
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = find(&head, b"\r\n\r\n") {
            break at + 4;
        }
    };
    let text = String::from_utf8_lossy(&head[..end]).into_owned();
    let path = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut request: String = text
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    request.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(target)?;
    server.write_all(request.as_bytes())?;
    server.write_all(&head[end..])?;
    let (mut from_client, mut to_server) = (client.try_clone()?, server.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
    });
    let lie_block = lies.blocks.load(Ordering::SeqCst) && path.starts_with("/api/v0/block/get");
    let fake_cid = lies.adds.lock().unwrap().clone().filter(|_| path.starts_with("/api/v0/add"));
    if !lie_block && fake_cid.is_none() {
        std::io::copy(&mut server, &mut client)?;
        return client.shutdown(Shutdown::Both);
    }
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let at = find(&answer, b"\r\n\r\n").map_or(answer.len(), |a| a + 4);
    let head = String::from_utf8_lossy(&answer[..at]).into_owned();
    let mut body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(&answer[at..])
    } else {
        answer[at..].to_vec()
    };
    if head.starts_with("HTTP/1.1 200") && !body.is_empty() {
        if let Some(fake) = fake_cid {
            let lines: Vec<String> = String::from_utf8_lossy(&body)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    if v.get("Hash").is_some() {
                        v["Hash"] = Value::String(fake.clone());
                    }
                    v.to_string()
                })
                .collect();
            body = (lines.join("\n") + "\n").into_bytes();
        } else {
            let mid = body.len() / 2;
            body[mid] ^= 0x01;
        }
        lies.told.fetch_add(1, Ordering::SeqCst);
    }
    let mut out: String = head
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.is_empty()
                && !l.starts_with("connection:")
                && !l.starts_with("content-length:")
                && !l.starts_with("transfer-encoding:")
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
    client.write_all(out.as_bytes())?;
    client.write_all(&body)?;
    client.shutdown(Shutdown::Both)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// A store that returns altered bytes for a CID. At the node: the input of a task fails its
/// CID check, the enclave signs status 16 INPUT_UNAVAILABLE for an empty input, and the
/// requester is refunded at once. At the client: `fetch` refuses the altered result with
/// `VerifyError::ResultTampered` naming the task and the result CID, and `ecld task fetch`
/// exits 4 printing no plaintext. A store that names a wrong CID for what it is given: the
/// client's submission fails before anything is escrowed, and the node never puts that CID on
/// chain — it retries the upload and settles once the store answers truthfully.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_returns_wrong_bytes_is_caught_by_the_node_and_by_the_client() {
    let stack = Stack::start();
    let c = client(&stack).await;
    let stats = c.resolve_image("stats").await.unwrap();
    let liar = LyingStore::start(stack.info["store"].as_str().unwrap());
    let (node, offers) = Node::start(&stack, &[stats.id], &liar.url());
    let mut req = TaskRequest::new(stats.id, b"3 1 4 1 5 9 2 6\n".to_vec());
    req.offer = OfferChoice::Offer(offers[0]);

    // While the store is honest the node caches the module and settles a task.
    let first = c.run(&req, Duration::from_secs(60), |_, _| ()).await.unwrap();
    assert_eq!(first.status, StatusCode::Success);
    let plaintext = first.output.clone().unwrap().stdout;
    assert!(plaintext.len() >= 8, "the result is too short to search for: {plaintext:?}");

    // The store lies: the input the node fetches does not match its CID.
    liar.lie_about_blocks(true);
    let before = c.balance(None).await.unwrap();
    let submitted = c.submit(&req).await.unwrap();
    let info = c.wait(submitted.task, Duration::from_secs(60)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::InputUnavailable });
    assert_eq!(c.balance(None).await.unwrap(), before, "the requester paid for a lying store");
    let text = node.text();
    let refusal = format!("the store served tampered content for {}", submitted.input_cid);
    assert!(text.contains(&refusal), "no `{refusal}` in the node's log:\n{text}");
    assert!(text.contains("input unavailable; the enclave will sign INPUT_UNAVAILABLE"), "{text}");
    let lies_to_node = liar.told();
    assert!(lies_to_node >= 1, "the proxy never lied");

    // The client reading the first result through the lying store.
    let mut config = ClientConfig::load(&stack.config()).unwrap();
    config.store = liar.url();
    let fooled = Client::connect(&config).await.unwrap();
    let (_, record) = c.proof(first.task).await.unwrap();
    let err = fooled.fetch(first.task).await.unwrap_err();
    match &err {
        Error::Verify(VerifyError::ResultTampered { task, cid, .. }) => {
            assert_eq!(*task, first.task);
            assert_eq!(*cid, record.result_cid);
        }
        other => panic!("expected ResultTampered, got {other:?}"),
    }
    assert!(liar.told() > lies_to_node);
    let out = stack
        .cmd()
        .env("ECLD_STORE", liar.url())
        .args(["task", "fetch", &first.task.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the store returned altered bytes for the result {}",
            record.result_cid
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "printed something from altered bytes: {:?}", out.stdout);
    assert!(!contains(&out.stderr, &plaintext), "the plaintext result reached stderr");

    // The same result through the honest store is intact.
    let fetched = c.fetch(first.task).await.unwrap();
    assert_eq!(fetched.output.unwrap().stdout, plaintext);

    // The store now names another CID (that of the first task's input) for every upload.
    liar.lie_about_blocks(false);
    let fake = submitted.input_cid.clone();
    liar.lie_about_adds(Some(&fake));
    let lie =
        format!("the store answered CID {fake} for the uploaded bytes; do not trust this store");
    let before = c.balance(None).await.unwrap();
    let known = c.tasks(true).await.unwrap().len();
    match fooled.submit(&req).await.unwrap_err() {
        Error::Store { url, reason } => {
            assert_eq!(url, liar.url());
            assert!(reason.starts_with("store returned tampered content for "), "{reason}");
            assert!(reason.ends_with(&lie), "{reason}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(c.balance(None).await.unwrap(), before, "a refused upload escrowed tokens");
    assert_eq!(c.tasks(true).await.unwrap().len(), known, "a task was submitted");
    // The node's result upload goes through the lying store: it retries, settles nothing.
    let third = c.submit(&req).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.text().matches(&lie).count() < 2 {
        assert!(Instant::now() < deadline, "the node never uploaded: {}", node.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        matches!(c.task(third.task).await.unwrap().state, TaskState::Matched { .. }),
        "settled while the store lied about the result's CID"
    );
    let text = node.text();
    let refused = "result upload failed e=store unavailable for (upload): store returned \
                   tampered content for ";
    assert!(text.contains(refused), "no `{refused}` in the node's log:\n{text}");
    liar.lie_about_adds(None);
    let info = c.wait(third.task, Duration::from_secs(60)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::Success });
    let fetched = c.fetch(third.task).await.unwrap();
    assert_eq!(fetched.output.unwrap().stdout, plaintext, "the same input, the same result");
    let (_, record) = c.proof(third.task).await.unwrap();
    assert_ne!(record.result_cid, fake, "the node put the store's CID on chain");
    drop(node);
    assert!(c.ledger().await.unwrap().conserved());
}

/// The proof signer key of `image` as the CAS holds it (what an attested enclave of the image
/// receives), checked against the ImageRegistry.
fn signer_of(stack: &Stack, image: &ecld_sdk::Image) -> ecld_crypto::SignerKey {
    let hex8: String = image.measurement[..8].iter().map(|b| format!("{b:02x}")).collect();
    let session = format!("{}@{}-{hex8}", image.name, image.version);
    let cas_dir = std::path::Path::new(stack.info["cas_dir"].as_str().unwrap());
    let (_, _, key) = crate::e2e_stack::log_scan::cas_image_secrets(cas_dir)
        .into_iter()
        .find(|(s, ..)| *s == session)
        .unwrap_or_else(|| panic!("the CAS has no session {session}"));
    let key = ecld_crypto::SignerKey::from_hex(&key).unwrap();
    assert_eq!(key.address(), image.enclave_signer);
    key
}

type Market = ecld_contracts::Marketplace::MarketplaceInstance<alloy::providers::DynProvider>;

/// What the Marketplace says to `submitResult(task, …, proof fields, signature)` sent by
/// `from` (a dry run: `eth_call`).
#[allow(clippy::too_many_arguments)]
async fn submit_as(
    market: &Market,
    from: ecld_types::Address,
    task: TaskId,
    spec: &ecld_contracts::TaskSpec,
    requester: ecld_types::Address,
    (max_price, price): (alloy::primitives::aliases::U96, alloy::primitives::aliases::U96),
    cid: &str,
    proof: &ecld_crypto::ResultProof,
    signature: &[u8],
) -> Result<(), ecld_contracts::ContractError> {
    market
        .submitResult(
            U256::from(task.get()),
            spec.clone(),
            requester,
            max_price,
            price,
            cid.to_owned(),
            proof.result_hash,
            proof.code_hash,
            proof.status.code(),
            proof.runtime_ms,
            alloy::primitives::Bytes::copy_from_slice(signature),
        )
        .from(from)
        .call()
        .await
        .map(|_| ())
        .map_err(|e| ecld_contracts::decode_revert(&e).unwrap_or_else(|| panic!("{e}")))
}

/// The address a `WrongSigner` revert for `task` names as recovered (after checking the
/// task and the expected signer it names).
fn wrong_signer(
    what: &str,
    r: Result<(), ecld_contracts::ContractError>,
    task: TaskId,
    expected: ecld_types::Address,
) -> ecld_types::Address {
    use ecld_contracts::{ContractError, Marketplace::MarketplaceErrors as E};
    match r {
        Err(ContractError::Marketplace(E::WrongSigner(w))) => {
            assert_eq!((w.taskId, w.expected), (U256::from(task.get()), expected), "{what}");
            w.recovered
        }
        other => panic!("{what}: expected WrongSigner, got {other:?}"),
    }
}

/// On the stack's own chain and contracts, with the stack node's account and real enclave
/// keys: a proof replayed from another task, a proof signed by another image's enclave key,
/// a proof signed for another chain or another contract, and a proof with a field changed
/// after signing each revert with `WrongSigner` naming the address the contract recovered;
/// the right proof relayed by an account that does not hold the task reverts with
/// `NotTaskHolder`, a second claim of a held task with `TaskAlreadyClaimed`, and a second
/// submission of a settled task with `TaskNotActive`. Then, with the node running again, a
/// program whose output runs past the 16 MiB cap settles as RESOURCE_LIMIT with exactly the
/// cap delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_duplicate_proofs_and_claims_are_refused_with_exact_errors() {
    use alloy::primitives::aliases::U96;
    use ecld_contracts::{ContractError, Marketplace, Marketplace::MarketplaceErrors as E};
    use ecld_crypto::{ProofDomain, ProofSignature, ResultProof, SignerKey};

    let stack = Stack::start();
    let c = client(&stack).await;
    let stats = c.resolve_image("stats").await.unwrap();
    let hash = c.resolve_image("hash").await.unwrap();
    assert_ne!(stats.enclave_signer, hash.enclave_signer);
    let (stats_key, hash_key) = (signer_of(&stack, &stats), signer_of(&stack, &hash));
    let d = *c.deployment();
    let rpc: alloy::transports::http::reqwest::Url =
        stack.info["rpc"].as_str().unwrap().parse().unwrap();
    let node_key = SignerKey::load(&stack.dir.path().join("keys/node.eth.key")).unwrap();
    let node_chain =
        Chain::connect(rpc, node_key.signer().clone(), d.marketplace, d.registry).await.unwrap();
    let node = node_chain.address();
    let as_node = Marketplace::new(d.marketplace, node_chain.provider().clone());
    let requester = c.account().unwrap();
    let as_requester = Marketplace::new(d.marketplace, c.provider().clone());

    // Task A runs normally; task B is matched to the node, which is paused (SIGSTOP).
    let a = c
        .run(&TaskRequest::new(stats.id, b"2 7 1 8\n".to_vec()), Duration::from_secs(60), |_, _| ())
        .await
        .unwrap();
    let (_, rec_a) = c.proof(a.task).await.unwrap();
    let pid = stack.info["node"]["pid"].as_u64().expect("`ecld up` reports the node's pid");
    crate::adversarial::signal(pid, "STOP");
    let resume = crate::adversarial::Resume(pid);
    let before = c.balance(None).await.unwrap();
    let b = c.submit(&TaskRequest::new(stats.id, b"3 1 4 1\n".to_vec())).await.unwrap();
    let info = c.task(b.task).await.unwrap();
    let TaskState::Matched { offer, node: holder } = info.state else {
        panic!("task B is not matched: {:?}", info.state)
    };
    assert_eq!(holder, node);
    let input_cid_hash = ecld_types::keccak256(info.input_cid.as_bytes());
    let spec = ecld_contracts::TaskSpec {
        imageId: info.image.0,
        inputHash: info.input_hash,
        inputCidHash: input_cid_hash,
        memoryMb: info.memory_mb,
        maxRuntimeS: info.max_runtime_s,
        deadline: info.deadline,
    };
    let escrow = U96::from(u128::try_from(b.price).unwrap());
    let price = U96::from(u128::try_from(info.matched_price).unwrap());
    let domain = c.proof_domain();
    // B's spec, over any proof's outcome.
    let for_b = |p: ResultProof| ResultProof {
        task_id: b.task.get(),
        image_id: stats.id.0,
        input_hash: info.input_hash,
        input_cid_hash,
        memory_mb: info.memory_mb,
        max_runtime_s: info.max_runtime_s,
        deadline: info.deadline,
        ..p
    };
    // What an honest enclave signs for B when it cannot get the input: status 16, no result.
    let honest = for_b(ResultProof {
        code_hash: B256::ZERO,
        result_hash: B256::ZERO,
        result_cid_hash: ecld_types::keccak256(b""),
        status: StatusCode::InputUnavailable,
        runtime_ms: 0,
        ..rec_a.proof
    });
    let sign = |key: &SignerKey, domain: &ProofDomain| honest.sign(key, domain).unwrap();
    let submit = |from, proof: ResultProof, cid: String, sig: Vec<u8>| {
        let (spec, market) = (spec.clone(), if from == node { &as_node } else { &as_requester });
        async move {
            submit_as(market, from, b.task, &spec, requester, (escrow, price), &cid, &proof, &sig)
                .await
        }
    };
    let expected = stats.enclave_signer;

    // 1. A's real proof replayed for B.
    let replayed = for_b(rec_a.proof);
    let sig_a = ProofSignature::from_slice(&rec_a.signature).unwrap();
    let r = submit(node, replayed, rec_a.result_cid.clone(), rec_a.signature.to_vec()).await;
    let recovered = wrong_signer("replayed proof", r, b.task, expected);
    assert_eq!(recovered, replayed.recover(&domain, &sig_a).unwrap());
    assert_ne!(recovered, expected);

    // 2. Signed by another image's enclave key.
    let sig = sign(&hash_key, &domain);
    let r = submit(node, honest, String::new(), sig.0.to_vec()).await;
    assert_eq!(wrong_signer("another image's key", r, b.task, expected), hash.enclave_signer);

    // 3. and 4. Signed by the right key for another chain, or for another contract.
    for (what, other) in [
        ("another chain", ProofDomain { chain_id: domain.chain_id + 1, ..domain }),
        ("another contract", ProofDomain { verifying_contract: d.registry, ..domain }),
    ] {
        let sig = sign(&stats_key, &other);
        let r = submit(node, honest, String::new(), sig.0.to_vec()).await;
        let recovered = wrong_signer(what, r, b.task, expected);
        assert_eq!(recovered, honest.recover(&domain, &sig).unwrap(), "{what}");
        assert_ne!(recovered, expected, "{what}");
    }

    // 5. The right signature over status 16, submitted with status 0 (pay the node).
    let sig = sign(&stats_key, &domain);
    let tampered = ResultProof { status: StatusCode::Success, ..honest };
    let r = submit(node, tampered, String::new(), sig.0.to_vec()).await;
    let recovered = wrong_signer("tampered status", r, b.task, expected);
    assert_eq!(recovered, tampered.recover(&domain, &sig).unwrap());
    assert_ne!(recovered, expected);

    // 5b. A proof over limits the node chose (no run time: the program runs out of fuel at
    //     once, TIMEOUT, which pays), relayed with the task's spec.
    let patched = ResultProof { max_runtime_s: 0, status: StatusCode::Timeout, ..honest };
    let sig_patched = patched.sign(&stats_key, &domain).unwrap();
    let r = submit(node, patched, String::new(), sig_patched.0.to_vec()).await;
    let recovered = wrong_signer("limits the node chose", r, b.task, expected);
    let as_checked = ResultProof { max_runtime_s: info.max_runtime_s, ..patched };
    assert_eq!(recovered, as_checked.recover(&domain, &sig_patched).unwrap());
    assert_ne!(recovered, expected);
    // 5c. The honest proof relayed with another result CID than the one it signs.
    let r = submit(node, honest, "bafkreiother".into(), sig.0.to_vec()).await;
    assert_ne!(wrong_signer("another result CID", r, b.task, expected), expected);

    // 6. The right proof, relayed by an account that does not hold the task.
    match submit(requester, honest, String::new(), sig.0.to_vec()).await {
        Err(ContractError::Marketplace(E::NotTaskHolder(e))) => {
            assert_eq!((e.taskId, e.caller, e.holder), (U256::from(b.task.get()), requester, node));
        }
        other => panic!("not the holder: expected NotTaskHolder, got {other:?}"),
    }

    // 7. A second claim of the held task.
    let claim = as_node
        .claimTask(U256::from(b.task.get()), offer.get(), spec.clone(), requester, escrow)
        .from(node)
        .call()
        .await
        .unwrap_err();
    match ecld_contracts::decode_revert(&claim) {
        Some(ContractError::Marketplace(E::TaskAlreadyClaimed(e))) => {
            assert_eq!((e.taskId, e.offerId), (U256::from(b.task.get()), offer.get()));
        }
        other => panic!("double claim: expected TaskAlreadyClaimed, got {other:?}"),
    }

    // The right proof settles (status 16: the requester is refunded); a second submission of
    // it is refused.
    let receipt = as_node
        .submitResult(
            U256::from(b.task.get()),
            spec.clone(),
            requester,
            escrow,
            price,
            String::new(),
            B256::ZERO,
            B256::ZERO,
            StatusCode::InputUnavailable.code(),
            0,
            alloy::primitives::Bytes::copy_from_slice(&sig.0),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status(), "the honest proof did not settle");
    assert_eq!(
        c.task(b.task).await.unwrap().state,
        TaskState::Done { status: StatusCode::InputUnavailable }
    );
    assert_eq!(c.balance(None).await.unwrap(), before, "status 16 refunds the requester");
    match submit(node, honest, String::new(), sig.0.to_vec()).await {
        Err(ContractError::Marketplace(E::TaskNotActive(e))) => {
            assert_eq!(e.taskId, U256::from(b.task.get()));
        }
        other => panic!("double submit: expected TaskNotActive, got {other:?}"),
    }

    // The node wakes up (its held task is gone) and runs a program that writes without end:
    // the output is cut at the cap, the status is RESOURCE_LIMIT and the node is paid.
    crate::adversarial::signal(pid, "CONT");
    drop(resume);
    let wasm = c.resolve_image("wasm").await.expect("the `wasm` runner image");
    let flood =
        std::fs::read(crate::e2e_stack::repo_root().join("testdata/enclave/flood.wasm")).unwrap();
    let mut req = TaskRequest::new(wasm.id, Vec::new());
    req.code = Some(flood);
    let node_before = c.balance(Some(node)).await.unwrap();
    let r = c.run(&req, Duration::from_secs(120), |_, _| ()).await.unwrap();
    assert_eq!(r.status, StatusCode::ResourceLimit);
    assert_eq!(r.output.unwrap().stdout.len(), 16 << 20, "the output is not cut at 16 MiB");
    assert!(c.balance(Some(node)).await.unwrap() > node_before, "RESOURCE_LIMIT pays the node");
    assert!(c.ledger().await.unwrap().conserved());
}

/// A valid secp256k1 public key (the generator) that is no node's sim platform key.
const STRANGER_SIM_KEY: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

/// Two images whose CAS policy does not admit this node's enclave: one admits only another
/// machine's sim platform key (this enclave is, to the CAS, unattested), the other is strict —
/// TDX only, no `danger_allow_sim` — while its registry entry lets sim nodes take its tasks.
/// The CAS refuses each enclave with its own code (`untrusted_sim_key`, `sim_not_allowed`),
/// gives it no keys, and nothing runs; the node releases each task (three attempts) and the
/// requester takes back every token after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enclaves_the_cas_does_not_admit_get_no_keys_and_their_tasks_are_refunded() {
    let stack = Stack::start();
    let c = client(&stack).await;
    let chain = chain_of(&stack).await;
    let base = std::fs::read(programs_dir().join("hash.wasm")).unwrap();

    // 1. A sim policy listing another machine's platform key.
    let module = with_marker(&base, b"admits another machine only");
    let policy = PublishRequest::sim_policy(&module, &[STRANGER_SIM_KEY.to_owned()]).unwrap();
    let req = PublishRequest {
        name: "other-machine-only".into(),
        version: "1".into(),
        module,
        policy,
        cas: None,
        cas_token: None,
    };
    let unattested = c.publish_image(&req).await.unwrap();

    // 2. A strict policy (TDX only) in the CAS, an ImageRegistry entry that allows sim.
    let module = with_marker(&base, b"strict policy, sim in the registry");
    let measurement = B256::from(ecld_tee::sim::measure(&module));
    let (name, version) = ("strict-tdx-only", "1");
    let session = ecld_node::enclave::session_name(name, version, &measurement);
    let policy = ecld_tee::Policy {
        tdx: Some(ecld_tee::TdxPolicy {
            mr_td: ecld_tee::HexBytes([1; 48]),
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
        }),
        tcb_statuses: vec!["UpToDate".to_owned()],
        ..ecld_tee::Policy::default()
    };
    assert!(!policy.danger_allow_sim && policy.sim.is_none());
    let cas: std::net::SocketAddr = stack.info["cas"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let token = std::fs::read_to_string(stack.dir.path().join("keys/cas-admin.token")).unwrap();
    let body = serde_json::json!({ "name": session, "policy": policy }).to_string();
    let headers = format!(
        "Content-Type: application/json\r\nAuthorization: Bearer {}\r\n",
        token.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().trim()
    );
    let (status, answer) = http(cas, "POST", "/v1/sessions", &headers, body.as_bytes());
    assert!((200..300).contains(&status), "creating the strict session: {status} {answer}");
    let info: Value = serde_json::from_str(&answer).unwrap();
    let manifest = ImageManifest {
        codeCid: c.upload(&module).await.unwrap(),
        measurement,
        enclaveKey: ecld_sdk::keys::key_of(info["enclave_recipient"].as_str().unwrap()).unwrap(),
        enclaveSigner: info["enclave_signer"].as_str().unwrap().parse().unwrap(),
        casIdentity: info["cas_identity"].as_str().unwrap().parse().unwrap(),
        platforms: 1,
        owner: c.account().unwrap(),
        name: name.into(),
        version: version.into(),
    };
    let registry = ImageRegistry::new(c.deployment().registry, c.provider().clone());
    let id = ImageId(registry.imageIdOf(manifest.clone()).call().await.unwrap());
    let receipt = registry.publish(manifest).send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "publishing the strict image reverted");
    let strict = c.image(id).await.unwrap();
    assert!(strict.allows_sim());

    let store = stack.info["store"].as_str().unwrap();
    let (node, _) = Node::start(&stack, &[unattested.id, strict.id], store);
    let before = c.balance(None).await.unwrap();
    let mut tasks = Vec::new();
    for image in [unattested.id, strict.id] {
        let mut req = TaskRequest::new(image, b"input for an enclave without keys\n".to_vec());
        req.offer = OfferChoice::Open;
        req.price = Some(MAX_PRICE.parse::<U256>().unwrap());
        tasks.push(c.submit(&req).await.unwrap().task);
    }
    let gave_up = "failed the task 3 times; leaving it to other nodes";
    let deadline = Instant::now() + Duration::from_secs(90);
    while node.text().matches(gave_up).count() < tasks.len() {
        assert!(Instant::now() < deadline, "the node did not give up: {}", node.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rounds: Vec<_> = tasks.iter().map(|&t| (t, (3, 3, 3))).collect();
    wait_for_rounds(&chain, &node, &rounds).await;
    // Then nothing more happens.
    tokio::time::sleep(SETTLE).await;
    let evs = events(&chain).await;
    let text = node.text();
    for &t in &tasks {
        assert_eq!(claims_releases(&evs, t), (3, 3), "task {t}: {evs:?}");
        assert!(
            !evs.iter().any(|e| matches!(e, ChainEvent::Settled { task, .. } if *task == t)),
            "task {t} settled without an admitted enclave"
        );
        let steps = node.steps(t);
        let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(names, ["claiming", "claimed", "releasing", "done"].repeat(3), "task {t}");
        for (step, line) in &steps {
            if step == "releasing" {
                assert_eq!(line["reason"], "enclave did not start or attest", "task {t}: {line}");
            }
        }
    }
    let sim_key = ecld_tee::SimPlatformKey::load_or_generate(
        &stack_node_dir(&stack).join("sim-platform.key"),
    )
    .unwrap()
    .public_hex();
    for (image, refusal) in [
        (
            unattested.id,
            format!(
                "CAS refused (403 untrusted_sim_key): attestation refused: sim evidence is signed \
                 by platform key {sim_key}, which the policy's `sim.platform_keys` does not list"
            ),
        ),
        (
            strict.id,
            "CAS refused (403 sim_not_allowed): attestation refused: evidence is from the \
             INSECURE `sim` platform but the policy does not set `danger_allow_sim: true`"
                .to_owned(),
        ),
    ] {
        // One refusal per attempt, as the node reports it.
        let line = format!(
            "enclave for image {image} did not start: the enclave failed to start: CAS request \
             failed: {refusal}"
        );
        assert_eq!(text.matches(&line).count(), 3, "`{line}` in the node's log:\n{text}");
    }
    assert!(!text.contains("enclave finished"), "an enclave ran without keys:\n{text}");
    let audit = std::fs::read_to_string(
        Path::new(stack.info["cas_dir"].as_str().unwrap()).join("audit.jsonl"),
    )
    .unwrap();
    for code in ["untrusted_sim_key", "sim_not_allowed"] {
        assert!(audit.contains(&format!("\"code\":\"{code}\"")), "{code} missing in {audit}");
    }
    drop(node);

    time_travel(&stack, 700);
    for &t in &tasks {
        c.reclaim(t).await.unwrap();
        assert_eq!(c.task(t).await.unwrap().state, TaskState::Reclaimed);
    }
    assert_eq!(c.balance(None).await.unwrap(), before, "the requester got every token back");
    assert!(c.ledger().await.unwrap().conserved());
}
