//! Node configuration: a TOML file, overridden by `ECLD_NODE_*` environment variables, parsed
//! into typed values at the edge.
//!
//! [`RawConfig`] is what serde reads; [`NodeConfig::from_raw`] turns it into checked types and
//! says exactly which setting is wrong.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use alloy::primitives::{Address, U256};
use ecld_types::ImageId;
use reqwest::Url;
use serde::{Deserialize, Serialize};

/// Environment variables that override settings of the file, and the setting each replaces.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("ECLD_NODE_RPC_URL", "chain.rpc_url"),
    ("ECLD_NODE_WS_URL", "chain.ws_url"),
    ("ECLD_NODE_KEY_FILE", "chain.key_file"),
    ("ECLD_NODE_DEPLOYMENT_FILE", "chain.deployment_file"),
    ("ECLD_NODE_MARKETPLACE", "chain.marketplace"),
    ("ECLD_NODE_REGISTRY", "chain.registry"),
    ("ECLD_NODE_STORE_URL", "store.url"),
    ("ECLD_NODE_CAS_URL", "cas.url"),
    ("ECLD_NODE_DATA_DIR", "data_dir"),
    ("ECLD_NODE_ENCLAVE_COMMAND", "enclave.command"),
    ("ECLD_NODE_PLATFORM", "enclave.platform"),
    ("ECLD_NODE_METRICS_ADDR", "metrics_addr"),
    ("ECLD_NODE_SIM_KEY_FILE", "enclave.sim_key_file"),
];

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read node config {path}: {source}; check the path or run `ecld node init`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a node config.
    #[error("node config {path} is not valid: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parse error (names the line and the key).
        source: Box<toml::de::Error>,
    },
    /// One setting has a value that does not parse.
    #[error("setting `{key}` = `{value}` is invalid: {reason}")]
    Invalid {
        /// The setting, as a dotted TOML path.
        key: String,
        /// The value given.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// A required setting is absent.
    #[error("setting `{key}` is missing: {hint}")]
    Missing {
        /// The setting, as a dotted TOML path.
        key: &'static str,
        /// What to put there.
        hint: &'static str,
    },
}

/// The configuration as written in the file (strings where the file has strings).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Directory for the journal, the module cache and result files.
    pub data_dir: Option<String>,
    /// Where `/metrics` is served (Prometheus text); absent: no metrics endpoint.
    pub metrics_addr: Option<String>,
    /// The chain.
    #[serde(default)]
    pub chain: RawChain,
    /// The content store.
    #[serde(default)]
    pub store: RawStore,
    /// The CAS the enclaves attest to.
    #[serde(default)]
    pub cas: RawUrl,
    /// How enclaves are started.
    #[serde(default)]
    pub enclave: RawEnclave,
    /// The offers this node registers.
    #[serde(default)]
    pub offers: Vec<RawOffer>,
}

/// `[chain]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    /// JSON-RPC URL.
    pub rpc_url: Option<String>,
    /// File with the node's Ethereum private key (hex).
    pub key_file: Option<String>,
    /// Deployment JSON written by the deployer.
    pub deployment_file: Option<String>,
    /// Marketplace address (instead of a deployment file).
    pub marketplace: Option<String>,
    /// ImageRegistry address (instead of a deployment file).
    pub registry: Option<String>,
    /// WebSocket JSON-RPC URL for the `newHeads` subscription; default: `rpc_url` with
    /// `ws://` (`wss://`); `"none"` disables the subscription.
    pub ws_url: Option<String>,
    /// How often to poll for new blocks, in milliseconds, when no subscription is active.
    pub poll_interval_ms: Option<u64>,
    /// How many recent reads the follower remembers by block hash to find where a chain
    /// reorganisation forked.
    pub reorg_depth: Option<u64>,
    /// How long a proof waits for others to settle with it in one `submitResults`, in
    /// milliseconds; 0 submits each proof alone.
    pub batch_window_ms: Option<u64>,
    /// Most proofs in one `submitResults`.
    pub batch_max: Option<u32>,
}

/// `[store]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// The Kubo API URL.
    pub url: Option<String>,
    /// Attempts per store call, with exponential backoff, before the node gives up.
    pub retry_attempts: Option<u32>,
}

