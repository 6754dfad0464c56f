//! Issue 6, part 4: one placement for cold and hot plug. A device hot-plugged through the
//! address set of a running guest lands where a cold assignment of the same definition plus
//! that device would have put it, whenever that place is free and takes hot-plugged
//! devices. The guests are every accepted case of the libvirt 9.0 conformance corpus (its
//! expected.xml: a domain libvirt has fully assigned), the devices a few of each kind.

use std::fs;
use virtpci::assign::HotplugAddressSet;
use virtpci::topology::ConnectFlags;
use virtpci::xml::Document;
use virtpci::PciAddress;

mod shared_support;
use shared_support::{case_dirs, shared_path};

const DEVICES: [&str; 6] = [
    "<interface type='network'><source network='default'/><model type='virtio'/></interface>",
    "<interface type='network'><source network='default'/><model type='e1000'/></interface>",
    "<disk type='file' device='disk'><source file='/var/lib/x.img'/><target dev='vdz' bus='virtio'/></disk>",
    "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x7f' slot='0x1f' function='0x7'/></source></hostdev>",
    "<controller type='scsi' index='9' model='virtio-scsi'/>",
];

/// The PCI address of the last device element of `xml` and the number of PCI controllers.
fn last_device_and_controllers(xml: &str) -> (Option<PciAddress>, usize) {
    let doc = Document::parse(xml).unwrap();
    let devices = doc.child(doc.root, "devices").unwrap();
    let children = doc.children(devices);
    let controllers = children
        .iter()
        .filter(|&&c| {
            let el = doc.element(c);
            el.name == "controller" && el.attr("type") == Some("pci")
        })
        .count();
    let last = children.iter().rev().find(|&&c| {
        let name = doc.element(c).name;
        name != "controller" || doc.element(c).attr("index") == Some("9")
    });
    let addr = last.and_then(|&c| doc.child(c, "address")).and_then(|a| {
        let a = doc.element(a);
        if a.attr("type") != Some("pci") {
            return None;
        }
        let n = |k: &str| {
            let v = a.attr(k).unwrap();
            u32::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
        };
        Some(PciAddress::new(
            n("domain"),
            n("bus"),
            n("slot"),
            n("function"),
        ))
    });
    (addr, controllers)
}

#[test]
fn hot_plug_lands_where_cold_assignment_would() {
    let Some(cases) = shared_path("conformance/cases") else {
        return;
    };
    let dirs = case_dirs(&cases);
    let (mut same, mut grew, mut not_hotpluggable, mut refused) = (0, 0, 0, 0);
    for dir in dirs {
        let Ok(guest) = fs::read_to_string(dir.join("expected.xml")) else {
            continue;
        };
        let Some(end) = guest.rfind("</devices>") else {
            continue;
        };
        let (_, controllers_before) = last_device_and_controllers(&guest);
        for device in DEVICES {
            let cold_xml = format!("{}{device}\n  {}", &guest[..end], &guest[end..]);
            let cold = match virtpci::assign_domain_xml(&cold_xml) {
                Ok(out) => out.xml,
                Err(_) => {
                    refused += 1;
                    continue;
                }
            };
            let (cold_addr, controllers_after) = last_device_and_controllers(&cold);
            let Some(cold_addr) = cold_addr else {
                continue;
            };
            if controllers_after != controllers_before {
                // Cold assignment added a controller: a running guest cannot.
                grew += 1;
                continue;
            }
            let Ok(mut running) = HotplugAddressSet::from_domain_xml(&guest) else {
                refused += 1;
                continue;
            };
            let hotplug_bus = running.address_set().buses[cold_addr.bus as usize]
                .accepts
                .intersects(ConnectFlags::HOTPLUGGABLE);
            let hot = running.reserve_next(device);
            if !hotplug_bus {
                not_hotpluggable += 1;
                continue;
            }
            let hot = hot.unwrap_or_else(|e| {
                panic!(
                    "{}: {device}: hot plug refused: {}",
                    dir.display(),
                    e.message
                )
            });
            assert_eq!(
                hot,
                Some(cold_addr),
                "{}: {device}: hot plug and cold assignment differ",
                dir.display()
            );
            same += 1;
        }
    }
    println!(
        "same place: {same}; cold assignment added a controller: {grew}; cold place without \
         hotplug: {not_hotpluggable}; refused: {refused}"
    );
    assert!(same >= 500, "only {same} comparisons");
}
