//! `scripts/peers`, the preflight of `scripts/test`, run in a scratch copy of the repository
//! whose PATH holds only stand-ins for the peer tools: with every peer there it passes, and with
//! any one of them taken away it fails under `CI=true`, naming that peer and what installs it.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// One peer the preflight checks: how to take it away from the scratch tree, and the words its
/// failure must contain (what is missing, what installs it).
struct Case {
    remove: Removal,
    names: &'static str,
    installer: &'static str,
}

enum Removal {
    /// A program left out of PATH.
    Program(&'static str),
    /// A file deleted from the scratch repository.
    File(&'static str),
    /// A Python module whose import fails.
    PythonModule(&'static str),
    /// The wasm32-wasip1 target absent from `rustup target list --installed`.
    WasmTarget,
    /// The chromium binary absent.
    Chromium,
}

const PROGRAMS: [&str; 6] = ["node", "npm", "python3", "age", "age-keygen", "rustup"];
const FILES: [&str; 6] = [
    "tools/node_modules/hardhat/internal/cli/bootstrap.js",
    "tools/node_modules/solc/package.json",
    "tools/node_modules/ethers/package.json",
    "tools/node_modules/.bin/jsipfs",
    "programs/out/python.wasm",
    "programs/out/js.wasm",
];

fn cases() -> Vec<Case> {
    let setup_node = "scripts/setup (Debian packages nodejs and npm)";
    let setup_npm = "scripts/setup (npm install in tools/)";
    let setup_pip = "scripts/setup (pip install -r tools/requirements.txt)";
    let build = "scripts/build-programs";
    vec![
        Case { remove: Removal::Program("node"), names: "node (Node.js)", installer: setup_node },
        Case { remove: Removal::Program("npm"), names: "npm is missing", installer: setup_node },
        Case {
            remove: Removal::File(FILES[0]),
            names: "hardhat (tools/node_modules/hardhat)",
            installer: setup_npm,
        },
        Case { remove: Removal::File(FILES[1]), names: "solc", installer: setup_npm },
        Case { remove: Removal::File(FILES[2]), names: "ethers", installer: setup_npm },
        Case { remove: Removal::File(FILES[3]), names: "js-ipfs", installer: setup_npm },
        Case {
            remove: Removal::PythonModule("eth_account"),
            names: "eth_account",
            installer: setup_pip,
        },
        Case { remove: Removal::PythonModule("web3"), names: "web3", installer: setup_pip },
        Case { remove: Removal::Program("python3"), names: "eth_account", installer: setup_pip },
        Case { remove: Removal::Chromium, names: "chromium", installer: "Debian package chromium" },
        Case {
            remove: Removal::Program("age"),
            names: "age is missing",
            installer: "Debian package age",
        },
        Case {
            remove: Removal::Program("age-keygen"),
            names: "age-keygen",
            installer: "Debian package age",
        },
        Case {
            remove: Removal::WasmTarget,
            names: "wasm32-wasip1",
            installer: "rustup target add wasm32-wasip1",
        },
        Case {
            remove: Removal::Program("rustup"),
            names: "wasm32-wasip1",
            installer: "scripts/setup",
        },
        Case {
            remove: Removal::File(FILES[4]),
            names: "programs/out/python.wasm",
            installer: build,
        },
        Case { remove: Removal::File(FILES[5]), names: "programs/out/js.wasm", installer: build },
    ]
}

/// A scratch repository holding `scripts/peers` and every peer file, and a directory of
/// stand-in programs that is the whole PATH.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Scratch {
    fn with_every_peer() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(root.join("scripts")).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers");
        std::fs::copy(peers, root.join("scripts/peers")).unwrap();
        for file in FILES {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            executable(&path, "exit 0");
        }
        for program in PROGRAMS {
            executable(&bin.join(program), "exit 0");
        }
        executable(&bin.join("rustup"), "printf 'x86_64-unknown-linux-gnu\\nwasm32-wasip1\\n'");
        executable(&bin.join("chromium"), "exit 0");
        Self { _dir: dir, root, bin }
    }

    fn remove(&self, removal: &Removal) {
        match removal {
            Removal::Program(name) => std::fs::remove_file(self.bin.join(name)).unwrap(),
            Removal::File(path) => std::fs::remove_file(self.root.join(path)).unwrap(),
            Removal::PythonModule(module) => executable(
                &self.bin.join("python3"),
                &format!("case \"$2\" in *'import {module}'*) exit 1 ;; esac\nexit 0"),
            ),
            Removal::WasmTarget => {
                executable(&self.bin.join("rustup"), "echo x86_64-unknown-linux-gnu");
            }
            Removal::Chromium => std::fs::remove_file(self.bin.join("chromium")).unwrap(),
        }
    }

    /// Runs the preflight with `CI` set to `ci` (or unset), a PATH of the stand-ins only.
    fn preflight(&self, ci: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(bash());
        cmd.arg(self.root.join("scripts/peers"))
            .args(args)
            .env_clear()
            .env("PATH", &self.bin)
            .env("CHROMIUM", self.bin.join("chromium"));
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        cmd.output().unwrap()
    }
}

/// bash, found on the PATH of the test run (the preflight itself runs with a PATH without it).
fn bash() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bash"))
        .find(|candidate| candidate.is_file())
        .expect("bash is on PATH")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn with_every_peer_present_the_preflight_passes_under_ci() {
    let scratch = Scratch::with_every_peer();
    let out = scratch.preflight(Some("true"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("all 14 peer tools checked are here"), "{}", stderr(&out));
}

#[test]
fn with_any_one_peer_removed_the_preflight_fails_under_ci_naming_it_and_its_installer() {
    for case in cases() {
        let scratch = Scratch::with_every_peer();
        scratch.remove(&case.remove);
        let out = scratch.preflight(Some("true"), &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{} removed: {err}", case.names);
        let line = err
            .lines()
            .find(|l| l.contains(case.names))
            .unwrap_or_else(|| panic!("{} is not named: {err}", case.names));
        assert!(line.contains(case.installer), "{} without its installer: {line}", case.names);
        assert!(err.contains("is a failure, not a skip"), "{err}");
    }
}

#[test]
fn outside_ci_a_missing_peer_is_named_and_the_preflight_passes() {
    let scratch = Scratch::with_every_peer();
    scratch.remove(&Removal::File(FILES[0]));
    for ci in [None, Some(""), Some("false"), Some("0")] {
        let out = scratch.preflight(ci, &[]);
        let err = stderr(&out);
        assert!(out.status.success(), "CI={ci:?}: {err}");
        assert!(err.contains("hardhat (tools/node_modules/hardhat) is missing"), "{err}");
        assert!(err.contains("will be skipped"), "{err}");
    }
}

#[test]
fn tools_and_images_are_checked_separately() {
    let scratch = Scratch::with_every_peer();
    scratch.remove(&Removal::File(FILES[4]));
    // Before the programs are built, a missing runner image is not yet a failure.
    let tools = scratch.preflight(Some("true"), &["--tools"]);
    assert!(tools.status.success(), "{}", stderr(&tools));
    let images = scratch.preflight(Some("true"), &["--images"]);
    assert_eq!(images.status.code(), Some(1), "{}", stderr(&images));
    assert!(stderr(&images).contains("programs/out/python.wasm"), "{}", stderr(&images));
}

#[test]
fn the_shared_peers_are_named_and_installed_as_the_preflight_says() {
    use ecld_testkit::peers;
    let script = include_str!("../../../../scripts/peers");
    for peer in [
        peers::NODE,
        peers::HARDHAT,
        peers::SOLC,
        peers::ETHERS,
        peers::JS_IPFS,
        peers::ETH_ACCOUNT,
        peers::WEB3,
        peers::PYTHON_RUNNER,
        peers::JS_RUNNER,
    ] {
        assert!(script.contains(&format!("need \"{}\"", peer.what)), "{peer:?}");
        assert!(script.contains(&format!("=\"{}\"", peer.install)), "{peer:?}");
    }
}
