//! The connection to a stack, and every step of the data flow.

mod batch;
mod chain;
mod deposit;
mod publish;
mod tasks;

use std::{path::Path, sync::Arc, time::Duration};

use alloy::{
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use ecld_contracts::Deployment;
use ecld_crypto::AgeIdentity;
use ecld_store::KuboClient;
use ecld_types::{Address, U256};

pub use batch::MAX_BATCH;
pub use chain::{Image, Ledger, Offer};
pub use publish::PublishRequest;
pub use tasks::{Fetched, OfferChoice, Submitted, TaskInfo, TaskRequest, TaskResult};

use crate::{ClientConfig, Error};

/// How often task state is polled while waiting. The local devnet mines on arrival, so a
/// short interval is what keeps end-to-end latency low.
const DEFAULT_POLL: Duration = Duration::from_millis(10);

/// A connection to an ecld stack: chain, contracts, store, and (optionally) the user's keys.
///
/// Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    provider: DynProvider,
    rpc_url: String,
    store_url: String,
    cas_url: Option<String>,
    cas_token: Option<String>,
    deployment: Deployment,
    store: KuboClient,
    wallet: Option<PrivateKeySigner>,
    identity: Option<AgeIdentity>,
    /// The token's name, for EIP-2612 permits (read once).
    token_name: String,
    poll: Duration,
    images: std::sync::Mutex<std::collections::HashMap<ecld_types::ImageId, Image>>,
    /// Told the bytes of each upload and download as they go ([`Client::on_transfer`]).
    transfer: std::sync::Mutex<Option<Arc<dyn ecld_store::Progress>>>,
    /// Held while a transaction takes its nonce and is handed to the chain, so that the
    /// client's concurrent transactions take consecutive nonces.
    send_lock: tokio::sync::Mutex<()>,
    /// Held from reading the permit nonce until the submission that uses the permit is
    /// mined, so that the client's concurrent submissions never sign the same permit nonce.
    permit_lock: tokio::sync::Mutex<()>,
    /// Tokens of the account's deposit that this client's submissions in flight count on
    /// (each drawing its whole escrow from the deposit, without a permit).
    deposit_reserved: Arc<std::sync::Mutex<U256>>,
    /// Held from reading the deposit until the escrow is reserved, and while a mined
    /// submission gives its reservation back, so that a read never misses a draw that is
    /// neither reserved nor mined.
    deposit_turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("rpc", &self.inner.rpc_url)
            .field("store", &self.inner.store_url)
            .field("deployment", &self.inner.deployment)
            .field("account", &self.inner.wallet.as_ref().map(PrivateKeySigner::address))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the stack `config` describes, loading the keys it names. Checks that the
    /// chain is the one the deployment file was written for.
    ///
    /// # Errors
    /// [`Error::ConfigRead`]/[`Error::ConfigParse`] for a bad deployment file,
    /// [`Error::Key`] for a bad key file, [`Error::Chain`] when the chain does not answer,
    /// [`crate::VerifyError::WrongChain`] for a deployment of another chain.
    pub async fn connect(config: &ClientConfig) -> Result<Self, Error> {
        let deployment = load_deployment(&config.deployment)?;
        let wallet = match &config.key {
            Some(path) => Some(load_wallet(path)?),
            None => None,
        };
        let identity = match &config.identity {
            Some(path) => Some(
                AgeIdentity::load(path)
                    .map_err(|e| Error::Key { path: path.clone(), reason: e.to_string() })?,
            ),
            None => None,
        };
        Self::with_parts(config, deployment, wallet, identity).await
    }

    /// Connects with keys given directly (for applications that hold keys themselves).
    ///
    /// # Errors
    /// As [`Client::connect`].
    pub async fn with_parts(
        config: &ClientConfig,
        deployment: Deployment,
        wallet: Option<PrivateKeySigner>,
        identity: Option<AgeIdentity>,
    ) -> Result<Self, Error> {
        let url: alloy::transports::http::reqwest::Url = config.rpc.parse().map_err(|e| {
            Error::Chain { url: config.rpc.clone(), reason: format!("not a URL: {e}") }
        })?;
        let provider = match &wallet {
            Some(w) => ProviderBuilder::new()
                .disable_recommended_fillers()
                .with_gas_estimation()
                // Not the cached manager: a send refused at gas estimation would use up a
                // cached nonce and every later transaction would wait forever behind the gap.
                .with_simple_nonce_management()
                .with_chain_id(deployment.chain_id)
                .wallet(w.clone())
                .connect_http(url)
                .erased(),
            None => ProviderBuilder::new().connect_http(url).erased(),
        };
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|e| Error::Chain { url: config.rpc.clone(), reason: e.to_string() })?;
        if chain_id != deployment.chain_id {
            return Err(crate::VerifyError::WrongChain {
                expected: deployment.chain_id,
                actual: chain_id,
            }
            .into());
        }
        let store = KuboClient::new(&config.store)
            .map_err(|e| Error::Store { url: config.store.clone(), reason: e.to_string() })?;
        let cas_token = match &config.cas_token {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| Error::Key { path: path.clone(), reason: e.to_string() })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let token_name = ecld_contracts::IERC20Permit::new(deployment.token, &provider)
            .name()
            .call()
            .await
            .map_err(|e| Error::Chain {
                url: config.rpc.clone(),
                reason: format!("reading the token name: {e}"),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                token_name,
                provider,
                rpc_url: config.rpc.clone(),
                store_url: config.store.clone(),
                cas_url: config.cas.clone(),
                cas_token,
                deployment,
                store,
                wallet,
                identity,
                poll: DEFAULT_POLL,
                images: std::sync::Mutex::default(),
                transfer: std::sync::Mutex::default(),
                send_lock: tokio::sync::Mutex::default(),
                permit_lock: tokio::sync::Mutex::default(),
                deposit_reserved: Arc::default(),
                deposit_turn: tokio::sync::Mutex::default(),
            }),
        })
    }

    /// The paying account, if a key is loaded.
    pub fn account(&self) -> Option<Address> {
        self.inner.wallet.as_ref().map(PrivateKeySigner::address)
    }

    /// The age recipient (`age1…`) results are encrypted to, if an identity is loaded.
    pub fn recipient(&self) -> Option<String> {
        self.inner.identity.as_ref().map(|i| i.recipient().to_string())
    }

    /// The contracts this client talks to.
    pub fn deployment(&self) -> &Deployment {
        &self.inner.deployment
    }

    /// The chain's JSON-RPC URL.
    pub fn rpc_url(&self) -> &str {
        &self.inner.rpc_url
    }

    /// The store's URL.
    pub fn store_url(&self) -> &str {
        &self.inner.store_url
    }

    /// The underlying chain provider (with the user's wallet, if any).
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    /// The store client.
    pub fn store(&self) -> &KuboClient {
        &self.inner.store
    }

    /// The token balance of `account` (default: the user's).
    ///
    /// # Errors
    /// [`Error::NoKey`] without an account, [`Error::Chain`] when the call fails.
    pub async fn balance(&self, account: Option<Address>) -> Result<U256, Error> {
        let account = match account {
            Some(a) => a,
            None => self.require_wallet()?.address(),
        };
        self.token_balance(account).await
    }

    fn require_wallet(&self) -> Result<&PrivateKeySigner, Error> {
        self.inner.wallet.as_ref().ok_or(Error::NoKey { what: "Ethereum key (ECLD_KEY)" })
    }

    fn require_identity(&self) -> Result<&AgeIdentity, Error> {
        self.inner.identity.as_ref().ok_or(Error::NoKey { what: "age identity (ECLD_IDENTITY)" })
    }

    fn chain_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Chain { url: self.inner.rpc_url.clone(), reason: e.to_string() }
    }

    fn store_err(&self, e: impl std::fmt::Display) -> Error {
        Error::Store { url: self.inner.store_url.clone(), reason: e.to_string() }
    }
}

fn load_deployment(path: &Path) -> Result<Deployment, Error> {
    Deployment::load(path).map_err(|e| Error::ConfigParse {
        path: path.to_owned(),
        reason: format!("{e}; the deployment file is written by `ecld up`"),
    })
}

/// Reads an Ethereum private key file (hex, optionally `0x`-prefixed).
///
/// # Errors
/// [`Error::Key`], never quoting the file's content.
pub fn load_wallet(path: &Path) -> Result<PrivateKeySigner, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key { path: path.to_owned(), reason: e.to_string() })?;
    text.trim().parse::<PrivateKeySigner>().map_err(|_| Error::Key {
        path: path.to_owned(),
        reason: "not a hex secp256k1 private key".to_owned(),
    })
}
