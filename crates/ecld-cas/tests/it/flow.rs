use ecld_cas::{
    CasClient, CasError,
    api::{AttestRequest, SessionInfo},
    client::open_response,
};
use ecld_crypto::AgeIdentity;
use ecld_tee::{Evidence, EvidenceProvider, HexBytes, Platform, ReportData, SimPlatform, TeeError};

use crate::{MODULE, admin, sim_setup, start};

/// Evidence from a real sim platform, altered after signing.
struct Tampering(SimPlatform);

impl EvidenceProvider for Tampering {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    fn evidence(&self, rd: &ReportData) -> Result<Evidence, TeeError> {
        let Evidence::Sim(mut ev) = self.0.evidence(rd)? else { unreachable!() };
        ev.measurement.0[31] ^= 1;
        Ok(Evidence::Sim(ev))
    }
}

#[tokio::test]
async fn attestation_provisions_the_session_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (platform, policy) = sim_setup();
    let info: SessionInfo = admin(&cas).create_session("stats@1", &policy).await.unwrap();
    assert_eq!(info.cas_identity, cas.identity());
    assert!(info.enclave_recipient.starts_with("age1"));
    assert_eq!(info.platforms, [Platform::Sim]);

    let client = CasClient::new(&cas.url()).unwrap();
    let secrets = client.attest("stats@1", &platform, cas.identity()).await.unwrap();
    assert_eq!(secrets.recipient().to_string(), info.enclave_recipient);
    assert_eq!(secrets.signer_address(), info.enclave_signer);
    // The secrets work: the enclave decrypts an input encrypted to the published recipient.
    let ct = ecld_crypto::envelope::encrypt_bytes(
        &[info.enclave_recipient.parse().unwrap()],
        false,
        b"input",
    )
    .unwrap();
    let pt = ecld_crypto::envelope::decrypt_bytes(secrets.age_identity(), &ct).unwrap();
    assert_eq!(pt, b"input");
    let shown = format!("{secrets:?}");
    assert!(shown.contains("redacted") && !shown.contains("AGE-SECRET-KEY"), "{shown}");

    // A second enclave of the same image gets the same secrets.
    let again = client.attest("stats@1", &platform, cas.identity()).await.unwrap();
    assert_eq!(again.signer_address(), secrets.signer_address());

    // The audit log recorded the decisions, without secrets.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"session_created\"") && audit.contains("\"attest_accepted\""),
        "{audit}"
    );
    assert!(audit.contains("\"nonce_issued\""));
    assert!(!audit.contains("AGE-SECRET-KEY"));
}

#[tokio::test]
async fn refusals_each_have_their_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (platform, policy) = sim_setup();
    let admin = admin(&cas);
    admin.create_session("stats@1", &policy).await.unwrap();
    let client = CasClient::new(&cas.url()).unwrap();

    // Wrong measurement: the node runs another program.
    let other = SimPlatform::new(platform.key().clone(), b"another module");
    let err = client.attest("stats@1", &other, cas.identity()).await.unwrap_err();
    assert_eq!(err.code(), "measurement_mismatch", "{err}");
    assert!(matches!(err, CasError::Refused { status: 403, .. }), "{err}");

    // Tampered evidence.
    let err =
        client.attest("stats@1", &Tampering(platform.clone()), cas.identity()).await.unwrap_err();
    assert_eq!(err.code(), "evidence_signature_invalid", "{err}");

    // Sim evidence under a policy that does not allow sim.
    let mut no_sim = policy.clone();
    no_sim.danger_allow_sim = false;
    no_sim.sim = None;
    no_sim.tdx = Some(ecld_tee::TdxPolicy {
        mr_td: HexBytes([1; 48]),
        rtmr0: None,
        rtmr1: None,
        rtmr2: None,
        rtmr3: None,
    });
    admin.create_session("tdx-only@1", &no_sim).await.unwrap();
    let err = client.attest("tdx-only@1", &platform, cas.identity()).await.unwrap_err();
    assert_eq!(err.code(), "sim_not_allowed", "{err}");

    // Wrong CAS identity: the enclave pins another CAS and refuses this one's answer.
    let pinned = ecld_crypto::SignerKey::generate().address();
    let err = client.attest("stats@1", &platform, pinned).await.unwrap_err();
    match err {
        CasError::WrongCasIdentity { expected, actual } => {
            assert_eq!(expected, pinned);
            assert_eq!(actual, cas.identity());
        }
        other => panic!("expected WrongCasIdentity, got {other}"),
    }

    // Every refusal is in the audit log with its code.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    for code in ["measurement_mismatch", "evidence_signature_invalid", "sim_not_allowed"] {
        assert!(audit.contains(&format!("\"code\":\"{code}\"")), "{code} missing in {audit}");
    }
}

