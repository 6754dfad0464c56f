//! Prepare, re-attach, update-active and the node-device calls through the Rust API on the
//! simulated kernel, with every check and its message, on the bundled fixtures.

mod host_support;
mod hostdev_support;

use hostdev_support::*;
use std::sync::Arc;
use virtpci::host::{Host, SimulatedKernel, Sysfs, SysfsWrite, SysfsWriter, WriteKind};
use virtpci::hostdev::{Action, HostdevManager, PrepareOptions, ResetOutcome, StaticUsage};
use virtpci::{ErrorCode, HostdevSpec};

const QEMU: &str = "QEMU";

#[test]
fn whole_group_round_trip_restores_original_drivers() {
    let b = Bench::new("quad-nic");
    let before = b.drivers();
    let uuid = [7u8; 16];
    b.mgr
        .prepare_pci_devices(
            QEMU,
            "vm1",
            Some(&uuid),
            &managed(&QUAD),
            PrepareOptions::default(),
        )
        .unwrap();
    for d in QUAD {
        assert_eq!(b.driver(d).as_deref(), Some("vfio-pci"), "{d}");
    }
    let book = b.book();
    assert_eq!(book.active.len(), 4);
    assert!(book.inactive.is_empty());
    for a in &book.active {
        assert_eq!(a.owner.driver, QEMU);
        assert_eq!(a.owner.domain, "vm1");
        assert_eq!(
            a.entry.original.as_ref().unwrap().driver.as_deref(),
            Some("tg3")
        );
        assert!(a.entry.unbind_from_stub && a.entry.managed && !a.interrupted);
        assert_eq!(
            a.uuid.as_deref(),
            Some("07070707-0707-0707-0707-070707070707")
        );
    }
    // The onboard NIC and the rest of the host are untouched.
    assert_eq!(b.driver("0000:00:19.0").as_deref(), Some("e1000e"));

    // A restarted manager knows owners and original drivers.
    let again = b.restart();
    assert_eq!(again.book().unwrap().lists(), book.lists());
    again
        .reattach_pci_devices(QEMU, "vm1", &managed(&QUAD))
        .unwrap();
    assert_eq!(b.drivers(), before);
    let book = b.book();
    assert!(book.active.is_empty() && book.inactive.is_empty());
}

#[test]
fn s5_every_group_member_must_be_declared() {
    let b = Bench::new("quad-nic");
    let before = b.drivers();
    let e = b
        .prepare("vm1", &managed(&["0000:02:00.1", "0000:02:00.2"]))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::OperationInvalid);
    assert_eq!(
        e.message,
        "Requested operation is not valid: All devices of the same IOMMU group 6 of the PCI device 0000:02:00.1 must belong to domain vm1: not declared: 0000:02:00.0, 0000:02:00.3; declare each as a managed hostdev hidden from the guest with <address type='unassigned'/>, or use the legacy group check (libvirt 9.0's rule)"
    );
    assert_eq!(b.drivers(), before);
    assert_eq!(b.book().generation, 0, "nothing was written");

    // The dry run names every violation once per group.
    let report = b
        .mgr
        .check(
            QEMU,
            "vm1",
            &managed(&["0000:02:00.1", "0000:02:00.2"]),
            PrepareOptions::default(),
        )
        .unwrap();
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.groups.len(), 1);
    let undeclared: Vec<String> = report.groups[0]
        .members
        .iter()
        .filter(|m| !m.declared)
        .map(|m| m.address.to_string())
        .collect();
    assert_eq!(undeclared, ["0000:02:00.0", "0000:02:00.3"]);
}

#[test]
fn s1_unassigned_siblings_are_detached_and_booked() {
    let b = Bench::new("quad-nic");
    let mut list = managed(&QUAD);
    for h in list.iter_mut().filter(|h| h.source.function != 2) {
        h.unassigned = true;
    }
    b.prepare("vm1", &list).unwrap();
    let book = b.book();
    for a in &book.active {
        assert_eq!(a.unassigned, a.entry.address.function != 2);
        assert_eq!(
            b.host.driver(&a.entry.address).unwrap().as_deref(),
            Some("vfio-pci")
        );
    }
    b.mgr.reattach_pci_devices(QEMU, "vm1", &list).unwrap();
    for d in QUAD {
        assert_eq!(b.driver(d).as_deref(), Some("tg3"));
    }
}

