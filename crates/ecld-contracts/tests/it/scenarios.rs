//! Every Marketplace path, as scenarios over one deployed stack. Each runs as its own test on
//! a fresh ecld-devnet, and `run_all` runs them in sequence on one chain (devnet and hardhat).

use alloy::primitives::{B256, U256, keccak256};
use ecld_contracts::{Marketplace, Marketplace::MarketplaceErrors as E, TaskSpec};

use crate::harness::{Env, FAR, PRICE, T0};

/// Runs every scenario in order on one chain. Time-travelling scenarios come in order of
/// the times they jump to.
pub(crate) async fn run_all(env: &mut Env) {
    success_pays_node(env).await;
    refund_classes_refund_requester(env).await;
    unknown_status_codes_revert(env).await;
    proofs_bound_to_signer_chain_contract_and_task(env).await;
    double_submit_and_spec_mismatch_revert(env).await;
    claim_of_full_offer_reverts(env).await;
    release_then_reclaim_by_another_node(env).await;
    fit_checks_refuse_unfit_offers(env).await;
    offers_update_and_withdraw(env).await;
    submit_without_permit_and_holder_checks(env).await;
    claim_after_deadline_reverts(env).await;
    reclaim_refunds_after_deadline_only(env).await;
    ecld_crypto_proof_settles_on_chain(env).await;
}

async fn used_slots(env: &Env, offer: u64) -> u16 {
    env.deployer.market(&env.deployment).getOffer(offer).call().await.expect("getOffer").usedSlots
}

async fn task_live(env: &Env, task: u64) -> bool {
    let t = env
        .deployer
        .market(&env.deployment)
        .getTask(U256::from(task))
        .call()
        .await
        .expect("getTask");
    t.commitment != alloy::primitives::FixedBytes::ZERO
}

pub(crate) async fn success_pays_node(env: &mut Env) {
    let offer = env.offer(1, 2, PRICE).await;
    for status in [0u16, 1, 4, 5] {
        let spec = env.spec(FAR);
        let (req0, node0) =
            (env.balance(env.requester.address()).await, env.balance(env.node1.address()).await);
        // maxPrice above the offer's price: only the offer's price is escrowed.
        let task = env.submit(&spec, 3 * PRICE, offer).await;
        assert_eq!(env.balance(env.requester.address()).await, req0 - PRICE);
        assert_eq!(used_slots(env, offer).await, 1);
        let receipt = env.result(1, task, &spec, status).await;
        let ev = receipt.decoded_log::<Marketplace::ResultSubmitted>().expect("ResultSubmitted");
        assert_eq!(ev.taskId, U256::from(task));
        assert_eq!(ev.offerId, offer);
        assert_eq!(ev.node, env.node1.address());
        assert_eq!(ev.signer, env.enclave.address());
        assert_eq!(ev.status, status);
        assert_eq!(ev.runtimeMs, 1234);
        assert_eq!(ev.resultHash, keccak256(format!("result of {task}")));
        assert_eq!(ev.signature.len(), 65);
        assert_eq!(u128::try_from(ev.amount).unwrap(), PRICE);
        assert_eq!(
            env.balance(env.node1.address()).await,
            node0 + PRICE,
            "status {status} pays the node"
        );
        assert_eq!(env.balance(env.requester.address()).await, req0 - PRICE);
        assert_eq!(used_slots(env, offer).await, 0);
        assert!(!task_live(env, task).await, "settled task is deleted");
        env.assert_conservation().await;
    }
}

pub(crate) async fn refund_classes_refund_requester(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    for status in [16u16, 17, 18] {
        let spec = env.spec(FAR);
        let (req0, node0) =
            (env.balance(env.requester.address()).await, env.balance(env.node1.address()).await);
        let task = env.submit(&spec, PRICE, offer).await;
        env.result(1, task, &spec, status).await;
        assert_eq!(
            env.balance(env.requester.address()).await,
            req0,
            "status {status} refunds in full"
        );
        assert_eq!(
            env.balance(env.node1.address()).await,
            node0,
            "status {status} pays the node nothing"
        );
        assert_eq!(used_slots(env, offer).await, 0);
        env.assert_conservation().await;
    }
}

