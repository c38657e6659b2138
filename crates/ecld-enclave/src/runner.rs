//! Runner images: images that run the code the user sends inside the encrypted payload.
//!
//! An image declares that it is a runner in its own module bytes, with a WebAssembly custom
//! section named [`RUNNER_SECTION`] (`ecld.runner`). Because the declaration is part of the
//! module, the image's measurement (sha256 of the module) covers it: a node cannot turn a
//! fixed-program image into a runner or back. The section's content names the convention:
//!
//! - `wasm-v1` ([`RunnerKind::Wasm`]): the payload's code is itself a WASI preview 1 command
//!   module. The image module carries nothing else (see [`wasm_runner_image`]); the enclave
//!   validates and compiles the user's module (cached by code hash, [`ModuleCache`]) and runs
//!   it exactly like an image program, with stdin = the payload's input.
//! - `stdin-v1` ([`RunnerKind::Stdin`]): the image module is an interpreter (for example the
//!   Python runner). It is run with stdin = [`stdin_frame`]`(code, input)`: the magic
//!   `ecldrun1`, the code length as u32 big-endian, the code, then the input. It reports code
//!   that does not compile or parse by exiting with [`CODE_INVALID_EXIT`] (125).
//!
//! A module without the section runs its own program and refuses code (status 5).

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use alloy_primitives::B256;

/// Name of the custom section by which a module declares that it is a runner image.
pub const RUNNER_SECTION: &str = "ecld.runner";

/// Exit code by which a `stdin-v1` runner says the user's code does not compile or parse
/// (status 5, CODE_INVALID).
pub const CODE_INVALID_EXIT: i32 = 125;

/// First bytes of the stdin a `stdin-v1` runner receives.
pub const STDIN_MAGIC: &[u8; 8] = b"ecldrun1";

/// How many compiled user modules a `wasm-v1` runner keeps.
pub const MODULE_CACHE_ENTRIES: usize = 16;

/// The conventions a runner image can declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// `wasm-v1`: the code is a WASI preview 1 command module.
    Wasm,
    /// `stdin-v1`: the image is an interpreter that reads the code from a stdin frame.
    Stdin,
}

/// A module whose runner declaration cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The bytes are not a WebAssembly binary module, or a section runs past the end.
    #[error("the module is not a well-formed WebAssembly binary: {0}")]
    Malformed(&'static str),
    /// The `ecld.runner` section names a convention this enclave does not know.
    #[error(
        "the module declares an unknown runner convention {0:?} in its `ecld.runner` section; this enclave knows \"wasm-v1\" and \"stdin-v1\""
    )]
    Unknown(String),
    /// The module declares more than one convention.
    #[error("the module has more than one `ecld.runner` section; keep exactly one")]
    Duplicate,
}

impl RunnerKind {
    /// The content of the `ecld.runner` section for this kind.
    pub fn section_value(self) -> &'static str {
        match self {
            Self::Wasm => "wasm-v1",
            Self::Stdin => "stdin-v1",
        }
    }

    /// The kind `module` declares, or `None` for a module that runs its own program.
    ///
    /// # Errors
    /// A module that is not a WebAssembly binary, or declares an unknown or a second kind.
    pub fn declared_by(module: &[u8]) -> Result<Option<Self>, RunnerError> {
        let mut found = None;
        for (name, content) in custom_sections(module)? {
            if name != RUNNER_SECTION.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(RunnerError::Duplicate);
            }
            found = Some(match content {
                b"wasm-v1" => Self::Wasm,
                b"stdin-v1" => Self::Stdin,
                other => return Err(RunnerError::Unknown(String::from_utf8_lossy(other).into())),
            });
        }
        Ok(found)
    }
}

/// The generic WebAssembly runner image: an empty module whose only content is the
/// `ecld.runner = wasm-v1` declaration. Its sha256 is the image measurement.
pub fn wasm_runner_image() -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    append_custom_section(&mut module, RUNNER_SECTION, RunnerKind::Wasm.section_value().as_bytes());
    module
}

