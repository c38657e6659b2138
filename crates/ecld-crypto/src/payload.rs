//! The task input payload: what the requester encrypts to the image's enclave key.
//!
//! Binary layout (all integers big-endian; see `docs/protocol.md`):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `b"ECLP"` |
//! | 4 | 1 | format version, `1` |
//! | 5 | 20 | requester address |
//! | 25 | 2 | recipient length `r` (1..=[`MAX_RECIPIENT_LEN`]) |
//! | 27 | r | result recipient, ASCII `age1…` (X25519) |
//! | 27+r | 1 | code flag: `0` no code, `1` code follows |
//! | … | 4 + c | if flag is 1: code length `c` (≤ [`MAX_CODE_LEN`]) and the code bytes |
//! | … | 4 + n | input length `n` (≤ [`MAX_INPUT_LEN`]) and the input bytes |
//!
//! Nothing may follow the input. The parser refuses everything else with a specific
//! [`PayloadError`], and never panics (fuzzed: `fuzz/`, target `payload_decode`).

use alloy_primitives::{Address, B256, keccak256};
use serde::{Deserialize, Serialize};

use crate::envelope::AgeRecipient;

/// The four bytes every payload starts with.
pub const MAGIC: [u8; 4] = *b"ECLP";
/// The payload format this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Longest recipient string accepted (an X25519 `age1…` recipient is 62 characters).
pub const MAX_RECIPIENT_LEN: usize = 128;
/// Largest user-supplied code accepted: 32 MiB (room for a WASM module or source tree).
pub const MAX_CODE_LEN: usize = 32 * 1024 * 1024;
/// Largest program input accepted: 256 MiB.
pub const MAX_INPUT_LEN: usize = 256 * 1024 * 1024;

/// A decoded input payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The account that submits the task; the enclave can check it against the chain.
    pub requester: Address,
    /// Where the result goes: the requester's age X25519 recipient (`age1…`). It travels
    /// inside the encryption so a node cannot swap it.
    pub recipient: String,
    /// Code for a runner image to execute (WASM module, script source); `None` when the
    /// image runs its own program.
    pub code: Option<Vec<u8>>,
    /// The program's input (its stdin).
    pub input: Vec<u8>,
}

/// Which field of the payload a [`PayloadError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The four magic bytes.
    Magic,
    /// The version byte.
    Version,
    /// The requester address.
    Requester,
    /// The recipient length or string.
    Recipient,
    /// The code flag.
    CodeFlag,
    /// The code length or bytes.
    Code,
    /// The input length or bytes.
    Input,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Magic => "magic",
            Self::Version => "version",
            Self::Requester => "requester",
            Self::Recipient => "recipient",
            Self::CodeFlag => "code flag",
            Self::Code => "code",
            Self::Input => "input",
        })
    }
}

