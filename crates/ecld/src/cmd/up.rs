//! `ecld up`: the whole local stack in one command.
//!
//! In this process: the devnet chain, the store and the CAS. As a child process: one node
//! (`ecld node`), which starts its enclaves (`ecld enclave`) as its own children. `ecld up`
//! supervises the node: a node that dies is started again (its journal carries its tasks
//! over), and the stack stops only when it keeps dying. State lives in the data directory,
//! so a second `ecld up` continues where the first stopped: the chain journal, the store's
//! blocks, the CAS sessions (image keys), the node's journal, the keys.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use ecld_sdk::{Client, ClientConfig, Image, PublishRequest};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::output;

/// Arguments of `ecld up`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld up                                   start everything; Ctrl-C stops it
  ecld up --data-dir /tmp/ecld --ephemeral-ports
  export ECLD_DATA_DIR=/tmp/ecld            then, in another shell, the other commands find it
  ecld task run stats --input-text '3 1 4 1 5'
  ecld image publish --name mine --module my.wasm --allow-sim && ecld task run mine --input-text hi

State persists in the data directory across restarts; delete it to start afresh. The node
runs every image published on this stack (it also offers `any` image); a node that dies is
restarted, and the stack stops when the node dies 5 times within 60 s.")]
pub(crate) struct Args {
    /// Where state lives (default: ./.ecld when it exists, else ~/.local/share/ecld).
    #[arg(long, env = "ECLD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Chain JSON-RPC port.
    #[arg(long, env = "ECLD_RPC_PORT", default_value_t = 8545)]
    pub(crate) rpc_port: u16,
    /// Store (Kubo RPC API) port.
    #[arg(long, env = "ECLD_STORE_PORT", default_value_t = 5001)]
    pub(crate) store_port: u16,
    /// CAS port.
    #[arg(long, env = "ECLD_CAS_PORT", default_value_t = 8090)]
    pub(crate) cas_port: u16,
    /// Port of the dApp page (and its forwards to the chain and the store). When the default
    /// port is taken, the page is served on a free port instead (the printed `web` URL says
    /// which); another port given here must be free.
    #[arg(long, env = "ECLD_WEB_PORT", default_value_t = DEFAULT_WEB_PORT)]
    pub(crate) web_port: u16,
    /// Let the system pick free ports for every service (what tests use).
    #[arg(long)]
    pub(crate) ephemeral_ports: bool,
    /// Directory of example WebAssembly programs to publish as images (one image per
    /// `NAME.wasm`).
    #[arg(long, env = "ECLD_PROGRAMS", default_value = "programs/out")]
    pub(crate) programs: PathBuf,
    /// Do not start a node.
    #[arg(long)]
    pub(crate) no_node: bool,
    /// Concurrent tasks the node offers per image.
    #[arg(long, default_value_t = 8)]
    pub(crate) node_slots: u16,
    /// How long the node lets a finished task's proof wait for others, to settle them in one
    /// `submitResults` transaction (less gas per task, more latency); 0 sends each at once.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub(crate) batch_window_ms: u64,
    /// Stop when stdin reaches end of file (for supervisors and tests).
    #[arg(long, hide = true)]
    pub(crate) stop_on_stdin_eof: bool,
}

/// What `ecld up` prints when the stack is ready.
#[derive(Debug, Serialize)]
struct Ready {
    data_dir: PathBuf,
    config: PathBuf,
    deployment: PathBuf,
    rpc: String,
    store: String,
    cas: String,
    /// The dApp page.
    web: String,
    chain_id: u64,
    chain_dir: PathBuf,
    store_dir: PathBuf,
    cas_dir: PathBuf,
    demo: DemoKey,
    node: Option<NodeInfo>,
    images: Vec<ImageInfo>,
    /// The sim platform key of the node (hex): `ecld image publish --allow-sim` names it.
    sim_platform_key: String,
    /// The line that lets other shells find this stack, when its data directory is not one
    /// they search on their own.
    export: Option<String>,
}

