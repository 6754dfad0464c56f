//! Issue 17, points 2 and 8: every value read from element text is decoded as libvirt's
//! parser (libxml2) decodes it, and what libxml2 refuses (undefined entities, bad character
//! references) or what would expand an entity (a DOCTYPE declaring one) is refused.
//!
//! The text values read are the domain's `<name>` and `<uuid>` (by the hostdev reader and the
//! ABI check) and a PCI controller's `<target><node>` (by the domain reader); each is written
//! here with a predefined entity, a decimal and a hexadecimal character reference and a CDATA
//! section.

use virtpci::abi::{check_abi_stability, AbiOptions};
use virtpci::xml::hostdevs::{format_uuid, hostdevs_from_domain_xml};
use virtpci::xml::{Document, DomainDef};
use virtpci::{assign_domain_xml, ErrorCode};

const UUID: &str = "c7a5fdbd-edaf-9455-926a-d65c16db1809";

fn domain(name: &str, uuid: &str, devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>\
         <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\
         <devices><controller type='pci' index='0' model='pcie-root'/>{devices}</devices></domain>"
    )
}

/// `a&b` written four ways, and the uuid with some of its characters as references.
const NAMES: [&str; 5] = [
    "a&amp;b",
    "a&#38;b",
    "a&#x26;b",
    "<![CDATA[a&b]]>",
    "a<![CDATA[&]]>b",
];
const UUIDS: [&str; 3] = [
    "c7a5fdbd-edaf-9455-926a-d65c16db180&#57;",
    "&#x63;7a5fdbd-edaf-9455-926a-d65c16db1809",
    "<![CDATA[c7a5fdbd-edaf-9455-926a-d65c16db1809]]>",
];

#[test]
fn the_hostdev_reader_decodes_name_and_uuid() {
    for name in NAMES {
        let got = hostdevs_from_domain_xml(&domain(name, UUID, "")).unwrap();
        assert_eq!(got.name.as_deref(), Some("a&b"), "{name}");
    }
    for uuid in UUIDS {
        let got = hostdevs_from_domain_xml(&domain("g", uuid, "")).unwrap();
        assert_eq!(
            got.uuid.map(|u| format_uuid(&u)).as_deref(),
            Some(UUID),
            "{uuid}"
        );
    }
}

