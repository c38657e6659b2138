//! Runner images end to end: the user's own code travels in the encrypted payload, runs in
//! the enclave of the `wasm`, `python` or `js` runner image, and the proof names its
//! keccak256.
//!
//! One stack per runner: a cold Python enclave compiles the interpreter for tens of seconds,
//! so each test runs all of its runner's scenarios in sequence on the same warm enclave.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers fail loudly on purpose.

use std::path::{Path, PathBuf};

use ecld_testkit::peers;
use ecld_types::{StatusCode, keccak256};
use serde_json::Value;

use crate::e2e_stack::{Stack, contains, files_under, programs_dir, repo_root};

/// What the program wrote, as `ecld task run --json` reports it after decryption.
#[derive(Debug)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// `ecld --json task run IMAGE --code CODE --input INPUT --memory-mb 256`, expecting exit
/// code `exit`; returns the JSON and the program's decrypted output.
fn run(stack: &Stack, image: &str, code: &Path, input: &Path, exit: i32) -> (Value, Output) {
    run_with(stack, image, code, input, exit, &["--memory-mb", "256"])
}

/// As [`run`], with the task's limits given by `limits` (`--max-runtime-ms`, `--memory-mb`).
fn run_with(
    stack: &Stack,
    image: &str,
    code: &Path,
    input: &Path,
    exit: i32,
    limits: &[&str],
) -> (Value, Output) {
    let mut args = vec![
        "task",
        "run",
        image,
        "--code",
        code.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ];
    args.extend_from_slice(limits);
    let out = stack.json(&args, exit);
    let bytes = match (out["result"].as_str(), out["result_hex"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(hex)) => alloy::hex::decode(hex).unwrap(),
        (None, None) => Vec::new(),
    };
    let stderr = out["stderr"].as_str().unwrap_or_default().as_bytes().to_vec();
    (out, Output { stdout: bytes, stderr })
}

fn code_hash_of(out: &Value) -> String {
    out["code_hash"].as_str().unwrap().to_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The JSON without the (possibly 16 MiB) result, for assertion messages.
fn summary(out: &Value) -> Value {
    let mut out = out.clone();
    for key in ["result", "result_hex"] {
        if let Some(text) = out[key].as_str() {
            out[key] = Value::String(format!("<{} chars>", text.len()));
        }
    }
    out
}

/// The output limit of every task: `ecld_enclave::protocol::Limits::default().output_bytes`.
/// The node passes the task's run time and memory from the chain; the output limit is not
/// a task parameter.
const OUTPUT_CAP: usize = 16 * 1024 * 1024;

/// A program that runs into one of its task's limits.
struct LimitCase {
    /// What the scenario is, for assertion messages.
    name: &'static str,
    /// The code sent with the task.
    code: Vec<u8>,
    /// The task's limits on the command line.
    limits: &'static [&'static str],
    /// The status the proof must carry.
    status: StatusCode,
    /// What the enclave's note on stderr must say.
    note: &'static str,
    /// The pattern the kept stdout must repeat (output scenario only).
    stdout_unit: Option<Vec<u8>>,
}

/// The three limit scenarios of one runner: `spin` never ends, `hog` keeps allocating and
/// `flood` keeps writing to stdout.
fn limit_cases(spin: Vec<u8>, hog: Vec<u8>, flood: Vec<u8>, flood_unit: Vec<u8>) -> [LimitCase; 3] {
    [
        LimitCase {
            name: "infinite loop, 1 s time limit",
            code: spin,
            // The chain counts run time in whole seconds: 1000 ms is the smallest limit.
            limits: &["--max-runtime-ms", "1000", "--memory-mb", "256"],
            status: StatusCode::Timeout,
            note: "stopped: used up its fuel (500000000: the task's run time)",
            stdout_unit: None,
        },
        LimitCase {
            name: "memory hog, 64 MB memory limit",
            code: hog,
            limits: &["--max-runtime-ms", "10000", "--memory-mb", "64"],
            status: StatusCode::ResourceLimit,
            note: "stopped: needed more than the memory limit of 67108864 bytes",
            stdout_unit: None,
        },
        LimitCase {
            name: "endless output, 16 MiB output limit",
            code: flood,
            limits: &["--max-runtime-ms", "10000", "--memory-mb", "256"],
            status: StatusCode::ResourceLimit,
            note: "stopped: wrote more than the output limit of 16777216 bytes",
            stdout_unit: Some(flood_unit),
        },
    ]
}

