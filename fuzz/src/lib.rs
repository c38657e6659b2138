//! Fuzz targets for the parsers of untrusted bytes in ecld, as plain functions.
//!
//! Each `pub fn NAME(&[u8])` is one libFuzzer target (`fuzz_targets/NAME.rs`) and is also run
//! over the committed seed corpus `corpus/NAME/` by `tests/corpus.rs` on stable Rust. A target
//! fails by panicking: the parsers must return errors, never panic, and what they accept must
//! be consistent (checked below where a cheap oracle exists).
//!
//! The task input payload and the age envelope (ecld-crypto) are in [`crypto`].

#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed assertion is a finding.

mod crypto;

pub use crypto::{FUZZ_IDENTITY, envelope_decrypt, fuzz_identity, payload_decode};

use std::{
    io::{Cursor, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use ecld_crypto::{ProofDomain, ProofSignature, ResultProof};
use ecld_enclave::protocol::{Request, Response, frame};
use ecld_store::{Cid, unixfs};
use ecld_tee::{Evidence, Policy, ReportData};

/// A proof with every field set, for `proof_signature`.
fn sample_proof() -> ResultProof {
    serde_json::from_value(serde_json::json!({
        "taskId": 7,
        "imageId": format!("0x{}", "11".repeat(32)),
        "inputHash": format!("0x{}", "22".repeat(32)),
        "codeHash": format!("0x{}", "00".repeat(32)),
        "resultHash": format!("0x{}", "33".repeat(32)),
        "status": 0,
        "runtimeMs": 12
    }))
    .expect("the sample proof is valid JSON for ResultProof")
}

/// Signature parsing and recovery: the first 65 bytes as a binary signature, the whole input
/// as the text form, and the input as a JSON proof. A signature that recovers must verify
/// against what it recovered to.
pub fn proof_signature(data: &[u8]) {
    let domain = ProofDomain { chain_id: 31_337, verifying_contract: Default::default() };
    let proof = sample_proof();
    if let Some(head) = data.get(..65) {
        let sig = ProofSignature::from_slice(head).expect("65 bytes are always held");
        if let Ok(signer) = proof.recover(&domain, &sig) {
            proof.verify(&domain, &sig, signer).expect("a recovered signer verifies");
        }
    } else {
        assert!(ProofSignature::from_slice(data).is_err(), "a short signature was accepted");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(sig) = text.parse::<ProofSignature>() {
            let _ = proof.recover(&domain, &sig);
        }
        if let Ok(p) = serde_json::from_str::<ResultProof>(text) {
            let _ = p.signing_hash(&domain);
            let again: ResultProof =
                serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(again, p, "a parsed proof does not round-trip through JSON");
        }
    }
}

/// The enclave protocol: a stream of frames read as the enclave reads requests and as the
/// node reads responses, until the first unrecoverable error; and the result envelope.
pub fn enclave_frames(data: &[u8]) {
    let mut r = Cursor::new(data);
    loop {
        match frame::read_frame::<Request>(&mut r) {
            Ok(f) => {
                // What was accepted re-encodes to a frame that reads back the same.
                let mut out = Vec::new();
                frame::write_frame(&mut out, &f.header, &f.blob).unwrap();
                let back = frame::read_frame::<Request>(&mut Cursor::new(out)).unwrap();
                assert_eq!(back, f, "an accepted request frame does not round-trip");
            }
            Err(e) if e.is_recoverable() => {}
            Err(_) => break,
        }
    }
    let mut r = Cursor::new(data);
    while let Ok(_) | Err(frame::FrameError::Header(_)) = frame::read_frame::<Response>(&mut r) {}
    if let Ok(env) = ecld_enclave::result::ResultEnvelope::decode(data) {
        assert_eq!(env.encode(), data, "an accepted result envelope is not canonical");
    }
}

/// The store's block decoders and CID parsing: a block as dag-pb and UnixFS, as a file node
/// under a dag-pb and a raw CID, its child links; the input as binary and text CIDs.
pub fn store_dag(data: &[u8]) {
    let block = Bytes::copy_from_slice(data);
    let pb = Cid::new_v1(0x70, unixfs::cid_of(0x55, b"").hash().to_owned());
    let raw = unixfs::cid_of(0x55, b"");
    let _ = unixfs::PbNode::decode(data);
    let _ = unixfs::UnixFsData::decode(data);
    if let Ok(node) = unixfs::decode_file_node(&pb, block.clone()) {
        let _ = unixfs::declared_size(&node);
    }
    assert!(unixfs::decode_file_node(&raw, block).is_ok(), "a raw leaf is any bytes");
    let _ = unixfs::child_links(&pb, data);
    let _ = unixfs::verify(&pb, data);
    if let Ok(cid) = Cid::try_from(data) {
        assert_eq!(Cid::try_from(cid.to_bytes().as_slice()).unwrap(), cid);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(cid) = ecld_store::parse_cid(text)
    {
        assert_eq!(ecld_store::parse_cid(&cid.to_string()).unwrap(), cid);
    }
    let _ = ecld_tee::inspect_quote(data);
}

/// CAS request bodies as the CAS parses them, and attestation evidence checked against a
/// sim and a TDX policy (the evidence parsers: sim signatures, DCAP quotes and collateral).
pub fn cas_request(data: &[u8]) {
    let _ = serde_json::from_slice::<ecld_cas::api::CreateSession>(data);
    let _ = serde_json::from_slice::<ecld_cas::api::NonceRequest>(data);
    let _ = serde_json::from_slice::<Policy>(data);
    if let Ok(req) = serde_json::from_slice::<ecld_cas::api::AttestRequest>(data) {
        let _ = ecld_cas::api::valid_session_name(&req.session);
        let expected =
            ReportData::for_attestation(&req.session, &req.nonce, &req.ephemeral_recipient);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for policy in policies() {
            let _ = req.evidence.verify(policy, &expected, now);
        }
    }
    if let Ok(ev) = serde_json::from_slice::<Evidence>(data) {
        let _ = ev.platform();
    }
}

fn policies() -> &'static [Policy] {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        let sim = Policy::danger_sim([0x11; 32], vec![[0x02; 33]]);
        let tdx: Policy = serde_json::from_value(serde_json::json!({
            "danger_allow_sim": false,
            "tdx": {"mr_td": "00".repeat(48), "rtmr0": null, "rtmr1": null, "rtmr2": null,
                    "rtmr3": null},
            "tcb_statuses": ["UpToDate"]
        }))
        .expect("the TDX fuzz policy parses");
        vec![sim, tdx]
    })
}