/// A section holding one URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrl {
    /// The URL.
    pub url: Option<String>,
}

/// `[enclave]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnclave {
    /// Program and arguments that start an enclave; default: this binary with `enclave`.
    pub command: Option<Vec<String>>,
    /// TEE platform the enclaves run on: `sim`, `tdx` or `sgx`.
    pub platform: Option<String>,
    /// Seconds an idle enclave stays warm before it is stopped.
    pub idle_timeout_s: Option<u64>,
    /// For `platform = "sim"`: the simulated platform's key file, passed as `--sim-key`.
    pub sim_key_file: Option<String>,
}

/// One `[[offers]]` entry as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOffer {
    /// Image id (0x + 64 hex) or `any`.
    pub image: String,
    /// Concurrent tasks.
    pub slots: u32,
    /// Memory per task, in MiB.
    pub memory_mb: u32,
    /// Longest run time accepted, in seconds.
    pub max_runtime_s: u32,
    /// Price per task in token base units (decimal string or integer).
    pub price: toml::Value,
}

/// TEE platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Simulated TEE: no hardware, no security; for development.
    Sim,
    /// Intel TDX.
    Tdx,
    /// Intel SGX.
    Sgx,
}

impl Platform {
    /// The name used on the command line and in config files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Tdx => "tdx",
            Self::Sgx => "sgx",
        }
    }

    /// The bit the ImageRegistry and the Marketplace use for this platform (1 sim, 2 sgx,
    /// 4 tdx).
    pub const fn code(self) -> u8 {
        match self {
            Self::Sim => 1,
            Self::Sgx => 2,
            Self::Tdx => 4,
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sim" => Some(Self::Sim),
            "tdx" => Some(Self::Tdx),
            "sgx" => Some(Self::Sgx),
            _ => None,
        }
    }
}

/// Which images an offer serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ImageChoice {
    /// Any published image.
    Any,
    /// Only this one.
    Only(ImageId),
}

/// One offer of resources, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfferSpec {
    /// Which images.
    pub image: ImageChoice,
    /// TEE platform.
    pub platform: Platform,
    /// Concurrent tasks (at least 1).
    pub slots: u32,
    /// Memory per task, in MiB.
    pub memory_mb: u32,
    /// Longest run time accepted, in seconds.
    pub max_runtime_s: u32,
    /// Price per task in token base units.
    pub price: U256,
}

/// Where the contracts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contracts {
    /// Read addresses from a deployment JSON file.
    DeploymentFile(PathBuf),
    /// Given directly.
    Addresses {
        /// Marketplace.
        marketplace: Address,
        /// ImageRegistry.
        registry: Address,
    },
}

/// The node configuration, checked.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory for the journal, module cache and result files.
    pub data_dir: PathBuf,
    /// Where `/metrics` is served; `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Chain JSON-RPC URL.
    pub rpc_url: Url,
    /// File with the node's private key.
    pub key_file: PathBuf,
    /// Where the contracts are.
    pub contracts: Contracts,
    /// WebSocket URL of the `newHeads` subscription; `None`: no subscription, polling only.
    pub ws_url: Option<Url>,
    /// How often the chain is polled without a subscription (with one: every
    /// `max(poll_interval, SUBSCRIBED_POLL_FLOOR)`, as a safety net).
    pub poll_interval: Duration,
    /// How many recent reads (their last block and its hash) the follower remembers to find
    /// the fork point of a reorganisation; a deeper one rebuilds from the deployment block.
    pub reorg_depth: u64,
    /// How long a proof waits for others to settle with it in one `submitResults` (zero:
    /// each proof is sent alone, with `submitResult`).
    pub batch_window: Duration,
    /// Most proofs in one `submitResults` (at least 1).
    pub batch_max: usize,
    /// Content store (Kubo API) URL.
    pub store_url: Url,
    /// Attempts per store call before giving up (`None`: the default, about a minute of
    /// backoff). An input still unavailable then is answered with status 16 (refund).
    pub store_retry_attempts: Option<u32>,
    /// CAS URL.
    pub cas_url: Url,
    /// Program and arguments that start one enclave; `None`: `<this binary> enclave`.
    pub enclave_command: Option<Vec<String>>,
    /// Platform of the enclaves.
    pub platform: Platform,
    /// How long an idle enclave stays warm.
    pub enclave_idle_timeout: Duration,
    /// The sim platform's key file (`--sim-key` of `ecld enclave`).
    pub sim_key_file: Option<PathBuf>,
    /// Offers to register.
    pub offers: Vec<OfferSpec>,
}

