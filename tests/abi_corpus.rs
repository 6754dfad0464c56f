//! The ABI diff against a `pci-layout` comparison, on pairs made from the libvirt conformance
//! corpus (`../shared/conformance/cases`): each case's `expected.xml` (every address written)
//! and `input.xml` (most addresses left to assignment) is the old definition; the new one
//! removes a device, adds a NIC, or reorders devices.
//!
//! The truth is `pci-layout` (the canonical fact list of `../shared/tools/pci-layout`,
//! reimplemented below and checked against the tool when python3 is there) of both
//! definitions after assignment, with each device followed across the mutation: the test
//! knows which element of the new definition came from which of the old. The diff must name
//! exactly the devices and controllers whose facts differ: every one of them, and no other.
//! Skipped, with a notice, when the corpus is not there.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use virtpci::abi::{check_abi_stability, AbiOptions, AbiReport, Position};
use virtpci::xml::Document;

mod layout_support;
mod shared_support;
use layout_support::{address_fact, number, pci_controller_facts};
use shared_support::{case_dirs, shared_path};

/// Who a fact is about, in the old definition's terms.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Id {
    /// The `n`-th child of `<devices>` of the old input (0-based).
    Old(usize),
    /// The `n`-th child of `<devices>` of the new input that has no old counterpart.
    New(usize),
    /// The `rank`-th device of element `tag` that assignment added.
    Implicit(String, usize),
    PciController(String),
    Controller(String, String, String),
}

/// One side of a pair: the input and how its children map to the old input's.
struct Side<'a> {
    doc: Document<'a>,
    /// Per child of `<devices>`: its index among the old input's children, if it has one.
    to_old: Vec<Option<usize>>,
}

impl Side<'_> {
    fn children(&self) -> Vec<usize> {
        self.doc
            .child(self.doc.root, "devices")
            .map(|d| self.doc.children(d).to_vec())
            .unwrap_or_default()
    }

    /// The device written as the `ordinal`-th `tag` element, or added by assignment.
    fn device(&self, tag: &str, ordinal: usize) -> Id {
        let children = self.children();
        let mut seen = 0;
        for (i, &c) in children.iter().enumerate() {
            if self.doc.element(c).name == tag {
                seen += 1;
                if seen == ordinal {
                    return match self.to_old[i] {
                        Some(o) => Id::Old(o),
                        None => Id::New(i),
                    };
                }
            }
        }
        Id::Implicit(tag.to_string(), ordinal - seen)
    }
}

