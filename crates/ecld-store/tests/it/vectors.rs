//! CIDs equal to those of an independent IPFS implementation (js-ipfs's UnixFS importer, see
//! `tools/gen_cid_vectors.mjs`) for the same bytes.

use ecld_store::unixfs::DagBuilder;
use serde::Deserialize;

use crate::common::{content, repo_root};

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    len: usize,
    cid: String,
    size: u64,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(repo_root().join("testdata/cid/vectors.json")).unwrap();
    serde_json::from_str::<Vectors>(&text).unwrap().vectors
}

/// Streams the content through the builder in odd-sized writes, as a network would.
fn check(v: &Vector) {
    let mut builder = DagBuilder::hash_only();
    let mut sink = Vec::new();
    let data = content(v.len.min(251 * 4096));
    let mut done = 0;
    while done < v.len {
        // Content repeats every 251 bytes: write slices of the precomputed prefix.
        let start = done % 251;
        let n = (v.len - done).min(data.len() - start).min(100_003);
        builder.write(&data[start..start + n], &mut sink);
        sink.clear();
        done += n;
    }
    let root = builder.finish(&mut sink);
    assert_eq!(root.cid.to_string(), v.cid, "CID of {:?} ({} bytes)", v.name, v.len);
    assert_eq!(root.dag_size, v.size, "cumulative size of {:?}", v.name);
    assert_eq!(root.file_size, v.len as u64);
}

#[test]
fn cids_match_js_ipfs_up_to_two_layers() {
    let all = vectors();
    assert!(all.len() >= 9);
    for v in all.iter().filter(|v| v.len <= 174 * 262_144 + 1) {
        check(v);
    }
    assert!(
        all.iter().any(|v| v.len == 174 * 262_144 + 1),
        "the second-layer case is in the vectors"
    );
}

#[test]
fn cid_of_100_mib_matches_js_ipfs() {
    for v in vectors().iter().filter(|v| v.len > 174 * 262_144 + 1) {
        check(v);
    }
}
