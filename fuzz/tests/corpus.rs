//! Corpus replay on stable Rust: every file of `corpus/<target>/` goes through its target
//! (a panic fails the test). Coverage-guided runs need nightly: `scripts/fuzz`.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        eprintln!("{target}: {}", path.display());
        run(&bytes);
        n += 1;
    }
    assert!(n > 0, "{} holds no seed inputs", dir.display());
}

#[test]
fn proof_signature_corpus() {
    replay("proof_signature", ecld_fuzz::proof_signature);
}

#[test]
fn enclave_frames_corpus() {
    replay("enclave_frames", ecld_fuzz::enclave_frames);
}

#[test]
fn store_dag_corpus() {
    replay("store_dag", ecld_fuzz::store_dag);
}

#[test]
fn cas_request_corpus() {
    replay("cas_request", ecld_fuzz::cas_request);
}

#[test]
fn devnet_rpc_corpus() {
    replay("devnet_rpc", ecld_fuzz::devnet_rpc);
}

#[test]
fn store_http_corpus() {
    replay("store_http", ecld_fuzz::store_http);
}

#[test]
fn cas_http_corpus() {
    replay("cas_http", ecld_fuzz::cas_http);
}

#[test]
fn payload_decode_corpus() {
    replay("payload_decode", ecld_fuzz::payload_decode);
}

#[test]
fn envelope_decrypt_corpus() {
    replay("envelope_decrypt", ecld_fuzz::envelope_decrypt);
}
