//! The committed artifacts are the compiled sources.

use std::{path::PathBuf, process::Command};

use ecld_testkit::{peers, runs};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Needs no Node.js: the manifest's source hashes match `contracts/*.sol`.
#[test]
fn manifest_hashes_match_sources() {
    let manifest: serde_json::Value =
        serde_json::from_str(ecld_contracts::bindings::artifacts::MANIFEST).unwrap();
    let listed = manifest["sources"].as_object().unwrap();
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(root().join("contracts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sol") {
            on_disk.push(path);
        }
    }
    assert_eq!(
        on_disk.len(),
        listed.len(),
        "contracts/ and artifacts/manifest.json list different files"
    );
    for path in on_disk {
        let name = path.file_name().unwrap().to_str().unwrap();
        let hash = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
        assert_eq!(
            listed.get(name).and_then(|v| v.as_str()),
            Some(hash.as_str()),
            "{name} changed since the artifacts were compiled: run scripts/compile-contracts and commit"
        );
    }
}

/// Re-runs the pinned compiler and compares byte for byte.
#[test]
fn artifacts_match_sources() {
    let test = "ecld-contracts::it artifacts::artifacts_match_sources";
    let solc = root().join("tools/node_modules/solc/package.json");
    if !peers::NODE.available_for(test, runs("node", &["--version"]))
        || !peers::SOLC.available_for(test, solc.is_file())
    {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("node")
        .arg(root().join("tools/compile-contracts.js"))
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "compile-contracts failed");
    for name in ["DevToken", "ImageRegistry", "Marketplace", "TestBlockingToken", "manifest"] {
        let fresh = std::fs::read_to_string(out.path().join(format!("{name}.json"))).unwrap();
        let committed = std::fs::read_to_string(
            root().join(format!("crates/ecld-contracts/artifacts/{name}.json")),
        )
        .unwrap();
        assert!(
            fresh == committed,
            "artifacts/{name}.json differs from a fresh compile: run scripts/compile-contracts and commit"
        );
    }
}
