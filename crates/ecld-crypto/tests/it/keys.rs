use std::os::unix::fs::PermissionsExt;

use ecld_crypto::{AgeIdentity, KeyError, SignerKey};
use secrecy::ExposeSecret;

#[test]
fn age_identity_file_round_trips_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.txt");
    let id = AgeIdentity::generate();
    id.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# created: "), "{text}");
    assert!(text.contains(&format!("# public key: {}\n", id.recipient())));
    let loaded = AgeIdentity::load(&path).unwrap();
    assert_eq!(loaded.recipient(), id.recipient());
    // No temporary files are left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn signer_key_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signer.key");
    let key = SignerKey::generate();
    key.save(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 66);
    assert_eq!(SignerKey::load(&path).unwrap().address(), key.address());
}

#[test]
fn saving_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    SignerKey::generate().save(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = SignerKey::generate().save(&path).unwrap_err();
    assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.txt");
    AgeIdentity::generate().save(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = AgeIdentity::load(&path).unwrap_err();
    assert!(matches!(err, KeyError::InsecurePermissions { mode: 0o644, .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn garbage_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage");
    ecld_crypto::keys::write_secret_file(&path, b"AGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    assert!(matches!(AgeIdentity::load(&path).unwrap_err(), KeyError::Malformed { .. }));
    assert!(matches!(SignerKey::load(&path).unwrap_err(), KeyError::Malformed { .. }));

    let binary = dir.path().join("binary");
    ecld_crypto::keys::write_secret_file(&binary, &[0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(AgeIdentity::load(&binary).unwrap_err(), KeyError::Malformed { .. }));

    let two = dir.path().join("two");
    let a = AgeIdentity::generate().to_secret_string();
    let b = AgeIdentity::generate().to_secret_string();
    let text = format!("{}\n{}\n", a.expose_secret(), b.expose_secret());
    ecld_crypto::keys::write_secret_file(&two, text.as_bytes()).unwrap();
    assert!(matches!(AgeIdentity::load(&two).unwrap_err(), KeyError::Malformed { .. }));

    let zero = dir.path().join("zero");
    ecld_crypto::keys::write_secret_file(&zero, format!("0x{}\n", "00".repeat(32)).as_bytes())
        .unwrap();
    assert!(matches!(SignerKey::load(&zero).unwrap_err(), KeyError::Malformed { .. }));

    let missing = dir.path().join("missing");
    assert!(matches!(AgeIdentity::load(&missing).unwrap_err(), KeyError::NotFound { .. }));
}

#[test]
fn debug_redacts_secrets_and_errors_never_echo_them() {
    let id = AgeIdentity::generate();
    let secret = id.to_secret_string().expose_secret().to_owned();
    let debug = format!("{id:?}");
    assert!(!debug.contains(&secret) && !debug.contains("AGE-SECRET-KEY"), "{debug}");
    assert!(debug.contains(&id.recipient().to_string()));

    let key = SignerKey::generate();
    let hex = key.to_hex_secret().expose_secret().to_owned();
    let debug = format!("{key:?}");
    assert!(!debug.contains(&hex[2..]), "{debug}");
    assert!(debug.contains(&key.address().to_string()));

    // A corrupted secret must not be echoed in the error.
    let mut almost = secret;
    almost.pop();
    let err = AgeIdentity::from_secret_str(&almost).unwrap_err().to_string();
    assert!(!err.contains(&almost), "{err}");
    let err = SignerKey::from_hex(&hex[..65]).unwrap_err().to_string();
    assert!(!err.contains(&hex[2..65]), "{err}");
}

#[test]
fn signer_key_parses_with_and_without_prefix() {
    let key = SignerKey::generate();
    let hex = key.to_hex_secret().expose_secret().to_owned();
    assert_eq!(SignerKey::from_hex(&hex).unwrap().address(), key.address());
    assert_eq!(SignerKey::from_hex(&hex[2..]).unwrap().address(), key.address());
    assert!(SignerKey::from_hex("0xzz").is_err());
}
