use ecld_tee::{ConfigfsTsm, DcapPlatform, EvidenceProvider, Platform, ReportData, TeeError};

#[test]
fn missing_configfs_tsm_gives_a_specific_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("no-such-tsm/report");
    let platform = DcapPlatform::new(Platform::Tdx, ConfigfsTsm::new(&root), None).unwrap();
    let err = platform.evidence(&ReportData([7; 64])).unwrap_err();
    match &err {
        TeeError::TsmUnavailable { platform, path } => {
            assert_eq!(*platform, Platform::Tdx);
            assert_eq!(path, &root);
        }
        other => panic!("expected TsmUnavailable, got {other}"),
    }
    assert_eq!(err.code(), "tsm_unavailable");
    assert!(err.to_string().contains("configfs-tsm"), "{err}");
}

/// A directory that is not configfs: mkdir and inblob work, but no `outblob` appears, as on a
/// kernel whose TSM provider is missing. The error names the file that failed.
#[test]
fn tsm_without_provider_reports_the_failing_file() {
    let dir = tempfile::tempdir().unwrap();
    let tsm = ConfigfsTsm::new(dir.path());
    let err = tsm.report(Platform::Tdx, &ReportData([1; 64])).unwrap_err();
    match &err {
        TeeError::Tsm { path, .. } => assert!(path.ends_with("outblob"), "{}", path.display()),
        other => panic!("expected Tsm error, got {other}"),
    }
}

#[test]
fn sim_is_not_a_dcap_platform() {
    assert!(DcapPlatform::new(Platform::Sim, ConfigfsTsm::default(), None).is_err());
}
