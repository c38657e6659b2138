//! Submit, watch, verify, decrypt, reclaim: the SDK's side of the data flow.

use std::time::Duration;

use ecld_crypto::SignerKey;
use ecld_sdk::{Error, OfferChoice, Step, TaskRequest, TaskState, VerifyError};
use ecld_types::{StatusCode, TaskId, U256};

use crate::harness::{Env, OFFER_PRICE, wait_submitted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_submits_waits_verifies_and_decrypts() {
    let env = Env::start().await;
    let client = env.client().await;
    let images = client.images().await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(client.resolve_image("upper").await.unwrap().id, env.image);
    assert!(images[0].allows_sim());
    let offers = client.offers().await.unwrap();
    assert_eq!(offers.len(), 1);
    let before = client.balance(None).await.unwrap();

    let req = TaskRequest::new(env.image, b"secret text".to_vec());
    let mut steps = Vec::new();
    let (result, ()) = tokio::join!(
        client.run(&req, Duration::from_secs(30), |s, done| if done {
            steps.push(s);
        }),
        async {
            wait_submitted(&client, 1).await;
            env.execute(1, StatusCode::Success, &env.enclave_signer).await;
        }
    );
    let result = result.unwrap();
    assert_eq!(result.status, StatusCode::Success);
    assert_eq!(result.output.unwrap().stdout, b"SECRET TEXT");
    assert_eq!(steps, Step::ALL.to_vec());
    assert_eq!(result.verified.signer, env.enclave_signer.address());
    assert_eq!(client.balance(None).await.unwrap(), before - U256::from(OFFER_PRICE));
    assert!(client.balance(Some(env.node_account)).await.unwrap() > U256::ZERO);

    let id = result.task;
    let info = client.task(id).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::Success });
    let fetched = client.fetch(id).await.unwrap();
    assert_eq!(fetched.output.unwrap().stdout, b"SECRET TEXT");
    assert_eq!(client.tasks(true).await.unwrap().len(), 1);
    assert!(client.ledger().await.unwrap().conserved());
    env.stop().await;
}

/// The steps are timed by what they do: reading the proof is `proof`, fetching the result from
/// the store is `download` (it used to be timed inside `verify`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_missing_from_the_store_fails_in_the_download_step_after_the_proof_step() {
    let env = Env::start().await;
    let client = env.client().await;
    let req = TaskRequest::new(env.image, b"gone".to_vec());
    let mut steps = Vec::new();
    let (result, ()) = tokio::join!(
        client.run(&req, Duration::from_secs(30), |s, done| steps.push((s, done))),
        async {
            wait_submitted(&client, 1).await;
            env.execute_without_result(1, StatusCode::Success, &env.enclave_signer).await;
        }
    );
    let err = result.expect_err("a result the store does not have cannot be downloaded");
    assert!(steps.contains(&(Step::Proof, true)), "{steps:?}");
    assert_eq!(steps.last(), Some(&(Step::Download, false)), "failed elsewhere: {err}");
    // The proof itself is on chain and readable; only the bytes are missing.
    let (info, record) = client.proof(TaskId::new(1).unwrap()).await.unwrap();
    assert!(client.download_result(&info, &record).await.is_err());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_failure_refunds_and_a_stranger_cannot_decrypt() {
    let env = Env::start().await;
    let client = env.client().await;
    let before = client.balance(None).await.unwrap();
    let s = client.submit(&TaskRequest::new(env.image, b"x".to_vec())).await.unwrap();
    env.execute(s.task.get(), StatusCode::InputUnavailable, &env.enclave_signer).await;
    let info = client.wait(s.task, Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::InputUnavailable });
    assert_eq!(client.balance(None).await.unwrap(), before, "refunded at once");

    let (_, ciphertext) = client.verify(s.task).await.unwrap();
    let mut config = env.config.clone();
    let other = env.path("other.age-key");
    ecld_crypto::AgeIdentity::generate().save(&other).unwrap();
    config.identity = Some(other);
    let stranger = ecld_sdk::Client::connect(&config).await.unwrap();
    assert!(matches!(stranger.decrypt(s.task, &ciphertext), Err(Error::NotForYou { .. })));
    assert!(client.ledger().await.unwrap().conserved());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_signed_by_another_key_never_settles_and_is_rejected_by_verify() {
    let env = Env::start().await;
    let client = env.client().await;
    let s = client.submit(&TaskRequest::new(env.image, b"x".to_vec())).await.unwrap();
    // The contract refuses the impostor's proof: the task stays matched.
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        env.try_execute(s.task.get(), StatusCode::Success, &SignerKey::generate()),
    )
    .await
    .expect("submitting the impostor's proof hung");
    eprintln!("impostor: {refused:?}");
    assert!(refused.is_err(), "the Marketplace accepted a proof from another key");
    assert!(matches!(client.task(s.task).await.unwrap().state, TaskState::Matched { .. }));
    // Then the genuine proof settles it, and swapping in another signature fails verify.
    tokio::time::timeout(
        Duration::from_secs(20),
        env.execute(s.task.get(), StatusCode::Success, &env.enclave_signer),
    )
    .await
    .expect("submitting the genuine proof hung");
    let (info, mut record) = client.proof(s.task).await.unwrap();
    record.signature = record.signature.iter().rev().copied().collect::<Vec<_>>().into();
    let err = client.verify_record(&info, &record).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Verify(VerifyError::WrongSigner { .. } | VerifyError::BadSignature { .. })
        ),
        "{err}"
    );
    env.stop().await;
}