impl NodeConfig {
    /// Reads `path`, applies `ECLD_NODE_*` overrides from the process environment and checks
    /// the result. Relative paths in the file are relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let env: HashMap<String, String> = std::env::vars().collect();
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_raw(raw.with_env(&env), base)
    }

    /// Checks a raw configuration; relative paths are resolved against `base`.
    pub fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, ConfigError> {
        let rel = |p: &str| -> PathBuf {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { base.join(p) }
        };
        let data_dir = rel(raw.data_dir.as_deref().unwrap_or("ecld-node-data"));
        let metrics_addr = raw
            .metrics_addr
            .as_deref()
            .map(|a| a.parse::<SocketAddr>().map_err(|e| invalid("metrics_addr", a, e.to_string())))
            .transpose()?;
        let rpc_url = parse_url(
            "chain.rpc_url",
            raw.chain.rpc_url.as_deref(),
            "the chain's JSON-RPC URL, e.g. http://127.0.0.1:8545",
        )?;
        let key_file = rel(raw.chain.key_file.as_deref().ok_or(ConfigError::Missing {
            key: "chain.key_file",
            hint: "a file holding the node's Ethereum private key (create one with `ecld keys new`)",
        })?);
        let contracts =
            match (&raw.chain.deployment_file, &raw.chain.marketplace, &raw.chain.registry) {
                (_, Some(m), Some(r)) => Contracts::Addresses {
                    marketplace: parse_address("chain.marketplace", m)?,
                    registry: parse_address("chain.registry", r)?,
                },
                (Some(f), None, None) => Contracts::DeploymentFile(rel(f)),
                (_, Some(_), None) | (_, None, Some(_)) => {
                    return Err(ConfigError::Missing {
                        key: "chain.marketplace / chain.registry",
                        hint: "give both contract addresses, or neither and a deployment_file",
                    });
                }
                (None, None, None) => {
                    return Err(ConfigError::Missing {
                        key: "chain.deployment_file",
                        hint: "the deployment JSON written when the contracts were deployed, or \
                           chain.marketplace and chain.registry addresses",
                    });
                }
            };
        let ws_url = ws_url(raw.chain.ws_url.as_deref(), &rpc_url)?;
        let poll_interval =
            Duration::from_millis(raw.chain.poll_interval_ms.unwrap_or(1000).max(10));
        let reorg_depth = raw.chain.reorg_depth.unwrap_or(12);
        let batch_window = Duration::from_millis(raw.chain.batch_window_ms.unwrap_or(0));
        let batch_max = match raw.chain.batch_max.unwrap_or(32) {
            0 => {
                return Err(ConfigError::Invalid {
                    key: "chain.batch_max".into(),
                    value: "0".into(),
                    reason: "at least 1 proof per submitResults (32 is a good batch)".into(),
                });
            }
            n => n as usize,
        };
        let store_url = parse_url(
            "store.url",
            raw.store.url.as_deref(),
            "the content store's Kubo API URL, e.g. http://127.0.0.1:5001",
        )?;
        let cas_url = parse_url(
            "cas.url",
            raw.cas.url.as_deref(),
            "the CAS URL, e.g. http://127.0.0.1:8090",
        )?;
        let platform = match raw.enclave.platform.as_deref() {
            None => Platform::Sim,
            Some(p) => Platform::parse(p)
                .ok_or_else(|| invalid("enclave.platform", p, "expected sim, tdx or sgx".into()))?,
        };
        if let Some(cmd) = &raw.enclave.command
            && cmd.is_empty()
        {
            return Err(invalid(
                "enclave.command",
                "[]",
                "give the program and its arguments".into(),
            ));
        }
        if raw.offers.is_empty() {
            return Err(ConfigError::Missing {
                key: "offers",
                hint: "add at least one [[offers]] section (see `ecld node init`)",
            });
        }
        let offers = raw
            .offers
            .iter()
            .enumerate()
            .map(|(i, o)| parse_offer(i, o, platform))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            data_dir,
            metrics_addr,
            rpc_url,
            key_file,
            contracts,
            ws_url,
            poll_interval,
            reorg_depth,
            batch_window,
            batch_max,
            store_url,
            store_retry_attempts: raw.store.retry_attempts.map(|n| n.max(1)),
            cas_url,
            enclave_command: raw.enclave.command,
            platform,
            enclave_idle_timeout: Duration::from_secs(raw.enclave.idle_timeout_s.unwrap_or(600)),
            sim_key_file: raw.enclave.sim_key_file.as_deref().map(rel),
            offers,
        })
    }

    /// Total slots over all offers: the most tasks this node runs at once.
    pub fn total_slots(&self) -> u32 {
        self.offers.iter().map(|o| o.slots).sum()
    }
}

