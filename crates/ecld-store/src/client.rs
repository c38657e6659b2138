//! The client side: the [`ContentStore`] trait and [`KuboClient`], which speaks the Kubo RPC
//! to this store or to any IPFS node and verifies every byte it reads.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cid::Cid;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::StoreError;
use crate::unixfs::{self, DagBuilder, FileNode};

/// Receives progress of a long upload or download: bytes done so far and the total when
/// known. Closures `Fn(u64, Option<u64>)` implement it.
pub trait Progress: Send + Sync {
    /// Called as bytes go through (at most about once per 256 KiB).
    fn progress(&self, done: u64, total: Option<u64>);
}

impl<F: Fn(u64, Option<u64>) + Send + Sync> Progress for F {
    fn progress(&self, done: u64, total: Option<u64>) {
        self(done, total);
    }
}

/// Options of [`ContentStore::add`].
#[derive(Clone)]
pub struct AddOptions {
    /// Pin the file so that garbage collection keeps it (default: true).
    pub pin: bool,
    /// Progress of the upload.
    pub progress: Option<Arc<dyn Progress>>,
    /// The number of bytes to expect, passed to `progress` as the total.
    pub total: Option<u64>,
}

impl Default for AddOptions {
    fn default() -> Self {
        Self { pin: true, progress: None, total: None }
    }
}

impl std::fmt::Debug for AddOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddOptions")
            .field("pin", &self.pin)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// Options of [`ContentStore::cat`].
#[derive(Clone, Default)]
pub struct CatOptions {
    /// Progress of the download (total from the file's root node).
    pub progress: Option<Arc<dyn Progress>>,
    /// Fail with [`StoreError::TooLarge`] before writing anything if the file is larger.
    pub max_bytes: Option<u64>,
}

impl std::fmt::Debug for CatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatOptions").field("max_bytes", &self.max_bytes).finish_non_exhaustive()
    }
}

/// A content store: files in, CIDs out, and back. Implementations verify content against
/// its CID, so a store need not be trusted.
#[async_trait::async_trait]
pub trait ContentStore: Send + Sync {
    /// Adds a file read from `data` (streamed, never held whole) and returns its CIDv1, the
    /// same CID `ipfs add --cid-version=1 --raw-leaves` gives the same bytes.
    async fn add(
        &self,
        data: Box<dyn AsyncRead + Send + Unpin>,
        options: AddOptions,
    ) -> Result<Cid, StoreError>;

    /// Writes the file `cid` to `out`, verifying every block before writing it, in bounded
    /// memory. Returns the number of bytes written. On error, `out` may hold a verified
    /// prefix of the file.
    async fn cat(
        &self,
        cid: &Cid,
        out: &mut (dyn AsyncWrite + Send + Unpin),
        options: CatOptions,
    ) -> Result<u64, StoreError>;

    /// Pins `cid` recursively (the store must hold every block).
    async fn pin(&self, cid: &Cid) -> Result<(), StoreError>;

    /// Removes the pin of `cid`; its blocks go at the next garbage collection.
    async fn unpin(&self, cid: &Cid) -> Result<(), StoreError>;

    /// Whether the store holds the root block of `cid`.
    async fn has(&self, cid: &Cid) -> Result<bool, StoreError>;

    /// Adds bytes held in memory (pinned).
    async fn add_bytes(&self, data: Bytes) -> Result<Cid, StoreError> {
        let total = Some(data.len() as u64);
        self.add(Box::new(Cursor::new(data)), AddOptions { total, ..AddOptions::default() }).await
    }

    /// Reads a whole file into memory, refusing files larger than `max_bytes`.
    async fn cat_bytes(&self, cid: &Cid, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        let options = CatOptions { max_bytes: Some(max_bytes), ..CatOptions::default() };
        self.cat(cid, &mut out, options).await?;
        Ok(out)
    }
}

