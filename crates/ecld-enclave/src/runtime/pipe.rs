//! Bounded in-memory stdout/stderr for the guest.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps with an untyped error when full; the enclave must
//! tell "wrote too much" (status 3) from other traps, even when the program ignores the
//! write error and exits 0, so the pipe records the overflow in a flag the runner reads.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::{
    cli::{IsTerminal, StdoutStream},
    p2::{OutputStream, Pollable, StreamError},
};

/// What a full pipe does with more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Stop the program: the output limit is part of the task's contract.
    Trap,
    /// Keep the first bytes and drop the rest (diagnostics).
    Truncate,
}

/// The guest wrote past the output limit.
#[derive(Debug, thiserror::Error)]
#[error("the program wrote more than its output limit")]
pub(crate) struct OutputLimitExceeded;

#[derive(Debug, Clone)]
pub(crate) struct BoundedPipe {
    capacity: usize,
    mode: Overflow,
    buffer: Arc<Mutex<Vec<u8>>>,
    overflowed: Arc<AtomicBool>,
}

impl BoundedPipe {
    pub(crate) fn new(capacity: usize, mode: Overflow) -> Self {
        Self { capacity, mode, buffer: Arc::default(), overflowed: Arc::default() }
    }

    /// Whether the guest tried to write past the capacity.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The bytes kept so far.
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // A poisoned lock only means a panic elsewhere while appending; the bytes are intact.
        self.buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends what fits; returns whether everything fitted.
    fn append(&self, bytes: &[u8]) -> bool {
        let mut buf = self.lock();
        let room = self.capacity.saturating_sub(buf.len());
        let n = bytes.len().min(room);
        buf.extend_from_slice(&bytes[..n]);
        if n < bytes.len() {
            self.overflowed.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl OutputStream for BoundedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if self.append(&bytes) || self.mode == Overflow::Truncate {
            Ok(())
        } else {
            Err(StreamError::Trap(OutputLimitExceeded.into()))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always grant a full chunk: a write past the capacity must reach `write`, which
        // records the overflow, instead of waiting forever for room that never comes.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for BoundedPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for BoundedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.append(buf) || self.mode == Overflow::Truncate {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(io::Error::other(OutputLimitExceeded)))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_mode_keeps_prefix_and_flags_overflow() {
        let mut pipe = BoundedPipe::new(4, Overflow::Trap);
        pipe.write(Bytes::from_static(b"ab")).unwrap();
        assert!(!pipe.overflowed());
        assert!(matches!(pipe.write(Bytes::from_static(b"cde")), Err(StreamError::Trap(_))));
        assert!(pipe.overflowed());
        assert_eq!(pipe.take(), b"abcd");
    }

    #[test]
    fn truncate_mode_never_fails() {
        let mut pipe = BoundedPipe::new(2, Overflow::Truncate);
        pipe.write(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(pipe.take(), b"ab");
    }
}
