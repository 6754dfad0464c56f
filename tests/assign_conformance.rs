//! Every case of the libvirt 9.0 conformance corpus (`../shared/conformance/cases`) through
//! the library: positive cases must give libvirt's PCI layout, negative cases libvirt's error.
//! The layout is the canonical one of `../shared/tools/pci-layout`: per device its tag, ordinal
//! and address; per PCI controller its index, model, model name, target values, node and
//! address. Skipped, with a notice, when the corpus is not there.

use std::fs;
use std::path::Path;
use virtpci::xml::Document;

mod layout_support;
mod shared_support;
use layout_support::{address_fact, number, pci_controller_facts};
use shared_support::{case_dirs, expectation_dirs, shared_path};
use virtpci::ErrorCode;

/// The PCI layout of a domain XML, one sorted line per fact.
pub fn layout(xml: &str) -> Vec<String> {
    let doc = Document::parse(xml).expect("well-formed XML");
    let Some(devices) = doc.child(doc.root, "devices") else {
        return Vec::new();
    };
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    let mut out = Vec::new();
    for &dev in &doc.element(devices).children {
        let el = doc.element(dev);
        let count = seen.entry(el.name.to_string()).or_default();
        *count += 1;
        let mut ident = format!("{}#{}", el.name, count);
        let addr = doc.child(dev, "address");
        if el.name == "controller" && el.attr("type") == Some("pci") {
            let facts = pci_controller_facts(&doc, dev);
            out.push(format!(
                "pci-controller index={} {}",
                el.attr("index")
                    .map(number)
                    .unwrap_or_else(|| "None".into()),
                facts
            ));
            continue;
        }
        let Some(a) = addr.and_then(|a| address_fact(&doc, a)) else {
            continue;
        };
        if el.name == "controller" {
            ident = format!(
                "controller type={} index={}",
                el.attr("type").unwrap_or("None"),
                el.attr("index")
                    .map(number)
                    .unwrap_or_else(|| "None".into())
            );
            if let Some(model) = el.attr("model") {
                ident.push_str(&format!(" model={model}"));
            }
        }
        out.push(format!("{ident} {a}"));
    }
    out.sort();
    out
}

