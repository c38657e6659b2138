//! HTTP handlers: the Kubo RPC subset (`POST /api/v0/…`) and the read-only gateway.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cid::Cid;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::State;
use crate::blockstore::{BlockStore, Touched};
use crate::unixfs::{self, DagBuilder, FileNode};
use crate::{StoreError, parse_cid};

type Shared = Arc<State>;

/// Bodies of every endpoint but `add` are tiny (arguments travel in the query).
const SMALL_BODY: usize = 64 * 1024;

pub(super) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/api/v0/cat", post(cat))
        .route("/api/v0/block/get", post(block_get))
        .route("/api/v0/block/stat", post(block_stat))
        .route("/api/v0/pin/add", post(pin_add))
        .route("/api/v0/pin/rm", post(pin_rm))
        .route("/api/v0/pin/ls", post(pin_ls))
        .route("/api/v0/version", post(version))
        .route("/api/v0/id", post(id))
        .route("/api/v0/repo/gc", post(repo_gc))
        .route("/ipfs/{cid}", get(gateway))
        .layer(DefaultBodyLimit::max(SMALL_BODY));
    // The add body is counted by the handler against `max_upload_bytes` while it streams.
    let add = Router::new().route("/api/v0/add", post(add)).layer(DefaultBodyLimit::disable());
    api.merge(add).with_state(state)
}

/// The one conversion from store errors to Kubo-style HTTP errors.
struct ApiError(StoreError);

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(e)
    }
}