pub(crate) async fn unknown_status_codes_revert(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let task = env.submit(&spec, PRICE, offer).await;
    for status in [6u16, 15, 19, 255] {
        let proof = env.proof(task, &spec, status);
        let d = env.deployment;
        let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
        let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
        assert_eq!(
            err,
            ecld_contracts::ContractError::Marketplace(E::UnknownStatus(
                Marketplace::UnknownStatus { status }
            ))
        );
    }
    env.result(1, task, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn proofs_bound_to_signer_chain_contract_and_task(env: &mut Env) {
    let offer = env.offer(1, 2, PRICE).await;
    let spec = env.spec(FAR);
    let task_a = env.submit(&spec, PRICE, offer).await;
    let task_b = env.submit(&spec, PRICE, offer).await;
    let d = env.deployment;
    let expected = env.enclave.address();
    let wrong_signer = |err: ecld_contracts::ContractError, task: u64| match err {
        ecld_contracts::ContractError::Marketplace(E::WrongSigner(w)) => {
            assert_eq!(w.taskId, U256::from(task));
            assert_eq!(w.expected, expected);
            w.recovered
        }
        other => panic!("expected WrongSigner, got {other:?}"),
    };
    let proof = env.proof(task_a, &spec, 0);

    let other_key =
        alloy::signers::local::PrivateKeySigner::from_bytes(&B256::repeat_byte(0x44)).unwrap();
    let sig = env.sign_proof(&other_key, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task_a, &spec, &proof, sig).await.unwrap_err();
    assert_eq!(wrong_signer(err, task_a), other_key.address(), "wrong signer");

    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id + 1, d.marketplace);
    let err = env.result_call(1, task_a, &spec, &proof, sig).await.unwrap_err();
    assert_ne!(wrong_signer(err, task_a), expected, "wrong chain id");

    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.registry);
    let err = env.result_call(1, task_a, &spec, &proof, sig).await.unwrap_err();
    assert_ne!(wrong_signer(err, task_a), expected, "wrong verifying contract");

    // A valid proof for task A, relayed for task B.
    let sig_a = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task_b, &spec, &proof, sig_a.clone()).await.unwrap_err();
    assert_ne!(wrong_signer(err, task_b), expected, "replayed proof");

    // A tampered status under a valid signature.
    let mut tampered = proof;
    tampered.status = 16;
    let err = env.result_call(1, task_a, &spec, &tampered, sig_a.clone()).await.unwrap_err();
    assert_ne!(wrong_signer(err, task_a), expected, "tampered field");

    // Malformed signatures.
    let err = env.result_call(1, task_a, &spec, &proof, sig_a.slice(..64)).await.unwrap_err();
    assert_eq!(
        err,
        ecld_contracts::ContractError::Marketplace(E::MalformedSignature(
            Marketplace::MalformedSignature {}
        ))
    );

    env.result_call(1, task_a, &spec, &proof, sig_a).await.expect("the right proof settles");
    env.result(1, task_b, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn double_submit_and_spec_mismatch_revert(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let task = env.submit(&spec, PRICE, offer).await;
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);

    // The spec passed back must be the one submitted (memory changed here).
    let mut forged = spec.clone();
    forged.memoryMb = 1;
    let err = env.result_call(1, task, &forged, &proof, sig.clone()).await.unwrap_err();
    assert_eq!(
        err,
        ecld_contracts::ContractError::Marketplace(E::SpecMismatch(Marketplace::SpecMismatch {
            taskId: U256::from(task)
        }))
    );

    env.result_call(1, task, &spec, &proof, sig.clone()).await.expect("first submit");
    let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
    assert_eq!(
        err,
        ecld_contracts::ContractError::Marketplace(E::TaskNotActive(Marketplace::TaskNotActive {
            taskId: U256::from(task)
        }))
    );
    env.assert_conservation().await;
}

