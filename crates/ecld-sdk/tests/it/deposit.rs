//! Deposits: tokens paid into the Marketplace once, escrows drawn from them without a
//! permit, withdrawals, and the books with deposits in them.

use std::time::Duration;

use ecld_sdk::{Client, Error, TaskRequest, TaskState};
use ecld_types::{StatusCode, U256};

use crate::harness::{Env, OFFER_PRICE};

fn tokens(n: u64) -> U256 {
    U256::from(n)
}

/// The user's wallet and deposit.
async fn funds(client: &Client) -> (U256, U256) {
    (client.balance(None).await.unwrap(), client.deposit_balance(None).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_drawn_from_the_deposit_leaves_the_wallet_alone_and_refunds_to_the_wallet() {
    let env = Env::start().await;
    let client = env.client().await;
    let (wallet0, deposit0) = funds(&client).await;
    assert_eq!(deposit0, U256::ZERO);

    client.deposit(tokens(5_000)).await.unwrap();
    let (wallet1, deposit1) = funds(&client).await;
    assert_eq!(wallet1, wallet0 - tokens(5_000));
    assert_eq!(deposit1, tokens(5_000));
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.deposits, tokens(5_000), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");

    // An escrow of 3 000 for an offer at 1 000: all of it from the deposit.
    let mut req = TaskRequest::new(env.image, b"from the deposit".to_vec());
    req.price = Some(tokens(3_000));
    let s = client.submit(&req).await.unwrap();
    assert!(s.from_deposit, "a deposit of 5 000 covers an escrow of 3 000: {s:?}");
    assert_eq!(funds(&client).await, (wallet1, tokens(2_000)), "the wallet paid nothing");
    let ledger = client.ledger().await.unwrap();
    assert_eq!((ledger.held, ledger.deposits), (tokens(3_000), tokens(2_000)), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");

    // The node is paid its 1 000; the other 2 000 go back to the wallet, not the deposit.
    let node_before = client.balance(Some(env.node_account)).await.unwrap();
    env.execute(s.task.get(), StatusCode::Success, &env.enclave_signer).await;
    let info = client.wait(s.task, Duration::from_secs(10)).await.unwrap();
    assert_eq!(info.state, TaskState::Done { status: StatusCode::Success });
    assert_eq!(funds(&client).await, (wallet1 + tokens(2_000), tokens(2_000)));
    assert_eq!(
        client.balance(Some(env.node_account)).await.unwrap(),
        node_before + tokens(OFFER_PRICE)
    );
    assert!(client.ledger().await.unwrap().conserved());

    client.withdraw(tokens(2_000)).await.unwrap();
    assert_eq!(funds(&client).await, (wallet0 - tokens(OFFER_PRICE), U256::ZERO));
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.deposits, U256::ZERO);
    assert!(ledger.conserved(), "{ledger:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_more_than_the_deposit_is_refused_and_changes_nothing() {
    let env = Env::start().await;
    let client = env.client().await;
    client.deposit(tokens(1_500)).await.unwrap();
    let before = funds(&client).await;
    let ledger_before = client.ledger().await.unwrap();

    let err = client.withdraw(tokens(1_501)).await.unwrap_err();
    assert!(
        matches!(err, Error::InsufficientDeposit { balance, amount, .. }
            if balance == tokens(1_500) && amount == tokens(1_501)),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("cannot withdraw 1501")
            && message.contains("holds 1500")
            && message.contains("withdraw at most 1500"),
        "{message}"
    );
    assert_eq!(funds(&client).await, before);
    assert_eq!(client.ledger().await.unwrap(), ledger_before);

    // An account that never deposited, and has no tokens to deposit.
    let mut config = env.config.clone();
    let key = env.path("empty.key");
    std::fs::write(&key, alloy::signers::local::PrivateKeySigner::random().to_bytes().to_string())
        .unwrap();
    config.key = Some(key);
    let empty = Client::connect(&config).await.unwrap();
    let err = empty.withdraw(tokens(1)).await.unwrap_err();
    assert!(err.to_string().contains("nothing to withdraw"), "{err}");
    let err = empty.deposit(tokens(1)).await.unwrap_err();
    assert!(
        matches!(err, Error::InsufficientWallet { balance, .. } if balance == U256::ZERO),
        "{err:?}"
    );
    assert!(err.to_string().contains("deposit at most 0"), "{err}");
    assert_eq!(client.ledger().await.unwrap(), ledger_before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_short_of_the_escrow_is_used_up_and_the_wallet_pays_the_rest() {
    let env = Env::start().await;
    let client = env.client().await;
    client.deposit(tokens(400)).await.unwrap();
    let (wallet, _) = funds(&client).await;
    let s = client.submit(&TaskRequest::new(env.image, b"x".to_vec())).await.unwrap();
    assert!(!s.from_deposit, "400 does not cover {OFFER_PRICE}");
    assert_eq!(s.price, tokens(OFFER_PRICE));
    assert_eq!(funds(&client).await, (wallet - tokens(OFFER_PRICE - 400), U256::ZERO));
    assert!(client.ledger().await.unwrap().conserved());
    env.stop().await;
}

/// Regression guard for the deposit path under concurrency: submissions that each count on
/// the deposit must not count on the same tokens (the later ones would find no allowance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_drawing_on_one_deposit_all_succeed() {
    let env = Env::start().await;
    let client = env.client().await;
    client.deposit(tokens(5 * OFFER_PRICE)).await.unwrap();
    let (wallet0, deposit0) = funds(&client).await;
    let mut submissions = tokio::task::JoinSet::new();
    for i in 0..12 {
        let client = client.clone();
        let req = TaskRequest::new(env.image, format!("task {i}").into_bytes());
        submissions.spawn(async move { (i, client.submit(&req).await) });
    }
    let mut from_deposit = 0u64;
    while let Some(joined) = submissions.join_next().await {
        let (i, r) = joined.unwrap();
        let s = r.unwrap_or_else(|e| panic!("submission {i} failed: {e}"));
        from_deposit += u64::from(s.from_deposit);
    }
    assert!((1..=5).contains(&from_deposit), "{from_deposit} escrows wholly from a deposit of 5");
    let (wallet, deposit) = funds(&client).await;
    assert_eq!(wallet + deposit, wallet0 + deposit0 - tokens(12 * OFFER_PRICE));
    assert!(client.tasks(true).await.unwrap().len() == 12);
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.held, tokens(12 * OFFER_PRICE), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");
    env.stop().await;
}
