use super::*;

macro_rules! wat {
    ($name:literal) => {
        wat::parse_str(include_str!(concat!("../../../../testdata/enclave/", $name, ".wat")))
            .unwrap()
    };
}

fn small_limits() -> Limits {
    Limits { time_ms: 200, memory_bytes: 4 * 1024 * 1024, output_bytes: 64 * 1024, fuel: None }
}

fn program(rt: &Runtime, module: &[u8]) -> Program {
    rt.compile(module).unwrap()
}

fn assert_healthy(rt: &Runtime) {
    let echo = program(rt, &wat!("echo"));
    let run = echo.run(b"still alive", &small_limits());
    assert_eq!(run.exit, Exit::Exited(0));
    assert_eq!(run.stdout, b"still alive");
}

#[test]
fn echo_copies_stdin_to_stdout() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let echo = program(&rt, &wat!("echo"));
    let input: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let run = echo.run(&input, &small_limits());
    assert_eq!(run.exit, Exit::Exited(0));
    assert_eq!(run.exit.status(), StatusCode::Success);
    assert_eq!(run.stdout, input);
    assert!(run.stderr.is_empty());
    // The same program runs again with fresh state.
    assert_eq!(echo.run(b"again", &small_limits()).stdout, b"again");
}

#[test]
fn non_zero_exit_is_program_error_with_stderr() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let run = program(&rt, &wat!("exit3")).run(b"", &small_limits());
    assert_eq!(run.exit, Exit::Exited(3));
    assert_eq!(run.exit.status(), StatusCode::ProgramError);
    assert_eq!(run.exit.exit_code(), 3);
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(stderr.starts_with("bad input\n[ecld enclave] program exited with code 3"), "{stderr}");
}

#[test]
fn trap_is_program_error() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let run = program(&rt, &wat!("trap")).run(b"", &small_limits());
    assert!(
        matches!(run.exit, Exit::Trapped(ref t) if t.contains("unreachable")),
        "{:?}",
        run.exit
    );
    assert_eq!(run.exit.status(), StatusCode::ProgramError);
    assert_eq!(run.exit.exit_code(), -1);
    assert_healthy(&rt);
}

/// Past the wall-clock allowance with fuel left: the host starved the run, STALLED (refund).
#[test]
fn running_past_the_wall_clock_is_stalled() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let limits = Limits { time_ms: 100, ..small_limits() };
    let run = program(&rt, &wat!("spin")).run(b"", &limits);
    assert_eq!(run.exit, Exit::TimedOut);
    assert_eq!(run.exit.status(), StatusCode::Stalled);
    assert!(run.exit.status().code() >= StatusCode::FIRST_SYSTEM_CODE, "refunds");
    assert!(run.elapsed >= Duration::from_millis(100), "{:?}", run.elapsed);
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    assert_healthy(&rt);
}

#[test]
fn growing_past_the_memory_cap_is_resource_limit() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let run = program(&rt, &wat!("grow")).run(b"", &small_limits());
    assert_eq!(run.exit, Exit::MemoryLimit);
    assert_eq!(run.exit.status(), StatusCode::ResourceLimit);
    assert_healthy(&rt);
}

#[test]
fn initial_memory_above_the_cap_is_resource_limit() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let bigmem = program(&rt, &wat!("bigmem"));
    assert_eq!(bigmem.run(b"", &small_limits()).exit, Exit::MemoryLimit);
    let roomy = Limits { memory_bytes: 128 * 1024 * 1024, ..small_limits() };
    assert_eq!(bigmem.run(b"", &roomy).exit, Exit::Exited(0));
}

#[test]
fn writing_past_the_output_cap_is_resource_limit() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let run = program(&rt, &wat!("flood")).run(b"", &small_limits());
    assert_eq!(run.exit, Exit::OutputLimit);
    assert_eq!(run.exit.status(), StatusCode::ResourceLimit);
    assert_eq!(run.stdout.len(), 64 * 1024, "keeps exactly the allowed prefix");
    assert_healthy(&rt);
}

/// Fuel is the task's run time: using it up is TIMEOUT (the node is paid), at the same
/// instruction on every run, however the host schedules it.
#[test]
fn using_up_the_fuel_is_timeout_at_the_same_point_every_time() {
    let rt = Runtime::new(RuntimeOptions { meter_fuel: true }).unwrap();
    let limits = Limits { fuel: Some(100_000), time_ms: 10_000, ..small_limits() };
    let run = program(&rt, &wat!("spin")).run(b"", &limits);
    assert_eq!(run.exit, Exit::OutOfFuel);
    assert_eq!(run.exit.status(), StatusCode::Timeout);
    // Without a fuel limit the time limit still applies.
    let run = program(&rt, &wat!("spin")).run(b"", &Limits { time_ms: 50, ..small_limits() });
    assert_eq!(run.exit, Exit::TimedOut);
}

