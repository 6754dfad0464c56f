//! The corpora and tools of `../shared`, beside the checkout. A test that needs them fails when
//! they are missing, so a green run never hides a check it did not make; the caller may ask to
//! skip them with `VIRTPCI_SKIP_SHARED=1` (scripts/test-all sets it only when asked to).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use virtpci::pci::parse_xml_uint;
use virtpci::xml::{Document, ElementId};
use virtpci::PciAddress;

/// `../shared/<rel>`, or None when it is missing and the caller asked to skip; a missing path
/// otherwise fails the test.
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("VIRTPCI_SKIP_SHARED").is_some(),
        "{} not found: ../shared must sit beside the checkout (VIRTPCI_SKIP_SHARED=1 skips the \
         tests that need it)",
        path.display()
    );
    eprintln!(
        "SKIP: {} not found (VIRTPCI_SKIP_SHARED is set)",
        path.display()
    );
    None
}

/// Every case directory under `cases`, sorted. Each must hold `input.xml` and exactly one of
/// `expected.xml` (libvirt accepted it) and `expected-error.txt` (libvirt refused it), so a case
/// cannot drop out of a run unnoticed.
pub fn case_dirs(cases: &Path) -> Vec<PathBuf> {
    let dirs = expectation_dirs(cases);
    for dir in &dirs {
        assert!(
            dir.join("input.xml").is_file(),
            "{}: no input.xml",
            dir.display()
        );
    }
    dirs
}

/// [`case_dirs`] for cases whose inputs live elsewhere: only the expected file is required.
pub fn expectation_dirs(cases: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(cases)
        .unwrap_or_else(|e| panic!("{}: {e}", cases.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", cases.display()))
                .path()
        })
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "{}: no case directories", cases.display());
    for dir in &dirs {
        let has = |f: &str| dir.join(f).is_file();
        assert!(
            has("expected.xml") != has("expected-error.txt"),
            "{}: needs exactly one of expected.xml and expected-error.txt",
            dir.display()
        );
    }
    dirs
}

/// `../shared/tools/<name>` (`libvirt-oracle`, `libvirt-oracle-trixie`) when that oracle
/// answers `status`. When it does not, the test fails if `VIRTPCI_REQUIRE_ORACLE` is set, and
/// otherwise says which check (`unchecked`) was not made and gets None.
pub fn oracle(name: &str, unchecked: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/tools")
        .join(name);
    let up = path.exists()
        && Command::new(&path)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.success());
    if !up {
        assert!(
            std::env::var_os("VIRTPCI_REQUIRE_ORACLE").is_none(),
            "VIRTPCI_REQUIRE_ORACLE is set but {name} is not up"
        );
        eprintln!("{name} not available: {unchecked} not checked by libvirt");
    }
    up.then_some(path)
}

/// The oracle's `assign` of the definition in `file` (what that libvirt makes of it), with
/// `oracle` from [`oracle`]. A refusal fails the test, naming `what`, the oracle, its words and
/// the definition.
pub fn oracle_assign(oracle: &Path, file: &Path, what: &str) -> String {
    let out = Command::new(oracle)
        .arg("assign")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", oracle.display()));
    assert!(
        out.status.success(),
        "{what}: {} refused it: {}\n{}",
        oracle.file_name().unwrap_or_default().to_string_lossy(),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(file).unwrap_or_default()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A number as libvirt writes one in the domain XML (decimal or `0x` hexadecimal), around
/// whitespace allowed.
pub fn xml_number(text: &str) -> u32 {
    parse_xml_uint(text.trim()).unwrap_or_else(|| panic!("not a number: {text:?}"))
}

/// The PCI address in the attributes of the `<address>` element `id`; a part it does not
/// write is 0.
pub fn address_attrs(doc: &Document, id: ElementId) -> PciAddress {
    let part = |n: &str| doc.attr(id, n).map_or(0, xml_number);
    PciAddress::new(part("domain"), part("bus"), part("slot"), part("function"))
}