/// One in-process devnet for the whole fuzzing session, in a runtime of its own.
fn devnet_addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a Tokio runtime");
            rt.block_on(async move {
                let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral())
                    .await
                    .expect("the devnet starts");
                tx.send(devnet.addr()).unwrap();
                // Keep the handle (and the server) alive for the process's lifetime.
                std::future::pending::<()>().await;
                drop(devnet);
            });
        });
        rx.recv().expect("the devnet thread reports its address")
    })
}

/// POSTs `body` as JSON-RPC and returns the HTTP status code and body.
fn post(addr: SocketAddr, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect to the devnet");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the devnet answered within 20 s (or it hangs)");
    let text = String::from_utf8_lossy(&out);
    let code = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| out[i + 4..].to_vec())
        .unwrap_or_default();
    (code, body)
}

/// Devnet JSON-RPC request parsing and dispatch over HTTP: every body gets an HTTP answer
/// (never a dropped connection or a 5xx), JSON when it has a body, and the devnet still
/// answers `eth_chainId` afterwards.
pub fn devnet_rpc(data: &[u8]) {
    let addr = devnet_addr();
    let (code, body) = post(addr, data);
    assert!(code < 500, "devnet answered HTTP {code}: {}", String::from_utf8_lossy(&body));
    if code == 200 && !body.is_empty() {
        // Chunked bodies are not decoded here; the devnet answers with a Content-Length.
        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_else(|e| {
            panic!("devnet answered 200 with non-JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
    }
    let (code, body) = post(addr, br#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#);
    assert_eq!(code, 200, "devnet stopped answering: {}", String::from_utf8_lossy(&body));
}

// ---- HTTP layers: the store's Kubo API and gateway, the CAS ----

/// One request derived from fuzz bytes. The input reads as
/// `METHOD /path?query\n(content-type|authorization): value\n…\n\nbody`: the method is one
/// of a fixed list (else POST), the target's bytes outside visible ASCII are percent-encoded,
/// header lines other than those two are ignored, header values are cut to printable ASCII,
/// and everything after the first blank line is the body, sent as is. The harness sets
/// `Content-Length` and `Connection: close` itself, so framing is never ambiguous.
struct FuzzRequest {
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl FuzzRequest {
    fn parse(data: &[u8]) -> Self {
        const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&data[..i], data[i + 2..].to_vec()),
            None => (data, Vec::new()),
        };
        let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let first = lines.next().unwrap_or_default();
        let (m, path) = match first.iter().position(|&b| b == b' ') {
            Some(i) => (&first[..i], &first[i + 1..]),
            None => (&b""[..], first),
        };
        let method = METHODS.iter().find(|x| x.as_bytes() == m).copied().unwrap_or("POST");
        let mut target = String::new();
        if path.first() != Some(&b'/') {
            target.push('/');
        }
        for &b in path {
            if (0x21..0x7f).contains(&b) {
                target.push(char::from(b));
            } else {
                target.push_str(&format!("%{b:02X}"));
            }
        }
        let mut headers = Vec::new();
        for line in lines {
            let Some(i) = line.iter().position(|&b| b == b':') else { continue };
            let name = match line[..i].to_ascii_lowercase().as_slice() {
                b"content-type" => "Content-Type",
                b"authorization" => "Authorization",
                _ => continue,
            };
            let value: String = line[i + 1..]
                .iter()
                .filter(|b| (0x20..0x7f).contains(*b))
                .map(|&b| char::from(b))
                .collect();
            headers.push((name, value.trim().to_owned()));
        }
        Self { method, target, headers, body }
    }
}

/// An HTTP answer with its body de-chunked.
struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).chars().take(2000).collect()
    }
}

