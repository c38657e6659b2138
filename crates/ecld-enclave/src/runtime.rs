//! The WebAssembly runtime: one [`Runtime`] (engine and epoch ticker) per enclave, one
//! [`Program`] compiled once at start, one fresh store per task.
//!
//! A task's program sees WASI preview 1 with stdin = the payload's input, stdout = a pipe
//! bounded by the task's output limit, stderr = a 64 KiB diagnostic pipe, one fixed argument
//! (`program`), no environment, no preopened directories (no file system) and no sockets.
//! The task's run time is a fuel budget (instructions, deterministic: TIMEOUT); the wall
//! clock is bounded by epoch interruption (a generous allowance; running past it means the
//! host paused or starved the enclave: STALLED); memory by a resource limiter. Whatever the program does, the outcome is an [`Exit`] value and
//! the runtime is ready for the next task.
//!
//! On a `wasm-v1` runner image the compile of a user module that is not cached yet counts
//! against the task's time limit: it runs on its own thread while the task waits at most
//! the time limit, and the run gets only the time left.

mod pipe;

use std::{
    num::NonZeroUsize,
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use ecld_types::StatusCode;
use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, OptLevel, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder, p1::WasiP1Ctx, p2::pipe::MemoryInputPipe};

use crate::{
    protocol::Limits,
    result::MAX_STDERR,
    runner::{MODULE_CACHE_ENTRIES, ModuleCache, RunnerKind, stdin_frame},
    runtime::pipe::{BoundedPipe, OutputLimitExceeded, Overflow},
};

/// How often the epoch advances; the time limit is enforced to about this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The only argument a program gets (its `argv[0]`).
pub const PROGRAM_NAME: &str = "program";

/// Why a runtime or a program could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine configuration was refused (a wasmtime build without cranelift?).
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly module.
    #[error("the module is not valid WebAssembly: {0}")]
    Compile(String),
    /// The module imports something other than WASI preview 1, or is not a command.
    #[error(
        "the module cannot be linked as a WASI preview 1 command: {0}; build it for wasm32-wasip1 as a binary with a `_start` export"
    )]
    Link(String),
}

/// Engine options fixed for the life of an enclave.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeOptions {
    /// Meter fuel so that [`Limits::fuel`] is honoured (costs some speed). An enclave always
    /// does: its tasks' run time is fuel. Off only in benchmarks that measure its cost.
    pub meter_fuel: bool,
}

impl Default for RuntimeOptions {
    /// Fuel metered, as in every enclave.
    fn default() -> Self {
        Self { meter_fuel: true }
    }
}

/// The engine and the thread that advances its epoch.
#[derive(Debug)]
pub struct Runtime {
    engine: Engine,
    options: RuntimeOptions,
    ticker: Arc<TickerAlive>,
}

/// Held by the runtime and every program: the epoch thread runs while one of them lives.
#[derive(Debug)]
struct TickerAlive;

impl Runtime {
    /// Creates the engine (cranelift, optimised for speed, epoch interruption) and starts
    /// the epoch ticker thread; the thread ends when the runtime and all its programs are
    /// dropped.
    pub fn new(options: RuntimeOptions) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::Speed);
        config.epoch_interruption(true);
        config.consume_fuel(options.meter_fuel);
        let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker = Arc::new(TickerAlive);
        let (weak_engine, alive) = (engine.weak(), Arc::downgrade(&ticker));
        thread::Builder::new()
            .name("ecld-epoch".into())
            .spawn(move || {
                while alive.strong_count() > 0 {
                    thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self { engine, options, ticker })
    }

    /// Compiles and links a WASI preview 1 command module. A module that declares itself a
    /// runner image (`crate::runner`) becomes a program that runs the code of each task.
    pub fn compile(&self, module: &[u8]) -> Result<Program, RuntimeError> {
        let runner =
            RunnerKind::declared_by(module).map_err(|e| RuntimeError::Compile(e.to_string()))?;
        let body = match runner {
            Some(RunnerKind::Wasm) => {
                // The image module only carries the declaration; still refuse a broken one.
                Module::validate(&self.engine, module)
                    .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
                let capacity = NonZeroUsize::new(MODULE_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
                Body::WasmRunner(Arc::new(UserModules {
                    cache: ModuleCache::new(capacity),
                    compiling: Mutex::new(Vec::new()),
                }))
            }
            _ => Body::Command(link(&self.engine, module)?),
        };
        Ok(Program {
            body,
            runner,
            engine: self.engine.clone(),
            meter_fuel: self.options.meter_fuel,
            _ticker: Arc::clone(&self.ticker),
        })
    }
}

/// Compiles `module` and links it as a WASI preview 1 command.
fn link(engine: &Engine, module: &[u8]) -> Result<InstancePre<State>, RuntimeError> {
    let module =
        Module::new(engine, module).map_err(|e| RuntimeError::Compile(format!("{e:#}")))?;
    let mut linker: Linker<State> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut State| &mut s.wasi)
        .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
    if module.get_export("_start").is_none() {
        return Err(RuntimeError::Link("no `_start` export".into()));
    }
    linker.instantiate_pre(&module).map_err(|e| RuntimeError::Link(format!("{e:#}")))
}

