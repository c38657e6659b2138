//! The JavaScript runner image: runs the user's script from the task payload in Boa.
//!
//! stdin (from the enclave): `ecldrun1 ‖ u32be code_len ‖ code ‖ input`. The script sees the
//! input as `INPUT` (string, UTF-8 with replacement) and `INPUT_BYTES` (Uint8Array); what it
//! writes with `console.log` / `print` is the result, `console.error` the diagnostic. Exit
//! codes: 0 success; 125 the script does not parse (SyntaxError; the enclave reports
//! CODE_INVALID); 1 an uncaught exception (also from a rejected job); 70 the enclave sent a
//! malformed frame.

use std::io::{Read, Write};

use boa_engine::{
    Context, JsResult, JsString, JsValue, NativeFunction, Script, Source, js_string,
    object::{ObjectInitializer, builtins::JsUint8Array},
    property::Attribute,
};

/// The runner declaration the enclave reads from this module (`ecld.runner` custom section);
/// the image measurement covers it.
#[unsafe(link_section = "ecld.runner")]
#[used]
static RUNNER_DECLARATION: [u8; 8] = *b"stdin-v1";

const MAGIC: &[u8; 8] = b"ecldrun1";
const CODE_INVALID_EXIT: i32 = 125;
const BAD_FRAME_EXIT: i32 = 70;

fn split(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = frame.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

fn line(args: &[JsValue]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|v| match v.as_string() {
            Some(s) => s.to_std_string_lossy(),
            None => v.display().to_string(),
        })
        .collect();
    parts.join(" ") + "\n"
}

fn log(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let _ = std::io::stdout().lock().write_all(line(args).as_bytes());
    Ok(JsValue::undefined())
}

fn error(_: &JsValue, args: &[JsValue], _: &mut Context) -> JsResult<JsValue> {
    let _ = std::io::stderr().lock().write_all(line(args).as_bytes());
    Ok(JsValue::undefined())
}

fn setup(context: &mut Context, input: &[u8]) -> JsResult<()> {
    let text = String::from_utf8_lossy(input);
    context.register_global_property(
        js_string!("INPUT"),
        JsString::from(text.as_ref()),
        Attribute::all(),
    )?;
    let bytes = JsUint8Array::from_iter(input.iter().copied(), context)?;
    context.register_global_property(js_string!("INPUT_BYTES"), bytes, Attribute::all())?;
    context.register_global_callable(js_string!("print"), 0, NativeFunction::from_fn_ptr(log))?;
    let console = ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(log), js_string!("log"), 0)
        .function(NativeFunction::from_fn_ptr(log), js_string!("info"), 0)
        .function(NativeFunction::from_fn_ptr(error), js_string!("error"), 0)
        .function(NativeFunction::from_fn_ptr(error), js_string!("warn"), 0)
        .build();
    context.register_global_property(js_string!("console"), console, Attribute::all())
}

fn main() {
    std::hint::black_box(&RUNNER_DECLARATION);
    let mut frame = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut frame) {
        eprintln!("js-runner: cannot read stdin: {e}");
        std::process::exit(BAD_FRAME_EXIT);
    }
    let Some((code, input)) = split(&frame) else {
        eprintln!(
            "js-runner: stdin is not an `ecldrun1` frame; this module runs inside an ecld enclave"
        );
        std::process::exit(BAD_FRAME_EXIT);
    };
    if std::str::from_utf8(code).is_err() {
        eprintln!("SyntaxError: the script is not UTF-8 text");
        std::process::exit(CODE_INVALID_EXIT);
    }
    let mut context = Context::default();
    if let Err(e) = setup(&mut context, input) {
        eprintln!("js-runner: cannot set up the script's globals: {e}");
        std::process::exit(BAD_FRAME_EXIT);
    }
    let script = match Script::parse(Source::from_bytes(code), None, &mut context) {
        Ok(script) => script,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(CODE_INVALID_EXIT);
        }
    };
    let result = script.evaluate(&mut context).and_then(|_| context.run_jobs());
    let _ = std::io::stdout().flush();
    if let Err(e) = result {
        eprintln!("Uncaught {e}");
        std::process::exit(1);
    }
}
