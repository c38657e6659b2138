#![doc = include_str!("../README.md")]

use std::{
    ffi::{OsStr, OsString},
    fs::OpenOptions,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

pub mod peers;

/// The environment variable naming the skip log (`scripts/test` sets it for its whole run).
pub const SKIP_LOG_ENV: &str = "ECLD_SKIP_LOG";

/// The skip log's file name in the target directory when `ECLD_SKIP_LOG` is not set.
pub const SKIP_LOG_NAME: &str = "ecld-skipped.txt";

/// A program or file written by others that a test runs against, and what installs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer<'a> {
    /// What a person would look for: `node (Node.js)`, `hardhat (tools/node_modules/hardhat)`.
    pub what: &'a str,
    /// What puts it there: `run scripts/setup (npm install in tools/)`.
    pub install: &'a str,
}

impl Peer<'_> {
    /// Whether `test` (named as nextest lists it, with its crate) may run against this peer,
    /// which is there when `present`.
    ///
    /// A missing peer fails the test under CI (this panics, naming the peer and what installs
    /// it). Elsewhere it is a skip that is seen: printed to stderr and appended to
    /// [`skip_log`], whose lines `scripts/test` prints in its summary; then this returns `false`
    /// and the test returns.
    ///
    /// # Panics
    ///
    /// Under CI when the peer is missing; anywhere when the skip cannot be written to the log
    /// (a skip nobody would see is what this exists to prevent).
    #[must_use]
    pub fn available_for(&self, test: &str, present: bool) -> bool {
        let ci = in_ci(std::env::var_os("CI").as_deref());
        self.available_in(test, present, ci, &skip_log())
    }

    /// [`Peer::available_for`] with the environment spelled out.
    fn available_in(&self, test: &str, present: bool, ci: bool, log: &Path) -> bool {
        if present {
            return true;
        }
        let missing = format!("{} is missing; {}", self.what, self.install);
        assert!(!ci, "{test}: {missing} (under CI a missing peer is a failure, not a skip)");
        eprintln!("SKIPPED {test}: {missing}");
        if let Err(e) = append_line(log, &format!("{test}: {missing}")) {
            panic!(
                "{test}: {missing}; and the skip could not be recorded in {}: {e}",
                log.display()
            );
        }
        false
    }
}

/// Whether `program` with `args` runs and exits successfully (its output is discarded): the
/// probe for a peer program or for a module of one (`python3 -c "import web3"`).
#[must_use]
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the environment variable `CI` (given as `value`) says this is a CI run: set to
/// anything but empty, `0` or `false` (CI sets `CI=true`; some services set `CI=1`).
#[must_use]
pub fn in_ci(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Where skips are recorded: `$ECLD_SKIP_LOG`, else `ecld-skipped.txt` in `$CARGO_TARGET_DIR`,
/// else in the target directory the running test binary was built in (`<target>/debug/deps/`),
/// else in the temporary directory.
#[must_use]
pub fn skip_log() -> PathBuf {
    skip_log_from(
        std::env::var_os(SKIP_LOG_ENV),
        std::env::var_os("CARGO_TARGET_DIR"),
        std::env::current_exe().ok().as_deref(),
    )
}

fn skip_log_from(
    skip_log: Option<OsString>,
    target_dir: Option<OsString>,
    exe: Option<&Path>,
) -> PathBuf {
    if let Some(log) = skip_log.filter(|l| !l.is_empty()) {
        return PathBuf::from(log);
    }
    if let Some(dir) = target_dir.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join(SKIP_LOG_NAME);
    }
    // <target>/<profile>/deps/<test binary>
    let deps = exe.and_then(Path::parent).filter(|d| d.file_name() == Some(OsStr::new("deps")));
    match deps.and_then(Path::parent).and_then(Path::parent) {
        Some(target) => target.join(SKIP_LOG_NAME),
        None => std::env::temp_dir().join(SKIP_LOG_NAME),
    }
}

