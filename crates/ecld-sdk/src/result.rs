//! The plaintext of a result: the enclave's result envelope (see `docs/protocol.md`).
//!
//! ```text
//! magic "ecldres1" ‖ status u16 BE ‖ exit i32 BE ‖ u32 BE len ‖ stdout ‖ u32 BE len ‖ stderr
//! ```
//!
//! Decoded here (not through `ecld-enclave`) so that an application does not pull in the
//! WebAssembly runtime to read its results.

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"ecldres1";

/// What the program produced, as only the requester can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramOutput {
    /// The status code the enclave put inside the encryption (it must equal the proof's).
    pub status: u16,
    /// The program's exit code; -1 when it did not exit (trap, limit, not run).
    pub exit_code: i32,
    /// The program's stdout: the result.
    pub stdout: Vec<u8>,
    /// The program's stderr, or the enclave's explanation when the program could not run.
    pub stderr: Vec<u8>,
}

impl ProgramOutput {
    /// Parses the envelope strictly; `None` when the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let (status, rest) = rest.split_at_checked(2)?;
        let (exit, rest) = rest.split_at_checked(4)?;
        let (stdout, rest) = field(rest)?;
        let (stderr, rest) = field(rest)?;
        if !rest.is_empty() {
            return None;
        }
        Some(Self {
            status: u16::from_be_bytes(status.try_into().ok()?),
            exit_code: i32::from_be_bytes(exit.try_into().ok()?),
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
        })
    }

    /// The wire form (for tests and for tools that produce results).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22 + self.stdout.len() + self.stderr.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.exit_code.to_be_bytes());
        for f in [&self.stdout, &self.stderr] {
            out.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }
}

fn field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_at_checked(4)?;
    rest.split_at_checked(usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused() {
        let o = ProgramOutput {
            status: 1,
            exit_code: 2,
            stdout: b"out".to_vec(),
            stderr: b"err".to_vec(),
        };
        assert_eq!(ProgramOutput::decode(&o.encode()), Some(o.clone()));
        let mut long = o.encode();
        long.push(0);
        assert_eq!(ProgramOutput::decode(&long), None);
        assert_eq!(ProgramOutput::decode(b"ecldres1\0"), None);
        assert_eq!(ProgramOutput::decode(b"plain text"), None);
    }

    #[test]
    fn the_enclave_s_vector_decodes() {
        // "ecldres1", status 0, exit 0, stdout "hi", stderr "".
        let bytes = b"ecldres1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02hi\x00\x00\x00\x00";
        let o = ProgramOutput::decode(bytes).unwrap();
        assert_eq!((o.status, o.exit_code, o.stdout.as_slice()), (0, 0, &b"hi"[..]));
    }
}