/// Sends one request over a fresh loopback connection and reads the whole answer. Panics
/// (a finding) on a dropped connection, a hang over 20 s, a malformed status line, a body
/// shorter than its `Content-Length`, or a chunked body cut before its last chunk.
fn http(addr: SocketAddr, req: &FuzzRequest) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the service");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", req.method, req.target);
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", req.body.len()));
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (e.g. 413) and close before reading the whole body.
    let _ = s.write_all(&req.body);
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        assert!(
            !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset,
            "no answer to {} {} within 20 s (hang or dropped connection): {e}",
            req.method,
            req.target
        );
    }
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "dropped connection or no HTTP head for {} {}: {:?}",
            req.method,
            req.target,
            String::from_utf8_lossy(&out)
        )
    });
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let raw = &out[split + 4..];
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer { code, headers, body: Vec::new() };
    if req.method == "HEAD" || code == 204 || code == 304 {
        return answer;
    }
    if answer.header("transfer-encoding") == Some("chunked") {
        answer.body = dechunk(raw).unwrap_or_else(|| {
            panic!("chunked body cut short for {} {} (HTTP {code})", req.method, req.target)
        });
    } else {
        answer.body = raw.to_vec();
        if let Some(len) = answer.header("content-length") {
            let len: usize = len.parse().expect("a numeric Content-Length");
            assert_eq!(
                answer.body.len(),
                len,
                "body shorter than its Content-Length for {} {} (HTTP {code})",
                req.method,
                req.target
            );
        }
    }
    answer
}

/// Decodes a chunked body; `None` when it ends before the terminating zero-size chunk.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A JSON answer must be a stream of JSON values (the store answers `add` and `repo/gc`
/// with newline-delimited JSON under `application/json`, empty when there is nothing to list).
fn check_json(what: &str, req: &FuzzRequest, a: &Answer) {
    if a.header("content-type").is_some_and(|t| t.starts_with("application/json")) {
        for v in serde_json::Deserializer::from_slice(&a.body).into_iter::<serde_json::Value>() {
            v.unwrap_or_else(|e| {
                panic!(
                    "{what}: HTTP {} with invalid JSON ({e}) to {} {}: {}",
                    a.code,
                    req.method,
                    req.target,
                    a.text()
                )
            });
        }
    }
}

