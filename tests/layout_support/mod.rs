//! Pieces of the canonical PCI layout of `../shared/tools/pci-layout` shared by the tests
//! that compare with it: number normalisation and the fact printed for an `<address>`.
#![allow(dead_code)]

use virtpci::xml::Document;

pub fn number(v: &str) -> String {
    let v = v.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => v.parse::<i64>().ok(),
    };
    parsed.map_or_else(|| v.to_string(), |n| n.to_string())
}

pub fn address_fact(doc: &Document<'_>, id: usize) -> Option<String> {
    let a = doc.element(id);
    match a.attr("type") {
        Some("pci") => {
            let part = |name: &str| {
                a.attr(name)
                    .map(number)
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(0)
            };
            let mut s = format!(
                "pci {:04x}:{:02x}:{:02x}.{:x}",
                part("domain"),
                part("bus"),
                part("slot"),
                part("function")
            );
            if let Some(mf) = a.attr("multifunction") {
                s.push_str(&format!(" multifunction={mf}"));
            }
            Some(s)
        }
        Some("unassigned") => Some("unassigned".into()),
        _ => None,
    }
}

/// The facts of the `<controller type='pci'>` element `dev`: model, model name, every target
/// value and node, and address, as pci-layout prints them after the controller's index.
pub fn pci_controller_facts(doc: &Document<'_>, dev: usize) -> String {
    let el = doc.element(dev);
    let mut facts = vec![format!("model={}", el.attr("model").unwrap_or("None"))];
    if let Some(name) = doc
        .child(dev, "model")
        .and_then(|m| doc.element(m).attr("name"))
    {
        facts.push(format!("model-name={name}"));
    }
    if let Some(t) = doc.child(dev, "target") {
        let mut attrs: Vec<_> = doc.element(t).attrs.iter().collect();
        attrs.sort_by(|a, b| a.name.cmp(b.name));
        for a in attrs {
            facts.push(format!("target.{}={}", a.name, number(a.value)));
        }
        if let Some(node) = doc.child(t, "node") {
            facts.push(format!("target.node={}", number(doc.element(node).text)));
        }
    }
    let a = doc.child(dev, "address").and_then(|a| address_fact(doc, a));
    facts.push(format!("address={}", a.as_deref().unwrap_or("none")));
    facts.join(" ")
}
