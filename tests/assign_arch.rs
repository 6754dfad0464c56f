//! Guests of every architecture libvirt runs (issue 16): a domain is either placed with every
//! device that takes an address given one, or refused with "unsupported configuration"
//! naming its architecture and machine type, through the library, the C entry point and the
//! CLI. Never exit 0 with devices left unaddressed. And the features beyond placement (the
//! hotplug address set, the ABI diff, --explain, preferences) on aarch64 and riscv64 virt.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::process::Command;
use virtpci::abi::{check_abi_stability, AbiOptions};
use virtpci::assign::explain::explain;
use virtpci::assign::HotplugAddressSet;
use virtpci::assign::LibvirtLevel;
use virtpci::{assign_domain_xml, assign_domain_xml_with, AssignOptions, ErrorCode};

/// Devices libvirt gives an address on every machine that has a bus for them.
const DEVICES: &str = "\
    <disk type='file' device='disk'><source file='/d.img'/><target dev='vda' bus='virtio'/></disk>\
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>\
    <controller type='scsi' index='0' model='virtio-scsi'/>\
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>";

/// (arch, machine) pairs libvirt defines with the devices above addressed: placed by
/// virtpci or refused.
const MACHINES: &[(&str, &str)] = &[
    ("x86_64", "pc"),
    ("x86_64", "q35"),
    ("i686", "pc-i440fx-7.2"),
    ("x86_64", "microvm"),
    ("x86_64", "isapc"),
    ("aarch64", "virt"),
    ("aarch64", "virt-7.2"),
    ("aarch64", "sbsa-ref"),
    ("aarch64", "vexpress-a15"),
    ("armv7l", "virt"),
    ("riscv64", "virt"),
    ("riscv64", "spike"),
    ("ppc64", "pseries"),
    ("ppc64le", "pseries"),
    ("s390x", "s390-ccw-virtio"),
    ("mips64el", "malta"),
];

fn domain(arch: &str, machine: &str, devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>g</name><memory>1048576</memory>\
         <os><type arch='{arch}' machine='{machine}'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    )
}

/// The direct children of `<devices>` among `tags` that have no `<address>` child.
fn unaddressed(xml: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let devices = &xml[xml.find("<devices>").unwrap()..];
    for tag in ["disk", "interface", "controller", "rng"] {
        let open = format!("<{tag} ");
        let close = format!("</{tag}>");
        let mut rest = devices;
        while let Some(start) = rest.find(&open) {
            let body = &rest[start..];
            let end = match (body.find(&close), body.find("/>")) {
                (Some(c), _) => c + close.len(),
                (None, Some(s)) => s + 2,
                (None, None) => body.len(),
            };
            let element = &body[..end];
            // pcie-root and pci-root take no address.
            if !element.contains("<address") && !element.contains("-root'") {
                missing.push(element.to_string());
            }
            rest = &body[end..];
        }
    }
    missing
}

fn c_assign(xml: &str) -> Result<String, (i32, String)> {
    let input = CString::new(xml).unwrap();
    let mut out: *mut c_char = std::ptr::null_mut();
    unsafe {
        let rc =
            virtpci::ffi::assign::virtpci_domain_assign_pci_addresses(input.as_ptr(), 0, &mut out);
        if rc == 0 {
            let s = CStr::from_ptr(out).to_string_lossy().into_owned();
            libc::free(out as *mut libc::c_void);
            Ok(s)
        } else {
            let code = virtpci::ffi::general::virtpci_last_error_code();
            let msg = CStr::from_ptr(virtpci::ffi::general::virtpci_last_error_message());
            Err((code, msg.to_string_lossy().into_owned()))
        }
    }
}

