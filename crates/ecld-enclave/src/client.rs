//! The node's side of the enclave protocol: spawn an enclave process and talk frames to it.
//!
//! ```no_run
//! # async fn demo(task: ecld_enclave::client::Task) -> Result<(), ecld_enclave::client::ClientError> {
//! use ecld_enclave::client::EnclaveProcess;
//! let mut enclave = EnclaveProcess::spawn("ecld", ["enclave", "--module", "stats.wasm"]).await?;
//! println!("enclave signer {}", enclave.ready().signer);
//! let outcome = enclave.run(task).await?;
//! println!("status {}", outcome.proof.status.code());
//! enclave.shutdown().await?;
//! # Ok(()) }
//! ```

use std::{ffi::OsStr, process::Stdio, time::Duration};

use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::protocol::{
    Done, ProofFields, Ready, Request, Response, TaskBinding,
    frame::{FrameError, read_frame_async, write_frame_async},
};

/// How long [`EnclaveProcess::spawn`] waits for the `Ready` frame (attestation included).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// Why talking to an enclave failed. After any error but [`ClientError::Refused`] the
/// process should be considered dead: drop it (which kills it) and start another.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The enclave binary could not be started.
    #[error(
        "cannot start the enclave process `{program}`: {source}; check the path and permissions"
    )]
    Spawn {
        /// The program that was started.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The enclave reported that it could not start.
    #[error("the enclave failed to start: {0}")]
    Fatal(String),
    /// The enclave did not become ready in time.
    #[error("the enclave did not report ready within {0:?}; see its log on stderr")]
    StartupTimeout(Duration),
    /// Reading or writing frames failed (the process died or spoke garbage).
    #[error("enclave protocol failure: {0}")]
    Frame(#[from] FrameError),
    /// The enclave refused the request frame; it is still running.
    #[error("the enclave refused the request: {0}")]
    Refused(String),
    /// The enclave answered with a frame that does not fit the request.
    #[error("the enclave sent an unexpected {0} frame; is it the same ecld version?")]
    Unexpected(&'static str),
}

/// One task for the enclave.
#[derive(Debug, Clone)]
pub struct Task {
    /// What the proof will be bound to; the enclave derives the limits from its spec.
    pub binding: TaskBinding,
    /// The input ciphertext as fetched from the store (empty if it could not be fetched).
    pub input: Vec<u8>,
}

/// The signed outcome of a task, as the node uploads and relays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    /// The proof fields, as signed.
    pub proof: ProofFields,
    /// The 65-byte EIP-712 signature by the image signer.
    pub signature: Vec<u8>,
    /// The result ciphertext to upload (empty when there is none; then
    /// `proof.result_hash` is zero).
    pub result: Vec<u8>,
    /// Public one-line explanation for logs.
    pub message: String,
    /// The CID the result must be published under (its hash is signed), empty when there is
    /// no result.
    pub result_cid: String,
}

/// A running enclave process, ready for tasks. Dropping it kills the process.
#[derive(Debug)]
pub struct EnclaveProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    ready: Ready,
}

impl EnclaveProcess {
    /// The enclave process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts `program args…` (stdin/stdout piped, stderr inherited for its log) and waits up
    /// to [`DEFAULT_STARTUP_TIMEOUT`] for its `Ready` frame.
    pub async fn spawn<I, S>(program: impl AsRef<OsStr>, args: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(command, DEFAULT_STARTUP_TIMEOUT).await
    }

    /// Like [`spawn`](Self::spawn) with a prepared command (environment, stderr) and timeout.
    /// stdin and stdout are replaced by pipes.
    pub async fn spawn_command(
        mut command: Command,
        startup_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let program = command.as_std().get_program().to_string_lossy().into_owned();
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ClientError::Spawn { program, source })?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ClientError::Unexpected("missing pipe"));
        };
        let first =
            tokio::time::timeout(startup_timeout, read_frame_async::<Response>(&mut stdout))
                .await
                .map_err(|_| ClientError::StartupTimeout(startup_timeout))?;
        let ready = match first {
            Ok(frame) => match frame.header {
                Response::Ready(ready) => ready,
                Response::Fatal { message } => return Err(ClientError::Fatal(message)),
                other => return Err(ClientError::Unexpected(kind(&other))),
            },
            Err(FrameError::Closed) => {
                let status = child.wait().await.ok();
                return Err(ClientError::Fatal(format!(
                    "the process exited ({}) before reporting ready; see its log on stderr",
                    status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string())
                )));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self { child, stdin, stdout, ready })
    }

    /// What the enclave announced: signer, recipient, platform, measurement.
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The OS process id, for logs.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Runs one task and returns its signed outcome. Every program outcome, including
    /// failures, is a successful return with the status in `proof.status`.
    pub async fn run(&mut self, task: Task) -> Result<TaskOutcome, ClientError> {
        let request = Request::Run { task: task.binding };
        write_frame_async(&mut self.stdin, &request, &task.input).await?;
        let frame = read_frame_async::<Response>(&mut self.stdout).await?;
        match frame.header {
            Response::Done(Done { proof, signature, message, result_cid }) => Ok(TaskOutcome {
                proof,
                signature: signature.to_vec(),
                result: frame.blob,
                message,
                result_cid,
            }),
            Response::Error { message } => Err(ClientError::Refused(message)),
            other => Err(ClientError::Unexpected(kind(&other))),
        }
    }

    /// Checks that the enclave still answers.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        write_frame_async(&mut self.stdin, &Request::Ping, &[]).await?;
        match read_frame_async::<Response>(&mut self.stdout).await?.header {
            Response::Pong => Ok(()),
            Response::Error { message } => Err(ClientError::Refused(message)),
            other => Err(ClientError::Unexpected(kind(&other))),
        }
    }

    /// Asks the enclave to exit and waits for it (killing it after 5 s).
    pub async fn shutdown(mut self) -> Result<std::process::ExitStatus, ClientError> {
        // A failed write means the process is already gone; waiting tells how it ended.
        let _ = write_frame_async(&mut self.stdin, &Request::Shutdown, &[]).await;
        drop(self.stdin);
        match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(status) => status.map_err(|e| ClientError::Frame(e.into())),
            Err(_) => {
                let _ = self.child.kill().await;
                self.child.wait().await.map_err(|e| ClientError::Frame(e.into()))
            }
        }
    }
}

fn kind(response: &Response) -> &'static str {
    match response {
        Response::Ready(_) => "ready",
        Response::Done(_) => "done",
        Response::Pong => "pong",
        Response::Error { .. } => "error",
        Response::Fatal { .. } => "fatal",
    }
}