/// Largest block accepted from a store (Kubo refuses blocks over 1 MiB; bitswap over 2 MiB).
pub const MAX_BLOCK_SIZE: usize = 2 << 20;

/// A client of the Kubo RPC (`/api/v0`): works with ecld-store, Kubo and js-ipfs.
#[derive(Debug, Clone)]
pub struct KuboClient {
    base: String,
    http: reqwest::Client,
    prefetch: usize,
    /// Sent as Kubo's `timeout` argument on block and pin requests: an IPFS node looks for a
    /// block it lacks (js-ipfs even offline) until this expires.
    block_timeout: String,
}

impl KuboClient {
    /// A client of the API at `url` (e.g. `http://127.0.0.1:5001`).
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(StoreError::BadRequest(format!(
                "store URL {url:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| StoreError::Http { url: base.clone(), source })?;
        Ok(Self { base, http, prefetch: 8, block_timeout: "60s".into() })
    }

    /// Sets how many blocks `cat` fetches ahead (default 8; memory is about this many
    /// blocks per tree level).
    #[must_use]
    pub fn with_prefetch(mut self, blocks: usize) -> Self {
        self.prefetch = blocks.max(1);
        self
    }

    /// Sets how long the store may look for a block it does not hold before answering "not
    /// found" (default 60 s; passed as Kubo's `timeout` argument).
    #[must_use]
    pub fn with_block_timeout(mut self, timeout: Duration) -> Self {
        self.block_timeout = format!("{}ms", timeout.as_millis().max(1));
        self
    }

    /// The API base URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn post(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, StoreError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let resp = self
            .http
            .post(with_query(&url, query)?)
            .send()
            .await
            .map_err(|source| StoreError::Http { url: url.clone(), source })?;
        check(url, resp).await
    }

    async fn post_json(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value, StoreError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let resp = self.post(path, query).await?;
        resp.json()
            .await
            .map_err(|e| StoreError::Protocol { url, detail: format!("bad JSON: {e}") })
    }

    /// The store's version string (`/api/v0/version`).
    pub async fn version(&self) -> Result<String, StoreError> {
        let v = self.post_json("version", &[]).await?;
        Ok(v.get("Version").and_then(|v| v.as_str()).unwrap_or_default().to_owned())
    }

    /// Runs garbage collection on the store; returns how many blocks it removed.
    pub async fn repo_gc(&self) -> Result<usize, StoreError> {
        let url = format!("{}/api/v0/repo/gc", self.base);
        let body = self
            .post("repo/gc", &[])
            .await?
            .text()
            .await
            .map_err(|source| StoreError::Http { url, source })?;
        Ok(body.lines().filter(|l| !l.trim().is_empty()).count())
    }

    /// The pinned roots (`/api/v0/pin/ls?type=recursive`).
    pub async fn pins(&self) -> Result<Vec<Cid>, StoreError> {
        let v = self.post_json("pin/ls", &[("type", "recursive")]).await?;
        let keys = v.get("Keys").and_then(|k| k.as_object()).cloned().unwrap_or_default();
        keys.keys().map(|k| crate::parse_cid(k)).collect()
    }

    /// Fetches one block and verifies it against `cid`.
    pub async fn block_get(&self, cid: &Cid) -> Result<Bytes, StoreError> {
        let arg = cid.to_string();
        let url = format!("{}/api/v0/block/get", self.base);
        let resp = self
            .post("block/get", &[("arg", &arg), ("timeout", &self.block_timeout)])
            .await
            .map_err(|e| not_found(e, cid))?;
        let mut body = resp.bytes_stream();
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|source| StoreError::Http { url: url.clone(), source })?;
            if buf.len() + chunk.len() > MAX_BLOCK_SIZE {
                return Err(StoreError::Tampered {
                    cid: *cid,
                    detail: format!("block is larger than {MAX_BLOCK_SIZE} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        let data = buf.freeze();
        match unixfs::verify(cid, &data) {
            Some(true) => Ok(data),
            Some(false) => Err(StoreError::Tampered {
                cid: *cid,
                detail: format!(
                    "the {} bytes received hash to {}",
                    data.len(),
                    unixfs::cid_of(cid.codec(), &data)
                ),
            }),
            None => Err(StoreError::Unsupported {
                cid: *cid,
                reason: format!("hash function 0x{:x} cannot be verified", cid.hash().code()),
            }),
        }
    }

    async fn fetch_node(&self, cid: Cid) -> Result<FileNode, StoreError> {
        let block = self.block_get(&cid).await?;
        unixfs::decode_file_node(&cid, block)
            .map_err(|reason| StoreError::Malformed { cid, reason })
    }

    fn emit<'a>(
        &'a self,
        node: FileNode,
        w: &'a mut Sink<'_>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match node {
                FileNode::Leaf(bytes) => w.write(&bytes).await,
                FileNode::Inner { data, children, .. } => {
                    w.write(&data).await?;
                    let mut fetches = futures::stream::iter(children)
                        .map(|c| self.fetch_node(c))
                        .buffered(self.prefetch);
                    while let Some(child) = fetches.next().await {
                        self.emit(child?, w).await?;
                    }
                    Ok(())
                }
            }
        })
    }
}

/// Where `cat` writes: counts, enforces the declared size and reports progress.
struct Sink<'a> {
    out: &'a mut (dyn AsyncWrite + Send + Unpin),
    root: Cid,
    written: u64,
    total: u64,
    progress: Option<Arc<dyn Progress>>,
}