/// How a program run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The program exited (returned from `_start`: code 0, or called `proc_exit`).
    Exited(i32),
    /// The program trapped (including stack overflow and aborts); the text is the trap.
    Trapped(String),
    /// The program ran past the wall-clock allowance.
    TimedOut,
    /// The program used up its fuel.
    OutOfFuel,
    /// The program asked for more memory than the limit and then failed.
    MemoryLimit,
    /// The program wrote more than the output limit to stdout.
    OutputLimit,
}

impl Exit {
    /// The status code the proof carries for this outcome.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Exited(0) => StatusCode::Success,
            Self::Exited(_) | Self::Trapped(_) => StatusCode::ProgramError,
            // The wall clock is the host's to stretch: running past it is not the program's
            // fault. Fuel is counted in instructions: using it up is.
            Self::TimedOut => StatusCode::Stalled,
            Self::OutOfFuel => StatusCode::Timeout,
            Self::MemoryLimit | Self::OutputLimit => StatusCode::ResourceLimit,
        }
    }

    /// The exit code recorded in the result envelope: -1 when the program did not exit.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Exited(code) => *code,
            _ => -1,
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Execution {
    /// How the run ended.
    pub exit: Exit,
    /// What the program wrote to stdout (at most the output limit).
    pub stdout: Vec<u8>,
    /// What the program wrote to stderr (at most 64 KiB), followed by the enclave's note
    /// on how the run ended when it did not exit 0.
    pub stderr: Vec<u8>,
    /// Wall time from instantiation to the end of the run; for a user module of a `wasm-v1`
    /// runner that was not compiled yet, from the start of its compile (which counts against
    /// the time limit).
    pub elapsed: Duration,
}

/// A compiled, linked module, ready to run many times; or, for a `wasm-v1` runner image,
/// the cache of the user modules it has compiled.
#[derive(Clone)]
pub struct Program {
    body: Body,
    runner: Option<RunnerKind>,
    engine: Engine,
    meter_fuel: bool,
    _ticker: Arc<TickerAlive>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("runner", &self.runner)
            .field("meter_fuel", &self.meter_fuel)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Body {
    /// A linked WASI command: the image's program or interpreter.
    Command(InstancePre<State>),
    /// A `wasm-v1` runner: user modules compiled on demand, by code hash.
    WasmRunner(Arc<UserModules>),
}

/// The user modules of a `wasm-v1` runner: those compiled, by code hash, and those being
/// compiled (a compile that outlived its task's time limit goes on and lands in the cache,
/// and a task of the same code waits for it instead of starting another).
struct UserModules {
    cache: ModuleCache<InstancePre<State>>,
    /// Locked before `cache` whenever both are used, so that a module is always in one of
    /// the two while its compile finishes.
    compiling: Mutex<Vec<(B256, Arc<Compile>)>>,
}

/// One compile in progress, shared by every task that waits for it.
#[derive(Default)]
struct Compile {
    outcome: Mutex<Option<Result<InstancePre<State>, String>>>,
    finished: Condvar,
}

impl Compile {
    /// The compile's result, or `None` if it did not finish within `timeout`.
    fn wait(&self, timeout: Duration) -> Option<Result<InstancePre<State>, String>> {
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        let (outcome, _) = self
            .finished
            .wait_timeout_while(outcome, timeout, |o| o.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        outcome.clone()
    }
}

/// Where a user module comes from.
enum Lookup {
    /// Compiled before.
    Cached(InstancePre<State>),
    /// Being compiled, by this task or an earlier one.
    Compiling(Arc<Compile>),
}

impl UserModules {
    /// The compiled module for `hash`, or the compile in progress, started now on its own
    /// thread if none is.
    fn lookup(self: &Arc<Self>, engine: &Engine, hash: B256, code: &[u8]) -> Lookup {
        let mut compiling = self.compiling.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pre) = self.cache.get(&hash) {
            return Lookup::Cached(pre);
        }
        if let Some((_, compile)) = compiling.iter().find(|(h, _)| *h == hash) {
            return Lookup::Compiling(Arc::clone(compile));
        }
        let compile = Arc::new(Compile::default());
        compiling.push((hash, Arc::clone(&compile)));
        drop(compiling);
        let code: Arc<[u8]> = Arc::from(code);
        let job = {
            let (modules, engine) = (Arc::clone(self), engine.clone());
            let (code, compile) = (Arc::clone(&code), Arc::clone(&compile));
            move || modules.compile(&engine, hash, &code, &compile)
        };
        if thread::Builder::new().name("ecld-compile".into()).spawn(job).is_err() {
            // No thread to spare: compile here; the time it takes is still charged.
            self.compile(engine, hash, &code, &compile);
        }
        Lookup::Compiling(compile)
    }

