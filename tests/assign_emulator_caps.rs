//! The emulator capabilities input: each rule that follows a capability, libvirt's refusals
//! when one is missing, and the default (the level's emulator) giving the usual result. The
//! layouts themselves are judged against libvirt's own test outputs by step 14-libvirt-caps.

use virtpci::assign::{assign_domain_xml_with, AssignOptions, EmulatorCaps, HotplugAddressSet};

const Q35: &str =
    "<domain type='qemu'><name>c</name><os><type arch='x86_64' machine='q35'>hvm</type></os>\
<devices><interface type='user'><model type='rtl8139'/></interface>\
<interface type='user'><model type='virtio'/></interface><video/></devices></domain>";

fn with(caps: &[&str]) -> AssignOptions {
    AssignOptions {
        emulator: EmulatorCaps::from_names(caps.iter().copied()),
        ..Default::default()
    }
}

#[test]
fn the_default_is_every_capability() {
    let all: Vec<&str> = virtpci::assign::EmulatorCap::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    let plain = assign_domain_xml_with(Q35, AssignOptions::default()).unwrap();
    let listed = assign_domain_xml_with(Q35, with(&all)).unwrap();
    assert_eq!(plain, listed);
    assert!(
        plain.xml.contains("model='pcie-to-pci-bridge'"),
        "{}",
        plain.xml
    );
    assert!(plain.xml.contains("<model name='pcie-root-port'/>"));
}

#[test]
fn an_older_q35_emulator_gets_libvirts_older_layout() {
    let out = assign_domain_xml_with(
        Q35,
        with(&["ioh3420", "pci-bridge", "dmi-to-pci-bridge", "VGA"]),
    )
    .unwrap()
    .xml;
    assert!(out.contains("model='dmi-to-pci-bridge'"), "{out}");
    assert!(out.contains("<model name='i82801b11-bridge'/>"), "{out}");
    assert!(out.contains("<model name='ioh3420'/>"), "{out}");
    assert!(!out.contains("pcie-to-pci-bridge"), "{out}");
    // No xhci, no EHCI: q35 gets no USB controller.
    assert!(!out.contains("type='usb'"), "{out}");
    // Without non-transitional virtio, the virtio NIC shares the pci-bridge with the rtl8139.
    assert_eq!(out.matches("bus='0x02' slot=").count(), 3, "{out}");
}

#[test]
fn q35_without_xhci_gets_ehci_and_its_companions() {
    let out = assign_domain_xml_with(
        Q35,
        with(&["pcie-root-port", "pcie-pci-bridge", "ich9-usb-ehci1"]),
    )
    .unwrap()
    .xml;
    for model in ["ich9-ehci1", "ich9-uhci1", "ich9-uhci2", "ich9-uhci3"] {
        assert!(
            out.contains(&format!("type='usb' index='0' model='{model}'")),
            "{model}: {out}"
        );
    }
}

#[test]
fn a_missing_device_is_refused_with_libvirts_words() {
    let bridge =
        "<domain type='qemu'><name>c</name><os><type arch='x86_64' machine='pc'>hvm</type></os>\
<devices><controller type='pci' index='1' model='pci-bridge'/></devices></domain>";
    let err = assign_domain_xml_with(bridge, with(&["piix3-usb-uhci"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported configuration: The 'pci-bridge' device is not supported by this QEMU binary"
    );
    assert!(assign_domain_xml_with(bridge, with(&["pci-bridge"])).is_ok());
    let neither_port = assign_domain_xml_with(Q35, with(&["pcie-pci-bridge"])).unwrap_err();
    assert_eq!(
        neither_port.to_string(),
        "unsupported configuration: The 'ioh3420' device is not supported by this QEMU binary"
    );
    let root_hotplug = "<domain type='qemu'><name>c</name><os><type arch='x86_64' machine='pc'>hvm</type></os>\
<devices><controller type='pci' index='0' model='pci-root'><target hotplug='off'/></controller></devices></domain>";
    assert_eq!(
        assign_domain_xml_with(root_hotplug, with(&["pci-bridge"]))
            .unwrap_err()
            .to_string(),
        "unsupported configuration: setting the 'hotplug' property on a 'pci-root' device is not \
         supported by this QEMU binary"
    );
    assert!(assign_domain_xml_with(root_hotplug, with(&["piix4.acpi-root-pci-hotplug"])).is_ok());
    let scsi =
        "<domain type='qemu'><name>c</name><os><type arch='x86_64' machine='pc'>hvm</type></os>\
<devices><disk type='file' device='disk'><target dev='sda' bus='scsi'/></disk></devices></domain>";
    assert_eq!(
        assign_domain_xml_with(scsi, with(&[]))
            .unwrap_err()
            .to_string(),
        "internal error: Unable to determine model for SCSI controller idx=0"
    );
    let virtio_scsi = assign_domain_xml_with(scsi, with(&["virtio-scsi-pci"]))
        .unwrap()
        .xml;
    assert!(virtio_scsi.contains("model='virtio-scsi'"), "{virtio_scsi}");
}

#[test]
fn the_hotplug_set_follows_the_virtio_capability() {
    let nic = "<interface type='user'><model type='virtio'/></interface>";
    let pcie = [
        "pcie-root-port",
        "pcie-pci-bridge",
        "virtio-pci-non-transitional",
    ];
    let mut set = HotplugAddressSet::from_domain_xml_with(Q35, &with(&pcie)).unwrap();
    let on_port = set.reserve_next(nic).unwrap().unwrap();
    assert_eq!(on_port.slot, 0, "{on_port}");
    let mut set = HotplugAddressSet::from_domain_xml_with(Q35, &with(&pcie[..2])).unwrap();
    let on_bridge = set.reserve_next(nic).unwrap().unwrap();
    assert!(on_bridge.slot > 0, "{on_bridge}");
}
