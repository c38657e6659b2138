//! The dApp page that `ecld up` serves: the Vite build of `web/`, embedded in the binary at
//! compile time (see `build.rs`), plus the same-origin routes the page talks to.
//!
//! - `/` and the files of `web/dist`: hashed assets (`/assets/*`) are cached forever, the rest
//!   is revalidated; anything else is 404 (files are looked up in a fixed table, so no path
//!   can reach the file system);
//! - `POST /rpc`: the chain's JSON-RPC (request bodies up to [`RPC_BODY_LIMIT`]);
//! - `POST /store/api/v0/*`: the store's Kubo RPC API, request and response bodies streamed
//!   both ways so a large upload never sits in this process's memory;
//! - `GET /ecld-config.json`: the deployment, and the paths of the two forwards.
//!
//! The chain and the store send no CORS headers, so the page reaches them through here. The
//! forwards refuse requests from other origins and from non-loopback host names (a web page
//! elsewhere, or a DNS-rebinding attack, cannot use the local chain or store through them).
//! Every response carries a Content Security Policy that lets the page load and connect to
//! this origin only.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{
        HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri,
        header::{
            ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN,
            REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
        },
    },
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tokio::{sync::oneshot, task::JoinHandle};

/// One embedded file of `web/dist`.
#[derive(Debug)]
struct Asset {
    /// URL path, e.g. `/assets/index-BU7vYoVw.js`.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

mod assets {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Largest JSON-RPC request forwarded to the chain.
const RPC_BODY_LIMIT: usize = 4 << 20;

/// The page may load scripts, styles and images from this origin only and connect to this
/// origin only (the forwards below); it cannot be framed.
const PAGE_CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Forwarded answers are data for the page's scripts, never a document to render.
const FORWARD_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

/// Vite names files under `/assets/` after a hash of their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Response headers of the store passed on to the page.
const STORE_HEADERS: [&str; 5] =
    ["content-type", "content-length", "x-stream-output", "x-chunked-output", "x-content-length"];

/// What the web server serves and forwards to.
#[derive(Debug, Clone)]
pub(crate) struct WebConfig {
    /// Where to listen (port 0: the system picks one).
    pub(crate) listen: SocketAddr,
    /// The chain's JSON-RPC URL.
    pub(crate) rpc: String,
    /// The store's Kubo API base URL.
    pub(crate) store: String,
    /// The deployment file (`deployment.json`) the page reads as `/ecld-config.json`.
    pub(crate) deployment: PathBuf,
    /// When `listen` is taken, serve on a port the system picks (with a warning) instead of
    /// failing: for the default port, which a second stack or another program may hold.
    pub(crate) fall_back_to_free_port: bool,
}

/// A running web server; [`WebHandle::shutdown`] stops it.
#[derive(Debug)]
pub(crate) struct WebHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl WebHandle {
    /// The page's URL, e.g. `http://127.0.0.1:5173`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections and waits up to 5 s for requests in flight (a long store
    /// download is cut off after that).
    pub(crate) async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

struct Forward {
    http: reqwest::Client,
    rpc: String,
    store: String,
    page_config: Bytes,
}

/// Binds `config.listen` and serves the page and its forwards in a background task.
pub(crate) async fn spawn(config: WebConfig) -> anyhow::Result<WebHandle> {
    let app = router(&config)?;
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) if config.fall_back_to_free_port => {
            let free = SocketAddr::new(config.listen.ip(), 0);
            let listener = tokio::net::TcpListener::bind(free)
                .await
                .with_context(|| format!("cannot listen on {free} for the dApp page"))?;
            tracing::warn!(target: "ecld::web", port = config.listen.port(), error = %e, "the dApp page's port is taken; serving it on a free port (see the printed web URL)");
            listener
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot listen on {} for the dApp page: is another `ecld up` running? Stop it, or pick another port with --web-port (or --ephemeral-ports)",
                    config.listen
                )
            });
        }
    };
    let addr = listener.local_addr()?;
    tracing::info!(target: "ecld::web", %addr, "web page listening");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(WebHandle { addr, shutdown: Some(tx), task: Some(task) })
}

fn router(config: &WebConfig) -> anyhow::Result<Router> {
    let deployment = std::fs::read(&config.deployment)
        .with_context(|| format!("cannot read the deployment {}", config.deployment.display()))?;
    let deployment: serde_json::Value = serde_json::from_slice(&deployment)
        .with_context(|| format!("the deployment {} is not JSON", config.deployment.display()))?;
    let page_config = serde_json::to_vec(
        &serde_json::json!({ "deployment": deployment, "rpc": "/rpc", "store": "/store" }),
    )?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client of the web server's forwards")?;
    let state = Arc::new(Forward {
        http,
        rpc: config.rpc.clone(),
        store: config.store.trim_end_matches('/').to_owned(),
        page_config: Bytes::from(page_config),
    });
    Ok(Router::new()
        .route("/rpc", post(rpc))
        .route("/store/{*rest}", post(store))
        .route("/ecld-config.json", get(page_config_json))
        .fallback(static_file)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.entry(CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(PAGE_CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// The embedded file at `path`, if any.
fn asset(path: &str) -> Option<&'static Asset> {
    let files = assets::FILES;
    files.binary_search_by(|a| a.path.cmp(path)).ok().map(|i| &files[i])
}

async fn static_file(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(ALLOW, "GET, HEAD")], "the page is read-only\n")
            .into_response();
    }
    let path = if uri.path() == "/" { "/index.html" } else { uri.path() };
    let Some(file) = asset(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no such file: {path} (the page is at /)\n"),
        )
            .into_response();
    };
    let cache = if file.path.starts_with("/assets/") { IMMUTABLE } else { "no-cache" };
    ([(CONTENT_TYPE, file.content_type), (CACHE_CONTROL, cache)], file.body).into_response()
}