/// Moves the chain's clock `secs` ahead of where it was (no block is mined: the newest block
/// keeps its old timestamp).
async fn increase_time(env: &Env, secs: u64) {
    use alloy::providers::Provider;
    let _: serde_json::Value =
        env.node.raw_request("evm_increaseTime".into(), (secs,)).await.unwrap();
}

/// No node holds an open task: its requester cancels it at any time and gets the whole
/// escrow back (nothing to wait for: no node can be working on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_task_is_cancelled_at_once() {
    let env = Env::start().await;
    let client = env.client().await;
    let before = client.balance(None).await.unwrap();
    let mut req = TaskRequest::new(env.image, b"x".to_vec());
    req.offer = OfferChoice::Open;
    req.price = Some(U256::from(5_000u64));
    req.deadline = Duration::from_secs(3_600);
    let s = client.submit(&req).await.unwrap();
    assert_eq!(client.task(s.task).await.unwrap().state, TaskState::Open);
    assert_eq!(client.balance(None).await.unwrap(), before - U256::from(5_000u64));
    let err = client.wait(s.task, Duration::from_millis(100)).await.unwrap_err();
    assert!(err.to_string().contains("ecld task reclaim"), "{err}");
    client.reclaim(s.task).await.unwrap();
    assert_eq!(client.task(s.task).await.unwrap().state, TaskState::Reclaimed);
    assert_eq!(client.balance(None).await.unwrap(), before);
    // Once gone, it cannot be reclaimed again.
    assert!(matches!(client.reclaim(s.task).await, Err(Error::CannotReclaim { .. })));
    assert!(matches!(client.task(TaskId::new(99).unwrap()).await, Err(Error::TaskNotFound(_))));
    assert!(client.ledger().await.unwrap().conserved());
    env.stop().await;
}

/// Regression: with the chain's clock moved ahead and no block mined since, the deadline was
/// counted from the newest block's old timestamp (or the wall clock), already past in chain
/// time, and the submission reverted with DeadlinePassed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_counts_from_chain_time_when_the_newest_block_is_older() {
    use alloy::providers::Provider;
    let env = Env::start().await;
    let client = env.client().await;
    increase_time(&env, 600).await;
    let mut req = TaskRequest::new(env.image, b"x".to_vec());
    req.deadline = Duration::from_secs(30);
    let s = client.submit(&req).await.unwrap();
    let info = client.task(s.task).await.unwrap();
    let block = env.node.get_block_by_number(s.block.into()).await.unwrap().unwrap();
    let stamped = block.header.timestamp;
    // The task gets the 30 s asked for, counted from chain time (a few seconds may pass
    // between reading it and the block).
    assert!(info.deadline >= stamped + 20, "deadline {} for a block at {stamped}", info.deadline);
    assert!(info.deadline <= stamped + 30, "deadline {} for a block at {stamped}", info.deadline);
    env.stop().await;
}

/// Regression: a submit the Marketplace refuses at gas estimation used up a cached nonce, and
/// every later transaction of the client waited forever behind the gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_submit_does_not_block_the_next_one() {
    let env = Env::start().await;
    let client = env.client().await;
    let offer = client.offers().await.unwrap()[0].id;
    let mut req = TaskRequest::new(env.image, b"x".to_vec());
    req.offer = OfferChoice::Offer(offer);
    req.price = Some(U256::from(OFFER_PRICE - 1));
    let err = client.submit(&req).await.unwrap_err();
    assert!(err.to_string().contains("PriceTooHigh"), "{err}");
    req.price = None;
    let s = tokio::time::timeout(Duration::from_secs(20), client.submit(&req))
        .await
        .expect("the next submit hung behind a nonce gap")
        .unwrap();
    assert_eq!(
        client.task(s.task).await.unwrap().state,
        TaskState::Matched { offer, node: env.node_account }
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_of_an_image_revoked_since_it_settled_is_refused_by_verify() {
    let env = Env::start().await;
    let client = env.client().await;
    let s = client.submit(&TaskRequest::new(env.image, b"x".to_vec())).await.unwrap();
    env.execute(s.task.get(), StatusCode::Success, &env.enclave_signer).await;
    client.wait(s.task, Duration::from_secs(10)).await.unwrap();
    client.verify(s.task).await.expect("a proof of a live image verifies");
    // The image's owner revokes it: its enclave key leaked, so whatever it signed, before or
    // after, proves nothing.
    env.revoke_image().await;
    let err = client.verify(s.task).await.expect_err("a revoked image's proof is refused");
    assert!(
        matches!(
            &err,
            Error::Verify(VerifyError::ImageRevoked { task, image, .. })
                if *task == s.task && *image == env.image
        ),
        "{err}"
    );
    assert!(err.to_string().contains("do not use the result"), "{err}");
    env.stop().await;
}
