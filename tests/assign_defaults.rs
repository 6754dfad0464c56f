//! libvirt's post-parse defaults on hand-written definitions, and the two libvirt levels.
//! Every expectation here was seen with the real libvirt (9.0: libvirt-oracle; 11.3:
//! libvirt-oracle-trixie).

use virtpci::assign::LibvirtLevel;
use virtpci::{assign_domain_xml, assign_domain_xml_with, AssignOptions, ErrorCode};

fn domain(machine: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>d</name><os><type arch='x86_64' machine='{machine}'>hvm\
         </type></os><devices>{devices}</devices></domain>"
    )
}

fn assign(machine: &str, devices: &str) -> String {
    assign_domain_xml(&domain(machine, devices))
        .unwrap_or_else(|e| panic!("{}", e.message))
        .xml
}

fn assign_at(level: LibvirtLevel, xml: &str) -> virtpci::Result<String> {
    let options = AssignOptions {
        libvirt: level,
        ..Default::default()
    };
    assign_domain_xml_with(xml, options).map(|o| o.xml)
}

const DISK: &str = "<disk type='file' device='disk'><source file='/tmp/x.img'/>";

#[test]
fn index_less_usb2_companions_share_one_slot() {
    // UHCI1 first: the EHCI and UHCI2 after it join its index, so one multifunction slot.
    let out = assign(
        "pc",
        "<controller type='usb' model='ich9-uhci1'/><controller type='usb' model='ich9-ehci1'/>\
         <controller type='usb' model='ich9-uhci2'/>",
    );
    for (model, function) in [("uhci1", "0x0"), ("ehci1", "0x7"), ("uhci2", "0x1")] {
        let start = format!("<controller type='usb' index='0' model='ich9-{model}'>");
        let at = out.find(&start).unwrap_or_else(|| panic!("{model}: {out}"));
        let address = format!("bus='0x00' slot='0x02' function='{function}'");
        let end = out[at..].find("</controller>").unwrap() + at;
        assert!(out[at..end].contains(&address), "{model}: {out}");
    }
}

#[test]
fn default_controller_models_are_written() {
    // USB without a model is piix3-uhci on q35 too (QEMU 7.2); SCSI 'auto' is lsilogic.
    let out = assign("q35", "<controller type='usb' index='0'/>");
    assert!(
        out.contains("<controller type='usb' index='0' model='piix3-uhci'>"),
        "{out}"
    );
    let out = assign("pc", "<controller type='scsi' model='auto'/>");
    assert!(
        out.contains("<controller type='scsi' index='0' model='lsilogic'>"),
        "{out}"
    );
}

#[test]
fn usb_none_loses_its_address_and_allows_no_other_usb() {
    let out = assign(
        "pc",
        "<controller type='usb' index='0' model='none'>\n<address type='pci' domain='0x0000' \
         bus='0x00' slot='0x05' function='0x0'/>\n</controller>",
    );
    assert!(
        out.contains("<controller type='usb' index='0' model='none'/>"),
        "{out}"
    );
    let e = assign_domain_xml(&domain(
        "q35",
        "<controller type='usb' index='1' model='qemu-xhci'/>\
         <controller type='usb' index='0' model='none'/>",
    ))
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::XmlDetail);
    assert_eq!(
        e.message,
        "Can't add another USB controller: USB is disabled for this domain"
    );
}

#[test]
fn disks_imply_their_controllers() {
    // sdz is SATA unit 25: controller 4; every index up to it is added, behind a
    // pcie-to-pci-bridge on q35.
    let out = assign(
        "q35",
        &format!("{DISK}<target dev='sda' bus='sata'/></disk>{DISK}<target dev='sdz' bus='sata'/></disk>"),
    );
    for index in 1..=4 {
        assert!(
            out.contains(&format!("<controller type='sata' index='{index}'>")),
            "{out}"
        );
    }
    let e = assign_domain_xml(&domain(
        "pc",
        &format!("{DISK}<target dev='foo' bus='virtio'/></disk>"),
    ))
    .unwrap_err();
    assert_eq!(
        e.message,
        "XML error: Unknown disk name 'foo' and no address specified"
    );
    // hde is IDE controller 1: pc has only its built-in one, q35 none.
    let e =
        assign_domain_xml(&domain("pc", &format!("{DISK}<target dev='hde'/></disk>"))).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Only 1 IDE controller is supported"
    );
    let e = assign_domain_xml(&domain("q35", &format!("{DISK}<target dev='hdc'/></disk>")))
        .unwrap_err();
    assert_eq!(
        e.message,
        "unsupported configuration: IDE controllers are unsupported for this QEMU binary or machine type"
    );
    let e = assign_domain_xml(&domain("pc", "<controller type='ide' index='1'/>")).unwrap_err();
    assert_eq!(
        e.message,
        "unsupported configuration: Only a single IDE controller is supported for this machine type"
    );
}

#[test]
fn levels_differ_where_their_libvirt_does() {
    let v9 = LibvirtLevel::V9_0;
    let v11 = LibvirtLevel::V11_3;
    let old = domain("pc-i440fx-2.3", "");
    assert!(assign_at(v9, &old).is_ok());
    assert_eq!(
        assign_at(v11, &old).unwrap_err().message,
        "unsupported configuration: Emulator '/usr/bin/qemu-system-x86_64' does not support \
         machine type 'pc-i440fx-2.3'"
    );
    assert!(assign_at(v9, &domain("pc-i440fx-8.0", "")).is_err());
    assert!(assign_at(v11, &domain("pc-i440fx-8.0", "")).is_ok());
    let vhost = domain(
        "pc",
        "<interface type='vhostuser'><source type='unix' path='/tmp/v.sock' mode='client'/>\
         <model type='virtio'/></interface>",
    );
    assert!(assign_at(v9, &vhost).is_ok());
    assert_eq!(
        assign_at(v11, &vhost).unwrap_err().message,
        "unsupported configuration: 'interface' requires shared memory"
    );
    let shared = vhost.replace(
        "<devices>",
        "<memoryBacking><access mode='shared'/></memoryBacking><devices>",
    );
    assert!(assign_at(v11, &shared).is_ok());
    // libvirt 9.0 does not know <crypto> (it drops it); 11.3 places it.
    let crypto = domain(
        "pc",
        "<crypto model='virtio' type='qemu'><backend model='builtin' queues='1'/></crypto>",
    );
    let slot3 = "<crypto model='virtio' type='qemu'><backend model='builtin' queues='1'/>\
                 <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>";
    assert!(!assign_at(v9, &crypto).unwrap().contains(slot3));
    assert!(assign_at(v11, &crypto).unwrap().contains(slot3));
}

#[test]
fn uhci_companions_need_another_usb_controller_and_get_their_start_port() {
    // Companions alone are refused, whatever their index (also when libvirt would add its
    // default controller next to them on q35).
    for (machine, devices) in [
        (
            "pc",
            "<controller type='usb' index='0' model='ich9-uhci1'/>",
        ),
        (
            "q35",
            "<controller type='usb' index='1' model='ich9-uhci1'/>",
        ),
    ] {
        let e = assign_domain_xml(&domain(machine, devices)).unwrap_err();
        assert_eq!(e.code, ErrorCode::XmlDetail);
        assert_eq!(e.message, "No master USB controller specified");
    }
    let out = assign(
        "pc",
        "<controller type='usb' index='0' model='piix3-uhci'/>\
         <controller type='usb' index='0' model='ich9-uhci2'/>",
    );
    assert!(
        out.contains("model='ich9-uhci2'><master startport='2'/><address"),
        "{out}"
    );
}