/// Starts a service once per process in a runtime of its own thread and returns its address.
fn spawn_service<F>(start: impl FnOnce() -> F + Send + 'static) -> SocketAddr
where
    F: std::future::Future<Output = (SocketAddr, Box<dyn std::any::Any + Send>)>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("a Tokio runtime");
        rt.block_on(async move {
            let (addr, handle) = start().await;
            tx.send(addr).unwrap();
            // Keep the handle (and the server) alive for the process's lifetime.
            std::future::pending::<()>().await;
            drop(handle);
        });
    });
    rx.recv().expect("the service thread reports its address")
}

/// A fresh state directory for one service of this process.
fn state_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ecld-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the fuzz state directory");
    dir
}

/// The store of this process, holding the files the seeds name (`hello fuzz\n` and the four
/// bytes 0..=3) whatever order the seeds run in.
fn store_addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let addr = spawn_service(|| async {
            let config = ecld_store::StoreConfig::ephemeral(state_dir("store"));
            let store = ecld_store::spawn(config).await.expect("the store starts");
            (store.addr(), Box::new(store) as Box<dyn std::any::Any + Send>)
        });
        let body = b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello fuzz\n\r\n\
                     --b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\x00\x01\x02\x03\r\n\
                     --b--\r\n";
        let added = http(
            addr,
            &FuzzRequest {
                method: "POST",
                target: "/api/v0/add".into(),
                headers: vec![("Content-Type", "multipart/form-data; boundary=b".into())],
                body: body.to_vec(),
            },
        );
        assert_eq!(added.code, 200, "the store refused the seed files: {}", added.text());
        addr
    })
}

/// The store's HTTP layer (Kubo RPC subset and gateway) on a live in-process store: query
/// parsing, multipart `add` (and its streaming `progress` form), `cat`, `block/*`, `pin/*`,
/// `repo/gc`, `/ipfs/{cid}`. Oracle: every request gets a complete HTTP answer (no dropped
/// connection, no truncated body), never a 5xx (the store runs without a quota, so not even
/// its documented 507), JSON answers parse, a 200 `cat` carries as many bytes as its
/// `X-Content-Length`, and the store still answers `version` afterwards.
pub fn store_http(data: &[u8]) {
    let addr = store_addr();
    let req = FuzzRequest::parse(data);
    let a = http(addr, &req);
    assert!(
        a.code < 500,
        "store answered HTTP {} to {} {}: {}",
        a.code,
        req.method,
        req.target,
        a.text()
    );
    check_json("store", &req, &a);
    if a.code == 200
        && let Some(n) = a.header("x-content-length")
    {
        let n: usize = n.parse().expect("a numeric X-Content-Length");
        assert_eq!(a.body.len(), n, "cat answered a body of another size than announced");
    }
    let ok = http(
        addr,
        &FuzzRequest {
            method: "POST",
            target: "/api/v0/version".into(),
            headers: vec![],
            body: vec![],
        },
    );
    assert_eq!(ok.code, 200, "the store stopped answering: {}", ok.text());
}

/// The admin token of the fuzzed CAS (seeds use it to reach session creation).
pub const CAS_FUZZ_ADMIN_TOKEN: &str = "fuzz-admin-token";

/// The sim platform whose evidence the fuzzed CAS's session `fuzz` accepts.
fn cas_sim() -> &'static ecld_tee::SimPlatform {
    static SIM: OnceLock<ecld_tee::SimPlatform> = OnceLock::new();
    SIM.get_or_init(|| {
        ecld_tee::SimPlatform::new(ecld_tee::SimPlatformKey::generate(), b"ecld fuzz module")
    })
}

