//! `ecld task`: run a task end to end, or each step of the data flow on its own.

use std::{
    io::{Read, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context;
use ecld_sdk::{Client, Image, Step, TaskRequest, TaskState};
use ecld_types::{OfferId, StatusCode, TaskId, U256};
use serde::Serialize;

use super::{
    Exit,
    connect::ConnectArgs,
    progress::{Progress, Transfer},
};
use crate::output;

/// Exit code when a proof or a result fails verification (never trust such a result).
pub(crate) const EXIT_REJECTED: u8 = 4;

/// Arguments of `ecld task`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld task run stats --input notes.txt        the whole data flow; the result on stdout
  ecld task run python --code stats.py --input data.csv    your own code on a runner image
  ecld task submit stats --input notes.txt     only encrypt, upload and submit; prints the id
  ecld task watch 7 && ecld task verify 7 && ecld task fetch 7 -o result.txt
  ecld task list --json

Exit codes of run/watch/fetch: 0 success, 1 the program failed (or any other error),
2 the input or code was invalid, 3 the system failed (price refunded), 4 the proof or
result was rejected by verification.")]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Encrypt, upload, submit, wait, verify, fetch and decrypt: the whole data flow.
    Run(RunArgs),
    /// Encrypt the input to the image key, upload it and submit the task; prints its id.
    Submit(SubmitArgs),
    /// The task's state on chain.
    Status(IdArg),
    /// Wait until the task has a proof on chain (or the timeout passes).
    Watch(WatchArgs),
    /// Check the proof: enclave signer, input and result hashes, chain and contract.
    Verify(IdArg),
    /// Download, verify and decrypt the result (to stdout or --out).
    Fetch(FetchArgs),
    /// Your tasks (or everyone's with --all).
    List(ListArgs),
    /// Take the whole escrow back of a task without a result: at any time while no node
    /// holds it (a cancel), at once if its image was revoked, else after its deadline.
    #[command(visible_alias = "cancel")]
    Reclaim(IdArg),
}

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("the_input").required(true).args(["input", "input_text"])
))]
struct SubmitArgs {
    /// Image name (as in `ecld image list`, e.g. `stats`) or id (0x…).
    image: String,
    /// File with the program's input (stdin of the program); `-` reads stdin.
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// The input given as text on the command line instead of a file.
    #[arg(long, conflicts_with = "input")]
    input_text: Option<String>,
    /// Your own code for a runner image (a WASM module or script file).
    #[arg(long)]
    code: Option<PathBuf>,
    /// Offer to match directly in the same transaction (default: the cheapest fitting offer;
    /// `0` leaves the task open for any node to claim).
    #[arg(long)]
    offer: Option<u64>,
    /// Price in token base units (default: the matched offer's price).
    #[arg(long)]
    price: Option<U256>,
    /// Longest run time the program may take, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    max_runtime_ms: u64,
    /// Memory the program may use, in MB.
    #[arg(long, default_value_t = 64)]
    memory_mb: u32,
    /// Seconds from now after which you may reclaim the price if no result came.
    #[arg(long, default_value_t = 600)]
    deadline_s: u64,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[command(flatten)]
    submit: SubmitArgs,
    /// Write the decrypted result here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

#[derive(Debug, clap::Args)]
struct IdArg {
    /// The task id.
    id: TaskId,
}

#[derive(Debug, clap::Args)]
struct WatchArgs {
    /// The task id.
    id: TaskId,
    /// Seconds to wait.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
}

#[derive(Debug, clap::Args)]
struct FetchArgs {
    /// The task id.
    id: TaskId,
    /// Write the decrypted result here instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Everyone's tasks, not only yours.
    #[arg(long)]
    all: bool,
}

/// Runs `ecld task`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.connect.connect().await?;
    let outcome = match args.command {
        Command::Run(a) => run_task(&client, a).await,
        Command::Submit(a) => submit(&client, &a).await,
        Command::Status(a) => status(&client, a.id).await,
        Command::Watch(a) => watch(&client, a).await,
        Command::Verify(a) => verify(&client, a.id).await,
        Command::Fetch(a) => fetch(&client, a).await,
        Command::List(a) => list(&client, &a).await,
        Command::Reclaim(a) => reclaim(&client, a.id).await,
    };
    // A proof or result that failed verification ends with EXIT_REJECTED (`cmd::exit_code`).
    outcome
}

/// Whether `err` is a proof or result that failed verification.
pub(crate) fn rejected(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        matches!(e.downcast_ref::<ecld_sdk::Error>(), Some(ecld_sdk::Error::Verify(_)))
            || e.downcast_ref::<ecld_sdk::VerifyError>().is_some()
    })
}