impl Sink<'_> {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.written += bytes.len() as u64;
        if self.written > self.total {
            return Err(StoreError::Malformed {
                cid: self.root,
                reason: format!(
                    "the DAG holds more than the {} bytes its root declares",
                    self.total
                ),
            });
        }
        self.out
            .write_all(bytes)
            .await
            .map_err(|e| StoreError::io("write the downloaded file", e))?;
        if let Some(p) = &self.progress {
            p.progress(self.written, Some(self.total));
        }
        Ok(())
    }
}

fn with_query(url: &str, query: &[(&str, &str)]) -> Result<reqwest::Url, StoreError> {
    reqwest::Url::parse_with_params(url, query)
        .map_err(|e| StoreError::BadRequest(format!("invalid store URL {url:?}: {e}")))
}

/// Turns an error answer into [`StoreError::Api`] with the Kubo `Message`.
async fn check(url: String, resp: reqwest::Response) -> Result<reqwest::Response, StoreError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect());
    Err(StoreError::Api { url, status: status.as_u16(), message })
}

/// Kubo and js-ipfs answer a missing block with 500 and a message (or keep looking until the
/// `timeout` argument expires); this store answers 404.
fn not_found(e: StoreError, cid: &Cid) -> StoreError {
    match &e {
        StoreError::Api { status, message, .. } => {
            let m = message.to_ascii_lowercase();
            // A node that looked for the block until the timeout does not have it either.
            let missing = ["not found", "could not find", "timed out"];
            if *status == 404 || missing.iter().any(|w| m.contains(w)) {
                StoreError::NotFound { cid: *cid }
            } else {
                e
            }
        }
        _ => e,
    }
}