/// Appends `line` and a newline in one write, so lines from parallel test processes stay whole.
fn append_line(log: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let one_line = line.replace('\n', " ");
    let mut file = OpenOptions::new().create(true).append(true).open(log)?;
    file.write_all(format!("{one_line}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HARDHAT: Peer<'static> = Peer {
        what: "hardhat (tools/node_modules/hardhat)",
        install: "run scripts/setup (npm install in tools/)",
    };

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_present_peer_runs_the_test_and_records_nothing_even_under_ci() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skipped.txt");
        assert!(HARDHAT.available_in("crate::it t", true, true, &log));
        assert!(HARDHAT.available_in("crate::it t", true, false, &log));
        assert!(!log.exists());
    }

    #[test]
    fn a_missing_peer_outside_ci_is_a_skip_recorded_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("nested/skipped.txt");
        assert!(!HARDHAT.available_in("crate::it a", false, false, &log));
        assert!(!HARDHAT.available_in("crate::it b", false, false, &log));
        assert_eq!(
            read(&log),
            "crate::it a: hardhat (tools/node_modules/hardhat) is missing; run scripts/setup \
             (npm install in tools/)\ncrate::it b: hardhat (tools/node_modules/hardhat) is \
             missing; run scripts/setup (npm install in tools/)\n"
        );
    }

    #[test]
    fn a_missing_peer_under_ci_fails_naming_it_and_its_installer() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skipped.txt");
        let panic =
            std::panic::catch_unwind(|| HARDHAT.available_in("crate::it t", false, true, &log))
                .expect_err("a missing peer under CI must fail the test");
        let message = panic.downcast_ref::<String>().expect("a formatted panic message");
        assert!(message.starts_with("crate::it t: hardhat (tools/node_modules/hardhat) is missing; run scripts/setup (npm install in tools/)"), "{message}");
        assert!(!log.exists(), "a failure is not a skip");
    }

    #[test]
    fn a_skip_that_cannot_be_recorded_fails() {
        let dir = tempfile::tempdir().unwrap();
        // The log's parent is a file, so the log cannot be created.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let log = blocker.join("skipped.txt");
        let panic =
            std::panic::catch_unwind(|| HARDHAT.available_in("crate::it t", false, false, &log))
                .expect_err("an unrecorded skip must fail");
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(message.contains("could not be recorded"), "{message}");
    }

    #[test]
    fn ci_is_any_value_but_empty_zero_or_false() {
        for yes in ["true", "1", "yes", "TRUE"] {
            assert!(in_ci(Some(OsStr::new(yes))), "{yes}");
        }
        for no in ["", "0", "false", "False"] {
            assert!(!in_ci(Some(OsStr::new(no))), "{no:?}");
        }
        assert!(!in_ci(None));
    }

    #[test]
    fn skip_log_is_the_named_file_then_the_target_dir_then_the_binarys_target_dir() {
        let exe = Path::new("/t/target/debug/deps/it-0123abcd");
        assert_eq!(
            skip_log_from(Some("/x/log.txt".into()), Some("/cache".into()), Some(exe)),
            PathBuf::from("/x/log.txt")
        );
        assert_eq!(
            skip_log_from(Some("".into()), Some("/cache".into()), Some(exe)),
            PathBuf::from("/cache/ecld-skipped.txt")
        );
        assert_eq!(
            skip_log_from(None, None, Some(exe)),
            PathBuf::from("/t/target/ecld-skipped.txt")
        );
        assert_eq!(
            skip_log_from(None, None, Some(Path::new("/usr/bin/it"))),
            std::env::temp_dir().join("ecld-skipped.txt")
        );
    }

    #[test]
    fn runs_is_true_only_for_a_program_that_exits_successfully() {
        assert!(runs("sh", &["-c", "exit 0"]));
        assert!(!runs("sh", &["-c", "exit 3"]));
        assert!(!runs("ecld-testkit-no-such-program", &[]));
    }
}
