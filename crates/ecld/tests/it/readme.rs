//! Every shell command the READMEs show, run as printed and in order, on a fresh stack: the
//! top-level README (after its first block, the two commands that set up and test), then the
//! crates', the web page's and the SDK's READMEs.
//!
//! The commands run in a copy of the working tree (so files they write stay out of it) with
//! the built `ecld` first on the PATH, as `./scripts/demo` leaves it. A line `ecld up …` does
//! what a reader does in another terminal: it stops the stack this run started before, if any
//! (Ctrl-C), starts the new one in the background and waits until it is up. Each block starts
//! in the copy's root, in one shell with the blocks before it (variables carry over).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
};

use crate::e2e_stack::{ecld_bin, log_scan, programs_dir, repo_root};

/// A fenced shell block of a README.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// `README.md:12`: the file (relative to the repository root) and the fence's line.
    origin: String,
    /// The commands, with continuation lines joined.
    lines: Vec<String>,
}

/// The ```sh / ```bash / ```shell blocks of a Markdown text, in order.
fn shell_blocks(file: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut pending = String::new();
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match open.as_mut() {
            None => {
                if let Some(lang) = fence.strip_prefix("```") {
                    let lang = lang.split([',', ' ']).next().unwrap_or_default();
                    // Blocks of other languages are read to their closing fence and dropped.
                    let origin = if matches!(lang, "sh" | "bash" | "shell") {
                        format!("{file}:{}", n + 1)
                    } else {
                        String::new()
                    };
                    open = Some(Block { origin, lines: vec![] });
                }
            }
            Some(block) => {
                if fence.starts_with("```") {
                    let block = open.take().unwrap();
                    if !block.origin.is_empty() {
                        blocks.push(block);
                    }
                    continue;
                }
                if block.origin.is_empty() {
                    continue;
                }
                if let Some(head) = line.strip_suffix('\\') {
                    pending.push_str(head);
                    continue;
                }
                pending.push_str(line);
                let whole = std::mem::take(&mut pending);
                if !whole.trim().is_empty() {
                    block.lines.push(whole);
                }
            }
        }
    }
    blocks
}

/// Whether `line` starts the local stack (`ecld up`, with or without flags).
fn starts_stack(line: &str) -> bool {
    let t = line.trim_start();
    t == "ecld up" || t.starts_with("ecld up ")
}

/// The READMEs in the order the test runs them, with their blocks; the top-level README's
/// first block (set up and run, run the tests) is left out: the test command runs both.
fn readme_blocks(root: &Path) -> Vec<Block> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut others: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("README.md"))
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix(root).unwrap().to_owned())
        .collect();
    others.sort();
    files.extend(others);
    for extra in ["programs/README.md", "web/README.md", "sdk-js/README.md"] {
        if root.join(extra).is_file() {
            files.push(PathBuf::from(extra));
        }
    }
    let mut blocks = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        let mut found = shell_blocks(&file.display().to_string(), &text);
        if file == Path::new("README.md") {
            assert!(!found.is_empty(), "README.md has no shell block");
            let first = found.remove(0);
            assert!(
                first.lines.iter().any(|l| l.contains("./scripts/demo"))
                    && first.lines.iter().any(|l| l.contains("./scripts/test")),
                "README.md's first block is the two commands (demo, test): {first:?}"
            );
        }
        blocks.extend(found);
    }
    blocks
}

