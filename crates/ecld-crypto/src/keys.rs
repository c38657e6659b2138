//! Keys: age X25519 identities (results, image input keys) and secp256k1 signer keys
//! (proofs, Ethereum accounts), with files that only their owner can read.
//!
//! File formats:
//! - age identity: the `age-keygen` format, so either tool reads the other's files:
//!   `# created: <RFC 3339>`, `# public key: age1…`, then one `AGE-SECRET-KEY-1…` line.
//! - signer key: one line, `0x` and 64 hex digits (the secp256k1 scalar), as Ethereum tools
//!   print private keys.
//!
//! Files are written atomically (temporary file, `fsync`, link into place) with mode 0600
//! and never overwrite an existing file. Loading refuses files that others can read or
//! write. Secrets are zeroized on drop and redacted in `Debug`.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Read, Write},
    path::{Path, PathBuf},
    str::FromStr,
};

use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::envelope::AgeRecipient;

/// Key files larger than this are not key files.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key file does not exist.
    #[error("key file {path} does not exist; create one with `ecld keys new`")]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The key file can be read or written by other users.
    #[error(
        "key file {path} has permissions {mode:04o}, so other users can read or change it; \
         run `chmod 600 {path}` and check nobody copied it"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Saving would replace an existing file.
    #[error(
        "{path} already exists; refusing to overwrite a key (move it away or choose another path)"
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file's contents are not a key of the expected kind.
    #[error("{path} is not a valid {kind} file: {reason}")]
    Malformed {
        /// The key file.
        path: PathBuf,
        /// What kind of key was expected.
        kind: &'static str,
        /// What is wrong (never includes secret material).
        reason: String,
    },
    /// A key given as text is not valid.
    #[error("not a valid {kind}: {reason}")]
    InvalidKey {
        /// What kind of key was expected.
        kind: &'static str,
        /// What is wrong (never includes secret material).
        reason: String,
    },
    /// Reading or writing the file failed.
    #[error("I/O error on key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// An age X25519 identity: the user's key for results, or an image's key for inputs.
///
/// `Debug` prints only the public recipient.
#[derive(Clone)]
pub struct AgeIdentity(age::x25519::Identity);

impl AgeIdentity {
    /// A new random identity.
    pub fn generate() -> Self {
        Self(age::x25519::Identity::generate())
    }

    /// Parses an `AGE-SECRET-KEY-1…` string.
    ///
    /// # Errors
    /// [`KeyError::InvalidKey`] when the text is not an age X25519 secret key.
    pub fn from_secret_str(secret: &str) -> Result<Self, KeyError> {
        secret.trim().parse::<age::x25519::Identity>().map(Self).map_err(|reason| {
            KeyError::InvalidKey { kind: "age identity", reason: reason.to_owned() }
        })
    }

    /// The secret key as `AGE-SECRET-KEY-1…`; keep it out of logs.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.to_string()
    }

    /// The public recipient (`age1…`) to encrypt to this identity.
    pub fn recipient(&self) -> AgeRecipient {
        AgeRecipient::from_age(self.0.to_public())
    }

    pub(crate) const fn as_age(&self) -> &age::x25519::Identity {
        &self.0
    }

    /// The file contents `age-keygen` would write for this identity.
    pub fn to_file_contents(&self) -> SecretString {
        let text = format!(
            "# created: {}\n# public key: {}\n{}\n",
            rfc3339_now(),
            self.recipient(),
            self.0.to_string().expose_secret()
        );
        SecretString::from(text)
    }

    /// Writes the identity to `path` (0600, atomic, never overwriting).
    ///
    /// # Errors
    /// [`KeyError::AlreadyExists`] or [`KeyError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_secret_file(path, self.to_file_contents().expose_secret().as_bytes())
    }

    /// Reads an identity file written by [`Self::save`] or `age-keygen`.
    ///
    /// # Errors
    /// [`KeyError::NotFound`], [`KeyError::InsecurePermissions`], [`KeyError::Malformed`]
    /// (not exactly one `AGE-SECRET-KEY-1` line, or a bad key), [`KeyError::Io`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_secret_file(path)?;
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_owned(),
            kind: "age identity",
            reason,
        };
        let mut keys = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        let Some(line) = keys.next() else {
            return Err(malformed("no AGE-SECRET-KEY-1… line found".into()));
        };
        if keys.next().is_some() {
            return Err(malformed(
                "more than one key line; ecld expects exactly one identity".into(),
            ));
        }
        if !line.starts_with("AGE-SECRET-KEY-1") {
            return Err(malformed("the key line does not start with AGE-SECRET-KEY-1".into()));
        }
        Self::from_secret_str(line).map_err(|e| match e {
            KeyError::InvalidKey { reason, .. } => malformed(reason),
            other => other,
        })
    }
}

