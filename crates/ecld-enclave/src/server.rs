//! The enclave's side of the frame protocol: a loop over stdin and stdout.

use std::io::{Read, Write};

use tracing::{info, warn};

use crate::{
    enclave::Enclave,
    protocol::{
        Request, Response,
        frame::{FrameError, read_frame, write_frame},
    },
};

/// Writes `Ready`, then answers requests until end of input or `Shutdown`.
///
/// Returns `Ok` on a clean end; an error when the stream broke (the process should exit
/// non-zero). A request that cannot be understood gets an `Error` frame and the loop goes on.
pub fn serve(
    enclave: &Enclave,
    mut input: impl Read,
    mut output: impl Write,
) -> Result<(), FrameError> {
    let ready = enclave.ready();
    info!(target: "ecld_enclave", signer = %ready.signer, platform = %ready.platform,
          measurement = %ready.measurement, "enclave ready");
    write_frame(&mut output, &Response::Ready(ready), &[])?;
    loop {
        let frame = match read_frame::<Request>(&mut input) {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Ok(()),
            Err(e) if e.is_recoverable() => {
                warn!(target: "ecld_enclave", "refusing a request: {e}");
                write_frame(&mut output, &Response::Error { message: e.to_string() }, &[])?;
                continue;
            }
            Err(e) => return Err(e),
        };
        match frame.header {
            Request::Run { task } => match enclave.run(&task, &frame.blob) {
                Ok(answer) => {
                    info!(target: "ecld_enclave", task = %task.task_id, status = answer.done.proof.status.code(),
                          runtime_ms = answer.done.proof.runtime_ms, "{}", answer.done.message);
                    write_frame(&mut output, &Response::Done(answer.done), &answer.result)?;
                }
                Err(e) => {
                    warn!(target: "ecld_enclave", task = %task.task_id, "refusing a task: {e}");
                    write_frame(&mut output, &Response::Error { message: e.to_string() }, &[])?;
                }
            },
            Request::Ping => write_frame(&mut output, &Response::Pong, &[])?,
            Request::Shutdown => return Ok(()),
        }
    }
}

/// Reports a start-up failure to the node as a `Fatal` frame (best effort).
pub fn fatal(mut output: impl Write, message: &str) {
    // The node may already be gone; the process exits non-zero either way.
    let _ = write_frame(&mut output, &Response::Fatal { message: message.to_owned() }, &[]);
}