/// Runs each case as a task of `image` and checks its status, code hash and diagnostic.
fn check_limits(stack: &Stack, scratch: &Path, image: &str, cases: [LimitCase; 3]) {
    let input = write(scratch, "limits-input.txt", b"7\n");
    for (i, case) in cases.into_iter().enumerate() {
        let what = format!("{image} runner, {}", case.name);
        let code = write(scratch, &format!("limit-{i}.{image}"), &case.code);
        let (out, env) =
            run_with(stack, image, &code, &input, i32::from(case.status.exit_class()), case.limits);
        let brief = summary(&out);
        assert_eq!(out["status"], case.status.code(), "{what}: wrong status: {brief}");
        assert_eq!(out["status_name"], case.status.name(), "{what}: {brief}");
        assert_eq!(
            code_hash_of(&out),
            keccak256(&case.code).to_string(),
            "{what}: the proof's codeHash is not keccak256 of the code sent"
        );
        assert!(out["exit_code"].is_null(), "{what}: the program cannot have exited: {brief}");
        let stderr = String::from_utf8_lossy(&env.stderr);
        assert!(
            stderr.contains(case.note),
            "{what}: the diagnostic lacks {:?}: {stderr}",
            case.note
        );
        if let Some(unit) = &case.stdout_unit {
            assert_eq!(env.stdout.len(), OUTPUT_CAP, "{what}: the kept output is not the cap");
            assert!(
                env.stdout.chunks(unit.len()).all(|c| unit.starts_with(c)),
                "{what}: the kept output is not the start of what the program wrote"
            );
        }
    }
}

