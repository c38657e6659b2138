//! Envelopes: age v1 files encrypted to X25519 recipients, streamed in constant memory.
//!
//! [`encrypt`] and [`decrypt`] copy from a reader to a writer through age's STREAM
//! construction (64 KiB chunks, each authenticated), so memory use does not grow with the
//! input. Output may be binary or ASCII-armored (PEM-like `-----BEGIN AGE ENCRYPTED
//! FILE-----`); [`decrypt`] detects which.
//!
//! Because decryption streams, plaintext of the chunks before a corrupted one has already
//! reached the writer when [`decrypt`] fails. Treat the output as garbage on any error
//! (write to a temporary file and rename it on success, as the `ecld` CLI does).

use std::{
    fmt,
    io::{self, BufReader, Read, Write},
    str::FromStr,
};

use age::armor::{ArmoredReadError, ArmoredReader, ArmoredWriter, Format};

use crate::keys::AgeIdentity;

/// The public half of an age X25519 key (`age1…`): whoever holds the matching
/// [`AgeIdentity`] can decrypt what is encrypted to it.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeRecipient(age::x25519::Recipient);

impl AgeRecipient {
    pub(crate) const fn from_age(inner: age::x25519::Recipient) -> Self {
        Self(inner)
    }

    fn as_age(&self) -> &age::x25519::Recipient {
        &self.0
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({})", self.0)
    }
}

impl FromStr for AgeRecipient {
    type Err = EnvelopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let t = text.trim();
        t.parse::<age::x25519::Recipient>().map(Self).map_err(|reason| {
            EnvelopeError::InvalidRecipient { text: truncate(t, 100), reason: reason.to_owned() }
        })
    }
}

impl serde::Serialize for AgeRecipient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AgeRecipient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// A recipient string is not an age X25519 recipient.
    #[error(
        "`{text}` is not an age X25519 recipient ({reason}); expected `age1` followed by 58 \
         bech32 characters, as printed by `age-keygen -y` or `ecld keys show`"
    )]
    InvalidRecipient {
        /// The text that was given (shortened).
        text: String,
        /// What the age parser said.
        reason: String,
    },
    /// Encryption needs at least one recipient.
    #[error("no recipients given: name at least one age1… recipient to encrypt to")]
    NoRecipients,
    /// The input does not start like an age file (binary or armored).
    #[error(
        "the input is not an age file (unknown or corrupted header); check that you gave \
         the encrypted file, not the plaintext"
    )]
    NotAnAgeFile,
    /// The age file is of a newer or unknown version.
    #[error("the age file uses a format this version does not know; upgrade ecld")]
    UnknownFormat,
    /// The header's MAC does not verify: the header was modified.
    #[error(
        "the age header was modified (its MAC does not verify); the file is corrupted or tampered with"
    )]
    HeaderTampered,
    /// None of the header's stanzas opens with the identity.
    #[error(
        "this file was not encrypted to your identity (no recipient stanza matches); check \
         that you use the identity whose public key the sender encrypted to"
    )]
    NoMatchingIdentity,
    /// The file is for a passphrase, which ecld does not use.
    #[error("the file is passphrase-encrypted; ecld only decrypts files for X25519 identities")]
    PassphraseEncrypted,
    /// A payload chunk did not authenticate.
    #[error(
        "the encrypted payload was modified (a chunk failed authentication); do not use any output written"
    )]
    PayloadTampered,
    /// The file ends before its final chunk.
    #[error("the age file is truncated (its final chunk is missing); fetch the whole file again")]
    Truncated,
    /// The ASCII armor is malformed.
    #[error("the ASCII armor is malformed ({0}); the file was damaged in transit")]
    BadArmor(String),
    /// Reading the input or writing the output failed.
    #[error("I/O error while streaming the envelope: {0}")]
    Io(#[source] io::Error),
}

/// Encrypts everything `reader` yields to `recipients`, writing an age v1 file to `writer`
/// (ASCII-armored when `armor` is true). Returns the number of plaintext bytes read.
///
/// Memory use is constant in the input size.
///
/// # Errors
/// [`EnvelopeError::NoRecipients`] for an empty list, [`EnvelopeError::Io`] when reading or
/// writing fails.
pub fn encrypt<R: Read, W: Write>(
    recipients: &[AgeRecipient],
    armor: bool,
    mut reader: R,
    writer: W,
) -> Result<u64, EnvelopeError> {
    if recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
    )
    .map_err(|e| EnvelopeError::Io(io::Error::other(e.to_string())))?;
    let format = if armor { Format::AsciiArmor } else { Format::Binary };
    let armored = ArmoredWriter::wrap_output(writer, format).map_err(EnvelopeError::Io)?;
    let mut stream = encryptor.wrap_output(armored).map_err(EnvelopeError::Io)?;
    let copied = copy(&mut reader, &mut stream)?;
    let armored = stream.finish().map_err(EnvelopeError::Io)?;
    let mut writer = armored.finish().map_err(EnvelopeError::Io)?;
    writer.flush().map_err(EnvelopeError::Io)?;
    Ok(copied)
}