#[async_trait::async_trait]
impl ContentStore for KuboClient {
    async fn add(
        &self,
        data: Box<dyn AsyncRead + Send + Unpin>,
        options: AddOptions,
    ) -> Result<Cid, StoreError> {
        // The CID is computed here too, while the bytes stream out, so that a store cannot
        // answer with the CID of other content.
        let local = Arc::new(Mutex::new(DagBuilder::hash_only()));
        let hasher = local.clone();
        let (progress, total) = (options.progress.clone(), options.total);
        let stream =
            ReaderStream::with_capacity(data, unixfs::CHUNK_SIZE).inspect_ok(move |chunk| {
                let mut b = hasher.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut sink = Vec::new();
                b.write_bytes(chunk.clone(), &mut sink);
                if let Some(p) = &progress {
                    p.progress(b.bytes(), total);
                }
            });
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
            .file_name("file")
            .mime_str("application/octet-stream")
            .map_err(|e| StoreError::BadRequest(format!("multipart: {e}")))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let url = format!("{}/api/v0/add", self.base);
        let pin = if options.pin { "true" } else { "false" };
        let query = [
            ("cid-version", "1"),
            ("raw-leaves", "true"),
            ("chunker", "size-262144"),
            ("hash", "sha2-256"),
            ("pin", pin),
            ("progress", "false"),
        ];
        let resp = self
            .http
            .post(with_query(&url, &query)?)
            .multipart(form)
            .send()
            .await
            .map_err(|source| StoreError::Http { url: url.clone(), source })?;
        let resp = check(url.clone(), resp).await?;
        let body =
            resp.text().await.map_err(|source| StoreError::Http { url: url.clone(), source })?;
        let mut reported = None;
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| StoreError::Protocol {
                    url: url.clone(),
                    detail: format!("bad add answer {line:?}: {e}"),
                })?;
            if v.get("Type").and_then(|t| t.as_str()) == Some("error") {
                let message =
                    v.get("Message").and_then(|m| m.as_str()).unwrap_or_default().to_owned();
                return Err(StoreError::Api { url, status: 200, message });
            }
            if let Some(h) = v.get("Hash").and_then(|h| h.as_str()) {
                reported = Some(h.to_owned());
            }
        }
        let reported = reported.ok_or_else(|| StoreError::Protocol {
            url: url.clone(),
            detail: "add answered without a Hash".into(),
        })?;
        let builder =
            std::mem::take(&mut *local.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let expected = builder.finish(&mut Vec::new()).cid;
        // js-ipfs writes CIDv1 in base58btc: compare CIDs, not strings.
        if crate::parse_cid(&reported).ok() != Some(expected) {
            return Err(StoreError::Tampered {
                cid: expected,
                detail: format!("the store answered CID {reported} for the uploaded bytes"),
            });
        }
        Ok(expected)
    }

    async fn cat(
        &self,
        cid: &Cid,
        out: &mut (dyn AsyncWrite + Send + Unpin),
        options: CatOptions,
    ) -> Result<u64, StoreError> {
        let root = self.fetch_node(*cid).await?;
        let total = unixfs::declared_size(&root);
        if let Some(limit) = options.max_bytes
            && total > limit
        {
            return Err(StoreError::TooLarge { limit });
        }
        let mut sink = Sink { out, root: *cid, written: 0, total, progress: options.progress };
        if let Some(p) = &sink.progress {
            p.progress(0, Some(total));
        }
        self.emit(root, &mut sink).await?;
        if sink.written != total {
            return Err(StoreError::Malformed {
                cid: *cid,
                reason: format!("root declares {total} bytes but the DAG holds {}", sink.written),
            });
        }
        sink.out.flush().await.map_err(|e| StoreError::io("flush the downloaded file", e))?;
        Ok(total)
    }

    async fn pin(&self, cid: &Cid) -> Result<(), StoreError> {
        let arg = cid.to_string();
        self.post("pin/add", &[("arg", &arg), ("timeout", &self.block_timeout)])
            .await
            .map_err(|e| not_found(e, cid))?;
        Ok(())
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), StoreError> {
        let arg = cid.to_string();
        self.post("pin/rm", &[("arg", &arg), ("timeout", &self.block_timeout)]).await?;
        Ok(())
    }

    async fn has(&self, cid: &Cid) -> Result<bool, StoreError> {
        let arg = cid.to_string();
        match self
            .post("block/stat", &[("arg", &arg), ("timeout", &self.block_timeout)])
            .await
            .map_err(|e| not_found(e, cid))
        {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
