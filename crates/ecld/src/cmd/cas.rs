//! `ecld cas`: run the Configuration and Attestation Service and manage its image sessions.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use ecld_cas::{AdminToken, CasClient, CasConfig, api::SessionInfo};

use crate::output;

/// The CAS: verifies enclave evidence against each image's policy and provisions the image
/// secrets, sealed to the attested enclave and signed by the CAS identity.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  ecld cas serve --state-dir ~/.ecld/cas                 http://127.0.0.1:7400, admin token
                                                         written to ~/.ecld/cas/admin.token
  ecld cas identity --cas http://127.0.0.1:7400          the address to pin in image manifests
  ecld cas session create stats@1 --policy policy.json --admin-token-file ~/.ecld/cas/admin.token
  ecld cas session show stats@1 --json

A policy (JSON) allows platforms by section; sim is INSECURE and needs danger_allow_sim:
  {\"danger_allow_sim\": true, \"sim\": {\"measurement\": \"<sha256 of module>\",
   \"platform_keys\": [\"<node's sim platform public key>\"]}}
  {\"tdx\": {\"mr_td\": \"<48 bytes hex>\"}, \"tcb_statuses\": [\"UpToDate\"]}")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: CasCommand,
}

#[derive(Debug, Subcommand)]
enum CasCommand {
    /// Run the CAS until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Print the CAS identity address.
    Identity(UrlArgs),
    /// Create or show image sessions.
    #[command(subcommand)]
    Session(SessionCommand),
}

#[derive(Debug, ClapArgs)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (printed in the ready line).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Directory of persistent state (sessions, nonces, master key, identity, audit log).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// File holding the admin token; created with a random token if absent.
    /// Default: <state-dir>/admin.token.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// CAS identity key file (secp256k1, created if absent). Default: <state-dir>/identity.key.
    #[arg(long, value_name = "FILE")]
    identity_key: Option<PathBuf>,
    /// Nonce lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    nonce_ttl: u64,
}

#[derive(Debug, ClapArgs)]
struct UrlArgs {
    /// CAS base URL.
    #[arg(long, env = "ECLD_CAS", default_value = "http://127.0.0.1:7400")]
    cas: String,
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Create an image session (admin): the CAS generates the image keys.
    Create {
        /// Session name, e.g. stats@1.
        name: String,
        /// Policy JSON file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// File holding the admin token.
        #[arg(long, value_name = "FILE", env = "ECLD_CAS_ADMIN_TOKEN_FILE")]
        admin_token_file: PathBuf,
        #[command(flatten)]
        url: UrlArgs,
    },
    /// Show a session's public keys and policy.
    Show {
        /// Session name.
        name: String,
        #[command(flatten)]
        url: UrlArgs,
    },
}

/// Runs `ecld cas …`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        CasCommand::Serve(a) => serve(a).await,
        CasCommand::Identity(u) => {
            let id = CasClient::new(&u.cas)?.identity().await?;
            output::emit(&serde_json::json!({ "cas_identity": id }), |_| id.to_string())
        }
        CasCommand::Session(SessionCommand::Create { name, policy, admin_token_file, url }) => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("read policy file {}", policy.display()))?;
            let policy: ecld_tee::Policy = serde_json::from_str(&text).with_context(|| {
                format!("policy file {} is not a valid policy", policy.display())
            })?;
            let token = read_token(&admin_token_file)?;
            let info = CasClient::new(&url.cas)?
                .with_admin_token(token)
                .create_session(&name, &policy)
                .await?;
            output::emit(&info, show_session)
        }
        CasCommand::Session(SessionCommand::Show { name, url }) => {
            let info = CasClient::new(&url.cas)?.session(&name).await?;
            output::emit(&info, show_session)
        }
    }
}

fn read_token(path: &std::path::Path) -> anyhow::Result<AdminToken> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read admin token file {}", path.display()))?;
    anyhow::ensure!(!text.trim().is_empty(), "admin token file {} is empty", path.display());
    Ok(AdminToken::new(text.trim()))
}

fn show_session(info: &SessionInfo) -> String {
    let platforms: Vec<String> = info
        .platforms
        .iter()
        .map(|p| if p.is_insecure() { format!("{p} (INSECURE)") } else { p.to_string() })
        .collect();
    format!(
        "session {}\n  enclave recipient {}\n  enclave signer    {}\n  CAS identity      {}\n  platforms         {}",
        info.name,
        info.enclave_recipient,
        info.enclave_signer,
        info.cas_identity,
        platforms.join(", ")
    )
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("create state directory {}", args.state_dir.display()))?;
    let token_file = args.admin_token_file.unwrap_or_else(|| args.state_dir.join("admin.token"));
    let token = if token_file.exists() {
        read_token(&token_file)?
    } else {
        let token = AdminToken::generate();
        ecld_crypto::keys::write_secret_file(
            &token_file,
            format!("{}\n", token.expose()).as_bytes(),
        )
        .with_context(|| format!("write admin token file {}", token_file.display()))?;
        token
    };
    let mut config = CasConfig::new(args.listen, &args.state_dir, token);
    config.identity_key_file = args.identity_key;
    config.nonce_ttl_secs = args.nonce_ttl;
    let handle = ecld_cas::spawn(config).await?;
    let ready = serde_json::json!({
        "url": handle.url(),
        "cas_identity": handle.identity(),
        "admin_token_file": token_file,
        "state_dir": args.state_dir,
    });
    output::emit(&ready, |_| {
        format!(
            "CAS listening on {} (identity {}, admin token in {})",
            handle.url(),
            handle.identity(),
            token_file.display()
        )
    })?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!(target: "ecld", "stopping the CAS");
    handle.shutdown().await;
    Ok(())
}
