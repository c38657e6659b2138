//! `ecld store`: run the content store, and add, fetch, pin and collect content in it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use ecld_store::{AddOptions, CatOptions, ContentStore, KuboClient, StoreConfig};
use serde::Serialize;

use super::progress::Transfer;
use crate::output;

/// Arguments of `ecld store`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  ecld store serve --data-dir ~/.ecld/store --quota 20GiB
  ecld store add input.age                   prints the CID (pinned)
  ecld store cat bafy... -o result.age       verifies every block against the CID
  ecld store cid input.age                   the CID, computed locally without a store
  ecld store gc                              removes unpinned blocks

The API is a subset of the Kubo RPC: any IPFS (Kubo) node works with add/cat/pin too.")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
enum StoreCommand {
    /// Run the store: Kubo RPC subset on /api/v0 and a read-only gateway on /ipfs/{cid}.
    Serve(ServeArgs),
    /// Add a file (streamed) and print its CID.
    Add {
        /// The file to add; `-` reads standard input.
        file: PathBuf,
        /// Do not pin: the content goes at the next garbage collection.
        #[arg(long)]
        no_pin: bool,
        #[command(flatten)]
        api: ApiArg,
    },
    /// Fetch a file, verifying every block against the CID.
    Cat {
        /// The CID.
        cid: String,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArg,
    },
    /// Pin a CID (the store must hold all of it).
    Pin {
        /// The CID.
        cid: String,
        #[command(flatten)]
        api: ApiArg,
    },
    /// Remove the pin of a CID.
    Unpin {
        /// The CID.
        cid: String,
        #[command(flatten)]
        api: ApiArg,
    },
    /// Remove every block that no pin reaches.
    Gc {
        #[command(flatten)]
        api: ApiArg,
    },
    /// Compute a file's CID locally (the CID `ipfs add --cid-version=1 --raw-leaves` gives).
    Cid {
        /// The file; `-` reads standard input.
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct ApiArg {
    /// URL of the store API (ecld store or any Kubo node).
    #[arg(long = "api", env = "ECLD_STORE", default_value = "http://127.0.0.1:5001")]
    url: String,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the ready line says which).
    #[arg(long, default_value = "127.0.0.1:5001")]
    listen: SocketAddr,
    /// Directory of blocks and pins (created if missing).
    #[arg(long, env = "ECLD_STORE_DIR", default_value = ".ecld/store")]
    data_dir: PathBuf,
    /// Maximum size of stored blocks, e.g. 500MB, 20GiB (none by default).
    #[arg(long, value_parser = parse_size)]
    quota: Option<u64>,
    /// Maximum size of one uploaded file.
    #[arg(long, value_parser = parse_size, default_value = "64GiB")]
    max_upload: u64,
}

#[derive(Serialize)]
struct Ready {
    url: String,
    addr: SocketAddr,
    data_dir: PathBuf,
}

#[derive(Serialize)]
struct CidOut {
    cid: String,
}

/// Runs `ecld store`.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        StoreCommand::Serve(a) => serve(a).await,
        StoreCommand::Add { file, no_pin, api } => {
            let client = client(&api)?;
            let (reader, total) = open(&file).await?;
            let shown = Transfer::new("uploaded");
            let options = AddOptions { pin: !no_pin, total, progress: Some(shown.callback()) };
            let cid = client
                .add(reader, options)
                .await
                .with_context(|| format!("add {}", file.display()));
            shown.finish();
            let cid = cid?;
            output::emit(&CidOut { cid: cid.to_string() }, |c| c.cid.clone())
        }
        StoreCommand::Cat { cid, output: out, api } => {
            let client = client(&api)?;
            let cid = ecld_store::parse_cid(&cid)?;
            let shown = Transfer::new("downloaded");
            let options =
                || CatOptions { progress: Some(shown.callback()), ..CatOptions::default() };
            match out {
                Some(path) => {
                    let tmp = path.with_extension("partial");
                    let mut f = tokio::fs::File::create(&tmp)
                        .await
                        .with_context(|| format!("create {}", tmp.display()))?;
                    let written = client.cat(&cid, &mut f, options()).await;
                    shown.finish();
                    written?;
                    f.sync_all().await?;
                    tokio::fs::rename(&tmp, &path)
                        .await
                        .with_context(|| format!("rename to {}", path.display()))
                }
                None => {
                    let mut stdout = tokio::io::stdout();
                    let written = client.cat(&cid, &mut stdout, options()).await;
                    shown.finish();
                    written.map(drop).map_err(Into::into)
                }
            }
        }
        StoreCommand::Pin { cid, api } => {
            let cid = ecld_store::parse_cid(&cid)?;
            client(&api)?.pin(&cid).await?;
            output::emit(&CidOut { cid: cid.to_string() }, |c| format!("pinned {}", c.cid))
        }
        StoreCommand::Unpin { cid, api } => {
            let cid = ecld_store::parse_cid(&cid)?;
            client(&api)?.unpin(&cid).await?;
            output::emit(&CidOut { cid: cid.to_string() }, |c| format!("unpinned {}", c.cid))
        }
        StoreCommand::Gc { api } => {
            let removed = client(&api)?.repo_gc().await?;
            output::emit(&serde_json::json!({ "removed_blocks": removed }), |_| {
                format!("removed {removed} blocks")
            })
        }
        StoreCommand::Cid { file } => {
            let (mut reader, _) = open(&file).await?;
            let cid = local_cid(&mut reader).await?;
            output::emit(&CidOut { cid: cid.to_string() }, |c| c.cid.clone())
        }
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let config = StoreConfig {
        listen: a.listen,
        data_dir: a.data_dir,
        quota_bytes: a.quota,
        max_upload_bytes: a.max_upload,
    };
    let handle = ecld_store::spawn(config.clone()).await?;
    output::emit(
        &Ready { url: handle.url(), addr: handle.addr(), data_dir: config.data_dir },
        |r| format!("store ready at {} (data in {})", r.url, r.data_dir.display()),
    )?;
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    };
    stop.await.context("wait for a stop signal")?;
    tracing::info!(target: "ecld", "stopping the store");
    handle.shutdown().await?;
    Ok(())
}

fn client(api: &ApiArg) -> anyhow::Result<KuboClient> {
    Ok(KuboClient::new(&api.url)?)
}

async fn open(
    file: &PathBuf,
) -> anyhow::Result<(Box<dyn tokio::io::AsyncRead + Send + Unpin>, Option<u64>)> {
    if file.as_os_str() == "-" {
        return Ok((Box::new(tokio::io::stdin()), None));
    }
    let f =
        tokio::fs::File::open(file).await.with_context(|| format!("open {}", file.display()))?;
    let len = f.metadata().await.ok().map(|m| m.len());
    Ok((Box::new(f), len))
}

async fn local_cid(
    reader: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
) -> anyhow::Result<ecld_store::Cid> {
    use tokio::io::AsyncReadExt as _;
    let mut builder = ecld_store::unixfs::DagBuilder::hash_only();
    let mut buf = vec![0u8; ecld_store::unixfs::CHUNK_SIZE];
    let mut sink = Vec::new();
    loop {
        let n = reader.read(&mut buf).await.context("read the file")?;
        if n == 0 {
            break;
        }
        builder.write(&buf[..n], &mut sink);
        sink.clear();
    }
    Ok(builder.finish(&mut sink).cid)
}

/// Parses `1048576`, `500MB`, `20GiB` (SI and binary units, case-insensitive).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size such as 500MB or 20GiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?} in {s:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert!(parse_size("12 parsecs").unwrap_err().contains("unknown size unit"));
    }
}