pub(crate) async fn claim_of_full_offer_reverts(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let held = env.submit(&spec, PRICE, offer).await;
    let open = env.submit(&spec, PRICE, 0).await;
    let market = env.node1.market(&env.deployment);
    let err = env
        .refused(
            "claimTask",
            market.claimTask(
                U256::from(open),
                offer,
                spec.clone(),
                env.requester.address(),
                env.esc(open),
            ),
        )
        .await;
    assert_eq!(err, E::OfferFull(Marketplace::OfferFull { offerId: offer, slots: 1 }));
    // Naming a full offer at submission is refused the same way.
    let requester = env.requester.market(&env.deployment);
    env.approve_all().await;
    let err = env
        .refused(
            "submitTask",
            requester.submitTask(
                spec.clone(),
                "cid".into(),
                alloy::primitives::Uint::from(PRICE),
                offer,
            ),
        )
        .await;
    assert_eq!(err, E::OfferFull(Marketplace::OfferFull { offerId: offer, slots: 1 }));
    env.result(1, held, &spec, 0).await;
    env.ok(
        "claimTask",
        market.claimTask(
            U256::from(open),
            offer,
            spec.clone(),
            env.requester.address(),
            env.esc(open),
        ),
    )
    .await;
    env.result(1, open, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn release_then_reclaim_by_another_node(env: &mut Env) {
    let offer1 = env.offer(1, 1, PRICE).await;
    let offer2 = env.offer(2, 1, PRICE / 2).await;
    let spec = env.spec(FAR);
    let req0 = env.balance(env.requester.address()).await;
    let task = env.submit(&spec, 2 * PRICE, 0).await;
    assert_eq!(
        env.balance(env.requester.address()).await,
        req0 - 2 * PRICE,
        "open task escrows maxPrice"
    );

    let m1 = env.node1.market(&env.deployment);
    let m2 = env.node2.market(&env.deployment);
    // node2 cannot claim with node1's offer.
    let err = env
        .refused(
            "claimTask",
            m2.claimTask(
                U256::from(task),
                offer1,
                spec.clone(),
                env.requester.address(),
                env.esc(task),
            ),
        )
        .await;
    assert!(matches!(err, E::NotOfferNode(_)), "{err:?}");
    let r = env
        .ok(
            "claimTask",
            m1.claimTask(
                U256::from(task),
                offer1,
                spec.clone(),
                env.requester.address(),
                env.esc(task),
            ),
        )
        .await;
    let ev = r.decoded_log::<Marketplace::TaskClaimed>().expect("TaskClaimed");
    assert_eq!(u128::try_from(ev.refund).unwrap(), PRICE);
    assert_eq!(
        env.balance(env.requester.address()).await,
        req0 - PRICE,
        "claim refunds maxPrice - price"
    );
    let err = env
        .refused(
            "claimTask",
            m2.claimTask(
                U256::from(task),
                offer2,
                spec.clone(),
                env.requester.address(),
                env.esc(task),
            ),
        )
        .await;
    assert_eq!(
        err,
        E::TaskAlreadyClaimed(Marketplace::TaskAlreadyClaimed {
            taskId: U256::from(task),
            offerId: offer1
        })
    );
    let err = env.refused("releaseTask", m2.releaseTask(U256::from(task))).await;
    assert!(matches!(err, E::NotTaskHolder(_)), "{err:?}");

    env.ok("releaseTask", m1.releaseTask(U256::from(task))).await;
    assert_eq!(used_slots(env, offer1).await, 0, "release frees the slot");
    let err = env.refused("releaseTask", m1.releaseTask(U256::from(task))).await;
    assert!(matches!(err, E::TaskNotClaimed(_)), "{err:?}");
    // node1 can no longer relay a result for it.
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
    assert!(
        matches!(err, ecld_contracts::ContractError::Marketplace(E::TaskNotClaimed(_))),
        "{err:?}"
    );

    let node2_0 = env.balance(env.node2.address()).await;
    env.ok(
        "claimTask",
        m2.claimTask(
            U256::from(task),
            offer2,
            spec.clone(),
            env.requester.address(),
            env.esc(task),
        ),
    )
    .await;
    assert_eq!(env.balance(env.requester.address()).await, req0 - PRICE / 2);
    env.result(2, task, &spec, 0).await;
    assert_eq!(env.balance(env.node2.address()).await, node2_0 + PRICE / 2);
    assert_eq!(env.balance(env.requester.address()).await, req0 - PRICE / 2);
    env.assert_conservation().await;
}

pub(crate) async fn fit_checks_refuse_unfit_offers(env: &mut Env) {
    env.approve_all().await;
    let d = env.deployment;
    let req = env.requester.market(&d);
    let submit = |spec: &TaskSpec, max: u128, offer: u64| {
        req.submitTask(spec.clone(), "cid".into(), alloy::primitives::Uint::from(max), offer)
    };
    let offer = env.offer(1, 4, PRICE).await; // 1024 MB, 600 s, platform sim
    let spec = env.spec(FAR);

    let err = env.refused("submitTask", submit(&spec, PRICE - 1, offer)).await;
    assert!(matches!(err, E::PriceTooHigh(_)), "{err:?}");
    let mut big = spec.clone();
    big.memoryMb = 2048;
    let err = env.refused("submitTask", submit(&big, PRICE, offer)).await;
    assert_eq!(
        err,
        E::MemoryTooSmall(Marketplace::MemoryTooSmall {
            offerId: offer,
            offered: 1024,
            needed: 2048
        })
    );
    let mut long = spec.clone();
    long.maxRuntimeS = 601;
    let err = env.refused("submitTask", submit(&long, PRICE, offer)).await;
    assert!(matches!(err, E::RuntimeTooShort(_)), "{err:?}");
    let err = env.refused("submitTask", submit(&spec, PRICE, 999)).await;
    assert!(matches!(err, E::UnknownOffer(_)), "{err:?}");
    let mut past = spec.clone();
    past.deadline = T0 - 1;
    let err = env.refused("submitTask", submit(&past, PRICE, 0)).await;
    assert!(matches!(err, E::DeadlinePassed(_)), "{err:?}");
    let mut unknown = spec.clone();
    unknown.imageId = B256::repeat_byte(0x99);
    let err = env.refused("submitTask", submit(&unknown, PRICE, 0)).await;
    assert_eq!(err, E::UnknownImage(Marketplace::UnknownImage { imageId: unknown.imageId }));

    // An image allowing only SGX, and an any-image offer on the sim platform.
    let sgx_image = env.publish_image("sgx-only", 2).await;
    let mut sgx = spec.clone();
    sgx.imageId = sgx_image;
    let n1 = env.node1.market(&d);
    let r = env
        .ok(
            "registerOffer",
            n1.registerOffer(B256::ZERO, 1, 1, 1024, 600, alloy::primitives::Uint::from(PRICE)),
        )
        .await;
    let any = r.decoded_log::<Marketplace::OfferRegistered>().unwrap().offerId;
    let err = env.refused("submitTask", submit(&sgx, PRICE, any)).await;
    assert!(matches!(err, E::PlatformNotAllowed(_)), "{err:?}");
    // A specific-image offer refuses another image.
    let err = env.refused("submitTask", submit(&sgx, PRICE, offer)).await;
    assert!(matches!(err, E::PlatformNotAllowed(_) | E::ImageMismatch(_)), "{err:?}");
    let other_image = env.publish_image("other", 1).await;
    let mut other = spec.clone();
    other.imageId = other_image;
    let err = env.refused("submitTask", submit(&other, PRICE, offer)).await;
    assert_eq!(
        err,
        E::ImageMismatch(Marketplace::ImageMismatch {
            offerId: offer,
            offerImage: env.image_id,
            taskImage: other_image
        })
    );
    // The any-image offer takes it.
    env.ok("submitTask", submit(&other, PRICE, any)).await;
    let task = env.deployer.market(&d).taskCount().call().await.unwrap();
    env.result(1, task, &other, 0).await;

    // A deprecated image takes no new tasks.
    let registry = ecld_contracts::ImageRegistry::new(d.registry, env.deployer.provider.clone());
    env.ok("deprecate", registry.deprecate(other_image)).await;
    let err = env.refused("submitTask", submit(&other, PRICE, 0)).await;
    assert!(matches!(err, E::ImageDeprecated(_)), "{err:?}");
    env.assert_conservation().await;
}

pub(crate) async fn offers_update_and_withdraw(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let d = env.deployment;
    let image = env.image_id;
    let n1 = env.node1.market(&d);
    let n2 = env.node2.market(&d);
    let err = env
        .refused(
            "updateOffer",
            n2.updateOffer(offer, image, 1, 2, 1024, 600, alloy::primitives::Uint::from(PRICE)),
        )
        .await;
    assert!(matches!(err, E::NotOfferNode(_)), "{err:?}");
    let err = env
        .refused(
            "registerOffer",
            n1.registerOffer(image, 3, 1, 1, 1, alloy::primitives::Uint::from(1u64)),
        )
        .await;
    assert!(matches!(err, E::InvalidOffer(_)), "{err:?}");
    env.ok(
        "updateOffer",
        n1.updateOffer(offer, image, 1, 2, 2048, 900, alloy::primitives::Uint::from(2 * PRICE)),
    )
    .await;
    let o = env.deployer.market(&d).getOffer(offer).call().await.unwrap();
    assert_eq!(
        (o.slots, o.memoryMb, o.maxRuntimeS, u128::try_from(o.price).unwrap()),
        (2, 2048, 900, 2 * PRICE)
    );
    let spec = env.spec(FAR);
    let held = env.submit(&spec, 2 * PRICE, offer).await;
    env.ok("withdrawOffer", n1.withdrawOffer(offer)).await;
    let open = env.submit(&spec, 2 * PRICE, 0).await;
    let err = env
        .refused(
            "claimTask",
            n1.claimTask(
                U256::from(open),
                offer,
                spec.clone(),
                env.requester.address(),
                env.esc(open),
            ),
        )
        .await;
    assert_eq!(err, E::OfferIsWithdrawn(Marketplace::OfferIsWithdrawn { offerId: offer }));
    // A task the withdrawn offer already holds still settles.
    env.result(1, held, &spec, 0).await;
    let fresh = env.offer(1, 1, PRICE).await;
    env.ok(
        "claimTask",
        n1.claimTask(U256::from(open), fresh, spec.clone(), env.requester.address(), env.esc(open)),
    )
    .await;
    env.result(1, open, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn submit_without_permit_and_holder_checks(env: &mut Env) {
    env.approve_all().await;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let d = env.deployment;
    let req = env.requester.market(&d);
    let r = env
        .ok(
            "submitTask",
            req.submitTask(spec.clone(), "cid".into(), alloy::primitives::Uint::from(PRICE), offer),
        )
        .await;
    let ev = r.decoded_log::<Marketplace::TaskSubmitted>().unwrap();
    assert_eq!(
        (ev.imageId, ev.inputHash, ev.memoryMb, ev.maxRuntimeS, ev.deadline),
        (spec.imageId, spec.inputHash, 256, 60, FAR)
    );
    assert_eq!(
        (ev.offerId, ev.inputCid.as_str(), ev.requester),
        (offer, "cid", env.requester.address())
    );
    let task: u64 = ev.taskId.to();
    // Only the holding node relays the result.
    let proof = env.proof(task, &spec, 0);
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(2, task, &spec, &proof, sig.clone()).await.unwrap_err();
    assert!(
        matches!(err, ecld_contracts::ContractError::Marketplace(E::NotTaskHolder(_))),
        "{err:?}"
    );
    env.result_call(1, task, &spec, &proof, sig).await.expect("holder relays");
    env.assert_conservation().await;
}

pub(crate) async fn claim_after_deadline_reverts(env: &mut Env) {
    let deadline = T0 + 86_400;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(deadline);
    let task = env.submit(&spec, PRICE, 0).await;
    env.set_time(deadline + 1).await;
    let m1 = env.node1.market(&env.deployment);
    let err = env
        .refused(
            "claimTask",
            m1.claimTask(
                U256::from(task),
                offer,
                spec.clone(),
                env.requester.address(),
                env.esc(task),
            ),
        )
        .await;
    assert_eq!(
        err,
        E::DeadlinePassed(Marketplace::DeadlinePassed { taskId: U256::from(task), deadline })
    );
    let req = env.requester.market(&env.deployment);
    env.ok("reclaim", req.reclaim(U256::from(task), spec.clone(), env.esc(task))).await;
    env.assert_conservation().await;
}

pub(crate) async fn reclaim_refunds_after_deadline_only(env: &mut Env) {
    let deadline = T0 + 2 * 86_400;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(deadline);
    let req0 = env.balance(env.requester.address()).await;
    let task = env.submit(&spec, PRICE, offer).await;
    let req = env.requester.market(&env.deployment);
    let err =
        env.refused("reclaim", req.reclaim(U256::from(task), spec.clone(), env.esc(task))).await;
    assert_eq!(
        err,
        E::DeadlineNotReached(Marketplace::DeadlineNotReached {
            taskId: U256::from(task),
            deadline
        })
    );
    env.set_time(deadline + 1).await;
    let other = env.other.market(&env.deployment);
    let err =
        env.refused("reclaim", other.reclaim(U256::from(task), spec.clone(), env.esc(task))).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");
    let wrong_price = alloy::primitives::Uint::from(PRICE + 1);
    let err =
        env.refused("reclaim", req.reclaim(U256::from(task), spec.clone(), wrong_price)).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");
    // The node is too late with its proof.
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task, &spec, &proof, sig.clone()).await.unwrap_err();
    assert!(
        matches!(err, ecld_contracts::ContractError::Marketplace(E::DeadlinePassed(_))),
        "{err:?}"
    );
    let r = env.ok("reclaim", req.reclaim(U256::from(task), spec.clone(), env.esc(task))).await;
    let ev = r.decoded_log::<Marketplace::TaskReclaimed>().unwrap();
    assert_eq!((ev.offerId, u128::try_from(ev.amount).unwrap()), (offer, PRICE));
    assert_eq!(env.balance(env.requester.address()).await, req0, "reclaim refunds in full");
    assert_eq!(used_slots(env, offer).await, 0, "reclaim frees the node's slot");
    let err =
        env.refused("reclaim", req.reclaim(U256::from(task), spec.clone(), env.esc(task))).await;
    assert!(matches!(err, E::TaskNotActive(_)), "{err:?}");
    env.assert_conservation().await;
}

/// The enclave signs with ecld-crypto; the contract accepts exactly that signature.
pub(crate) async fn ecld_crypto_proof_settles_on_chain(env: &mut Env) {
    use ecld_crypto::{
        keys::SignerKey,
        proof::{ProofDomain, ResultProof},
    };
    use ecld_types::StatusCode;

    let key = SignerKey::from_hex(&B256::repeat_byte(0x11).to_string()).unwrap();
    assert_eq!(key.address(), env.enclave.address());
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let d = env.deployment;
    for status in [StatusCode::Success, StatusCode::EnclaveFailure] {
        let task = env.submit(&spec, PRICE, offer).await;
        let proof = ResultProof {
            task_id: task,
            image_id: spec.imageId,
            input_hash: spec.inputHash,
            code_hash: keccak256(b"user code"),
            result_hash: keccak256(b"result ciphertext"),
            status,
            runtime_ms: 42,
        };
        let domain = ProofDomain { chain_id: d.chain_id, verifying_contract: d.marketplace };
        let ours = ecld_contracts::Proof {
            task_id: task,
            image_id: proof.image_id,
            input_hash: proof.input_hash,
            code_hash: proof.code_hash,
            result_hash: proof.result_hash,
            status: status.code(),
            runtime_ms: 42,
        };
        assert_eq!(
            proof.signing_hash(&domain),
            ecld_contracts::result_digest(&ours, d.chain_id, d.marketplace),
            "ecld-crypto and the contract bindings agree on the EIP-712 digest"
        );
        let sig = proof.sign(&key, &domain).unwrap();
        let r = env
            .result_call(1, task, &spec, &ours, alloy::primitives::Bytes::from(sig.0.to_vec()))
            .await
            .expect("the contract accepts an ecld-crypto proof");
        let ev = r.decoded_log::<Marketplace::ResultSubmitted>().unwrap();
        assert_eq!(
            (ev.signer, ev.status, ev.codeHash),
            (key.address(), status.code(), proof.code_hash)
        );
    }
    env.assert_conservation().await;
}
