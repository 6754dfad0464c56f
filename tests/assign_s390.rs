//! s390x `s390-ccw-virtio` through the library and the C entry point: virtio devices on CCW
//! with libvirt's device numbers, PCI where asked with zPCI identifiers, libvirt's refusals
//! word for word (each answer checked with libvirt-oracle, libvirt 9.0), and what the
//! features beyond placement do there (--explain names CCW numbers; the ABI check compares
//! CCW numbers and zPCI ids; the hotplug address set gives them; address preferences on CCW
//! devices refuse clearly).

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use virtpci::abi::{check_abi_stability, AbiOptions};
use virtpci::assign::explain::{explain, Reason};
use virtpci::assign::HotplugAddressSet;
use virtpci::{assign_domain_xml, ErrorCode};

fn domain(devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>z</name><memory>1048576</memory>\
         <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    )
}

const DISK: &str = "<disk type='file' device='disk'><source file='/a.img'/>\
    <target dev='vda' bus='virtio'/></disk>";
const NIC: &str = "<interface type='user'><mac address='52:54:00:00:00:01'/></interface>";

fn hostdev(bus: u32, address: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
         <address domain='0' bus='{bus}' slot='0' function='0'/></source>{address}</hostdev>"
    )
}

fn ccw(devno: u32) -> String {
    format!("<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x{devno:04x}'/>")
}

#[test]
fn virtio_devices_take_the_lowest_free_ccw_numbers() {
    // The interface (no model: virtio on s390x) skips the disk's explicit 0x0000; the
    // memory balloon libvirt adds comes last.
    let disk = DISK.replace("</disk>", &format!("{}</disk>", ccw(0)));
    let out = assign_domain_xml(&domain(&format!("{disk}{NIC}")))
        .unwrap()
        .xml;
    assert!(
        out.contains(&NIC.replace("</interface>", &format!("{}</interface>", ccw(1)))),
        "{out}"
    );
    assert!(out.contains(&ccw(2)), "{out}");
    assert!(out.contains("<memballoon model='virtio'>"), "{out}");
    assert!(!out.contains("type='pci' domain"), "{out}");
    assert!(
        out.contains("<controller type='pci' index='0' model='pci-root'/>"),
        "{out}"
    );
}

#[test]
fn pci_devices_get_zpci_identifiers() {
    // The first hostdev gives uid 1: the second gets uid 2 and the lowest free fid, 1.
    let devices = hostdev(1, "<address type='pci'><zpci uid='1'/></address>") + &hostdev(2, "");
    let out = assign_domain_xml(&domain(&devices)).unwrap().xml;
    assert!(
        out.contains("<zpci uid='1' fid='0x00000000'/>"),
        "the given uid is kept and the fid filled in: {out}"
    );
    assert!(
        out.contains("<zpci uid='0x0002' fid='0x00000001'/>"),
        "{out}"
    );
    assert!(
        out.contains("slot='0x01'") && out.contains("slot='0x02'"),
        "{out}"
    );
}

#[test]
fn refusals_keep_libvirt_words() {
    let cases = [
        (
            format!(
                "{}{}",
                DISK.replace("</disk>", &format!("{}</disk>", ccw(5))),
                NIC.replace("</interface>", &format!("{}</interface>", ccw(5)))
            ),
            ErrorCode::XmlError,
            "XML error: The CCW devno 'fe.0.0005' is in use already",
        ),
        (
            // libvirt prints the identifier in octal here.
            hostdev(1, "<address type='pci'><zpci uid='8'/></address>")
                + &hostdev(2, "<address type='pci'><zpci uid='8'/></address>"),
            ErrorCode::Internal,
            "internal error: zPCI uid 10 is already reserved",
        ),
        (
            hostdev(1, "<address type='pci'><zpci uid='0'/></address>"),
            ErrorCode::XmlError,
            "XML error: Invalid PCI address uid='0x0000', must be > 0x0000 and <= 0xffff",
        ),
        (
            hostdev(1, "<address type='pci'><zpci uid='0x10000'/></address>"),
            ErrorCode::XmlError,
            "XML error: Invalid PCI address uid='0x10000', must be > 0x0000 and <= 0xffff",
        ),
        (
            DISK.replace(
                "</disk>",
                "<address type='ccw' cssid='0xfe' devno='1'/></disk>",
            ),
            ErrorCode::Internal,
            "internal error: Invalid partial specification for virtio ccw address",
        ),
        (
            "<controller type='scsi' model='lsilogic'/>".to_string(),
            ErrorCode::ConfigUnsupported,
            "unsupported configuration: This QEMU doesn't support the LSI 53C895A SCSI \
             controller",
        ),
    ];
    for (devices, code, message) in cases {
        let e = assign_domain_xml(&domain(&devices)).unwrap_err();
        assert_eq!(e.message, message, "{devices}");
        assert_eq!(e.code, code, "{devices}");
    }
}

#[test]
fn the_c_entry_point_writes_ccw_and_zpci() {
    let xml = CString::new(domain(&format!("{DISK}{}", hostdev(1, "")))).unwrap();
    let mut out: *mut c_char = std::ptr::null_mut();
    let text = unsafe {
        let rc =
            virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(xml.as_ptr(), 0, &mut out);
        assert_eq!(rc, 0);
        let s = CStr::from_ptr(out).to_string_lossy().into_owned();
        libc::free(out as *mut libc::c_void);
        s
    };
    assert!(text.contains(&ccw(0)), "{text}");
    assert!(
        text.contains("<zpci uid='0x0001' fid='0x00000000'/>"),
        "{text}"
    );
}

#[test]
fn features_beyond_placement_on_s390x() {
    let xml = domain(&format!("{DISK}{}", hostdev(1, "")));
    // --explain: the CCW number and why, the zPCI identifiers with the PCI address.
    let explained = explain(&xml).unwrap();
    let disk = explained
        .devices
        .iter()
        .find(|d| d.address == "fe.0.0000")
        .expect("the disk's CCW number");
    assert!(matches!(disk.reason, Reason::Ccw { .. }), "{disk:?}");
    assert!(explained
        .devices
        .iter()
        .any(|d| d.address == "0000:00:01.0 zpci uid 0x0001 fid 0x00000000"));
    // Hotplug gives CCW numbers and zPCI ids (tests/hotplug_s390.rs); the PCI-only call
    // refuses rather than answer without them.
    let assigned = assign_domain_xml(&xml).unwrap().xml;
    let mut set = HotplugAddressSet::from_domain_xml(&assigned).unwrap();
    let e = set.reserve_next(NIC).unwrap_err();
    assert_eq!(e.code, ErrorCode::ConfigUnsupported);
    assert!(e.message.contains("s390x"), "{}", e.message);
    assert_eq!(
        set.reserve_next_guest(NIC).unwrap().unwrap().to_string(),
        "fe.0.0002"
    );
    // The ABI check compares CCW numbers and zPCI ids too (tests/abi_s390.rs): a definition
    // and its assigned form are the same guest.
    let report = check_abi_stability(&xml, &assigned, AbiOptions::default()).unwrap();
    assert!(report.is_stable(), "{:?}", report.changes);
    // Preferences: a device bound for CCW is refused with the remedy; numa has no expander.
    let pref = domain(&NIC.replace(
        "</interface>",
        "<addressPreferences hotplug='no'/></interface>",
    ));
    let e = assign_domain_xml(&pref).unwrap_err();
    assert!(e.message.contains("goes on CCW"), "{}", e.message);
    let numa = domain(&hostdev(1, "<addressPreferences numa='0'/>"));
    assert!(assign_domain_xml(&numa).is_err());
}
