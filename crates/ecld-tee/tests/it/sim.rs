use ecld_tee::{
    Evidence, EvidenceProvider, HexBytes, Platform, Policy, ReportData, SimPlatform,
    SimPlatformKey, TeeError,
};

const MODULE: &[u8] = b"\0asm\x01\0\0\0 a tiny module";

fn setup() -> (SimPlatform, Policy, ReportData) {
    let key = SimPlatformKey::generate();
    let platform = SimPlatform::new(key.clone(), MODULE);
    let policy = Policy::danger_sim(platform.measurement(), vec![key.public_key()]);
    let rd = ReportData::for_attestation("stats@1", &"ab".repeat(32), "age1example");
    (platform, policy, rd)
}

#[test]
fn sim_evidence_verifies_and_says_it_is_insecure() {
    let (platform, policy, rd) = setup();
    let ev = platform.evidence(&rd).unwrap();
    let verified = ev.verify(&policy, &rd, 0).unwrap();
    assert_eq!(verified.platform, Platform::Sim);
    assert!(verified.is_insecure());
    let shown = verified.to_string();
    assert!(shown.contains("sim") && shown.contains("INSECURE"), "{shown}");
    // The JSON form is tagged with the platform name.
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["platform"], "sim");
    let back: Evidence = serde_json::from_value(json).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn sim_refused_without_danger_allow_sim() {
    let (platform, mut policy, rd) = setup();
    let ev = platform.evidence(&rd).unwrap();
    policy.danger_allow_sim = false;
    let err = ev.verify(&policy, &rd, 0).unwrap_err();
    assert!(matches!(err, TeeError::SimNotAllowed), "{err}");
    assert_eq!(err.code(), "sim_not_allowed");
    assert!(err.to_string().contains("danger_allow_sim"), "{err}");
    // The policy itself is refused when it has a sim section without the opt-in.
    assert!(matches!(policy.check(), Err(TeeError::PolicyInvalid(_))));
}

#[test]
fn sim_refused_when_policy_has_no_sim_section() {
    let (platform, mut policy, rd) = setup();
    let ev = platform.evidence(&rd).unwrap();
    policy.sim = None;
    let err = ev.verify(&policy, &rd, 0).unwrap_err();
    assert_eq!(err.code(), "platform_not_allowed", "{err}");
}

#[test]
fn tampered_sim_evidence_refused() {
    let (platform, policy, rd) = setup();
    let Evidence::Sim(good) = platform.evidence(&rd).unwrap() else { unreachable!() };

    // Claim another measurement (as if running another program).
    let mut ev = good.clone();
    ev.measurement.0[0] ^= 1;
    let err = Evidence::Sim(ev).verify(&policy, &rd, 0).unwrap_err();
    assert!(matches!(err, TeeError::BadSignature { platform: Platform::Sim }), "{err}");

    // Bind other report data.
    let mut ev = good.clone();
    ev.report_data.0[63] ^= 1;
    let err = Evidence::Sim(ev).verify(&policy, &rd, 0).unwrap_err();
    assert_eq!(err.code(), "evidence_signature_invalid");

    // Flip a signature bit.
    let mut ev = good;
    ev.signature.0[10] ^= 0x40;
    let err = Evidence::Sim(ev).verify(&policy, &rd, 0).unwrap_err();
    assert_eq!(err.code(), "evidence_signature_invalid");
}

#[test]
fn sim_signed_by_unlisted_key_refused() {
    let (_, policy, rd) = setup();
    let stranger = SimPlatform::new(SimPlatformKey::generate(), MODULE);
    let err = stranger.evidence(&rd).unwrap().verify(&policy, &rd, 0).unwrap_err();
    assert!(matches!(err, TeeError::UntrustedSimKey { .. }), "{err}");
}

#[test]
fn sim_wrong_measurement_refused() {
    let (platform, mut policy, rd) = setup();
    policy.sim.as_mut().unwrap().measurement = HexBytes(ecld_tee::sim::measure(b"other"));
    let err = platform.evidence(&rd).unwrap().verify(&policy, &rd, 0).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementMismatch { platform: Platform::Sim, .. }), "{err}");
}

#[test]
fn sim_evidence_for_other_report_data_refused() {
    let (platform, policy, rd) = setup();
    let other = ReportData::for_attestation("stats@1", &"cd".repeat(32), "age1example");
    let err = platform.evidence(&other).unwrap().verify(&policy, &rd, 0).unwrap_err();
    assert_eq!(err.code(), "report_data_mismatch", "{err}");
}

#[test]
fn report_data_layout() {
    let rd = ReportData::for_attestation("s", "n", "age1r");
    let mut h = sha2_digest(b"ecld-attest-v1snage1r").to_vec();
    h.extend([0u8; 32]);
    assert_eq!(rd.0.to_vec(), h);
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[test]
fn sim_key_file_round_trips_with_private_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.key");
    let a = SimPlatformKey::load_or_generate(&path).unwrap();
    let b = SimPlatformKey::load_or_generate(&path).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(!format!("{a:?}").contains(secret.trim()), "Debug must not show the secret");
}
