//! Every Marketplace path, as scenarios over one deployed stack. Each runs as its own test on
//! a fresh ecld-devnet, and `run_all` runs them in sequence on one chain (devnet and hardhat).
//!
//! The requester's maxPrice is escrowed whole at submission (drawn from its deposit in the
//! Marketplace first, the rest from its wallet) and held until the task ends; the holding
//! offer's price goes to the node at a paying settlement and the rest back to the requester's
//! wallet. Scenarios that guard against an abuse are played the way the abuser would.

use alloy::{
    primitives::{Address, B256, FixedBytes, U256, keccak256},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use ecld_contracts::{
    ContractError, DevToken, ImageRegistry, Marketplace, Marketplace::MarketplaceErrors as E,
    TaskSpec,
};

use crate::harness::{Env, FAR, INPUT_CID, PRICE, RESULT_CID, T0, u96};

/// Runs every scenario in order on one chain. Time-travelling scenarios come last, in order
/// of the times they jump to.
pub(crate) async fn run_all(env: &mut Env) {
    success_pays_node(env).await;
    refund_classes_refund_requester(env).await;
    input_mismatch_pays_the_node(env).await;
    unknown_status_codes_revert(env).await;
    proofs_bound_to_signer_chain_contract_and_task(env).await;
    proof_binds_spec_limits_and_result_cid(env).await;
    double_submit_and_spec_mismatch_revert(env).await;
    claim_of_full_offer_reverts(env).await;
    release_then_reclaim_by_another_node(env).await;
    one_wei_offer_cannot_strand_a_task(env).await;
    requester_cancels_an_open_task(env).await;
    revoked_image_refuses_claims_and_proofs_and_refunds_at_once(env).await;
    fit_checks_refuse_unfit_offers(env).await;
    input_cid_must_match_the_spec(env).await;
    offers_update_and_withdraw(env).await;
    submit_without_permit_and_holder_checks(env).await;
    deposit_funded_task_settles_and_pays_the_node(env).await;
    batch_of_three_settles_and_pays_the_node_once(env).await;
    batch_with_one_bad_proof_changes_nothing(env).await;
    batch_of_three_tasks_submitted_at_once_each_settle(env).await;
    batch_of_tasks_with_one_refused_changes_nothing(env).await;
    withdrawing_more_than_the_deposit_reverts(env).await;
    claim_after_deadline_reverts(env).await;
    reclaim_refunds_after_deadline_only(env).await;
    ecld_crypto_proof_settles_on_chain(env).await;
}

async fn used_slots(env: &Env, offer: u64) -> u16 {
    env.deployer.market(&env.deployment).getOffer(offer).call().await.expect("getOffer").usedSlots
}

async fn task_word(env: &Env, task: u64) -> FixedBytes<24> {
    let market = env.deployer.market(&env.deployment);
    market.getTask(U256::from(task)).call().await.expect("getTask").commitment
}

async fn task_live(env: &Env, task: u64) -> bool {
    task_word(env, task).await != FixedBytes::ZERO
}

/// The Marketplace error of a refused `result_call`.
fn market_err(err: ContractError) -> E {
    match err {
        ContractError::Marketplace(e) => e,
        other => panic!("expected a Marketplace error, got {other:?}"),
    }
}

fn amount(v: alloy::primitives::Uint<96, 2>) -> u128 {
    u128::try_from(v).unwrap()
}

pub(crate) async fn success_pays_node(env: &mut Env) {
    let offer = env.offer(1, 2, PRICE).await;
    let (requester, node) = (env.requester.address(), env.node1.address());
    for status in 0u16..=5 {
        let spec = env.spec(FAR);
        let (req0, node0) = (env.balance(requester).await, env.balance(node).await);
        // maxPrice above the offer's price: the whole maxPrice is escrowed until settlement.
        let task = env.submit(&spec, 3 * PRICE, offer).await;
        assert_eq!(env.balance(requester).await, req0 - 3 * PRICE, "maxPrice is escrowed");
        assert_eq!(amount(env.price(task)), PRICE, "matched at the offer's price");
        assert_eq!(used_slots(env, offer).await, 1);
        let receipt = env.result(1, task, &spec, status).await;
        let ev = receipt.decoded_log::<Marketplace::ResultSubmitted>().expect("ResultSubmitted");
        assert_eq!(ev.taskId, U256::from(task));
        assert_eq!(ev.offerId, offer);
        assert_eq!(ev.node, node);
        assert_eq!(ev.signer, env.enclave.address());
        assert_eq!(ev.status, status);
        assert_eq!(ev.runtimeMs, 1234);
        assert_eq!(ev.resultHash, keccak256(format!("result of {task}")));
        assert_eq!(ev.resultCid, RESULT_CID);
        assert_eq!(ev.signature.len(), 65);
        assert_eq!((amount(ev.paid), amount(ev.refunded)), (PRICE, 2 * PRICE));
        assert_eq!(env.balance(node).await, node0 + PRICE, "status {status} pays the node");
        assert_eq!(
            env.balance(requester).await,
            req0 - PRICE,
            "status {status} returns maxPrice - price"
        );
        assert_eq!(used_slots(env, offer).await, 0);
        assert!(!task_live(env, task).await, "settled task is deleted");
        env.assert_conservation().await;
    }
}

pub(crate) async fn refund_classes_refund_requester(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let (requester, node) = (env.requester.address(), env.node1.address());
    for status in [16u16, 17, 18, 19] {
        let spec = env.spec(FAR);
        let (req0, node0) = (env.balance(requester).await, env.balance(node).await);
        let task = env.submit(&spec, 2 * PRICE, offer).await;
        let r = env.result(1, task, &spec, status).await;
        let ev = r.decoded_log::<Marketplace::ResultSubmitted>().expect("ResultSubmitted");
        assert_eq!((amount(ev.paid), amount(ev.refunded)), (0, 2 * PRICE));
        assert_eq!(env.balance(requester).await, req0, "status {status} refunds in full");
        assert_eq!(env.balance(node).await, node0, "status {status} pays the node nothing");
        assert_eq!(used_slots(env, offer).await, 0);
        env.assert_conservation().await;
    }
}

/// Status 6 (INPUT_MISMATCH) is the requester's fault: a requester who commits an inputHash
/// that is not the hash of the bytes under its CID cannot turn the run into a refund; the node
/// that ran it is paid. Status 19 (STALLED) is the node's: a host that pauses or starves the
/// enclave past its wall-clock allowance is paid nothing.
pub(crate) async fn input_mismatch_pays_the_node(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let (requester, node) = (env.requester.address(), env.node1.address());
    for (status, paid, refunded) in [(6u16, PRICE, PRICE), (19, 0, 2 * PRICE)] {
        let mut spec = env.spec(FAR);
        if status == 6 {
            // Not the hash of the ciphertext stored under INPUT_CID.
            spec.inputHash = keccak256(b"some other ciphertext");
        }
        let (req0, node0) = (env.balance(requester).await, env.balance(node).await);
        let task = env.submit(&spec, 2 * PRICE, offer).await;
        let r = env.result(1, task, &spec, status).await;
        let ev = r.decoded_log::<Marketplace::ResultSubmitted>().expect("ResultSubmitted");
        assert_eq!(ev.status, status);
        assert_eq!((amount(ev.paid), amount(ev.refunded)), (paid, refunded), "status {status}");
        assert_eq!(env.balance(node).await, node0 + paid, "status {status}: node");
        assert_eq!(env.balance(requester).await, req0 - paid, "status {status}: requester");
        env.assert_conservation().await;
    }
}

pub(crate) async fn unknown_status_codes_revert(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let task = env.submit(&spec, PRICE, offer).await;
    for status in [7u16, 15, 20, 255] {
        let proof = env.proof(task, &spec, status);
        let d = env.deployment;
        let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
        let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
        assert_eq!(market_err(err), E::UnknownStatus(Marketplace::UnknownStatus { status }));
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
    let wrong_signer = |err: ContractError, task: u64| match market_err(err) {
        E::WrongSigner(w) => {
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
    let mut tampered = proof.clone();
    tampered.status = 16;
    let err = env.result_call(1, task_a, &spec, &tampered, sig_a.clone()).await.unwrap_err();
    assert_ne!(wrong_signer(err, task_a), expected, "tampered field");

    // Malformed signatures.
    let err = env.result_call(1, task_a, &spec, &proof, sig_a.slice(..64)).await.unwrap_err();
    assert_eq!(market_err(err), E::MalformedSignature(Marketplace::MalformedSignature {}));

    env.result_call(1, task_a, &spec, &proof, sig_a).await.expect("the right proof settles");
    env.result(1, task_b, &spec, 0).await;
    env.assert_conservation().await;
}

/// The enclave signs the whole spec and the result's CID. A node that gave the enclave its
/// own offer's limits (more memory, more run time than the requester asked for) holds a proof
/// signed by the image's real key, but over a spec that is not the task's; a node that
/// relays another result CID than the one signed points the requester at bytes the enclave
/// never vouched for. Both are refused; the honest proof settles.
pub(crate) async fn proof_binds_spec_limits_and_result_cid(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await; // 1024 MB, 600 s
    let spec = env.spec(FAR); // 256 MB, 60 s
    let task = env.submit(&spec, PRICE, offer).await;
    let d = env.deployment;
    let expected = env.enclave.address();
    let (mut more_memory, mut more_time) = (spec.clone(), spec.clone());
    more_memory.memoryMb = 1024;
    more_time.maxRuntimeS = 600;
    for (what, signed_spec) in [("memoryMb", more_memory), ("maxRuntimeS", more_time)] {
        let proof = env.proof(task, &signed_spec, 0);
        let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
        // Relayed with the task's spec, the signature is over another message and recovers
        // to some other address: the commitment (which binds the image's signer) fails, and
        // the recovered address is not the image's, so the contract says WrongSigner.
        let err = env.result_call(1, task, &spec, &proof, sig.clone()).await.unwrap_err();
        match market_err(err) {
            E::WrongSigner(w) => {
                assert_eq!((w.taskId, w.expected), (U256::from(task), expected), "{what}");
                assert_ne!(w.recovered, expected, "{what}");
            }
            other => panic!("{what}: expected WrongSigner, got {other:?}"),
        }
        // Relayed with the spec it was signed over, the signature recovers to the image's
        // signer, so what fails is the spec against the task's commitment: SpecMismatch.
        let err = env.result_call(1, task, &signed_spec, &proof, sig).await.unwrap_err();
        assert_eq!(
            market_err(err),
            E::SpecMismatch(Marketplace::SpecMismatch { taskId: U256::from(task) }),
            "{what}"
        );
    }

    let proof = env.proof(task, &spec, 0);
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let mut elsewhere = proof.clone();
    elsewhere.result_cid = "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into();
    let err = env.result_call(1, task, &spec, &elsewhere, sig.clone()).await.unwrap_err();
    match market_err(err) {
        E::WrongSigner(w) => assert_ne!(w.recovered, expected, "another result CID"),
        other => panic!("another result CID: expected WrongSigner, got {other:?}"),
    }
    assert!(task_live(env, task).await, "the refusals left the task held");

    let r = env.result_call(1, task, &spec, &proof, sig).await.expect("the honest proof settles");
    let ev = r.decoded_log::<Marketplace::ResultSubmitted>().unwrap();
    assert_eq!((ev.resultCid.as_str(), ev.signer), (RESULT_CID, expected));
    env.assert_conservation().await;
}

pub(crate) async fn double_submit_and_spec_mismatch_revert(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let task = env.submit(&spec, 2 * PRICE, offer).await;
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let (requester, node) = (env.requester.address(), env.node1.address());
    let mismatch = E::SpecMismatch(Marketplace::SpecMismatch { taskId: U256::from(task) });

    // The node passes back other terms than the task's, under the enclave's valid signature:
    // its price raised to the whole escrow, itself as the requester (to collect the rest),
    // a smaller escrow. The commitment binds them all.
    for (what, terms) in [
        ("price = maxPrice", (requester, u96(2 * PRICE), u96(2 * PRICE))),
        ("the node as requester", (node, u96(2 * PRICE), u96(PRICE))),
        ("a smaller maxPrice", (requester, u96(PRICE), u96(PRICE))),
    ] {
        let err =
            env.result_call_with(1, task, &spec, terms, &proof, sig.clone()).await.unwrap_err();
        assert_eq!(market_err(err), mismatch, "{what}");
    }
    // A spec field changed under the signature: the spec is signed, so the signature no
    // longer recovers to the image's signer (memory changed here).
    let mut forged = spec.clone();
    forged.memoryMb = 1;
    let err = env.result_call(1, task, &forged, &proof, sig.clone()).await.unwrap_err();
    assert!(matches!(market_err(err), E::WrongSigner(_)));

    env.result_call(1, task, &spec, &proof, sig.clone()).await.expect("first submit");
    let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
    assert_eq!(
        market_err(err),
        E::TaskNotActive(Marketplace::TaskNotActive { taskId: U256::from(task) })
    );
    env.assert_conservation().await;
}

pub(crate) async fn claim_of_full_offer_reverts(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let held = env.submit(&spec, PRICE, offer).await;
    let open = env.submit(&spec, PRICE, 0).await;
    let requester = env.requester.address();
    let market = env.node1.market(&env.deployment);
    let claim =
        market.claimTask(U256::from(open), offer, spec.clone(), requester, env.max_price(open));
    let err = env.refused("claimTask", claim).await;
    assert_eq!(err, E::OfferFull(Marketplace::OfferFull { offerId: offer, slots: 1 }));
    // Naming a full offer at submission is refused the same way.
    let req = env.requester.market(&env.deployment);
    env.approve_all().await;
    let err = env
        .refused("submitTask", req.submitTask(spec.clone(), INPUT_CID.into(), u96(PRICE), offer))
        .await;
    assert_eq!(err, E::OfferFull(Marketplace::OfferFull { offerId: offer, slots: 1 }));
    env.result(1, held, &spec, 0).await;
    let claim =
        market.claimTask(U256::from(open), offer, spec.clone(), requester, env.max_price(open));
    env.ok("claimTask", claim).await;
    env.result(1, open, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn release_then_reclaim_by_another_node(env: &mut Env) {
    let offer1 = env.offer(1, 1, PRICE).await;
    let offer2 = env.offer(2, 1, PRICE / 2).await;
    let spec = env.spec(FAR);
    let requester = env.requester.address();
    let req0 = env.balance(requester).await;
    let task = env.submit(&spec, 2 * PRICE, 0).await;
    assert_eq!(env.balance(requester).await, req0 - 2 * PRICE, "open task escrows maxPrice");
    let max = env.max_price(task);
    let id = U256::from(task);

    let m1 = env.node1.market(&env.deployment);
    let m2 = env.node2.market(&env.deployment);
    // node2 cannot claim with node1's offer.
    let err =
        env.refused("claimTask", m2.claimTask(id, offer1, spec.clone(), requester, max)).await;
    assert!(matches!(err, E::NotOfferNode(_)), "{err:?}");
    let r = env.ok("claimTask", m1.claimTask(id, offer1, spec.clone(), requester, max)).await;
    let ev = r.decoded_log::<Marketplace::TaskClaimed>().expect("TaskClaimed");
    assert_eq!((ev.offerId, ev.node, amount(ev.price)), (offer1, env.node1.address(), PRICE));
    assert_eq!(
        env.balance(requester).await,
        req0 - 2 * PRICE,
        "a claim refunds nothing: the whole escrow stays held"
    );
    let err =
        env.refused("claimTask", m2.claimTask(id, offer2, spec.clone(), requester, max)).await;
    assert_eq!(
        err,
        E::TaskAlreadyClaimed(Marketplace::TaskAlreadyClaimed { taskId: id, offerId: offer1 })
    );
    let price = env.price(task);
    let release = m2.releaseTask(id, spec.clone(), requester, max, price);
    let err = env.refused("releaseTask", release).await;
    assert!(matches!(err, E::NotTaskHolder(_)), "{err:?}");
    // The holder must pass back the terms it holds the task on.
    let release = m1.releaseTask(id, spec.clone(), requester, max, u96(0));
    let err = env.refused("releaseTask", release).await;
    assert_eq!(err, E::SpecMismatch(Marketplace::SpecMismatch { taskId: id }));

    env.ok("releaseTask", m1.releaseTask(id, spec.clone(), requester, max, price)).await;
    assert_eq!(used_slots(env, offer1).await, 0, "release frees the slot");
    let release = m1.releaseTask(id, spec.clone(), requester, max, price);
    let err = env.refused("releaseTask", release).await;
    assert!(matches!(err, E::TaskNotClaimed(_)), "{err:?}");
    // node1 can no longer relay a result for it.
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
    assert!(matches!(market_err(err), E::TaskNotClaimed(_)));

    let node2_0 = env.balance(env.node2.address()).await;
    env.ok("claimTask", m2.claimTask(id, offer2, spec.clone(), requester, max)).await;
    assert_eq!(env.balance(requester).await, req0 - 2 * PRICE);
    env.result(2, task, &spec, 0).await;
    assert_eq!(env.balance(env.node2.address()).await, node2_0 + PRICE / 2);
    assert_eq!(env.balance(requester).await, req0 - PRICE / 2);
    env.assert_conservation().await;
}

/// The attack the whole-escrow rule closes: a node offers to run any image for 1 wei, claims
/// an open task and releases it. When a claim cut the escrow down to the claimer's price, the
/// released task sat open with a 1-wei escrow that no honest offer could take. Now the claim
/// moves nothing, the release restores the task's original terms, and an honest node takes it
/// at its own price.
pub(crate) async fn one_wei_offer_cannot_strand_a_task(env: &mut Env) {
    let d = env.deployment;
    let spec = env.spec(FAR);
    let (requester, attacker, honest) =
        (env.requester.address(), env.other.address(), env.node1.address());
    let (req0, attacker0) = (env.balance(requester).await, env.balance(attacker).await);
    let task = env.submit(&spec, 3 * PRICE, 0).await;
    let (id, max) = (U256::from(task), env.max_price(task));
    let open_word = task_word(env, task).await;
    let market = env.deployer.market(&d);
    let committed = market.commitmentOf(spec.clone(), requester, max, u96(0)).call().await.unwrap();
    assert_eq!(open_word, committed, "an open task commits to (maxPrice, price 0)");

    // The attacker's any-image offer at 1 wei.
    let am = env.other.market(&d);
    let r = env.ok("registerOffer", am.registerOffer(B256::ZERO, 1, 1, 1024, 600, u96(1))).await;
    let bait = r.decoded_log::<Marketplace::OfferRegistered>().unwrap().offerId;
    let r = env.ok("claimTask", am.claimTask(id, bait, spec.clone(), requester, max)).await;
    let ev = r.decoded_log::<Marketplace::TaskClaimed>().unwrap();
    assert_eq!((ev.offerId, ev.node, amount(ev.price)), (bait, attacker, 1));
    assert_eq!(env.balance(requester).await, req0 - 3 * PRICE, "the claim refunded nothing");

    // While the attacker holds it, the honest node cannot take it.
    let offer = env.offer(1, 1, PRICE).await;
    let n1 = env.node1.market(&d);
    let err = env.refused("claimTask", n1.claimTask(id, offer, spec.clone(), requester, max)).await;
    assert_eq!(
        err,
        E::TaskAlreadyClaimed(Marketplace::TaskAlreadyClaimed { taskId: id, offerId: bait })
    );

    // The attacker releases. The task is open again on its original terms.
    let r = env.ok("releaseTask", am.releaseTask(id, spec.clone(), requester, max, u96(1))).await;
    let ev = r.decoded_log::<Marketplace::TaskReleased>().unwrap();
    assert_eq!((ev.offerId, ev.node), (bait, attacker));
    assert_eq!(task_word(env, task).await, open_word, "release restores the open commitment");
    assert_eq!(used_slots(env, bait).await, 0);
    assert_eq!(env.balance(requester).await, req0 - 3 * PRICE);
    env.assert_conservation().await;

    // The honest node claims at its own price (against a 1-wei escrow this was PriceTooHigh)
    // and settles.
    let r = env.ok("claimTask", n1.claimTask(id, offer, spec.clone(), requester, max)).await;
    let ev = r.decoded_log::<Marketplace::TaskClaimed>().unwrap();
    assert_eq!((ev.node, amount(ev.price)), (honest, PRICE));
    let honest0 = env.balance(honest).await;
    let r = env.result(1, task, &spec, 0).await;
    let ev = r.decoded_log::<Marketplace::ResultSubmitted>().unwrap();
    assert_eq!((amount(ev.paid), amount(ev.refunded)), (PRICE, 3 * PRICE - PRICE));
    assert_eq!(env.balance(honest).await, honest0 + PRICE, "the honest node got its price");
    assert_eq!(
        env.balance(requester).await,
        req0 - PRICE,
        "the requester got 3*PRICE - PRICE back"
    );
    assert_eq!(env.balance(attacker).await, attacker0, "the attacker got nothing");
    env.assert_conservation().await;
}

/// A requester may cancel a task no node holds, at any time, and gets its whole maxPrice
/// back; nobody else can. A task a node holds (and may be running) cannot be cancelled before
/// its deadline; once the node gives it back, it can.
pub(crate) async fn requester_cancels_an_open_task(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let requester = env.requester.address();
    let req0 = env.balance(requester).await;
    let open = env.submit(&spec, 2 * PRICE, 0).await;
    let (id, max) = (U256::from(open), env.max_price(open));
    let (req_m, stranger_m, n1) =
        (env.requester.market(&d), env.other.market(&d), env.node1.market(&d));

    // A stranger passing the task's exact terms cannot take the escrow: the commitment binds
    // the requester.
    let err = env.refused("reclaim", stranger_m.reclaim(id, spec.clone(), max, u96(0))).await;
    assert_eq!(
        err,
        E::SpecMismatchOrNotRequester(Marketplace::SpecMismatchOrNotRequester {
            taskId: id,
            caller: env.other.address()
        })
    );
    // Nor can the requester take back more than it escrowed.
    let err = env.refused("reclaim", req_m.reclaim(id, spec.clone(), u96(3 * PRICE), u96(0))).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");

    // The requester cancels, long before the deadline.
    let r = env.ok("reclaim", req_m.reclaim(id, spec.clone(), max, u96(0))).await;
    let ev = r.decoded_log::<Marketplace::TaskReclaimed>().unwrap();
    assert_eq!(
        (ev.taskId, ev.requester, ev.offerId, amount(ev.amount)),
        (id, requester, 0, 2 * PRICE)
    );
    assert_eq!(env.balance(requester).await, req0, "a cancel refunds maxPrice");
    assert!(!task_live(env, open).await);
    // No node can take it any more, nor can it be cancelled twice.
    let err = env.refused("claimTask", n1.claimTask(id, offer, spec.clone(), requester, max)).await;
    assert_eq!(err, E::TaskNotActive(Marketplace::TaskNotActive { taskId: id }));
    let err = env.refused("reclaim", req_m.reclaim(id, spec.clone(), max, u96(0))).await;
    assert_eq!(err, E::TaskNotActive(Marketplace::TaskNotActive { taskId: id }));

    // A held task: the node may be running it, so no cancel before the deadline.
    let held = env.submit(&spec, 2 * PRICE, offer).await;
    let (id, max, price) = (U256::from(held), env.max_price(held), env.price(held));
    let err = env.refused("reclaim", req_m.reclaim(id, spec.clone(), max, price)).await;
    assert_eq!(
        err,
        E::DeadlineNotReached(Marketplace::DeadlineNotReached { taskId: id, deadline: FAR })
    );
    // Passing it off as open does not help: the commitment binds the price too.
    let err = env.refused("reclaim", req_m.reclaim(id, spec.clone(), max, u96(0))).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");
    // Once the node gives it back it is open, and the requester may cancel it.
    env.ok("releaseTask", n1.releaseTask(id, spec.clone(), requester, max, price)).await;
    env.ok("reclaim", req_m.reclaim(id, spec.clone(), max, u96(0))).await;
    assert_eq!(env.balance(requester).await, req0);
    assert_eq!(used_slots(env, offer).await, 0);
    env.assert_conservation().await;
}

/// An image's enclave key leaks. Its owner revokes the image: from that block no node can
/// claim a task for it or settle one with a proof (even one signed before the revocation),
/// both requesters take their whole escrow back at once, and no new task or offer for it is
/// taken. A stranger cannot revoke someone else's image.
pub(crate) async fn revoked_image_refuses_claims_and_proofs_and_refunds_at_once(env: &mut Env) {
    let d = env.deployment;
    let image = env.publish_image("revocable", 1).await;
    let mut spec = env.spec(FAR);
    spec.imageId = image;
    let n1 = env.node1.market(&d);
    let r = env.ok("registerOffer", n1.registerOffer(image, 1, 2, 1024, 600, u96(PRICE))).await;
    let offer = r.decoded_log::<Marketplace::OfferRegistered>().unwrap().offerId;
    let (requester, second) = (env.requester.clone(), env.other.clone());
    let (req0, second0, node0) = (
        env.balance(requester.address()).await,
        env.balance(second.address()).await,
        env.balance(env.node1.address()).await,
    );
    let held = env.submit_by(&requester, &spec, 2 * PRICE, offer).await;
    let open = env.submit_by(&second, &spec, 2 * PRICE, 0).await;
    // The node already holds a valid proof for the held task.
    let proof = env.proof(held, &spec, 0);
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);

    let registry_as =
        |who: &crate::harness::Account| ImageRegistry::new(d.registry, who.provider.clone());
    let by_stranger = registry_as(&env.other);
    match env.exec("revoke", by_stranger.revoke(image)).await {
        Err(ContractError::Registry(ImageRegistry::ImageRegistryErrors::NotImageOwner(e))) => {
            assert_eq!(
                (e.imageId, e.caller, e.owner),
                (image, env.other.address(), env.deployer.address())
            );
        }
        other => panic!("a stranger's revoke: expected NotImageOwner, got {other:?}"),
    }
    let by_owner = registry_as(&env.deployer);
    let r = env.ok("revoke", by_owner.revoke(image)).await;
    let ev = r.decoded_log::<ImageRegistry::ImageRevoked>().expect("ImageRevoked");
    assert_eq!((ev.imageId, ev.enclaveSigner), (image, env.enclave.address()));
    let status = by_owner.imageStatus(image).call().await.unwrap();
    assert!(status.revoked && status.deprecated, "revoked, and so deprecated");
    // Revoking again changes nothing.
    let r = env.ok("revoke", by_owner.revoke(image)).await;
    assert!(r.inner.logs().is_empty(), "a second revoke is a no-op");

    let revoked = E::ImageRevoked(Marketplace::ImageRevoked { imageId: image });
    let claim =
        n1.claimTask(U256::from(open), offer, spec.clone(), second.address(), env.max_price(open));
    assert_eq!(env.refused("claimTask", claim).await, revoked);
    let err = env.result_call(1, held, &spec, &proof, sig).await.unwrap_err();
    assert_eq!(market_err(err), revoked, "a validly signed proof");

    // Both requesters take their escrow back before the deadline.
    let (req_m, second_m) = (requester.market(&d), second.market(&d));
    let reclaim =
        req_m.reclaim(U256::from(held), spec.clone(), env.max_price(held), env.price(held));
    let r = env.ok("reclaim", reclaim).await;
    let ev = r.decoded_log::<Marketplace::TaskReclaimed>().unwrap();
    assert_eq!((ev.offerId, amount(ev.amount)), (offer, 2 * PRICE));
    assert_eq!(used_slots(env, offer).await, 0, "the reclaim frees the node's slot");
    let reclaim = second_m.reclaim(U256::from(open), spec.clone(), env.max_price(open), u96(0));
    env.ok("reclaim", reclaim).await;
    assert_eq!(env.balance(requester.address()).await, req0);
    assert_eq!(env.balance(second.address()).await, second0);
    assert_eq!(env.balance(env.node1.address()).await, node0);

    // No new task or offer for it.
    env.approve_all().await;
    let submit = req_m.submitTask(spec.clone(), INPUT_CID.into(), u96(PRICE), 0);
    let err = env.refused("submitTask", submit).await;
    assert_eq!(err, E::ImageDeprecated(Marketplace::ImageDeprecated { imageId: image }));
    let err =
        env.refused("registerOffer", n1.registerOffer(image, 1, 1, 1024, 600, u96(PRICE))).await;
    assert_eq!(err, E::ImageDeprecated(Marketplace::ImageDeprecated { imageId: image }));
    env.assert_conservation().await;
}

pub(crate) async fn fit_checks_refuse_unfit_offers(env: &mut Env) {
    env.approve_all().await;
    let d = env.deployment;
    let req = env.requester.market(&d);
    let submit = |spec: &TaskSpec, max: u128, offer: u64| {
        req.submitTask(spec.clone(), INPUT_CID.into(), u96(max), offer)
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
    let r =
        env.ok("registerOffer", n1.registerOffer(B256::ZERO, 1, 1, 1024, 600, u96(PRICE))).await;
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
    let registry = ImageRegistry::new(d.registry, env.deployer.provider.clone());
    env.ok("deprecate", registry.deprecate(other_image)).await;
    let err = env.refused("submitTask", submit(&other, PRICE, 0)).await;
    assert!(matches!(err, E::ImageDeprecated(_)), "{err:?}");
    env.assert_conservation().await;
}

/// The spec commits to the input CID's hash, so a client or relay that names another CID than
/// the requester's (a node would fetch, and the enclave would run, other bytes) is refused at
/// submission, with or without a permit. The same CID spelt in upper-case base32 is the same
/// content, but another string: refused too.
pub(crate) async fn input_cid_must_match_the_spec(env: &mut Env) {
    env.approve_all().await;
    let d = env.deployment;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(FAR);
    let req = env.requester.market(&d);
    let upper = INPUT_CID.to_uppercase();
    for cid in [upper.as_str(), "", "bafkreiaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
        let err = env
            .refused("submitTask", req.submitTask(spec.clone(), cid.into(), u96(PRICE), offer))
            .await;
        assert_eq!(
            err,
            E::InputCidMismatch(Marketplace::InputCidMismatch {
                expected: keccak256(INPUT_CID),
                actual: keccak256(cid)
            }),
            "{cid:?}"
        );
    }
    let permit = ecld_contracts::sign_permit(
        &env.requester.provider,
        &env.requester.key,
        d.token,
        d.marketplace,
        U256::from(PRICE),
        U256::from(FAR),
    )
    .await
    .unwrap();
    let call = req.submitTaskWithPermit(
        spec.clone(),
        upper.clone(),
        u96(PRICE),
        offer,
        permit.deadline,
        permit.v,
        permit.r,
        permit.s,
    );
    let err = env.refused("submitTaskWithPermit", call).await;
    assert!(matches!(err, E::InputCidMismatch(_)), "{err:?}");
    assert_eq!(used_slots(env, offer).await, 0, "the refusals took no slot");
    let task = env.submit(&spec, PRICE, offer).await;
    env.result(1, task, &spec, 0).await;
    env.assert_conservation().await;
}

pub(crate) async fn offers_update_and_withdraw(env: &mut Env) {
    let offer = env.offer(1, 1, PRICE).await;
    let d = env.deployment;
    let image = env.image_id;
    let n1 = env.node1.market(&d);
    let n2 = env.node2.market(&d);
    let err =
        env.refused("updateOffer", n2.updateOffer(offer, image, 1, 2, 1024, 600, u96(PRICE))).await;
    assert!(matches!(err, E::NotOfferNode(_)), "{err:?}");
    let err = env.refused("registerOffer", n1.registerOffer(image, 3, 1, 1, 1, u96(1))).await;
    assert!(matches!(err, E::InvalidOffer(_)), "{err:?}");
    env.ok("updateOffer", n1.updateOffer(offer, image, 1, 2, 2048, 900, u96(2 * PRICE))).await;
    let o = env.deployer.market(&d).getOffer(offer).call().await.unwrap();
    assert_eq!((o.slots, o.memoryMb, o.maxRuntimeS, amount(o.price)), (2, 2048, 900, 2 * PRICE));
    let spec = env.spec(FAR);
    let held = env.submit(&spec, 2 * PRICE, offer).await;
    env.ok("withdrawOffer", n1.withdrawOffer(offer)).await;
    let open = env.submit(&spec, 2 * PRICE, 0).await;
    let requester = env.requester.address();
    let claim = n1.claimTask(U256::from(open), offer, spec.clone(), requester, env.max_price(open));
    let err = env.refused("claimTask", claim).await;
    assert_eq!(err, E::OfferIsWithdrawn(Marketplace::OfferIsWithdrawn { offerId: offer }));
    // A task the withdrawn offer already holds still settles.
    env.result(1, held, &spec, 0).await;
    let fresh = env.offer(1, 1, PRICE).await;
    let claim = n1.claimTask(U256::from(open), fresh, spec.clone(), requester, env.max_price(open));
    env.ok("claimTask", claim).await;
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
        .ok("submitTask", req.submitTask(spec.clone(), INPUT_CID.into(), u96(2 * PRICE), offer))
        .await;
    let ev = r.decoded_log::<Marketplace::TaskSubmitted>().unwrap();
    assert_eq!(
        (ev.imageId, ev.inputHash, ev.memoryMb, ev.maxRuntimeS, ev.deadline),
        (spec.imageId, spec.inputHash, 256, 60, FAR)
    );
    assert_eq!(
        (ev.offerId, ev.inputCid.as_str(), ev.requester),
        (offer, INPUT_CID, env.requester.address())
    );
    assert_eq!((amount(ev.maxPrice), amount(ev.price)), (2 * PRICE, PRICE));
    let task: u64 = ev.taskId.to();
    // Only the holding node relays the result.
    let proof = env.proof(task, &spec, 0);
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(2, task, &spec, &proof, sig.clone()).await.unwrap_err();
    assert!(matches!(market_err(err), E::NotTaskHolder(_)));
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
    let (id, max) = (U256::from(task), env.max_price(task));
    let requester = env.requester.address();
    let err = env.refused("claimTask", m1.claimTask(id, offer, spec.clone(), requester, max)).await;
    assert_eq!(err, E::DeadlinePassed(Marketplace::DeadlinePassed { taskId: id, deadline }));
    let req = env.requester.market(&env.deployment);
    env.ok("reclaim", req.reclaim(id, spec.clone(), max, u96(0))).await;
    env.assert_conservation().await;
}

/// A held task's escrow comes back to its requester only after the deadline (the image not
/// being revoked), in full, and frees the node's slot.
pub(crate) async fn reclaim_refunds_after_deadline_only(env: &mut Env) {
    let deadline = T0 + 2 * 86_400;
    let offer = env.offer(1, 1, PRICE).await;
    let spec = env.spec(deadline);
    let req0 = env.balance(env.requester.address()).await;
    let task = env.submit(&spec, 2 * PRICE, offer).await;
    let (id, max, price) = (U256::from(task), env.max_price(task), env.price(task));
    let req = env.requester.market(&env.deployment);
    let err = env.refused("reclaim", req.reclaim(id, spec.clone(), max, price)).await;
    assert_eq!(
        err,
        E::DeadlineNotReached(Marketplace::DeadlineNotReached { taskId: id, deadline })
    );
    env.set_time(deadline + 1).await;
    let other = env.other.market(&env.deployment);
    let err = env.refused("reclaim", other.reclaim(id, spec.clone(), max, price)).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");
    let err =
        env.refused("reclaim", req.reclaim(id, spec.clone(), u96(2 * PRICE + 1), price)).await;
    assert!(matches!(err, E::SpecMismatchOrNotRequester(_)), "{err:?}");
    // The node is too late with its proof.
    let proof = env.proof(task, &spec, 0);
    let d = env.deployment;
    let sig = env.sign_proof(&env.enclave, &proof, d.chain_id, d.marketplace);
    let err = env.result_call(1, task, &spec, &proof, sig).await.unwrap_err();
    assert!(matches!(market_err(err), E::DeadlinePassed(_)));
    let r = env.ok("reclaim", req.reclaim(id, spec.clone(), max, price)).await;
    let ev = r.decoded_log::<Marketplace::TaskReclaimed>().unwrap();
    assert_eq!((ev.offerId, amount(ev.amount)), (offer, 2 * PRICE));
    assert_eq!(env.balance(env.requester.address()).await, req0, "reclaim refunds in full");
    assert_eq!(used_slots(env, offer).await, 0, "reclaim frees the node's slot");
    let err = env.refused("reclaim", req.reclaim(id, spec.clone(), max, price)).await;
    assert!(matches!(err, E::TaskNotActive(_)), "{err:?}");
    env.assert_conservation().await;
}

/// The enclave signs with ecld-crypto; the contract accepts exactly that signature, and its
/// `hashSpec` is the bindings' `spec_struct_hash`.
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
    let on_chain = env.deployer.market(&d).hashSpec(spec.clone()).call().await.unwrap();
    assert_eq!(on_chain, ecld_contracts::spec_struct_hash(&spec), "hashSpec");
    for status in [
        StatusCode::Success,
        StatusCode::InputMismatch,
        StatusCode::EnclaveFailure,
        StatusCode::Stalled,
    ] {
        let task = env.submit(&spec, PRICE, offer).await;
        let proof = ResultProof {
            task_id: task,
            image_id: spec.imageId,
            input_hash: spec.inputHash,
            input_cid_hash: spec.inputCidHash,
            memory_mb: spec.memoryMb,
            max_runtime_s: spec.maxRuntimeS,
            deadline: spec.deadline,
            code_hash: keccak256(b"user code"),
            result_hash: keccak256(b"result ciphertext"),
            result_cid_hash: keccak256(RESULT_CID),
            status,
            runtime_ms: 42,
        };
        let domain = ProofDomain { chain_id: d.chain_id, verifying_contract: d.marketplace };
        let ours = ecld_contracts::Proof {
            task_id: task,
            spec: spec.clone(),
            code_hash: proof.code_hash,
            result_hash: proof.result_hash,
            result_cid: RESULT_CID.into(),
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

/// The token's Transfer events of a receipt, in order: (from, to, value).
fn transfers(env: &Env, receipt: &TransactionReceipt) -> Vec<(Address, Address, u128)> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|l| l.address() == env.deployment.token)
        .filter_map(|l| l.log_decode::<DevToken::Transfer>().ok())
        .map(|l| (l.inner.from, l.inner.to, u128::try_from(l.inner.value).unwrap()))
        .collect()
}

/// One entry of a `submitResults` batch: `key`'s signature over the proof of `task` under
/// `spec` with `status`, and the task's terms as the events gave them.
fn batch_entry(
    env: &Env,
    task: u64,
    spec: &TaskSpec,
    status: u16,
    key: &PrivateKeySigner,
) -> Marketplace::Proof {
    let d = env.deployment;
    let proof = env.proof(task, spec, status);
    let signature = env.sign_proof(key, &proof, d.chain_id, d.marketplace);
    Marketplace::Proof {
        taskId: U256::from(task),
        spec: spec.clone(),
        requester: env.requester_of(task),
        maxPrice: env.max_price(task),
        price: env.price(task),
        resultCid: proof.result_cid,
        resultHash: proof.result_hash,
        codeHash: proof.code_hash,
        status,
        runtimeMs: proof.runtime_ms,
        signature,
    }
}

/// A requester deposits once and submits without any allowance left: the escrow is drawn
/// from the deposit, no token leaves its wallet, and the settlement pays the node its price
/// and refunds the rest to the requester's wallet. A second task larger than what is left of
/// the deposit takes the deposit and pulls only the rest from the wallet.
pub(crate) async fn deposit_funded_task_settles_and_pays_the_node(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 2, PRICE).await;
    let (requester, node) = (env.requester.address(), env.node1.address());
    let (req_m, token) = (env.requester.market(&d), env.requester.token(&d));
    let spec = env.spec(FAR);
    // Exactly the deposit's allowance: the submission after it has none.
    env.ok("approve", token.approve(d.marketplace, U256::from(4 * PRICE))).await;
    let (req0, node0) = (env.balance(requester).await, env.balance(node).await);
    let r = env.ok("deposit", req_m.deposit(U256::from(4 * PRICE))).await;
    let ev = r.decoded_log::<Marketplace::Deposited>().expect("Deposited");
    assert_eq!((ev.account, ev.amount), (requester, U256::from(4 * PRICE)));
    assert_eq!(transfers(env, &r), [(requester, d.marketplace, 4 * PRICE)]);
    assert_eq!(env.deposit_of(requester).await, 4 * PRICE);
    assert_eq!(env.balance(requester).await, req0 - 4 * PRICE);

    let submit = req_m.submitTask(spec.clone(), INPUT_CID.into(), u96(3 * PRICE), offer);
    let r = env.ok("submitTask", submit).await;
    assert!(transfers(env, &r).is_empty(), "an escrow drawn from the deposit moves no token");
    let task: u64 = r.decoded_log::<Marketplace::TaskSubmitted>().unwrap().taskId.to();
    assert_eq!(env.deposit_of(requester).await, PRICE, "the deposit pays the escrow");
    assert_eq!(env.balance(requester).await, req0 - 4 * PRICE, "the wallet pays nothing");
    env.assert_conservation().await;

    let r = env.result(1, task, &spec, 0).await;
    let ev = r.decoded_log::<Marketplace::ResultSubmitted>().unwrap();
    assert_eq!((amount(ev.paid), amount(ev.refunded)), (PRICE, 2 * PRICE));
    assert_eq!(env.balance(node).await, node0 + PRICE, "the node's pay arrives");
    assert_eq!(
        env.balance(requester).await,
        req0 - 4 * PRICE + 2 * PRICE,
        "the rest of the escrow goes back to the wallet"
    );
    assert_eq!(env.deposit_of(requester).await, PRICE, "settlement leaves the deposit alone");
    env.assert_conservation().await;

    // Partly from the deposit: PRICE from it, the other 2 * PRICE from the wallet (under a
    // permit for the whole maxPrice, as submitTaskWithPermit gives).
    let task = env.submit(&spec, 3 * PRICE, offer).await;
    assert_eq!(env.deposit_of(requester).await, 0);
    assert_eq!(env.balance(requester).await, req0 - 4 * PRICE + 2 * PRICE - 2 * PRICE);
    env.result(1, task, &spec, 0).await;
    assert_eq!(env.balance(node).await, node0 + 2 * PRICE);
    assert_eq!(env.balance(requester).await, req0 - 2 * PRICE, "two tasks at PRICE each");
    env.assert_conservation().await;
}

/// A node holding three tasks relays their proofs in one transaction: all three settle (each
/// with its ResultSubmitted and its refund), and the node is paid the sum of the three prices
/// in one transfer, after the refunds.
pub(crate) async fn batch_of_three_settles_and_pays_the_node_once(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 3, PRICE).await;
    let (requester, node) = (env.requester.address(), env.node1.address());
    let spec = env.spec(FAR);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(env.submit(&spec, 2 * PRICE, offer).await);
    }
    let (req0, node0) = (env.balance(requester).await, env.balance(node).await);
    // Statuses 0 and 3 pay the node; 16 refunds the requester in full.
    let statuses = [0u16, 16, 3];
    let proofs: Vec<Marketplace::Proof> = tasks
        .iter()
        .zip(statuses)
        .map(|(task, status)| batch_entry(env, *task, &spec, status, &env.enclave))
        .collect();
    let r = env.ok("submitResults", env.node1.market(&d).submitResults(proofs)).await;
    let settled: Vec<_> = r
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<Marketplace::ResultSubmitted>().ok())
        .map(|l| {
            let e = l.inner.data;
            (e.taskId.to::<u64>(), e.status, amount(e.paid), amount(e.refunded), e.node)
        })
        .collect();
    assert_eq!(
        settled,
        [
            (tasks[0], 0, PRICE, PRICE, node),
            (tasks[1], 16, 0, 2 * PRICE, node),
            (tasks[2], 3, PRICE, PRICE, node),
        ]
    );
    let market = d.marketplace;
    assert_eq!(
        transfers(env, &r),
        [
            (market, requester, PRICE),
            (market, requester, 2 * PRICE),
            (market, requester, PRICE),
            (market, node, 2 * PRICE),
        ],
        "a refund per task, then one payment to the node of the sum of the prices"
    );
    assert_eq!(env.balance(node).await, node0 + 2 * PRICE);
    assert_eq!(env.balance(requester).await, req0 + 4 * PRICE);
    for task in tasks {
        assert!(!task_live(env, task).await, "task {task} settled");
    }
    assert_eq!(used_slots(env, offer).await, 0);
    env.assert_conservation().await;
}

/// One bad proof in a batch refuses the whole batch: the good proofs before and after it
/// settle nothing, no token moves. Bad: signed by a key no image trusts, for a task that is not
/// live, the same task twice, another node's task; and a batch with no proof at all.
pub(crate) async fn batch_with_one_bad_proof_changes_nothing(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 3, PRICE).await;
    let other_offer = env.offer(2, 1, PRICE).await;
    let spec = env.spec(FAR);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(env.submit(&spec, 2 * PRICE, offer).await);
    }
    let node2_task = env.submit(&spec, 2 * PRICE, other_offer).await;
    let rogue = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x44)).unwrap();
    let good = |env: &Env, i: usize| batch_entry(env, tasks[i], &spec, 0, &env.enclave);
    let never = env.deployer.market(&d).taskCount().call().await.unwrap() + 1;
    let id = |t: u64| U256::from(t);
    let cases: Vec<(&str, Vec<Marketplace::Proof>, E)> = vec![
        (
            "a proof signed by another key",
            vec![good(env, 0), batch_entry(env, tasks[1], &spec, 0, &rogue), good(env, 2)],
            E::WrongSigner(Marketplace::WrongSigner {
                taskId: id(tasks[1]),
                recovered: rogue.address(),
                expected: env.enclave.address(),
            }),
        ),
        (
            "a task never submitted",
            vec![good(env, 0), good(env, 1), batch_entry(env, never, &spec, 0, &env.enclave)],
            E::TaskNotActive(Marketplace::TaskNotActive { taskId: id(never) }),
        ),
        (
            "the same task twice",
            vec![good(env, 0), good(env, 1), good(env, 2), good(env, 1)],
            E::TaskNotActive(Marketplace::TaskNotActive { taskId: id(tasks[1]) }),
        ),
        (
            "another node's task",
            vec![good(env, 0), batch_entry(env, node2_task, &spec, 0, &env.enclave)],
            E::NotTaskHolder(Marketplace::NotTaskHolder {
                taskId: id(node2_task),
                caller: env.node1.address(),
                holder: env.node2.address(),
            }),
        ),
        ("no proof at all", Vec::new(), E::EmptyBatch(Marketplace::EmptyBatch {})),
    ];
    let before = env.snapshot().await;
    let n1 = env.node1.market(&d);
    for (what, proofs, want) in cases {
        let err = env.refused("submitResults", n1.submitResults(proofs)).await;
        assert_eq!(err, want, "{what}");
        assert_eq!(env.snapshot().await, before, "{what}: the refused batch changed the chain");
        assert_eq!(used_slots(env, offer).await, 3, "{what}");
    }
    // Without the bad proof, the batch goes through.
    let proofs = (0..3).map(|i| good(env, i)).collect();
    env.ok("submitResults", n1.submitResults(proofs)).await;
    env.result(2, node2_task, &spec, 0).await;
    env.assert_conservation().await;
}