/// Why bytes are not a valid payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The bytes do not start with [`MAGIC`].
    #[error(
        "not an ecld payload: it does not start with the magic bytes \"ECLP\"; was it decrypted?"
    )]
    BadMagic,
    /// The version byte names a format this code does not know.
    #[error(
        "payload format version {0} is not supported (this build reads version {FORMAT_VERSION}); upgrade ecld or rebuild the payload"
    )]
    UnsupportedVersion(u8),
    /// The bytes end inside a field.
    #[error(
        "payload truncated in the {field} field: {needed} more bytes needed, {available} present"
    )]
    Truncated {
        /// The field being read.
        field: Field,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length exceeds the documented maximum.
    #[error("payload {field} is {len} bytes, over the maximum of {max}")]
    TooLarge {
        /// The field.
        field: Field,
        /// Its declared length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The recipient is empty, not ASCII, or not an age X25519 recipient.
    #[error("payload recipient is not an age X25519 recipient (age1…): {0}")]
    InvalidRecipient(String),
    /// The code flag is neither 0 nor 1.
    #[error("payload code flag is {0}; only 0 (no code) and 1 (code follows) are defined")]
    InvalidCodeFlag(u8),
    /// Bytes follow the input.
    #[error("payload has {0} unexpected bytes after the input; the payload is corrupted")]
    TrailingBytes(usize),
}

impl Payload {
    /// A payload after checking every field against the limits [`Self::decode`] enforces.
    ///
    /// # Errors
    /// [`PayloadError::InvalidRecipient`] or [`PayloadError::TooLarge`].
    pub fn new(
        requester: Address,
        recipient: &AgeRecipient,
        code: Option<Vec<u8>>,
        input: Vec<u8>,
    ) -> Result<Self, PayloadError> {
        let payload = Self { requester, recipient: recipient.to_string(), code, input };
        payload.validate()?;
        Ok(payload)
    }

    /// Checks the field limits and the recipient syntax.
    ///
    /// # Errors
    /// [`PayloadError::InvalidRecipient`] or [`PayloadError::TooLarge`].
    pub fn validate(&self) -> Result<(), PayloadError> {
        check_len(Field::Recipient, self.recipient.len(), MAX_RECIPIENT_LEN)?;
        check_recipient(self.recipient.as_bytes())?;
        if let Some(code) = &self.code {
            check_len(Field::Code, code.len(), MAX_CODE_LEN)?;
        }
        check_len(Field::Input, self.input.len(), MAX_INPUT_LEN)
    }

    /// The parsed result recipient.
    ///
    /// # Errors
    /// [`PayloadError::InvalidRecipient`] when the field was set to something else.
    pub fn recipient(&self) -> Result<AgeRecipient, PayloadError> {
        self.recipient
            .parse()
            .map_err(|e: crate::EnvelopeError| PayloadError::InvalidRecipient(e.to_string()))
    }

    /// keccak256 of the code, or zero without code: the proof's `codeHash`.
    pub fn code_hash(&self) -> B256 {
        code_hash(self.code.as_deref())
    }

    /// The length [`Self::encode`] will produce.
    pub fn encoded_len(&self) -> usize {
        4 + 1
            + 20
            + 2
            + self.recipient.len()
            + 1
            + self.code.as_ref().map_or(0, |c| 4 + c.len())
            + 4
            + self.input.len()
    }

    /// The binary form. A payload that fails [`Self::validate`] encodes to bytes that
    /// [`Self::decode`] refuses; build payloads with [`Self::new`] to rule that out.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(self.requester.as_slice());
        out.extend_from_slice(&len_u16(self.recipient.len()).to_be_bytes());
        out.extend_from_slice(self.recipient.as_bytes());
        match &self.code {
            None => out.push(0),
            Some(code) => {
                out.push(1);
                out.extend_from_slice(&len_u32(code.len()).to_be_bytes());
                out.extend_from_slice(code);
            }
        }
        out.extend_from_slice(&len_u32(self.input.len()).to_be_bytes());
        out.extend_from_slice(&self.input);
        out
    }

    /// Parses the binary form strictly.
    ///
    /// # Errors
    /// A specific [`PayloadError`] for a bad magic, unknown version, truncation, oversize
    /// field, invalid recipient, invalid code flag or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let mut r = Reader { rest: bytes };
        if r.take(Field::Magic, 4)? != MAGIC {
            return Err(PayloadError::BadMagic);
        }
        let version = r.take(Field::Version, 1)?[0];
        if version != FORMAT_VERSION {
            return Err(PayloadError::UnsupportedVersion(version));
        }
        let requester = Address::from_slice(r.take(Field::Requester, 20)?);
        let recipient_len = usize::from(u16::from_be_bytes(r.array(Field::Recipient)?));
        check_len(Field::Recipient, recipient_len, MAX_RECIPIENT_LEN)?;
        let recipient = r.take(Field::Recipient, recipient_len)?;
        check_recipient(recipient)?;
        let recipient = String::from_utf8(recipient.to_vec())
            .map_err(|_| PayloadError::InvalidRecipient("not ASCII".into()))?;
        let code = match r.take(Field::CodeFlag, 1)?[0] {
            0 => None,
            1 => Some(r.sized(Field::Code, MAX_CODE_LEN)?.to_vec()),
            flag => return Err(PayloadError::InvalidCodeFlag(flag)),
        };
        let input = r.sized(Field::Input, MAX_INPUT_LEN)?.to_vec();
        if !r.rest.is_empty() {
            return Err(PayloadError::TrailingBytes(r.rest.len()));
        }
        Ok(Self { requester, recipient, code, input })
    }
}

/// keccak256 of user-supplied code, or the zero hash when there is none.
pub fn code_hash(code: Option<&[u8]>) -> B256 {
    code.map_or(B256::ZERO, keccak256)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: Field, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.rest.len() < n {
            return Err(PayloadError::Truncated { field, needed: n, available: self.rest.len() });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], PayloadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    /// A u32 length prefix, checked against `max` before the bytes are read.
    fn sized(&mut self, field: Field, max: usize) -> Result<&'a [u8], PayloadError> {
        let len = u32::from_be_bytes(self.array(field)?);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        check_len(field, len, max)?;
        self.take(field, len)
    }
}

fn check_len(field: Field, len: usize, max: usize) -> Result<(), PayloadError> {
    if len > max {
        return Err(PayloadError::TooLarge { field, len, max });
    }
    Ok(())
}

fn check_recipient(bytes: &[u8]) -> Result<(), PayloadError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| PayloadError::InvalidRecipient("not ASCII".into()))?;
    if text.is_empty() {
        return Err(PayloadError::InvalidRecipient("empty".into()));
    }
    if text.trim() != text {
        return Err(PayloadError::InvalidRecipient("surrounding whitespace".into()));
    }
    text.parse::<AgeRecipient>().map(drop).map_err(|_| {
        PayloadError::InvalidRecipient("expected `age1` followed by 58 bech32 characters".into())
    })
}

/// Callers keep lengths within the maxima, which all fit in the length prefixes; a longer
/// field (only possible by skipping `validate`) saturates, and `decode` refuses the result.
fn len_u16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
