//! Where the stack is: the client configuration file `ecld up` writes, and how the CLI and
//! applications find it.
//!
//! Lookup order for each setting: explicit value, environment variable (`ECLD_RPC`,
//! `ECLD_STORE`, `ECLD_CAS`, `ECLD_DEPLOYMENT`, `ECLD_KEY`, `ECLD_IDENTITY`), the
//! configuration file (`--config`, `$ECLD_CONFIG`, `$ECLD_DATA_DIR/client.toml`,
//! `./.ecld/client.toml`, then `$XDG_DATA_HOME/ecld/client.toml` or
//! `~/.local/share/ecld/client.toml`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The file name `ecld up` writes in its data directory.
pub const CLIENT_CONFIG_FILE: &str = "client.toml";

/// Everything a client needs to reach a stack. Paths are absolute or relative to the
/// directory of the file they were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Chain JSON-RPC URL (`http://127.0.0.1:8545`).
    pub rpc: String,
    /// Store (Kubo RPC API) base URL (`http://127.0.0.1:5001`).
    pub store: String,
    /// CAS base URL, needed only to publish images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<String>,
    /// File holding the CAS admin token, needed only to publish images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas_token: Option<PathBuf>,
    /// The deployment file (contract addresses, chain id) written when the contracts were
    /// deployed.
    pub deployment: PathBuf,
    /// The user's Ethereum key file (pays for tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The user's age identity file (decrypts results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<PathBuf>,
    /// Sim platform public keys (hex) of the local stack's nodes: `ecld image publish
    /// --allow-sim` lets these nodes run the image when no key is given. Written by `ecld up`
    /// only; the simulated TEE protects nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sim_platform_keys: Vec<String>,
}

impl ClientConfig {
    /// Reads a configuration file; relative paths inside it are resolved against its
    /// directory.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| Error::ConfigRead { path: path.to_owned(), source })?;
        let mut config: Self = toml::from_str(&text)
            .map_err(|e| Error::ConfigParse { path: path.to_owned(), reason: e.to_string() })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.deployment = absolute(base, &config.deployment);
        config.key = config.key.map(|p| absolute(base, &p));
        config.identity = config.identity.map(|p| absolute(base, &p));
        config.cas_token = config.cas_token.map(|p| absolute(base, &p));
        Ok(config)
    }

    /// Writes the configuration file (creating its directory).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let write = |source| Error::ConfigWrite { path: path.to_owned(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let text = toml::to_string_pretty(self)
            .map_err(|e| Error::ConfigParse { path: path.to_owned(), reason: e.to_string() })?;
        std::fs::write(path, text).map_err(write)
    }

    /// Applies the `ECLD_*` environment variables on top of this configuration.
    #[must_use]
    pub fn with_env(mut self) -> Self {
        if let Some(v) = env("ECLD_RPC") {
            self.rpc = v;
        }
        if let Some(v) = env("ECLD_STORE") {
            self.store = v;
        }
        if let Some(v) = env("ECLD_CAS") {
            self.cas = Some(v);
        }
        if let Some(v) = env("ECLD_CAS_TOKEN") {
            self.cas_token = Some(PathBuf::from(v));
        }
        if let Some(v) = env("ECLD_DEPLOYMENT") {
            self.deployment = PathBuf::from(v);
        }
        if let Some(v) = env("ECLD_KEY") {
            self.key = Some(PathBuf::from(v));
        }
        if let Some(v) = env("ECLD_IDENTITY") {
            self.identity = Some(PathBuf::from(v));
        }
        self
    }

    /// Finds and loads the configuration: `explicit`, then `$ECLD_CONFIG`, then the default
    /// locations ([`default_locations`]); environment variables apply on top. When no file
    /// exists but `ECLD_RPC`, `ECLD_STORE` and `ECLD_DEPLOYMENT` are all set, those alone
    /// are the configuration.
    pub fn discover(explicit: Option<&Path>) -> Result<Self, Error> {
        if let Some(path) = explicit {
            return Ok(Self::load(path)?.with_env());
        }
        if let Some(path) = env("ECLD_CONFIG") {
            return Ok(Self::load(Path::new(&path))?.with_env());
        }
        let candidates = default_locations();
        for path in &candidates {
            if path.is_file() {
                return Ok(Self::load(path)?.with_env());
            }
        }
        match (env("ECLD_RPC"), env("ECLD_STORE"), env("ECLD_DEPLOYMENT")) {
            (Some(rpc), Some(store), Some(deployment)) => Ok(Self {
                rpc,
                store,
                cas: None,
                cas_token: None,
                deployment: PathBuf::from(deployment),
                key: None,
                identity: None,
                sim_platform_keys: Vec::new(),
            }
            .with_env()),
            _ => Err(Error::NoStack { searched: candidates }),
        }
    }
}

/// The default data directory of `ecld up`: `./.ecld` when it exists, otherwise
/// `$XDG_DATA_HOME/ecld` or `~/.local/share/ecld`, falling back to `./.ecld`.
pub fn default_data_dir() -> PathBuf {
    let local = PathBuf::from(".ecld");
    if local.is_dir() {
        return local;
    }
    user_data_dir().unwrap_or(local)
}

/// Where [`ClientConfig::discover`] looks, in order: the data directory `ecld up` was given
/// through `$ECLD_DATA_DIR`, `./.ecld`, then the user's data directory.
pub fn default_locations() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = env("ECLD_DATA_DIR") {
        out.push(PathBuf::from(dir).join(CLIENT_CONFIG_FILE));
    }
    out.push(PathBuf::from(".ecld").join(CLIENT_CONFIG_FILE));
    if let Some(dir) = user_data_dir() {
        out.push(dir.join(CLIENT_CONFIG_FILE));
    }
    out
}

fn user_data_dir() -> Option<PathBuf> {
    if let Some(x) = env("XDG_DATA_HOME") {
        return Some(PathBuf::from(x).join("ecld"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".local/share/ecld"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_owned() } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(CLIENT_CONFIG_FILE);
        let config = ClientConfig {
            rpc: "http://127.0.0.1:1".into(),
            store: "http://127.0.0.1:2".into(),
            cas: None,
            cas_token: None,
            deployment: "deployment.json".into(),
            key: Some("keys/eth.key".into()),
            identity: None,
            sim_platform_keys: vec!["02ab".into()],
        };
        config.save(&path).unwrap();
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back.deployment, dir.path().join("sub/deployment.json"));
        assert_eq!(back.key, Some(dir.path().join("sub/keys/eth.key")));
        assert_eq!(back.rpc, config.rpc);
        assert_eq!(back.sim_platform_keys, config.sim_platform_keys);
    }

    #[test]
    fn missing_file_says_to_start_a_stack() {
        let err = ClientConfig::load(Path::new("/nonexistent/ecld/client.toml")).unwrap_err();
        assert!(err.to_string().contains("ecld up"), "{err}");
    }
}