/// Withdrawing more than the deposit (or from no deposit) is refused with both amounts and
/// changes nothing; the whole deposit comes back.
pub(crate) async fn withdrawing_more_than_the_deposit_reverts(env: &mut Env) {
    let d = env.deployment;
    let requester = env.requester.address();
    let (req_m, token) = (env.requester.market(&d), env.requester.token(&d));
    env.ok("approve", token.approve(d.marketplace, U256::from(2 * PRICE))).await;
    env.ok("deposit", req_m.deposit(U256::from(2 * PRICE))).await;
    let before = env.snapshot().await;
    let err = env.refused("withdraw", req_m.withdraw(U256::from(2 * PRICE + 1))).await;
    assert_eq!(
        err,
        E::InsufficientDeposit(Marketplace::InsufficientDeposit {
            balance: U256::from(2 * PRICE),
            amount: U256::from(2 * PRICE + 1),
        })
    );
    let stranger = env.other.market(&d);
    let err = env.refused("withdraw", stranger.withdraw(U256::from(1))).await;
    assert_eq!(
        err,
        E::InsufficientDeposit(Marketplace::InsufficientDeposit {
            balance: U256::ZERO,
            amount: U256::from(1),
        })
    );
    assert_eq!(env.snapshot().await, before, "the refused withdrawals changed the chain");
    let req0 = env.balance(requester).await;
    let r = env.ok("withdraw", req_m.withdraw(U256::from(2 * PRICE))).await;
    let ev = r.decoded_log::<Marketplace::Withdrawn>().expect("Withdrawn");
    assert_eq!((ev.account, ev.amount), (requester, U256::from(2 * PRICE)));
    assert_eq!(transfers(env, &r), [(d.marketplace, requester, 2 * PRICE)]);
    assert_eq!(env.balance(requester).await, req0 + 2 * PRICE);
    assert_eq!(env.deposit_of(requester).await, 0);
    env.assert_conservation().await;
}

