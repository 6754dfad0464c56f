//! Replays every input under `tests/fuzz-regressions/<target>/` through the body of that fuzz
//! target (`fuzz/src/harness.rs`, the same code libFuzzer runs). An input lands here when a
//! fuzzer found a crash, panic, hang or blow-up with it; the fix keeps it passing.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        eprintln!("{target}: {}", f.display());
        run(&data);
    }
    files.len()
}

#[test]
fn pci_address() {
    assert!(replay("pci_address", harness::pci_address) > 0);
}

#[test]
fn assign_xml() {
    assert!(replay("assign_xml", harness::assign_xml) > 0);
}

#[test]
fn abi_diff() {
    assert!(replay("abi_diff", harness::abi_diff) > 0);
}

#[test]
fn host_snapshot() {
    assert!(replay("host_snapshot", harness::host_snapshot) > 0);
}

#[test]
fn ffi() {
    let hosts = harness::FfiHosts::new(Some(include_str!("fixtures/hosts/quad-nic.json")))
        .with_simulated(&harness::SIMULATED_HOSTS);
    assert!(replay("ffi", |d| harness::ffi(d, &hosts)) > 0);
}

/// The harness itself fails on a broken invariant: a test that cannot fail is no test.
#[test]
#[should_panic(expected = "parsed as")]
fn harness_detects_a_wrong_parse() {
    // Not an input the parser gets wrong; the harness's own check, fed an inconsistent
    // pair, must fire.
    harness::check_parse_consistency("0000:00:01.0", virtpci::PciAddress::new(0, 0, 2, 0));
}
