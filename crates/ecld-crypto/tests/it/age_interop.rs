//! Interoperability with Debian's `age` and `age-keygen` (installed by `scripts/setup`).

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use ecld_crypto::{
    AgeIdentity, AgeRecipient,
    envelope::{decrypt_bytes, encrypt_bytes},
};

fn require_age() {
    for tool in ["age", "age-keygen"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        assert!(found, "`{tool}` is not installed; run scripts/setup (it installs Debian's age)");
    }
}

fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

#[test]
fn ecld_encrypted_files_decrypt_with_age() {
    require_age();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("identity.txt");
    let id = AgeIdentity::generate();
    id.save(&key).unwrap();
    for (len, armor) in [(0, false), (100, true), (200_000, false), (200_000, true)] {
        let data = sample(len);
        let sealed = encrypt_bytes(&[id.recipient()], armor, &data).unwrap();
        let plain = run_with_stdin(Command::new("age").arg("-d").arg("-i").arg(&key), &sealed);
        assert_eq!(plain, data, "len {len} armor {armor}");
    }
}

#[test]
fn age_encrypted_files_decrypt_with_ecld() {
    require_age();
    let id = AgeIdentity::generate();
    let recipient = id.recipient().to_string();
    for (len, armor) in [(0, false), (1, true), (200_000, false), (200_000, true)] {
        let data = sample(len);
        let mut cmd = Command::new("age");
        cmd.arg("-r").arg(&recipient);
        if armor {
            cmd.arg("-a");
        }
        let sealed = run_with_stdin(&mut cmd, &data);
        assert_eq!(sealed.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"), armor);
        assert_eq!(decrypt_bytes(&id, &sealed).unwrap(), data, "len {len} armor {armor}");
    }
}

#[test]
fn age_keygen_identity_files_load_and_ecld_identity_files_satisfy_age_keygen() {
    require_age();
    let dir = tempfile::tempdir().unwrap();

    // age-keygen → ecld.
    let theirs = dir.path().join("theirs.txt");
    let status = Command::new("age-keygen").arg("-o").arg(&theirs).output().unwrap();
    assert!(status.status.success());
    restrict(&theirs);
    let id = AgeIdentity::load(&theirs).unwrap();
    let their_public = public_key_of(&theirs);
    assert_eq!(id.recipient().to_string(), their_public);
    assert_eq!(their_public.parse::<AgeRecipient>().unwrap(), id.recipient());

    // ecld → age-keygen -y.
    let ours = dir.path().join("ours.txt");
    let mine = AgeIdentity::generate();
    mine.save(&ours).unwrap();
    assert_eq!(public_key_of(&ours), mine.recipient().to_string());
}

fn public_key_of(identity_file: &Path) -> String {
    let out = Command::new("age-keygen").arg("-y").arg(identity_file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
