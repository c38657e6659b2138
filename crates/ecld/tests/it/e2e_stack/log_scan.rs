//! The secret scan every end-to-end stack goes through when it stops: the logs of its services
//! (chain, store, CAS, node and enclaves, plus any process a test started against it and
//! registered with [`include`]) must hold none of the stack's secrets in any form a log line
//! could carry them: as text, as hex (either case), as base64 (standard or URL-safe alphabet,
//! with or without padding, at any byte alignment) or as a Rust `Debug` byte array
//! (`[12, 34, …]`).
//!
//! The secrets are found, not listed by hand: every key and token file `ecld up` wrote (user,
//! publisher and node accounts, the user's age identity, the CAS admin token and master key,
//! the node's sim platform key), each image's age identity and proof signer key as the CAS
//! provisions them (opened with the CAS master key), the second node's key the node tests use,
//! and — read from the chain and the store while the stack still runs — the plaintext input,
//! user code and result of every task the stack's images and the user's identity can decrypt.
//!
//! Each test process scans its own stack (nextest runs every test in a process of its own), so
//! the scan does not depend on the order tests run in.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use ecld_crypto::{AgeIdentity, Payload, envelope};
use ecld_sdk::{Client, ClientConfig, TaskState};
use ecld_store::ContentStore;

use super::files_under;

/// Shorter secrets (a five-byte test input, say) would match log text by chance.
const MIN_SECRET_LEN: usize = 8;
/// How much of a secret's start each encoded form covers: a log line that prints a secret
/// whole, or cut short after this many bytes, is found either way.
const PREFIX: usize = 24;

/// Logs of processes a test started beside its stack (a second node, say), scanned with the
/// stack's own when it stops. Each is held open: the test's temporary directory holding one
/// is often removed before the stack stops, and an open file can still be read.
static EXTRA_LOGS: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Adds `log` (a file a process started by this test writes) to what the stack's scan reads.
pub(crate) fn include(log: &Path) {
    let mut logs = EXTRA_LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !logs.iter().any(|(l, _)| l == log) {
        let file = OpenOptions::new().read(true).append(true).create(true).open(log).unwrap();
        logs.push((log.to_owned(), file));
    }
}

/// What the logs registered with [`include`] hold now, by name.
pub(crate) fn included() -> Vec<(PathBuf, Vec<u8>)> {
    let mut logs = EXTRA_LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    logs.iter_mut()
        .map(|(path, file)| {
            let mut bytes = Vec::new();
            file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_end(&mut bytes)).unwrap();
            (path.clone(), bytes)
        })
        .collect()
}

/// One secret: what it is, how it appears in its file (if it is text there), and its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    pub(crate) what: String,
    pub(crate) text: Option<String>,
    pub(crate) raw: Vec<u8>,
}

impl Secret {
    /// A secret held as bytes (a plaintext input, a result).
    pub(crate) fn bytes(what: impl Into<String>, raw: Vec<u8>) -> Self {
        Self { what: what.into(), text: None, raw }
    }

    /// A secret as a key file holds it: hex (with or without `0x`), an age identity
    /// (`AGE-SECRET-KEY-1…`) or a token. Its bytes are what the text encodes.
    pub(crate) fn text(what: impl Into<String>, text: &str) -> Self {
        let bare = text.strip_prefix("0x").unwrap_or(text);
        let raw = decode_hex(bare)
            .or_else(|| decode_age_identity(text))
            .unwrap_or_else(|| text.as_bytes().to_vec());
        Self { what: what.into(), text: Some(bare.to_owned()), raw }
    }
}

/// Whether `raw` is worth searching for: long enough, and not a run of a few byte values (an
/// input of zeros would match every zero hash a log prints).
fn searchable(raw: &[u8]) -> bool {
    let p = &raw[..raw.len().min(PREFIX)];
    let mut seen = [false; 256];
    p.iter().for_each(|b| seen[usize::from(*b)] = true);
    raw.len() >= MIN_SECRET_LEN && seen.iter().filter(|s| **s).count() >= 4
}