/// The shell script that runs `blocks` as a reader would.
fn script(blocks: &[Block], root: &Path, logs: &Path) -> String {
    let mut s = format!(
        r#"set -euo pipefail
ROOT={root:?}
LOGS={logs:?}
up_pid=""
stop_stack() {{
  if [ -n "$up_pid" ] && kill -0 "$up_pid" 2>/dev/null; then
    kill -TERM "$up_pid"
    wait "$up_pid" || true
  fi
  up_pid=""
}}
trap stop_stack EXIT
readme_ecld_up() {{
  stop_stack
  : >"$LOGS/up.out"
  ecld up "$@" >"$LOGS/up.out" 2>>"$LOGS/up.err" &
  up_pid=$!
  for _ in $(seq 1 1500); do
    if grep -q "ecld local stack is up" "$LOGS/up.out"; then return 0; fi
    if ! kill -0 "$up_pid" 2>/dev/null; then
      echo "ecld up exited before it was up:" >&2; cat "$LOGS/up.err" >&2; return 1
    fi
    sleep 0.2
  done
  echo "ecld up was not up within 300 s" >&2
  return 1
}}
"#
    );
    for block in blocks {
        writeln!(s, "\n# {}\ncd \"$ROOT\"", block.origin).unwrap();
        for line in &block.lines {
            writeln!(s, "printf '%s\\n' {}", shell_quote(&format!("+ {line}"))).unwrap();
            if starts_stack(line) {
                let rest = line.trim_start().strip_prefix("ecld up").unwrap();
                writeln!(s, "readme_ecld_up{rest}").unwrap();
            } else {
                writeln!(s, "{line}").unwrap();
            }
        }
    }
    s.push_str("\necho README-COMMANDS-DONE\n");
    s
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Copies the files git knows (tracked, or new and not ignored), with their file times, and
/// the built programs.
fn copy_tree(from: &Path, to: &Path) {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(from)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed in {}", from.display());
    for name in out.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = Path::new(std::str::from_utf8(name).unwrap());
        let src = from.join(rel);
        if !src.is_file() {
            continue; // deleted in the work tree
        }
        let dst = to.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
        // The same file times as the tree, so builds in the copy reuse the shared build cache
        // (cargo judges path crates fresh by file times).
        let modified = std::fs::metadata(&src).unwrap().modified().unwrap();
        std::fs::File::options().write(true).open(&dst).unwrap().set_modified(modified).unwrap();
    }
    let programs = programs_dir();
    std::fs::create_dir_all(to.join("programs/out")).unwrap();
    for e in std::fs::read_dir(&programs).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "wasm") {
            std::fs::copy(e.path(), to.join("programs/out").join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn readme_blocks_are_found_with_their_lines_joined() {
    let md = "intro\n```sh\n./a   # one\nb \\\n  --c\n```\n```rust\nnot_shell();\n```\n\
              ```\nplain\n```\n```bash\n\necho two\n```\n";
    let blocks = shell_blocks("X.md", md);
    assert_eq!(
        blocks,
        vec![
            Block { origin: "X.md:2".into(), lines: vec!["./a   # one".into(), "b   --c".into()] },
            Block { origin: "X.md:13".into(), lines: vec!["echo two".into()] },
        ]
    );
    assert!(starts_stack("ecld up   # the stack"));
    assert!(starts_stack("ecld up --data-dir x"));
    assert!(!starts_stack("ecld upgrade"));
    assert!(!starts_stack("echo ecld up"));
}

#[test]
fn every_readme_command_works_as_printed_on_a_fresh_stack() {
    let root = repo_root();
    let blocks = readme_blocks(&root);
    let commands: usize = blocks.iter().map(|b| b.lines.len()).sum();
    assert!(commands >= 10, "only {commands} README commands found: {blocks:#?}");
    let needs_node = blocks.iter().flat_map(|b| &b.lines).any(|l| l.contains("npm "));
    if needs_node {
        let node = ecld_testkit::Peer {
            what: "npm (Node.js), which the web README's build command runs",
            install: "run scripts/setup (it installs Node.js where absent)",
        };
        if !node.available_for(
            "ecld::it readme::every_readme_command_works_as_printed_on_a_fresh_stack",
            ecld_testkit::runs("npm", &["--version"]),
        ) {
            return;
        }
    }

    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("ecld");
    let logs = work.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    copy_tree(&root, &tree);
    let script_file = work.path().join("readme.sh");
    std::fs::write(&script_file, script(&blocks, &tree, &logs)).unwrap();

    let bin_dir = ecld_bin().parent().unwrap().to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg(&script_file)
        .current_dir(&tree)
        .env("PATH", path)
        // `ecld up`'s default data directory, fresh: ~/.local/share/ecld stands for it.
        .env("XDG_DATA_HOME", work.path().join("xdg"))
        // The default ports may be taken by other tests running beside this one.
        .env("ECLD_RPC_PORT", free_port().to_string())
        .env("ECLD_STORE_PORT", free_port().to_string())
        .env("ECLD_CAS_PORT", free_port().to_string())
        .env("ECLD_WEB_PORT", free_port().to_string());
    for var in [
        "ECLD_CONFIG",
        "ECLD_DATA_DIR",
        "ECLD_RPC",
        "ECLD_STORE",
        "ECLD_KEY",
        "ECLD_IDENTITY",
        "ECLD_CAS",
        "ECLD_DEPLOYMENT",
        "ECLD_PROGRAMS",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let up_err = std::fs::read_to_string(logs.join("up.err")).unwrap_or_default();
    assert!(
        out.status.success() && stdout.contains("README-COMMANDS-DONE"),
        "a README command failed ({}).\n--- commands and their output:\n{stdout}\n--- stderr:\n{stderr}\n--- ecld up's stderr:\n{up_err}",
        out.status
    );
    // What a reader would see: the stack ran tasks and printed verified results.
    assert_eq!(
        stdout.matches("\n+ ").count() + usize::from(stdout.starts_with("+ ")),
        commands,
        "{stdout}"
    );
    assert!(stderr.contains("proof verified"), "no task reported a verified proof:\n{stderr}");

    // The secret scan every end-to-end stack goes through, over the log of the stacks the
    // READMEs started (in `./.ecld` or `~/.local/share/ecld`). They have stopped, so their
    // tasks' plaintexts cannot be read back: their keys, in every form, are what is searched.
    let dirs: Vec<PathBuf> = [tree.join(".ecld"), work.path().join("xdg/ecld")]
        .into_iter()
        .filter(|d| d.join("keys").is_dir())
        .collect();
    assert!(!dirs.is_empty(), "no stack data directory with keys/ in ./.ecld or the XDG one");
    for data in dirs {
        let info = serde_json::json!({
            "cas_dir": data.join("cas"),
            "node": { "data_dir": data.join("node") },
            "images": [],
        });
        let stopped = Err("the README's stack has stopped".to_owned());
        let scan =
            log_scan::scan_stack(&data, &info, stopped, 8, &[logs.join("up.err")], vec![], || {});
        eprintln!("{}", scan.unwrap_or_else(|e| panic!("{e}")));
    }
}
