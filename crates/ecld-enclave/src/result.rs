//! The result envelope: the plaintext the enclave encrypts to the requester's recipient.
//!
//! ```text
//! magic   8 bytes   "ecldres1"
//! status  u16 BE    the status code signed in the proof
//! exit    i32 BE    the program's exit code; -1 when it did not exit (trap, limit, not run)
//! stdout  u32 BE length ‖ bytes   the program's output (at most the task's output limit)
//! stderr  u32 BE length ‖ bytes   diagnostics (at most 64 KiB, truncated beyond)
//! ```
//!
//! Nothing follows `stderr`; a decoder refuses trailing bytes.

/// The 8 bytes every result envelope starts with.
pub const MAGIC: &[u8; 8] = b"ecldres1";

/// Most stderr bytes kept in a result; the rest is dropped.
pub const MAX_STDERR: usize = 64 * 1024;

/// Why bytes are not a result envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    /// The magic is missing.
    #[error(
        "not an ecld result envelope (missing the \"ecldres1\" magic); was this decrypted with the right identity?"
    )]
    Magic,
    /// A length runs past the end, or bytes follow the last field.
    #[error("result envelope is truncated or has trailing bytes: {0}")]
    Malformed(&'static str),
}

/// What the program produced, as the requester sees it after decryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEnvelope {
    /// The status code (same as in the signed proof).
    pub status: u16,
    /// The program's exit code, -1 when it did not exit.
    pub exit_code: i32,
    /// Everything the program wrote to stdout.
    pub stdout: Vec<u8>,
    /// What the program wrote to stderr (truncated to [`MAX_STDERR`]), or the enclave's
    /// explanation when the program could not run.
    pub stderr: Vec<u8>,
}

impl ResultEnvelope {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(22 + self.stdout.len() + self.stderr.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.exit_code.to_be_bytes());
        for field in [&self.stdout, &self.stderr] {
            out.extend_from_slice(&u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// Parses the wire form strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResultError> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or(ResultError::Magic)?;
        let (status, rest) = take::<2>(rest, "status")?;
        let (exit, rest) = take::<4>(rest, "exit code")?;
        let (stdout, rest) = take_field(rest, "stdout")?;
        let (stderr, rest) = take_field(rest, "stderr")?;
        if !rest.is_empty() {
            return Err(ResultError::Malformed("bytes after stderr"));
        }
        Ok(Self {
            status: u16::from_be_bytes(status),
            exit_code: i32::from_be_bytes(exit),
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
        })
    }
}

fn take<'a, const N: usize>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<([u8; N], &'a [u8]), ResultError> {
    let (head, rest) = bytes.split_at_checked(N).ok_or(ResultError::Malformed(what))?;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok((out, rest))
}

fn take_field<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), ResultError> {
    let (len, rest) = take::<4>(bytes, what)?;
    rest.split_at_checked(u32::from_be_bytes(len) as usize).ok_or(ResultError::Malformed(what))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn wire_form_is_stable() {
        let env = ResultEnvelope {
            status: 1,
            exit_code: 3,
            stdout: b"out".to_vec(),
            stderr: b"e".to_vec(),
        };
        let bytes = env.encode();
        assert_eq!(
            hex::encode(&bytes),
            concat!("65636c6472657331", "0001", "00000003", "00000003", "6f7574", "00000001", "65")
        );
        assert_eq!(ResultEnvelope::decode(&bytes).unwrap(), env);
    }

    #[test]
    fn refuses_wrong_magic_truncation_and_trailing_bytes() {
        let bytes = ResultEnvelope { status: 0, exit_code: 0, stdout: vec![1; 10], stderr: vec![] }
            .encode();
        assert_eq!(ResultEnvelope::decode(b"ecldres0"), Err(ResultError::Magic));
        assert!(matches!(
            ResultEnvelope::decode(&bytes[..bytes.len() - 1]),
            Err(ResultError::Malformed(_))
        ));
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(
            ResultEnvelope::decode(&longer),
            Err(ResultError::Malformed("bytes after stderr"))
        );
    }

    proptest! {
        #[test]
        fn round_trips(status in any::<u16>(), exit in any::<i32>(),
                       stdout in proptest::collection::vec(any::<u8>(), 0..300),
                       stderr in proptest::collection::vec(any::<u8>(), 0..300)) {
            let env = ResultEnvelope { status, exit_code: exit, stdout, stderr };
            prop_assert_eq!(ResultEnvelope::decode(&env.encode()).unwrap(), env);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ResultEnvelope::decode(&bytes);
        }
    }
}
