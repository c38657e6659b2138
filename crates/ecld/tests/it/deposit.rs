//! `ecld deposit`, `ecld withdraw` and `ecld balance` on a whole stack: a task paid from the
//! deposit leaves the wallet alone, a withdrawal of too much changes nothing and says why,
//! and the token books balance with deposits in them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use ecld_sdk::{Client, ClientConfig};
use ecld_types::U256;
use serde_json::Value;

use crate::e2e_stack::Stack;

/// The offer price of the example images on `ecld up` (1e15 base units).
const PRICE: u128 = 1_000_000_000_000_000;

fn amount(v: &Value) -> U256 {
    let text = v.as_str().unwrap_or_else(|| panic!("not an amount: {v}"));
    text.parse().unwrap_or_else(|e| panic!("not an amount: {text}: {e}"))
}

/// Wallet and deposit from `ecld balance --json`.
fn funds(stack: &Stack) -> (U256, U256) {
    let b = stack.json(&["balance"], 0);
    (amount(&b["wallet"]), amount(&b["deposit"]))
}

fn tokens(n: u128) -> U256 {
    U256::from(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_paid_from_the_deposit_leaves_the_wallet_alone_and_withdraw_takes_the_rest() {
    let stack = Stack::start();
    let client = Client::connect(&ClientConfig::load(&stack.config()).unwrap()).await.unwrap();
    let (wallet0, deposit0) = funds(&stack);
    assert_eq!(deposit0, U256::ZERO);

    let three = (3 * PRICE).to_string();
    let moved = stack.json(&["deposit", &three], 0);
    assert_eq!(amount(&moved["amount"]), tokens(3 * PRICE), "{moved}");
    assert_eq!(amount(&moved["deposit"]), tokens(3 * PRICE), "{moved}");
    assert_eq!(amount(&moved["wallet"]), wallet0 - tokens(3 * PRICE), "{moved}");
    assert_eq!(funds(&stack), (wallet0 - tokens(3 * PRICE), tokens(3 * PRICE)));
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.deposits, tokens(3 * PRICE), "{ledger:?}");
    assert!(ledger.conserved(), "{ledger:?}");

    // The escrow (the offer's price) comes from the deposit; the wallet does not move, and
    // with the whole escrow paid to the node nothing comes back.
    let submitted = stack.json(&["task", "submit", "stats", "--input-text", "3 1 4 1 5"], 0);
    assert_eq!(submitted["from_deposit"], true, "{submitted}");
    assert_eq!(funds(&stack), (wallet0 - tokens(3 * PRICE), tokens(2 * PRICE)));
    let id = submitted["task"].as_u64().unwrap().to_string();
    let watched = stack.json(&["task", "watch", &id, "--timeout-s", "120"], 0);
    assert_eq!(watched["state"], "done", "{watched}");
    assert_eq!(funds(&stack), (wallet0 - tokens(3 * PRICE), tokens(2 * PRICE)));
    let ledger = client.ledger().await.unwrap();
    assert!(ledger.conserved(), "{ledger:?}");

    // More than the deposit: refused before any transaction, both amounts named.
    let five = (5 * PRICE).to_string();
    let out = stack.run(&["withdraw", &five]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        stderr.contains(&format!("cannot withdraw {five}"))
            && stderr.contains(&format!("holds {}", 2 * PRICE))
            && stderr.contains(&format!("withdraw at most {}", 2 * PRICE)),
        "{stderr}"
    );
    let err = stack.json(&["withdraw", &five], 1);
    assert!(err["error"]["message"].as_str().unwrap().contains("withdraw at most"), "{err}");
    assert_eq!(funds(&stack), (wallet0 - tokens(3 * PRICE), tokens(2 * PRICE)));
    assert_eq!(client.ledger().await.unwrap(), ledger, "a refused withdrawal changed the books");

    // Nothing is not an amount.
    let out = stack.run(&["withdraw", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1"));

    let two = (2 * PRICE).to_string();
    let moved = stack.json(&["withdraw", &two], 0);
    assert_eq!(amount(&moved["deposit"]), U256::ZERO, "{moved}");
    assert_eq!(funds(&stack), (wallet0 - tokens(PRICE), U256::ZERO));
    let ledger = client.ledger().await.unwrap();
    assert_eq!(ledger.deposits, U256::ZERO);
    assert!(ledger.conserved(), "{ledger:?}");

    let text = stack.run(&["balance"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("wallet") && text.contains("deposit  0"), "{text}");
}

#[test]
fn deposit_withdraw_and_balance_explain_themselves() {
    let help = |args: &[&str]| {
        let out =
            std::process::Command::new(crate::e2e_stack::ecld_bin()).args(args).output().unwrap();
        assert!(out.status.success(), "ecld {args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let deposit = help(&["deposit", "--help"]);
    assert!(deposit.contains("Examples:") && deposit.contains("escrow"), "{deposit}");
    assert!(deposit.contains("base units"), "{deposit}");
    let withdraw = help(&["withdraw", "--help"]);
    assert!(withdraw.contains("Examples:") && withdraw.contains("wallet"), "{withdraw}");
    let balance = help(&["balance", "--help"]);
    assert!(balance.contains("--account"), "{balance}");
    let top = help(&["--help"]);
    for cmd in ["deposit", "withdraw", "balance"] {
        assert!(top.lines().any(|l| l.trim_start().starts_with(cmd)), "{cmd} missing:\n{top}");
    }
}
