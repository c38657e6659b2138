//! Results on stdout: text for people, JSON with the global `--json` flag.
//!
//! Commands whose output is data call [`emit`]; logs never go through here (they go to
//! stderr through `tracing`).

use std::{
    io::Write,
    sync::atomic::{AtomicBool, Ordering},
};

use serde::Serialize;

static JSON: AtomicBool = AtomicBool::new(false);

/// Records the global `--json` flag; `main` calls this once after parsing.
pub(crate) fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether the user asked for JSON output.
pub(crate) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Prints `value` as one line of JSON when `--json` is on, otherwise the text `human`
/// renders (one or more lines, no trailing newline needed).
pub(crate) fn emit<T: Serialize>(
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json() {
        serde_json::to_writer(&mut out, value)?;
        writeln!(out)?;
    } else {
        let text = human(value);
        writeln!(out, "{}", text.trim_end())?;
    }
    out.flush()?;
    Ok(())
}
