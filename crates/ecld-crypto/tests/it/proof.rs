use ecld_crypto::{ProofDomain, ProofError, ProofSignature, ResultProof, SignerKey};
use ecld_types::{Address, B256, StatusCode, U256};

const N: U256 = U256::from_limbs([
    0xBFD2_5E8C_D036_4141,
    0xBAAE_DCE6_AF48_A03B,
    0xFFFF_FFFF_FFFF_FFFE,
    0xFFFF_FFFF_FFFF_FFFF,
]);

fn sample() -> (ResultProof, ProofDomain, SignerKey) {
    let proof = ResultProof {
        task_id: 9,
        image_id: B256::repeat_byte(1),
        input_hash: B256::repeat_byte(2),
        input_cid_hash: B256::repeat_byte(4),
        memory_mb: 256,
        max_runtime_s: 60,
        deadline: 1_900_000_000,
        code_hash: B256::ZERO,
        result_hash: B256::repeat_byte(3),
        result_cid_hash: B256::repeat_byte(5),
        status: StatusCode::Success,
        runtime_ms: 250,
    };
    let domain = ProofDomain { chain_id: 31337, verifying_contract: Address::repeat_byte(0x42) };
    (proof, domain, SignerKey::generate())
}

#[test]
fn sign_then_verify() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    assert!(matches!(sig.0[64], 27 | 28));
    assert_eq!(p.recover(&d, &sig).unwrap(), key.address());
    p.verify(&d, &sig, key.address()).unwrap();
    let text = sig.to_string();
    assert_eq!(text.len(), 132);
    assert_eq!(text.parse::<ProofSignature>().unwrap(), sig);
}

#[test]
fn other_signer_is_wrong_signer() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    let other = Address::repeat_byte(9);
    assert_eq!(
        p.verify(&d, &sig, other).unwrap_err(),
        ProofError::WrongSigner { expected: other, recovered: key.address() }
    );
}

#[test]
fn domain_separates_chains_and_contracts() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    let other_chain = ProofDomain { chain_id: 1, ..d };
    let other_contract = ProofDomain { verifying_contract: Address::repeat_byte(0x43), ..d };
    for domain in [other_chain, other_contract] {
        assert_ne!(p.signing_hash(&domain), p.signing_hash(&d));
        let err = p.verify(&domain, &sig, key.address()).unwrap_err();
        assert!(matches!(err, ProofError::WrongSigner { .. }), "{err:?}");
    }
}

#[test]
fn every_field_change_is_wrong_signer() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    let variants = [
        ResultProof { task_id: 10, ..p },
        ResultProof { image_id: B256::repeat_byte(7), ..p },
        ResultProof { input_hash: B256::repeat_byte(7), ..p },
        ResultProof { input_cid_hash: B256::repeat_byte(7), ..p },
        // The limits the enclave enforced are signed: a node that ran it under others
        // cannot pass the proof off as one for the requester's spec.
        ResultProof { memory_mb: 1, ..p },
        ResultProof { max_runtime_s: 1, ..p },
        ResultProof { deadline: p.deadline + 1, ..p },
        ResultProof { code_hash: B256::repeat_byte(7), ..p },
        ResultProof { result_hash: B256::repeat_byte(7), ..p },
        ResultProof { result_cid_hash: B256::repeat_byte(7), ..p },
        ResultProof { status: StatusCode::EnclaveFailure, ..p },
        ResultProof { runtime_ms: 251, ..p },
    ];
    for v in variants {
        let err = v.verify(&d, &sig, key.address()).unwrap_err();
        assert!(matches!(err, ProofError::WrongSigner { .. }), "{v:?}: {err:?}");
    }
}

/// Flip every bit position class of every signature byte: each is refused with a specific
/// error, never accepted.
#[test]
fn every_flipped_signature_byte_is_rejected() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    for pos in 0..65 {
        for mask in [0x01u8, 0x10, 0x80] {
            let mut bad = sig;
            bad.0[pos] ^= mask;
            let err = p.verify(&d, &bad, key.address()).unwrap_err();
            match pos {
                64 => assert_eq!(err, ProofError::BadV(sig.0[64] ^ mask)),
                32 if mask == 0x80 => {
                    assert!(
                        matches!(err, ProofError::NonCanonicalS | ProofError::WrongSigner { .. }),
                        "pos {pos}: {err:?}"
                    );
                }
                _ => assert!(
                    matches!(err, ProofError::WrongSigner { .. } | ProofError::InvalidSignature),
                    "pos {pos} mask {mask:#x}: {err:?}"
                ),
            }
        }
    }
}

/// The malleable twin (n - s, flipped v) recovers the same key; it must still be refused
/// because the contract's ECDSA library refuses it.
#[test]
fn high_s_twin_is_non_canonical() {
    let (p, d, key) = sample();
    let sig = p.sign(&key, &d).unwrap();
    let s = U256::from_be_slice(&sig.0[32..64]);
    let mut twin = sig;
    twin.0[32..64].copy_from_slice(&(N - s).to_be_bytes::<32>());
    twin.0[64] = if sig.0[64] == 27 { 28 } else { 27 };
    assert_eq!(p.verify(&d, &twin, key.address()).unwrap_err(), ProofError::NonCanonicalS);
}

#[test]
fn malformed_signatures_are_refused() {
    assert!(matches!(
        ProofSignature::from_slice(&[0u8; 64]).unwrap_err(),
        ProofError::MalformedSignature(_)
    ));
    assert!(matches!(
        "0x1234".parse::<ProofSignature>().unwrap_err(),
        ProofError::MalformedSignature(_)
    ));
    assert!(matches!(
        format!("0x{}", "zz".repeat(65)).parse::<ProofSignature>().unwrap_err(),
        ProofError::MalformedSignature(_)
    ));
    let (p, d, key) = sample();
    let mut zero = [0u8; 65];
    zero[64] = 27;
    assert_eq!(
        p.verify(&d, &ProofSignature(zero), key.address()).unwrap_err(),
        ProofError::InvalidSignature
    );
    // v as y-parity (0/1), which ecrecover refuses, is a specific error too.
    let mut parity = p.sign(&key, &d).unwrap();
    parity.0[64] -= 27;
    assert!(matches!(p.verify(&d, &parity, key.address()).unwrap_err(), ProofError::BadV(0 | 1)));
}

#[test]
fn json_form_round_trips() {
    let (p, d, key) = sample();
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["taskId"], 9);
    assert_eq!(json["status"], 0);
    let back: ResultProof = serde_json::from_value(json).unwrap();
    assert_eq!(back, p);
    let sig = p.sign(&key, &d).unwrap();
    let back: ProofSignature = serde_json::from_value(serde_json::to_value(sig).unwrap()).unwrap();
    assert_eq!(back, sig);
    let dj = serde_json::to_value(d).unwrap();
    assert_eq!(dj["chainId"], 31337);
}
