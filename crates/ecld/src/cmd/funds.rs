//! `ecld balance`, `ecld deposit` and `ecld withdraw`: the account's tokens, in its wallet
//! and in its deposit in the Marketplace.

use ecld_sdk::Client;
use ecld_types::{Address, B256, U256};
use serde::Serialize;

use super::connect::ConnectArgs;
use crate::output;

/// Arguments of `ecld balance`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld balance                      your wallet and your deposit
  ecld balance --account 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
  ecld balance --json               {\"account\":…,\"wallet\":…,\"deposit\":…}

Amounts are token base units, as task prices are. The wallet pays escrows the deposit does
not cover (with a permit); refunds and node pay go to wallets. See `ecld deposit --help`.")]
pub(crate) struct BalanceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Another account to look at (default: yours, from ECLD_KEY or the configuration).
    #[arg(long, value_name = "ADDRESS")]
    account: Option<Address>,
}

/// Arguments of `ecld deposit`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld deposit 5000                 move 5000 base units from your wallet into your deposit
  ecld task run stats --input notes.txt    its escrow now comes from the deposit
  ecld balance                      what is left in the wallet and in the deposit
  ecld withdraw 2000                take part of it back

A task's escrow (its maximum price) is drawn from your deposit first: with enough deposited,
a submission needs no permit and costs less gas. When the deposit holds less than the escrow,
all of it is used and the rest comes from your wallet, as without a deposit. Refunds and
unused escrow go back to your wallet, not to the deposit. The deposit is yours alone: only
you can withdraw it, at any time (`ecld withdraw`). One transaction, with a permit signed
by your key.")]
pub(crate) struct DepositArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How much to deposit, in token base units (like `--price` of `ecld task submit`;
    /// decimal, or hex with 0x).
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    amount: U256,
}

/// Arguments of `ecld withdraw`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld withdraw 2000                move 2000 base units of your deposit back to your wallet
  ecld withdraw \"$(ecld balance --json | jq -r .deposit)\"    take everything back
  ecld withdraw 2000 --json         {\"account\",\"amount\",\"tx\",\"wallet\",\"deposit\"}

Asking for more than the deposit holds changes nothing and says how much it holds. Your
submissions still in flight that counted on the tokens pay with a permit instead.")]
pub(crate) struct WithdrawArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How much to take back, in token base units (like `--price` of `ecld task submit`;
    /// decimal, or hex with 0x).
    #[arg(value_name = "AMOUNT", value_parser = parse_amount)]
    amount: U256,
}

/// A positive amount of token base units.
fn parse_amount(s: &str) -> Result<U256, String> {
    let amount = s.parse::<U256>().map_err(|e| {
        format!("`{s}` is not an amount of token base units ({e}); give a whole number, e.g. 5000")
    })?;
    if amount.is_zero() {
        return Err("the amount is 0; give at least 1 base unit".to_owned());
    }
    Ok(amount)
}

/// An account's tokens.
#[derive(Debug, Serialize)]
struct Funds {
    account: Address,
    /// Token base units in the account's wallet.
    wallet: U256,
    /// Token base units of its deposit in the Marketplace.
    deposit: U256,
}

impl Funds {
    async fn of(client: &Client, account: Address) -> anyhow::Result<Self> {
        let (wallet, deposit) =
            tokio::try_join!(client.balance(Some(account)), client.deposit_balance(Some(account)))?;
        Ok(Self { account, wallet, deposit })
    }

    fn render(&self) -> String {
        format!(
            "account {}\n  wallet   {}\n  deposit  {}  (in the Marketplace; tasks draw their escrow from it first)",
            self.account, self.wallet, self.deposit
        )
    }
}

/// What `ecld deposit` and `ecld withdraw` did, and the balances after it.
#[derive(Debug, Serialize)]
struct Moved {
    /// Token base units moved.
    amount: U256,
    tx: B256,
    #[serde(flatten)]
    after: Funds,
}

fn me(client: &Client) -> anyhow::Result<Address> {
    client
        .account()
        .ok_or_else(|| ecld_sdk::Error::NoKey { what: "Ethereum key (ECLD_KEY)" }.into())
}

/// Runs `ecld balance`.
pub(crate) async fn run_balance(args: BalanceArgs) -> anyhow::Result<()> {
    let client = args.connect.connect().await?;
    let account = match args.account {
        Some(a) => a,
        None => me(&client)?,
    };
    output::emit(&Funds::of(&client, account).await?, Funds::render)
}

/// Runs `ecld deposit`.
pub(crate) async fn run_deposit(args: DepositArgs) -> anyhow::Result<()> {
    let client = args.connect.connect().await?;
    let account = me(&client)?;
    let tx = client.deposit(args.amount).await?;
    let moved = Moved { amount: args.amount, tx, after: Funds::of(&client, account).await? };
    output::emit(&moved, |m| format!("deposited {} (tx {})\n{}", m.amount, m.tx, m.after.render()))
}

/// Runs `ecld withdraw`.
pub(crate) async fn run_withdraw(args: WithdrawArgs) -> anyhow::Result<()> {
    let client = args.connect.connect().await?;
    let account = me(&client)?;
    let tx = client.withdraw(args.amount).await?;
    let moved = Moved { amount: args.amount, tx, after: Funds::of(&client, account).await? };
    output::emit(&moved, |m| {
        format!("withdrew {} to the wallet (tx {})\n{}", m.amount, m.tx, m.after.render())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_amount;

    #[test]
    fn amounts_are_positive_whole_base_units() {
        assert_eq!(parse_amount("5000").unwrap(), ecld_types::U256::from(5_000u64));
        assert_eq!(parse_amount("0x10").unwrap(), ecld_types::U256::from(16u64));
        assert!(parse_amount("0").unwrap_err().contains("at least 1"));
        assert!(parse_amount("1.5").unwrap_err().contains("whole number"));
        assert!(parse_amount("-3").is_err());
    }
}
