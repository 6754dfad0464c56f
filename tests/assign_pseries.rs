//! ppc64 `pseries` through the library: PHBs (pci-root with model name and target index),
//! another PHB when bus 0 is full, spapr-vio devices that take no PCI slot, the partial
//! assignment of a multifunction host card, libvirt's refusals word for word (each answer
//! checked with libvirt-oracle, libvirt 9.0), and what the features beyond placement do there.

use virtpci::abi::{check_abi_stability, AbiOptions};
use virtpci::assign::explain::explain;
use virtpci::assign::HotplugAddressSet;
use virtpci::assign_domain_xml;

fn domain(devices: &str) -> String {
    format!(
        "<domain type='qemu'><name>p</name><memory>1048576</memory>\
         <os><type arch='ppc64' machine='pseries'>hvm</type></os>\
         <devices>{devices}</devices></domain>"
    )
}

const DISK: &str = "<disk type='file' device='disk'><source file='/a.img'/>\
    <target dev='vda' bus='virtio'/></disk>";

fn nics(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "<interface type='user'><mac address='52:54:00:00:{:02x}:{:02x}'/>\
                 <model type='virtio'/></interface>",
                i / 256,
                i % 256
            )
        })
        .collect()
}

fn pci(bus: u32, slot: u32) -> String {
    format!("<address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x0'/>")
}

#[test]
fn default_phb_gets_its_model_name_and_target_index() {
    let out = assign_domain_xml(&domain(DISK)).unwrap().xml;
    let phb = out
        .split("<controller type='pci' index='0' model='pci-root'>")
        .nth(1)
        .and_then(|rest| rest.split("</controller>").next())
        .unwrap_or_else(|| panic!("no PHB 0: {out}"));
    assert!(
        phb.contains("<model name='spapr-pci-host-bridge'/>"),
        "{out}"
    );
    assert!(phb.contains("<target index='0'/>"), "{out}");
    // qemu-xhci first (controllers before disks), then the disk, then the balloon.
    assert!(
        out.contains("<controller type='usb' index='0' model='qemu-xhci'>"),
        "{out}"
    );
    assert!(
        out.contains(&format!("bus='virtio'/>{}", pci(0, 2))),
        "{out}"
    );
    assert!(out.contains(&pci(0, 3)), "{out}");
}

#[test]
fn a_full_bus_gets_another_phb_not_a_bridge() {
    let out = assign_domain_xml(&domain(&nics(33))).unwrap().xml;
    assert!(!out.contains("pci-bridge"), "{out}");
    assert!(
        out.contains("<controller type='pci' index='1' model='pci-root'>"),
        "{out}"
    );
    assert!(out.contains("<target index='1'/>"), "{out}");
    assert!(
        out.contains(&pci(1, 1)) && out.contains(&pci(1, 2)),
        "{out}"
    );
}

#[test]
fn phbs_without_target_index_take_the_lowest_unused() {
    // libvirt 9.0: the input's PHB at index 3 is numbered first (1), the gaps after it.
    let out = assign_domain_xml(&domain(
        "<controller type='pci' index='3' model='pci-root'/>",
    ))
    .unwrap()
    .xml;
    let target = |index: u32| {
        let at = out
            .find(&format!(
                "<controller type='pci' index='{index}' model='pci-root'>"
            ))
            .unwrap_or_else(|| panic!("no PHB {index}: {out}"));
        let rest = &out[at..];
        let t = rest.find("<target index='").unwrap() + 15;
        rest[t..t + 1].to_string()
    };
    assert_eq!(
        (target(1), target(2), target(3)),
        ("2".into(), "3".into(), "1".into())
    );
}

#[test]
fn console_and_scsi_sit_on_spapr_vio() {
    let out = assign_domain_xml(&domain(
        "<console type='pty'/><controller type='scsi'/><nvram/>",
    ))
    .unwrap()
    .xml;
    assert_eq!(out.matches("<address type='spapr-vio'").count(), 4, "{out}");
    assert!(
        out.contains("<serial type='pty'>"),
        "a serial is paired with the console: {out}"
    );
    assert!(out.contains("model='ibmvscsi'"), "{out}");
    // Only the USB controller and the balloon are on PCI.
    assert_eq!(out.matches("<address type='pci'").count(), 2, "{out}");
}