/// pci-layout's facts of an assigned definition, keyed by [`Id`].
fn facts(assigned: &str, side: &Side<'_>) -> BTreeMap<Id, String> {
    let doc = Document::parse(assigned).expect("well-formed output");
    let mut out = BTreeMap::new();
    let Some(devices) = doc.child(doc.root, "devices") else {
        return out;
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for &dev in &doc.element(devices).children {
        let el = doc.element(dev);
        let count = seen.entry(el.name.to_string()).or_default();
        *count += 1;
        let addr = doc.child(dev, "address");
        let index = el
            .attr("index")
            .map(number)
            .unwrap_or_else(|| "None".into());
        if el.name == "controller" && el.attr("type") == Some("pci") {
            let facts = pci_controller_facts(&doc, dev);
            out.insert(Id::PciController(index), facts);
            continue;
        }
        let Some(a) = addr.and_then(|a| address_fact(&doc, a)) else {
            continue;
        };
        if el.name == "controller" {
            let ctype = el.attr("type").unwrap_or("None").to_string();
            let model = el.attr("model").unwrap_or("").to_string();
            out.insert(Id::Controller(ctype, index, model), a);
        } else {
            // pci-layout's address, plus the model the guest sees (which pci-layout leaves
            // out and the diff reports).
            let model = el
                .attr("model")
                .map(str::to_string)
                .or_else(|| {
                    doc.child(dev, "model")
                        .and_then(|m| doc.element(m).attr("type"))
                        .map(str::to_string)
                })
                .or_else(|| {
                    doc.child(dev, "target")
                        .filter(|_| el.name == "disk")
                        .and_then(|t| doc.element(t).attr("bus"))
                        .map(str::to_string)
                });
            let fact = match model {
                Some(m) => format!("{a} model={m}"),
                None => a,
            };
            out.insert(side.device(el.name, *count), fact);
        }
    }
    out
}

/// The ids whose facts differ between the two sides.
///
/// A written device that was removed and a device of the same element that assignment adds
/// in its place with the same facts (libvirt's default memballoon, the implicit USB
/// controller) are one device to the guest, as they are to a `pci-layout` comparison.
fn truth(
    old: &BTreeMap<Id, String>,
    new: &BTreeMap<Id, String>,
    old_side: &Side<'_>,
) -> BTreeSet<Id> {
    let keys: BTreeSet<&Id> = old.keys().chain(new.keys()).collect();
    let mut differ: BTreeSet<Id> = keys
        .into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    let implicit: Vec<Id> = differ
        .iter()
        .filter(|k| matches!(k, Id::Implicit(..)) && !old.contains_key(*k))
        .cloned()
        .collect();
    for added in implicit {
        let Id::Implicit(tag, _) = &added else {
            continue;
        };
        let replaced = differ.iter().find(|k| match k {
            Id::Old(i) => {
                !new.contains_key(*k)
                    && old.get(*k) == new.get(&added)
                    && old_side.doc.element(old_side.children()[*i]).name == *tag
            }
            _ => false,
        });
        if let Some(r) = replaced.cloned() {
            differ.remove(&r);
            differ.remove(&added);
        }
    }
    differ
}

/// The ids the report names.
fn reported(report: &AbiReport, old: &Side<'_>, new: &Side<'_>) -> BTreeSet<Id> {
    let id = |p: &Position, side: &Side<'_>| match &p.controller {
        Some(c) if c.ctype == "pci" => Id::PciController(c.index.to_string()),
        Some(c) => Id::Controller(
            c.ctype.clone(),
            c.index.to_string(),
            c.model.clone().unwrap_or_default(),
        ),
        None => side.device(&p.tag, p.ordinal),
    };
    let mut out = BTreeSet::new();
    for c in &report.changes {
        if let Some(p) = &c.old_position {
            out.insert(id(p, old));
        }
        if let Some(p) = &c.new_position {
            out.insert(id(p, new));
        }
    }
    out
}

/// The `<devices>` children of `xml` as text spans.
fn child_spans(xml: &str) -> (usize, usize, Vec<(usize, usize, String)>) {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let d = doc.element(devices);
    let spans = d
        .children
        .iter()
        .map(|&c| {
            let el = doc.element(c);
            (el.start, el.end, el.name.to_string())
        })
        .collect();
    (d.start_tag_end, d.end_tag_start, spans)
}

/// Rebuild `xml` with its `<devices>` children in `order` (indexes of the old children, or
/// `None` for `extra`).
fn rebuild(xml: &str, order: &[Option<usize>], extra: &str) -> String {
    let (inner_start, inner_end, spans) = child_spans(xml);
    let mut out = String::from(&xml[..inner_start]);
    for o in order {
        out.push_str("\n    ");
        match o {
            Some(i) => out.push_str(&xml[spans[*i].0..spans[*i].1]),
            None => out.push_str(extra),
        }
    }
    out.push_str("\n  ");
    out.push_str(&xml[inner_end..]);
    out
}