/// The TaskSubmitted events of a receipt, in order: (taskId, maxPrice, offerId, price).
fn submitted(receipt: &TransactionReceipt) -> Vec<(u64, u128, u64, u128)> {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<Marketplace::TaskSubmitted>().ok())
        .map(|l| {
            let e = l.inner.data;
            (e.taskId.to::<u64>(), amount(e.maxPrice), e.offerId, amount(e.price))
        })
        .collect()
}

/// A requester submits three tasks in one transaction: their ids are consecutive (the first
/// one returned), one TaskSubmitted each, in order. Their escrows are drawn from its deposit
/// while it lasts (the first wholly, the second partly) and the rest from its wallet, one
/// transfer per task that needs one. Each task then settles: two held by the offer named,
/// one left open and claimed by another node.
pub(crate) async fn batch_of_three_tasks_submitted_at_once_each_settle(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 2, PRICE).await;
    let other_offer = env.offer(2, 1, PRICE).await;
    let (requester, node1, node2) =
        (env.requester.address(), env.node1.address(), env.node2.address());
    let (req_m, token) = (env.requester.market(&d), env.requester.token(&d));
    let spec = env.spec(FAR);
    // A deposit of 3 * PRICE, and an allowance of exactly the 4 * PRICE the wallet pays.
    env.ok("approve", token.approve(d.marketplace, U256::from(7 * PRICE))).await;
    env.ok("deposit", req_m.deposit(U256::from(3 * PRICE))).await;
    let (req0, node1_0, node2_0) =
        (env.balance(requester).await, env.balance(node1).await, env.balance(node2).await);
    let count = env.deployer.market(&d).taskCount().call().await.unwrap();

    let maxes = [2 * PRICE, 2 * PRICE, 3 * PRICE];
    let call = req_m.submitTasks(
        vec![spec.clone(); 3],
        vec![INPUT_CID.into(); 3],
        maxes.iter().map(|m| u96(*m)).collect(),
        vec![offer, offer, 0],
    );
    let first: u64 = call.call().await.expect("submitTasks").to();
    assert_eq!(first, count + 1, "the first task id is returned");
    let r = env.ok("submitTasks", call).await;
    let tasks = [first, first + 1, first + 2];
    assert_eq!(
        submitted(&r),
        [
            (tasks[0], 2 * PRICE, offer, PRICE),
            (tasks[1], 2 * PRICE, offer, PRICE),
            (tasks[2], 3 * PRICE, 0, 0),
        ],
        "one TaskSubmitted per task, ids consecutive, in order"
    );
    assert_eq!(
        transfers(env, &r),
        [(requester, d.marketplace, PRICE), (requester, d.marketplace, 3 * PRICE)],
        "the first escrow from the deposit, the second partly, the third from the wallet"
    );
    assert_eq!(env.deposit_of(requester).await, 0);
    assert_eq!(env.balance(requester).await, req0 - 4 * PRICE);
    assert_eq!(env.deployer.market(&d).taskCount().call().await.unwrap(), count + 3);
    assert_eq!(used_slots(env, offer).await, 2);
    let allowance = token.allowance(requester, d.marketplace).call().await.unwrap();
    assert_eq!(allowance, U256::ZERO, "the wallet's part used the allowance up");
    env.assert_conservation().await;

    let n2 = env.node2.market(&d);
    let claim =
        n2.claimTask(U256::from(tasks[2]), other_offer, spec.clone(), requester, u96(3 * PRICE));
    env.ok("claimTask", claim).await;
    // Status 0 pays the node, 16 refunds the requester in full.
    for (task, node, status, paid) in
        [(tasks[0], 1, 0, PRICE), (tasks[1], 1, 16, 0), (tasks[2], 2, 0, PRICE)]
    {
        let r = env.result(node, task, &spec, status).await;
        let ev = r.decoded_log::<Marketplace::ResultSubmitted>().unwrap();
        assert_eq!((ev.taskId, amount(ev.paid)), (U256::from(task), paid));
        assert!(!task_live(env, task).await, "task {task} settled");
    }
    assert_eq!(env.balance(node1).await, node1_0 + PRICE);
    assert_eq!(env.balance(node2).await, node2_0 + PRICE);
    // Refunds of PRICE, 2 * PRICE and 2 * PRICE go to the wallet.
    assert_eq!(env.balance(requester).await, req0 - 4 * PRICE + 5 * PRICE);
    assert_eq!((used_slots(env, offer).await, used_slots(env, other_offer).await), (0, 0));
    env.assert_conservation().await;
}

