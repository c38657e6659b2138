//! Prometheus metrics of the node, served at `/metrics`.
//!
//! | name | kind | labels | meaning |
//! | --- | --- | --- | --- |
//! | `ecld_node_tasks_total` | counter | `end` (settled, lost, released, expired), `status` | tasks that left this node |
//! | `ecld_node_tasks_active` | gauge | | tasks holding a slot |
//! | `ecld_node_step_seconds` | summary | `step` (claim, fetch_input, fetch_image, enclave_start, enclave_run, upload, submit, release) | duration of each step |
//! | `ecld_node_gas_used_total` | counter | `tx` | gas used by this node's transactions |
//! | `ecld_node_gas_spent_gwei_total` | counter | | gas fees paid, in gwei |
//! | `ecld_node_earnings_tokens_total` | counter | | price of tasks settled with payment, in token base units / 1e9 |
//! | `ecld_node_enclaves` | gauge | | enclave processes running |
//! | `ecld_node_chain_block` | gauge | | last block handled |
//! | `ecld_node_retries_total` | counter | `op` | retried calls |
//! | `ecld_node_chain_subscribed` | gauge | | 1 while a `newHeads` subscription is live, 0 while the node only polls |
//! | `ecld_node_chain_heads_total` | counter | | new-head notifications received (each wakes the follower) |
//! | `ecld_node_chain_reorgs_total` | counter | | reorganisations (or chain restarts to an older head) detected |
//! | `ecld_node_images_refused` | gauge | | images this node refuses for good (module ≠ registered measurement, or an unparsable CID); see `refused-images.json` in the data directory |
//! | `ecld_node_module_rejections_total` | counter | `reason` (measurement, cid, tampered, unavailable, cache) | image module fetches that failed, by why |
//! | `ecld_node_tasks_late_total` | counter | `phase` (claimed, proven, uploaded, submitted) | tasks given up because chain time passed their deadline before the proof was sent (no transaction sent; also counted in `ecld_node_tasks_total{end="expired"}`) |
//! | `ecld_node_chain_time_ahead_seconds` | gauge | | chain time (newest block's timestamp) minus the wall clock when the block was read |
//! | `ecld_node_settle_batch_proofs` | histogram | | proofs per settlement transaction (with `batch_window_ms` > 0) |

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Tasks that left the node.
pub const TASKS: &str = "ecld_node_tasks_total";
/// Tasks in a slot.
pub const ACTIVE: &str = "ecld_node_tasks_active";
/// Step durations.
pub const STEP: &str = "ecld_node_step_seconds";
/// Gas used.
pub const GAS_USED: &str = "ecld_node_gas_used_total";
/// Gas fees paid.
pub const GAS_SPENT: &str = "ecld_node_gas_spent_gwei_total";
/// Earnings.
pub const EARNINGS: &str = "ecld_node_earnings_tokens_total";
/// Enclaves running.
pub const ENCLAVES: &str = "ecld_node_enclaves";
/// Last block handled.
pub const BLOCK: &str = "ecld_node_chain_block";
/// 1 while the `newHeads` subscription is live, 0 while polling only.
pub const SUBSCRIBED: &str = "ecld_node_chain_subscribed";
/// New-head notifications received.
pub const HEADS: &str = "ecld_node_chain_heads_total";
/// Reorganisations detected.
pub const REORGS: &str = "ecld_node_chain_reorgs_total";

/// Images refused for good.
pub const IMAGES_REFUSED: &str = "ecld_node_images_refused";
/// Failed module fetches, by reason.
pub const MODULE_REJECTIONS: &str = "ecld_node_module_rejections_total";

/// Tasks given up because chain time passed their deadline before the proof was sent.
pub const LATE: &str = "ecld_node_tasks_late_total";
/// The newest block's timestamp minus the wall clock when it was read, seconds.
pub const CHAIN_AHEAD: &str = "ecld_node_chain_time_ahead_seconds";
/// Proofs per settlement transaction (`submitResults` batches, 1 for a proof sent alone).
pub const BATCH: &str = "ecld_node_settle_batch_proofs";

/// Records how long a step took.
pub fn step(step: &'static str, took: Duration) {
    metrics::histogram!(STEP, "step" => step).record(took.as_secs_f64());
}

/// Why metrics could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Binding the address failed.
    #[error("cannot serve metrics on {addr}: {source}; choose a free metrics_addr or remove it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. Several nodes in one process
/// (tests) share it.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding program); then this
        // handle renders nothing useful but the node still runs.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(target: "ecld_node", "a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Serves `GET /metrics` on `addr` until the returned task is aborted; returns the bound
/// address (port 0 picks a free one).
pub async fn serve(
    addr: SocketAddr,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), MetricsError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
    let handle = handle();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await
                else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
                    ("200 OK", handle.render())
                } else {
                    ("404 Not Found", "not found: try /metrics\n".to_owned())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}

/// Records the gas of one mined transaction of this node.
pub fn record_gas(tx: &'static str, gas_used: u64, effective_gas_price: u128) {
    metrics::counter!(GAS_USED, "tx" => tx).increment(gas_used);
    let gwei = u128::from(gas_used).saturating_mul(effective_gas_price) / 1_000_000_000;
    metrics::counter!(GAS_SPENT).increment(u64::try_from(gwei).unwrap_or(u64::MAX));
}
