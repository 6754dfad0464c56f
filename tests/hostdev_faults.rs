//! Fault injection: every sysfs write of prepare, and of re-attach, fails in turn; afterwards
//! every device of the host is on the driver (and driver_override) it had before the call and
//! both lists are unchanged. Then the same with the rollback's own first write failing too:
//! the devices left behind are booked as interrupted, and the domain's re-attach restores them.

mod host_support;
mod hostdev_support;

use hostdev_support::*;
use std::collections::BTreeMap;
use virtpci::host::MacAddr;
use virtpci::host::VfNet;
use virtpci::hostdev::PrepareOptions;
use virtpci::xml::hostdevs::NetConfig;
use virtpci::HostdevSpec;
use virtpci::PciAddress;

const QEMU: &str = "QEMU";
const ERRNOS: [i32; 3] = [libc::EIO, libc::ENODEV, libc::EBUSY];

struct Scenario {
    fixture: &'static str,
    hostdevs: Vec<HostdevSpec>,
    options: PrepareOptions,
}

fn scenarios() -> Vec<Scenario> {
    let mut sriov = managed(&[
        "0000:3b:02.0",
        "0000:3b:02.6",
        "0000:3b:02.5",
        "0000:3b:02.1",
    ]);
    sriov.push(HostdevSpec::unmanaged(addr("0000:3b:02.4")));
    // Two VFs as network interfaces: one moving (MAC and VLAN set), one already on vfio-pci.
    sriov[0].net = Some(NetConfig {
        mac: Some(MacAddr::parse("52:54:00:aa:bb:cc").unwrap()),
        vlan: Some(42),
    });
    sriov[2].net = Some(NetConfig {
        mac: Some(MacAddr::parse("52:54:00:aa:bb:dd").unwrap()),
        vlan: None,
    });
    let mut quad = managed(&QUAD);
    quad[0].unassigned = true;
    vec![
        Scenario {
            fixture: "quad-nic",
            hostdevs: quad,
            options: PrepareOptions::default(),
        },
        Scenario {
            fixture: "workstation",
            hostdevs: managed(&GPU),
            options: PrepareOptions::default(),
        },
        Scenario {
            fixture: "sriov-server",
            hostdevs: sriov,
            options: PrepareOptions::default(),
        },
        Scenario {
            fixture: "qemu-q35",
            hostdevs: managed(&[
                "0000:05:01.0",
                "0000:05:02.0",
                "0000:01:00.0",
                "0000:06:00.0",
                "0000:06:00.1",
            ]),
            options: PrepareOptions::default(),
        },
    ]
}

/// The MAC and VLAN the SR-IOV server's first PF holds for each VF (empty elsewhere).
fn vf_nets(b: &Bench) -> Vec<VfNet> {
    let pf = addr("0000:3b:00.0");
    if b.host.device_exists(&pf).unwrap()
        && b.host.vf_index(&addr("0000:3b:02.0")).unwrap().is_some()
    {
        (0..8).map(|i| b.host.vf_net(&pf, i).unwrap()).collect()
    } else {
        Vec::new()
    }
}

type Drivers = BTreeMap<PciAddress, (Option<String>, Option<String>)>;

/// Drivers of every device, and the VFs' MAC/VLAN.
fn state(b: &Bench) -> (Drivers, Vec<VfNet>) {
    (b.drivers(), vf_nets(b))
}

/// Writes a successful prepare and re-attach make on a fresh host.
fn count_writes(s: &Scenario) -> (u64, u64) {
    let b = Bench::new(s.fixture);
    b.mgr
        .prepare_pci_devices(QEMU, "vm", None, &s.hostdevs, s.options)
        .unwrap();
    let w = b.host.faults().attempted_total();
    b.mgr.reattach_pci_devices(QEMU, "vm", &s.hostdevs).unwrap();
    (w, b.host.faults().attempted_total() - w)
}

