//! The Python runner image: runs the user's script from the task payload in RustPython.
//!
//! stdin (from the enclave): `ecldrun1 ‖ u32be code_len ‖ code ‖ input`. The script sees the
//! input on `sys.stdin` and as `INPUT` (str, UTF-8 with replacement) and `INPUT_BYTES`
//! (bytes); what it prints is the result. Exit codes: 0 success; 125 the script does not
//! compile (SyntaxError; the enclave reports CODE_INVALID); 1 an uncaught exception, with
//! the traceback on stderr; `sys.exit(n)` exits with n; 70 the enclave sent a malformed
//! frame.

use std::io::Read;

use rustpython::{
    InterpreterBuilder, InterpreterBuilderExt,
    vm::{PyResult, compiler::Mode},
};

/// The runner declaration the enclave reads from this module (`ecld.runner` custom section);
/// the image measurement covers it.
#[unsafe(link_section = "ecld.runner")]
#[used]
static RUNNER_DECLARATION: [u8; 8] = *b"stdin-v1";

const MAGIC: &[u8; 8] = b"ecldrun1";
const CODE_INVALID_EXIT: i32 = 125;
const BAD_FRAME_EXIT: i32 = 70;

/// Runs before the user's script, in its globals: `INPUT` and a `sys.stdin` over the input.
const PRELUDE: &str = r#"
import sys as _ecld_sys, io as _ecld_io
INPUT = INPUT_BYTES.decode("utf-8", "replace")
_ecld_sys.stdin = _ecld_io.TextIOWrapper(_ecld_io.BytesIO(INPUT_BYTES), encoding="utf-8", errors="replace")
del _ecld_sys, _ecld_io
"#;

fn split(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = frame.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

fn main() {
    // Keep the declaration in the module even if nothing reads it at run time.
    std::hint::black_box(&RUNNER_DECLARATION);
    let mut frame = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut frame) {
        eprintln!("python-runner: cannot read stdin: {e}");
        std::process::exit(BAD_FRAME_EXIT);
    }
    let Some((code, input)) = split(&frame) else {
        eprintln!(
            "python-runner: stdin is not an `ecldrun1` frame; this module runs inside an ecld enclave"
        );
        std::process::exit(BAD_FRAME_EXIT);
    };
    let Ok(source) = std::str::from_utf8(code) else {
        eprintln!("SyntaxError: the script is not UTF-8 text");
        std::process::exit(CODE_INVALID_EXIT);
    };

    let interpreter = InterpreterBuilder::new().init_stdlib().interpreter();
    let mut code_invalid = false;
    let result = interpreter.enter(|vm| -> PyResult<()> {
        let scope = vm.new_scope_with_builtins();
        scope.globals.set_item("__name__", vm.ctx.new_str("__main__").into(), vm)?;
        scope.globals.set_item("INPUT_BYTES", vm.ctx.new_bytes(input.to_vec()).into(), vm)?;
        vm.run_string(scope.clone(), PRELUDE, "<ecld-prelude>".to_owned())?;
        let code = match vm.compile(source, Mode::Exec, "script.py".to_owned()) {
            Ok(code) => code,
            Err(err) => {
                code_invalid = true;
                return Err(vm.new_syntax_error(&err, Some(source)));
            }
        };
        vm.run_code_obj(code, scope).map(drop)
    });
    // Flushes stdout and stderr, prints the traceback of an uncaught exception.
    let exit = interpreter.finalize(result.err());
    if code_invalid {
        std::process::exit(CODE_INVALID_EXIT);
    }
    std::process::exit(i32::try_from(exit).unwrap_or(1));
}