impl fmt::Debug for AgeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentity {{ recipient: {}, secret: <redacted> }}", self.recipient())
    }
}

/// A secp256k1 key that signs proofs and Ethereum transactions.
///
/// `Debug` prints only the address. The scalar is zeroized on drop (k256's `SigningKey`).
#[derive(Clone)]
pub struct SignerKey(PrivateKeySigner);

impl SignerKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(PrivateKeySigner::random())
    }

    /// Parses 32 bytes of hex, with or without `0x`.
    ///
    /// # Errors
    /// [`KeyError::InvalidKey`] when the text is not 64 hex digits or not a valid scalar.
    pub fn from_hex(secret: &str) -> Result<Self, KeyError> {
        let t = secret.trim();
        let digits = t.strip_prefix("0x").unwrap_or(t);
        let invalid = |reason: &str| KeyError::InvalidKey {
            kind: "secp256k1 private key",
            reason: reason.into(),
        };
        if digits.len() != 64 {
            return Err(invalid("expected 64 hex digits (32 bytes), optionally after 0x"));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(digits, bytes.as_mut_slice())
            .map_err(|_| invalid("not hexadecimal"))?;
        PrivateKeySigner::from_bytes(&B256::from(*bytes))
            .map(Self)
            .map_err(|_| invalid("zero or not below the curve order"))
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        self.0.address()
    }

    /// The alloy signer, for signing transactions and hashes.
    pub const fn signer(&self) -> &PrivateKeySigner {
        &self.0
    }

    /// The private key as `0x` + 64 hex digits; keep it out of logs.
    pub fn to_hex_secret(&self) -> SecretString {
        let bytes = Zeroizing::new(self.0.to_bytes().0);
        SecretString::from(format!("0x{}", hex::encode(bytes.as_slice())))
    }

    /// Writes the key to `path` as one hex line (0600, atomic, never overwriting).
    ///
    /// # Errors
    /// [`KeyError::AlreadyExists`] or [`KeyError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut line = Zeroizing::new(self.to_hex_secret().expose_secret().to_owned());
        line.push('\n');
        write_secret_file(path, line.as_bytes())
    }

    /// Reads a key file written by [`Self::save`] (one hex line; `#` comments allowed).
    ///
    /// # Errors
    /// [`KeyError::NotFound`], [`KeyError::InsecurePermissions`], [`KeyError::Malformed`],
    /// [`KeyError::Io`].
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = read_secret_file(path)?;
        let mut lines =
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
        let malformed = |reason: String| KeyError::Malformed {
            path: path.to_owned(),
            kind: "secp256k1 key",
            reason,
        };
        let (Some(line), None) = (lines.next(), lines.next()) else {
            return Err(malformed("expected exactly one line of 0x + 64 hex digits".into()));
        };
        Self::from_hex(line).map_err(|e| match e {
            KeyError::InvalidKey { reason, .. } => malformed(reason),
            other => other,
        })
    }
}

impl FromStr for SignerKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey {{ address: {}, secret: <redacted> }}", self.address())
    }
}

/// Writes `contents` to `path` with mode 0600: a temporary file in the same directory is
/// written and synced, then hard-linked to `path` (which fails if `path` exists, so a key
/// is never clobbered and a reader never sees half a file).
///
/// # Errors
/// [`KeyError::AlreadyExists`] or [`KeyError::Io`].
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), KeyError> {
    let io_err = |source: io::Error| KeyError::Io { path: path.to_owned(), source };
    if path.exists() {
        return Err(KeyError::AlreadyExists { path: path.to_owned() });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp =
        dir.join(format!(".{file_name}.tmp-{}-{}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut file = open_private(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            if let Ok(d) = File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(KeyError::AlreadyExists { path: path.to_owned() })
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Reads a secret file after checking that only its owner can access it.
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let io_err = |source: io::Error| KeyError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            KeyError::NotFound { path: path.to_owned() }
        } else {
            io_err(e)
        }
    })?;
    let meta = file.metadata().map_err(io_err)?;
    check_permissions(path, &meta)?;
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyError::Malformed {
            path: path.to_owned(),
            kind: "key",
            reason: format!("{} bytes is far too large for a key file", meta.len()),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0)));
    file.take(MAX_KEY_FILE).read_to_end(&mut bytes).map_err(io_err)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(KeyError::Malformed {
            path: path.to_owned(),
            kind: "key",
            reason: "the file is not UTF-8 text".into(),
        }),
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions { path: path.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (what `age-keygen` writes).
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
