//! Many tasks in one transaction (`submitTasks`), their escrows drawn from the deposit.

use std::time::Duration;

use alloy::providers::Provider;
use ecld_sdk::{Client, Error, MAX_BATCH, OfferId, TaskRequest, TaskState};
use ecld_types::{Address, StatusCode, U256};

use crate::harness::{Env, OFFER_PRICE};

fn tokens(n: u64) -> U256 {
    U256::from(n)
}

/// Transactions `account` has sent.
async fn sent(client: &Client, account: Address) -> u64 {
    client.provider().get_transaction_count(account).await.unwrap()
}

fn requests(env: &Env, n: usize) -> Vec<TaskRequest> {
    (0..n).map(|i| TaskRequest::new(env.image, format!("task {i}").into_bytes())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_go_in_one_transaction_in_order_and_all_settle_and_verify() {
    let env = Env::start().await;
    let client = env.client().await;
    let me = client.account().unwrap();
    let wallet0 = client.balance(None).await.unwrap();
    client.deposit(tokens(8 * OFFER_PRICE)).await.unwrap();
    let nonce = sent(&client, me).await;

    let reqs = requests(&env, 8);
    let subs = client.submit_many(&reqs).await.unwrap();
    assert_eq!(subs.len(), 8);
    assert_eq!(sent(&client, me).await, nonce + 1, "one transaction for the eight tasks");
    let tx = subs[0].tx;
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(s.task.get(), i as u64 + 1, "consecutive ids in request order: {subs:?}");
        assert_eq!((s.tx, s.block), (tx, subs[0].block), "task {i} in another transaction");
        assert!(s.from_deposit, "{s:?}");
        assert_eq!(s.price, tokens(OFFER_PRICE));
        let info = client.task(s.task).await.unwrap();
        assert_eq!(info.input_cid, s.input_cid, "the events were matched to the requests");
        assert_eq!(info.input_hash, s.input_hash);
        assert_eq!(info.block, s.block);
    }
    // The offer has 4 slots: the first 4 tasks take them, the other 4 wait open at its price.
    let offer = OfferId::new(1);
    let offers: Vec<_> = subs.iter().map(|s| s.offer).collect();
    assert_eq!(offers, [offer, offer, offer, offer, None, None, None, None]);
    let (wallet, deposit) =
        (client.balance(None).await.unwrap(), client.deposit_balance(None).await.unwrap());
    assert_eq!((wallet, deposit), (wallet0 - tokens(8 * OFFER_PRICE), U256::ZERO));

    for s in &subs[..4] {
        env.execute(s.task.get(), StatusCode::Success, &env.enclave_signer).await;
    }
    for s in &subs[4..] {
        env.claim(s.task.get()).await;
        env.execute(s.task.get(), StatusCode::Success, &env.enclave_signer).await;
    }
    for (s, req) in subs.iter().zip(&reqs) {
        let info = client.wait(s.task, Duration::from_secs(10)).await.unwrap();
        assert_eq!(info.state, TaskState::Done { status: StatusCode::Success });
        let fetched = client.fetch(s.task).await.unwrap();
        assert_eq!(fetched.verified.signer, env.enclave_signer.address());
        assert_eq!(fetched.output.unwrap().stdout, req.input.to_ascii_uppercase());
    }
    let ledger = client.ledger().await.unwrap();
    assert_eq!((ledger.held, ledger.deposits), (U256::ZERO, U256::ZERO), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");
    env.stop().await;
}

/// `submitTasks` has no permit: the tasks the deposit covers go in one batch, the rest one by
/// one with permits, as `submit` would send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_short_of_the_sum_batches_the_tasks_it_covers_and_submits_the_rest_one_by_one() {
    let env = Env::start().await;
    let client = env.client().await;
    let me = client.account().unwrap();
    client.deposit(tokens(3 * OFFER_PRICE + 500)).await.unwrap();
    let wallet = client.balance(None).await.unwrap();
    let nonce = sent(&client, me).await;

    let subs = client.submit_many(&requests(&env, 5)).await.unwrap();
    assert_eq!(subs.iter().map(|s| s.task.get()).collect::<Vec<_>>(), [1, 2, 3, 4, 5], "{subs:?}");
    assert_eq!(sent(&client, me).await, nonce + 3, "one batch of 3, then 2 alone");
    assert!(subs[..3].iter().all(|s| s.tx == subs[0].tx && s.from_deposit), "{subs:?}");
    assert!(subs[3..].iter().all(|s| s.tx != subs[0].tx && !s.from_deposit), "{subs:?}");
    assert_ne!(subs[3].tx, subs[4].tx);
    // The batch took 3 of the offer's 4 slots; the fourth task the last, the fifth waits open.
    assert_eq!(subs[3].offer, OfferId::new(1));
    assert_eq!(subs[4].offer, None);
    // The 500 left in the deposit paid part of the fourth escrow.
    assert_eq!(client.deposit_balance(None).await.unwrap(), U256::ZERO);
    assert_eq!(client.balance(None).await.unwrap(), wallet - tokens(2 * OFFER_PRICE - 500));
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.held, tokens(5 * OFFER_PRICE), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_for_an_empty_slice_nor_for_tasks_the_funds_do_not_cover() {
    let env = Env::start().await;
    let client = env.client().await;
    let me = client.account().unwrap();
    let nonce = sent(&client, me).await;
    assert_eq!(client.submit_many(&[]).await.unwrap(), Vec::new());
    assert_eq!(sent(&client, me).await, nonce);

    // An account without tokens: refused before any transaction.
    let mut config = env.config.clone();
    let key = env.path("empty.key");
    std::fs::write(&key, alloy::signers::local::PrivateKeySigner::random().to_bytes().to_string())
        .unwrap();
    config.key = Some(key);
    let empty = Client::connect(&config).await.unwrap();
    let err = empty.submit_many(&requests(&env, 3)).await.unwrap_err();
    assert!(
        matches!(&err, Error::InsufficientFunds { balance, price, .. }
            if balance == "0" && *price == (3 * OFFER_PRICE).to_string()),
        "{err:?}"
    );
    assert_eq!(sent(&empty, empty.account().unwrap()).await, 0);
    assert!(client.tasks(false).await.unwrap().is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tasks_than_a_batch_holds_go_in_several_transactions() {
    let env = Env::start().await;
    let client = env.client().await;
    let me = client.account().unwrap();
    let n = MAX_BATCH + 6;
    client.deposit(tokens(n as u64 * OFFER_PRICE)).await.unwrap();
    let nonce = sent(&client, me).await;

    let subs = client.submit_many(&requests(&env, n)).await.unwrap();
    assert_eq!(sent(&client, me).await, nonce + 2);
    assert_eq!(
        subs.iter().map(|s| s.task.get()).collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>()
    );
    let (first, second) = subs.split_at(MAX_BATCH);
    assert!(first.iter().all(|s| s.tx == first[0].tx), "{first:?}");
    assert!(second.iter().all(|s| s.tx == second[0].tx), "{second:?}");
    assert_ne!(first[0].tx, second[0].tx);
    assert!(subs.iter().all(|s| s.from_deposit));
    // The second batch reads the offer full from the chain.
    assert_eq!(subs.iter().filter(|s| s.offer.is_some()).count(), 4);
    assert_eq!(client.deposit_balance(None).await.unwrap(), U256::ZERO);
    assert!(client.ledger().await.unwrap().conserved());
    env.stop().await;
}
