//! Intel TDX and SGX: DCAP quotes, verified offline with `dcap-qvl` against collateral.

use dcap_qvl::{QuoteCollateralV3, quote::Report, verify::QuoteVerifier};
use serde::{Deserialize, Serialize};

use crate::{
    Evidence, EvidenceProvider, HexBytes, Platform, Policy, ReportData, TeeError, Verified,
    hexbytes::hex_vec, tsm::ConfigfsTsm,
};

/// DCAP evidence (JSON: `{"platform":"tdx"|"sgx","quote":"<hex>","collateral":{…}}`).
///
/// The collateral (Intel-signed TCB info, QE identity, CRLs) travels with the quote: it is
/// verified up to Intel's root CA, so it need not come from a trusted channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcapEvidence {
    /// The raw quote.
    #[serde(with = "hex_vec")]
    pub quote: Vec<u8>,
    /// Collateral for the quote, in dcap-qvl's JSON form.
    #[serde(default)]
    pub collateral: Option<QuoteCollateralV3>,
}

/// Fields of a quote, read without verifying anything (to write a policy, or to inspect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuoteSummary {
    /// TDX or SGX.
    pub platform: Platform,
    /// TDX: MRTD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_td: Option<HexBytes<48>>,
    /// TDX: RTMR0..3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtmrs: Option<[HexBytes<48>; 4]>,
    /// SGX: MRENCLAVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_enclave: Option<HexBytes<32>>,
    /// SGX: MRSIGNER.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mr_signer: Option<HexBytes<32>>,
    /// The report data the quote binds.
    pub report_data: HexBytes<64>,
}

fn summarize(report: &Report) -> QuoteSummary {
    let td = match report {
        Report::SgxEnclave(sgx) => {
            return QuoteSummary {
                platform: Platform::Sgx,
                mr_td: None,
                rtmrs: None,
                mr_enclave: Some(HexBytes(sgx.mr_enclave)),
                mr_signer: Some(HexBytes(sgx.mr_signer)),
                report_data: HexBytes(sgx.report_data),
            };
        }
        Report::TD10(td) => td,
        Report::TD15(r) => &r.base,
        Report::TD15Ex(r) => &r.base.base,
    };
    QuoteSummary {
        platform: Platform::Tdx,
        mr_td: Some(HexBytes(td.mr_td)),
        rtmrs: Some([
            HexBytes(td.rt_mr0),
            HexBytes(td.rt_mr1),
            HexBytes(td.rt_mr2),
            HexBytes(td.rt_mr3),
        ]),
        mr_enclave: None,
        mr_signer: None,
        report_data: HexBytes(td.report_data),
    }
}

/// Parses a quote and returns its measurements and report data, WITHOUT verifying it.
pub fn inspect_quote(quote: &[u8]) -> Result<QuoteSummary, TeeError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote)
        .map_err(|e| TeeError::Malformed { what: "DCAP quote", reason: format!("{e:#}") })?;
    Ok(summarize(&parsed.report))
}

