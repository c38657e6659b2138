//! The dApp page `ecld up` serves: the embedded build of `web/`, its forwards to the chain and
//! the store, and what it refuses (unknown paths, path traversal, other origins).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

use std::io::{Read, Write};

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use serde_json::{Value, json};

use crate::e2e_stack::{Stack, repo_root};

/// The status code of a request sent byte for byte as given (HTTP clients normalise `..`
/// away before sending, which would hide what the server does with it).
fn raw_status(addr: &str, request_line: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{request_line}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap_or_else(|| panic!("no status in {answer:?}"));
    status.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_page_and_forwards_to_chain_and_store() {
    let stack = tokio::task::spawn_blocking(Stack::start).await.unwrap();
    let web = stack.info["web"].as_str().expect("the ready line names the web page").to_owned();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // The page, with its security headers.
    let res = http.get(format!("{web}/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = res.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let html = res.text().await.unwrap();
    assert_eq!(html, std::fs::read_to_string(repo_root().join("web/dist/index.html")).unwrap());

    // A hashed asset the page names: the right type, cached for good, the committed bytes.
    let start = html.find("src=\"/assets/").expect("index.html loads a hashed script") + 5;
    let script = &html[start..start + html[start..].find('"').unwrap()];
    let res = http.get(format!("{web}{script}")).send().await.unwrap();
    assert_eq!(res.status(), 200, "{script}");
    assert_eq!(res.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(res.headers()[CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let body = res.bytes().await.unwrap();
    assert_eq!(&body[..], std::fs::read(repo_root().join("web/dist").join(&script[1..])).unwrap());

    // The page's configuration: the stack's deployment and the forwards' paths.
    let config: Value =
        http.get(format!("{web}/ecld-config.json")).send().await.unwrap().json().await.unwrap();
    let deployment: Value =
        serde_json::from_slice(&std::fs::read(stack.info["deployment"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(config, json!({ "deployment": deployment, "rpc": "/rpc", "store": "/store" }));

    // The chain through /rpc.
    let answer: Value = http
        .post(format!("{web}/rpc"))
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chain_id = stack.info["chain_id"].as_u64().unwrap();
    assert_eq!(answer["result"], format!("{chain_id:#x}"));

    // The store through /store: a file of several chunks goes in and comes back whole.
    let bytes: Vec<u8> =
        (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.clone()).file_name("file"));
    let added = http
        .post(format!("{web}/store/api/v0/add?cid-version=1&raw-leaves=true"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let line: Value = serde_json::from_str(added.text().await.unwrap().lines().last().unwrap())
        .expect("add answers a JSON line");
    let cid = line["Hash"].as_str().expect("add answers the CID");
    let cat = http.post(format!("{web}/store/api/v0/cat?arg={cid}")).send().await.unwrap();
    assert_eq!(cat.status(), 200);
    assert!(cat.bytes().await.unwrap() == bytes, "cat through /store returns what add stored");

    // Refused: unknown paths, path traversal, the store by GET (a navigation or a <script>
    // never reaches it), and requests from another origin or host name.
    assert_eq!(http.get(format!("{web}/no-such-page")).send().await.unwrap().status(), 404);
    let addr = web.strip_prefix("http://").unwrap();
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/assets/../../Cargo.toml",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/..%2f..%2fCargo.toml",
    ] {
        assert_eq!(raw_status(addr, &format!("GET {path} HTTP/1.1")), 404, "{path}");
    }
    let get_store = http.get(format!("{web}/store/api/v0/cat?arg={cid}")).send().await.unwrap();
    assert_eq!(get_store.status(), 405);
    let chain_id_call = json!({ "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": [] });
    let foreign = http
        .post(format!("{web}/rpc"))
        .header("origin", "http://evil.example")
        .json(&chain_id_call)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let rebound = http
        .post(format!("{web}/rpc"))
        .header("host", "evil.example")
        .json(&chain_id_call)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);

    tokio::task::spawn_blocking(move || drop(stack.stop())).await.unwrap();
}

/// `ecld up` on fixed ports (no `--ephemeral-ports`) while the page's default port is taken,
/// by this test or by anything else: the stack still starts, with the page on a free port.
#[test]
fn the_page_moves_to_a_free_port_when_the_default_one_is_taken() {
    use std::io::BufRead;
    let _held = std::net::TcpListener::bind("127.0.0.1:5173"); // Taken either way.
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("up.log");
    let mut child = std::process::Command::new(crate::e2e_stack::ecld_bin())
        .args(["up", "--json", "--stop-on-stdin-eof", "--no-node"])
        .args(["--rpc-port", "0", "--store-port", "0", "--cas-port", "0", "--data-dir"])
        .arg(dir.path())
        .arg("--programs")
        .arg(crate::e2e_stack::programs_dir())
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!("`ecld up` printed {line:?} ({e}); its log: {}", log.display())
    });
    // The secret scan a `Stack` runs when it stops.
    let mut status = None;
    crate::e2e_stack::log_scan::check_stack(dir.path(), &info, 6, &[log], Vec::new(), || {
        drop(child.stdin.take());
        status = Some(child.wait().unwrap());
    });
    let status = status.unwrap();
    let web = info["web"].as_str().unwrap();
    assert!(web.starts_with("http://127.0.0.1:") && !web.ends_with(":5173"), "{web}");
    assert!(status.success(), "{status}");
}
