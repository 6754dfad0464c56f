//! Every case of the libvirt 9.0 conformance corpus (`../shared/conformance/cases`) through
//! the library: positive cases must give libvirt's PCI layout, negative cases libvirt's error.
//! The layout is the canonical one of `../shared/tools/pci-layout`: per device its tag, ordinal
//! and address; per PCI controller its index, model, model name, target values, node and
//! address. Skipped, with a notice, when the corpus is not there.

use std::fs;
use std::path::Path;
use virtpci::xml::Document;

mod layout_support;
use layout_support::{address_fact, number, pci_controller_facts};

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

fn expected_message(text: &str) -> String {
    let text = text.trim();
    match text.rfind("error: ") {
        Some(i) => text[i + "error: ".len()..].trim().to_string(),
        None => text.to_string(),
    }
}

/// Run every case directory under `cases` (input.xml with expected.xml or
/// expected-error.txt) through the library; returns (passed, failed) and prints each failure.
fn run_cases(cases: &Path) -> (usize, usize) {
    run_cases_with(cases, None, virtpci::AssignOptions::default())
}

/// [`run_cases`] with `options`; with `inputs`, each case's input.xml is read from the
/// directory of the same name there (the stored 11.3 expectations use the shared inputs).
fn run_cases_with(
    cases: &Path,
    inputs: Option<&Path>,
    options: virtpci::AssignOptions,
) -> (usize, usize) {
    let mut names: Vec<_> = fs::read_dir(cases)
        .unwrap_or_else(|e| panic!("{}: {e}", cases.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let (mut passed, mut failed) = (0, 0);
    for dir in names {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let input_dir = inputs.map_or(dir.clone(), |i| i.join(&name));
        let Ok(input) = fs::read_to_string(input_dir.join("input.xml")) else {
            continue;
        };
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
            let want = expected_message(
                &fs::read_to_string(dir.join("expected-error.txt")).unwrap_or_default(),
            );
            match result {
                Ok(_) => Some(format!("accepted; libvirt refuses: {want}")),
                Err(e) if e.message.contains(&want) => None,
                Err(e) => Some(format!("want {want:?}, got {:?}", e.message)),
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
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/cases");
    if !cases.is_dir() {
        println!(
            "conformance corpus not found at {}; skipped",
            cases.display()
        );
        return;
    }
    let (passed, failed) = run_cases(&cases);
    assert_eq!(failed, 0, "{failed} conformance cases failed");
    assert!(passed >= 269, "only {passed} cases found");
}

/// The same inputs as libvirt 11.3 (Debian 13, QEMU 10.0) defines them: the expected files in
/// tests/conformance-11.3 were made by `libvirt-oracle-trixie` (see its README).
#[test]
fn conformance_corpus_libvirt_11_3() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let inputs = root.join("../shared/conformance/cases");
    if !inputs.is_dir() {
        println!(
            "conformance inputs not found at {}; skipped",
            inputs.display()
        );
        return;
    }
    let options = virtpci::AssignOptions {
        libvirt: virtpci::assign::LibvirtLevel::V11_3,
        ..Default::default()
    };
    let cases = root.join("tests/conformance-11.3/cases");
    let (passed, failed) = run_cases_with(&cases, Some(&inputs), options);
    assert_eq!(failed, 0, "{failed} 11.3 conformance cases failed");
    assert!(passed >= 268, "only {passed} 11.3 cases found");
}

/// The project's own cases (tests/golden), each expected output made by the real libvirt 9.0.
#[test]
fn golden_cases() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let (passed, failed) = run_cases(&cases);
    assert_eq!(failed, 0, "{failed} golden cases failed");
    assert!(passed >= 100, "only {passed} golden cases found");
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
    for dir in [
        root.join("../shared/conformance/cases"),
        root.join("tests/golden/cases"),
    ] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        inputs.extend(entries.flatten().map(|e| e.path().join("input.xml")));
    }
    inputs.sort();
    let mut compared = 0;
    for input in inputs {
        let Ok(xml) = fs::read_to_string(&input) else {
            continue;
        };
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
    assert!(compared >= 269 || compared == 0, "only {compared} inputs");
}
