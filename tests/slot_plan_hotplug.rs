//! Whole-slot hot-plug and hot-unplug plans (seed thread S4) on running guests: the order of
//! the plan, multifunction on function 0, every refusal, bad input, and that applying and
//! releasing a plan leaves the address set consistent.

use virtpci::assign::slot_plan::{Pluggability, SlotPlanKind};
use virtpci::assign::HotplugAddressSet;
use virtpci::{ErrorCode, PciAddress};

mod shared_support;
use shared_support::{case_dirs, shared_path};

const Q35: &str = "<domain type='qemu'><name>q</name><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
    <controller type='pci' index='0' model='pcie-root'/>\
    <controller type='pci' index='1' model='pcie-root-port'/>\
    <controller type='pci' index='2' model='pcie-root-port'/>\
    <controller type='pci' index='3' model='pcie-root-port'/>\
    <controller type='usb' index='0' model='none'/><memballoon model='none'/>\
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>\
    </devices></domain>";

const PC: &str = "<domain type='qemu'><name>p</name><os><type arch='x86_64' machine='pc'>hvm</type></os><devices>\
    <controller type='pci' index='0' model='pci-root'/>\
    <controller type='pci' index='1' model='pci-bridge'><address type='pci' bus='0' slot='8'/></controller>\
    <controller type='scsi' index='0' model='virtio-scsi'><address type='pci' bus='0' slot='9'/></controller>\
    <disk type='file' device='disk'><source file='/a'/><target dev='sda' bus='scsi'/></disk>\
    <interface type='user'><mac address='52:54:00:00:00:10'/><model type='virtio'/><address type='pci' bus='1' slot='3'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:11'/><model type='e1000'/><address type='pci' bus='0' slot='10' function='0'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:12'/><model type='e1000'/><address type='pci' bus='0' slot='10' function='1'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:13'/><model type='e1000'/><address type='pci' bus='0' slot='11'/><addressPreferences hotplug='no'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:14'/><model type='e1000'/><address type='pci' bus='0' slot='12' function='0'/></interface>\
    <interface type='user'><mac address='52:54:00:00:00:15'/><model type='e1000'/><address type='pci' bus='0' slot='12' function='1'/><hotplug require='no'/></interface>\
    <memballoon model='none'/></devices></domain>";

fn nic(mac: &str) -> String {
    format!("<interface type='network'><mac address='{mac}'/><source network='default'/><model type='virtio'/></interface>")
}

fn a(bus: u32, slot: u32, function: u32) -> PciAddress {
    PciAddress::new(0, bus, slot, function)
}