#[derive(Debug, Serialize)]
struct DemoKey {
    account: ecld_types::Address,
    key: PathBuf,
    identity: PathBuf,
    recipient: String,
    balance: ecld_types::U256,
}

#[derive(Debug, Serialize)]
struct NodeInfo {
    account: ecld_types::Address,
    data_dir: PathBuf,
    pid: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ImageInfo {
    name: String,
    id: ecld_types::ImageId,
    allows_sim: bool,
}

/// Default port of the dApp page (Vite's, which the page was first served on).
const DEFAULT_WEB_PORT: u16 = 5173;

/// Dev accounts (from the public test mnemonic) and their roles.
const DEPLOYER: usize = 0;
const DEMO_USER: usize = 1;
const NODE: usize = 2;
/// DevToken minted to each dev account at deployment (10^24 base units).
const MINT_EACH: u128 = 1_000_000_000_000_000_000_000_000;
/// Price per task of the node's offers, in token base units.
const OFFER_PRICE: u64 = 1_000_000_000_000_000;
/// Price per task of the node's offer for any image: a fallback above the per-image offers,
/// so that tasks of the example images go to their own offers (the cheapest), and an open task
/// priced for those offers is not taken by this one.
const ANY_OFFER_PRICE: u64 = 10 * OFFER_PRICE;

/// A running local stack (in this process, plus the node's process tree).
pub(crate) struct Stack {
    devnet: ecld_devnet::DevnetHandle,
    store: ecld_store::StoreHandle,
    cas: ecld_cas::CasHandle,
    web: crate::web::WebHandle,
    node: Option<Supervised>,
    accounts: Vec<ecld_devnet::DevAccount>,
    ready: Ready,
}

impl Stack {
    /// The client configuration of the demo user.
    pub(crate) fn config(&self) -> anyhow::Result<ClientConfig> {
        Ok(ClientConfig::load(&self.ready.config)?)
    }

    /// Keys of funded dev accounts that have no role in the stack (for benchmarks).
    pub(crate) fn spare_accounts(
        &self,
        n: usize,
    ) -> anyhow::Result<Vec<alloy::signers::local::PrivateKeySigner>> {
        let spare = &self.accounts[(NODE + 1).min(self.accounts.len())..];
        anyhow::ensure!(
            n <= spare.len(),
            "only {} spare dev accounts; ask for fewer clients",
            spare.len()
        );
        Ok(spare[..n].iter().map(|a| a.signer().clone()).collect())
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.ready.data_dir
    }

    /// Stops the node (SIGTERM, then waits), the CAS, the store and the chain, and removes
    /// the client configuration so later commands do not try to reach a stopped stack.
    pub(crate) async fn stop(mut self) {
        if let Some(node) = self.node.as_mut() {
            stop_child(&mut node.child).await;
        }
        let _ = std::fs::remove_file(&self.ready.config);
        self.web.shutdown().await;
        self.cas.shutdown().await;
        let _ = self.store.shutdown().await;
        let _ = self.devnet.shutdown().await;
    }
}

/// Runs `ecld up`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut stack = start(&args).await?;
    output::emit(&stack.ready, human)?;
    wait_for_stop(args.stop_on_stdin_eof, stack.node.as_mut()).await;
    eprintln!("ecld up: stopping");
    let data = stack.ready.data_dir.clone();
    stack.stop().await;
    eprintln!("ecld up: stopped; state kept in {}", data.display());
    Ok(())
}