fn status_of(e: &StoreError) -> StatusCode {
    match e {
        StoreError::InvalidCid { .. }
        | StoreError::BadRequest(_)
        | StoreError::Unsupported { .. } => StatusCode::BAD_REQUEST,
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        StoreError::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_json(e: &StoreError) -> Value {
    let code = u8::from(status_of(e) == StatusCode::BAD_REQUEST);
    json!({ "Message": e.to_string(), "Code": code, "Type": "error" })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        if status.is_server_error() {
            tracing::warn!(target: "ecld_store", "request failed: {}", self.0);
        }
        (status, axum::Json(error_json(&self.0))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Query arguments in order, repeated keys kept (Kubo passes several `arg`s).
#[derive(Debug, serde::Deserialize)]
#[serde(transparent)]
struct Args(Vec<(String, String)>);

impl Args {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn args(&self) -> Result<Vec<Cid>, StoreError> {
        let cids: Vec<Cid> = self
            .0
            .iter()
            .filter(|(k, _)| k == "arg")
            .map(|(_, v)| parse_cid(v))
            .collect::<Result<_, _>>()?;
        if cids.is_empty() {
            return Err(StoreError::BadRequest(
                "argument \"arg\" is required: pass ?arg=<cid>".into(),
            ));
        }
        Ok(cids)
    }

    fn arg(&self) -> Result<Cid, StoreError> {
        self.args().map(|a| a[0])
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, StoreError> {
        match self.get(key) {
            None => Ok(default),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => {
                Err(StoreError::BadRequest(format!("argument {key}={v:?} is not a boolean")))
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::BadRequest(format!("store worker failed: {e}")))?
}

fn ndjson(lines: &[Value]) -> Response {
    let mut body = Vec::new();
    for line in lines {
        body.extend_from_slice(line.to_string().as_bytes());
        body.push(b'\n');
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Options of `add` that this store honours; anything else that would change the CID is
/// refused rather than silently ignored.
fn check_add_args(args: &Args) -> Result<(), StoreError> {
    let refuse = |what: &str| {
        Err(StoreError::BadRequest(format!(
            "{what} is not supported: this store adds with cid-version=1, raw-leaves=true, \
             chunker=size-262144, hash=sha2-256, balanced layout"
        )))
    };
    match args.get("cid-version") {
        None | Some("1") => {}
        Some(v) => return refuse(&format!("cid-version={v}")),
    }
    if !args.flag("raw-leaves", true)? {
        return refuse("raw-leaves=false");
    }
    if args.flag("trickle", false)? {
        return refuse("trickle=true");
    }
    if args.flag("wrap-with-directory", false)? {
        return refuse("wrap-with-directory=true");
    }
    if args.flag("only-hash", false)? {
        return refuse("only-hash=true");
    }
    match args.get("chunker") {
        None | Some("size-262144") => {}
        Some(v) => return refuse(&format!("chunker={v}")),
    }
    match args.get("hash") {
        None | Some("sha2-256") => {}
        Some(v) => return refuse(&format!("hash={v}")),
    }
    Ok(())
}

async fn add(
    AxState(s): AxState<Shared>,
    Query(args): Query<Args>,
    multipart: Multipart,
) -> ApiResult {
    check_add_args(&args)?;
    let pin = args.flag("pin", true)?;
    if args.flag("progress", false)? {
        let (tx, rx) = mpsc::channel::<Value>(16);
        tokio::spawn(async move {
            let result = add_files(&s, multipart, pin, Some(&tx)).await;
            let lines = result.unwrap_or_else(|e| vec![error_json(&e)]);
            for line in lines {
                let _ = tx.send(line).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let line = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(Bytes::from(format!("{line}\n"))), rx))
        });
        let mut resp = Response::new(Body::from_stream(stream));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(resp);
    }
    let lines = add_files(&s, multipart, pin, None).await?;
    Ok(ndjson(&lines))
}

async fn add_files(
    s: &Shared,
    mut multipart: Multipart,
    pin: bool,
    progress: Option<&mpsc::Sender<Value>>,
) -> Result<Vec<Value>, StoreError> {
    let _gc_guard = s.gc_lock.clone().read_owned().await;
    let mut lines = Vec::new();
    let mut budget = s.config.max_upload_bytes;
    let bad_multipart = |e: axum::extract::multipart::MultipartError| {
        StoreError::BadRequest(format!("malformed multipart upload: {}", e.body_text()))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        if field.content_type() == Some("application/x-directory") {
            return Err(StoreError::BadRequest(
                "directories are not supported; add files one by one".into(),
            ));
        }
        let name = field.file_name().or(field.name()).unwrap_or_default().to_owned();
        // Hashing and fsyncing run on a blocking thread while the next bytes arrive.
        let (tx, mut rx) = mpsc::channel::<Bytes>(32);
        let store = s.store.clone();
        let worker = tokio::task::spawn_blocking(move || build_and_store(&store, &mut rx));
        let mut sent: u64 = 0;
        let mut reported: u64 = 0;
        let read: Result<(), StoreError> = async {
            while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
                let len = chunk.len() as u64;
                if len > budget {
                    return Err(StoreError::TooLarge { limit: s.config.max_upload_bytes });
                }
                budget -= len;
                sent += len;
                if tx.send(chunk).await.is_err() {
                    // The worker stopped early; its error is reported below.
                    return Ok(());
                }
                if let Some(p) = progress
                    && sent - reported >= unixfs::CHUNK_SIZE as u64
                {
                    reported = sent;
                    let _ = p.send(json!({ "Name": name, "Bytes": sent })).await;
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let built =
            worker.await.map_err(|e| StoreError::BadRequest(format!("add worker failed: {e}")))?;
        read?;
        let root = built?;
        if pin {
            let store = s.store.clone();
            blocking(move || store.pin(&root.cid)).await?;
        }
        tracing::debug!(target: "ecld_store", cid = %root.cid, bytes = root.file_size, pin, "added");
        let hash = root.cid.to_string();
        let name = if name.is_empty() { hash.clone() } else { name };
        lines.push(json!({ "Name": name, "Hash": hash, "Size": root.dag_size.to_string() }));
    }
    Ok(lines)
}

/// Block writes in flight per add: each waits for its fsync, and the file system commits
/// concurrent fsyncs together, so parallel writers multiply throughput (memory: one block each).
const WRITERS: usize = 32;

/// Chunks and hashes the upload on this thread while `WRITERS` threads write and fsync the
/// blocks; returns once every block is durable.
fn build_and_store(
    store: &BlockStore,
    rx: &mut mpsc::Receiver<Bytes>,
) -> Result<unixfs::Root, StoreError> {
    let (btx, brx) = std::sync::mpsc::sync_channel::<unixfs::Block>(WRITERS);
    let brx = std::sync::Mutex::new(brx);
    let touched = std::sync::Mutex::new(Touched::default());
    let failed: std::sync::Mutex<Option<StoreError>> = std::sync::Mutex::new(None);
    let root = std::thread::scope(|scope| {
        for _ in 0..WRITERS {
            scope.spawn(|| {
                let mut mine = Touched::default();
                loop {
                    let next = brx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok(block) = next else { break };
                    if let Err(e) = store.put(&block, &mut mine) {
                        failed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(e);
                    }
                }
                touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner).merge(mine);
            });
        }
        let mut builder = DagBuilder::new();
        let mut blocks = Vec::new();
        let stopped = || failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some();
        while let Some(bytes) = rx.blocking_recv() {
            builder.write_bytes(bytes, &mut blocks);
            for block in blocks.drain(..) {
                if btx.send(block).is_err() || stopped() {
                    return None;
                }
            }
        }
        let root = builder.finish(&mut blocks);
        for block in blocks.drain(..) {
            if btx.send(block).is_err() {
                return None;
            }
        }
        drop(btx);
        Some(root)
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
        return Err(e);
    }
    let root = root.ok_or_else(|| StoreError::BadRequest("the upload was interrupted".into()))?;
    store.sync_dirs(&touched.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))?;
    Ok(root)
}

/// Streams the file under `root` from a blocking thread, after checking the root exists so
/// that a missing file is a clean 404 rather than a broken stream.
async fn file_body(store: Arc<BlockStore>, root: Cid) -> Result<(u64, Body), StoreError> {
    let st = store.clone();
    let node = blocking(move || {
        let block = st.get(&root)?.ok_or(StoreError::NotFound { cid: root })?;
        unixfs::decode_file_node(&root, Bytes::from(block))
            .map_err(|reason| StoreError::Malformed { cid: root, reason })
    })
    .await?;
    let size = unixfs::declared_size(&node);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stream_file(&store, node, &tx) {
            tracing::warn!(target: "ecld_store", %root, "cat stopped: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { Some((rx.recv().await?, rx)) });
    Ok((size, Body::from_stream(stream)))
}

fn stream_file(
    store: &BlockStore,
    root: FileNode,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), StoreError> {
    let mut stack: Vec<std::vec::IntoIter<Cid>> = Vec::new();
    let mut node = Some(root);
    loop {
        match node.take() {
            Some(FileNode::Leaf(bytes)) if !bytes.is_empty() => {
                if tx.blocking_send(Ok(bytes)).is_err() {
                    return Ok(()); // the client went away
                }
            }
            Some(FileNode::Inner { data, children, .. }) => {
                if !data.is_empty() && tx.blocking_send(Ok(data)).is_err() {
                    return Ok(());
                }
                stack.push(children.into_iter());
            }
            Some(FileNode::Leaf(_)) | None => {}
        }
        let Some(top) = stack.last_mut() else { return Ok(()) };
        let Some(cid) = top.next() else {
            stack.pop();
            continue;
        };
        let block = store.get(&cid)?.ok_or(StoreError::NotFound { cid })?;
        node = Some(
            unixfs::decode_file_node(&cid, Bytes::from(block))
                .map_err(|reason| StoreError::Malformed { cid, reason })?,
        );
    }
}

async fn cat(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    let root = args.arg()?;
    let (size, body) = file_body(s.store.clone(), root).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
            (header::HeaderName::from_static("x-content-length"), HeaderValue::from(size)),
        ],
        body,
    )
        .into_response())
}

async fn gateway(AxState(s): AxState<Shared>, Path(cid): Path<String>) -> Response {
    let result = async {
        let root = parse_cid(&cid)?;
        let (size, body) = file_body(s.store.clone(), root).await?;
        Ok::<_, StoreError>((root, size, body))
    }
    .await;
    match result {
        Ok((root, size, body)) => {
            let etag = HeaderValue::from_str(&format!("\"{root}\""))
                .unwrap_or(HeaderValue::from_static("\"\""));
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
                    (header::CONTENT_LENGTH, HeaderValue::from(size)),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=29030400, immutable"),
                    ),
                    (header::ETAG, etag),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => (status_of(&e), format!("{e}\n")).into_response(),
    }
}

async fn block_get(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    let cid = args.arg()?;
    let store = s.store.clone();
    let block = blocking(move || store.get(&cid)?.ok_or(StoreError::NotFound { cid })).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], block).into_response())
}

async fn block_stat(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    let cid = args.arg()?;
    let store = s.store.clone();
    let size = blocking(move || store.size(&cid)?.ok_or(StoreError::NotFound { cid })).await?;
    Ok(axum::Json(json!({ "Key": cid.to_string(), "Size": size })).into_response())
}

async fn pin_add(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    if !args.flag("recursive", true)? {
        return Err(StoreError::BadRequest("only recursive pins are supported".into()).into());
    }
    let cids = args.args()?;
    let _gc_guard = s.gc_lock.clone().read_owned().await;
    let store = s.store.clone();
    let pinned = cids.clone();
    blocking(move || pinned.iter().try_for_each(|c| store.pin(c))).await?;
    let pins: Vec<String> = cids.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({ "Pins": pins })).into_response())
}

async fn pin_rm(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    let cids = args.args()?;
    let store = s.store.clone();
    let removed = cids.clone();
    blocking(move || removed.iter().try_for_each(|c| store.unpin(c))).await?;
    let pins: Vec<String> = cids.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({ "Pins": pins })).into_response())
}

async fn pin_ls(AxState(s): AxState<Shared>, Query(args): Query<Args>) -> ApiResult {
    let store = s.store.clone();
    let wanted = if args.get("arg").is_some() { Some(args.args()?) } else { None };
    let keys = blocking(move || {
        let pins = match wanted {
            None => store.pins()?,
            Some(cids) => {
                if let Some(c) = cids.iter().find(|c| !store.is_pinned(c)) {
                    return Err(StoreError::BadRequest(format!("path '{c}' is not pinned")));
                }
                cids
            }
        };
        Ok(pins
            .iter()
            .map(|c| (c.to_string(), json!({ "Type": "recursive" })))
            .collect::<serde_json::Map<_, _>>())
    })
    .await?;
    Ok(axum::Json(json!({ "Keys": keys })).into_response())
}

async fn version() -> Response {
    axum::Json(json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "Commit": "",
        "Repo": "ecld-store-1",
        "System": format!("{}/{}", std::env::consts::ARCH, std::env::consts::OS),
        "Golang": "",
    }))
    .into_response()
}

async fn id(AxState(s): AxState<Shared>) -> Response {
    axum::Json(json!({
        "ID": s.peer_id,
        "PublicKey": "",
        "Addresses": [],
        "AgentVersion": concat!("ecld-store/", env!("CARGO_PKG_VERSION")),
        "Protocols": [],
    }))
    .into_response()
}

async fn repo_gc(AxState(s): AxState<Shared>) -> ApiResult {
    let _gc_guard = s.gc_lock.clone().write_owned().await;
    let store = s.store.clone();
    let removed = blocking(move || store.gc()).await?;
    tracing::info!(target: "ecld_store", removed = removed.len(), "garbage collected");
    let lines: Vec<Value> =
        removed.iter().map(|c| json!({ "Key": { "/": c.to_string() } })).collect();
    Ok(ndjson(&lines))
}
