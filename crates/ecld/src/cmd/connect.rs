//! How user commands find the stack: `--config`, `ECLD_*` variables, or the file `ecld up`
//! wrote. Shared by `ecld task`, `ecld image` and `ecld offers`.

use std::path::PathBuf;

use ecld_sdk::{Client, ClientConfig};

/// Where the stack is. Every flag has an environment variable; without any, the file
/// `ecld up` wrote (`./.ecld/client.toml` or `~/.local/share/ecld/client.toml`) is used.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// Client configuration file written by `ecld up`.
    #[arg(long, env = "ECLD_CONFIG", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// Chain JSON-RPC URL (overrides the configuration file).
    #[arg(long, env = "ECLD_RPC", global = true)]
    pub(crate) rpc: Option<String>,
    /// Store (Kubo RPC API) URL (overrides the configuration file).
    #[arg(long, env = "ECLD_STORE", global = true)]
    pub(crate) store: Option<String>,
    /// Your Ethereum key file (overrides the configuration file).
    #[arg(long, env = "ECLD_KEY", global = true)]
    pub(crate) key: Option<PathBuf>,
    /// Your age identity file (overrides the configuration file).
    #[arg(long, env = "ECLD_IDENTITY", global = true)]
    pub(crate) identity: Option<PathBuf>,
}

impl ConnectArgs {
    /// The configuration these flags select.
    pub(crate) fn config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::discover(self.config.as_deref())?;
        if let Some(v) = &self.rpc {
            config.rpc.clone_from(v);
        }
        if let Some(v) = &self.store {
            config.store.clone_from(v);
        }
        if let Some(v) = &self.key {
            config.key = Some(v.clone());
        }
        if let Some(v) = &self.identity {
            config.identity = Some(v.clone());
        }
        Ok(config)
    }

    /// Connects to the stack.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.config()?).await?)
    }
}