/// Give every device without a natural identity (MAC, disk or filesystem target, host source,
/// controller type and index) a user alias, so that the test's knowledge of which device is
/// which is something the diff can see too. Devices of one kind without any identity are
/// interchangeable to the guest; the diff pairs them by kind (see the unit tests).
fn with_aliases(xml: &str) -> String {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let macs: Vec<String> = doc
        .element(devices)
        .children
        .iter()
        .filter_map(|&c| doc.child(c, "mac"))
        .filter_map(|m| doc.element(m).attr("address"))
        .map(str::to_ascii_lowercase)
        .collect();
    for (n, &c) in doc.element(devices).children.iter().enumerate() {
        let el = doc.element(c);
        let natural = match el.name {
            "interface" => doc
                .child(c, "mac")
                .and_then(|m| doc.element(m).attr("address"))
                .is_some_and(|m| {
                    macs.iter()
                        .filter(|x| **x == m.to_ascii_lowercase())
                        .count()
                        == 1
                }),
            "disk" | "filesystem" => doc.child(c, "target").is_some(),
            "hostdev" => doc.child(c, "source").is_some(),
            "controller" | "emulator" | "graphics" => true,
            _ => false,
        };
        if natural || doc.child(c, "alias").is_some() {
            continue;
        }
        let alias = format!("<alias name='ua-abi{n}'/>");
        if el.self_closing {
            let body = xml[el.start..el.start_tag_end].trim_end_matches('>');
            let body = body.trim_end_matches('/');
            edits.push((el.start, el.end, format!("{body}>{alias}</{}>", el.name)));
        } else {
            edits.push((el.start_tag_end, el.start_tag_end, alias));
        }
    }
    let mut out = xml.to_string();
    for (start, end, text) in edits.into_iter().rev() {
        out.replace_range(start..end, &text);
    }
    out
}

const EXTRA_NIC: &str =
    "<interface type='user'><mac address='52:54:00:ab:cd:ef'/><model type='virtio'/></interface>";

/// The mutations of one definition: (name, new order of the old children).
fn mutations(xml: &str) -> Vec<(String, Vec<Option<usize>>)> {
    let (_, _, spans) = child_spans(xml);
    let n = spans.len();
    let all: Vec<Option<usize>> = (0..n).map(Some).collect();
    let mut out = Vec::new();
    let removable: Vec<usize> = (0..n)
        .filter(|&i| !matches!(spans[i].2.as_str(), "emulator" | "graphics" | "controller"))
        .collect();
    let mut picks: Vec<usize> = Vec::new();
    for &i in [
        removable.first(),
        removable.get(removable.len() / 2),
        removable.last(),
    ]
    .iter()
    .flatten()
    {
        if !picks.contains(i) {
            picks.push(*i);
        }
    }
    for i in picks {
        let order: Vec<Option<usize>> = all.iter().copied().filter(|&o| o != Some(i)).collect();
        out.push((format!("remove {}#{i}", spans[i].2), order));
    }
    // The last non-PCI controller, when there is one: assignment may put it back.
    if let Some(c) = (0..n).rev().find(|&i| spans[i].2 == "controller") {
        let order: Vec<Option<usize>> = all.iter().copied().filter(|&o| o != Some(c)).collect();
        out.push((format!("remove controller#{c}"), order));
    }
    let mut add = all.clone();
    add.push(None);
    out.push(("add nic".into(), add));
    let mut add_front = vec![None];
    add_front.extend(all.iter().copied());
    out.push(("add nic first".into(), add_front));
    if n >= 2 {
        let mut rev = all.clone();
        rev.reverse();
        out.push(("reverse".into(), rev));
        let mut rotate = all.clone();
        rotate.rotate_left(1);
        out.push(("rotate".into(), rotate));
    }
    out
}