async fn page_config_json(State(s): State<Arc<Forward>>) -> Response {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-store")], s.page_config.clone())
        .into_response()
}

async fn rpc(State(s): State<Arc<Forward>>, req: Request) -> Response {
    if let Some(refused) = foreign(req.headers()) {
        return refused;
    }
    let body = match axum::body::to_bytes(req.into_body(), RPC_BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the JSON-RPC request could not be read ({e}); requests are limited to {} MiB",
                    RPC_BODY_LIMIT >> 20
                ),
            );
        }
    };
    let sent = s.http.post(&s.rpc).header(CONTENT_TYPE, "application/json").body(body).send().await;
    relay(sent, "chain", &s.rpc, &["content-type", "content-length"])
}

async fn store(State(s): State<Arc<Forward>>, req: Request) -> Response {
    if let Some(refused) = foreign(req.headers()) {
        return refused;
    }
    let uri = req.uri();
    let Some(path) = uri.path().strip_prefix("/store").filter(|p| p.starts_with("/api/v0/")) else {
        return plain(
            StatusCode::NOT_FOUND,
            "only the store's Kubo RPC API (/store/api/v0/...) is forwarded".into(),
        );
    };
    let mut url = format!("{}{path}", s.store);
    if let Some(q) = uri.query() {
        url.push('?');
        url.push_str(q);
    }
    let mut up = s.http.post(&url);
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        up = up.header(CONTENT_TYPE, ct);
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let sent = up.body(body).send().await;
    relay(sent, "store", &s.store, &STORE_HEADERS)
}

/// The upstream answer as the page's answer, its body streamed through.
fn relay(
    sent: reqwest::Result<reqwest::Response>,
    what: &str,
    url: &str,
    keep: &[&'static str],
) -> Response {
    let up = match sent {
        Ok(up) => up,
        Err(e) => {
            tracing::warn!(target: "ecld::web", %url, error = %e, "forward failed");
            return plain(
                StatusCode::BAD_GATEWAY,
                format!("cannot reach the {what} at {url}: {e}; is `ecld up` still running?"),
            );
        }
    };
    let mut res = Response::builder().status(up.status());
    if let Some(h) = res.headers_mut() {
        for name in keep {
            if let Some(v) = up.headers().get(*name) {
                h.insert(HeaderName::from_static(name), v.clone());
            }
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(FORWARD_CSP));
    }
    res.body(Body::from_stream(up.bytes_stream())).unwrap_or_else(|e| {
        plain(StatusCode::BAD_GATEWAY, format!("the {what}'s answer could not be relayed: {e}"))
    })
}

/// The refusal of a request sent by a page of another origin, or addressed to a host name that
/// is not this machine's loopback (DNS rebinding); `None` for the page's own requests.
fn foreign(headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(addr, _)| addr),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    if !matches!(name, "127.0.0.1" | "localhost" | "::1") {
        return Some(plain(
            StatusCode::FORBIDDEN,
            format!(
                "refused: the chain and store forwards answer only requests to 127.0.0.1 or localhost, not {host:?}"
            ),
        ));
    }
    if let Some(origin) = headers.get(ORIGIN)
        && origin.as_bytes() != format!("http://{host}").as_bytes()
    {
        return Some(plain(
            StatusCode::FORBIDDEN,
            format!(
                "refused: a page of origin {} may not use this page's chain and store forwards; open http://{host}/ instead",
                String::from_utf8_lossy(origin.as_bytes())
            ),
        ));
    }
    None
}

fn plain(status: StatusCode, msg: String) -> Response {
    (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], msg + "\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn forwards_answer_the_page_on_loopback_only() {
        for host in ["127.0.0.1:5173", "localhost:5173", "[::1]:5173", "localhost"] {
            assert!(foreign(&headers(host, None)).is_none(), "{host}");
            let own = format!("http://{host}");
            assert!(foreign(&headers(host, Some(&own))).is_none(), "{host}");
        }
        for host in
            ["evil.example:5173", "127.0.0.1.evil.example", "[::2]:5173", "", "10.0.0.1:5173"]
        {
            let refused = foreign(&headers(host, None)).expect(host);
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
        for origin in
            ["http://evil.example", "null", "http://127.0.0.1:5174", "https://127.0.0.1:5173"]
        {
            let refused = foreign(&headers("127.0.0.1:5173", Some(origin))).expect(origin);
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
    }

    #[test]
    fn embedded_files_are_sorted_and_include_the_page() {
        assert!(assets::FILES.windows(2).all(|w| w[0].path < w[1].path));
        let index = asset("/index.html").expect("index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(asset("/../Cargo.toml").is_none());
        assert!(assets::FILES.iter().all(|a| a.path.starts_with('/') && !a.path.contains("..")));
    }
}
