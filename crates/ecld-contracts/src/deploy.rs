//! Deploying the contracts and the `Deployment` file the services read.

use std::path::Path;

use alloy::{
    network::{Ethereum, ReceiptResponse, TransactionBuilder},
    primitives::{Address, Bytes, U256},
    providers::Provider,
    rpc::types::TransactionRequest,
    sol_types::SolConstructor,
};
use serde::{Deserialize, Serialize};

use crate::bindings::{DevToken, ImageRegistry, Marketplace};

/// Where the contracts of one chain live. Saved as JSON (`deployment.json`) by whoever
/// deploys, and read by the node, the SDK and the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// EIP-155 chain id the contracts were deployed on.
    pub chain_id: u64,
    /// The ERC-20 the Marketplace escrows.
    pub token: Address,
    /// The ImageRegistry.
    pub registry: Address,
    /// The Marketplace.
    pub marketplace: Address,
    /// Block of the first deployment transaction: scan logs from here.
    pub deploy_block: u64,
}

impl Deployment {
    /// Reads a deployment file written by [`Deployment::save`].
    pub fn load(path: &Path) -> Result<Self, DeployError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| DeployError::Io { path: path.display().to_string(), source })?;
        serde_json::from_str(&text)
            .map_err(|source| DeployError::Parse { path: path.display().to_string(), source })
    }

    /// Writes the deployment as pretty JSON, creating parent directories.
    pub fn save(&self, path: &Path) -> Result<(), DeployError> {
        let io = |source| DeployError::Io { path: path.display().to_string(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|source| DeployError::Parse { path: path.display().to_string(), source })?;
        text.push('\n');
        std::fs::write(path, text).map_err(io)
    }
}

/// What [`deploy_all`] deploys.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Use this existing ERC-20 (it must implement EIP-2612 for one-transaction submits);
    /// `None` deploys a fresh [`DevToken`].
    pub token: Option<Address>,
    /// Accounts the DevToken mints to at deployment (ignored with `token`).
    pub dev_accounts: Vec<Address>,
    /// Amount minted to each dev account, in the token's smallest unit.
    pub mint_each: U256,
}

impl DeployOptions {
    /// A fresh DevToken minting `mint_each` to each of `dev_accounts`.
    pub fn dev(dev_accounts: Vec<Address>, mint_each: U256) -> Self {
        Self { token: None, dev_accounts, mint_each }
    }
}

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The node refused or failed a call; check the RPC URL and that the sender is funded.
    #[error(
        "deploying {what} failed: {source}; check the RPC endpoint and that the sender account is funded"
    )]
    Rpc {
        /// Which step.
        what: &'static str,
        /// The provider's error.
        #[source]
        source: alloy::transports::TransportError,
    },
    /// The Marketplace is not where the DevToken was told it would be (another transaction
    /// of the deployer's account came in between).
    #[error(
        "the Marketplace was created at {actual}, not at {expected} where the DevToken expects it; another transaction of the deployer's account came in between: deploy again from an account nothing else uses"
    )]
    Misplaced {
        /// Where the DevToken expects it.
        expected: Address,
        /// Where it is.
        actual: Address,
    },
    /// The deployment transaction was mined but failed or created no contract.
    #[error(
        "deploying {what} did not create a contract (transaction {tx} reverted); check the constructor arguments"
    )]
    Reverted {
        /// Which contract.
        what: &'static str,
        /// The transaction hash.
        tx: alloy::primitives::B256,
    },
    /// Waiting for a receipt failed.
    #[error("waiting for the {what} deployment receipt failed: {source}")]
    Receipt {
        /// Which contract.
        what: &'static str,
        /// The error.
        #[source]
        source: alloy::providers::PendingTransactionError,
    },
    /// The deployment file could not be read or written.
    #[error("deployment file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The deployment file is not valid JSON of a Deployment.
    #[error(
        "deployment file {path} is not a valid deployment (chainId, token, registry, marketplace, deployBlock): {source}"
    )]
    Parse {
        /// The file.
        path: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Deploys the token (unless given), the ImageRegistry and the Marketplace, from the
/// provider's default sender (a provider with a wallet), one transaction after another.
pub async fn deploy_all<P: Provider<Ethereum>>(
    provider: &P,
    options: &DeployOptions,
) -> Result<Deployment, DeployError> {
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(|source| DeployError::Rpc { what: "chain id", source })?;
    let (registry, first_block, deployer) =
        create(provider, "ImageRegistry", ImageRegistry::BYTECODE.clone()).await?;
    let mut predicted = None;
    let token = match options.token {
        Some(token) => token,
        None => {
            // The DevToken refuses plain transfers to the Marketplace, so it is told the
            // Marketplace's address before it exists: the deployer's transaction after the
            // token's creates it.
            let nonce = provider
                .get_transaction_count(deployer)
                .await
                .map_err(|source| DeployError::Rpc { what: "deployer nonce", source })?;
            let escrow = deployer.create(nonce + 1);
            predicted = Some(escrow);
            let args = DevToken::constructorCall {
                name_: "ecld dev token".into(),
                symbol_: "ECLD".into(),
                holders: options.dev_accounts.clone(),
                amountEach: options.mint_each,
                escrow_: escrow,
            };
            let code = [DevToken::BYTECODE.as_ref(), &args.abi_encode()].concat();
            create(provider, "DevToken", code.into()).await?.0
        }
    };
    let args = Marketplace::constructorCall { token_: token, registry_: registry };
    let code = [Marketplace::BYTECODE.as_ref(), &args.abi_encode()].concat();
    let (marketplace, _, _) = create(provider, "Marketplace", code.into()).await?;
    if let Some(expected) = predicted
        && expected != marketplace
    {
        return Err(DeployError::Misplaced { expected, actual: marketplace });
    }
    Ok(Deployment { chain_id, token, registry, marketplace, deploy_block: first_block })
}

/// Sends a creation transaction; the new contract, its block and the sender.
async fn create<P: Provider<Ethereum>>(
    provider: &P,
    what: &'static str,
    code: Bytes,
) -> Result<(Address, u64, Address), DeployError> {
    let tx = TransactionRequest::default().with_deploy_code(code);
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|source| DeployError::Rpc { what, source })?
        .get_receipt()
        .await
        .map_err(|source| DeployError::Receipt { what, source })?;
    match (receipt.status(), receipt.contract_address()) {
        (true, Some(address)) => {
            Ok((address, receipt.block_number().unwrap_or_default(), receipt.from))
        }
        _ => Err(DeployError::Reverted { what, tx: receipt.transaction_hash() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/deployment.json");
        let d = Deployment {
            chain_id: 31337,
            token: Address::repeat_byte(1),
            registry: Address::repeat_byte(2),
            marketplace: Address::repeat_byte(3),
            deploy_block: 7,
        };
        d.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"deployBlock\": 7"), "{text}");
        assert_eq!(Deployment::load(&path).unwrap(), d);
    }

    #[test]
    fn bad_deployment_file_names_the_file_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployment.json");
        std::fs::write(&path, "{\"chainId\": 1}").unwrap();
        let err = Deployment::load(&path).unwrap_err().to_string();
        assert!(err.contains("deployment.json") && err.contains("marketplace"), "{err}");
        let missing = Deployment::load(&dir.path().join("absent.json")).unwrap_err();
        assert!(matches!(missing, DeployError::Io { .. }), "{missing}");
    }
}