/// A batch of three whose third task is refused changes nothing: not the two good tasks
/// before it, nor the offer slots or the deposit they took. Refused third tasks: the offer
/// the first two filled, an input CID not the spec's, a passed deadline, an unknown or
/// deprecated image, a maxPrice below the offer's price, an escrow the allowance cannot
/// cover once the first two used the deposit up; and batches empty or of arrays of
/// different lengths. Without the bad task the batch goes through.
pub(crate) async fn batch_of_tasks_with_one_refused_changes_nothing(env: &mut Env) {
    let d = env.deployment;
    let offer = env.offer(1, 2, PRICE).await;
    let dear = env.offer(2, 1, 2 * PRICE).await;
    let requester = env.requester.address();
    let (req_m, token) = (env.requester.market(&d), env.requester.token(&d));
    let deprecated = env.publish_image("deprecated", 1 | 2 | 4).await;
    let registry = ImageRegistry::new(d.registry, env.deployer.provider.clone());
    env.ok("deprecate", registry.deprecate(deprecated)).await;
    // The deposit covers the first two tasks; PRICE of allowance is left for the third.
    env.ok("approve", token.approve(d.marketplace, U256::from(3 * PRICE))).await;
    env.ok("deposit", req_m.deposit(U256::from(2 * PRICE))).await;
    let spec = env.spec(FAR);
    let count = env.deployer.market(&d).taskCount().call().await.unwrap();
    let third_id = U256::from(count + 3);
    let good = (spec.clone(), INPUT_CID.to_owned(), PRICE, offer);
    let batch = |third: (TaskSpec, String, u128, u64)| {
        let all = [good.clone(), good.clone(), third];
        (
            all.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
            all.iter().map(|t| t.1.clone()).collect::<Vec<_>>(),
            all.iter().map(|t| u96(t.2)).collect::<Vec<_>>(),
            all.iter().map(|t| t.3).collect::<Vec<_>>(),
        )
    };
    let with_image = |image: B256| TaskSpec { imageId: image, ..spec.clone() };
    let other_cid = format!("{INPUT_CID}x");
    let unknown = keccak256("no such image");
    let refused = |e: E| ContractError::Marketplace(e);
    let cases = vec![
        (
            "the offer the first two filled",
            batch((spec.clone(), INPUT_CID.into(), PRICE, offer)),
            refused(E::OfferFull(Marketplace::OfferFull { offerId: offer, slots: 2 })),
        ),
        (
            "an input CID not the spec's",
            batch((spec.clone(), other_cid.clone(), PRICE, 0)),
            refused(E::InputCidMismatch(Marketplace::InputCidMismatch {
                expected: keccak256(INPUT_CID),
                actual: keccak256(&other_cid),
            })),
        ),
        (
            "a passed deadline",
            batch((env.spec(T0), INPUT_CID.into(), PRICE, 0)),
            refused(E::DeadlinePassed(Marketplace::DeadlinePassed {
                taskId: third_id,
                deadline: T0,
            })),
        ),
        (
            "an unknown image",
            batch((with_image(unknown), INPUT_CID.into(), PRICE, 0)),
            refused(E::UnknownImage(Marketplace::UnknownImage { imageId: unknown })),
        ),
        (
            "a deprecated image",
            batch((with_image(deprecated), INPUT_CID.into(), PRICE, 0)),
            refused(E::ImageDeprecated(Marketplace::ImageDeprecated { imageId: deprecated })),
        ),
        (
            "a maxPrice below the offer's price",
            batch((spec.clone(), INPUT_CID.into(), PRICE, dear)),
            refused(E::PriceTooHigh(Marketplace::PriceTooHigh {
                offerId: dear,
                price: u96(2 * PRICE),
                maxPrice: u96(PRICE),
            })),
        ),
        (
            "an escrow the allowance left cannot cover",
            batch((spec.clone(), INPUT_CID.into(), 2 * PRICE, 0)),
            ContractError::Token(DevToken::DevTokenErrors::InsufficientAllowance(
                DevToken::InsufficientAllowance {
                    owner: requester,
                    spender: d.marketplace,
                    allowance: U256::from(PRICE),
                    needed: U256::from(2 * PRICE),
                },
            )),
        ),
        (
            "no task at all",
            (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
            refused(E::EmptyBatch(Marketplace::EmptyBatch {})),
        ),
        (
            "one offer id fewer",
            {
                let mut b = batch((spec.clone(), INPUT_CID.into(), PRICE, 0));
                b.3.pop();
                b
            },
            refused(E::BatchLengthMismatch(Marketplace::BatchLengthMismatch {})),
        ),
        (
            "one input CID more",
            {
                let mut b = batch((spec.clone(), INPUT_CID.into(), PRICE, 0));
                b.1.push(INPUT_CID.into());
                b
            },
            refused(E::BatchLengthMismatch(Marketplace::BatchLengthMismatch {})),
        ),
    ];
    let before = env.snapshot().await;
    for (what, (specs, cids, maxes, offers), want) in cases {
        let call = req_m.submitTasks(specs, cids, maxes, offers);
        match env.exec("submitTasks", call).await {
            Err(got) => assert_eq!(got, want, "{what}"),
            Ok(r) => panic!("{what}: expected {want:?}, mined {}", r.transaction_hash),
        }
        assert_eq!(env.snapshot().await, before, "{what}: the refused batch changed the chain");
        assert_eq!(used_slots(env, offer).await, 0, "{what}: offer slots taken");
        assert_eq!(env.deposit_of(requester).await, 2 * PRICE, "{what}: deposit drawn");
        let allowance = token.allowance(requester, d.marketplace).call().await.unwrap();
        assert_eq!(allowance, U256::from(PRICE), "{what}: allowance used");
    }
    // Without the bad task, the batch goes through; the requester cancels the open one.
    let (specs, cids, maxes, offers) = batch((spec.clone(), INPUT_CID.into(), PRICE, 0));
    let r = env.ok("submitTasks", req_m.submitTasks(specs, cids, maxes, offers)).await;
    let first = count + 1;
    assert_eq!(
        submitted(&r),
        [(first, PRICE, offer, PRICE), (first + 1, PRICE, offer, PRICE), (first + 2, PRICE, 0, 0)]
    );
    assert_eq!(transfers(env, &r), [(requester, d.marketplace, PRICE)]);
    env.result(1, first, &spec, 0).await;
    env.result(1, first + 1, &spec, 0).await;
    let cancel = req_m.reclaim(U256::from(first + 2), spec.clone(), u96(PRICE), u96(0));
    env.ok("reclaim", cancel).await;
    assert_eq!(env.deposit_of(requester).await, 0);
    env.assert_conservation().await;
}
