//! Issue 17, points 6 and 7: a message quotes at most a short prefix of bad input (a 64 MiB
//! address gave a 64 MiB message), and context added to a message goes after libvirt's prefix
//! ("XML error: device 0: ...", not "device 0: XML error: ...").

use virtpci::abi::{check_abi_stability, AbiOptions};
use virtpci::assign::HotplugAddressSet;
use virtpci::{assign_domain_xml, assign_domain_xml_with, AssignOptions, Error, PciAddress};

/// The bound every message keeps (README, "Bad input").
const MAX_MESSAGE: usize = 1024;
/// The longest piece of input a message repeats.
const MAX_QUOTED: usize = 64;

/// A string of `len` bytes of `c`, which no template below contains.
fn filler(len: usize) -> String {
    "Q".repeat(len)
}

/// The message is bounded, and repeats at most `MAX_QUOTED` bytes of the filler.
fn check_bounded(what: &str, err: &Error) {
    let m = &err.message;
    assert!(!m.is_empty(), "{what}: empty message");
    assert!(
        m.len() <= MAX_MESSAGE,
        "{what}: {} bytes: {}",
        m.len(),
        &m[..200]
    );
    assert!(
        !m.contains(&filler(MAX_QUOTED + 1)),
        "{what}: the message repeats more than {MAX_QUOTED} bytes of its input: {m}"
    );
}

fn domain(devices: &str) -> String {
    format!(
        "<domain type='kvm'><name>g</name>\
         <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>\
         <devices><controller type='pci' index='0' model='pcie-root'/>{devices}</devices></domain>"
    )
}

fn nic(inner: &str) -> String {
    format!("<interface type='user'><model type='virtio'/>{inner}</interface>")
}

/// Domain XML with `@` where the long input goes, each refused with a message that names it.
fn templates() -> Vec<String> {
    vec![
        // Attribute values read as numbers, names, models.
        domain(&nic("<address type='pci' bus='@' slot='1'/>")),
        domain("<controller type='pci' index='@' model='pcie-root-port'/>"),
        domain("<controller type='pci' index='1' model='@'/>"),
        domain("<controller type='pci' index='1' model='pcie-root-port'><target chassis='@'/></controller>"),
        domain("<controller type='pci' index='1' model='pcie-root-port'><target hotplug='@'/></controller>"),
        domain("<controller type='pci' index='1' model='pcie-expander-bus'><target busNr='200'><node>@</node></target></controller>"),
        domain("<controller type='pci' index='1' model='pcie-root-port'><model name='@'/></controller>"),
        domain(&nic("<addressPreferences hotplug='@'/>")),
        domain(&nic("<addressPreferences bus='@'/>")),
        domain(&nic("<addressPreferences numa='@'/>")),
        domain(&nic("<addressPreferences @='1'/>")),
        domain(&nic("<hotplug require='@'/>")),
        domain("<disk type='file' device='disk'><target dev='vda' bus='virtio'/><address type='@'/></disk>"),
        // Names of elements, in the scanner's messages and the reader's.
        "<@/>".to_string(),
        "<domain><@ a=1/></domain>".to_string(),
        "<domain><@>".to_string(),
        "<domain></@>".to_string(),
        "<domain><devices></@></devices></domain>".to_string(),
        // References.
        domain(&nic("<alias name='&@;'/>")),
        domain("").replace("<name>g</name>", "<name>&@;</name>"),
        domain("").replace("<name>g</name>", "<name>&#@;</name>"),
    ]
}

#[test]
fn domain_xml_errors_quote_a_short_prefix_of_their_input() {
    let long = filler(1 << 20);
    for template in templates() {
        let xml = template.replace('@', &long);
        let err = assign_domain_xml(&xml).expect_err(&template);
        check_bounded(&template, &err);
    }
}

#[test]
fn a_64_mib_address_gives_a_short_message() {
    let long = filler(64 << 20);
    for text in [
        long.clone(),
        format!("0000:00:{long}.0"),
        format!("{long}:00:01.0"),
        format!("0000:00:01.{long}"),
    ] {
        let err = PciAddress::parse(&text).unwrap_err();
        check_bounded("address", &err);
    }
}

#[test]
fn abi_check_errors_quote_a_short_prefix_of_names_and_uuids() {
    let long = filler(1 << 20);
    let guest = |name: &str, uuid: Option<&str>| {
        let uuid = uuid.map_or(String::new(), |u| format!("<uuid>{u}</uuid>"));
        domain("").replace("<name>g</name>", &format!("<name>{name}</name>{uuid}"))
    };
    let err = check_abi_stability(
        &guest(&long, None),
        &guest("b", None),
        AbiOptions::default(),
    )
    .unwrap_err();
    check_bounded("names", &err);
    let err = check_abi_stability(
        &guest("a", Some(&long)),
        &guest("a", Some("c7a5fdbd-edaf-9455-926a-d65c16db1809")),
        AbiOptions::default(),
    )
    .unwrap_err();
    check_bounded("uuids", &err);
}

#[test]
fn slot_plan_errors_quote_a_short_prefix_and_keep_libvirts_prefix_first() {
    let q35 = domain("<controller type='pci' index='1' model='pcie-root-port'/>");
    let mut set = HotplugAddressSet::from_domain_xml(&q35).unwrap();
    let long = filler(1 << 20);
    let tag = format!("<{long}/>");
    let err = set.plan_slot_attach(&[&tag]).unwrap_err();
    check_bounded("slot plan tag", &err);
    // Point 7: the device's number follows libvirt's prefix.
    let err = set.plan_slot_attach(&["<interface"]).unwrap_err();
    assert!(
        err.message.starts_with("XML error: device 0: "),
        "{}",
        err.message
    );
    let nic = nic("");
    let err = set.plan_slot_attach(&[&nic, "<interface"]).unwrap_err();
    assert!(
        err.message.starts_with("XML error: device 1: "),
        "{}",
        err.message
    );
}

#[test]
fn composed_messages_carry_one_prefix_at_their_start() {
    // More hot-plug room than a domain has: the error of the place that did not fit is part
    // of the message, without a second prefix inside it.
    let options = AssignOptions {
        hotplug_ports: Some(100_000),
        ..AssignOptions::default()
    };
    let err = assign_domain_xml_with(&domain(""), options).unwrap_err();
    let prefix = err.code.prefix();
    assert!(err.message.starts_with(prefix), "{}", err.message);
    for inner in [
        "internal error: ",
        "XML error: ",
        "unsupported configuration: ",
    ] {
        assert!(
            !err.message[prefix.len()..].contains(inner),
            "a second prefix: {}",
            err.message
        );
    }
}

#[test]
fn the_cli_quotes_a_short_prefix_of_a_path_it_cannot_read() {
    // A path of 4,000 bytes (under the kernel's limit for an argument).
    let path = format!("/nonexistent/{}", filler(4000));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_virtpci"))
        .args(["assign", &path])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read '/nonexistent/QQ"),
        "{stderr}"
    );
    assert!(
        stderr.len() <= MAX_MESSAGE + "error: \n".len(),
        "{}",
        stderr.len()
    );
    assert!(!stderr.contains(&filler(MAX_QUOTED + 1)), "{stderr}");
}