/// The forms each secret is searched for, named for the report (secrets too short or too
/// uniform to search for are left out).
pub(crate) fn needles(secrets: &[Secret]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for s in secrets.iter().filter(|s| searchable(&s.raw)) {
        if let Some(text) = &s.text {
            out.push((format!("{} (as in its file)", s.what), text.as_bytes().to_vec()));
            if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push((format!("{} (upper case)", s.what), text.to_uppercase().into_bytes()));
            }
        }
        let p = &s.raw[..s.raw.len().min(PREFIX)];
        if s.text.is_none() {
            out.push((format!("{} (raw)", s.what), p.to_vec()));
        }
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        out.push((format!("{} (hex)", s.what), hex.clone().into_bytes()));
        out.push((format!("{} (HEX)", s.what), hex.to_uppercase().into_bytes()));
        for (alphabet, name) in [(STANDARD, "base64"), (URL_SAFE, "base64url")] {
            for shift in 0..3 {
                out.push((
                    format!("{} ({name}, offset {shift})", s.what),
                    base64_inner(p, shift, alphabet),
                ));
            }
        }
        // `{:?}` of a byte slice or array: `[12, 34, …]`, also when the secret is part of a
        // longer array (so no leading bracket).
        let debug = format!("{p:?}");
        let debug = debug.trim_start_matches('[').trim_end_matches(']');
        out.push((format!("{} (Debug bytes)", s.what), debug.as_bytes().to_vec()));
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that depend on `bytes` alone when they start `shift` bytes into a
/// longer encoded buffer: whatever bytes surround them, an encoding of that buffer contains
/// these characters (padding or not; it only ever follows them).
fn base64_inner(bytes: &[u8], shift: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut buf = vec![0u8; shift];
    buf.extend_from_slice(bytes);
    let (first_bit, end_bit) = (8 * shift, 8 * (shift + bytes.len()));
    let mut out = Vec::new();
    let mut i = first_bit.div_ceil(6);
    while 6 * i + 6 <= end_bit {
        let bit = 6 * i;
        let word = u16::from_be_bytes([buf[bit / 8], buf.get(bit / 8 + 1).copied().unwrap_or(0)]);
        let sextet = (word >> (10 - bit % 8)) & 0x3f;
        out.push(alphabet[usize::from(sextet)]);
        i += 1;
    }
    out
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() < 2 * MIN_SECRET_LEN || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The 32-byte X25519 scalar of an `AGE-SECRET-KEY-1…` identity (bech32, checksum not checked:
/// the key parsed as an identity where it was loaded).
fn decode_age_identity(text: &str) -> Option<Vec<u8>> {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let data = text.strip_prefix("AGE-SECRET-KEY-1")?.to_ascii_lowercase();
    let values: Vec<u8> = data
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).and_then(|v| u8::try_from(v).ok()))
        .collect::<Option<_>>()?;
    let values = values.get(..values.len().checked_sub(6)?)?; // the checksum
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for v in values {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    (out.len() == 32).then_some(out)
}

/// Every non-comment line of the key and token files under `dirs` (`*.key`, `*.token`,
/// `*age-key`); public `age1…` lines are not secrets.
fn key_files(dirs: &[PathBuf]) -> Vec<Secret> {
    let mut out = Vec::new();
    for file in dirs.iter().flat_map(|d| files_under(d)) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".key") || name.ends_with(".token") || name.ends_with("age-key")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.starts_with("age1") || line.len() < 16 {
                continue;
            }
            out.push(Secret::text(format!("the secret of {}", file.display()), line));
        }
    }
    out
}

/// The image secrets the CAS provisions, opened with the CAS master key from its sealed
/// session files: (session name, the image's age identity, its proof signer key in hex).
pub(crate) fn cas_image_secrets(cas_dir: &Path) -> Vec<(String, String, String)> {
    let Ok(master) = AgeIdentity::load(&cas_dir.join("master.age-key")) else { return Vec::new() };
    let mut out = Vec::new();
    for file in files_under(&cas_dir.join("sessions")) {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let sealed = record["sealed"].as_str().unwrap();
        let bytes = decode_hex(sealed.strip_prefix("0x").unwrap_or(sealed)).unwrap();
        let bundle: serde_json::Value =
            serde_json::from_slice(&envelope::decrypt_bytes(&master, &bytes).unwrap()).unwrap();
        let signer = bundle["signer_key"].as_str().unwrap();
        out.push((
            record["name"].as_str().unwrap().to_owned(),
            bundle["age_identity"].as_str().unwrap().to_owned(),
            signer.strip_prefix("0x").unwrap_or(signer).to_owned(),
        ));
    }
    out
}