fn cas_addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let addr = spawn_service(|| async {
            let mut config = ecld_cas::CasConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                state_dir("cas"),
                ecld_cas::AdminToken::new(CAS_FUZZ_ADMIN_TOKEN),
            );
            // Nonces expire quickly, so that millions of fuzzed nonce requests never fill
            // the outstanding-nonce table (its 503 is documented, not a finding).
            config.nonce_ttl_secs = 2;
            let cas = ecld_cas::spawn(config).await.expect("the CAS starts");
            (cas.addr(), Box::new(cas) as Box<dyn std::any::Any + Send>)
        });
        let sim = cas_sim();
        let policy = Policy::danger_sim(sim.measurement(), vec![sim.key().public_key()]);
        let body = serde_json::to_vec(&serde_json::json!({"name": "fuzz", "policy": policy}))
            .expect("the session request serializes");
        let created = http(
            addr,
            &FuzzRequest {
                method: "POST",
                target: "/v1/sessions".into(),
                headers: vec![("Authorization", format!("Bearer {CAS_FUZZ_ADMIN_TOKEN}"))],
                body,
            },
        );
        assert!(created.code < 300, "the fuzz session was refused: {}", created.text());
        addr
    })
}

/// Replaces `{{nonce}}` in a CAS request body by a fresh nonce of session `fuzz`, and a
/// `"{{sim_evidence}}"` JSON string by sim evidence over the body's own session, nonce and
/// ephemeral recipient, so that seeds (and their mutations) reach past nonce bookkeeping
/// and evidence verification into the sealing and signing of the answer.
fn cas_placeholders(addr: SocketAddr, body: &mut Vec<u8>) {
    const NONCE: &[u8] = b"{{nonce}}";
    const SIM: &[u8] = b"\"{{sim_evidence}}\"";
    if let Some(i) = body.windows(NONCE.len()).position(|w| w == NONCE) {
        let a = http(
            addr,
            &FuzzRequest {
                method: "POST",
                target: "/v1/nonce".into(),
                headers: vec![("Content-Type", "application/json".into())],
                body: br#"{"session":"fuzz"}"#.to_vec(),
            },
        );
        assert_eq!(a.code, 200, "the CAS refused a nonce for session fuzz: {}", a.text());
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        let nonce = v["nonce"].as_str().expect("a nonce answer has a nonce").as_bytes();
        body.splice(i..i + NONCE.len(), nonce.iter().copied());
    }
    if let Some(i) = body.windows(SIM.len()).position(|w| w == SIM) {
        let mut probe = body.clone();
        probe.splice(i..i + SIM.len(), b"null".iter().copied());
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&probe) else { return };
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
        let rd = ReportData::for_attestation(
            &field("session"),
            &field("nonce"),
            &field("ephemeral_recipient"),
        );
        let ev = ecld_tee::EvidenceProvider::evidence(cas_sim(), &rd).expect("sim evidence");
        let ev = serde_json::to_vec(&ev).unwrap();
        body.splice(i..i + SIM.len(), ev);
    }
}

/// The CAS over HTTP on a live in-process CAS (admin token [`CAS_FUZZ_ADMIN_TOKEN`], one
/// sim session `fuzz`): routing, path parameters, bearer-token checks, JSON bodies of
/// session creation, nonces and attestation, down to sealing and signing an answer (see
/// [`cas_placeholders`]). Oracle: a complete HTTP answer, never a 5xx but the documented
/// 503 `too_many_nonces`, JSON answers parse, and the CAS
/// still answers `GET /v1/identity` afterwards.
pub fn cas_http(data: &[u8]) {
    let addr = cas_addr();
    let mut req = FuzzRequest::parse(data);
    cas_placeholders(addr, &mut req.body);
    let a = http(addr, &req);
    let documented = a.code == 503 && a.text().contains("too_many_nonces");
    assert!(
        a.code < 500 || documented,
        "CAS answered HTTP {} to {} {}: {}",
        a.code,
        req.method,
        req.target,
        a.text()
    );
    check_json("CAS", &req, &a);
    let ok = http(
        addr,
        &FuzzRequest {
            method: "GET",
            target: "/v1/identity".into(),
            headers: vec![],
            body: vec![],
        },
    );
    assert_eq!(ok.code, 200, "the CAS stopped answering: {}", ok.text());
}
