//! Tokens sent to the Marketplace by mistake: the DevToken refuses a plain transfer to it, and a
//! transferFrom into it by anyone but the Marketplace itself, since nothing there could ever give
//! such tokens back. Its own pulls (deposits, escrows) go through.

use alloy::primitives::U256;
use ecld_contracts::{ContractError, DevToken, Marketplace};

use crate::devnet::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_sent_to_the_marketplace_by_mistake_are_refused() {
    let (devnet, mut env) = start().await;
    let d = env.deployment;
    let amount = U256::from(1_000u64);
    let token_of = |p: &alloy::providers::DynProvider| DevToken::new(d.token, p.clone());
    let balance = |env: &crate::harness::Env| {
        let t = DevToken::new(d.token, env.deployer.provider.clone());
        async move { t.balanceOf(d.marketplace).call().await.unwrap() }
    };
    assert_eq!(token_of(&env.deployer.provider).escrow().call().await.unwrap(), d.marketplace);
    let before = balance(&env).await;

    // A plain transfer.
    let requester = env.requester.provider.clone();
    let err = env
        .exec("transfer to the Marketplace", token_of(&requester).transfer(d.marketplace, amount))
        .await;
    assert_eq!(
        err.unwrap_err(),
        ContractError::Token(DevToken::DevTokenErrors::DirectTransferRefused(
            DevToken::DirectTransferRefused { to: d.marketplace }
        ))
    );
    // A third party with an allowance moving the requester's tokens into it.
    env.ok("approve other", token_of(&requester).approve(env.other.address(), amount)).await;
    let other = env.other.provider.clone();
    let err = env
        .exec(
            "transferFrom into the Marketplace by a third party",
            token_of(&other).transferFrom(env.requester.address(), d.marketplace, amount),
        )
        .await;
    assert!(
        matches!(
            err,
            Err(ContractError::Token(DevToken::DevTokenErrors::DirectTransferRefused(_)))
        ),
        "{err:?}"
    );
    assert_eq!(balance(&env).await, before, "nothing reached the Marketplace");

    // Its own pull goes through: a deposit with an allowance.
    env.ok("approve the Marketplace", token_of(&requester).approve(d.marketplace, amount)).await;
    let market = Marketplace::new(d.marketplace, requester.clone());
    env.ok("deposit", market.deposit(amount)).await;
    assert_eq!(balance(&env).await, before + amount);
    // And a transfer to anyone else is untouched.
    env.ok(
        "transfer to another account",
        token_of(&requester).transfer(env.other.address(), amount),
    )
    .await;
    devnet.shutdown().await.expect("shutdown");
}
