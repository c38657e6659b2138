//! DCAP verification against the sample quotes and collateral shipped with dcap-qvl 0.7.1.

use std::path::PathBuf;

use ecld_tee::{
    DcapEvidence, Evidence, HexBytes, Platform, Policy, QuoteCollateralV3, ReportData, SgxPolicy,
    TdxPolicy, TeeError, inspect_quote,
};

/// 2025-06-20T00:00:00Z: inside the validity of the TDX and SGX sample collateral.
const NOW_2025: u64 = 1_750_377_600;
/// 2026-02-19T00:00:00Z: inside the validity of the out-of-date TDX sample collateral.
const NOW_2026: u64 = 1_771_459_200;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dcap").join(name)
}

struct Sample {
    quote: Vec<u8>,
    collateral: QuoteCollateralV3,
}

fn sample(quote: &str, collateral: &str) -> Sample {
    Sample {
        quote: std::fs::read(testdata(quote)).unwrap(),
        collateral: serde_json::from_slice(&std::fs::read(testdata(collateral)).unwrap()).unwrap(),
    }
}

fn tdx() -> Sample {
    sample("tdx_quote", "tdx_quote_collateral.json")
}

fn tdx_outdated() -> Sample {
    sample("tdx_quote_outdated", "tdx_quote_outdated_collateral.json")
}

fn sgx() -> Sample {
    sample("sgx_quote", "sgx_quote_collateral.json")
}

fn tdx_evidence(s: &Sample) -> Evidence {
    Evidence::Tdx(DcapEvidence { quote: s.quote.clone(), collateral: Some(s.collateral.clone()) })
}

/// A policy expecting exactly the sample's own MRTD, and its report data.
fn tdx_policy_for(s: &Sample) -> (Policy, ReportData) {
    let summary = inspect_quote(&s.quote).unwrap();
    assert_eq!(summary.platform, Platform::Tdx);
    let policy = Policy {
        tdx: Some(TdxPolicy {
            mr_td: summary.mr_td.unwrap(),
            rtmr0: Some(summary.rtmrs.unwrap()[0]),
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
        }),
        ..serde_json::from_str("{}").unwrap()
    };
    policy.check().unwrap();
    (policy, ReportData(summary.report_data.0))
}

#[test]
fn untouched_tdx_sample_quote_verifies() {
    let s = tdx();
    let (policy, rd) = tdx_policy_for(&s);
    assert_eq!(policy.tcb_statuses, ["UpToDate"], "default policy accepts UpToDate only");
    let verified = tdx_evidence(&s).verify(&policy, &rd, NOW_2025).unwrap();
    assert_eq!(verified.platform, Platform::Tdx);
    assert_eq!(verified.tcb_status.as_deref(), Some("UpToDate"));
    assert!(!verified.is_insecure());
    assert!(verified.to_string().starts_with("platform tdx, measurement "), "{verified}");
}

#[test]
fn tdx_quote_with_one_byte_changed_is_refused() {
    let mut s = tdx();
    let (policy, rd) = tdx_policy_for(&s);
    // A byte inside the TD report (the signed body), as a forger changing MRTD would.
    s.quote[48 + 200] ^= 0x01;
    let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2025).unwrap_err();
    assert!(matches!(err, TeeError::QuoteInvalid { platform: Platform::Tdx, .. }), "{err}");
    assert_eq!(err.code(), "quote_invalid");
}

#[test]
fn tdx_wrong_measurement_refused() {
    let s = tdx();
    let (mut policy, rd) = tdx_policy_for(&s);
    policy.tdx.as_mut().unwrap().mr_td.0[0] ^= 0xff;
    let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2025).unwrap_err();
    match err {
        TeeError::MeasurementMismatch { platform: Platform::Tdx, field: "mr_td", .. } => {}
        other => panic!("expected an MRTD mismatch, got {other}"),
    }
    let (mut policy, rd) = tdx_policy_for(&s);
    policy.tdx.as_mut().unwrap().rtmr3 = Some(HexBytes([9; 48]));
    let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2025).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementMismatch { field: "rtmr3", .. }), "{err}");
}

#[test]
fn tdx_quote_for_other_report_data_refused() {
    let s = tdx();
    let (policy, _) = tdx_policy_for(&s);
    let ours = ReportData::for_attestation("stats@1", "00", "age1x");
    let err = tdx_evidence(&s).verify(&policy, &ours, NOW_2025).unwrap_err();
    assert_eq!(err.code(), "report_data_mismatch", "{err}");
}