fn check_mr<const N: usize>(
    platform: Platform,
    field: &'static str,
    expected: Option<&HexBytes<N>>,
    actual: &[u8; N],
) -> Result<(), TeeError> {
    match expected {
        Some(e) if &e.0 != actual => Err(TeeError::MeasurementMismatch {
            platform,
            field,
            expected: e.to_string(),
            actual: hex::encode(actual),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn verify(
    platform: Platform,
    ev: &DcapEvidence,
    policy: &Policy,
    expected: &ReportData,
    now_secs: u64,
) -> Result<Verified, TeeError> {
    let allowed = match platform {
        Platform::Tdx => policy.tdx.is_some(),
        Platform::Sgx => policy.sgx.is_some(),
        Platform::Sim => false,
    };
    if !allowed {
        return Err(TeeError::PlatformNotAllowed { platform, allowed: policy.allowed_list() });
    }
    let collateral = ev.collateral.as_ref().ok_or(TeeError::CollateralMissing { platform })?;
    // allow_debug stays false: dcap-qvl refuses SGX DEBUG enclaves and TDX debug TDs.
    let verified = QuoteVerifier::new_prod()
        .verify(&ev.quote, collateral, now_secs)
        .map_err(|e| TeeError::QuoteInvalid { platform, reason: format!("{e:#}") })?;
    let summary = summarize(&verified.report);
    if summary.platform != platform {
        return Err(TeeError::PlatformMismatch { claimed: platform, actual: summary.platform });
    }
    let status = verified.status.clone();
    if status == "Revoked" || !policy.tcb_statuses.contains(&status) {
        return Err(TeeError::TcbStatusRefused {
            platform,
            status,
            allowed: policy.tcb_statuses.join(", "),
        });
    }
    let measurement = match (&verified.report, platform) {
        (report, Platform::Tdx) => {
            let (Some(td), Some(p)) = (report.as_td10(), policy.tdx.as_ref()) else {
                return Err(TeeError::PlatformMismatch {
                    claimed: platform,
                    actual: Platform::Sgx,
                });
            };
            check_mr(platform, "mr_td", Some(&p.mr_td), &td.mr_td)?;
            check_mr(platform, "rtmr0", p.rtmr0.as_ref(), &td.rt_mr0)?;
            check_mr(platform, "rtmr1", p.rtmr1.as_ref(), &td.rt_mr1)?;
            check_mr(platform, "rtmr2", p.rtmr2.as_ref(), &td.rt_mr2)?;
            check_mr(platform, "rtmr3", p.rtmr3.as_ref(), &td.rt_mr3)?;
            hex::encode(td.mr_td)
        }
        (report, _) => {
            let (Some(sgx), Some(p)) = (report.as_sgx(), policy.sgx.as_ref()) else {
                return Err(TeeError::PlatformMismatch {
                    claimed: platform,
                    actual: Platform::Tdx,
                });
            };
            check_mr(platform, "mr_enclave", p.mr_enclave.as_ref(), &sgx.mr_enclave)?;
            check_mr(platform, "mr_signer", p.mr_signer.as_ref(), &sgx.mr_signer)?;
            hex::encode(sgx.mr_enclave)
        }
    };
    if summary.report_data.0 != expected.0 {
        return Err(TeeError::ReportDataMismatch {
            platform,
            expected: hex::encode(expected.0),
            actual: summary.report_data.to_string(),
        });
    }
    Ok(Verified {
        platform,
        measurement,
        tcb_status: Some(status),
        advisory_ids: verified.advisory_ids,
    })
}

/// A TDX or SGX platform producing quotes through Linux configfs-tsm.
#[derive(Debug, Clone)]
pub struct DcapPlatform {
    platform: Platform,
    tsm: ConfigfsTsm,
    collateral: Option<QuoteCollateralV3>,
}

impl DcapPlatform {
    /// A platform of kind `platform` (`Tdx` or `Sgx`) using `tsm`, attaching `collateral`
    /// (fetched from a PCCS for this machine) to every quote.
    pub fn new(
        platform: Platform,
        tsm: ConfigfsTsm,
        collateral: Option<QuoteCollateralV3>,
    ) -> Result<Self, TeeError> {
        if platform == Platform::Sim {
            return Err(TeeError::Malformed {
                what: "platform",
                reason: "DcapPlatform is for tdx or sgx; use SimPlatform for sim".into(),
            });
        }
        Ok(Self { platform, tsm, collateral })
    }
}

impl EvidenceProvider for DcapPlatform {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Evidence, TeeError> {
        let quote = self.tsm.report(self.platform, report_data)?;
        let ev = DcapEvidence { quote, collateral: self.collateral.clone() };
        Ok(match self.platform {
            Platform::Sgx => Evidence::Sgx(ev),
            _ => Evidence::Tdx(ev),
        })
    }
}