impl RawConfig {
    /// Applies the `ECLD_NODE_*` overrides found in `env`.
    #[must_use]
    pub fn with_env(mut self, env: &HashMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        if let Some(v) = get("ECLD_NODE_RPC_URL") {
            self.chain.rpc_url = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_WS_URL") {
            self.chain.ws_url = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_KEY_FILE") {
            self.chain.key_file = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_DEPLOYMENT_FILE") {
            self.chain.deployment_file = Some(v);
            self.chain.marketplace = None;
            self.chain.registry = None;
        }
        if let Some(v) = get("ECLD_NODE_MARKETPLACE") {
            self.chain.marketplace = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_REGISTRY") {
            self.chain.registry = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_STORE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_CAS_URL") {
            self.cas.url = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_DATA_DIR") {
            self.data_dir = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_ENCLAVE_COMMAND") {
            self.enclave.command = Some(v.split_whitespace().map(str::to_owned).collect());
        }
        if let Some(v) = get("ECLD_NODE_PLATFORM") {
            self.enclave.platform = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_SIM_KEY_FILE") {
            self.enclave.sim_key_file = Some(v);
        }
        if let Some(v) = get("ECLD_NODE_METRICS_ADDR") {
            self.metrics_addr = Some(v);
        }
        self
    }
}

fn invalid(key: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason }
}

fn parse_url(key: &'static str, v: Option<&str>, hint: &'static str) -> Result<Url, ConfigError> {
    let v = v.ok_or(ConfigError::Missing { key, hint })?;
    let url = Url::parse(v).map_err(|e| invalid(key, v, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, v, "expected an http:// or https:// URL".into()));
    }
    Ok(url)
}

/// The subscription URL: `given` (`"none"` disables it), else `rpc`'s scheme turned into
/// `ws`/`wss` (the same port serves both on `ecld devnet`, geth, anvil and hardhat).
fn ws_url(given: Option<&str>, rpc: &Url) -> Result<Option<Url>, ConfigError> {
    const KEY: &str = "chain.ws_url";
    match given.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off") => Ok(None),
        Some(v) => {
            let url = Url::parse(v).map_err(|e| invalid(KEY, v, e.to_string()))?;
            if !matches!(url.scheme(), "ws" | "wss") {
                return Err(invalid(KEY, v, "expected a ws:// or wss:// URL, or \"none\"".into()));
            }
            Ok(Some(url))
        }
        None => {
            let scheme = if rpc.scheme() == "https" { "wss" } else { "ws" };
            let text = format!("{scheme}{}", &rpc.as_str()[rpc.scheme().len()..]);
            Url::parse(&text).map(Some).map_err(|e| invalid(KEY, &text, e.to_string()))
        }
    }
}

fn parse_address(key: &str, v: &str) -> Result<Address, ConfigError> {
    v.trim()
        .parse::<Address>()
        .map_err(|_| invalid(key, v, "expected 0x followed by 40 hex digits".into()))
}