/// The "outdated" sample's TCB is older than every level its (signed) TCB info lists, so Intel's
/// rules give it no status at all: it must stay refused even by a policy that accepts
/// `OutOfDate`. (The SGX sample below shows a non-UpToDate status accepted only when allowed.)
#[test]
fn out_of_date_sample_refused_even_when_policy_allows_out_of_date() {
    let s = tdx_outdated();
    let (mut policy, rd) = tdx_policy_for(&s);
    for statuses in
        [vec!["UpToDate"], vec!["UpToDate", "OutOfDate", "OutOfDateConfigurationNeeded"]]
    {
        policy.tcb_statuses = statuses.into_iter().map(String::from).collect();
        policy.check().unwrap();
        let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2026).unwrap_err();
        match &err {
            TeeError::QuoteInvalid { reason, .. } => {
                assert!(reason.contains("No matching TCB level"), "{err}");
            }
            other => panic!("expected QuoteInvalid, got {other}"),
        }
    }
}

#[test]
fn expired_collateral_refused() {
    let s = tdx();
    let (policy, rd) = tdx_policy_for(&s);
    let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2026).unwrap_err();
    assert_eq!(err.code(), "quote_invalid", "{err}");
}

#[test]
fn missing_collateral_refused() {
    let s = tdx();
    let (policy, rd) = tdx_policy_for(&s);
    let ev = Evidence::Tdx(DcapEvidence { quote: s.quote, collateral: None });
    let err = ev.verify(&policy, &rd, NOW_2025).unwrap_err();
    assert_eq!(err.code(), "collateral_missing", "{err}");
}

#[test]
fn tdx_quote_presented_as_sgx_refused() {
    let s = tdx();
    let (policy, rd) = tdx_policy_for(&s);
    let policy = Policy {
        sgx: Some(SgxPolicy { mr_enclave: Some(HexBytes([0; 32])), mr_signer: None }),
        ..policy
    };
    let ev = Evidence::Sgx(DcapEvidence { quote: s.quote, collateral: Some(s.collateral) });
    let err = ev.verify(&policy, &rd, NOW_2025).unwrap_err();
    assert_eq!(err.code(), "platform_mismatch", "{err}");
}

#[test]
fn sgx_sample_quote_checks_tcb_and_mrenclave() {
    let s = sgx();
    let summary = inspect_quote(&s.quote).unwrap();
    assert_eq!(summary.platform, Platform::Sgx);
    let rd = ReportData(summary.report_data.0);
    let mut policy: Policy = serde_json::from_value(serde_json::json!({
        "sgx": { "mr_enclave": summary.mr_enclave.unwrap().to_string() }
    }))
    .unwrap();
    let ev = Evidence::Sgx(DcapEvidence { quote: s.quote, collateral: Some(s.collateral) });
    // The sample's platform needs configuration and SW hardening: not UpToDate.
    let err = ev.verify(&policy, &rd, NOW_2025).unwrap_err();
    assert_eq!(err.code(), "tcb_status_refused", "{err}");
    policy.tcb_statuses = vec!["ConfigurationAndSWHardeningNeeded".into()];
    let verified = ev.verify(&policy, &rd, NOW_2025).unwrap();
    assert_eq!(verified.platform, Platform::Sgx);
    assert!(!verified.advisory_ids.is_empty());
    policy.sgx.as_mut().unwrap().mr_signer = Some(HexBytes([1; 32]));
    let err = ev.verify(&policy, &rd, NOW_2025).unwrap_err();
    assert!(matches!(err, TeeError::MeasurementMismatch { field: "mr_signer", .. }), "{err}");
}

#[test]
fn tdx_not_in_policy_refused() {
    let s = tdx();
    let (_, rd) = tdx_policy_for(&s);
    let policy =
        Policy::danger_sim([0; 32], vec![ecld_tee::SimPlatformKey::generate().public_key()]);
    let err = tdx_evidence(&s).verify(&policy, &rd, NOW_2025).unwrap_err();
    assert_eq!(err.code(), "platform_not_allowed", "{err}");
}

#[test]
fn policy_json_rejects_unknown_fields_and_statuses() {
    assert!(serde_json::from_str::<Policy>(r#"{"danger_allow_simm": true}"#).is_err());
    let p: Policy = serde_json::from_value(serde_json::json!({
        "tdx": { "mr_td": "00".repeat(48) }, "tcb_statuses": ["Fine"]
    }))
    .unwrap();
    assert_eq!(p.check().unwrap_err().code(), "policy_invalid");
}
