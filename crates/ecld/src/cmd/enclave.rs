//! `ecld enclave`: the TEE enclave process the node starts, one per image.

use std::{
    io::{BufWriter, Write as _},
    path::PathBuf,
};

use anyhow::Context as _;
use ecld_enclave::{
    attest::{CasProvisioner, DangerLocalSecrets, ImageSecrets, Provisioner},
    enclave::Enclave,
    image::Measurement,
    runtime::{Runtime, RuntimeOptions},
    server,
};
use ecld_types::ImageId;

/// Arguments of `ecld enclave`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The enclave speaks length-prefixed frames on stdin/stdout (docs/protocol.md, \"Enclave
frames\") and logs to stderr. The node starts it; people rarely do.

Examples:
  ecld enclave --module programs/out/stats.wasm --cas http://127.0.0.1:7400 \\
      --session stats-v1 --cas-identity 0xCAS... --platform sim --sim-key ~/.ecld/sim.key
  ecld enclave --module stats.wasm --danger-secrets-file dev-secrets.json   # no attestation")]
pub(crate) struct Args {
    /// The image's WebAssembly module (WASI preview 1 command). Its sha256 is the measurement.
    #[arg(long, value_name = "FILE")]
    module: PathBuf,

    /// The CAS to attest to and obtain the image secrets from.
    #[arg(long, value_name = "URL", required_unless_present = "danger_secrets_file")]
    cas: Option<String>,

    /// The image's CAS session name.
    #[arg(long, value_name = "NAME", requires = "cas")]
    session: Option<String>,

    /// The CAS identity address pinned in the image; answers signed by anyone else are refused.
    #[arg(long, value_name = "ADDR", requires = "cas")]
    cas_identity: Option<ecld_types::Address>,

    /// The TEE platform that produces the evidence: sim (INSECURE), tdx or sgx.
    #[arg(long, value_name = "PLATFORM", default_value = "sim")]
    platform: String,

    /// The sim platform key file (hex secp256k1 secret), for --platform sim.
    #[arg(long, value_name = "FILE")]
    sim_key: Option<PathBuf>,

    /// Refuse tasks for any image other than this one.
    #[arg(long, value_name = "0x…")]
    image_id: Option<ImageId>,

    /// INSECURE: read the image secrets from this JSON file instead of attesting to a CAS.
    /// For development and benchmarks only.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cas", "session", "cas_identity"])]
    danger_secrets_file: Option<PathBuf>,
}

/// Runs `ecld enclave`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match start(&args).await {
        Ok(enclave) => {
            let served = tokio::task::spawn_blocking(move || {
                let stdin = std::io::stdin().lock();
                let stdout = BufWriter::new(std::io::stdout().lock());
                server::serve(&enclave, stdin, stdout)
            })
            .await
            .context("the enclave loop panicked")?;
            served.context("the frame stream to the node broke")
        }
        Err(err) => {
            let mut stdout = std::io::stdout().lock();
            server::fatal(&mut stdout, &format!("{err:#}"));
            let _ = stdout.flush();
            Err(err)
        }
    }
}

async fn start(args: &Args) -> anyhow::Result<Enclave> {
    let module = std::fs::read(&args.module)
        .with_context(|| format!("cannot read the module {}", args.module.display()))?;
    let measurement = Measurement::of(&module);
    tracing::info!(target: "ecld_enclave", %measurement, module = %args.module.display(), "loading module");
    // Fuel is the task's run time (TIMEOUT must not depend on the host's speed or will).
    let runtime = Runtime::new(RuntimeOptions { meter_fuel: true })?;
    let program = runtime
        .compile(&module)
        .with_context(|| format!("the module {} cannot run as an image", args.module.display()))?;

    let (secrets, platform) = if let Some(path) = &args.danger_secrets_file {
        tracing::warn!(target: "ecld_enclave", "INSECURE: image secrets from {} without attestation", path.display());
        let local = DangerLocalSecrets::new(path);
        (local.provision().await?, local.platform().to_owned())
    } else {
        attest(args, &module).await?
    };
    Ok(Enclave::new(program, secrets, measurement, platform, args.image_id))
}

/// Mutual attestation with the CAS; returns the secrets and the platform name.
async fn attest(args: &Args, module: &[u8]) -> anyhow::Result<(ImageSecrets, String)> {
    let (Some(cas), Some(session), Some(cas_identity)) =
        (&args.cas, &args.session, args.cas_identity)
    else {
        anyhow::bail!(
            "attestation needs --cas, --session and --cas-identity (the CAS identity pinned in the image)"
        );
    };
    let platform: ecld_tee::Platform = args.platform.parse()?;
    async fn run<P: ecld_tee::EvidenceProvider>(
        provisioner: CasProvisioner<P>,
    ) -> anyhow::Result<(ImageSecrets, String)> {
        let name = provisioner.platform().to_owned();
        Ok((provisioner.provision().await?, name))
    }
    tracing::info!(target: "ecld_enclave", %cas, session, %platform, "attesting to the CAS");
    match platform {
        ecld_tee::Platform::Sim => {
            let Some(key_file) = &args.sim_key else {
                anyhow::bail!("--platform sim needs --sim-key FILE (the node's sim platform key)");
            };
            let key = ecld_tee::SimPlatformKey::load(key_file)?;
            tracing::warn!(target: "ecld_enclave", "INSECURE: sim platform, evidence proves nothing about isolation");
            run(CasProvisioner::new(
                cas,
                session.clone(),
                ecld_tee::SimPlatform::new(key, module),
                cas_identity,
            )?)
            .await
        }
        hardware => {
            let platform =
                ecld_tee::DcapPlatform::new(hardware, ecld_tee::ConfigfsTsm::default(), None)?;
            run(CasProvisioner::new(cas, session.clone(), platform, cas_identity)?).await
        }
    }
}
