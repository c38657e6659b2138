//! TEST-ONLY crash hook: `ECLD_NODE_CRASH_AT=<point>` makes the node kill itself with SIGKILL
//! right after the journal step named by `<point>` is fsynced, so that tests can check that a
//! restart from the journal finishes the task without running it twice or uploading a
//! different result. Unset (always, outside tests) it does nothing.
//!
//! | point | the node dies after |
//! | --- | --- |
//! | `after_claim` | the claim is on chain and journaled (`Claimed`), before fetching or running |
//! | `after_run` | the enclave's outcome and result file are journaled (`Proven`), before the upload |
//! | `after_upload` | the result is in the store and its CID journaled (`Uploaded`), before `submitResult` |
//! | `after_submit` | `submitResult` is mined, before the journal records the task as done |

use std::sync::OnceLock;

/// The environment variable naming the crash point (test-only).
pub const ENV: &str = "ECLD_NODE_CRASH_AT";
/// After the claim is journaled.
pub const AFTER_CLAIM: &str = "after_claim";
/// After the enclave's outcome is journaled.
pub const AFTER_RUN: &str = "after_run";
/// After the result upload is journaled.
pub const AFTER_UPLOAD: &str = "after_upload";
/// After `submitResult` is mined.
pub const AFTER_SUBMIT: &str = "after_submit";

fn chosen() -> Option<&'static str> {
    static CHOSEN: OnceLock<Option<String>> = OnceLock::new();
    CHOSEN.get_or_init(|| std::env::var(ENV).ok().filter(|v| !v.is_empty())).as_deref()
}

/// Kills this process with SIGKILL if `point` is the one named by [`ENV`].
pub fn reached(point: &'static str) {
    if chosen() != Some(point) {
        return;
    }
    eprintln!("{ENV}={point}: killing the node with SIGKILL (test-only crash hook)");
    let pid = std::process::id().to_string();
    // SIGKILL, as an operator's `kill -9` or the OOM killer would: no destructor, no flush.
    let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
    std::process::abort();
}