async fn request(client: &Client, a: &SubmitArgs) -> anyhow::Result<(TaskRequest, Image)> {
    let image = client.resolve_image(&a.image).await?;
    let input = match (&a.input, &a.input_text) {
        (_, Some(text)) => text.clone().into_bytes(),
        (Some(path), None) if path.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).context("reading the input from stdin")?;
            buf
        }
        (Some(path), None) => std::fs::read(path)
            .with_context(|| format!("cannot read the input file {}", path.display()))?,
        (None, None) => anyhow::bail!(
            "give the program's input with --input FILE (or - for stdin) or --input-text TEXT"
        ),
    };
    let code = match &a.code {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read the code file {}", path.display()))?,
        ),
        None => None,
    };
    let offer = match a.offer {
        Some(0) => ecld_sdk::OfferChoice::Open,
        Some(n) => ecld_sdk::OfferChoice::Offer(
            OfferId::new(n).context("offer ids start at 1; use 0 to leave the task open")?,
        ),
        None => ecld_sdk::OfferChoice::Cheapest,
    };
    let req = TaskRequest {
        image: image.id,
        input,
        code,
        offer,
        price: a.price,
        max_runtime: Duration::from_millis(a.max_runtime_ms),
        memory_mb: a.memory_mb,
        deadline: Duration::from_secs(a.deadline_s),
    };
    Ok((req, image))
}

/// The TEE platforms whose enclaves may hold the image's signing key, so one of them signed
/// the proof; `sim` is marked INSECURE wherever a proof is shown.
pub(crate) fn platform_label(image: &Image) -> String {
    image
        .platform_names()
        .into_iter()
        .map(|p| if p == "sim" { "sim — INSECURE".to_owned() } else { p.to_owned() })
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize)]
struct RunOutput {
    task: TaskId,
    status: StatusCode,
    status_name: &'static str,
    exit_class: u8,
    signer: ecld_types::Address,
    /// The platforms whose enclaves may sign for the image (`sim` is INSECURE).
    platform: String,
    input_cid: String,
    result_cid: String,
    /// keccak256 of the user's code that ran (zero when the image ran its own program).
    code_hash: ecld_types::B256,
    /// The decrypted result as UTF-8 text when it is text.
    result: Option<String>,
    /// The decrypted result as hex when it is not text.
    result_hex: Option<String>,
    /// The program's exit code (absent when it did not exit: a trap or a limit).
    exit_code: Option<i32>,
    /// The program's stderr or the enclave's explanation (encrypted with the result).
    stderr: Option<String>,
    timings_ms: serde_json::Map<String, serde_json::Value>,
}

async fn run_task(client: &Client, a: RunArgs) -> anyhow::Result<()> {
    let (req, image) = request(client, &a.submit).await?;
    let platform = platform_label(&image);
    let progress = std::sync::Arc::new(Progress::new());
    client.on_transfer(Some(progress.transfer_callback()));
    let result = client
        .run(&req, Duration::from_secs(a.timeout_s), |step, done| progress.step(step, done))
        .await;
    client.on_transfer(None);
    progress.finish();
    let result = result?;
    let status = result.status;
    let output_bytes = result.output.as_ref().map(|o| o.stdout.clone()).unwrap_or_default();
    show_stderr(result.output.as_ref());
    if output::json() {
        let timings_ms = Step::ALL
            .iter()
            .map(|s| {
                (
                    s.label().to_owned(),
                    serde_json::json!(result.timings.get(*s).as_secs_f64() * 1e3),
                )
            })
            .collect();
        let (text, hex) = text_or_hex(&output_bytes);
        output::emit(
            &RunOutput {
                task: result.task,
                status,
                status_name: status.name(),
                exit_class: status.exit_class(),
                signer: result.verified.signer,
                platform: platform.clone(),
                input_cid: result.input_cid.clone(),
                result_cid: result.verified.record.result_cid.clone(),
                code_hash: result.verified.record.proof.code_hash,
                result: text,
                result_hex: hex,
                exit_code: result.output.as_ref().map(|o| o.exit_code).filter(|c| *c >= 0),
                stderr: result
                    .output
                    .as_ref()
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned()),
                timings_ms,
            },
            |_| String::new(),
        )?;
    } else {
        write_result(a.out.as_ref(), &output_bytes)?;
    }
    eprintln!(
        "task {}: {status}: {} (proof verified: signed by enclave {}, platform {platform})",
        result.task,
        status.describe(),
        result.verified.signer
    );
    finish(status)
}

/// The program's own stderr (part of the encrypted result) goes to our stderr, marked.
fn show_stderr(output: Option<&ecld_sdk::ProgramOutput>) {
    if let Some(o) = output.filter(|o| !o.stderr.is_empty()) {
        eprintln!(
            "program stderr (exit code {}):\n{}",
            o.exit_code,
            String::from_utf8_lossy(&o.stderr).trim_end()
        );
    }
}

fn finish(status: StatusCode) -> anyhow::Result<()> {
    match status.exit_class() {
        0 => Ok(()),
        code => Err(Exit { code }.into()),
    }
}