fn parse_offer(i: usize, o: &RawOffer, platform: Platform) -> Result<OfferSpec, ConfigError> {
    let key = |k: &str| format!("offers[{i}].{k}");
    let image = if o.image.trim().eq_ignore_ascii_case("any") {
        ImageChoice::Any
    } else {
        ImageChoice::Only(
            o.image
                .parse::<ImageId>()
                .map_err(|e| invalid(&key("image"), &o.image, e.to_string()))?,
        )
    };
    if o.slots == 0 {
        return Err(invalid(&key("slots"), "0", "an offer needs at least one slot".into()));
    }
    if o.memory_mb == 0 {
        return Err(invalid(&key("memory_mb"), "0", "give the memory per task in MiB".into()));
    }
    if o.max_runtime_s == 0 {
        return Err(invalid(
            &key("max_runtime_s"),
            "0",
            "give the longest run time in seconds".into(),
        ));
    }
    let price_text = match &o.price {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) if *n >= 0 => n.to_string(),
        other => other.to_string(),
    };
    let price = price_text.trim().parse::<U256>().map_err(|_| {
        invalid(
            &key("price"),
            &price_text,
            "expected a non-negative integer in token base units".into(),
        )
    })?;
    Ok(OfferSpec {
        image,
        platform,
        slots: o.slots,
        memory_mb: o.memory_mb,
        max_runtime_s: o.max_runtime_s,
        price,
    })
}

/// With a live subscription the chain is still polled as a safety net, every `poll_interval`
/// but not more often than this.
pub const SUBSCRIBED_POLL_FLOOR: Duration = Duration::from_secs(15);

/// A commented example configuration, as `ecld node init` writes it.
pub const EXAMPLE: &str = r#"# ecld node configuration. Every setting can be overridden by an environment variable:
# ECLD_NODE_RPC_URL, ECLD_NODE_WS_URL, ECLD_NODE_KEY_FILE, ECLD_NODE_DEPLOYMENT_FILE, ECLD_NODE_MARKETPLACE,
# ECLD_NODE_REGISTRY, ECLD_NODE_STORE_URL, ECLD_NODE_CAS_URL, ECLD_NODE_DATA_DIR,
# ECLD_NODE_ENCLAVE_COMMAND, ECLD_NODE_PLATFORM, ECLD_NODE_SIM_KEY_FILE, ECLD_NODE_METRICS_ADDR.
# Relative paths are relative to this file.

# Journal, verified module cache and result files. Keep it: the node resumes from it.
data_dir = "ecld-node-data"

# Prometheus metrics at http://<metrics_addr>/metrics (remove to disable).
metrics_addr = "127.0.0.1:9464"

[chain]
# Any EVM chain's JSON-RPC (`ecld devnet` listens on 8545 by default).
rpc_url = "http://127.0.0.1:8545"
# The node's Ethereum private key (hex); it claims tasks, relays proofs and is paid.
key_file = "node.key"
# Contract addresses, from the deployment file ...
deployment_file = "deployment.json"
# ... or given directly (then remove deployment_file):
# marketplace = "0x..."
# registry = "0x..."
# New blocks are followed by an `eth_subscribe("newHeads")` over WebSocket, at rpc_url with
# ws:// (wss://) unless given here; "none" turns it off. Each new head wakes the node at once;
# the events themselves are always read with eth_getLogs, so nothing is missed. Without a
# subscription (plain HTTP endpoint, or the socket dropped: re-subscribed with backoff) the node
# polls every poll_interval_ms; with one, only every poll_interval_ms or 15 s, whichever is
# longer, as a safety net.
# ws_url = "ws://127.0.0.1:8545"
poll_interval_ms = 1000
# How many recent reads the node remembers by block hash to find where a chain reorganisation
# forked; it then re-reads from there and re-checks the tasks it holds (a deeper reorg is
# re-read from the deployment block).
reorg_depth = 12
# Proofs settle in batches: a finished task's proof waits up to batch_window_ms for others
# and they all go in one submitResults transaction (at most batch_max of them), which costs
# far less gas per task than one submitResult each. 0 sends each proof at once, alone.
# batch_window_ms = 0
# batch_max = 32

[store]
# Kubo RPC API: `ecld store` or any IPFS (Kubo) node.
url = "http://127.0.0.1:5001"
# Attempts per store call, with exponential backoff (default 12: about a minute). An input
# still unavailable then is answered with status 16, which refunds the requester; a result
# upload is retried until the store is back.
# retry_attempts = 12

[cas]
# The Configuration and Attestation Service the enclaves attest to.
url = "http://127.0.0.1:8090"

