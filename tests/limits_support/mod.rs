//! Documents at and around the input limits of `src/limits.rs`, shared by `tests/limits.rs`
//! (errors and memory) and `benches/limits.rs` (time).
#![allow(dead_code)]

use virtpci::limits::{MAX_DOMAIN_CONTROLLERS, MAX_XML_ATTRIBUTES, MAX_XML_DEPTH};

/// `depth` elements, each inside the one before.
pub fn nested(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 7);
    for _ in 0..depth {
        s.push_str("<a>");
    }
    for _ in 0..depth {
        s.push_str("</a>");
    }
    s
}

/// A root holding `n - 1` empty elements: `n` in all.
pub fn many_elements(n: usize) -> String {
    format!("<r>{}</r>", "<a/>".repeat(n - 1))
}

/// One element with `n` attributes.
pub fn attributes(n: usize) -> String {
    let mut s = String::from("<a");
    for i in 0..n {
        s.push_str(&format!(" b{i}='{i}'"));
    }
    s.push_str("/>");
    s
}

/// About `bytes` of elements with as many attributes as allowed.
pub fn wide(bytes: usize) -> String {
    let element = attributes(MAX_XML_ATTRIBUTES).replace("<a", "<e");
    repeat_within(bytes, &element)
}

/// About `bytes` of element towers as deep as allowed.
pub fn deep(bytes: usize) -> String {
    repeat_within(bytes, &nested(MAX_XML_DEPTH - 1))
}

fn repeat_within(bytes: usize, piece: &str) -> String {
    let mut doc = String::from("<r>");
    while doc.len() + piece.len() + 4 < bytes {
        doc.push_str(piece);
    }
    doc.push_str("</r>");
    doc
}

/// A q35 domain with these devices.
pub fn q35_domain(devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>t</name><os><type arch='x86_64' machine='q35'>hvm</type>\
         </os><devices>{devices}</devices></domain>"
    )
}

/// A q35 domain whose devices are `n` controllers made by `make`.
pub fn controllers(n: usize, make: impl Fn(usize) -> String) -> String {
    q35_domain(&(0..n).map(make).collect::<String>())
}

/// Domains with as many controllers as allowed, in the orderings that cost most to place in
/// libvirt's order: all index-less, indexes descending, every one of its own type.
pub fn costliest_controller_domains() -> [(&'static str, String); 3] {
    let n = MAX_DOMAIN_CONTROLLERS;
    [
        (
            "index-less",
            controllers(n, |_| "<controller type='ccid'/>".into()),
        ),
        (
            "descending indexes",
            controllers(n, |i| {
                format!("<controller type='ccid' index='{}'/>", n - i)
            }),
        ),
        (
            "distinct types",
            controllers(n, |i| format!("<controller type='t{i}'/>")),
        ),
    ]
}