#[test]
fn abi_diff_matches_pci_layout_on_corpus_pairs() {
    let Some(cases) = shared_path("conformance/cases") else {
        return;
    };
    let dirs = case_dirs(&cases);
    let (mut pairs, mut with_changes, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for dir in dirs {
        if !dir.join("expected.xml").exists() {
            continue;
        }
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        for base in ["expected.xml", "input.xml"] {
            let old_xml = with_aliases(&fs::read_to_string(dir.join(base)).unwrap());
            let Ok(old_assigned) = virtpci::assign_domain_xml(&old_xml) else {
                skipped += 1;
                continue;
            };
            let old_children = child_spans(&old_xml).2.len();
            for (what, order) in mutations(&old_xml) {
                let new_xml = rebuild(&old_xml, &order, EXTRA_NIC);
                let Ok(new_assigned) = virtpci::assign_domain_xml(&new_xml) else {
                    // The mutation made a definition libvirt refuses (e.g. the device a
                    // drive address needed): not a pair.
                    skipped += 1;
                    continue;
                };
                let old = Side {
                    doc: Document::parse(&old_xml).unwrap(),
                    to_old: (0..old_children).map(Some).collect(),
                };
                let new = Side {
                    doc: Document::parse(&new_xml).unwrap(),
                    to_old: order.clone(),
                };
                let old_facts = facts(&old_assigned.xml, &old);
                let new_facts = facts(&new_assigned.xml, &new);
                let expected = truth(&old_facts, &new_facts, &old);
                let report = match check_abi_stability(&old_xml, &new_xml, AbiOptions::default()) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{case}/{base} [{what}]: error {}", e.message));
                        continue;
                    }
                };
                let got = reported(&report, &old, &new);
                pairs += 1;
                if !expected.is_empty() {
                    with_changes += 1;
                }
                if got != expected {
                    let missing: Vec<_> = expected.difference(&got).collect();
                    let extra: Vec<_> = got.difference(&expected).collect();
                    failures.push(format!(
                        "{case}/{base} [{what}]: missed {missing:?}, extra {extra:?}\n{}{}",
                        missing
                            .iter()
                            .chain(extra.iter())
                            .map(|id| format!(
                                "  {id:?}: {:?} -> {:?}\n",
                                old_facts.get(*id),
                                new_facts.get(*id)
                            ))
                            .collect::<String>(),
                        report.to_text()
                    ));
                }
            }
        }
    }
    println!(
        "{pairs} pairs compared ({with_changes} with PCI changes), {skipped} mutations skipped"
    );
    for f in failures.iter().take(40) {
        println!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {pairs} pairs differ",
        failures.len()
    );
    assert!(
        pairs > 1000 && with_changes > 500,
        "too few pairs: {pairs}/{with_changes}"
    );
}

/// The reimplementation of `pci-layout` above agrees with the tool.
#[test]
fn layout_facts_agree_with_the_pci_layout_tool() {
    let (Some(tool), Some(cases)) = (
        shared_path("tools/pci-layout"),
        shared_path("conformance/cases"),
    ) else {
        return;
    };
    let dirs = case_dirs(&cases);
    let mut checked = 0;
    for dir in dirs.iter().step_by(9) {
        let path = dir.join("expected.xml");
        let Ok(xml) = fs::read_to_string(&path) else {
            continue;
        };
        let out = std::process::Command::new("python3")
            .arg(&tool)
            .arg(&path)
            .output()
            .expect("python3 runs the shared pci-layout tool");
        assert!(out.status.success(), "pci-layout {}", path.display());
        let tool_lines: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let n = child_spans(&xml).2.len();
        let side = Side {
            doc: Document::parse(&xml).unwrap(),
            to_old: (0..n).map(Some).collect(),
        };
        let ours = facts(&xml, &side);
        // Same facts: ours carry the device model too, which pci-layout leaves out.
        assert_eq!(ours.len(), tool_lines.len(), "{}", path.display());
        for (id, fact) in &ours {
            let expected = match id {
                Id::PciController(index) => format!("pci-controller index={index} {fact}"),
                _ => {
                    let start = fact
                        .find("pci ")
                        .or_else(|| fact.find("unassigned"))
                        .unwrap();
                    let end = fact
                        .find(" model=")
                        .filter(|&e| e > start)
                        .unwrap_or(fact.len());
                    fact[start..end].to_string()
                }
            };
            assert!(
                tool_lines.iter().any(|l| l.ends_with(&expected)),
                "{}: {id:?} {fact}",
                path.display()
            );
        }
        checked += 1;
    }
    println!("{checked} files checked against pci-layout");
    assert!(checked >= 20, "only {checked} files checked");
}
