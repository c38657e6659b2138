//! Warm enclave processes, per image: started (and attested) on demand, reused across tasks,
//! stopped when idle.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use alloy::primitives::{Address, B256};
use ecld_enclave::client::{ClientError, EnclaveProcess};
use ecld_types::ImageId;
use reqwest::Url;

use crate::{config::Platform, metrics};

/// How to start one enclave process.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// Program and leading arguments (e.g. `["/usr/bin/ecld", "enclave"]`).
    pub command: Vec<String>,
    /// CAS the enclave attests to.
    pub cas_url: Url,
    /// TEE platform.
    pub platform: Platform,
    /// How long start-up (attestation included) may take.
    pub startup_timeout: Duration,
    /// The sim platform's key file, passed as `--sim-key`.
    pub sim_key: Option<PathBuf>,
}

/// What an enclave of one image needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEnclave {
    /// The image.
    pub image: ImageId,
    /// The image's CAS session.
    pub session: String,
    /// The verified module file.
    pub module: PathBuf,
    /// The CAS identity the image pins.
    pub cas_identity: Address,
    /// The signer the registry names; an enclave announcing another is refused.
    pub signer: Address,
    /// The registry's measurement; an enclave that measured its module otherwise is refused.
    pub measurement: B256,
}

/// The CAS session name of an image, as `ecld image publish` creates it:
/// `name@version-<first 8 bytes of the measurement, hex>`.
pub fn session_name(name: &str, version: &str, measurement: &B256) -> String {
    format!("{name}@{version}-{}", hex::encode(&measurement[..8]))
}

/// Why no enclave could be had.
#[derive(Debug, thiserror::Error)]
pub enum EnclaveError {
    /// The process did not start or did not attest.
    #[error("enclave for image {image} did not start: {source}")]
    Start {
        /// Image.
        image: ImageId,
        /// Why.
        source: ClientError,
    },
    /// It started but is not the image the registry describes.
    #[error(
        "enclave for image {image} announced {what}; the registry expects otherwise, refusing it"
    )]
    Mismatch {
        /// Image.
        image: ImageId,
        /// What differed.
        what: String,
    },
}

/// A running enclave, counted in the `ecld_node_enclaves` gauge while it lives.
#[derive(Debug)]
pub struct Warm {
    /// The process.
    pub process: EnclaveProcess,
    image: ImageId,
    idle_since: Instant,
}

impl Drop for Warm {
    fn drop(&mut self) {
        ::metrics::gauge!(metrics::ENCLAVES).decrement(1.0);
    }
}

/// Enclave processes by image.
#[derive(Debug)]
pub struct Pool {
    launcher: Launcher,
    idle_timeout: Duration,
    idle: Mutex<HashMap<ImageId, Vec<Warm>>>,
}

impl Pool {
    /// An empty pool.
    pub fn new(launcher: Launcher, idle_timeout: Duration) -> Self {
        Self { launcher, idle_timeout, idle: Mutex::new(HashMap::new()) }
    }

    /// A warm enclave of `spec.image`: an idle one, or a new one (started and attested now).
    pub async fn checkout(&self, spec: &ImageEnclave) -> Result<Warm, EnclaveError> {
        let reuse =
            self.idle.lock().ok().and_then(|mut m| m.get_mut(&spec.image).and_then(Vec::pop));
        if let Some(w) = reuse {
            return Ok(w);
        }
        let start = Instant::now();
        let l = &self.launcher;
        let (program, lead) =
            l.command.split_first().map_or(("ecld", &[][..]), |(p, a)| (p.as_str(), a));
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(lead)
            .arg("--cas")
            .arg(l.cas_url.as_str())
            .arg("--session")
            .arg(&spec.session)
            .arg("--module")
            .arg(&spec.module)
            .arg("--cas-identity")
            .arg(spec.cas_identity.to_string())
            .arg("--platform")
            .arg(l.platform.name())
            .arg("--image-id")
            .arg(spec.image.to_string());
        if let Some(k) = &l.sim_key {
            cmd.arg("--sim-key").arg(k);
        }
        let process = EnclaveProcess::spawn_command(cmd, l.startup_timeout)
            .await
            .map_err(|source| EnclaveError::Start { image: spec.image, source })?;
        ::metrics::gauge!(metrics::ENCLAVES).increment(1.0);
        let warm = Warm { process, image: spec.image, idle_since: Instant::now() };
        let ready = warm.process.ready();
        if ready.signer != spec.signer {
            return Err(EnclaveError::Mismatch {
                image: spec.image,
                what: format!("signer {} (registry: {})", ready.signer, spec.signer),
            });
        }
        if ready.measurement.0 != spec.measurement {
            return Err(EnclaveError::Mismatch {
                image: spec.image,
                what: format!(
                    "measurement {} (registry: {})",
                    ready.measurement.0, spec.measurement
                ),
            });
        }
        metrics::step("enclave_start", start.elapsed());
        tracing::info!(target: "ecld_node", image = %spec.image, pid = warm.process.id(), "enclave ready");
        Ok(warm)
    }

    /// Returns an enclave that finished a task cleanly, for the next task of its image.
    pub fn checkin(&self, mut warm: Warm) {
        warm.idle_since = Instant::now();
        if let Ok(mut m) = self.idle.lock() {
            m.entry(warm.image).or_default().push(warm);
        }
    }

    /// Stops enclaves idle for longer than the idle timeout.
    pub fn reap(&self) {
        let Ok(mut m) = self.idle.lock() else { return };
        for list in m.values_mut() {
            list.retain(|w| w.idle_since.elapsed() < self.idle_timeout);
        }
    }

    /// Stops every idle enclave (dropping a process kills it).
    pub fn clear(&self) {
        if let Ok(mut m) = self.idle.lock() {
            m.clear();
        }
    }
}
