//! kill -9 of the real `ecld store serve` process during a large add, then a restart: the
//! store is consistent, the partial file is absent, what was pinned before is intact, and gc
//! removes the orphaned blocks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ecld_store::unixfs::DagBuilder;
use ecld_store::{AddOptions, ContentStore, KuboClient, StoreError};

use crate::common::content;

/// The `ecld` binary of this build (`cargo test --workspace` builds it; `$ECLD_BIN` overrides).
fn ecld_bin() -> PathBuf {
    let path = std::env::var_os("ECLD_BIN").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("ecld")
    });
    assert!(path.exists(), "{} is missing: build it with `cargo build -p ecld`", path.display());
    path
}

struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Serve {
    let mut child = Command::new(ecld_bin())
        .args(["--json", "store", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
    Serve { child, url: ready["url"].as_str().unwrap().to_owned() }
}

fn block_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("blocks"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

/// `chunks` MiB-sized pieces of the i % 251 content (251 × 4096 bytes, so pieces repeat).
fn big_stream(
    chunks: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let piece = Bytes::from(content(251 * 4096));
    futures::stream::iter(std::iter::repeat_n(piece, chunks).map(Ok))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_large_add_leaves_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("store");
    let mut first = serve(&data_dir);
    let client = KuboClient::new(&first.url).unwrap();
    let kept_data = content(3_000_000);
    let kept = client.add_bytes(kept_data.clone().into()).await.unwrap();
    let kept_blocks = block_files(&data_dir);

    let chunks = 256;
    let reader = tokio_util::io::StreamReader::new(big_stream(chunks));
    let uploader = client.clone();
    let upload =
        tokio::spawn(async move { uploader.add(Box::new(reader), AddOptions::default()).await });
    let started = Instant::now();
    while block_files(&data_dir) < kept_blocks + 40 {
        assert!(started.elapsed() < Duration::from_secs(120), "the upload did not progress");
        assert!(!upload.is_finished(), "the upload finished before the kill; make it larger");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let result = upload.await.unwrap();
    assert!(result.is_err(), "the interrupted add must fail, got {result:?}");

    let second = serve(&data_dir);
    let client = KuboClient::new(&second.url).unwrap();
    let mut builder = DagBuilder::hash_only();
    let mut sink = Vec::new();
    let piece = content(251 * 4096);
    for _ in 0..chunks {
        builder.write(&piece, &mut sink);
        sink.clear();
    }
    let partial = builder.finish(&mut sink).cid;
    let err = client.cat_bytes(&partial, u64::MAX).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { cid } if cid == partial), "{err}");
    assert_eq!(client.pins().await.unwrap(), vec![kept]);
    assert_eq!(client.cat_bytes(&kept, 3_000_000).await.unwrap(), kept_data);

    let orphans = block_files(&data_dir) - kept_blocks;
    assert!(orphans >= 40, "blocks of the interrupted add are on disk until gc");
    assert_eq!(client.repo_gc().await.unwrap(), orphans);
    assert_eq!(block_files(&data_dir), kept_blocks);
    assert_eq!(std::fs::read_dir(data_dir.join("tmp")).unwrap().count(), 0);
    assert_eq!(client.cat_bytes(&kept, 3_000_000).await.unwrap(), kept_data);
}