/// Starts the stack `args` describes and waits until the node's offers are on chain.
pub(crate) async fn start(args: &Args) -> anyhow::Result<Stack> {
    let data = args.data_dir.clone().unwrap_or_else(ecld_sdk::config::default_data_dir);
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let data = data.canonicalize()?;
    let port = |p: u16| if args.ephemeral_ports { 0 } else { p };
    let bind = |p: u16| SocketAddr::from(([127, 0, 0, 1], port(p)));

    // 1. Chain.
    let chain_dir = data.join("chain");
    let devnet = ecld_devnet::spawn(ecld_devnet::DevnetConfig {
        bind: bind(args.rpc_port),
        state_dir: Some(chain_dir.clone()),
        ..ecld_devnet::DevnetConfig::default()
    })
    .await
    .with_context(|| in_use(args.rpc_port, "--rpc-port"))?;
    let rpc = format!("http://{}", devnet.addr());
    let accounts = devnet.accounts();

    // 2. Contracts (once per chain).
    let deployment_file = data.join("deployment.json");
    let deployment = deploy_once(&rpc, &deployment_file, accounts).await?;

    // 3. Store and CAS.
    let store_dir = data.join("store");
    let store = ecld_store::spawn(ecld_store::StoreConfig {
        listen: bind(args.store_port),
        data_dir: store_dir.clone(),
        ..ecld_store::StoreConfig::default()
    })
    .await
    .with_context(|| in_use(args.store_port, "--store-port"))?;
    let store_url = format!("http://{}", store.addr());
    let cas_dir = data.join("cas");
    let cas_token_file = data.join("keys").join("cas-admin.token");
    let cas_token = match std::fs::read_to_string(&cas_token_file) {
        Ok(t) if !t.trim().is_empty() => ecld_cas::AdminToken::new(t.trim()),
        _ => {
            let t = ecld_cas::AdminToken::generate();
            write_key(&cas_token_file, t.expose())?;
            t
        }
    };
    let cas =
        ecld_cas::spawn(ecld_cas::CasConfig::new(bind(args.cas_port), cas_dir.clone(), cas_token))
            .await
            .with_context(|| in_use(args.cas_port, "--cas-port"))?;
    let cas_url = format!("http://{}", cas.addr());

    // 4. Keys and the client configuration.
    let keys = data.join("keys");
    let demo_key = write_key(&keys.join("demo.eth.key"), &accounts[DEMO_USER].private_key_hex())?;
    let demo_identity = keys.join("demo.age-key");
    if !demo_identity.exists() {
        ecld_crypto::AgeIdentity::generate()
            .save(&demo_identity)
            .with_context(|| format!("cannot write {}", demo_identity.display()))?;
    }
    let publisher_key =
        write_key(&keys.join("publisher.eth.key"), &accounts[DEPLOYER].private_key_hex())?;
    let node_key = write_key(&keys.join("node.eth.key"), &accounts[NODE].private_key_hex())?;
    let config = ClientConfig {
        rpc: rpc.clone(),
        store: store_url.clone(),
        cas: Some(cas_url.clone()),
        cas_token: Some(cas_token_file),
        deployment: deployment_file.clone(),
        key: Some(demo_key.clone()),
        identity: Some(demo_identity.clone()),
        sim_platform_keys: Vec::new(),
    };

    // 5. Example images, runnable by this stack's node on the simulated TEE.
    let node_dir = data.join("node");
    let sim_key_file = node_dir.join("sim-platform.key");
    let sim_key = ecld_tee::SimPlatformKey::load_or_generate(&sim_key_file).with_context(|| {
        format!("cannot create the node's sim platform key {}", sim_key_file.display())
    })?;
    let publisher =
        Client::connect(&ClientConfig { key: Some(publisher_key), ..config.clone() }).await?;
    let sim_key_hex = sim_key.public_hex();
    let images = publish_examples(&publisher, &args.programs, &sim_key_hex).await?;
    let config = ClientConfig {
        sim_platform_keys: if args.no_node { Vec::new() } else { vec![sim_key_hex.clone()] },
        ..config
    };

    // 6. The node.
    let mut node = if args.no_node || images.is_empty() {
        None
    } else {
        let file = write_node_config(&NodeSetup {
            dir: &node_dir,
            key: &node_key,
            sim_key: &sim_key_file,
            config: &config,
            deployment: &deployment_file,
            cas: &cas_url,
            images: &images,
            slots: args.node_slots,
            batch_window_ms: args.batch_window_ms,
        })?;
        Some(Supervised::start(file)?)
    };
    let user = Client::connect(&config).await?;
    if let Some(node) = node.as_mut() {
        wait_for_offers(&user, &images, &mut node.child).await?;
    }

    // 7. The dApp page, with its forwards to the chain and the store.
    let web = crate::web::spawn(crate::web::WebConfig {
        listen: bind(args.web_port),
        rpc: rpc.clone(),
        store: store_url.clone(),
        deployment: deployment_file.clone(),
        fall_back_to_free_port: args.web_port == DEFAULT_WEB_PORT,
    })
    .await?;

    // Written last: its presence means the stack is ready.
    let config_file = data.join(ecld_sdk::config::CLIENT_CONFIG_FILE);
    config.save(&config_file)?;

    let ready = Ready {
        data_dir: data.clone(),
        config: config_file,
        deployment: deployment_file,
        rpc,
        store: store_url,
        cas: cas_url,
        web: web.url(),
        chain_id: deployment.chain_id,
        chain_dir,
        store_dir,
        cas_dir,
        demo: DemoKey {
            account: accounts[DEMO_USER].address(),
            key: demo_key,
            identity: demo_identity,
            recipient: user.recipient().unwrap_or_default(),
            balance: user.balance(None).await?,
        },
        node: node.as_ref().map(|n| NodeInfo {
            account: accounts[NODE].address(),
            data_dir: node_dir.clone(),
            pid: n.child.id(),
        }),
        images: images
            .iter()
            .map(|i| ImageInfo { name: i.name.clone(), id: i.id, allows_sim: i.allows_sim() })
            .collect(),
        sim_platform_key: sim_key_hex,
        export: export_line(&data),
    };
    let accounts = accounts.to_vec();
    Ok(Stack { devnet, store, cas, web, node, accounts, ready })
}

