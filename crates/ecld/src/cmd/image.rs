//! `ecld image`: the images nodes run, as the ImageRegistry records them.

use std::path::PathBuf;

use anyhow::Context;
use ecld_sdk::{Image, PublishRequest};

use super::connect::ConnectArgs;
use crate::output;

/// Arguments of `ecld image`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld image list
  ecld image show stats
  ecld image publish --name mine --module my.wasm --allow-sim    on `ecld up`; then:
  ecld task run mine --input-text hello
  ecld image publish --name wc --module wc.wasm --allow-sim --sim-platform-key 02ab…
  ecld image revoke mine    the image's key leaked: refuse its claims and proofs from now on

An image whose platforms include `sim` can run on the simulated TEE, which protects nothing:
use such images only for development. On the stack `ecld up` started, --allow-sim names its
node's sim platform key by itself (from the client configuration), and the node runs the
image at once through its offer for any image.")]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Every published image.
    List,
    /// One image: code, measurement, keys, CAS, platforms.
    Show {
        /// Image name or id (0x…).
        image: String,
    },
    /// Upload a WebAssembly module, create its CAS session and publish it in the
    /// ImageRegistry.
    Publish(PublishArgs),
    /// Revoke an image you published (its enclave key leaked, or its code is unsafe): from
    /// the next block no node can claim or settle a task for it, and requesters can reclaim
    /// the escrow of its tasks at once. Cannot be undone.
    Revoke {
        /// Image name or id (0x…).
        image: String,
    },
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// Name users pick the image by (e.g. `stats`).
    #[arg(long)]
    name: String,
    /// Version string (a new version is a new image id).
    #[arg(long, default_value = "1")]
    version: String,
    /// The WebAssembly (WASI preview 1) module.
    #[arg(long)]
    module: PathBuf,
    /// The CAS policy (JSON: which platforms and measurements may receive the image keys;
    /// see ecld-tee's `Policy`).
    #[arg(long, value_name = "FILE", required_unless_present = "allow_sim")]
    policy: Option<PathBuf>,
    /// Allow the simulated TEE (INSECURE: for development only) on the nodes whose sim
    /// platform keys (hex) are given with --sim-platform-key; without that flag, the keys of
    /// the local stack's nodes (`sim_platform_keys` in the client configuration `ecld up`
    /// wrote).
    #[arg(long)]
    allow_sim: bool,
    /// A node's sim platform public key (33 bytes hex); repeat for several nodes.
    #[arg(long, value_name = "HEX", requires = "allow_sim")]
    sim_platform_key: Vec<String>,
    /// CAS URL (default: from the client configuration).
    #[arg(long, env = "ECLD_CAS")]
    cas: Option<String>,
}

/// Runs `ecld image`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = args.connect.config()?;
    let client = ecld_sdk::Client::connect(&config).await?;
    match args.command {
        Command::List => {
            let images = client.images().await?;
            output::emit(&images, |imgs| {
                if imgs.is_empty() {
                    return "no images published: publish one with `ecld image publish`".to_owned();
                }
                let mut s = format!("{:<14} {:<8} {:<10} {}", "NAME", "VERSION", "PLATFORMS", "ID");
                for i in imgs {
                    s.push_str(&format!(
                        "\n{:<14} {:<8} {:<10} {}",
                        i.name,
                        i.version,
                        i.platform_names().join(","),
                        i.id
                    ));
                }
                s
            })
        }
        Command::Show { image } => {
            let image = client.resolve_image(&image).await?;
            output::emit(&image, show)
        }
        Command::Publish(a) => {
            let module = std::fs::read(&a.module)
                .with_context(|| format!("cannot read the module {}", a.module.display()))?;
            let policy = match &a.policy {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read the policy {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not a CAS policy", path.display()))?
                }
                None => {
                    let keys = if a.sim_platform_key.is_empty() {
                        config.sim_platform_keys.clone()
                    } else {
                        a.sim_platform_key.clone()
                    };
                    anyhow::ensure!(
                        !keys.is_empty(),
                        "--allow-sim needs the sim platform keys of the nodes that may run the image: \
                         this client configuration names none (it was not written by `ecld up`); \
                         give --sim-platform-key HEX for each node (its operator reads it from the \
                         node's sim key file), or --policy FILE"
                    );
                    PublishRequest::sim_policy(&module, &keys)?
                }
            };
            let image = client
                .publish_image(&PublishRequest {
                    name: a.name,
                    version: a.version,
                    module,
                    policy,
                    cas: a.cas,
                    cas_token: None,
                })
                .await?;
            output::emit(&image, show)
        }
        Command::Revoke { image } => {
            let image = client.resolve_image(&image).await?;
            let tx = client.revoke_image(image.id).await?;
            let image = client.image(image.id).await?;
            output::emit(&image, |i| format!("revoked in transaction {tx}\n{}", show(i)))
        }
    }
}

fn show(i: &Image) -> String {
    let mut s = String::new();
    if i.allows_sim() {
        s.push_str(
            "WARNING: INSECURE — this image allows the simulated TEE (`sim`): a node may run it\n\
             without any hardware protection and read your input. Use it for development only.\n\n",
        );
    }
    s.push_str(&format!(
        "image {} (version {})\n  id             {}\n  platforms      {}{}\n  code           {}\n  \
         measurement    {}\n  enclave key    {}\n  enclave signer {}\n  CAS identity   {}\n  \
         owner          {}{}",
        i.name,
        i.version,
        i.id,
        i.platform_names().join(", "),
        if i.allows_sim() { "   <-- sim: INSECURE" } else { "" },
        i.code_cid,
        i.measurement,
        i.enclave_recipient,
        i.enclave_signer,
        i.cas_identity,
        i.owner,
        if i.revoked {
            "\n  REVOKED: no claim or proof is accepted; requesters may reclaim its tasks"
        } else if i.deprecated {
            "\n  DEPRECATED: no new tasks accepted"
        } else {
            ""
        },
    ));
    s
}
