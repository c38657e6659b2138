//! The DCAP path through the CAS: a sample quote cannot bind our report data, so the untouched
//! quote is refused only for its report data (proving the quote itself verified) and the same
//! quote with one byte changed is refused as an invalid quote.

use std::path::PathBuf;

use ecld_cas::{CasClient, api::AttestRequest};
use ecld_crypto::AgeIdentity;
use ecld_tee::{DcapEvidence, Evidence, Policy, QuoteCollateralV3, TdxPolicy, inspect_quote};

use crate::{TOKEN, config};

/// 2025-06-20T00:00:00Z, inside the sample collateral's validity.
const NOW_2025: u64 = 1_750_377_600;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dcap").join(name)
}

#[tokio::test]
async fn dcap_quote_checked_by_the_cas() {
    let quote = std::fs::read(testdata("tdx_quote")).unwrap();
    let collateral: QuoteCollateralV3 =
        serde_json::from_slice(&std::fs::read(testdata("tdx_quote_collateral.json")).unwrap())
            .unwrap();
    let summary = inspect_quote(&quote).unwrap();
    let policy = Policy {
        tdx: Some(TdxPolicy {
            mr_td: summary.mr_td.unwrap(),
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
        }),
        ..serde_json::from_str("{}").unwrap()
    };

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.danger_evidence_time = Some(NOW_2025);
    let cas = ecld_cas::spawn(cfg).await.unwrap();
    let admin =
        CasClient::new(&cas.url()).unwrap().with_admin_token(ecld_cas::AdminToken::new(TOKEN));
    admin.create_session("tdx@1", &policy).await.unwrap();

    let attempt = |quote: Vec<u8>| {
        let client = admin.clone();
        let collateral = collateral.clone();
        async move {
            let nonce = client.nonce("tdx@1").await.unwrap().nonce;
            let req = AttestRequest {
                session: "tdx@1".into(),
                nonce,
                ephemeral_recipient: AgeIdentity::generate().recipient().to_string(),
                evidence: Evidence::Tdx(DcapEvidence { quote, collateral: Some(collateral) }),
            };
            client.attest_raw(&req).await.unwrap_err()
        }
    };

    let err = attempt(quote.clone()).await;
    assert_eq!(
        err.code(),
        "report_data_mismatch",
        "the untouched quote verifies up to report data: {err}"
    );

    let mut tampered = quote;
    tampered[48 + 200] ^= 1;
    let err = attempt(tampered).await;
    assert_eq!(err.code(), "quote_invalid", "{err}");
}