#[test]
fn attach_places_functions_above_zero_first_and_sets_multifunction() {
    let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    let before = set.address_set().buses.clone();
    let nics = [
        nic("52:54:00:00:01:00"),
        nic("52:54:00:00:01:01"),
        nic("52:54:00:00:01:02"),
    ];
    let refs: Vec<&str> = nics.iter().map(String::as_str).collect();
    let plan = set.plan_slot_attach(&refs).unwrap();
    assert_eq!(plan.kind, SlotPlanKind::Attach);
    // Bus 1 holds the NIC of the definition; bus 2 is the first free hotplug slot.
    assert_eq!(plan.slot, a(2, 0, 0));
    let order: Vec<u32> = plan.items.iter().map(|i| i.addr.function).collect();
    assert_eq!(order, vec![1, 2, 0]);
    let f0 = plan.items.last().unwrap();
    assert!(f0.multifunction);
    assert!(f0.xml.contains(
        "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0' multifunction='on'/>"
    ), "{}", f0.xml);
    assert!(f0.xml.contains("52:54:00:00:01:00"));
    assert!(!plan.items[0].multifunction);
    assert!(plan.items[0].xml.contains("function='0x1'/>"));
    assert_eq!(plan.items[0].label, "interface (mac 52:54:00:00:01:01)");
    // Booked: the set knows all three, and each goes only with its slot.
    for f in 0..3 {
        assert_eq!(
            set.pluggability(&a(2, 0, f)).unwrap(),
            Pluggability::WithSlot
        );
    }
    let next = set
        .reserve_next(&nic("52:54:00:00:02:00"))
        .unwrap()
        .unwrap();
    assert_eq!(next, a(3, 0, 0));
    set.release(&next).unwrap();
    // libvirt's single-device rule still holds for the single-device calls.
    let err = set
        .reserve(&a(2, 0, 3), &nic("52:54:00:00:03:00"))
        .unwrap_err();
    assert!(err.message.contains("function=0"), "{}", err.message);
    // Detach the slot: function 0 first, every function, then release: back to the start.
    let detach = set.plan_slot_detach(&a(2, 0, 2)).unwrap();
    assert_eq!(detach.kind, SlotPlanKind::Detach);
    let order: Vec<u32> = detach.items.iter().map(|i| i.addr.function).collect();
    assert_eq!(order, vec![0, 1, 2]);
    assert!(detach.items[0].multifunction);
    set.release_slot_plan(&detach).unwrap();
    assert_eq!(set.address_set().buses, before);
    let err = set.plan_slot_detach(&a(2, 0, 0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceMissing);
}

#[test]
fn a_single_device_plan_is_a_plain_plug() {
    let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    let plan = set.plan_slot_attach(&[&nic("52:54:00:00:01:00")]).unwrap();
    assert_eq!(plan.items.len(), 1);
    assert!(!plan.items[0].multifunction);
    assert!(!plan.items[0].xml.contains("multifunction"));
    assert_eq!(
        set.pluggability(&plan.items[0].addr).unwrap(),
        Pluggability::Pluggable
    );
}

#[test]
fn attach_with_explicit_addresses_and_release_after_a_failed_plug() {
    let mut set = HotplugAddressSet::from_domain_xml(PC).unwrap();
    let before = set.address_set().buses.clone();
    let x = |f: u32, mac: &str| {
        format!(
            "<interface type='user'><mac address='{mac}'/><model type='e1000'/>\
             <address type='pci' domain='0' bus='0' slot='0x14' function='{f}'/></interface>"
        )
    };
    let devs = [x(3, "52:54:00:00:05:03"), x(0, "52:54:00:00:05:00")];
    let refs: Vec<&str> = devs.iter().map(String::as_str).collect();
    let plan = set.plan_slot_attach(&refs).unwrap();
    let order: Vec<PciAddress> = plan.items.iter().map(|i| i.addr).collect();
    assert_eq!(order, vec![a(0, 0x14, 3), a(0, 0x14, 0)]);
    assert!(plan.items[1].xml.contains("multifunction='on'"));
    // The same slot again: refused, naming what uses it.
    let err = set.plan_slot_attach(&refs).unwrap_err();
    assert!(
        err.message.contains("0000:00:14 is not free"),
        "{}",
        err.message
    );
    assert!(err.message.contains("52:54:00:00:05:00"), "{}", err.message);
    // The emulator refused the plug: release the plan, the set is as before.
    set.release_slot_plan(&plan).unwrap();
    assert_eq!(set.address_set().buses, before);
}

#[test]
fn attach_refuses_bad_input() {
    let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    let msg = |set: &mut HotplugAddressSet, devs: &[&str]| set.plan_slot_attach(devs).unwrap_err();
    let n = nic("52:54:00:00:01:00");
    let nine: Vec<&str> = vec![n.as_str(); 9];
    let err = msg(&mut set, &nine);
    assert_eq!(err.code, ErrorCode::InvalidArg);
    assert!(
        err.message.contains("9 devices cannot share one"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &[]);
    assert!(
        err.message.contains("at least one device"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &[n.as_str(), "<frobnicator/>"]);
    assert!(
        err.message
            .contains("device 1 (<frobnicator>) does not use a PCI address"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &["<input type='mouse' bus='ps2'/>"]);
    assert!(
        err.message.contains("does not use a PCI address"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &["<interface"]);
    assert!(
        err.message.starts_with("XML error: device 0: "),
        "{}",
        err.message
    );
    let with = |f: u32, extra: &str| {
        format!("<interface type='user'><model type='virtio'/><address type='pci' bus='2' slot='0' function='{f}'{extra}/></interface>")
    };
    let err = msg(&mut set, &[&with(0, ""), n.as_str()]);
    assert!(
        err.message
            .contains("device 1 of the slot plan has no PCI address"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &[&with(1, ""), &with(2, "")]);
    assert!(
        err.message
            .contains("no device of the slot plan is function 0"),
        "{}",
        err.message
    );
    let err = msg(&mut set, &[&with(0, ""), &with(0, "")]);
    assert!(err.message.contains("two devices"), "{}", err.message);
    let err = msg(&mut set, &[&with(0, " multifunction='off'"), &with(1, "")]);
    assert_eq!(err.code, ErrorCode::ConfigUnsupported);
    let other = "<interface type='user'><model type='virtio'/><address type='pci' bus='3' slot='0' function='1'/></interface>";
    let err = msg(&mut set, &[&with(0, ""), other]);
    assert!(
        err.message.contains("must share one slot"),
        "{}",
        err.message
    );
    // pcie-root has no hotplug.
    let root = "<interface type='user'><model type='virtio'/><address type='pci' bus='0' slot='5' function='0'/></interface>";
    let err = msg(&mut set, &[root]);
    assert!(err.message.contains("hotplug"), "{}", err.message);
    // Nothing was booked by the failures.
    let fresh = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    assert_eq!(set.address_set().buses, fresh.address_set().buses);
}

#[test]
fn attach_fails_cleanly_when_no_slot_is_free() {
    let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    set.plan_slot_attach(&[&nic("52:54:00:00:01:00")]).unwrap();
    set.plan_slot_attach(&[&nic("52:54:00:00:01:01")]).unwrap();
    let err = set
        .plan_slot_attach(&[&nic("52:54:00:00:01:02")])
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("No free PCI slot"), "{}", err.message);
}

#[test]
fn detach_refusals_name_the_function_that_cannot_go() {
    let set = HotplugAddressSet::from_domain_xml(PC).unwrap();
    let refuse = |addr: PciAddress| {
        let err = set.plan_slot_detach(&addr).unwrap_err();
        assert_eq!(err.code, ErrorCode::OperationFailed, "{}", err.message);
        err.message
    };
    let m = refuse(a(0, 1, 0));
    assert!(
        m.contains("function 0000:00:01.0: it is a function of the chipset"),
        "{m}"
    );
    let m = refuse(a(0, 8, 0));
    assert!(
        m.contains("controller pci index 1 (pci-bridge) still has devices behind it: interface (mac 52:54:00:00:00:10) at 0000:01:03.0"),
        "{m}"
    );
    let m = refuse(a(0, 9, 0));
    assert!(
        m.contains("controller scsi index 0 (virtio-scsi) still has devices behind it: disk (sda)"),
        "{m}"
    );
    let m = refuse(a(0, 11, 0));
    assert!(m.contains("marked hotplug='no'"), "{m}");
    let m = refuse(a(0, 12, 0));
    assert!(
        m.contains(
            "function 0000:00:0c.1: interface (mac 52:54:00:00:00:15) is marked hotplug='no'"
        ),
        "{m}"
    );
    assert!(!m.contains("0000:00:0c.0:"), "{m}");
    assert_eq!(
        set.pluggability(&a(0, 12, 1)).unwrap(),
        Pluggability::NotPluggable(
            "interface (mac 52:54:00:00:00:15) is marked hotplug='no'".into()
        )
    );
    // Function 0 can only go with its slot, and its slot cannot go: not pluggable either.
    assert_eq!(
        set.pluggability(&a(0, 12, 0)).unwrap(),
        Pluggability::NotPluggable(
            "it can only go with its whole slot, and function 0000:00:0c.1 cannot: interface \
             (mac 52:54:00:00:00:15) is marked hotplug='no'"
                .into()
        )
    );
    assert_eq!(
        set.pluggability(&a(0, 10, 1)).unwrap(),
        Pluggability::WithSlot
    );
    // A whole multifunction slot that can go.
    let plan = set.plan_slot_detach(&a(0, 10, 1)).unwrap();
    let got: Vec<(PciAddress, bool)> = plan
        .items
        .iter()
        .map(|i| (i.addr, i.multifunction))
        .collect();
    assert_eq!(got, vec![(a(0, 10, 0), true), (a(0, 10, 1), false)]);
    assert!(
        plan.items[1].xml.starts_with("<interface"),
        "{}",
        plan.items[1].xml
    );
    assert!(plan.items[1].xml.contains("52:54:00:00:00:12"));
}

#[test]
fn detach_bad_input() {
    let set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
    let err = set.plan_slot_detach(&a(0, 9, 0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceMissing);
    assert!(
        err.message
            .contains("no device uses guest PCI slot 0000:00:09"),
        "{}",
        err.message
    );
    let err = set.plan_slot_detach(&a(40, 0, 0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArg);
    // A root port on pcie-root: the bus has no hotplug.
    let err = set.plan_slot_detach(&a(0, 1, 0)).unwrap_err();
    assert!(
        err.message
            .contains("bus 0 (pcie-root) does not support hotplug"),
        "{}",
        err.message
    );
    let err = set.pluggability(&a(0, 9, 0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::DeviceMissing);
}

/// Issue 21: what pluggability answers for a function is what a detach plan of its slot does,
/// for every function in use of every guest of the corpus and the golden cases (and of the
/// fixtures here): not pluggable exactly when the plan is refused, with its slot exactly when
/// the plan has several functions.
#[test]
fn pluggability_agrees_with_the_detach_plan_everywhere() {
    let mut guests = vec![PC.to_string(), Q35.to_string()];
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    for cases in shared_path("conformance/cases").into_iter().chain([golden]) {
        for dir in case_dirs(&cases) {
            if let Ok(xml) = std::fs::read_to_string(dir.join("expected.xml")) {
                guests.push(xml);
            }
        }
    }
    let mut checked = 0;
    for guest in &guests {
        let Ok(set) = HotplugAddressSet::from_domain_xml(guest) else {
            continue;
        };
        let buses = &set.address_set().buses;
        for (bus, b) in buses.iter().enumerate() {
            for (slot, s) in b.slots.iter().enumerate() {
                for function in (0..8).filter(|f| s.functions & (1 << f) != 0) {
                    let addr = a(bus as u32, slot as u32, function);
                    let plug = set.pluggability(&addr).unwrap();
                    let plan = set.plan_slot_detach(&addr);
                    match (&plug, &plan) {
                        (Pluggability::NotPluggable(_), Err(_)) => {}
                        (Pluggability::Pluggable, Ok(p)) if p.items.len() == 1 => {}
                        (Pluggability::WithSlot, Ok(p)) if p.items.len() > 1 => {}
                        _ => panic!("{addr}: pluggability {plug:?} but detach plan {plan:?}"),
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} functions checked");
}
