//! The fuzz targets' bodies live in `harness.rs`, which `tests/fuzz_regressions.rs` of the
//! main crate also includes to replay the regression corpus under `cargo test`.
#[path = "harness.rs"]
pub mod harness;