#[test]
fn invalid_modules_are_refused_at_compile_time() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    assert!(matches!(rt.compile(b"not wasm"), Err(RuntimeError::Compile(_))));
    let no_start = wat::parse_str("(module)").unwrap();
    assert!(matches!(rt.compile(&no_start), Err(RuntimeError::Link(_))));
    let foreign =
        wat::parse_str(r#"(module (import "env" "f" (func)) (func (export "_start")))"#).unwrap();
    assert!(matches!(rt.compile(&foreign), Err(RuntimeError::Link(_))));
}

#[test]
fn program_sees_no_files_env_or_extra_args() {
    // args_sizes_get → argc 1; environ_sizes_get → 0; path_open on fd 3 → EBADF (no preopens).
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let probe = wat::parse_str(
        r#"(module
          (import "wasi_snapshot_preview1" "args_sizes_get" (func $args (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "_start")
            (drop (call $args (i32.const 0) (i32.const 4)))
            (if (i32.ne (i32.load (i32.const 0)) (i32.const 1)) (then (call $exit (i32.const 10))))
            (drop (call $env (i32.const 0) (i32.const 4)))
            (if (i32.ne (i32.load (i32.const 0)) (i32.const 0)) (then (call $exit (i32.const 11))))
            (if (i32.eqz (call $prestat (i32.const 3) (i32.const 16))) (then (call $exit (i32.const 12))))))"#,
    )
    .unwrap();
    assert_eq!(program(&rt, &probe).run(b"", &small_limits()).exit, Exit::Exited(0));
}

#[test]
fn time_limit_holds_after_the_runtime_is_dropped() {
    // The enclave keeps only the program; its epoch ticker must keep running.
    let spin = {
        let rt = Runtime::new(RuntimeOptions::default()).unwrap();
        program(&rt, &wat!("spin"))
    };
    assert_eq!(spin.run(b"", &Limits { time_ms: 50, ..small_limits() }).exit, Exit::TimedOut);
}

#[test]
fn modes_module_switches_behaviour_on_the_first_input_byte() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let modes = program(&rt, &wat!("modes"));
    let limits = Limits { time_ms: 100, ..small_limits() };
    let run = |input: &[u8]| modes.run(input, &limits);
    assert_eq!(run(b"ehello").stdout, b"hello");
    assert_eq!(run(b"x").exit, Exit::Exited(3));
    assert!(matches!(run(b"t").exit, Exit::Trapped(_)));
    assert_eq!(run(b"l").exit, Exit::TimedOut);
    assert_eq!(run(b"m").exit, Exit::MemoryLimit);
    assert_eq!(run(b"o").exit, Exit::OutputLimit);
    assert_eq!(run(b"").exit, Exit::Exited(0));
    assert_eq!(run(b"eagain").stdout, b"again");
}

/// The process-boundary tests of the `ecld` binary use the committed `.wasm` twins of the
/// `.wat` sources (the `ecld` crate does not depend on a WAT parser); they must stay equal.
#[test]
fn committed_wasm_twins_match_their_wat_sources() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/enclave");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wat") {
            let wasm = wat::parse_file(&path).unwrap();
            let twin = path.with_extension("wasm");
            if std::env::var_os("ECLD_BLESS").is_some() {
                std::fs::write(&twin, &wasm).unwrap();
            }
            let committed = std::fs::read(&twin).unwrap_or_else(|e| {
                panic!("{}: {e}; run with ECLD_BLESS=1 to write it", twin.display())
            });
            assert_eq!(committed, wasm, "{} is stale; run with ECLD_BLESS=1", twin.display());
        }
    }
}

/// A valid WASI command whose `_start` returns at once and which carries `functions` more
/// functions of `statements` arithmetic statements each over 32 locals: cranelift's time
/// grows with the total size, and no function can be compiled in parallel with itself.
fn heavy_module(functions: usize, statements: usize) -> Vec<u8> {
    wat::parse_str(heavy_wat(functions, statements, true)).unwrap()
}

fn heavy_wat(functions: usize, statements: usize, start: bool) -> String {
    let mut wat = String::from("(module\n(memory (export \"memory\") 1)\n");
    if start {
        wat.push_str("(func (export \"_start\"))\n");
    }
    for f in 0..functions {
        wat.push_str(&format!("(func (export \"f{f}\") (param $p i32) (result i32)"));
        wat.push_str(&" (local i32)".repeat(32));
        for s in 0..statements {
            let (a, b, c) = (1 + s % 32, 1 + (s * 7 + 3) % 32, 1 + (s * 13 + 5) % 32);
            wat.push_str(&format!(
                "\n(local.set {a} (i32.add (i32.mul (local.get {b}) (local.get $p)) \
                 (i32.xor (local.get {c}) (i32.const {s}))))"
            ));
        }
        wat.push_str("\n(i32.add (local.get 1) (local.get 2)))\n");
    }
    wat.push(')');
    wat
}

fn user_modules(runner: &Program) -> &UserModules {
    match &runner.body {
        Body::WasmRunner(modules) => modules,
        Body::Command(_) => panic!("not a wasm-v1 runner"),
    }
}