#[test]
fn legacy_group_check_and_sibling_in_use_by_another_domain() {
    let b = Bench::new("quad-nic");
    b.mgr
        .prepare_pci_devices(
            QEMU,
            "vm1",
            None,
            &managed(&["0000:02:00.1"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.driver("0000:02:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(
        b.driver("0000:02:00.0").as_deref(),
        Some("tg3"),
        "siblings stay"
    );
    // A warning names the siblings VFIO will object to.
    let r = b
        .mgr
        .check(
            QEMU,
            "vm1",
            &managed(&["0000:02:00.3"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(r.ok());
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("0000:02:00.0 of IOMMU group 6 stays on tg3")));

    // Another domain: the sibling is named, with the flag and without it.
    for options in [
        PrepareOptions {
            legacy_group_check: true,
            ..Default::default()
        },
        PrepareOptions::default(),
    ] {
        let e = b
            .mgr
            .prepare_pci_devices(QEMU, "vm2", None, &managed(&["0000:02:00.2"]), options)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Requested operation is not valid: PCI device 0000:02:00.1 is in use by driver QEMU, domain vm2"
                .replace("vm2", "vm1")
        );
    }
    // Another driver with the same domain name is another owner too.
    let e = b
        .mgr
        .prepare_pci_devices(
            "LXC",
            "vm1",
            None,
            &managed(&["0000:02:00.2"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e
        .message
        .ends_with("PCI device 0000:02:00.1 is in use by driver QEMU, domain vm1"));
    // The same domain may add a sibling (libvirt tolerates its own group members)...
    b.mgr
        .prepare_pci_devices(
            QEMU,
            "vm1",
            None,
            &managed(&["0000:02:00.2"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap();
    // ...but not prepare a device it already uses.
    let e = b
        .mgr
        .prepare_pci_devices(
            QEMU,
            "vm1",
            None,
            &managed(&["0000:02:00.1"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: PCI device 0000:02:00.1 is in use by driver QEMU, domain vm1"
    );
    // Re-attach by another domain touches nothing.
    b.mgr
        .reattach_pci_devices(QEMU, "vm2", &managed(&["0000:02:00.1", "0000:02:00.2"]))
        .unwrap();
    assert_eq!(b.book().active.len(), 2);
    b.mgr
        .reattach_pci_devices(QEMU, "vm1", &managed(&["0000:02:00.1", "0000:02:00.2"]))
        .unwrap();
    assert_eq!(b.driver("0000:02:00.1").as_deref(), Some("tg3"));
    assert_eq!(b.driver("0000:02:00.2").as_deref(), Some("tg3"));
}

#[test]
fn gpu_group_behind_a_root_port_without_acs() {
    let b = Bench::new("workstation");
    // The root port 00:01.0 shares group 1 but is a bridge: exempt.
    let e = b.prepare("gaming", &managed(&GPU[..2])).unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: All devices of the same IOMMU group 1 of the PCI device 0000:01:00.0 must belong to domain gaming: not declared: 0000:01:00.2, 0000:01:00.3; declare each as a managed hostdev hidden from the guest with <address type='unassigned'/>, or use the legacy group check (libvirt 9.0's rule)"
    );
    b.prepare("gaming", &managed(&GPU)).unwrap();
    let drivers: Vec<Option<String>> = GPU.iter().map(|d| b.driver(d)).collect();
    assert!(drivers.iter().all(|d| d.as_deref() == Some("vfio-pci")));
    assert_eq!(b.driver("0000:00:01.0").as_deref(), Some("pcieport"));
    b.mgr
        .reattach_pci_devices(QEMU, "gaming", &managed(&GPU))
        .unwrap();
    let back: Vec<String> = GPU.iter().map(|d| b.driver(d).unwrap()).collect();
    assert_eq!(back, ["nvidia", "snd_hda_intel", "xhci_hcd", "nvidia-gpu"]);

    // A bridge itself cannot be assigned.
    let e = b
        .mgr
        .prepare_pci_devices(
            QEMU,
            "gaming",
            None,
            &managed(&["0000:00:01.0"]),
            PrepareOptions {
                legacy_group_check: true,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Internal);
    assert_eq!(
        e.message,
        "internal error: Non-endpoint PCI devices cannot be assigned to guests"
    );
}

#[test]
fn conventional_pci_behind_a_pcie_to_pci_bridge() {
    let b = Bench::new("qemu-q35");
    // Group 11: the pcie-to-pci bridge 04:00.0 (exempt), e1000 05:01.0 and 8139cp 05:02.0.
    let e = b.prepare("vm", &managed(&["0000:05:01.0"])).unwrap_err();
    assert!(e.message.ends_with(
        "All devices of the same IOMMU group 11 of the PCI device 0000:05:01.0 must belong to domain vm: not declared: 0000:05:02.0; declare each as a managed hostdev hidden from the guest with <address type='unassigned'/>, or use the legacy group check (libvirt 9.0's rule)"
    ));
    let both = managed(&["0000:05:01.0", "0000:05:02.0"]);
    let r = b
        .mgr
        .check(QEMU, "vm", &both, PrepareOptions::default())
        .unwrap();
    assert!(r.ok(), "{:?}", r.violations);
    let g = &r.groups[0];
    assert_eq!(g.number, 11);
    assert!(g
        .members
        .iter()
        .any(|m| m.address == addr("0000:04:00.0") && m.bridge));
    // Conventional devices without FLR or PM: a bus reset that also hits the neighbour.
    match &r.hostdevs[0].reset {
        Some(virtpci::hostdev::ResetCapability::SecondaryBus { also_resets }) => {
            assert_eq!(also_resets, &[addr("0000:05:02.0")])
        }
        other => panic!("{other:?}"),
    }
    b.prepare("vm", &both).unwrap();
    b.mgr.reattach_pci_devices(QEMU, "vm", &both).unwrap();
    assert_eq!(b.driver("0000:05:01.0").as_deref(), Some("e1000"));
    assert_eq!(b.driver("0000:05:02.0").as_deref(), Some("8139cp"));

    // The BMC VGA of the SR-IOV server sits behind a root port and an AST1150 bridge.
    let s = Bench::new("sriov-server");
    s.prepare("vm", &managed(&["0000:03:00.0"])).unwrap();
    assert_eq!(s.driver("0000:03:00.0").as_deref(), Some("vfio-pci"));
}

#[test]
fn missing_devices_and_bad_requests() {
    let b = Bench::new("quad-nic");
    let e = b.prepare("vm", &managed(&["0000:09:00.0"])).unwrap_err();
    assert_eq!(e.code, ErrorCode::SystemError);
    assert_eq!(
        e.message,
        format!(
            "Device 0000:09:00.0 not found: could not access {}/bus/pci/devices/0000:09:00.0/config: No such file or directory",
            b.tree.path.display()
        )
    );
    let mut dup = managed(&QUAD);
    dup.push(HostdevSpec::managed(addr("0000:02:00.0")));
    let e = b.prepare("vm", &dup).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArg);
    assert!(e
        .message
        .contains("Hostdev already exists in the domain configuration"));
    let mut xen = managed(&QUAD);
    xen[0].driver = Some("xen".into());
    let e = b.prepare("vm", &xen).unwrap_err();
    assert_eq!(
        e.message,
        "unsupported configuration: pci backend driver 'xen' is not supported"
    );
    // Nothing at all: success, nothing written.
    b.prepare("vm", &[]).unwrap();
    assert_eq!(b.book().generation, 0);
    assert_eq!(b.host.faults().attempted_total(), 0);
}

#[test]
fn unmanaged_devices_must_be_on_the_stub_and_stay_there() {
    let b = Bench::new("sriov-server");
    // VF 3b:02.0 is on iavf.
    let e = b.prepare("vm", &unmanaged(&["0000:3b:02.0"])).unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: Unmanaged PCI device 0000:3b:02.0 must be manually detached from the host"
    );
    // VF 3b:02.4 is on vfio-pci already: adopted; on re-attach it stays, in the inactive list.
    b.prepare("vm", &unmanaged(&["0000:3b:02.4"])).unwrap();
    assert_eq!(
        b.host.faults().attempted_total(),
        0,
        "adopting writes nothing"
    );
    b.mgr
        .reattach_pci_devices(QEMU, "vm", &unmanaged(&["0000:3b:02.4"]))
        .unwrap();
    assert_eq!(b.driver("0000:3b:02.4").as_deref(), Some("vfio-pci"));
    let book = b.book();
    assert!(book.active.is_empty());
    assert!(book.is_inactive(&addr("0000:3b:02.4")));

    // Managed but found on vfio-pci (3b:02.5): kept there, and it leaves the lists.
    b.prepare("vm", &managed(&["0000:3b:02.5"])).unwrap();
    let book = b.book();
    let e = book.active_entry(&addr("0000:3b:02.5")).unwrap();
    assert!(!e.entry.unbind_from_stub);
    b.mgr
        .reattach_pci_devices(QEMU, "vm", &managed(&["0000:3b:02.5"]))
        .unwrap();
    assert_eq!(b.driver("0000:3b:02.5").as_deref(), Some("vfio-pci"));
    assert!(!b.book().is_inactive(&addr("0000:3b:02.5")));

    // A VF on iavf goes to vfio-pci and back; an unbound VF comes back unbound.
    let vfs = managed(&["0000:3b:02.0", "0000:3b:02.6"]);
    b.prepare("vm", &vfs).unwrap();
    assert_eq!(b.driver("0000:3b:02.6").as_deref(), Some("vfio-pci"));
    b.mgr.reattach_pci_devices(QEMU, "vm", &vfs).unwrap();
    assert_eq!(b.driver("0000:3b:02.0").as_deref(), Some("iavf"));
    assert_eq!(b.driver("0000:3b:02.6"), None);
}

#[test]
fn node_device_detach_then_managed_use_stays_detached() {
    let b = Bench::new("quad-nic");
    for d in QUAD {
        b.mgr.node_device_detach(&addr(d), None, false).unwrap();
    }
    let book = b.book();
    assert_eq!(book.inactive.len(), 4);
    assert!(book.inactive.iter().all(|e| !e.managed));
    let r = b
        .mgr
        .check(QEMU, "vm", &managed(&QUAD), PrepareOptions::default())
        .unwrap();
    assert!(r.hostdevs.iter().all(|h| h.action == Action::FromInactive));
    b.prepare("vm", &managed(&QUAD)).unwrap();
    // In use: node-device calls refuse.
    let e = b
        .mgr
        .node_device_reattach(&addr("0000:02:00.0"))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: PCI device 0000:02:00.0 is in use by driver QEMU, domain vm"
    );
    let e = b
        .mgr
        .node_device_detach(&addr("0000:02:00.0"), None, false)
        .unwrap_err();
    assert!(e.message.ends_with("is in use by driver QEMU, domain vm"));
    let e = b.mgr.node_device_reset(&addr("0000:02:00.0")).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Not resetting active device 0000:02:00.0"
    );
    // libvirt's "mixed" case: the inactive entry says unmanaged, so the devices stay detached.
    b.mgr
        .reattach_pci_devices(QEMU, "vm", &managed(&QUAD))
        .unwrap();
    for d in QUAD {
        assert_eq!(b.driver(d).as_deref(), Some("vfio-pci"));
    }
    assert_eq!(b.book().inactive.len(), 4);
    for d in QUAD {
        b.mgr.node_device_reattach(&addr(d)).unwrap();
        assert_eq!(b.driver(d).as_deref(), Some("tg3"));
        assert_eq!(b.host.driver_override(&addr(d)).unwrap(), None);
    }
    assert!(b.book().inactive.is_empty());
    // nodedev-reattach forces a device virtpci never detached back to its host driver.
    let vf = addr("0000:3b:02.4");
    let s = Bench::new("sriov-server");
    s.mgr.node_device_reattach(&vf).unwrap();
    assert_eq!(s.host.driver(&vf).unwrap().as_deref(), Some("iavf"));
}

#[test]
fn reset_rules() {
    let b = Bench::new("workstation");
    let sim = b.host.simulator().unwrap();
    // FLR capable (igb): nothing to do.
    assert_eq!(
        b.mgr.node_device_reset(&addr("0000:03:00.0")).unwrap(),
        ResetOutcome::LeftToFlr
    );
    // PM capable, no FLR (GPU audio on snd_hda_intel): D3hot, D0, config restored.
    let before = sim.applied_writes().len();
    assert_eq!(
        b.mgr.node_device_reset(&addr("0000:01:00.1")).unwrap(),
        ResetOutcome::PowerManagement
    );
    let writes = &sim.applied_writes()[before..];
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(writes
        .iter()
        .all(|w| w.starts_with("config bus/pci/devices/0000:01:00.1/config")));
    assert!(writes[2].contains("256 bytes at 0x0"));
    // A bridge is not an endpoint.
    let e = b.mgr.node_device_reset(&addr("0000:00:01.0")).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Invalid attempt to reset PCI device 0000:00:01.0. Only PCI endpoint devices can be reset"
    );
    // VFIO-bound: left to VFIO.
    let s = Bench::new("sriov-server");
    assert_eq!(
        s.mgr.node_device_reset(&addr("0000:3b:02.4")).unwrap(),
        ResetOutcome::LeftToVfio
    );

    // Bus reset: refused while the neighbour is in use by the host, done once it is detached.
    let q = Bench::new("qemu-q35");
    let e = q.mgr.node_device_reset(&addr("0000:05:01.0")).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Unable to reset PCI device 0000:05:01.0: internal error: Active 0000:05:02.0 devices on bus with 0000:05:01.0, not doing bus reset"
    );
    q.mgr
        .node_device_detach(&addr("0000:05:02.0"), None, false)
        .unwrap();
    let sim = q.host.simulator().unwrap();
    let before = sim.applied_writes().len();
    assert_eq!(
        q.mgr.node_device_reset(&addr("0000:05:01.0")).unwrap(),
        ResetOutcome::SecondaryBus {
            bridge: addr("0000:04:00.0")
        }
    );
    let writes = &sim.applied_writes()[before..];
    assert!(writes[0].starts_with("config bus/pci/devices/0000:04:00.0/config 2 bytes at 0x3e"));
    assert!(writes[1].starts_with("config bus/pci/devices/0000:04:00.0/config 2 bytes at 0x3e"));
    assert!(writes[2].starts_with("config bus/pci/devices/0000:05:01.0/config"));
    // Bus 0 without FLR or PM: nothing available.
    let n = Bench::new("quad-nic");
    let e = n.mgr.node_device_reset(&addr("0000:00:00.0")).unwrap_err();
    assert_eq!(
        e.message,
        "internal error: Unable to reset PCI device 0000:00:00.0: no FLR, PM reset or bus reset available"
    );
}

#[test]
fn host_critical_devices_need_force() {
    let b = Bench::new("quad-nic");
    b.set_proc(
        "/dev/sda1 / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n",
        &default_route("eno1"),
    );
    let e = b.prepare("vm", &managed(&["0000:00:19.0"])).unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: PCI device 0000:00:19.0 is critical to the host: it holds network interface eno1, which carries the default route; refusing to detach it unless forced"
    );
    let e = b
        .prepare("vm", &managed(&["0000:00:1f.0", "0000:00:1f.2"]))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Requested operation is not valid: PCI device 0000:00:1f.2 is critical to the host: it holds block device sda1, whose filesystem is mounted at /; refusing to detach it unless forced"
    );
    let e = b
        .mgr
        .node_device_detach(&addr("0000:00:19.0"), None, false)
        .unwrap_err();
    assert!(e.message.contains("carries the default route"));
    assert_eq!(b.host.faults().attempted_total(), 0);
    // FORCE detaches it, with a warning in the dry run.
    let r = b
        .mgr
        .check(
            QEMU,
            "vm",
            &managed(&["0000:00:19.0"]),
            PrepareOptions {
                force: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(r.ok());
    assert!(r.warnings[0].contains("detaching it anyway (forced)"));
    b.mgr
        .prepare_pci_devices(
            QEMU,
            "vm",
            None,
            &managed(&["0000:00:19.0"]),
            PrepareOptions {
                force: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.driver("0000:00:19.0").as_deref(), Some("vfio-pci"));
    b.mgr
        .reattach_pci_devices(QEMU, "vm", &managed(&["0000:00:19.0"]))
        .unwrap();
    assert_eq!(b.driver("0000:00:19.0").as_deref(), Some("e1000e"));

    // An injected source, and the NVMe root filesystem of the SR-IOV server.
    let s = Bench::new("sriov-server");
    let mgr = HostdevManager::new(s.host.clone(), &s.tree.join("state2"))
        .unwrap()
        .with_usage(Box::new(StaticUsage {
            mounts: "/dev/nvme0n1p1 /boot vfat rw 0 0\n".into(),
            ..Default::default()
        }));
    let e = mgr
        .prepare_pci_devices(
            QEMU,
            "vm",
            None,
            &managed(&["0000:5e:00.0"]),
            PrepareOptions::default(),
        )
        .unwrap_err();
    assert!(e.message.contains("PCI device 0000:5e:00.0 is critical to the host: it holds block device nvme0n1p1, whose filesystem is mounted at /boot"));
}

/// A writer whose probe binds nothing: a device that does not move.
#[derive(Debug)]
struct StuckProbe(SimulatedKernel);

impl SysfsWriter for StuckProbe {
    fn write(&self, sysfs: &Sysfs, w: &SysfsWrite<'_>) -> std::io::Result<()> {
        if w.kind == WriteKind::DriversProbe {
            return Ok(());
        }
        self.0.write(sysfs, w)
    }
}

#[test]
fn a_device_that_does_not_reach_the_stub_is_named_and_everything_rolls_back() {
    let tree = fixture_tree("quad-nic");
    let before = drivers(&Host::open_simulated(&tree.path).unwrap());
    let sysfs = Sysfs::open(&tree.path).unwrap();
    let kernel = SimulatedKernel::attach(&sysfs).unwrap();
    let host = Arc::new(Host::with_writer(Some(&tree.path), Arc::new(StuckProbe(kernel))).unwrap());
    let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
    let e = mgr
        .prepare_pci_devices(QEMU, "vm", None, &managed(&QUAD), PrepareOptions::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::OperationFailed);
    assert_eq!(
        e.message,
        "operation failed: PCI device 0000:02:00.0 did not bind to vfio-pci: it has no driver"
    );
    // The rollback cannot probe either, so it binds the original driver explicitly.
    let reference = Host::open_simulated(&tree.path).unwrap();
    assert_eq!(drivers(&reference), before);
    let book = mgr.book().unwrap();
    assert!(book.active.is_empty() && book.inactive.is_empty());
}

#[test]
fn update_active_rebuilds_and_reconciles() {
    let b = Bench::new("quad-nic");
    b.prepare("vm1", &managed(&QUAD)).unwrap();
    // A daemon that lost its state directory: a fresh manager learns from the running domain.
    let fresh = HostdevManager::new(b.host.clone(), &b.tree.join("other-state")).unwrap();
    assert!(fresh.book().unwrap().active.is_empty());
    fresh
        .update_active_pci_devices(QEMU, "vm1", &managed(&QUAD))
        .unwrap();
    let book = fresh.book().unwrap();
    assert_eq!(book.active.len(), 4);
    assert!(book.active.iter().all(|a| a.entry.original.is_none()));
    let e = fresh
        .prepare_pci_devices(
            QEMU,
            "vm2",
            None,
            &managed(&QUAD),
            PrepareOptions::default(),
        )
        .unwrap_err();
    assert!(e
        .message
        .ends_with("PCI device 0000:02:00.0 is in use by driver QEMU, domain vm1"));
    let e = fresh
        .update_active_pci_devices(QEMU, "vm2", &managed(&QUAD[..1]))
        .unwrap_err();
    assert!(e.message.ends_with("is in use by driver QEMU, domain vm1"));
    let e = fresh
        .update_active_pci_devices(QEMU, "vm1", &managed(&["0000:09:00.0"]))
        .unwrap_err();
    assert!(e.message.starts_with("Device 0000:09:00.0 not found"));
    // Reconcile: listed devices stay booked, unlisted ones move to the inactive list.
    fresh
        .update_active_pci_devices(QEMU, "vm1", &managed(&QUAD[..3]))
        .unwrap();
    let book = fresh.book().unwrap();
    assert_eq!(book.active.len(), 3);
    assert_eq!(book.inactive[0].address, addr("0000:02:00.3"));
    // Unknown original driver: the kernel chooses on re-attach (tg3 here).
    fresh
        .reattach_pci_devices(QEMU, "vm1", &managed(&QUAD[..3]))
        .unwrap();
    for d in &QUAD[..3] {
        assert_eq!(b.driver(d).as_deref(), Some("tg3"));
    }
    // The original manager's state still has its own, consistent view.
    b.mgr
        .update_active_pci_devices(QEMU, "vm1", &managed(&QUAD))
        .unwrap();
    assert_eq!(b.book().active.len(), 4);
}

#[test]
fn vfio_variant_driver_as_stub() {
    let b = Bench::new("sriov-server");
    std::fs::create_dir_all(b.tree.join("bus/pci/drivers/mlx5_vfio_pci")).unwrap();
    let mut spec = managed(&["0000:d8:00.0"]);
    spec[0].driver = Some("mlx5_vfio_pci".into());
    b.prepare("vm", &spec).unwrap();
    assert_eq!(b.driver("0000:d8:00.0").as_deref(), Some("mlx5_vfio_pci"));
    assert_eq!(b.book().active[0].entry.stub, "mlx5_vfio_pci");
    b.mgr.reattach_pci_devices(QEMU, "vm", &spec).unwrap();
    assert_eq!(b.driver("0000:d8:00.0").as_deref(), Some("mlx5_core"));
}

#[test]
fn domain_xml_convenience() {
    let b = Bench::new("quad-nic");
    let mut xml = String::from(
        "<domain type='kvm'><name>xmlvm</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid><devices>\n",
    );
    for f in 0..4 {
        xml.push_str(&format!(
            "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x02' slot='0x00' function='0x{f}'/></source>{}</hostdev>\n",
            if f == 1 { "<address type='pci' bus='0x01' slot='0x00'/>" } else { "<address type='unassigned'/>" }
        ));
    }
    xml.push_str("</devices></domain>");
    b.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    let book = b.book();
    assert_eq!(book.active.len(), 4);
    assert!(book.active.iter().all(|a| a.owner.domain == "xmlvm"));
    assert_eq!(book.active.iter().filter(|a| a.unassigned).count(), 3);
    b.mgr.reattach_domain(QEMU, &xml).unwrap();
    assert!(b.book().active.is_empty());
    let e = b
        .mgr
        .prepare_domain(
            QEMU,
            "<domain><devices/></domain>",
            PrepareOptions::default(),
        )
        .unwrap_err();
    assert_eq!(e.message, "XML error: missing domain name information");
    let e = b
        .mgr
        .prepare_domain(QEMU, "<domain>", PrepareOptions::default())
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::XmlError);
}

#[test]
fn a_removed_device_is_forgotten_by_reattach() {
    let b = Bench::new("sriov-server");
    let vfs = managed(&["0000:3b:02.0", "0000:3b:02.1"]);
    b.prepare("vm", &vfs).unwrap();
    // The VF disappears (sriov_numvfs lowered while the guest ran).
    std::fs::remove_file(b.tree.join("bus/pci/devices/0000:3b:02.1")).unwrap();
    b.mgr.reattach_pci_devices(QEMU, "vm", &vfs).unwrap();
    let book = b.book();
    assert!(book.active.is_empty() && book.inactive.is_empty());
    assert_eq!(b.driver("0000:3b:02.0").as_deref(), Some("iavf"));
}

/// A writer on which one device leaves the host (as with sysfs `remove`) when prepare first
/// writes to it.
#[derive(Debug)]
struct VanishOnFirstWrite {
    kernel: SimulatedKernel,
    device: &'static str,
    root: std::path::PathBuf,
}

impl SysfsWriter for VanishOnFirstWrite {
    fn write(&self, sysfs: &Sysfs, w: &SysfsWrite<'_>) -> std::io::Result<()> {
        let link = self.root.join("bus/pci/devices").join(self.device);
        if w.kind == WriteKind::DriverOverride && w.path.contains(self.device) {
            std::fs::remove_file(&link)?;
            return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
        }
        self.kernel.write(sysfs, w)
    }
}

#[test]
fn a_device_that_vanishes_during_prepare_is_not_booked() {
    let tree = fixture_tree("sriov-server");
    let sysfs = Sysfs::open(&tree.path).unwrap();
    let kernel = SimulatedKernel::attach(&sysfs).unwrap();
    let writer = VanishOnFirstWrite {
        kernel,
        device: "0000:3b:02.1",
        root: tree.path.clone(),
    };
    let host = Arc::new(Host::with_writer(Some(&tree.path), Arc::new(writer)).unwrap());
    let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
    let vfs = managed(&["0000:3b:02.0", "0000:3b:02.1"]);
    assert!(mgr
        .prepare_pci_devices(QEMU, "vm", None, &vfs, PrepareOptions::default())
        .is_err());
    // The device that stayed is back on its driver; the one that left is owned by nobody.
    assert_eq!(
        host.driver(&addr("0000:3b:02.0")).unwrap().as_deref(),
        Some("iavf")
    );
    let book = mgr.book().unwrap();
    assert!(
        book.active.is_empty() && book.inactive.is_empty(),
        "{book:?}"
    );
}
