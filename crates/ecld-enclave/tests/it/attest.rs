//! Mutual attestation against a real CAS (in process, on 127.0.0.1).

#![allow(clippy::unwrap_used)] // Test helpers unwrap like the tests they serve.

use ecld_cas::{AdminToken, CasClient, CasConfig};
use ecld_enclave::attest::{AttestError, CasProvisioner, Provisioner};
use ecld_tee::{HexBytes, Policy, SimPlatform, SimPlatformKey, SimPolicy};
use ecld_types::Address;

const MODULE: &[u8] = include_bytes!("../../../../testdata/enclave/echo.wasm");

async fn cas_with_session(
    platform_key: &SimPlatformKey,
    module: &[u8],
) -> (ecld_cas::CasHandle, tempfile::TempDir, ecld_cas::api::SessionInfo) {
    let dir = tempfile::tempdir().unwrap();
    let token = AdminToken::generate();
    let cas =
        ecld_cas::spawn(CasConfig::new("127.0.0.1:0".parse().unwrap(), dir.path(), token.clone()))
            .await
            .unwrap();
    let policy = Policy {
        danger_allow_sim: true,
        sim: Some(SimPolicy {
            measurement: HexBytes(ecld_tee::sim::measure(module)),
            platform_keys: vec![HexBytes(platform_key.public_key())],
        }),
        ..serde_json::from_str("{}").unwrap()
    };
    let admin = CasClient::new(&format!("http://{}", cas.addr())).unwrap().with_admin_token(token);
    let session = admin.create_session("echo-v1", &policy).await.unwrap();
    (cas, dir, session)
}

#[tokio::test]
async fn enclave_obtains_the_session_secrets_by_attestation() {
    let key = SimPlatformKey::generate();
    let (cas, _dir, session) = cas_with_session(&key, MODULE).await;
    let url = format!("http://{}", cas.addr());
    let provisioner =
        CasProvisioner::new(&url, "echo-v1", SimPlatform::new(key, MODULE), session.cas_identity)
            .unwrap();
    assert_eq!(provisioner.platform(), "sim");
    let secrets = provisioner.provision().await.unwrap();
    assert_eq!(secrets.identity.recipient().to_string(), session.enclave_recipient);
    assert_eq!(secrets.signer.address(), session.enclave_signer);
}

#[tokio::test]
async fn a_cas_with_another_identity_is_refused() {
    let key = SimPlatformKey::generate();
    let (cas, _dir, _session) = cas_with_session(&key, MODULE).await;
    let url = format!("http://{}", cas.addr());
    let pinned = Address::repeat_byte(0x42);
    let err = CasProvisioner::new(&url, "echo-v1", SimPlatform::new(key, MODULE), pinned)
        .unwrap()
        .provision()
        .await
        .unwrap_err();
    assert!(matches!(err, AttestError::WrongCas { .. }), "{err}");
}

#[tokio::test]
async fn a_different_module_gets_no_secrets() {
    let key = SimPlatformKey::generate();
    let (cas, _dir, session) = cas_with_session(&key, MODULE).await;
    let url = format!("http://{}", cas.addr());
    let other_module = b"\0asm\x01\0\0\0";
    let err = CasProvisioner::new(
        &url,
        "echo-v1",
        SimPlatform::new(key, other_module),
        session.cas_identity,
    )
    .unwrap()
    .provision()
    .await
    .unwrap_err();
    assert!(matches!(err, AttestError::Cas(_)), "{err}");
}

/// A CAS restarting (killed and started again on its state directory) while an enclave
/// starts: the enclave waits for it instead of failing, which cost the node its enclave and
/// released the task to a 5-minute cooldown (found by the chaos test).
#[tokio::test]
async fn attestation_waits_for_a_cas_that_is_restarting() {
    let key = SimPlatformKey::generate();
    let (cas, dir, session) = cas_with_session(&key, MODULE).await;
    let addr = cas.addr();
    cas.shutdown().await;
    let provisioner = CasProvisioner::new(
        &format!("http://{addr}"),
        "echo-v1",
        SimPlatform::new(key, MODULE),
        session.cas_identity,
    )
    .unwrap();
    let attempt = tokio::spawn(async move { provisioner.provision().await });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(!attempt.is_finished(), "the enclave gave up while the CAS was down");
    let _cas =
        ecld_cas::spawn(CasConfig::new(addr, dir.path(), AdminToken::generate())).await.unwrap();
    let secrets = attempt.await.unwrap().unwrap();
    assert_eq!(secrets.identity.recipient().to_string(), session.enclave_recipient);
    assert_eq!(secrets.signer.address(), session.enclave_signer);
}