    /// Compiles and links `code`, caches it when it links, and hands the outcome to every
    /// task waiting for it.
    fn compile(&self, engine: &Engine, hash: B256, code: &[u8], compile: &Compile) {
        let outcome = link(engine, code).map_err(|e| e.to_string());
        let mut compiling = self.compiling.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(pre) = &outcome {
            self.cache.insert(hash, pre.clone());
        }
        compiling.retain(|(h, _)| *h != hash);
        drop(compiling);
        *compile.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        compile.finished.notify_all();
    }
}

/// The time a run gets when `spent` of the task's `limit` went to compiling its module: what
/// is left, but at least one epoch tick.
fn time_left(limit: Duration, spent: Duration) -> Duration {
    limit.saturating_sub(spent).max(EPOCH_TICK)
}

struct State {
    wasi: WasiP1Ctx,
    limiter: MemoryCap,
}

/// Caps linear memory and tables and remembers whether the cap refused a growth.
struct MemoryCap {
    memory_bytes: usize,
    hit: bool,
}

/// Table elements a program may have; generous for real programs, bounded for hostile ones.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // `desired` is the size of this memory after growth; counting only this memory is
        // exact for the single-memory modules Rust and C toolchains produce.
        let _ = current;
        if desired > self.memory_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }
}

impl Program {
    /// The runner convention of this image, `None` for an image that runs its own program.
    pub fn runner(&self) -> Option<RunnerKind> {
        self.runner
    }

    /// For a `wasm-v1` runner image: how many user modules it holds compiled and how many
    /// tasks found their module already compiled (`None` for other images).
    pub fn module_cache(&self) -> Option<(usize, u64)> {
        match &self.body {
            Body::WasmRunner(modules) => Some((modules.cache.len(), modules.cache.hits())),
            Body::Command(_) => None,
        }
    }

    /// Runs the program once on `input` under `limits`. Never fails: every way a program
    /// can end is an [`Exit`]. On a `wasm-v1` runner image, which has no program of its
    /// own, the run traps at once; use [`Program::run_code`].
    ///
    /// Blocking: call it from a plain thread or `tokio::task::spawn_blocking`, never from an
    /// async task (wasmtime-wasi's synchronous calls enter the current Tokio runtime).
    pub fn run(&self, input: &[u8], limits: &Limits) -> Execution {
        match &self.body {
            Body::Command(pre) => self.run_pre(pre, input, limits, Duration::ZERO),
            Body::WasmRunner(_) => Execution {
                exit: Exit::Trapped("this runner image has no program of its own".into()),
                stdout: Vec::new(),
                stderr: b"[ecld enclave] this image runs the code sent with the task\n".to_vec(),
                elapsed: Duration::ZERO,
            },
        }
    }

    /// Runs one task of a runner image with the user's `code` (`None`: the payload had
    /// none). Returns `Err(diagnostic)` when the code is missing or does not compile or
    /// link (status 5, CODE_INVALID), or when this image is not a runner.
    ///
    /// On a `wasm-v1` runner, compiling a module that is not cached counts against the time
    /// limit: a compile that takes longer ends the task as [`Exit::TimedOut`] (the compile
    /// goes on and caches the module for a later task), and the run gets the time left.
    ///
    /// Blocking, like [`Program::run`].
    pub fn run_code(
        &self,
        code: Option<&[u8]>,
        input: &[u8],
        limits: &Limits,
    ) -> Result<Execution, String> {
        let Some(kind) = self.runner else {
            return Err("this image runs its own program and does not accept code".into());
        };
        let Some(code) = code else {
            return Err(format!(
                "this is a runner image ({}): send the code to run with the task",
                kind.section_value()
            ));
        };
        match &self.body {
            Body::Command(pre) => {
                Ok(self.run_pre(pre, &stdin_frame(code, input), limits, Duration::ZERO))
            }
            Body::WasmRunner(modules) => {
                // The user's module must not be another runner declaration either.
                if RunnerKind::declared_by(code).ok().flatten().is_some() {
                    return Err("the code declares itself a runner image".into());
                }
                let hash = alloy_primitives::keccak256(code);
                let started = Instant::now();
                let compile = match modules.lookup(&self.engine, hash, code) {
                    Lookup::Cached(pre) => {
                        return Ok(self.run_pre(&pre, input, limits, Duration::ZERO));
                    }
                    Lookup::Compiling(compile) => compile,
                };
                let limit = Duration::from_millis(limits.time_ms);
                let outcome = compile.wait(limit.saturating_sub(started.elapsed()));
                let spent = started.elapsed();
                match outcome {
                    Some(Ok(pre)) if spent <= limit => Ok(self.run_pre(&pre, input, limits, spent)),
                    Some(Err(reason)) => Err(reason),
                    Some(Ok(_)) | None => Ok(compile_timed_out(limits, spent)),
                }
            }
        }
    }

