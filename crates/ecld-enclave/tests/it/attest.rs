//! Mutual attestation against a real CAS (in process, on 127.0.0.1).

#![allow(clippy::unwrap_used)] // Test helpers unwrap like the tests they serve.

use std::{
    hash::{BuildHasher, RandomState},
    net::{SocketAddr, TcpListener},
};

use ecld_cas::{AdminToken, CasClient, CasConfig};
use ecld_enclave::attest::{AttestError, CasProvisioner, Provisioner};
use ecld_tee::{HexBytes, Policy, SimPlatform, SimPlatformKey, SimPolicy};
use ecld_types::Address;

const MODULE: &[u8] = include_bytes!("../../../../testdata/enclave/echo.wasm");

async fn cas_with_session(
    platform_key: &SimPlatformKey,
    module: &[u8],
) -> (ecld_cas::CasHandle, tempfile::TempDir, ecld_cas::api::SessionInfo) {
    cas_with_session_on("127.0.0.1:0".parse().unwrap(), platform_key, module).await
}

async fn cas_with_session_on(
    bind: SocketAddr,
    platform_key: &SimPlatformKey,
    module: &[u8],
) -> (ecld_cas::CasHandle, tempfile::TempDir, ecld_cas::api::SessionInfo) {
    let dir = tempfile::tempdir().unwrap();
    let token = AdminToken::generate();
    let cas = ecld_cas::spawn(CasConfig::new(bind, dir.path(), token.clone())).await.unwrap();
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

/// A free port on 127.0.0.1 below the system's ephemeral range, so that no outgoing
/// connection and no other test's port-0 listener takes it while the CAS is down between a
/// shutdown and a restart on it.
fn port_below_the_ephemeral_range() -> SocketAddr {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(32768);
    let (lo, hi) = (10_000u64, first_ephemeral.max(10_100) - 1);
    let random = RandomState::new();
    (0..1000u64)
        .map(|attempt| {
            let port = u16::try_from(lo + random.hash_one(attempt) % (hi - lo)).unwrap();
            SocketAddr::from(([127, 0, 0, 1], port))
        })
        .find(|addr| TcpListener::bind(addr).is_ok())
        .unwrap_or_else(|| panic!("no free port in {lo}..{hi}"))
}

/// A CAS restarting (killed and started again on its state directory) while an enclave
/// starts: the enclave waits for it instead of failing, which cost the node its enclave and
/// released the task to a 5-minute cooldown (found by the chaos test).
#[tokio::test]
async fn attestation_waits_for_a_cas_that_is_restarting() {
    let key = SimPlatformKey::generate();
    let (cas, dir, session) =
        cas_with_session_on(port_below_the_ephemeral_range(), &key, MODULE).await;
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