/// Decrypts the age file `reader` yields with `identity`, writing the plaintext to
/// `writer`. Binary and ASCII-armored files are both accepted. Returns the number of
/// plaintext bytes written.
///
/// Memory use is constant in the input size. On error, discard whatever was written.
///
/// # Errors
/// A specific [`EnvelopeError`] for each way the file can be wrong: not an age file,
/// not for this identity, tampered header, tampered payload, truncated, bad armor.
pub fn decrypt<R: Read, W: Write>(
    identity: &AgeIdentity,
    mut reader: R,
    mut writer: W,
) -> Result<u64, EnvelopeError> {
    // Look at the start first, so that a file that is not age at all gets a clear error
    // rather than whatever the header parser hits first.
    let mut prefix = Vec::with_capacity(PREFIX_PEEK);
    reader.by_ref().take(PREFIX_PEEK as u64).read_to_end(&mut prefix).map_err(EnvelopeError::Io)?;
    if !looks_like_age(&prefix) {
        return Err(EnvelopeError::NotAnAgeFile);
    }
    let reader = io::Cursor::new(prefix).chain(reader);
    let input = ArmoredReader::new(BufReader::with_capacity(CHUNK, reader));
    let decryptor = age::Decryptor::new_buffered(input).map_err(map_decrypt_error)?;
    if decryptor.is_scrypt() {
        return Err(EnvelopeError::PassphraseEncrypted);
    }
    let mut stream = decryptor
        .decrypt(std::iter::once(identity.as_age() as &dyn age::Identity))
        .map_err(map_decrypt_error)?;
    let copied = copy(&mut stream, &mut writer)?;
    writer.flush().map_err(EnvelopeError::Io)?;
    Ok(copied)
}

/// [`encrypt`] for a byte slice held in memory.
///
/// # Errors
/// As [`encrypt`].
pub fn encrypt_bytes(
    recipients: &[AgeRecipient],
    armor: bool,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    encrypt(recipients, armor, plaintext, &mut out)?;
    Ok(out)
}

/// [`decrypt`] for a byte slice held in memory.
///
/// # Errors
/// As [`decrypt`].
pub fn decrypt_bytes(identity: &AgeIdentity, ciphertext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut out = Vec::with_capacity(ciphertext.len());
    decrypt(identity, ciphertext, &mut out)?;
    Ok(out)
}

const BINARY_START: &[u8] = b"age-encryption.org/";
const ARMOR_START: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";
const PREFIX_PEEK: usize = ARMOR_START.len();

/// Whether `prefix` (the first bytes, possibly all of a short input) can start an age file:
/// the binary header line, or armor after optional leading whitespace (which age allows).
fn looks_like_age(prefix: &[u8]) -> bool {
    let trimmed = prefix.trim_ascii_start();
    let matches = |start: &[u8], text: &[u8]| {
        let n = start.len().min(text.len());
        text[..n] == start[..n]
    };
    // A prefix that is all whitespace may still be followed by armor.
    trimmed.is_empty() && !prefix.is_empty()
        || (!trimmed.is_empty()
            && (matches(BINARY_START, trimmed) || matches(ARMOR_START, trimmed)))
}

/// age's STREAM chunk size; copying in whole chunks avoids needless splitting.
const CHUNK: usize = 64 * 1024;

fn copy<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
) -> Result<u64, EnvelopeError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(map_stream_io(e)),
        };
        writer.write_all(&buf[..n]).map_err(EnvelopeError::Io)?;
        total += n as u64;
    }
    Ok(total)
}

fn map_decrypt_error(err: age::DecryptError) -> EnvelopeError {
    match err {
        age::DecryptError::InvalidHeader => EnvelopeError::NotAnAgeFile,
        age::DecryptError::UnknownFormat => EnvelopeError::UnknownFormat,
        age::DecryptError::InvalidMac => EnvelopeError::HeaderTampered,
        age::DecryptError::NoMatchingKeys
        | age::DecryptError::DecryptionFailed
        | age::DecryptError::KeyDecryptionFailed => EnvelopeError::NoMatchingIdentity,
        age::DecryptError::ExcessiveWork { .. } => EnvelopeError::PassphraseEncrypted,
        age::DecryptError::Io(e) => map_stream_io(e),
        other => EnvelopeError::Io(io::Error::other(other.to_string())),
    }
}

/// age reports payload and armor problems as `io::Error`s; give each its own variant.
fn map_stream_io(err: io::Error) -> EnvelopeError {
    if let Some(armor) = err.get_ref().and_then(|e| e.downcast_ref::<ArmoredReadError>()) {
        return EnvelopeError::BadArmor(armor.to_string());
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => EnvelopeError::Truncated,
        io::ErrorKind::InvalidData => {
            let text = err.to_string();
            if text.contains("truncated") {
                EnvelopeError::Truncated
            } else {
                EnvelopeError::PayloadTampered
            }
        }
        _ => EnvelopeError::Io(err),
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}
