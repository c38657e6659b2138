//! Progress of the data flow on stderr: a spinner per running step on a terminal, one line
//! per finished step otherwise (so logs of scripts and CI show where time went).

use std::{
    io::IsTerminal,
    sync::Mutex,
    time::{Duration, Instant},
};

use ecld_sdk::Step;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows which step of the data flow is running.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Mutex<Option<(Step, Instant)>>,
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
        Self { bar, started: Mutex::new(None) }
    }

    /// Step `step` started (`done == false`) or finished (`done == true`).
    pub(crate) fn step(&self, step: Step, done: bool) {
        let mut started = self.started.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if done {
            let took = started
                .take()
                .filter(|(s, _)| *s == step)
                .map_or(Duration::ZERO, |(_, t)| t.elapsed());
            let line = format!("  ✓ {:<9} {:>8.1} ms", step.label(), took.as_secs_f64() * 1e3);
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
        Step::Download => "downloading the encrypted result",
        Step::Verify => "verifying the proof of execution",
        Step::Decrypt => "decrypting the result with your identity",
    }
}