fn text_or_hex(bytes: &[u8]) -> (Option<String>, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Some(s.to_owned()), None),
        Err(_) => (None, Some(format!("0x{}", hex_encode(bytes)))),
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn write_result(out: Option<&PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(path) => std::fs::write(path, bytes)
            .with_context(|| format!("cannot write the result to {}", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes)?;
            stdout.flush()?;
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct SubmitOutput {
    task: TaskId,
    input_cid: String,
    input_hash: ecld_types::B256,
    price: U256,
    offer: Option<OfferId>,
    /// Whether the whole escrow came from the deposit (no permit).
    from_deposit: bool,
    tx: ecld_types::B256,
}

async fn submit(client: &Client, a: &SubmitArgs) -> anyhow::Result<()> {
    let (req, _) = request(client, a).await?;
    let shown = Transfer::new("uploaded");
    client.on_transfer(Some(shown.callback()));
    let s = client.submit(&req).await;
    client.on_transfer(None);
    shown.finish();
    let s = s?;
    output::emit(
        &SubmitOutput {
            task: s.task,
            input_cid: s.input_cid,
            input_hash: s.input_hash,
            price: s.price,
            offer: s.offer,
            from_deposit: s.from_deposit,
            tx: s.tx,
        },
        |o| o.task.to_string(),
    )
}

async fn status(client: &Client, id: TaskId) -> anyhow::Result<()> {
    let info = client.task(id).await?;
    output::emit(&info, |i| {
        format!(
            "task {}\n  image     {}\n  requester {}\n  state     {}\n  price     {}\n  input     {}",
            i.id, i.image, i.requester, i.state, i.price, i.input_hash
        )
    })
}

async fn watch(client: &Client, a: WatchArgs) -> anyhow::Result<()> {
    let progress = Progress::new();
    progress.step(Step::Execute, false);
    let info = client.wait(a.id, Duration::from_secs(a.timeout_s)).await;
    progress.finish();
    let info = info?;
    output::emit(&info, |i| format!("task {}: {}", i.id, i.state))?;
    match info.state {
        TaskState::Done { status } => finish(status),
        _ => Ok(()),
    }
}

#[derive(Serialize)]
struct VerifyOutput {
    task: TaskId,
    verified: bool,
    status: StatusCode,
    signer: ecld_types::Address,
    /// The platforms whose enclaves may sign for the image (`sim` is INSECURE).
    platform: String,
    result_hash: ecld_types::B256,
    result_cid: String,
    /// keccak256 of the user's code that ran (zero when the image ran its own program).
    code_hash: ecld_types::B256,
}

async fn verify(client: &Client, id: TaskId) -> anyhow::Result<()> {
    let (v, _) = client.verify(id).await?;
    let image = client.image(client.task(id).await?.image).await?;
    let out = VerifyOutput {
        task: id,
        verified: true,
        status: v.record.proof.status,
        signer: v.signer,
        platform: platform_label(&image),
        result_hash: v.record.proof.result_hash,
        result_cid: v.record.result_cid,
        code_hash: v.record.proof.code_hash,
    };
    output::emit(&out, |o| {
        let code = if o.code_hash.is_zero() {
            "none (the image ran its own program)".to_owned()
        } else {
            format!("{} (keccak256 of the code you sent)", o.code_hash)
        };
        format!(
            "task {}: proof verified\n  status      {}\n  signed by   {} (the image's enclave signer)\n  platform    {}\n  code        {code}\n  result      {} ({})",
            o.task, o.status, o.signer, o.platform, o.result_cid, o.result_hash
        )
    })
}

async fn fetch(client: &Client, a: FetchArgs) -> anyhow::Result<()> {
    let shown = Transfer::new("downloaded");
    client.on_transfer(Some(shown.callback()));
    let r = client.fetch(a.id).await;
    client.on_transfer(None);
    shown.finish();
    let r = r?;
    show_stderr(r.output.as_ref());
    let bytes = r.output.map(|o| o.stdout).unwrap_or_default();
    if output::json() {
        let (text, hex) = text_or_hex(&bytes);
        output::emit(
            &serde_json::json!({
                "task": a.id, "status": r.status, "status_name": r.status.name(),
                "result": text, "result_hex": hex,
            }),
            |_| String::new(),
        )?;
    } else {
        write_result(a.out.as_ref(), &bytes)?;
    }
    eprintln!("task {}: {}: {}", a.id, r.status, r.status.describe());
    finish(r.status)
}

async fn list(client: &Client, a: &ListArgs) -> anyhow::Result<()> {
    let tasks = client.tasks(!a.all).await?;
    output::emit(&tasks, |ts| {
        if ts.is_empty() {
            return "no tasks yet: run one with `ecld task run stats --input FILE`".to_owned();
        }
        let mut s = format!("{:>6}  {:<10}  {:<12}  {}", "TASK", "IMAGE", "PRICE", "STATE");
        for t in ts {
            let image = t.image.to_string();
            s.push_str(&format!(
                "\n{:>6}  {:<10}  {:<12}  {}",
                t.id,
                &image[..10.min(image.len())],
                t.price,
                t.state
            ));
        }
        s
    })
}

async fn reclaim(client: &Client, id: TaskId) -> anyhow::Result<()> {
    let tx = client.reclaim(id).await?;
    output::emit(&serde_json::json!({ "task": id, "reclaimed": true, "tx": tx }), |_| {
        format!("task {id}: escrow reclaimed (tx {tx})")
    })
}