#[test]
fn compiling_past_the_wall_clock_is_stalled_and_the_late_module_is_cached() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let runner = program(&rt, &crate::runner::wasm_runner_image());
    // One function of 40,000 statements: about 1 s of cranelift on a 2-core machine, and
    // cranelift cannot split a function, so well over 100 ms on any machine.
    let heavy = heavy_module(1, 40_000);
    let limits = Limits { time_ms: 1, ..small_limits() };
    let run = runner.run_code(Some(&heavy), b"", &limits).unwrap();
    assert_eq!(run.exit, Exit::TimedOut);
    // Compile time is wall time, the host's to stretch: not the requester's fault.
    assert_eq!(run.exit.status(), StatusCode::Stalled);
    assert_eq!(
        String::from_utf8(run.stderr).unwrap(),
        "[ecld enclave] compiling the module took longer than the task's time limit (1 ms)\n"
    );
    assert!(run.stdout.is_empty());
    assert!(run.elapsed >= Duration::from_millis(1), "{:?}", run.elapsed);
    // The compile goes on; a task of the same code waits for it instead of starting another.
    assert_eq!(user_modules(&runner).compiling.lock().unwrap().len(), 1);
    assert_eq!(runner.module_cache(), Some((0, 0)));
    let roomy = Limits { time_ms: 600_000, ..small_limits() };
    let run = runner.run_code(Some(&heavy), b"", &roomy).unwrap();
    assert_eq!(run.exit, Exit::Exited(0), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(user_modules(&runner).compiling.lock().unwrap().is_empty());
    assert_eq!(runner.module_cache(), Some((1, 0)), "one compile, cached when it finished");
    // Now cached, the same code runs at once.
    let run = runner.run_code(Some(&heavy), b"", &small_limits()).unwrap();
    assert_eq!(run.exit, Exit::Exited(0));
    assert_eq!(runner.module_cache(), Some((1, 1)));
    assert_healthy(&rt);
}

#[test]
fn a_late_compile_that_fails_is_not_cached_and_is_code_invalid_for_the_next_task() {
    // A module that validates but does not link (no `_start`), behind a slow compile.
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let runner = program(&rt, &crate::runner::wasm_runner_image());
    let library = wat::parse_str(heavy_wat(1, 40_000, false)).unwrap();
    let run = runner.run_code(Some(&library), b"", &Limits { time_ms: 1, ..small_limits() });
    assert_eq!(run.unwrap().exit, Exit::TimedOut);
    let roomy = Limits { time_ms: 600_000, ..small_limits() };
    let refused = runner.run_code(Some(&library), b"", &roomy).unwrap_err();
    assert!(refused.contains("no `_start` export"), "{refused}");
    assert_eq!(runner.module_cache(), Some((0, 0)));
    assert!(user_modules(&runner).compiling.lock().unwrap().is_empty());
}

#[test]
fn the_reported_run_time_covers_the_compile() {
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let runner = program(&rt, &crate::runner::wasm_runner_image());
    // About 0.2 s of cranelift here; running it takes microseconds.
    let heavy = heavy_module(1, 10_000);
    let roomy = Limits { time_ms: 600_000, ..small_limits() };
    let call = Instant::now();
    let run = runner.run_code(Some(&heavy), b"", &roomy).unwrap();
    let call = call.elapsed();
    assert_eq!(run.exit, Exit::Exited(0));
    // Outside `elapsed` are only hashing and scanning the module's sections.
    assert!(run.elapsed >= call / 2, "reported {:?} of a {call:?} call", run.elapsed);
    assert_eq!(runner.module_cache(), Some((1, 0)));
}

#[test]
fn the_run_gets_only_the_time_the_compile_left() {
    let ms = Duration::from_millis;
    assert_eq!(time_left(ms(1_000), ms(300)), ms(700));
    assert_eq!(time_left(ms(1_000), ms(999)), EPOCH_TICK, "at least one tick");
    assert_eq!(time_left(ms(1_000), ms(2_000)), EPOCH_TICK);
    assert_eq!(time_left(ms(1_000), Duration::ZERO), ms(1_000));
    // A program that spins, charged 9.9 s of compile against a 10 s limit, is stopped after
    // about 0.1 s (not 10 s), and the run time it reports counts the compile.
    let rt = Runtime::new(RuntimeOptions::default()).unwrap();
    let spin = program(&rt, &wat!("spin"));
    let Body::Command(pre) = &spin.body else { panic!("spin is a command") };
    let limits = Limits { time_ms: 10_000, ..small_limits() };
    let call = Instant::now();
    let run = spin.run_pre(pre, b"", &limits, ms(9_900));
    assert!(call.elapsed() < Duration::from_secs(5), "{:?}", call.elapsed());
    assert_eq!(run.exit, Exit::TimedOut);
    assert!(run.elapsed >= ms(10_000), "{:?}", run.elapsed);
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.ends_with("ran past the wall-clock allowance of 10000 ms (the host paused or starved the enclave)\n"),
        "{stderr}"
    );
}
