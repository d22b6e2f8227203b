//! How many proptest cases a property runs: few enough in CI that each
//! property takes seconds, many more for a local soak (`store_model`,
//! `api_model`).

/// Cases per run: `PROPTEST_CASES` if set, else `soak` with
/// `IDEMPROOF_SOAK=1`, else `ci`.
pub fn case_count(ci: u32, soak: u32) -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if std::env::var("IDEMPROOF_SOAK").is_ok_and(|v| v == "1") {
        soak
    } else {
        ci
    }
}