/// libvirt's whole message, category included ("XML error: ..."): the last line virsh printed,
/// without virsh's own leading "error: ".
fn expected_message(text: &str) -> String {
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    let last = last.trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// Every code virtpci reports, for finding a message's code by libvirt's category prefix.
const CODES: [ErrorCode; 10] = [
    ErrorCode::Internal,
    ErrorCode::NoMemory,
    ErrorCode::InvalidArg,
    ErrorCode::OperationFailed,
    ErrorCode::XmlError,
    ErrorCode::OperationInvalid,
    ErrorCode::ConfigUnsupported,
    ErrorCode::OperationUnsupported,
    ErrorCode::DeviceMissing,
    ErrorCode::SystemError,
];

/// The code a C caller must get for libvirt's message: the one whose prefix it starts with.
/// System errors have no prefix, so they come last and match anything else.
fn expected_code(message: &str) -> ErrorCode {
    CODES
        .into_iter()
        .find(|c| message.starts_with(c.prefix()))
        .expect("the system error's empty prefix matches every message")
}

/// Run every case directory under `cases` (input.xml with expected.xml or
/// expected-error.txt) through the library; returns (passed, failed) and prints each failure.
/// A refusal passes only with libvirt's whole message and the code of its category.
fn run_cases(cases: &Path) -> (usize, usize) {
    run_cases_with(cases, None, virtpci::AssignOptions::default())
}

/// [`run_cases`] with `options`; with `inputs`, each case's input.xml is read from the
/// directory of the same name there (the stored 11.3 expectations use the shared inputs).
/// Every case directory must have its input and exactly one expected file.
fn run_cases_with(
    cases: &Path,
    inputs: Option<&Path>,
    options: virtpci::AssignOptions,
) -> (usize, usize) {
    let dirs = match inputs {
        None => case_dirs(cases),
        Some(_) => expectation_dirs(cases),
    };
    let (mut passed, mut failed) = (0, 0);
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let input_dir = inputs.map_or(dir.clone(), |i| i.join(&name));
        let input = fs::read_to_string(input_dir.join("input.xml"))
            .unwrap_or_else(|e| panic!("{}/input.xml: {e}", input_dir.display()));
        let result = virtpci::assign_domain_xml_with(&input, options);
        let why = if let Ok(expected) = fs::read_to_string(dir.join("expected.xml")) {
            match result {
                Ok(out) if layout(&out.xml) == layout(&expected) => None,
                Ok(out) => {
                    let want = layout(&expected);
                    let got = layout(&out.xml);
                    let missing: Vec<_> = want.iter().filter(|l| !got.contains(l)).collect();
                    let extra: Vec<_> = got.iter().filter(|l| !want.contains(l)).collect();
                    Some(format!("layout differs: want {missing:?}, got {extra:?}"))
                }
                Err(e) => Some(format!("refused: {}", e.message)),
            }
        } else {
            let want =
                expected_message(&fs::read_to_string(dir.join("expected-error.txt")).unwrap());
            let code = expected_code(&want);
            match result {
                Ok(_) => Some(format!("accepted; libvirt refuses: {want}")),
                Err(e) if e.message == want && e.code == code => None,
                Err(e) => Some(format!(
                    "want {code:?} {want:?}, got {:?} {:?}",
                    e.code, e.message
                )),
            }
        };
        match why {
            None => passed += 1,
            Some(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    (passed, failed)
}

#[test]
fn conformance_corpus() {
    let Some(cases) = shared_path("conformance/cases") else {
        return;
    };
    let (passed, failed) = run_cases(&cases);
    assert_eq!(failed, 0, "{failed} conformance cases failed");
    assert_eq!(passed, case_dirs(&cases).len());
}

/// The same inputs as libvirt 11.3 (Debian 13, QEMU 10.0) defines them: the expected files in
/// tests/conformance-11.3 were made by `libvirt-oracle-trixie` (see its README).
#[test]
fn conformance_corpus_libvirt_11_3() {
    let Some(inputs) = shared_path("conformance/cases") else {
        return;
    };
    let options = virtpci::AssignOptions {
        libvirt: virtpci::assign::LibvirtLevel::V11_3,
        ..Default::default()
    };
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance-11.3/cases");
    let (passed, failed) = run_cases_with(&cases, Some(&inputs), options);
    assert_eq!(failed, 0, "{failed} 11.3 conformance cases failed");
    assert_eq!(passed, expectation_dirs(&cases).len());
}

/// The project's own cases (tests/golden), each expected output made by the real libvirt 9.0.
#[test]
fn golden_cases() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let (passed, failed) = run_cases(&cases);
    assert_eq!(failed, 0, "{failed} golden cases failed");
    assert_eq!(passed, case_dirs(&cases).len());
}

/// The categories a refusal can carry are told apart: a message of each code maps back to it.
#[test]
fn every_category_maps_back_to_its_code() {
    for code in CODES {
        assert_eq!(expected_code(&virtpci::Error::new(code, "x").message), code);
    }
}

/// Extend mode only takes over when libvirt's placement runs out of room: every corpus
/// input (and every golden input) comes out byte for byte as without it, and every refusal
/// other than for want of room stays the same refusal.
#[test]
fn extend_mode_changes_nothing_libvirt_can_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let extend = virtpci::AssignOptions {
        extend: true,
        ..Default::default()
    };
    let mut inputs = Vec::new();
    let golden = root.join("tests/golden/cases");
    for dir in shared_path("conformance/cases").into_iter().chain([golden]) {
        inputs.extend(case_dirs(&dir).into_iter().map(|d| d.join("input.xml")));
    }
    inputs.sort();
    let expected = inputs.len();
    let mut compared = 0;
    for input in inputs {
        let xml = fs::read_to_string(&input).unwrap();
        let plain = virtpci::assign_domain_xml(&xml);
        let extended = virtpci::assign_domain_xml_with(&xml, extend);
        let out_of_room = |e: &virtpci::Error| {
            e.message.contains("No more available PCI slots")
                || e.message.contains("cannot be automatically added")
                || e.message.contains("Cannot automatically add a new PCI bus")
                || e.message.contains("did not fit in PCI domain 0")
        };
        match (&plain, &extended) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", input.display()),
            // Out of room both ways: extend mode words how many did not fit.
            (Err(a), Err(b)) if out_of_room(a) => assert!(out_of_room(b), "{}", input.display()),
            (Err(a), Err(b)) => assert_eq!(a, b, "{}", input.display()),
            (Err(a), Ok(_)) => assert!(
                out_of_room(a),
                "{}: extend mode accepted what libvirt refuses for another reason: {}",
                input.display(),
                a.message
            ),
            (Ok(_), Err(b)) => panic!("{}: extend mode refused: {}", input.display(), b.message),
        }
        compared += 1;
    }
    assert_eq!(compared, expected);
}