#[tokio::test]
async fn replayed_nonce_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (platform, policy) = sim_setup();
    admin(&cas).create_session("stats@1", &policy).await.unwrap();
    let client = CasClient::new(&cas.url()).unwrap();

    let nonce = client.nonce("stats@1").await.unwrap().nonce;
    let ephemeral = AgeIdentity::generate();
    let recipient = ephemeral.recipient().to_string();
    let rd = ReportData::for_attestation("stats@1", &nonce, &recipient);
    let req = AttestRequest {
        session: "stats@1".into(),
        nonce,
        ephemeral_recipient: recipient,
        evidence: platform.evidence(&rd).unwrap(),
    };
    let resp = client.attest_raw(&req).await.unwrap();
    open_response(&req, &resp, &ephemeral, cas.identity()).unwrap();

    let err = client.attest_raw(&req).await.unwrap_err();
    assert_eq!(err.code(), "nonce_replayed", "{err}");

    // A nonce the CAS never issued.
    let mut forged = req.clone();
    forged.nonce = "00".repeat(32);
    assert_eq!(client.attest_raw(&forged).await.unwrap_err().code(), "nonce_unknown");
}

#[tokio::test]
async fn evidence_for_another_key_refused() {
    // An attacker replays the enclave's evidence with its own ephemeral key and a fresh nonce.
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (platform, policy) = sim_setup();
    admin(&cas).create_session("stats@1", &policy).await.unwrap();
    let client = CasClient::new(&cas.url()).unwrap();
    let nonce = client.nonce("stats@1").await.unwrap().nonce;
    let honest = AgeIdentity::generate().recipient().to_string();
    let evidence =
        platform.evidence(&ReportData::for_attestation("stats@1", &nonce, &honest)).unwrap();
    let req = AttestRequest {
        session: "stats@1".into(),
        nonce,
        ephemeral_recipient: AgeIdentity::generate().recipient().to_string(),
        evidence,
    };
    assert_eq!(client.attest_raw(&req).await.unwrap_err().code(), "report_data_mismatch");
}

#[tokio::test]
async fn sessions_need_the_admin_token_and_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let cas = start(dir.path()).await;
    let (_, policy) = sim_setup();

    let anonymous = CasClient::new(&cas.url()).unwrap();
    let err = anonymous.create_session("stats@1", &policy).await.unwrap_err();
    assert_eq!(err.code(), "config", "the client refuses to send admin requests without a token");
    let wrong =
        CasClient::new(&cas.url()).unwrap().with_admin_token(ecld_cas::AdminToken::new("nope"));
    let err = wrong.create_session("stats@1", &policy).await.unwrap_err();
    assert!(
        matches!(&err, CasError::Refused { status: 401, code, .. } if code == "unauthorized"),
        "{err}"
    );

    let admin = admin(&cas);
    let first = admin.create_session("stats@1", &policy).await.unwrap();
    let same = admin.create_session("stats@1", &policy).await.unwrap();
    assert_eq!(first, same, "creating the same session again is idempotent");
    let (_, other_policy) = sim_setup();
    let err = admin.create_session("stats@1", &other_policy).await.unwrap_err();
    assert!(
        matches!(&err, CasError::Refused { status: 409, code, .. } if code == "session_exists"),
        "{err}"
    );

    let shown = anonymous.session("stats@1").await.unwrap();
    assert_eq!(shown, first);
    let err = anonymous.session("nope@1").await.unwrap_err();
    assert_eq!(err.code(), "session_not_found");
    let err = admin.create_session("bad name", &policy).await.unwrap_err();
    assert_eq!(err.code(), "invalid_request");
    let mut sim_without_opt_in = policy.clone();
    sim_without_opt_in.danger_allow_sim = false;
    let err = admin.create_session("stats@2", &sim_without_opt_in).await.unwrap_err();
    assert_eq!(err.code(), "policy_invalid");
    let _ = MODULE;
}
