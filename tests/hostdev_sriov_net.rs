//! `<interface type='hostdev'>` on the simulated SR-IOV server: only a VF whose PF has a
//! netdev may be given as a network interface, with libvirt's words for every refusal, and
//! nothing changes when one is refused.

mod host_support;
mod hostdev_support;

use hostdev_support::*;
use virtpci::ErrorCode;

const QEMU: &str = "QEMU";

fn interface_domain(bus: u32, slot: u32, function: u32, inner: &str) -> String {
    format!(
        "<domain type='kvm'><name>vm1</name><devices>\
         <interface type='hostdev' managed='yes'><source>\
         <address type='pci' domain='0' bus='{bus:#x}' slot='{slot:#x}' function='{function:#x}'/>\
         </source>{inner}</interface></devices></domain>"
    )
}

/// Prepare `xml` on `b` and expect it refused with `code` and `message`, nothing changed.
fn refused(b: &Bench, xml: &str, code: ErrorCode, message: &str) {
    let before = b.drivers();
    let e = b.mgr.prepare_domain(QEMU, xml, 0).unwrap_err();
    assert_eq!((e.code, e.message.as_str()), (code, message), "{xml}");
    assert_eq!(b.drivers(), before, "{xml}");
    let book = b.book();
    assert!(book.active.is_empty() && book.inactive.is_empty(), "{xml}");
    assert_eq!(b.host.faults().attempted_total(), 0, "{xml}");
}

#[test]
fn a_pf_as_an_interface_is_refused_with_libvirts_words() {
    let b = Bench::new("sriov-server");
    // 3b:00.0 is the X710's first PF (8 VFs); 3b:00.1 its second port.
    for function in [0, 1] {
        refused(
            &b,
            &interface_domain(0x3b, 0, function, "<mac address='52:54:00:aa:bb:cc'/>"),
            ErrorCode::ConfigUnsupported,
            "unsupported configuration: Interface type hostdev is currently supported on SR-IOV Virtual Functions only",
        );
    }
    // Any other device that is not a VF, too (the BMC's VGA).
    refused(
        &b,
        &interface_domain(3, 0, 0, ""),
        ErrorCode::ConfigUnsupported,
        "unsupported configuration: Interface type hostdev is currently supported on SR-IOV Virtual Functions only",
    );
    // The dry run reports it as a violation.
    let report = b
        .mgr
        .check_domain(QEMU, &interface_domain(0x3b, 0, 0, ""), 0)
        .unwrap();
    assert!(report.violations.iter().any(|v| v.message.contains(
        "Interface type hostdev is currently supported on SR-IOV Virtual Functions only"
    )));
    // The same PF as a plain <hostdev> is still allowed to be checked (no interface rule).
    let plain = "<domain type='kvm'><name>vm1</name><devices>\
        <hostdev mode='subsystem' type='pci' managed='yes'><source>\
        <address domain='0' bus='0x3b' slot='0' function='0'/></source></hostdev>\
        </devices></domain>";
    let report = b.mgr.check_domain(QEMU, plain, 0).unwrap();
    assert!(!report
        .violations
        .iter()
        .any(|v| v.message.contains("Virtual Functions only")));
}

#[test]
fn bad_macs_and_vlans_are_refused_before_anything_moves() {
    let b = Bench::new("sriov-server");
    let vf = |inner: &str| interface_domain(0x3b, 2, 0, inner);
    refused(
        &b,
        &vf("<mac address='52:54:00:aa:bb'/>"),
        ErrorCode::Internal,
        "internal error: unable to parse mac address '52:54:00:aa:bb'",
    );
    refused(
        &b,
        &vf("<mac address='01:00:5e:00:00:01'/>"),
        ErrorCode::XmlError,
        "XML error: expected unicast mac address, found multicast '01:00:5e:00:00:01'",
    );
    refused(
        &b,
        &vf("<vlan><tag id='42'/><tag id='43'/></vlan>"),
        ErrorCode::ConfigUnsupported,
        "unsupported configuration: vlan trunking is not supported by SR-IOV network devices",
    );
    refused(
        &b,
        &vf("<vlan trunk='yes'><tag id='42'/></vlan>"),
        ErrorCode::ConfigUnsupported,
        "unsupported configuration: vlan trunking is not supported by SR-IOV network devices",
    );
    refused(
        &b,
        &vf("<vlan><tag id='4096'/></vlan>"),
        ErrorCode::XmlError,
        "XML error: vlan tag id 4096 too large (maximum 4095)",
    );
    refused(
        &b,
        &vf("<vlan></vlan>"),
        ErrorCode::XmlError,
        "XML error: missing tag id - each <vlan> must have at least one <tag id='n'/> subelement",
    );
}

#[test]
fn a_vf_whose_pf_has_no_netdev_is_refused() {
    let b = Bench::new("sriov-server");
    // The PF's driver lets go of its netdev (the simulated tree loses ens1f0).
    let pf_dir = std::fs::canonicalize(b.tree.join("bus/pci/devices/0000:3b:00.0")).unwrap();
    std::fs::remove_dir_all(pf_dir.join("net")).unwrap();
    let _ = std::fs::remove_file(b.tree.join("class/net/ens1f0"));
    refused(
        &b,
        &interface_domain(0x3b, 2, 1, "<mac address='52:54:00:aa:bb:cc'/>"),
        ErrorCode::Internal,
        "internal error: The PF device for VF /sys/bus/pci/devices/0000:3b:02.1 has no network device name",
    );
}

#[test]
fn a_vfs_mac_and_vlan_are_refused_not_silently_ignored() {
    let b = Bench::new("sriov-server");
    // Setting them through the PF is not implemented yet: a clear refusal, nothing changed.
    for inner in [
        "<mac address='52:54:00:aa:bb:cc'/>",
        "<vlan><tag id='42'/></vlan>",
        "<mac address='52:54:00:aa:bb:cc'/><vlan><tag id='42'/></vlan>",
    ] {
        refused(
            &b,
            &interface_domain(0x3b, 2, 6, inner),
            ErrorCode::OperationUnsupported,
            "Operation not supported: setting the MAC address and VLAN of SR-IOV VF 0000:3b:02.6 through its PF is not implemented yet; \
             give the VF as <hostdev> (its MAC and VLAN stay as the PF has them) or remove <mac> and <vlan>",
        );
    }
    // A VF interface that asks for neither is prepared and given back.
    let before = b.drivers();
    let xml = interface_domain(0x3b, 2, 6, "");
    b.mgr.prepare_domain(QEMU, &xml, 0).unwrap();
    assert_eq!(b.driver("0000:3b:02.6").as_deref(), Some("vfio-pci"));
    b.mgr.reattach_domain(QEMU, &xml).unwrap();
    assert_eq!(b.drivers(), before);
}
