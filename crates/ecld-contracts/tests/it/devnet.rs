//! Each scenario on its own in-process ecld-devnet.

use crate::{harness::Env, scenarios};

pub(crate) async fn start() -> (ecld_devnet::DevnetHandle, Env) {
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig::ephemeral()).await.expect("devnet");
    let env = Env::new(&devnet.url()).await;
    (devnet, env)
}

macro_rules! on_devnet {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (devnet, mut env) = start().await;
            scenarios::$name(&mut env).await;
            devnet.shutdown().await.expect("shutdown");
        }
    )*};
}

on_devnet!(
    success_pays_node,
    refund_classes_refund_requester,
    input_mismatch_pays_the_node,
    unknown_status_codes_revert,
    proofs_bound_to_signer_chain_contract_and_task,
    proof_binds_spec_limits_and_result_cid,
    double_submit_and_spec_mismatch_revert,
    claim_of_full_offer_reverts,
    release_then_reclaim_by_another_node,
    one_wei_offer_cannot_strand_a_task,
    requester_cancels_an_open_task,
    revoked_image_refuses_claims_and_proofs_and_refunds_at_once,
    fit_checks_refuse_unfit_offers,
    input_cid_must_match_the_spec,
    offers_update_and_withdraw,
    submit_without_permit_and_holder_checks,
    deposit_funded_task_settles_and_pays_the_node,
    batch_of_three_settles_and_pays_the_node_once,
    batch_with_one_bad_proof_changes_nothing,
    batch_of_three_tasks_submitted_at_once_each_settle,
    batch_of_tasks_with_one_refused_changes_nothing,
    withdrawing_more_than_the_deposit_reverts,
    claim_after_deadline_reverts,
    reclaim_refunds_after_deadline_only,
    ecld_crypto_proof_settles_on_chain,
);