/// The secrets a stack keeps on disk: its key and token files, the CAS's, and each image's
/// keys as the CAS provisions them. `info` is what `ecld up --json` printed.
pub(crate) fn stack_secrets(data_dir: &Path, info: &serde_json::Value) -> Vec<Secret> {
    let cas_dir = info["cas_dir"].as_str().map_or_else(|| data_dir.join("cas"), PathBuf::from);
    let node_dir =
        info["node"]["data_dir"].as_str().map_or_else(|| data_dir.join("node"), PathBuf::from);
    let mut out = key_files(&[data_dir.join("keys"), node_dir, cas_dir.clone()]);
    for (name, age, signer) in cas_image_secrets(&cas_dir) {
        out.push(Secret::text(format!("the age identity of image {name}"), &age));
        out.push(Secret::text(format!("the signer key of image {name}"), &signer));
    }
    out.push(Secret::text("the second node's key", crate::node::SECOND_NODE_KEY));
    out
}

/// The whole scan of one stack: its secrets and its tasks' plaintexts are read while it runs,
/// then `stop` stops it (so its logs are complete), then `logs` and the logs registered with
/// [`include`] are scanned for them, with `named` (secrets the test names itself). Panics on a
/// find, on no log bytes, and on fewer than `min_keys` key and token files plus two image keys
/// per image (`info` is what `ecld up --json` printed; the tasks are read through the client
/// configuration it names).
pub(crate) fn check_stack(
    data_dir: &Path,
    info: &serde_json::Value,
    min_keys: usize,
    logs: &[PathBuf],
    named: Vec<Secret>,
    stop: impl FnOnce(),
) {
    let config = info["config"].as_str().map(|c| ClientConfig::load(Path::new(c)));
    let config = match config {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("`ecld up` named no client configuration".to_owned()),
    };
    match scan_stack(data_dir, info, config, min_keys, logs, named, stop) {
        Ok(summary) => eprintln!("{summary}"),
        Err(e) => panic!("{e}"),
    }
}

/// [`check_stack`] with the client configuration to read the tasks through (or why there is
/// none), returning what it would print or panic with.
pub(crate) fn scan_stack(
    data_dir: &Path,
    info: &serde_json::Value,
    config: Result<ClientConfig, String>,
    min_keys: usize,
    logs: &[PathBuf],
    named: Vec<Secret>,
    stop: impl FnOnce(),
) -> Result<String, String> {
    let mut secrets = stack_secrets(data_dir, info);
    let keys = secrets.len();
    let (plaintexts, read, unread) = match config {
        Ok(config) => task_plaintexts(config, &secrets),
        Err(e) => (Vec::new(), TasksRead::default(), Some(e)),
    };
    secrets.extend(plaintexts);
    let named_count = named.len();
    secrets.extend(named);
    // Any age identity, whoever's, printed as age prints it.
    secrets.push(Secret::bytes("an age secret key", b"AGE-SECRET-KEY-1".to_vec()));
    stop();
    let images = info["images"].as_array().map_or(0, Vec::len);
    if keys < min_keys + 2 * images {
        return Err(format!(
            "the secret scan found only {keys} keys for a stack with {images} images"
        ));
    }
    let mut contents: Vec<(PathBuf, Vec<u8>)> =
        logs.iter().map(|l| (l.clone(), std::fs::read(l).unwrap_or_default())).collect();
    contents.extend(included());
    scan(&contents, &secrets).map(|r| {
        format!(
            "secret scan: {} secrets (keys; the inputs of {} and results of {} of {} tasks read \
             back{}; {} named by the test) in {} forms, {} bytes of {} log files: none found",
            r.secrets,
            read.inputs,
            read.results,
            read.tasks,
            unread.map(|e| format!(", the rest not: {e}")).unwrap_or_default(),
            named_count,
            r.needles,
            r.bytes,
            r.files
        )
    })
}

/// How many of the stack's tasks had their plaintexts read.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TasksRead {
    pub(crate) tasks: usize,
    pub(crate) inputs: usize,
    pub(crate) results: usize,
}

