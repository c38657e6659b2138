//! What a dishonest store or node cannot do: alter a result unnoticed, pass off a proof from
//! another image's enclave, or read the input or the result.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::time::Duration;

use ecld_sdk::{Client, ClientConfig, Error, TaskRequest, VerifyError, verify};

use crate::e2e_stack::{Stack, contains, files_under};

async fn client(stack: &Stack) -> Client {
    Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_wrong_signers_and_eavesdropping_are_all_caught() {
    let stack = Stack::start();
    let c = client(&stack).await;
    let stats = c.resolve_image("stats").await.unwrap();

    // A secret nobody but the requester may see, and its result.
    let secret = format!("confidential-marker-{:016x} 17 23 42 5 8\n", rand_u64());
    let r = c
        .run(
            &TaskRequest::new(stats.id, secret.clone().into_bytes()),
            Duration::from_secs(60),
            |_, _| (),
        )
        .await
        .unwrap();
    let result = r.output.clone().expect("stats prints a result").stdout;
    assert!(result.len() >= 8, "the result is too short to search for: {result:?}");
    // The store is altered below, so the stack's log scan could not read these back itself.
    stack.add_secret("the plaintext input", secret.as_bytes());
    stack.add_secret("the plaintext result", &result);

    // 1. Neither the node's data directory, the store's blocks, the CAS state nor the chain
    //    hold the plaintext input or result.
    let info = &stack.info;
    let mut scanned = 0;
    for dir in ["store_dir", "chain_dir", "cas_dir"]
        .iter()
        .filter_map(|k| info[*k].as_str())
        .chain(info["node"]["data_dir"].as_str())
    {
        for file in files_under(std::path::Path::new(dir)) {
            let bytes = std::fs::read(&file).unwrap();
            scanned += bytes.len();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "plaintext input found in {}",
                file.display()
            );
            assert!(!contains(&bytes, &result), "plaintext result found in {}", file.display());
        }
    }
    assert!(scanned > 0, "nothing was scanned: the stack's directories are empty?");

    // 2. Only the requester's identity decrypts the result.
    let (_, ciphertext) = c.verify(r.task).await.unwrap();
    let other_identity = stack.dir.path().join("other.age-key");
    ecld_crypto::AgeIdentity::generate().save(&other_identity).unwrap();
    let mut config = ClientConfig::load(&stack.config()).unwrap();
    config.identity = Some(other_identity);
    let stranger = Client::connect(&config).await.unwrap();
    assert!(matches!(stranger.decrypt(r.task, &ciphertext), Err(Error::NotForYou { .. })));

    // 3. A proof signed by another image's enclave is rejected for this image.
    let other =
        c.images().await.unwrap().into_iter().find(|i| i.id != stats.id).expect("a second image");
    assert_ne!(other.enclave_signer, stats.enclave_signer);
    let other_task = c
        .run(&TaskRequest::new(other.id, b"1 2 3".to_vec()), Duration::from_secs(60), |_, _| ())
        .await
        .unwrap();
    let (mine, _) = c.proof(r.task).await.unwrap();
    let (_, foreign) = c.proof(other_task.task).await.unwrap();
    let mut forged = foreign;
    forged.proof = r.verified.record.proof;
    let err = verify::check(
        r.task,
        stats.id,
        &c.proof_domain(),
        stats.enclave_signer,
        mine.input_hash,
        &forged,
        None,
    )
    .unwrap_err();
    let signature = ecld_crypto::ProofSignature::from_slice(&forged.signature).unwrap();
    let signed_by = forged.proof.recover(&c.proof_domain(), &signature).unwrap();
    match err {
        VerifyError::WrongSigner { task, image, expected, recovered } => {
            assert_eq!((task, image, expected), (r.task, stats.id, stats.enclave_signer));
            assert_eq!(recovered, signed_by);
            assert_ne!(recovered, stats.enclave_signer);
        }
        other => panic!("expected WrongSigner, got {other}"),
    }

    // 4. A result altered in the store is detected by `ecld task verify`.
    let cid = &r.verified.record.result_cid;
    let mut tampered = 0;
    for file in files_under(std::path::Path::new(info["store_dir"].as_str().unwrap())) {
        let mut bytes = std::fs::read(&file).unwrap();
        if bytes.len() > 64 && contains(&bytes, &ciphertext[..32]) {
            let n = bytes.len();
            bytes[n - 1] ^= 0x01;
            std::fs::write(&file, bytes).unwrap();
            tampered += 1;
        }
    }
    assert!(tampered > 0, "found no block of result {cid} to tamper with");
    let out = stack.run(&["task", "verify", &r.task.to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "tampering went unnoticed: {stderr}");
    assert!(stderr.contains("do not use it"), "{stderr}");
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
