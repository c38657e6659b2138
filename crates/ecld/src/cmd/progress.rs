//! Progress of the data flow on stderr: a spinner per running step on a terminal, one line
//! per finished step otherwise (so logs of scripts and CI show where time went).

use std::{
    io::IsTerminal,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ecld_sdk::Step;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows which step of the data flow is running.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Mutex<Option<(Step, Instant)>>,
    /// Bytes of the running step's upload or download, and when to print the next line of it
    /// (without a terminal).
    moved: Mutex<Moved>,
}

/// Bytes of one transfer so far, and when a display without a terminal prints its next line.
#[derive(Default)]
struct Moved {
    done: u64,
    total: Option<u64>,
    next_line: u64,
}

impl Moved {
    /// Records `done` of `total`; true when a line is due: at every tenth of a transfer of
    /// [`QUIET_BELOW`] or more, before its end.
    fn record(&mut self, done: u64, total: Option<u64>) -> bool {
        self.done = done;
        self.total = total.or(self.total);
        let due = self.big() && done >= self.next_line && self.total.is_some_and(|t| done < t);
        if due {
            self.next_line = done + self.total.map_or(QUIET_BELOW, |t| (t / 10).max(QUIET_BELOW));
        }
        due
    }

    /// Whether the transfer is large enough to be shown.
    fn big(&self) -> bool {
        self.total.unwrap_or(self.done) >= QUIET_BELOW
    }
}

impl Progress {
    /// A progress display on stderr.
    pub(crate) fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(80));
            bar
        });
        Self { bar, started: Mutex::new(None), moved: Mutex::default() }
    }

    /// `done` of `total` bytes of the running step's upload or download went through: shown
    /// beside the spinner, or as a line at every tenth of a transfer of 1 MiB or more.
    pub(crate) fn bytes(&self, done: u64, total: Option<u64>) {
        let started = *self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some((step, at)) = started else { return };
        let mut moved = self.moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = moved.record(done, total);
        let line = || bytes_line(done, moved.total, at.elapsed());
        match &self.bar {
            Some(bar) => bar.set_message(format!("{} {}", describe(step), line())),
            None if due => eprintln!("    {:<9} {}", step.label(), line()),
            None => {}
        }
    }

    /// This display as the SDK's transfer callback ([`ecld_sdk::Client::on_transfer`]).
    pub(crate) fn transfer_callback(self: &Arc<Self>) -> Arc<dyn ecld_store::Progress> {
        let me = Arc::clone(self);
        Arc::new(move |done: u64, total: Option<u64>| me.bytes(done, total))
    }

    /// Step `step` started (`done == false`) or finished (`done == true`).
    pub(crate) fn step(&self, step: Step, done: bool) {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if done {
            let took = started
                .take()
                .filter(|(s, _)| *s == step)
                .map_or(Duration::ZERO, |(_, t)| t.elapsed());
            let moved = std::mem::take(
                &mut *self.moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let mut line = format!("  ✓ {:<9} {:>8.1} ms", step.label(), took.as_secs_f64() * 1e3);
            if moved.done > 0 {
                line.push_str(&format!("  {}", human_bytes(moved.done)));
            }
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        } else {
            *started = Some((step, Instant::now()));
            if let Some(bar) = &self.bar {
                bar.set_message(describe(step));
            }
        }
    }

    /// Removes the spinner.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(step: Step) -> &'static str {
    match step {
        Step::Encrypt => "encrypting the input to the image's enclave key",
        Step::Upload => "uploading the ciphertext to the store",
        Step::Submit => "submitting the task (permit + submitTask, one transaction)",
        Step::Execute => "waiting for a node to run the task in its enclave and prove it on chain",
        Step::Proof => "reading the proof of execution from the chain",
        Step::Download => "downloading the encrypted result from the store",
        Step::Verify => "verifying the proof of execution",
        Step::Decrypt => "decrypting the result with your identity",
    }
}

/// Bytes moved to or from the store: a bar with bytes, rate and time left on a terminal,
/// otherwise one line each time another tenth (at least 1 MiB) has gone and one at the end.
pub(crate) struct Transfer {
    what: &'static str,
    bar: Option<ProgressBar>,
    state: Mutex<TransferState>,
}

struct TransferState {
    started: Instant,
    moved: Moved,
}

/// Transfers smaller than this print nothing: they take no time worth showing.
const QUIET_BELOW: u64 = 1 << 20;

impl Transfer {
    /// A transfer display on stderr for `what` ("uploaded", "downloaded").
    pub(crate) fn new(what: &'static str) -> Arc<Self> {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(what);
            bar
        });
        let state = TransferState { started: Instant::now(), moved: Moved::default() };
        Arc::new(Self { what, bar, state: Mutex::new(state) })
    }

    /// Records that `done` of `total` bytes went through.
    pub(crate) fn update(&self, done: u64, total: Option<u64>) {
        let mut st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = st.moved.record(done, total);
        match &self.bar {
            Some(bar) if st.moved.big() => {
                if bar.is_hidden() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                if let Some(t) = st.moved.total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            }
            None if due => {
                eprintln!(
                    "  {} {}",
                    self.what,
                    bytes_line(done, st.moved.total, st.started.elapsed())
                );
            }
            _ => {}
        }
    }

    /// The transfer ended: clears the bar and prints the total (for 1 MiB or more).
    pub(crate) fn finish(&self) {
        let st = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if st.moved.done >= QUIET_BELOW {
            let line = bytes_line(st.moved.done, st.moved.total, st.started.elapsed());
            eprintln!("  {} {line}", self.what);
        }
    }

    /// This display as the store client's progress callback.
    pub(crate) fn callback(self: &Arc<Self>) -> Arc<dyn ecld_store::Progress> {
        let me = Arc::clone(self);
        Arc::new(move |done: u64, total: Option<u64>| me.update(done, total))
    }
}

fn bytes_line(done: u64, total: Option<u64>, took: Duration) -> String {
    let rate = done as f64 / took.as_secs_f64().max(1e-3);
    match total {
        Some(t) => format!(
            "{} of {} ({:.0}%, {}/s)",
            human_bytes(done),
            human_bytes(t),
            100.0 * done as f64 / (t.max(1)) as f64,
            human_bytes(rate as u64)
        ),
        None => format!("{} ({}/s)", human_bytes(done), human_bytes(rate as u64)),
    }
}

/// `1536` -> `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