/// The plaintexts of the stack's tasks, read while it runs: each task's input and code
/// (decrypted with the image identities in `secrets`) and, for the user's tasks, the result's
/// stdout and stderr. A chain or store that is gone by then yields what was read so far, and
/// why the rest was not.
pub(crate) fn task_plaintexts(
    config: ClientConfig,
    secrets: &[Secret],
) -> (Vec<Secret>, TasksRead, Option<String>) {
    let identities: Vec<AgeIdentity> = secrets
        .iter()
        .filter_map(|s| s.text.as_deref())
        .filter(|t| t.starts_with("AGE-SECRET-KEY-1"))
        .filter_map(|t| AgeIdentity::from_secret_str(t).ok())
        .collect();
    // A runtime of its own on a thread of its own: the stack may stop inside a test's runtime.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (mut out, mut counts) = (Vec::new(), TasksRead::default());
        let read = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(120),
                read_plaintexts(&config, &identities, &mut out, &mut counts),
            )
            .await
            .unwrap_or_else(|_| Err("reading them took over 120 s".to_owned()))
        });
        (out, counts, read.err())
    })
    .join()
    .unwrap()
}

async fn read_plaintexts(
    config: &ClientConfig,
    identities: &[AgeIdentity],
    out: &mut Vec<Secret>,
    counts: &mut TasksRead,
) -> Result<(), String> {
    let c = Client::connect(config).await.map_err(|e| e.to_string())?;
    let me = c.account();
    for task in c.tasks(false).await.map_err(|e| e.to_string())? {
        let id = task.id;
        counts.tasks += 1;
        let Ok(cid) = ecld_store::parse_cid(&task.input_cid) else { continue };
        let mut ciphertext = Vec::new();
        let options = ecld_store::CatOptions { progress: None, max_bytes: Some(64 << 20) };
        if c.store().cat(&cid, &mut ciphertext, options).await.is_ok() {
            let payload = identities
                .iter()
                .find_map(|i| envelope::decrypt_bytes(i, &ciphertext).ok())
                .and_then(|p| Payload::decode(&p).ok());
            if let Some(p) = payload {
                counts.inputs += 1;
                out.push(Secret::bytes(format!("the input of task {id}"), p.input));
                if let Some(code) = p.code {
                    out.push(Secret::bytes(format!("the code of task {id}"), code));
                }
            }
        }
        if matches!(task.state, TaskState::Done { .. })
            && Some(task.requester) == me
            && let Ok(fetched) = c.fetch(id).await
            && let Some(output) = fetched.output
        {
            counts.results += 1;
            out.push(Secret::bytes(format!("the result of task {id}"), output.stdout));
            out.push(Secret::bytes(format!("the result stderr of task {id}"), output.stderr));
        }
    }
    Ok(())
}

/// The names of the `needles` (each at least 4 bytes) that occur in `haystack`, found in one
/// pass: a stack's log at trace level runs to hundreds of MB, and searching it once per
/// needle would take minutes. Positions whose next 4 bytes hash into a filter built from the
/// needles' first 4 bytes are compared with every needle.
pub(crate) fn found_in<'a>(haystack: &[u8], needles: &'a [(String, Vec<u8>)]) -> Vec<&'a str> {
    let key = |b: &[u8]| {
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]).wrapping_mul(0x9E37_79B1) >> 8) as usize
    };
    let mut filter = vec![false; 1 << 24];
    for (what, n) in needles {
        assert!(n.len() >= 4, "{what} is too short to search for");
        filter[key(n)] = true;
    }
    let mut found = vec![false; needles.len()];
    for i in 0..haystack.len().saturating_sub(3) {
        if filter[key(&haystack[i..])] {
            for (hit, (_, n)) in found.iter_mut().zip(needles) {
                *hit |= haystack[i..].starts_with(n);
            }
        }
    }
    needles.iter().zip(found).filter(|(_, f)| *f).map(|((what, _), _)| what.as_str()).collect()
}