fn in_use(port: u16, flag: &str) -> String {
    format!(
        "cannot listen on 127.0.0.1:{port}: is another `ecld up` running? Stop it, or pick another port with {flag} (or --ephemeral-ports)"
    )
}

fn write_key(path: &Path, hex: &str) -> anyhow::Result<PathBuf> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        ecld_crypto::keys::write_secret_file(path, hex.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(path.to_owned())
}

async fn deploy_once(
    rpc: &str,
    file: &Path,
    accounts: &[ecld_devnet::DevAccount],
) -> anyhow::Result<ecld_contracts::Deployment> {
    use alloy::providers::{Provider, ProviderBuilder};
    let provider = ProviderBuilder::new()
        .wallet(accounts[DEPLOYER].signer().clone())
        .connect_http(rpc.parse()?);
    if let Ok(existing) = ecld_contracts::Deployment::load(file) {
        let code = provider.get_code_at(existing.marketplace).await?;
        if !code.is_empty() {
            return Ok(existing);
        }
        tracing::warn!(target: "ecld::up", "the deployment in {} is not on this chain; deploying again", file.display());
    }
    let holders = accounts.iter().map(ecld_devnet::DevAccount::address).collect();
    let deployment = ecld_contracts::deploy_all(
        &provider,
        &ecld_contracts::DeployOptions::dev(holders, ecld_types::U256::from(MINT_EACH)),
    )
    .await?;
    deployment.save(file)?;
    Ok(deployment)
}

/// Publishes every `NAME.wasm` under `programs` as image `NAME`, and the generic WebAssembly
/// runner image `wasm` (built into ecld) when the directory does not carry it.
async fn publish_examples(
    publisher: &Client,
    programs: &Path,
    sim_key: &str,
) -> anyhow::Result<Vec<Image>> {
    let mut modules: Vec<PathBuf> = match std::fs::read_dir(programs) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect(),
        Err(_) => {
            eprintln!(
                "ecld up: no example programs in {} (build them with scripts/build-programs, or pass --programs DIR); only the wasm runner image is published",
                programs.display()
            );
            Vec::new()
        }
    };
    modules.sort();
    let mut sources = Vec::new();
    for path in modules {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let module =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        sources.push((name, module, path.display().to_string()));
    }
    if !sources.iter().any(|(name, ..)| name == WASM_RUNNER_IMAGE) {
        let module = ecld_enclave::runner::wasm_runner_image();
        sources.push((WASM_RUNNER_IMAGE.to_owned(), module, "the built-in wasm runner".into()));
    }
    let mut images = Vec::new();
    for (name, module, source) in sources {
        let policy = PublishRequest::sim_policy(&module, &[sim_key.to_owned()])?;
        let image = publisher
            .publish_image(&PublishRequest {
                name,
                version: "1".to_owned(),
                module,
                policy,
                cas: None,
                cas_token: None,
            })
            .await
            .with_context(|| format!("publishing {source}"))?;
        images.push(image);
    }
    Ok(images)
}

