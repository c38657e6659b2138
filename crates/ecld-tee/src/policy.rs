//! What evidence a verifier accepts.

use serde::{Deserialize, Serialize};

use crate::{HexBytes, Platform, TeeError};

/// An attestation policy: which platforms are allowed and what each must measure.
///
/// A platform is allowed when its section is present. `sim` additionally needs
/// `danger_allow_sim: true`, because simulated evidence protects nothing.
///
/// ```json
/// {
///   "danger_allow_sim": true,
///   "sim": { "measurement": "<sha256 of the module, hex>", "platform_keys": ["02…"] },
///   "tdx": { "mr_td": "<48 bytes hex>", "rtmr0": null, "rtmr1": null, "rtmr2": null, "rtmr3": null },
///   "sgx": { "mr_enclave": "<32 bytes hex>", "mr_signer": null },
///   "tcb_statuses": ["UpToDate"]
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Accept evidence from the simulated, INSECURE `sim` platform. Development only.
    #[serde(default)]
    pub danger_allow_sim: bool,
    /// Requirements for `sim` evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimPolicy>,
    /// Requirements for Intel TDX quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxPolicy>,
    /// Requirements for Intel SGX quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgx: Option<SgxPolicy>,
    /// TCB statuses accepted for DCAP quotes, as Intel names them (`UpToDate`, `SWHardeningNeeded`,
    /// `ConfigurationNeeded`, `ConfigurationAndSWHardeningNeeded`, `OutOfDate`,
    /// `OutOfDateConfigurationNeeded`, …). Default: `UpToDate` only. `Revoked` is never accepted.
    #[serde(default = "default_tcb_statuses")]
    pub tcb_statuses: Vec<String>,
}

fn default_tcb_statuses() -> Vec<String> {
    vec!["UpToDate".to_owned()]
}

/// Intel's TCB status names that a policy may list.
pub const KNOWN_TCB_STATUSES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
];

/// Requirements for simulated evidence.
///
/// Trust in a sim platform key is explicit: the policy lists the public keys of the sim
/// platforms (one per node, made by `SimPlatformKey::generate`) whose evidence it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimPolicy {
    /// sha256 of the enclave's program module.
    pub measurement: HexBytes<32>,
    /// Accepted sim platform public keys (compressed secp256k1, 33 bytes hex). At least one.
    pub platform_keys: Vec<HexBytes<33>>,
}

/// Requirements for TDX quotes: MRTD always, each RTMR when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxPolicy {
    /// Expected MRTD (measurement of the initial TD image).
    pub mr_td: HexBytes<48>,
    /// Expected RTMR0, if checked.
    #[serde(default)]
    pub rtmr0: Option<HexBytes<48>>,
    /// Expected RTMR1, if checked.
    #[serde(default)]
    pub rtmr1: Option<HexBytes<48>>,
    /// Expected RTMR2, if checked.
    #[serde(default)]
    pub rtmr2: Option<HexBytes<48>>,
    /// Expected RTMR3, if checked.
    #[serde(default)]
    pub rtmr3: Option<HexBytes<48>>,
}

/// Requirements for SGX quotes: MRENCLAVE and/or MRSIGNER (at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgxPolicy {
    /// Expected MRENCLAVE, if checked.
    #[serde(default)]
    pub mr_enclave: Option<HexBytes<32>>,
    /// Expected MRSIGNER, if checked.
    #[serde(default)]
    pub mr_signer: Option<HexBytes<32>>,
}

impl Policy {
    /// A policy accepting only `sim` evidence of `measurement` signed by one of `platform_keys`.
    /// INSECURE: for development and tests.
    pub fn danger_sim(measurement: [u8; 32], platform_keys: Vec<[u8; 33]>) -> Self {
        Self {
            danger_allow_sim: true,
            sim: Some(SimPolicy {
                measurement: HexBytes(measurement),
                platform_keys: platform_keys.into_iter().map(HexBytes).collect(),
            }),
            tdx: None,
            sgx: None,
            tcb_statuses: default_tcb_statuses(),
        }
    }

    /// The platforms this policy allows.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out = Vec::new();
        if self.sim.is_some() && self.danger_allow_sim {
            out.push(Platform::Sim);
        }
        if self.tdx.is_some() {
            out.push(Platform::Tdx);
        }
        if self.sgx.is_some() {
            out.push(Platform::Sgx);
        }
        out
    }

    /// Checks the policy is usable; the CAS refuses a session whose policy fails this.
    pub fn check(&self) -> Result<(), TeeError> {
        if self.sim.is_some() && !self.danger_allow_sim {
            return Err(TeeError::PolicyInvalid(
                "a `sim` section needs `danger_allow_sim: true` (sim evidence is insecure)".into(),
            ));
        }
        if let Some(sim) = &self.sim {
            if sim.platform_keys.is_empty() {
                return Err(TeeError::PolicyInvalid(
                    "`sim.platform_keys` is empty: list the sim platform public keys to trust"
                        .into(),
                ));
            }
            for key in &sim.platform_keys {
                k256::ecdsa::VerifyingKey::from_sec1_bytes(key.as_bytes()).map_err(|_| {
                    TeeError::PolicyInvalid(format!(
                        "`sim.platform_keys` entry {key} is not a compressed secp256k1 public key"
                    ))
                })?;
            }
        }
        if let Some(sgx) = &self.sgx
            && sgx.mr_enclave.is_none()
            && sgx.mr_signer.is_none()
        {
            return Err(TeeError::PolicyInvalid(
                "`sgx` needs `mr_enclave`, `mr_signer` or both".into(),
            ));
        }
        if self.platforms().is_empty() {
            return Err(TeeError::PolicyInvalid(
                "no platform allowed: add a `tdx`, `sgx` or (development only) `sim` section"
                    .into(),
            ));
        }
        if self.tdx.is_some() || self.sgx.is_some() {
            if self.tcb_statuses.is_empty() {
                return Err(TeeError::PolicyInvalid("`tcb_statuses` is empty".into()));
            }
            for status in &self.tcb_statuses {
                if !KNOWN_TCB_STATUSES.contains(&status.as_str()) {
                    return Err(TeeError::PolicyInvalid(format!(
                        "unknown TCB status `{status}` in `tcb_statuses` (known: {})",
                        KNOWN_TCB_STATUSES.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn allowed_list(&self) -> String {
        let list: Vec<String> = self.platforms().iter().map(ToString::to_string).collect();
        if list.is_empty() { "none".to_owned() } else { list.join(", ") }
    }
}