#[test]
fn spapr_vio_regs_are_written_as_libvirt_gives_them() {
    // Checked with libvirt-oracle: interfaces, then controllers, serials and NVRAM, each
    // from its kind's default, 0x1000 up while taken; a given reg is kept (printed as libvirt
    // prints it) and the console shows its serial's.
    let out = assign_domain_xml(&domain(
        "<interface type='user'><mac address='52:54:00:00:00:01'/><model type='spapr-vlan'/></interface>\
         <interface type='user'><mac address='52:54:00:00:00:02'/><model type='spapr-vlan'/>\
         <address type='spapr-vio' reg='0x1000'/></interface>\
         <controller type='scsi' model='ibmvscsi'/><controller type='scsi' index='1' model='ibmvscsi'/>\
         <serial type='pty'/><nvram><address type='spapr-vio'/></nvram>",
    ))
    .unwrap()
    .xml;
    let regs: Vec<&str> = out
        .split("<address type='spapr-vio' reg='")
        .skip(1)
        .map(|rest| &rest[..10])
        .collect();
    assert_eq!(
        regs,
        [
            "0x00002000",
            "0x00001000",
            "0x00003000",
            "0x00004000",
            "0x30000000",
            "0x00005000",
            "0x30000000"
        ],
        "{out}"
    );
    assert!(!out.contains("<address type='spapr-vio'/>"), "{out}");
}

#[test]
fn partial_assignment_of_a_bcm5719_places_function_2_only() {
    let hostdev = |f: u32, address: &str| {
        format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'><source>\
             <address domain='0x0001' bus='0x01' slot='0x00' function='0x{f}'/></source>\
             {address}</hostdev>"
        )
    };
    let unassigned = "<address type='unassigned'/>";
    let devices = format!(
        "{DISK}{}{}{}{}",
        hostdev(0, unassigned),
        hostdev(1, unassigned),
        hostdev(2, ""),
        hostdev(3, unassigned)
    );
    let out = assign_domain_xml(&domain(&devices)).unwrap().xml;
    assert_eq!(out.matches(unassigned).count(), 3, "{out}");
    // As the oracle answers (no such host device there: no isolation group), function 2
    // lands on the default PHB after the USB controller and the disk.
    assert!(
        out.contains(&format!("{}{}", "function='0x2'/></source>", pci(0, 3))),
        "{out}"
    );
}

#[test]
fn refusals_keep_libvirt_words() {
    let cases = [
        (
            "<controller type='pci' index='1' model='pci-root'><target index='31'/></controller>",
            "unsupported configuration: PCI controller target index '31' out of range - must be 0-30",
        ),
        (
            "<controller type='pci' index='0' model='pci-root'><target index='3'/></controller>",
            "unsupported configuration: Only the PCI controller with index 0 can have target index 0, and vice versa",
        ),
        (
            "<controller type='pci' index='1' model='pcie-root-port'/>",
            "internal error: a PCI slot is needed to connect a PCI controller model='pcie-root-port', but none is available, and it cannot be automatically added",
        ),
    ];
    for (devices, message) in cases {
        let e = assign_domain_xml(&domain(devices)).unwrap_err();
        assert_eq!(e.to_string(), message, "{devices}");
    }
}

#[test]
fn phbs_run_out_of_target_indexes_as_libvirt_says() {
    // 1000 interfaces need 33 PHBs: the 32nd would take target index 31 (out of range), the
    // 33rd finds none (libvirt-oracle's answer).
    let e = assign_domain_xml(&domain(&nics(1000))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported configuration: No usable target index found for 0"
    );
}

#[test]
fn hotplug_set_abi_explain_and_preferences_on_pseries() {
    let xml = domain(DISK);
    let assigned = assign_domain_xml(&xml).unwrap().xml;
    // ABI: a definition against its own assignment changes nothing; a device moved to
    // another PHB is a guest-visible change.
    let same = check_abi_stability(&xml, &assigned, AbiOptions::default()).unwrap();
    assert!(same.changes.is_empty(), "{:?}", same.changes);
    let moved = assigned.replacen("bus='0x00' slot='0x02'", "bus='0x01' slot='0x02'", 1);
    assert!(moved.contains("bus='0x01' slot='0x02'"), "{assigned}");
    let moved = moved.replacen(
        "</devices>",
        "<controller type='pci' index='1' model='pci-root'><model name='spapr-pci-host-bridge'/>\
         <target index='1'/></controller></devices>",
        1,
    );
    let diff = check_abi_stability(&assigned, &moved, AbiOptions::default()).unwrap();
    assert!(
        diff.changes
            .iter()
            .any(|c| format!("{c:?}").contains("disk")),
        "moving the disk to PHB 1 went unnoticed: {:?}",
        diff.changes
    );
    // Explain: the disk's address and why; the spapr-vio devices are not on PCI.
    let explained = explain(&xml).unwrap();
    assert!(
        explained
            .devices
            .iter()
            .any(|d| d.address == "0000:00:02.0"),
        "{}",
        explained.to_text()
    );
    let mut set = HotplugAddressSet::from_domain_xml(&assigned).unwrap();
    let next = set
        .reserve_next("<interface type='user'><model type='virtio'/></interface>")
        .unwrap()
        .unwrap();
    assert_eq!(next.to_string(), "0000:00:04.0");
    let e = assign_domain_xml(&domain(
        "<interface type='user'><model type='virtio'/><addressPreferences bus='pcie'/></interface>",
    ))
    .unwrap_err();
    assert!(e.to_string().contains("needs a PCI Express machine"), "{e}");
}