/// Name of the generic WebAssembly runner image (docs/runners.md).
const WASM_RUNNER_IMAGE: &str = "wasm";

/// What the node of the local stack is given.
#[derive(Clone, Copy)]
struct NodeSetup<'a> {
    dir: &'a Path,
    key: &'a Path,
    sim_key: &'a Path,
    config: &'a ClientConfig,
    deployment: &'a Path,
    cas: &'a str,
    images: &'a [Image],
    slots: u16,
    batch_window_ms: u64,
}

/// Writes the node's configuration: one offer per image, and one for any image at
/// [`ANY_OFFER_PRICE`] (so an image published later on this stack runs too). Returns the file.
fn write_node_config(n: &NodeSetup<'_>) -> anyhow::Result<PathBuf> {
    let NodeSetup { dir, key, sim_key, config, deployment, cas, images, slots, batch_window_ms } =
        *n;
    std::fs::create_dir_all(dir)?;
    let mut toml = format!(
        "data_dir = {dir:?}\n\n[chain]\nrpc_url = {rpc:?}\nkey_file = {key:?}\ndeployment_file = {deployment:?}\npoll_interval_ms = 5\nreorg_depth = 0\nbatch_window_ms = {batch_window_ms}\n\n\
         [store]\nurl = {store:?}\n\n[cas]\nurl = {cas:?}\n\n[enclave]\nplatform = \"sim\"\nsim_key_file = {sim_key:?}\n",
        sim_key = sim_key.display().to_string(),
        dir = dir.display().to_string(),
        rpc = config.rpc,
        key = key.display().to_string(),
        deployment = deployment.display().to_string(),
        store = config.store,
    );
    let offer = |image: &str, price: u64| {
        format!(
            "\n[[offers]]\nimage = \"{image}\"\nslots = {slots}\nmemory_mb = 256\nmax_runtime_s = 60\nprice = \"{price}\"\n"
        )
    };
    for image in images {
        toml.push_str(&offer(&image.id.to_string(), OFFER_PRICE));
    }
    toml.push_str(&offer("any", ANY_OFFER_PRICE));
    let file = dir.join("node.toml");
    std::fs::write(&file, toml)?;
    Ok(file)
}

/// How often the node may die within [`RESTART_WINDOW`] before `ecld up` gives up on it.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// The node's process, started again when it dies (as a supervisor would).
pub(crate) struct Supervised {
    config: PathBuf,
    child: tokio::process::Child,
    /// When the node died recently, for the restart budget.
    deaths: Vec<Instant>,
}

impl Supervised {
    fn start(config: PathBuf) -> anyhow::Result<Self> {
        let child = spawn_node(&config)?;
        Ok(Self { config, child, deaths: Vec::new() })
    }

