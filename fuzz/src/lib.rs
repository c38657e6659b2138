//! Fuzz targets for the parsers of untrusted bytes in ecld, as plain functions.
//!
//! Each `pub fn NAME(&[u8])` is one libFuzzer target (`fuzz_targets/NAME.rs`) and is also run
//! over the committed seed corpus `corpus/NAME/` by `tests/corpus.rs` on stable Rust. A target
//! fails by panicking: the parsers must return errors, never panic, and what they accept must
//! be consistent (checked below where a cheap oracle exists).
//!
//! The envelope and payload decoders have their own targets in `crates/ecld-crypto/fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed assertion is a finding.

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
