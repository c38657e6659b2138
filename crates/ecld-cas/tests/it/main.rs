//! Integration tests of the CAS: real HTTP server on 127.0.0.1, real client, sim and DCAP evidence.

// Test helpers outside `#[test]` functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod dcap;
mod flow;
mod persist;

use std::path::Path;

use ecld_cas::{AdminToken, CasConfig, CasHandle};
use ecld_tee::{Policy, SimPlatform, SimPlatformKey};

pub(crate) const MODULE: &[u8] = b"\0asm\x01\0\0\0 stats program";
pub(crate) const TOKEN: &str = "test-admin-token-0123456789";

pub(crate) fn config(dir: &Path) -> CasConfig {
    CasConfig::new("127.0.0.1:0".parse().unwrap(), dir, AdminToken::new(TOKEN))
}

pub(crate) async fn start(dir: &Path) -> CasHandle {
    ecld_cas::spawn(config(dir)).await.unwrap()
}

pub(crate) fn admin(cas: &CasHandle) -> ecld_cas::CasClient {
    ecld_cas::CasClient::new(&cas.url()).unwrap().with_admin_token(AdminToken::new(TOKEN))
}

/// A sim platform running [`MODULE`] and a policy that trusts exactly it.
pub(crate) fn sim_setup() -> (SimPlatform, Policy) {
    let key = SimPlatformKey::generate();
    let platform = SimPlatform::new(key.clone(), MODULE);
    let policy = Policy::danger_sim(platform.measurement(), vec![key.public_key()]);
    (platform, policy)
}