    /// Waits until the node dies and starts it again; returns an error (the stack should
    /// stop) when it died [`MAX_RESTARTS`] times within [`RESTART_WINDOW`] or cannot start.
    async fn watch(&mut self) -> anyhow::Error {
        loop {
            let status = match self.child.wait().await {
                Ok(status) => status.to_string(),
                Err(e) => format!("cannot wait for it: {e}"),
            };
            let now = Instant::now();
            self.deaths.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
            self.deaths.push(now);
            if self.deaths.len() >= MAX_RESTARTS {
                return anyhow::anyhow!(
                    "the node exited ({status}) {} times within {} s; stopping the stack (see its log above)",
                    self.deaths.len(),
                    RESTART_WINDOW.as_secs()
                );
            }
            eprintln!("ecld up: the node exited ({status}); restarting it");
            // A moment for the chain to settle what the dead node sent and for its port
            // to be released.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match spawn_node(&self.config) {
                Ok(child) => {
                    self.child = child;
                    eprintln!(
                        "ecld up: the node restarted (pid {}); its journal carries its tasks over",
                        self.child.id().map_or_else(|| "?".to_owned(), |p| p.to_string())
                    );
                }
                Err(e) => return e.context("cannot restart the node"),
            }
        }
    }
}

fn spawn_node(config: &Path) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe().context("cannot find the ecld binary to start the node")?;
    tokio::process::Command::new(exe)
        .arg("node")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start `ecld node`")
}

/// `export ECLD_DATA_DIR=…` when `data` is not where the other commands look by themselves.
fn export_line(data: &Path) -> Option<String> {
    let found = ecld_sdk::config::default_locations()
        .iter()
        .filter_map(|p| p.parent().and_then(|d| d.canonicalize().ok()))
        .any(|d| d == data);
    (!found).then(|| format!("export ECLD_DATA_DIR={}", shell_quote(&data.display().to_string())))
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

async fn wait_for_offers(
    user: &Client,
    images: &[Image],
    node: &mut tokio::process::Child,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let offers = user.offers().await?;
        if images.iter().all(|i| offers.iter().any(|o| o.image == Some(i.id)))
            && offers.iter().any(|o| o.image.is_none())
        {
            return Ok(());
        }
        if let Some(status) = node.try_wait()? {
            anyhow::bail!(
                "the node exited ({status}) before registering its offers; see its log above"
            );
        }
        if start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the node registered no offers within 60 s; see its log above");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_stop(stdin_eof: bool, node: Option<&mut Supervised>) {
    let stdin = async {
        if stdin_eof {
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        } else {
            std::future::pending::<()>().await;
        }
    };
    let node_exit = async {
        match node {
            Some(node) => {
                let err = node.watch().await;
                eprintln!("ecld up: {err:#}");
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = stdin => {}
        () = node_exit => {}
        () = term => {}
    }
}

/// Asks the node to stop (SIGTERM, so it finishes its journal) and waits; kills it after
/// 10 s.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ =
            tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn human(r: &Ready) -> String {
    let mut s = format!(
        "ecld local stack is up (state in {})\n\n  web     {}  (the dApp page: open it in a browser)\n  chain   {}  (chain id {})\n  store   {}\n  CAS     {}\n",
        r.data_dir.display(),
        r.web,
        r.rpc,
        r.chain_id,
        r.store,
        r.cas
    );
    if let Some(n) = &r.node {
        s.push_str(&format!(
            "  node    {} (enclaves on the simulated TEE: INSECURE, development only)\n",
            n.account
        ));
    }
    s.push_str("\n  images\n");
    for i in &r.images {
        s.push_str(&format!(
            "    {:<12} {}{}\n",
            i.name,
            i.id,
            if i.allows_sim { "  (allows sim: INSECURE)" } else { "" }
        ));
    }
    if let Some(line) = &r.export {
        s.push_str(&format!("\n  other shells find this stack after:\n    {line}\n",));
    }
    s.push_str(&format!(
        "\n  demo key (funded with {} ECLD base units; a public test key: never use it on a real chain)\n    account   {}\n    key       {}\n    identity  {}\n\n  client config {}\n\n\
         Try:  ecld task run stats --input-text \"3 1 4 1 5 9 2 6\"\n      \
         ecld image publish --name mine --module my.wasm --allow-sim   (then: ecld task run mine)\n\
         Ctrl-C stops the stack.",
        r.demo.balance,
        r.demo.account,
        r.demo.key.display(),
        r.demo.identity.display(),
        r.config.display()
    ));
    s
}