    /// Runs `pre` once; `spent` of the time limit already went to compiling it.
    fn run_pre(
        &self,
        pre: &InstancePre<State>,
        input: &[u8],
        limits: &Limits,
        spent: Duration,
    ) -> Execution {
        let stdout = BoundedPipe::new(
            usize::try_from(limits.output_bytes).unwrap_or(usize::MAX),
            Overflow::Trap,
        );
        let stderr = BoundedPipe::new(MAX_STDERR, Overflow::Truncate);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(input.to_vec()))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(PROGRAM_NAME)
            .build_p1();
        let memory_bytes = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
        let mut store = Store::new(
            &self.engine,
            State { wasi, limiter: MemoryCap { memory_bytes, hit: false } },
        );
        store.limiter(|s| &mut s.limiter);
        let budget = time_left(Duration::from_millis(limits.time_ms), spent);
        let ticks = budget.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX).max(1);
        // One extra tick: the ticker may advance right after the deadline is set.
        store.set_epoch_deadline(ticks.saturating_add(1));
        store.epoch_deadline_trap();
        if self.meter_fuel {
            // Cannot fail: fuel metering is on in this engine.
            let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        }

        let started = Instant::now();
        let result = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
            .and_then(|start| start.call(&mut store, ()));
        let elapsed = spent + started.elapsed();

        let memory_hit = store.data().limiter.hit;
        let exit = classify(result, stdout.overflowed(), memory_hit);
        drop(store);
        let mut stderr = stderr.take();
        if exit != Exit::Exited(0) {
            append_note(&mut stderr, &exit, limits);
        }
        Execution { exit, stdout: stdout.take(), stderr, elapsed }
    }
}

/// The outcome of a task whose module took longer to compile than its time limit.
fn compile_timed_out(limits: &Limits, spent: Duration) -> Execution {
    let note = format!(
        "[ecld enclave] compiling the module took longer than the task's time limit ({} ms)\n",
        limits.time_ms
    );
    Execution {
        exit: Exit::TimedOut,
        stdout: Vec::new(),
        stderr: note.into_bytes(),
        elapsed: spent,
    }
}

fn classify(result: wasmtime::Result<()>, output_overflowed: bool, memory_hit: bool) -> Exit {
    // A truncated output is never a success, even if the program ignored the write error.
    if output_overflowed {
        return Exit::OutputLimit;
    }
    let err = match result {
        Ok(()) => return Exit::Exited(0),
        Err(err) => err,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return if exit.0 != 0 && memory_hit { Exit::MemoryLimit } else { Exit::Exited(exit.0) };
    }
    if err.downcast_ref::<OutputLimitExceeded>().is_some() {
        return Exit::OutputLimit;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Exit::TimedOut,
        Some(Trap::OutOfFuel) => Exit::OutOfFuel,
        _ if memory_hit => Exit::MemoryLimit,
        Some(trap) => Exit::Trapped(trap.to_string()),
        None => Exit::Trapped(format!("{err:#}")),
    }
}

fn append_note(stderr: &mut Vec<u8>, exit: &Exit, limits: &Limits) {
    let note = match exit {
        Exit::Exited(code) => format!("exited with code {code}"),
        Exit::Trapped(trap) => format!("trapped: {trap}"),
        Exit::TimedOut => format!(
            "stopped: ran past the wall-clock allowance of {} ms (the host paused or starved the \
             enclave)",
            limits.time_ms
        ),
        Exit::OutOfFuel => {
            format!("stopped: used up its fuel ({}: the task's run time)", limits.fuel.unwrap_or(0))
        }
        Exit::MemoryLimit => {
            format!("stopped: needed more than the memory limit of {} bytes", limits.memory_bytes)
        }
        Exit::OutputLimit => {
            format!("stopped: wrote more than the output limit of {} bytes", limits.output_bytes)
        }
    };
    if !stderr.is_empty() && !stderr.ends_with(b"\n") {
        stderr.push(b'\n');
    }
    stderr.extend_from_slice(format!("[ecld enclave] program {note}\n").as_bytes());
}

#[cfg(test)]
mod tests;