/// Scans `logs` (name, contents) for `secrets`. Fails when a secret is found, and when there
/// was nothing to scan: no log bytes, or no secrets.
pub(crate) fn scan(logs: &[(PathBuf, Vec<u8>)], secrets: &[Secret]) -> Result<ScanReport, String> {
    let secrets: Vec<Secret> = secrets.iter().filter(|s| searchable(&s.raw)).cloned().collect();
    if secrets.is_empty() {
        return Err("the secret scan found no secrets to look for".to_owned());
    }
    let needles = needles(&secrets);
    let mut report =
        ScanReport { secrets: secrets.len(), needles: needles.len(), ..Default::default() };
    let mut found = Vec::new();
    for (log, bytes) in logs {
        report.files += 1;
        report.bytes += bytes.len();
        found.extend(
            found_in(bytes, &needles).into_iter().map(|w| format!("{w} in {}", log.display())),
        );
    }
    if report.bytes == 0 {
        let names: Vec<_> = logs.iter().map(|(name, _)| name).collect();
        return Err(format!("the secret scan read no log bytes (files: {names:?})"));
    }
    if found.is_empty() {
        Ok(report)
    } else {
        Err(format!("secrets found in the logs: {found:#?}"))
    }
}

/// What a scan covered.
#[derive(Debug, Default)]
pub(crate) struct ScanReport {
    pub(crate) secrets: usize,
    pub(crate) needles: usize,
    pub(crate) files: usize,
    pub(crate) bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form a secret can take in a log is found; an unrelated log is clean.
    #[test]
    fn each_encoding_of_a_secret_is_found_and_nothing_else() {
        let key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
        let s = Secret::text("a key", key);
        let raw = s.raw.clone();
        assert_eq!(raw.len(), 32);
        let n = needles(std::slice::from_ref(&s));
        let b64 = |bytes: &[u8], alphabet: &[u8; 64], pad: bool| {
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let w = u32::from_be_bytes([0, b[0], b[1], b[2]]);
                for i in 0..=chunk.len() {
                    out.push(char::from(alphabet[((w >> (18 - 6 * i)) & 0x3f) as usize]));
                }
                if pad {
                    out.push_str(&"=".repeat(3 - chunk.len()));
                }
            }
            out
        };
        let logs = [
            format!("loaded key {key}"),
            format!("KEY={}", key[2..].to_uppercase()),
            format!("key: {}", b64(&raw, STANDARD, true)),
            format!("key: {}", b64(&raw, URL_SAFE, false)),
            format!("body: {}", b64(&[&b"x"[..], &raw].concat(), STANDARD, true)),
            format!("body: {}", b64(&[&b"xy"[..], &raw, b"z"].concat(), URL_SAFE, false)),
            format!("key: {raw:?}"),
            format!("frame: {:?}", [&[1u8, 2, 3][..], &raw].concat()),
        ];
        for log in &logs {
            assert!(!found_in(log.as_bytes(), &n).is_empty(), "not found in {log}");
        }
        assert!(found_in(b"nothing to see here, 0x00112233 [1, 2, 3]", &n).is_empty());
        let age = "AGE-SECRET-KEY-1XTLDQYPQD0XLSG5QDWGLKMEK4QZ4LPF23WG7S67F46LX7EXN0RMQV5GDPQ";
        assert_eq!(Secret::text("an identity", age).raw.len(), 32);
    }

    /// A scan with nothing to read, or nothing to look for, fails rather than passing clean.
    #[test]
    fn a_scan_of_no_log_bytes_or_no_secrets_fails() {
        let empty = (PathBuf::from("empty.log"), Vec::new());
        let log = (PathBuf::from("stack.log"), b"INFO ecld_node: task 1 settled\n".to_vec());
        let secrets = [Secret::bytes("an input", b"confidential input bytes".to_vec())];
        let err = scan(std::slice::from_ref(&empty), &secrets).unwrap_err();
        assert!(err.contains("read no log bytes"), "{err}");
        let err = scan(std::slice::from_ref(&log), &[]).unwrap_err();
        assert!(err.contains("no secrets"), "{err}");
        let err = scan(std::slice::from_ref(&log), &[Secret::bytes("zeros", vec![0; 32])]);
        assert!(err.unwrap_err().contains("no secrets"));
        let report = scan(&[empty, log.clone()], &secrets).unwrap();
        assert_eq!((report.secrets, report.files), (1, 2));
        let leaked = (log.0, [&log.1[..], b"input: confidential input bytes\n"].concat());
        let err = scan(&[leaked], &secrets).unwrap_err();
        assert!(err.contains("an input (raw) in stack.log"), "{err}");
    }
}
