//! EIP-712 digests and signatures against vectors from Python `eth-account`
//! (`tools/gen_eip712_vectors.py` → `testdata/eip712/vectors.json`).

use std::process::Command;

use alloy_sol_types::SolStruct;
use ecld_crypto::{ProofDomain, ProofSignature, ResultProof, SignerKey, proof};
use ecld_testkit::{peers, runs};
use ecld_types::{Address, B256, StatusCode, keccak256};
use serde_json::Value;

fn committed() -> Value {
    let path = super::repo_root().join("testdata/eip712/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing"))
}

fn sample() -> ResultProof {
    ResultProof {
        task_id: 1,
        image_id: B256::ZERO,
        input_hash: B256::ZERO,
        input_cid_hash: B256::ZERO,
        memory_mb: 0,
        max_runtime_s: 0,
        deadline: 0,
        code_hash: B256::ZERO,
        result_hash: B256::ZERO,
        result_cid_hash: B256::ZERO,
        status: StatusCode::Success,
        runtime_ms: 0,
    }
}

#[test]
fn type_string_and_hash_match() {
    let file = committed();
    assert_eq!(proof::sol::Result::eip712_encode_type(), proof::RESULT_TYPE);
    assert_eq!(s(&file, "resultType"), proof::RESULT_TYPE);
    assert_eq!(keccak256(proof::RESULT_TYPE), s(&file, "resultTypeHash").parse::<B256>().unwrap());
    assert_eq!(
        sample().to_sol().eip712_type_hash(),
        s(&file, "resultTypeHash").parse::<B256>().unwrap()
    );
}

#[test]
fn digests_signatures_and_signers_match_eth_account() {
    let file = committed();
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let name = s(v, "name");
        let m = &v["message"];
        let spec = &m["spec"];
        let status = u16::try_from(m["status"].as_u64().unwrap()).unwrap();
        let u32_of = |k: &str| u32::try_from(spec[k].as_u64().unwrap()).unwrap();
        let p = ResultProof {
            task_id: s(m, "taskId").parse().unwrap(),
            image_id: s(spec, "imageId").parse().unwrap(),
            input_hash: s(spec, "inputHash").parse().unwrap(),
            input_cid_hash: s(spec, "inputCidHash").parse().unwrap(),
            memory_mb: u32_of("memoryMb"),
            max_runtime_s: u32_of("maxRuntimeS"),
            deadline: s(spec, "deadline").parse().unwrap(),
            code_hash: s(m, "codeHash").parse().unwrap(),
            result_hash: s(m, "resultHash").parse().unwrap(),
            result_cid_hash: s(m, "resultCidHash").parse().unwrap(),
            status: StatusCode::try_from(status).unwrap(),
            runtime_ms: s(m, "runtimeMs").parse().unwrap(),
        };
        let domain = ProofDomain {
            chain_id: s(&v["domain"], "chainId").parse().unwrap(),
            verifying_contract: s(&v["domain"], "verifyingContract").parse().unwrap(),
        };
        let hex = |k| s(v, k).parse::<B256>().unwrap();
        assert_eq!(domain.separator(), hex("domainSeparator"), "{name}: domain separator");
        assert_eq!(p.struct_hash(), hex("structHash"), "{name}: struct hash");
        assert_eq!(p.signing_hash(&domain), hex("digest"), "{name}: digest");

        let key = SignerKey::from_hex(s(v, "privateKey")).unwrap();
        let signer: Address = s(v, "signer").parse().unwrap();
        assert_eq!(key.address(), signer, "{name}: address");
        let expected: ProofSignature = s(v, "signature").parse().unwrap();
        // Both sides use RFC 6979 deterministic nonces, so the bytes agree exactly.
        assert_eq!(p.sign(&key, &domain).unwrap(), expected, "{name}: signature");
        assert_eq!(p.recover(&domain, &expected).unwrap(), signer, "{name}: recover");
        p.verify(&domain, &expected, signer).unwrap();
    }
}

/// The committed file is what eth-account produces today (without eth-account: a failure
/// under CI, a recorded skip elsewhere).
#[test]
fn committed_vectors_are_reproducible_with_eth_account() {
    let root = super::repo_root();
    if !peers::ETH_ACCOUNT.available_for(
        "ecld-crypto::it eip712_vectors::committed_vectors_are_reproducible_with_eth_account",
        runs("python3", &["-c", "import eth_account"]),
    ) {
        return;
    }
    let out =
        Command::new("python3").arg(root.join("tools/gen_eip712_vectors.py")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fresh,
        committed(),
        "regenerate with tools/gen_eip712_vectors.py testdata/eip712/vectors.json"
    );
}