#[test]
fn never_a_silent_pass_on_any_machine() {
    for level in [LibvirtLevel::V9_0, LibvirtLevel::V11_3] {
        for &(arch, machine) in MACHINES {
            let xml = domain(arch, machine, DEVICES);
            let options = AssignOptions {
                libvirt: level,
                ..Default::default()
            };
            match assign_domain_xml_with(&xml, options) {
                Ok(out) => {
                    let missing = unaddressed(&out.xml);
                    assert!(
                        missing.is_empty(),
                        "{arch} {machine} ({level:?}): accepted with devices unaddressed: {missing:?}"
                    );
                }
                Err(e) => {
                    assert_eq!(
                        e.code,
                        ErrorCode::ConfigUnsupported,
                        "{arch} {machine}: {e}"
                    );
                    assert!(
                        e.message
                            .contains(&format!("architecture '{arch}' machine type '{machine}'")),
                        "{arch} {machine}: {}",
                        e.message
                    );
                }
            }
        }
    }
}

#[test]
fn unplaced_machines_refused_from_c_and_cli() {
    for (arch, machine) in [("aarch64", "sbsa-ref"), ("mips64el", "malta")] {
        let xml = domain(arch, machine, DEVICES);
        let (code, msg) = c_assign(&xml).unwrap_err();
        assert_eq!(code, ErrorCode::ConfigUnsupported as i32);
        assert!(
            msg.starts_with("unsupported configuration: virtpci does not place PCI addresses")
                && msg.contains(machine),
            "{msg}"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_virtpci"))
            .args(["assign", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(xml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unsupported configuration") && err.contains(arch),
            "{err}"
        );
    }
    // Without a machine type the emulator's default is used: on libvirt 9.0 (QEMU 7.2)
    // aarch64's and armv7l's is integratorcp (no PCI), on 11.3 (QEMU 10.0) it is virt.
    let with_video = format!("{DEVICES}<video/>");
    let armv7l = domain("armv7l", "virt", &with_video).replace(" machine='virt'", "");
    let e = assign_domain_xml(&armv7l).unwrap_err();
    assert!(e.message.contains("'integratorcp'"), "{}", e.message);
    let xml = domain("aarch64", "virt", &with_video).replace(" machine='virt'", "");
    let e = assign_domain_xml(&xml).unwrap_err();
    assert!(e.message.contains("'integratorcp'"), "{}", e.message);
    let v11 = AssignOptions {
        libvirt: LibvirtLevel::V11_3,
        ..Default::default()
    };
    let out = assign_domain_xml_with(&xml, v11).unwrap().xml;
    assert!(unaddressed(&out).is_empty(), "{out}");
    // A video without a model is virtio there (checked with libvirt-oracle-trixie): on PCI.
    assert!(out.contains("<video><address type='pci'"), "{out}");
}

#[test]
fn virt_machines_place_like_libvirt() {
    // Checked with libvirt-oracle: one root port per device on pcie-root slot 1
    // (functions 0-7), one spare; riscv64 adds a virtio memory balloon, aarch64 does not.
    let out = assign_domain_xml(&domain("aarch64", "virt", DEVICES))
        .unwrap()
        .xml;
    assert!(out.contains("model='pcie-root'"), "{out}");
    assert_eq!(out.matches("model='pcie-root-port'").count(), 5, "{out}");
    assert!(!out.contains("<memballoon"), "{out}");
    let out = assign_domain_xml(&domain("riscv64", "virt", DEVICES))
        .unwrap()
        .xml;
    assert!(out.contains("<memballoon model='virtio'>"), "{out}");
    // One virtio-mmio device: every address-less virtio device follows.
    let mmio = DEVICES.to_string()
        + "<rng model='virtio'><backend model='random'>/dev/urandom</backend>\
           <address type='virtio-mmio'/></rng>";
    let out = assign_domain_xml(&domain("aarch64", "virt", &mmio))
        .unwrap()
        .xml;
    assert_eq!(
        out.matches("<address type='virtio-mmio'/>").count(),
        5,
        "{out}"
    );
    assert!(!out.contains("pcie-root-port"), "{out}");
    // armv7l virt is placed as aarch64's; a USB controller without a model is piix3-uhci
    // there (libvirt-oracle and -trixie), qemu-xhci on aarch64.
    let usb = format!("{DEVICES}<controller type='usb'/>");
    let out = assign_domain_xml(&domain("armv7l", "virt", &usb))
        .unwrap()
        .xml;
    assert!(out.contains("model='piix3-uhci'"), "{out}");
    assert!(unaddressed(&out).is_empty(), "{out}");
    let out = assign_domain_xml(&domain("aarch64", "virt", &usb))
        .unwrap()
        .xml;
    assert!(out.contains("model='qemu-xhci'"), "{out}");
    // A machine type armv7l's QEMU lacks names qemu-system-arm, as libvirt does.
    let e = assign_domain_xml(&domain("armv7l", "virt-2.5", DEVICES)).unwrap_err();
    assert_eq!(
        e.message,
        "unsupported configuration: Emulator '/usr/bin/qemu-system-arm' does not support \
         machine type 'virt-2.5'"
    );
}

#[test]
fn virt_refusals_keep_libvirt_words() {
    let cases = [
        (
            "riscv64",
            "<controller type='pci' index='0' model='pci-root'/>",
            "XML error: The PCI controller with index='0' must be model='pcie-root' for this \
             machine type, but model='pci-root' was found instead",
        ),
        (
            "riscv64",
            "<controller type='pci' index='1' model='pcie-expander-bus'/>",
            "unsupported configuration: pcie-expander-bus controllers are not supported with \
             this machine type",
        ),
        (
            "aarch64",
            "<controller type='ide'/>",
            "unsupported configuration: IDE controllers are unsupported for this QEMU binary or \
             machine type",
        ),
    ];
    for (arch, dev, want) in cases {
        let e = assign_domain_xml(&domain(arch, "virt", dev)).unwrap_err();
        assert_eq!(e.message, want, "{arch} {dev}");
    }
    let e = assign_domain_xml(&domain("aarch64", "virt-8.0", "")).unwrap_err();
    assert_eq!(
        e.message,
        "unsupported configuration: Emulator '/usr/bin/qemu-system-aarch64' does not support \
         machine type 'virt-8.0'"
    );
}

#[test]
fn hotplug_abi_explain_and_preferences_on_virt() {
    for arch in ["aarch64", "armv7l", "riscv64"] {
        let xml = domain(arch, "virt", DEVICES);
        let assigned = assign_domain_xml(&xml).unwrap().xml;
        // Hotplug: the spare root port takes a hot-plugged virtio device, as on q35.
        let mut set = HotplugAddressSet::from_domain_xml(&assigned).unwrap();
        let nic = "<interface type='user'><model type='virtio'/></interface>";
        let addr = set.reserve_next(nic).unwrap().expect("a PCI address");
        assert_eq!(addr.slot, 0, "{arch}: {addr}");
        assert!(addr.bus > 0, "{arch}: {addr}");
        // ABI: a definition against its own assignment changes nothing the guest sees;
        // moving the disk to another port is a guest-visible change.
        let same = check_abi_stability(&xml, &assigned, AbiOptions::default()).unwrap();
        assert!(same.changes.is_empty(), "{arch}: {:?}", same.changes);
        let moved = assigned.replacen("bus='0x04'", "bus='0x05'", 1);
        if moved != assigned {
            let diff = check_abi_stability(&assigned, &moved, AbiOptions::default());
            assert!(
                diff.map(|d| !d.changes.is_empty()).unwrap_or(true),
                "{arch}: moving a device went unnoticed"
            );
        }
        // Explain: every placed device has a reason.
        let explained = explain(&xml).unwrap();
        assert!(!explained.devices.is_empty(), "{arch}");
        // Preferences: hotplug='no' puts a device on pcie-root as an integrated endpoint.
        let pref = domain(
            arch,
            "virt",
            "<interface type='user'><model type='virtio'/>\
             <addressPreferences hotplug='no'/></interface>",
        );
        let out = assign_domain_xml(&pref).unwrap().xml;
        assert!(out.contains("bus='0x00'"), "{arch}: {out}");
        // numa preferences are q35/pc only: refused clearly.
        let numa = domain(
            arch,
            "virt",
            "<interface type='user'><model type='virtio'/>\
             <addressPreferences numa='0'/></interface>",
        );
        let e = assign_domain_xml(&numa).unwrap_err();
        assert!(e.message.contains("numa"), "{arch}: {}", e.message);
    }
}