#[test]
fn each_write_of_prepare_and_reattach_fails_in_turn() {
    let mut report = Vec::new();
    for s in scenarios() {
        let (w, r) = count_writes(&s);
        assert!(w > 0 && r > 0, "{}: {w} {r}", s.fixture);
        let b = Bench::new(s.fixture);
        let initial = state(&b);
        let book0 = b.book().lists();
        for k in 1..=w {
            b.host.faults().inject(None, k, ERRNOS[k as usize % 3]);
            let e = b
                .mgr
                .prepare_pci_devices(QEMU, "vm", None, &s.hostdevs, s.options)
                .expect_err("the injected fault fails prepare");
            assert!(
                b.host.faults().armed().is_empty(),
                "{}: fault {k} fired: {}",
                s.fixture,
                e.message
            );
            assert_eq!(
                state(&b),
                initial,
                "{}: after prepare fault {k}: {}",
                s.fixture,
                e.message
            );
            assert_eq!(
                b.book().lists(),
                book0,
                "{}: lists after prepare fault {k}",
                s.fixture
            );
        }
        b.mgr
            .prepare_pci_devices(QEMU, "vm", None, &s.hostdevs, s.options)
            .unwrap();
        let prepared = state(&b);
        let book_p = b.book().lists();
        for k in 1..=r {
            b.host.faults().inject(None, k, ERRNOS[k as usize % 3]);
            let e = b
                .mgr
                .reattach_pci_devices(QEMU, "vm", &s.hostdevs)
                .expect_err("the injected fault fails re-attach");
            assert!(b.host.faults().armed().is_empty());
            assert_eq!(
                state(&b),
                prepared,
                "{}: after reattach fault {k}: {}",
                s.fixture,
                e.message
            );
            assert_eq!(
                b.book().lists(),
                book_p,
                "{}: lists after reattach fault {k}",
                s.fixture
            );
        }
        b.mgr.reattach_pci_devices(QEMU, "vm", &s.hostdevs).unwrap();
        assert_eq!(state(&b), initial, "{}: final", s.fixture);
        // As in libvirt, adopted unmanaged devices stay in the inactive list.
        let book = b.book();
        assert!(book.active.is_empty());
        let kept: Vec<_> = book.inactive.iter().map(|e| e.address).collect();
        let unmanaged: Vec<_> = s
            .hostdevs
            .iter()
            .filter(|h| !h.managed)
            .map(|h| h.source)
            .collect();
        assert_eq!(kept, unmanaged);
        assert!(book0.0.is_empty() && book0.1.is_empty());
        report.push(format!(
            "{}: {} hostdevs, prepare {w} writes failed in turn, reattach {r} writes failed in turn",
            s.fixture,
            s.hostdevs.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_failing_rollback_leaves_interrupted_entries_that_reattach_undoes() {
    for s in scenarios() {
        let (w, _) = count_writes(&s);
        let b = Bench::new(s.fixture);
        let initial = b.drivers();
        let nets0 = vf_nets(&b);
        let book0 = b.book().lists();
        for k in 1..w {
            b.host.faults().inject(None, k, libc::EIO);
            b.host.faults().inject(None, k + 1, libc::EIO);
            assert!(b
                .mgr
                .prepare_pci_devices(QEMU, "vm", None, &s.hostdevs, s.options)
                .is_err());
            b.host.faults().clear();
            let book = b.book();
            // Whatever was left behind is booked to the domain: never lost, never taken.
            for (a, now) in b.drivers() {
                if now != initial[&a] {
                    let e = book.active_entry(&a).unwrap_or_else(|| {
                        panic!("{}: fault {k}: {a} moved but is not booked", s.fixture)
                    });
                    assert!(e.interrupted && e.owner.domain == "vm");
                }
            }
            b.mgr.reattach_pci_devices(QEMU, "vm", &s.hostdevs).unwrap();
            assert_eq!(b.drivers(), initial, "{}: fault {k}", s.fixture);
            assert_eq!(vf_nets(&b), nets0, "{}: fault {k}", s.fixture);
            assert_eq!(b.book().lists(), book0, "{}: fault {k}", s.fixture);
        }
    }
}

#[test]
fn node_device_detach_faults_roll_back() {
    let b = Bench::new("quad-nic");
    let initial = b.drivers();
    let dev = addr("0000:02:00.2");
    for k in 1..=3 {
        b.host.faults().inject(None, k, libc::EIO);
        assert!(b.mgr.node_device_detach(&dev, None, false).is_err());
        assert_eq!(b.drivers(), initial, "fault {k}");
        assert!(b.book().inactive.is_empty());
    }
    b.mgr.node_device_detach(&dev, None, false).unwrap();
    let detached = b.drivers();
    for k in 1..=3 {
        b.host.faults().inject(None, k, libc::EIO);
        assert!(b.mgr.node_device_reattach(&dev).is_err());
        assert!(b.host.faults().armed().is_empty());
        assert_eq!(b.drivers(), detached, "fault {k}");
        assert!(b.book().is_inactive(&dev), "still booked after fault {k}");
    }
    b.mgr.node_device_reattach(&dev).unwrap();
    assert_eq!(b.drivers(), initial);
}
