#![doc = include_str!("../README.md")]

mod goal;
pub mod provenance;
mod section;

use std::path::{Path, PathBuf};

pub use goal::{Goal, Verdict, goals_table};
pub use provenance::Provenance;
pub use section::{find_section, replace_section, stamp_section, write_section};

/// The environment variable that redirects every bench's output from `docs/BENCHMARKS.md`
/// to another file (`ecld bench all --write FILE` sets it).
pub const BENCHMARKS_FILE_ENV: &str = "ECLD_BENCHMARKS_FILE";

/// The file a bench writes its section to: `ECLD_BENCHMARKS_FILE` when set, otherwise
/// `docs/BENCHMARKS.md` under the repository `root`.
#[must_use]
pub fn benchmarks_file(root: &Path) -> PathBuf {
    match std::env::var_os(BENCHMARKS_FILE_ENV) {
        Some(file) if !file.is_empty() => PathBuf::from(file),
        _ => root.join("docs/BENCHMARKS.md"),
    }
}

/// The machine a benchmark runs on, as each section of docs/BENCHMARKS.md states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Logical CPUs this process may use (0 when unknown).
    pub cores: usize,
    /// The CPU model (`model name` of /proc/cpuinfo), or `unknown CPU`.
    pub cpu: String,
    /// Total memory in bytes (`MemTotal` of /proc/meminfo), when known.
    pub memory_bytes: Option<u64>,
    /// The operating system: distribution and kernel where Linux tells them.
    pub os: String,
    /// The `rustc --version` of the compiler that built the bench.
    pub rustc: String,
    /// Today's date, UTC, `YYYY-MM-DD`.
    pub date: String,
}

impl Machine {
    /// Describes the machine this process runs on.
    #[must_use]
    pub fn detect() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu: proc_field("/proc/cpuinfo", "model name", ':')
                .unwrap_or_else(|| "unknown CPU".to_owned()),
            memory_bytes: proc_field("/proc/meminfo", "MemTotal", ':')
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| kib * 1024),
            os: os(),
            rustc: env!("ECLD_BENCHKIT_RUSTC").to_owned(),
            date: today(),
        }
    }

    /// `2 cores, AMD EPYC 7B13`: what most sections' machine line starts with.
    #[must_use]
    pub fn cores_and_cpu(&self) -> String {
        format!("{} cores, {}", self.cores, self.cpu)
    }

    /// Total memory in whole GiB, `24 GiB`, or `unknown memory`.
    #[must_use]
    pub fn memory(&self) -> String {
        self.memory_bytes.map_or_else(
            || "unknown memory".to_owned(),
            |b| format!("{:.0} GiB", b as f64 / f64::from(1u32 << 30)),
        )
    }

    /// Everything on one line: `2 cores, AMD EPYC 7B13; 24 GiB; Ubuntu 24.04 (Linux 6.8.0);
    /// rustc 1.95.0 (…); 2026-11-27`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{}; {}; {}; {}; {}",
            self.cores_and_cpu(),
            self.memory(),
            self.os,
            self.rustc,
            self.date
        )
    }
}

/// The 1-minute load average (/proc/loadavg), e.g. `3.71`: how busy the machine was when a
/// bench started.
#[must_use]
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

/// Today's date, UTC, `YYYY-MM-DD`.
#[must_use]
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The calendar date `days` after 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// `civil_from_days`, for days since the epoch only).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The value after `sep` on the first line of `file` that starts with `key`, trimmed.
fn proc_field(file: &str, key: &str, sep: char) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let value = line.split_once(sep)?.1.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn os() -> String {
    let name = proc_field("/etc/os-release", "PRETTY_NAME", '=')
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(kernel) if !kernel.trim().is_empty() => format!("{name} (Linux {})", kernel.trim()),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(20_819), (2027, 1, 1));
    }

    #[test]
    fn today_is_a_utc_date() {
        let t = today();
        assert_eq!(t.len(), 10, "{t}");
        assert!(t.starts_with("20") && &t[4..5] == "-" && &t[7..8] == "-", "{t}");
    }

    #[test]
    fn machine_line_names_cores_cpu_memory_os_rustc_and_date() {
        let m = Machine {
            cores: 2,
            cpu: "AMD EPYC 7B13".into(),
            memory_bytes: Some(24 * (1 << 30)),
            os: "Ubuntu 24.04 LTS (Linux 6.8.0)".into(),
            rustc: "rustc 1.95.0".into(),
            date: "2026-11-27".into(),
        };
        assert_eq!(m.cores_and_cpu(), "2 cores, AMD EPYC 7B13");
        assert_eq!(
            m.describe(),
            "2 cores, AMD EPYC 7B13; 24 GiB; Ubuntu 24.04 LTS (Linux 6.8.0); rustc 1.95.0; 2026-11-27"
        );
        assert_eq!(Machine { memory_bytes: None, ..m }.memory(), "unknown memory");
    }

    #[test]
    fn detect_reads_this_machine() {
        let m = Machine::detect();
        assert!(m.cores >= 1);
        assert!(m.rustc.starts_with("rustc "), "{}", m.rustc);
        assert_eq!(m.date, today());
        if cfg!(target_os = "linux") {
            assert_ne!(m.cpu, "unknown CPU");
            assert!(m.memory_bytes.is_some_and(|b| b > 0));
            assert!(m.os.contains("Linux"), "{}", m.os);
        }
    }

    #[test]
    fn benchmarks_file_defaults_to_the_docs_of_the_root() {
        // The variable is not set by the test runner; `ecld bench all` sets it for children.
        if std::env::var_os(BENCHMARKS_FILE_ENV).is_none() {
            assert_eq!(benchmarks_file(Path::new("/r")), Path::new("/r/docs/BENCHMARKS.md"));
        }
    }
}