#[test]
fn the_abi_check_decodes_name_and_uuid() {
    for name in NAMES {
        // No uuid on either side: the names decide whether it is one guest.
        let old = domain(name, "", "").replace("<uuid></uuid>", "");
        let new = domain("a&amp;b", "", "").replace("<uuid></uuid>", "");
        let report = check_abi_stability(&old, &new, AbiOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {}", e.message));
        assert_eq!(report.guest.as_deref(), Some("a&b"), "{name}");
        let renamed = domain("b", "", "").replace("<uuid></uuid>", "");
        let err = check_abi_stability(&old, &renamed, AbiOptions::default()).unwrap_err();
        assert!(err.message.contains("source 'a&b'"), "{}", err.message);
    }
    for uuid in UUIDS {
        let old = domain("old", uuid, "");
        let new = domain("new", UUID, "");
        check_abi_stability(&old, &new, AbiOptions::default())
            .unwrap_or_else(|e| panic!("{uuid}: {}", e.message));
    }
}

#[test]
fn the_domain_reader_decodes_a_controller_numa_node() {
    for node in ["&#49;", "&#x31;", "<![CDATA[1]]>", " &#49; "] {
        let xml = domain(
            "g",
            UUID,
            &format!(
                "<controller type='pci' index='1' model='pcie-expander-bus'>\
                 <target busNr='254'><node>{node}</node></target></controller>"
            ),
        );
        let doc = Document::parse(&xml).unwrap();
        let def = DomainDef::from_document(&doc).unwrap();
        let numa = def
            .devices
            .iter()
            .filter_map(|d| d.controller())
            .find(|c| c.index() == 1)
            .and_then(|c| c.pci.as_ref())
            .and_then(|(_, opts)| opts.numa_node);
        assert_eq!(numa, Some(1), "{node}");
    }
}

#[test]
fn text_is_decoded_once_and_comments_are_not_text() {
    // `&amp;lt;` is the text `&lt;`, not `<`; a comment between two pieces leaves them joined.
    let got = hostdevs_from_domain_xml(&domain("x&amp;lt;y<!-- c -->z", UUID, "")).unwrap();
    assert_eq!(got.name.as_deref(), Some("x&lt;yz"));
    let got = hostdevs_from_domain_xml(&domain("a<!-- c --> <!-- d -->b", UUID, "")).unwrap();
    assert_eq!(got.name.as_deref(), Some("a b"));
}

fn refused(xml: &str) -> String {
    let err = assign_domain_xml(xml).expect_err("must be refused");
    assert_eq!(err.code, ErrorCode::XmlError, "{}", err.message);
    assert!(err.message.starts_with("XML error: "), "{}", err.message);
    err.message
}

#[test]
fn references_libxml2_refuses_are_refused_in_text_and_attributes() {
    for bad in [
        "a&x;b",        // not defined
        "a&b",          // no name
        "a&amp b",      // no ';'
        "a&#;b",        // no digits
        "a&#x;b",       // no digits
        "a&#0;b",       // U+0000 is not an XML character
        "a&#1;b",       // nor are the C0 controls but tab, LF and CR
        "a&#xD800;b",   // nor surrogates
        "a&#xFFFE;b",   // nor U+FFFE/U+FFFF
        "a&#x110000;b", // beyond Unicode
        "a&#+38;b",     // digits only
        "a&#99999999999999999999;b",
    ] {
        let message = refused(&domain(bad, UUID, ""));
        assert!(message.contains("line 1"), "{bad}: {message}");
        let in_attr = domain(
            "g",
            UUID,
            &format!("<interface type='user' name='{bad}'><model type='virtio'/></interface>"),
        );
        refused(&in_attr);
    }
    // Allowed: tab, LF, CR and the top of Unicode.
    for good in ["&#9;&#10;&#13;", "&#x10FFFF;", "&#xE000;"] {
        assert!(
            assign_domain_xml(&domain(&format!("g{good}"), UUID, "")).is_ok(),
            "{good}"
        );
    }
}

#[test]
fn a_doctype_declaring_entities_is_refused_and_never_expanded() {
    let body = domain("&x;", UUID, "");
    for subset in [
        "<!ENTITY x 'a&amp;b'>",
        "<!ENTITY x SYSTEM 'file:///etc/passwd'>",
        "<!ENTITY % p 'q'>",
        // billion laughs
        "<!ENTITY x0 'ha'><!ENTITY x1 '&x0;&x0;&x0;&x0;&x0;&x0;&x0;&x0;&x0;&x0;'>\
         <!ENTITY x2 '&x1;&x1;&x1;&x1;&x1;&x1;&x1;&x1;&x1;&x1;'>\
         <!ENTITY x '&x2;&x2;&x2;&x2;&x2;&x2;&x2;&x2;&x2;&x2;'>",
    ] {
        let message = refused(&format!("<!DOCTYPE domain [{subset}]>\n{body}"));
        assert!(message.contains("ENTITY"), "{subset}: {message}");
    }
    // A DOCTYPE without declarations is fine, as in libvirt.
    let plain = domain("g", UUID, "");
    assert!(assign_domain_xml(&format!("<!DOCTYPE domain>\n{plain}")).is_ok());
    assert!(assign_domain_xml(&format!("<!DOCTYPE domain [ ]>\n{plain}")).is_ok());
}

#[test]
fn the_output_keeps_references_as_written() {
    // Decoding is for reading values; the text given back is the input's, byte for byte.
    let xml = domain("a&amp;b&#38;<![CDATA[&]]>", UUID, "");
    let out = assign_domain_xml(&xml).unwrap();
    assert!(
        out.xml.contains("<name>a&amp;b&#38;<![CDATA[&]]></name>"),
        "{}",
        out.xml
    );
}