[enclave]
# Program that runs one enclave; default: this same binary, `ecld enclave`.
# command = ["/usr/local/bin/ecld", "enclave"]
# TEE platform: sim (no hardware, NOT secure: development only), tdx or sgx.
platform = "sim"
# The simulated platform's key (sim only; the CAS must know its public half).
# sim_key_file = "sim.key"
# Seconds an idle enclave stays warm.
idle_timeout_s = 600

# One section per offer. `image` is an image id (0x + 64 hex digits) or "any".
[[offers]]
image = "any"
slots = 4
memory_mb = 512
max_runtime_s = 60
# Price per task in the payment token's base units.
price = "1000000000000000"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> RawConfig {
        toml::from_str(EXAMPLE).unwrap()
    }

    #[test]
    fn example_parses_into_a_valid_config() {
        let cfg = NodeConfig::from_raw(example(), Path::new("/etc/ecld")).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/etc/ecld/ecld-node-data"));
        assert_eq!(cfg.contracts, Contracts::DeploymentFile("/etc/ecld/deployment.json".into()));
        assert_eq!(cfg.offers.len(), 1);
        assert_eq!(cfg.offers[0].image, ImageChoice::Any);
        assert_eq!(cfg.offers[0].price, U256::from(1_000_000_000_000_000u64));
        assert_eq!(cfg.total_slots(), 4);
        assert_eq!(cfg.platform, Platform::Sim);
        assert_eq!(cfg.ws_url.unwrap().as_str(), "ws://127.0.0.1:8545/");
    }

    #[test]
    fn ws_url_is_derived_overridden_or_disabled() {
        let mut raw = example();
        raw.chain.rpc_url = Some("https://rpc.example/v1?k=1".into());
        let cfg = NodeConfig::from_raw(raw.clone(), Path::new(".")).unwrap();
        assert_eq!(cfg.ws_url.unwrap().as_str(), "wss://rpc.example/v1?k=1");
        let env = HashMap::from([("ECLD_NODE_WS_URL".to_owned(), "ws://10.0.0.2:8546".to_owned())]);
        let cfg = NodeConfig::from_raw(raw.clone().with_env(&env), Path::new(".")).unwrap();
        assert_eq!(cfg.ws_url.unwrap().as_str(), "ws://10.0.0.2:8546/");
        raw.chain.ws_url = Some("none".into());
        assert!(NodeConfig::from_raw(raw.clone(), Path::new(".")).unwrap().ws_url.is_none());
        raw.chain.ws_url = Some("http://x".into());
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("chain.ws_url"), "{err}");
    }

    #[test]
    fn env_overrides_the_file() {
        let env = HashMap::from([
            ("ECLD_NODE_RPC_URL".to_owned(), "http://10.0.0.1:9999".to_owned()),
            ("ECLD_NODE_MARKETPLACE".to_owned(), format!("0x{}", "11".repeat(20))),
            ("ECLD_NODE_REGISTRY".to_owned(), format!("0x{}", "22".repeat(20))),
            ("ECLD_NODE_ENCLAVE_COMMAND".to_owned(), "/bin/x enclave --v".to_owned()),
        ]);
        let cfg = NodeConfig::from_raw(example().with_env(&env), Path::new(".")).unwrap();
        assert_eq!(cfg.rpc_url.as_str(), "http://10.0.0.1:9999/");
        assert!(matches!(cfg.contracts, Contracts::Addresses { .. }));
        assert_eq!(cfg.enclave_command.unwrap(), ["/bin/x", "enclave", "--v"]);
    }

    #[test]
    fn bad_price_names_the_offer() {
        let mut raw = example();
        raw.offers[0].price = toml::Value::String("ten".into());
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("offers[0].price"), "{err}");
    }

    #[test]
    fn bad_image_and_zero_slots_are_refused() {
        let mut raw = example();
        raw.offers[0].image = "0x12".into();
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("offers[0].image"), "{err}");
        let mut raw = example();
        raw.offers[0].slots = 0;
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("offers[0].slots"), "{err}");
    }

    #[test]
    fn missing_rpc_and_unknown_keys_are_reported() {
        let mut raw = example();
        raw.chain.rpc_url = None;
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("chain.rpc_url"), "{err}");
        let err = toml::from_str::<RawConfig>("data_dir = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn non_http_store_url_is_refused() {
        let mut raw = example();
        raw.store.url = Some("ftp://x".into());
        let err = NodeConfig::from_raw(raw, Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
    }
}
