//! `ecld keys`, `encrypt`, `decrypt`, `payload` and `proof`, run as the user would.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

fn ecld(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecld")).args(args).output().expect("ecld runs")
}

fn ok(args: &[&str]) -> Output {
    let out = ecld(args);
    assert!(out.status.success(), "ecld {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&ok(&all).stdout).expect("stdout is JSON")
}

fn fails(args: &[&str]) -> String {
    let out = ecld(args);
    assert!(!out.status.success(), "ecld {args:?} should fail");
    assert!(out.stdout.is_empty(), "errors go to stderr, not stdout");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn keys_new_encrypt_decrypt_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let made = json(&["keys", "new", "--out", p(&keys)]);
    let recipient = made["recipient"].as_str().unwrap().to_owned();
    assert!(recipient.starts_with("age1"));
    assert!(made["address"].as_str().unwrap().starts_with("0x"));
    let shown = json(&["keys", "show", "--dir", p(&keys)]);
    assert_eq!(shown["recipient"], made["recipient"]);
    assert_eq!(shown["address"], made["address"]);

    let plain = dir.path().join("plain.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&plain, &data).unwrap();
    let identity = keys.join("identity.txt");
    for armor in [false, true] {
        let sealed = dir.path().join(format!("sealed-{armor}.age"));
        let mut args = vec!["encrypt", "--to", &recipient, p(&plain), "-o", p(&sealed)];
        if armor {
            args.push("--armor");
        }
        ok(&args);
        let head = std::fs::read(&sealed).unwrap();
        assert_eq!(head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"), armor);
        let opened = dir.path().join(format!("opened-{armor}.bin"));
        ok(&["decrypt", "-i", p(&identity), p(&sealed), "-o", p(&opened)]);
        assert_eq!(std::fs::read(&opened).unwrap(), data);
    }

    // Standard input to standard output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecld"))
        .args(["encrypt", "--armor", "--to", &recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped secret").unwrap();
    let sealed = child.wait_with_output().unwrap();
    assert!(sealed.status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecld"))
        .args(["decrypt", "-i", p(&identity)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&sealed.stdout).unwrap();
    let opened = child.wait_with_output().unwrap();
    assert!(opened.status.success());
    assert_eq!(opened.stdout, b"piped secret");
}

#[test]
fn keys_are_never_overwritten_and_bad_keys_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    ok(&["keys", "new", "--out", p(&keys)]);
    let err = fails(&["keys", "new", "--out", p(&keys)]);
    assert!(err.contains("already exists") && err.contains("never overwritten"), "{err}");

    let identity = keys.join("identity.txt");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&identity, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = fails(&["keys", "show", "--dir", p(&keys)]);
    assert!(err.contains("chmod 600"), "{err}");

    let missing = fails(&["keys", "show", "--dir", p(&dir.path().join("nowhere"))]);
    assert!(missing.contains("ecld keys new"), "{missing}");
}

#[test]
fn decrypt_failures_say_what_is_wrong_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let other = dir.path().join("other");
    let made = json(&["keys", "new", "--out", p(&keys)]);
    ok(&["keys", "new", "--out", p(&other)]);
    let recipient = made["recipient"].as_str().unwrap();

    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, vec![b'x'; 100_000]).unwrap();
    let sealed = dir.path().join("sealed.age");
    ok(&["encrypt", "-r", recipient, p(&plain), "-o", p(&sealed)]);
    let out = dir.path().join("out.txt");

    let err = fails(&["decrypt", "-i", p(&other.join("identity.txt")), p(&sealed), "-o", p(&out)]);
    assert!(err.contains("not encrypted to your identity"), "{err}");
    assert!(!out.exists());

    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = bytes.len() - 10;
    bytes[last] ^= 1;
    std::fs::write(&sealed, &bytes).unwrap();
    let err = fails(&["decrypt", "-i", p(&keys.join("identity.txt")), p(&sealed), "-o", p(&out)]);
    assert!(err.contains("modified"), "{err}");
    assert!(!out.exists(), "a failed decryption must not leave an output file");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 4, "no partial files: {leftovers:?}");

    let err = fails(&["decrypt", "-i", p(&keys.join("identity.txt")), p(&plain)]);
    assert!(err.contains("not an age file"), "{err}");

    let err = fails(&["encrypt", "--to", "age1bogus", p(&plain), "-o", p(&out)]);
    assert!(err.contains("age1bogus") && err.contains("ecld keys show"), "{err}");
}

#[test]
fn payload_build_encrypt_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user");
    let image = dir.path().join("image");
    let u = json(&["keys", "new", "--out", p(&user)]);
    let i = json(&["keys", "new", "--out", p(&image)]);
    let input = dir.path().join("input.txt");
    let code = dir.path().join("code.py");
    std::fs::write(&input, b"1 2 3").unwrap();
    std::fs::write(&code, b"print(sum(map(int, input().split())))").unwrap();
    let requester = u["address"].as_str().unwrap();

    let plain = dir.path().join("payload.bin");
    let built = json(&[
        "payload",
        "build",
        "--input",
        p(&input),
        "--code",
        p(&code),
        "--identity",
        p(&user.join("identity.txt")),
        "--requester",
        requester,
        "-o",
        p(&plain),
    ]);
    assert_eq!(built["recipient"], u["recipient"]);
    assert_eq!(built["inputLen"], 5);
    let shown = json(&["payload", "inspect", p(&plain)]);
    assert_eq!(shown, built);
    assert_eq!(&std::fs::read(&plain).unwrap()[..4], b"ECLP");

    let sealed = dir.path().join("payload.age");
    ok(&[
        "payload",
        "build",
        "--input",
        p(&input),
        "--recipient",
        u["recipient"].as_str().unwrap(),
        "--requester",
        requester,
        "--encrypt-to",
        i["recipient"].as_str().unwrap(),
        "-o",
        p(&sealed),
    ]);
    let err = fails(&["payload", "inspect", p(&sealed)]);
    assert!(err.contains("--identity"), "{err}");
    let shown = json(&["payload", "inspect", p(&sealed), "-i", p(&image.join("identity.txt"))]);
    assert_eq!(shown["codeLen"], Value::Null);
    assert_eq!(shown["codeHash"], format!("0x{}", "00".repeat(32)));

    let mut bytes = std::fs::read(&plain).unwrap();
    bytes.push(0);
    std::fs::write(&plain, &bytes).unwrap();
    let err = fails(&["payload", "inspect", p(&plain)]);
    assert!(err.contains("1 unexpected bytes after the input"), "{err}");
}

#[test]
fn proof_sign_verify_and_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let k = json(&["keys", "new", "--out", p(&keys)]);
    let signer = k["address"].as_str().unwrap();
    let key = keys.join("eth.key");
    let proof = dir.path().join("proof.json");
    std::fs::write(
        &proof,
        serde_json::json!({
            "taskId": 7, "imageId": format!("0x{}", "11".repeat(32)),
            "inputHash": format!("0x{}", "22".repeat(32)),
            "inputCidHash": format!("0x{}", "44".repeat(32)),
            "memoryMb": 256, "maxRuntimeS": 60, "deadline": 1_900_000_000u64,
            "codeHash": format!("0x{}", "00".repeat(32)),
            "resultHash": format!("0x{}", "33".repeat(32)),
            "resultCidHash": format!("0x{}", "55".repeat(32)), "status": 0, "runtimeMs": 42
        })
        .to_string(),
    )
    .unwrap();
    let contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    let signed = ok(&[
        "proof",
        "sign",
        "--key",
        p(&key),
        "--chain-id",
        "31337",
        "--contract",
        contract,
        p(&proof),
    ]);
    let signed_path = dir.path().join("signed.json");
    std::fs::write(&signed_path, &signed.stdout).unwrap();
    let doc: Value = serde_json::from_slice(&signed.stdout).unwrap();
    assert_eq!(doc["signer"].as_str().unwrap().to_lowercase(), signer.to_lowercase());
    assert_eq!(doc["signature"].as_str().unwrap().len(), 132);

    let v = json(&[
        "proof",
        "verify",
        "--signer",
        signer,
        "--chain-id",
        "31337",
        "--contract",
        contract,
        p(&signed_path),
    ]);
    assert_eq!(v["valid"], true);
    assert_eq!(v["statusName"], "SUCCESS");

    // The bare proof with --signature works too.
    ok(&[
        "proof",
        "verify",
        "--signer",
        signer,
        "--chain-id",
        "31337",
        "--contract",
        contract,
        "--signature",
        doc["signature"].as_str().unwrap(),
        p(&proof),
    ]);

    // Another chain: the signature no longer recovers to the signer.
    let err = fails(&[
        "proof",
        "verify",
        "--signer",
        signer,
        "--chain-id",
        "1",
        "--contract",
        contract,
        p(&signed_path),
    ]);
    assert!(err.contains("not by the expected signer"), "{err}");

    // A changed field.
    let mut tampered = doc.clone();
    tampered["proof"]["status"] = 16.into();
    std::fs::write(&signed_path, tampered.to_string()).unwrap();
    let err = fails(&[
        "proof",
        "verify",
        "--signer",
        signer,
        "--chain-id",
        "31337",
        "--contract",
        contract,
        p(&signed_path),
    ]);
    assert!(err.contains("not by the expected signer"), "{err}");

    // A bad v.
    let mut bad_v = doc;
    let sig = bad_v["signature"].as_str().unwrap();
    bad_v["signature"] = format!("{}00", &sig[..130]).into();
    std::fs::write(&signed_path, bad_v.to_string()).unwrap();
    let err = fails(&[
        "proof",
        "verify",
        "--signer",
        signer,
        "--chain-id",
        "31337",
        "--contract",
        contract,
        p(&signed_path),
    ]);
    assert!(err.contains("v = 0"), "{err}");

    // Undefined status codes are refused when reading the proof.
    std::fs::write(
        &proof,
        std::fs::read_to_string(&proof).unwrap().replace("\"status\":0", "\"status\":9"),
    )
    .unwrap();
    let err = fails(&[
        "proof",
        "sign",
        "--key",
        p(&key),
        "--chain-id",
        "31337",
        "--contract",
        contract,
        p(&proof),
    ]);
    assert!(err.contains("status"), "{err}");
}

#[test]
fn help_teaches_with_examples() {
    for cmd in [&["--help"][..], &["encrypt", "--help"], &["keys", "--help"], &["proof", "--help"]]
    {
        let out = ok(cmd);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Examples:"), "{cmd:?}: {text}");
    }
}