/// Appends a custom section `name` with `content` to a WebAssembly binary.
pub fn append_custom_section(module: &mut Vec<u8>, name: &str, content: &[u8]) {
    let mut body = leb128(name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(content);
    module.push(0);
    module.extend(leb128(body.len()));
    module.extend(body);
}

/// The stdin of a `stdin-v1` runner: `ecldrun1 ‖ u32be(code.len()) ‖ code ‖ input`.
///
/// # Panics
/// Never for code that fits in a frame (code longer than 4 GiB cannot arrive).
pub fn stdin_frame(code: &[u8], input: &[u8]) -> Vec<u8> {
    let len = u32::try_from(code.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(12 + code.len() + input.len());
    out.extend_from_slice(STDIN_MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(code);
    out.extend_from_slice(input);
    out
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(bytes: &[u8], pos: &mut usize) -> Result<usize, RunnerError> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(RunnerError::Malformed("truncated length"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| RunnerError::Malformed("length too large"));
        }
    }
    Err(RunnerError::Malformed("length longer than 5 bytes"))
}

/// A custom section: (name, content).
type CustomSection<'a> = (&'a [u8], &'a [u8]);

/// The custom sections of a WebAssembly binary.
fn custom_sections(module: &[u8]) -> Result<Vec<CustomSection<'_>>, RunnerError> {
    if module.len() < 8 || &module[..4] != b"\0asm" {
        return Err(RunnerError::Malformed("no `\\0asm` header"));
    }
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < module.len() {
        let id = module[pos];
        pos += 1;
        let size = read_leb128(module, &mut pos)?;
        let end = pos.checked_add(size).filter(|&e| e <= module.len());
        let end = end.ok_or(RunnerError::Malformed("a section runs past the end"))?;
        if id == 0 {
            let mut p = pos;
            let name_len = read_leb128(&module[..end], &mut p)?;
            let name_end = p
                .checked_add(name_len)
                .filter(|&e| e <= end)
                .ok_or(RunnerError::Malformed("a custom section name runs past its section"))?;
            out.push((&module[p..name_end], &module[name_end..end]));
        }
        pos = end;
    }
    Ok(out)
}

/// A bounded least-recently-used map from code hash to a compiled user module.
#[derive(Debug)]
pub struct ModuleCache<T> {
    capacity: NonZeroUsize,
    entries: Mutex<Vec<(B256, T)>>,
    hits: AtomicU64,
}

impl<T: Clone> ModuleCache<T> {
    /// A cache of at most `capacity` modules.
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self { capacity, entries: Mutex::new(Vec::new()), hits: AtomicU64::new(0) }
    }

    /// The module for `hash`, marked most recently used.
    pub fn get(&self, hash: &B256) -> Option<T> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = entries.iter().position(|(h, _)| h == hash)?;
        let entry = entries.remove(i);
        let value = entry.1.clone();
        entries.push(entry);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// How many lookups found their module (each one a compilation saved).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Stores `value` for `hash`, evicting the least recently used entry when full.
    pub fn insert(&self, hash: B256, value: T) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|(h, _)| *h != hash);
        if entries.len() >= self.capacity.get() {
            entries.remove(0);
        }
        entries.push((hash, value));
    }

    /// How many modules are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_runner_image_declares_wasm() {
        let image = wasm_runner_image();
        assert_eq!(RunnerKind::declared_by(&image).unwrap(), Some(RunnerKind::Wasm));
        // The committed image file is exactly this module (its sha256 is the measurement
        // recorded in docs/runners.md).
        let committed = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../programs/wasm-runner/wasm-runner.wasm"
        ))
        .unwrap();
        assert_eq!(committed, image);
    }

    #[test]
    fn plain_module_is_not_a_runner() {
        assert_eq!(RunnerKind::declared_by(b"\0asm\x01\0\0\0").unwrap(), None);
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        append_custom_section(&mut m, "name", b"x");
        assert_eq!(RunnerKind::declared_by(&m).unwrap(), None);
    }

    #[test]
    fn stdin_kind_unknown_and_duplicates() {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        append_custom_section(&mut m, RUNNER_SECTION, b"stdin-v1");
        assert_eq!(RunnerKind::declared_by(&m).unwrap(), Some(RunnerKind::Stdin));
        append_custom_section(&mut m, RUNNER_SECTION, b"stdin-v1");
        assert!(matches!(RunnerKind::declared_by(&m), Err(RunnerError::Duplicate)));
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        append_custom_section(&mut m, RUNNER_SECTION, b"lisp-v9");
        assert!(matches!(RunnerKind::declared_by(&m), Err(RunnerError::Unknown(_))));
    }

    #[test]
    fn malformed_modules_are_refused() {
        assert!(RunnerKind::declared_by(b"").is_err());
        assert!(RunnerKind::declared_by(b"ELF\x7f\0\0\0\0").is_err());
        // Section claims 100 bytes, has 1.
        assert!(RunnerKind::declared_by(b"\0asm\x01\0\0\0\0\x64\x01").is_err());
        // Custom section whose name runs past the section.
        assert!(RunnerKind::declared_by(b"\0asm\x01\0\0\0\0\x02\x09a").is_err());
    }

    #[test]
    fn leb128_round_trips_across_byte_boundaries() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 21, u32::MAX as usize] {
            let bytes = leb128(n);
            let mut pos = 0;
            assert_eq!(read_leb128(&bytes, &mut pos).unwrap(), n);
            assert_eq!(pos, bytes.len());
        }
    }

    #[test]
    fn stdin_frame_layout() {
        let f = stdin_frame(b"print(1)", b"in");
        assert_eq!(&f[..8], b"ecldrun1");
        assert_eq!(&f[8..12], &8u32.to_be_bytes());
        assert_eq!(&f[12..20], b"print(1)");
        assert_eq!(&f[20..], b"in");
    }

    #[test]
    fn module_cache_evicts_least_recently_used() {
        let cache = ModuleCache::new(NonZeroUsize::new(2).unwrap());
        let (a, b, c) = (B256::repeat_byte(1), B256::repeat_byte(2), B256::repeat_byte(3));
        cache.insert(a, 1);
        cache.insert(b, 2);
        assert_eq!(cache.get(&a), Some(1)); // a is now the most recent
        cache.insert(c, 3); // evicts b
        assert_eq!(cache.get(&b), None);
        assert_eq!(cache.get(&a), Some(1));
        assert_eq!(cache.get(&c), Some(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.hits(), 3, "three lookups found their module, one did not");
    }
}