/// Runs `code` on `input` as a task of `image` with every service and the CLI logging at
/// trace level for ecld's own targets, stops the stack, and checks that neither the code nor
/// the input appears in plaintext in any file under the stack's data directory (store
/// blocks, chain state, CAS state, the node's journal) or in any process's log.
fn assert_code_and_input_stay_sealed(
    stack: Stack,
    log: &Path,
    scratch: &Path,
    image: &str,
    code: &str,
    input: &str,
) {
    let code_file = write(scratch, &format!("sealed.{image}"), code.as_bytes());
    let input_file = write(scratch, "sealed-input.txt", input.as_bytes());
    let out = stack
        .cmd()
        .env("RUST_LOG", LOG_FILTER)
        .args(["--json", "task", "run", image, "--code"])
        .arg(&code_file)
        .arg("--input")
        .arg(&input_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{image}: the sealed task failed: {stdout} {:?}", out.stderr);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], 0, "{json}");
    assert_eq!(code_hash_of(&json), keccak256(code.as_bytes()).to_string());
    let info = stack.info.clone();
    // Let the node log its settlement steps, then stop everything so the log is complete.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let data = stack.stop();

    let logged = std::fs::read(log).unwrap();
    for target in ["ecld_store", "ecld_node", "ecld_enclave"] {
        assert!(contains(&logged, target.as_bytes()), "no log line of {target}: not scanned");
    }
    // The directories of every service are inside the data directory scanned below.
    for dir in ["store_dir", "chain_dir", "cas_dir"]
        .iter()
        .filter_map(|k| info[*k].as_str())
        .chain(info["node"]["data_dir"].as_str())
    {
        assert!(Path::new(dir).starts_with(data.path()), "{dir} is outside the scanned directory");
    }
    let mut files = vec![(log.to_owned(), logged)];
    files.extend(files_under(data.path()).into_iter().map(|f| {
        let bytes = std::fs::read(&f).unwrap();
        (f, bytes)
    }));
    // The input ciphertext is in the store: the scan sees what the services keep.
    assert!(
        files.iter().any(|(_, b)| contains(b, b"age-encryption.org/v1")),
        "no age ciphertext among the scanned files: the store's blocks were not scanned"
    );
    let needles = [
        ("the code", code.as_bytes()),
        ("the code's marker line", code.lines().next().unwrap().as_bytes()),
        ("the input", input.as_bytes()),
    ];
    for (what, needle) in needles {
        for (file, bytes) in &files {
            assert!(!contains(bytes, needle), "{what} found in plaintext in {}", file.display());
        }
        assert!(!contains(&out.stderr, needle), "{what} found in the CLI's log");
    }
}

/// Trace for ecld's own crates (every `ecld_*` target), info for the libraries: the
/// compiler's own trace output for a 20 MB module would dwarf the rest.
const LOG_FILTER: &str = "info,ecld=trace";

/// A marker no other test or program contains.
fn marker(what: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    format!("{what}-{:016x}", RandomState::new().hash_one(std::time::SystemTime::now()))
}

#[test]
fn wasm_runner_runs_the_users_module_and_proves_its_hash() {
    let stack = Stack::start();
    let scratch = tempfile::tempdir().unwrap();
    let module = programs_dir().join("hash.wasm");
    let code = std::fs::read(&module).unwrap();
    let input = write(scratch.path(), "secret.txt", b"my private bytes");

    let (out, env) = run(&stack, "wasm", &module, &input, 0);
    assert_eq!(out["status"], 0, "{out}");
    assert_eq!(code_hash_of(&out), keccak256(&code).to_string());
    let result: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(result["length"], 16, "{result}");
    // `task verify` shows the code hash the enclave signed.
    let id = out["task"].as_u64().unwrap().to_string();
    let verified = stack.json(&["task", "verify", &id], 0);
    assert_eq!(verified["code_hash"].as_str().unwrap(), keccak256(&code).to_string());

    // Bytes that are not a WebAssembly module: CODE_INVALID (exit class 2), hash still named.
    let bogus = write(scratch.path(), "bogus.wasm", b"#!/bin/sh\necho not wasm\n");
    let (out, env) = run(&stack, "wasm", &bogus, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert_eq!(code_hash_of(&out), keccak256(b"#!/bin/sh\necho not wasm\n").to_string());
    assert!(String::from_utf8_lossy(&env.stderr).contains("not valid WebAssembly"));

    // Code sent to an image that runs its own program: CODE_INVALID.
    let (out, _) = run(&stack, "stats", &module, &input, 2);
    assert_eq!(out["status"], 5, "{out}");

    // The limits: a module that never ends, one that grows its memory until refused (then
    // traps, as an allocator that gets no memory aborts) and one that writes 4 KiB blocks of
    // zeros forever.
    let vector =
        |name: &str| std::fs::read(repo_root().join("testdata/enclave").join(name)).unwrap();
    let cases =
        limit_cases(vector("spin.wasm"), vector("grow.wasm"), vector("flood.wasm"), vec![0]);
    check_limits(&stack, scratch.path(), "wasm", cases);
}

#[test]
fn python_runner_runs_scripts_with_status_per_outcome() {
    if !peers::PYTHON_RUNNER.available_for(
        "ecld::it runners::python_runner_runs_scripts_with_status_per_outcome",
        programs_dir().join("python.wasm").is_file(),
    ) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("stack.log");
    let stack = Stack::start_logging(tempfile::tempdir().unwrap(), LOG_FILTER, &log);
    let examples = repo_root().join("examples/python");

    // The example: statistics over a private CSV.
    let script = examples.join("stats.py");
    let (out, env) = run(&stack, "python", &script, &examples.join("salaries.csv"), 0);
    assert_eq!(out["status"], 0, "{out} {}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(code_hash_of(&out), keccak256(std::fs::read(&script).unwrap()).to_string());
    let report: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(report["rows"], 10, "{report}");
    assert_eq!(report["numeric"]["salary"]["mean"], 76100.0, "{report}");
    assert_eq!(report["numeric"]["salary"]["median"], 67500.0, "{report}");
    assert_eq!(report["categories"]["department"]["sales"], 3, "{report}");

    // The other example, and stdin as well as INPUT.
    let (out, env) = run(
        &stack,
        "python",
        &examples.join("credit_score.py"),
        &examples.join("applicant.json"),
        0,
    );
    assert_eq!(out["status"], 0, "{}", String::from_utf8_lossy(&env.stderr));
    let score: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert!(score["score"].as_u64().unwrap() >= 300, "{score}");
    let echo =
        write(scratch.path(), "echo.py", b"import sys\nprint(sys.stdin.read().upper(), end='')\n");
    let input = write(scratch.path(), "in.txt", b"abc\n");
    let (_, env) = run(&stack, "python", &echo, &input, 0);
    assert_eq!(env.stdout, b"ABC\n");

    // One object referenced 100,000 times (upstream RustPython 0.5 aborts past 32,767 on
    // wasm32; the runner builds a patched reference count).
    let shared = write(
        scratch.path(),
        "shared.py",
        b"zeros = [0] * 100000\nflags = [True] * 100000\nprint(len(zeros) + sum(flags))\n",
    );
    let (out, env) = run(&stack, "python", &shared, &input, 0);
    assert_eq!(out["status"], 0, "{out} {}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(env.stdout, b"200000\n");

    // A syntax error: CODE_INVALID, the error in the encrypted diagnostic.
    let broken = write(scratch.path(), "broken.py", b"def f(:\n    return 1\n");
    let (out, env) = run(&stack, "python", &broken, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert!(String::from_utf8_lossy(&env.stderr).contains("SyntaxError"), "{env:?}");

    // An uncaught exception: PROGRAM_ERROR with the traceback.
    let failing = write(
        scratch.path(),
        "fail.py",
        b"def check(x):\n    raise ValueError('bad row ' + x)\ncheck(INPUT.strip())\n",
    );
    let (out, env) = run(&stack, "python", &failing, &input, 1);
    assert_eq!(out["status"], 1, "{out}");
    let stderr = String::from_utf8_lossy(&env.stderr);
    assert!(stderr.contains("Traceback") && stderr.contains("ValueError: bad row abc"), "{stderr}");

    let cases = limit_cases(
        b"n = 0\nwhile True:\n    n += 1\n".to_vec(),
        b"hog = []\nwhile True:\n    hog.append(bytearray(1 << 20))\n".to_vec(),
        b"import sys\nchunk = 'x' * 65536\nwhile True:\n    sys.stdout.write(chunk)\n".to_vec(),
        b"x".to_vec(),
    );
    check_limits(&stack, scratch.path(), "python", cases);

    // Neither the code nor the input of a runner task is ever in plaintext outside the
    // enclave and the requester.
    let code = format!(
        "# {}\nimport statistics\nrows = INPUT.splitlines()[1:]\nprint(statistics.mean(int(x) for x in rows))\n",
        marker("python-code-marker")
    );
    let input = format!("{}\n17\n23\n42\n", marker("python-input-marker"));
    assert_code_and_input_stay_sealed(stack, &log, scratch.path(), "python", &code, &input);
}

#[test]
fn js_runner_runs_scripts_with_status_per_outcome() {
    if !peers::JS_RUNNER.available_for(
        "ecld::it runners::js_runner_runs_scripts_with_status_per_outcome",
        programs_dir().join("js.wasm").is_file(),
    ) {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("stack.log");
    let stack = Stack::start_logging(tempfile::tempdir().unwrap(), LOG_FILTER, &log);
    let examples = repo_root().join("examples/js");
    let script = examples.join("sealed_bid.js");
    let (out, env) = run(&stack, "js", &script, &examples.join("bids.json"), 0);
    assert_eq!(out["status"], 0, "{out} {}", String::from_utf8_lossy(&env.stderr));
    assert_eq!(code_hash_of(&out), keccak256(std::fs::read(&script).unwrap()).to_string());
    let result: Value = serde_json::from_slice(&env.stdout).unwrap();
    assert_eq!(result["winner"], "alice", "{result}");
    assert_eq!(result["price"], 4050, "{result}");

    let input = write(scratch.path(), "in.txt", b"abc");
    let broken = write(scratch.path(), "broken.js", b"function (\n");
    let (out, env) = run(&stack, "js", &broken, &input, 2);
    assert_eq!(out["status"], 5, "{out}");
    assert!(String::from_utf8_lossy(&env.stderr).contains("SyntaxError"), "{env:?}");

    let failing = write(scratch.path(), "fail.js", b"throw new TypeError('bad row ' + INPUT);\n");
    let (out, env) = run(&stack, "js", &failing, &input, 1);
    assert_eq!(out["status"], 1, "{out}");
    let stderr = String::from_utf8_lossy(&env.stderr);
    assert!(stderr.contains("TypeError") && stderr.contains("bad row abc"), "{stderr}");

    let cases = limit_cases(
        b"let n = 0;\nfor (;;) { n++; }\n".to_vec(),
        b"const hog = [];\nfor (;;) { hog.push(new Uint8Array(1 << 20)); }\n".to_vec(),
        b"const line = 'x'.repeat(65535);\nfor (;;) { console.log(line); }\n".to_vec(),
        [vec![b'x'; 65535], b"\n".to_vec()].concat(),
    );
    check_limits(&stack, scratch.path(), "js", cases);

    let code = format!(
        "// {}\nconst rows = INPUT.split('\\n').slice(1).filter(Boolean).map(Number);\nconsole.log(rows.reduce((a, b) => a + b, 0) / rows.length);\n",
        marker("js-code-marker")
    );
    let input = format!("{}\n17\n23\n42\n", marker("js-input-marker"));
    assert_code_and_input_stay_sealed(stack, &log, scratch.path(), "js", &code, &input);
}
