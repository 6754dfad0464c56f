//! The simulated kernel: detach/reattach as libvirt does it, kernel error semantics, native
//! driver knowledge across processes, fault injection, concurrency.

mod host_support;

use host_support::*;
use std::sync::Arc;
use virtpci::host::{Host, SimulatedKernel, Sysfs, WriteKind};
use virtpci::{ErrorCode, PciAddress};

/// libvirt's virPCIDeviceBindToStub with driver_override.
fn detach(host: &Host, a: &PciAddress) {
    host.set_driver_override(a, Some("vfio-pci")).unwrap();
    host.unbind(a).unwrap();
    host.drivers_probe(a).unwrap();
}

/// libvirt's virPCIDeviceReattach with unbind_from_stub.
fn reattach(host: &Host, a: &PciAddress) {
    host.set_driver_override(a, None).unwrap();
    host.unbind(a).unwrap();
    host.drivers_probe(a).unwrap();
}

fn read(tree: &TempTree, rel: &str) -> String {
    std::fs::read_to_string(tree.join(rel)).unwrap()
}

#[test]
fn detach_and_reattach_move_links_like_the_kernel() {
    let tree = fixture_tree("quad-nic");
    let host = Host::open_simulated(&tree.path).unwrap();
    let nic = addr("0000:02:00.1");
    let dev = "bus/pci/devices/0000:02:00.1";
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("tg3"));
    assert_eq!(read(&tree, &format!("{dev}/driver_override")), "(null)\n");

    detach(&host, &nic);
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("vfio-pci"));
    assert_eq!(
        host.driver_override(&nic).unwrap().as_deref(),
        Some("vfio-pci")
    );
    assert_eq!(read(&tree, &format!("{dev}/driver_override")), "vfio-pci\n");
    assert!(host.bound_to_vfio(&nic).unwrap());
    assert!(tree.join(&format!("{dev}/vfio-dev/vfio0")).is_dir());
    let back = std::fs::read_link(tree.join("bus/pci/drivers/vfio-pci/0000:02:00.1")).unwrap();
    assert_eq!(
        back.to_str().unwrap(),
        "../../../../devices/pci0000:00/0000:00:1c.0/0000:02:00.1"
    );
    assert!(!tree.join("bus/pci/drivers/tg3/0000:02:00.1").exists());
    // Siblings untouched.
    assert_eq!(
        host.driver(&addr("0000:02:00.0")).unwrap().as_deref(),
        Some("tg3")
    );

    reattach(&host, &nic);
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("tg3"));
    assert_eq!(host.driver_override(&nic).unwrap(), None);
    assert_eq!(read(&tree, &format!("{dev}/driver_override")), "(null)\n");
    assert!(!tree.join(&format!("{dev}/vfio-dev")).exists());
    assert!(tree.join("bus/pci/drivers/tg3/0000:02:00.1").exists());
    let sim = host.simulator().unwrap();
    assert_eq!(sim.applied_writes().len(), 6);
    assert_eq!(
        sim.applied_writes()[0],
        "driver_override bus/pci/devices/0000:02:00.1/driver_override vfio-pci"
    );
}

#[test]
fn kernel_errors_for_bind_unbind_probe() {
    let tree = fixture_tree("quad-nic");
    let host = Host::open_simulated(&tree.path).unwrap();
    let nic = addr("0000:02:00.0");
    // Bound already: EBUSY.
    let e = host.bind(&nic, "tg3").unwrap_err();
    assert_eq!(e.code, ErrorCode::SystemError);
    assert_eq!(
        e.message,
        "Failed to bind PCI device '0000:02:00.0' to tg3: Device or resource busy"
    );
    // Unbinding from a driver it is not bound to: ENODEV.
    let e = host.unbind_from(&nic, "e1000e").unwrap_err();
    assert!(e.message.ends_with("No such device"), "{}", e.message);
    host.unbind(&nic).unwrap();
    assert_eq!(host.driver(&nic).unwrap(), None);
    // A driver whose ids do not match, without override: ENODEV.
    let e = host.bind(&nic, "e1000e").unwrap_err();
    assert!(e.message.ends_with("No such device"), "{}", e.message);
    // A driver that is not loaded: the bind file does not exist.
    let e = host.bind(&nic, "nosuchdrv").unwrap_err();
    assert!(
        e.message.contains("No such file or directory"),
        "{}",
        e.message
    );
    // Override to a driver that is not loaded: probe succeeds, device stays unbound.
    host.set_driver_override(&nic, Some("nosuchdrv")).unwrap();
    host.drivers_probe(&nic).unwrap();
    assert_eq!(host.driver(&nic).unwrap(), None);
    // With override to vfio-pci, bind to vfio-pci works even though it claims no ids.
    host.set_driver_override(&nic, Some("vfio-pci")).unwrap();
    host.bind(&nic, "vfio-pci").unwrap();
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("vfio-pci"));
    // Probe of a bound device changes nothing.
    host.set_driver_override(&nic, None).unwrap();
    host.drivers_probe(&nic).unwrap();
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("vfio-pci"));
    // Reset: only where the reset file exists, and only "1".
    host.reset(&nic).unwrap();
    assert_eq!(host.simulator().unwrap().resets(&nic), 1);
    let e = host.reset(&addr("0000:00:1c.0")).unwrap_err();
    assert!(e
        .message
        .starts_with("Failed to reset PCI device 0000:00:1c.0"));
    // Config space writes land in the file.
    host.write_config(&nic, 0x44, &[0x03, 0x00]).unwrap();
    let bytes = host.read_config_bytes(&nic).unwrap();
    assert_eq!(bytes[0x44], 0x03);
    assert!(host.write_config(&nic, 4095, &[1, 2]).is_err());
}

#[test]
fn new_id_and_remove_id() {
    let tree = fixture_tree("qemu-q35");
    let host = Host::open_simulated(&tree.path).unwrap();
    let a = addr("0000:05:01.0"); // e1000 8086:100e
    host.unbind(&a).unwrap();
    host.new_id("vfio-pci", 0x8086, 0x100e).unwrap();
    // driver_attach binds the unbound device at once.
    assert_eq!(host.driver(&a).unwrap().as_deref(), Some("vfio-pci"));
    let e = host.new_id("vfio-pci", 0x8086, 0x100e).unwrap_err();
    assert!(e.message.ends_with("File exists"), "{}", e.message);
    host.remove_id("vfio-pci", 0x8086, 0x100e).unwrap();
    assert!(host.remove_id("vfio-pci", 0x8086, 0x100e).is_err());
    host.unbind(&a).unwrap();
    host.drivers_probe(&a).unwrap();
    assert_eq!(host.driver(&a).unwrap().as_deref(), Some("e1000"));
}

#[test]
fn native_drivers_survive_a_new_process_and_come_from_fixtures() {
    let tree = fixture_tree("sriov-server");
    let vf0 = addr("0000:3b:02.0");
    {
        let host = Host::open_simulated(&tree.path).unwrap();
        detach(&host, &vf0);
    }
    // A "new process": knowledge comes from the tree only.
    let host = Host::open_simulated(&tree.path).unwrap();
    let sim = host.simulator().unwrap();
    assert_eq!(
        sim.native_driver(host.sysfs(), &vf0).unwrap().as_deref(),
        Some("iavf")
    );
    reattach(&host, &vf0);
    assert_eq!(host.driver(&vf0).unwrap().as_deref(), Some("iavf"));
    // VF 4 started on vfio-pci: its native driver was seeded from the fixture.
    let vf4 = addr("0000:3b:02.4");
    reattach(&host, &vf4);
    assert_eq!(host.driver(&vf4).unwrap().as_deref(), Some("iavf"));
    // A device nothing claims stays unbound after probe (the ASPEED bridge has no driver).
    let bridge = addr("0000:02:00.0");
    host.drivers_probe(&bridge).unwrap();
    assert_eq!(host.driver(&bridge).unwrap(), None);
}

#[test]
fn simulator_works_on_a_tree_made_by_someone_else() {
    let (tree, _) = generated_tree();
    let root = tree.join("sys");
    let host = Host::open_simulated(&root).unwrap();
    let group = host.iommu_group(&addr("0000:05:00.0")).unwrap().unwrap();
    for a in &group.devices {
        detach(&host, a);
    }
    for a in &group.devices {
        assert_eq!(host.driver(a).unwrap().as_deref(), Some("vfio-pci"));
    }
    for a in &group.devices {
        reattach(&host, a);
    }
    // 05:00.3 was found on vfio-pci with the same ids as its igb siblings: igb claims it.
    for a in &group.devices {
        assert_eq!(host.driver(a).unwrap().as_deref(), Some("igb"), "{a}");
    }
    // A VF found on vfio-pci whose ids nothing else claims goes nowhere.
    let vf = addr("0000:08:10.0");
    reattach(&host, &vf);
    assert_eq!(host.driver(&vf).unwrap(), None);
}

#[test]
fn injected_faults_fail_the_nth_write_and_change_nothing() {
    let tree = fixture_tree("quad-nic");
    let host = Host::open_simulated(&tree.path).unwrap();
    let nic = addr("0000:02:00.0");
    host.faults()
        .inject(Some(WriteKind::DriversProbe), 1, libc::EIO);
    host.set_driver_override(&nic, Some("vfio-pci")).unwrap();
    host.unbind(&nic).unwrap();
    let before = digest(&tree.path);
    let e = host.drivers_probe(&nic).unwrap_err();
    assert_eq!(
        e.message,
        "Failed to trigger a probe for PCI device '0000:02:00.0': Input/output error"
    );
    assert_eq!(digest(&tree.path), before);
    assert_eq!(host.driver(&nic).unwrap(), None);
    host.drivers_probe(&nic).unwrap();
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("vfio-pci"));
    // Any kind: the 2nd write from now.
    host.faults().inject(None, 2, libc::ENOSPC);
    host.set_driver_override(&nic, None).unwrap();
    let e = host.unbind(&nic).unwrap_err();
    assert!(
        e.message.ends_with("No space left on device"),
        "{}",
        e.message
    );
    assert_eq!(host.driver(&nic).unwrap().as_deref(), Some("vfio-pci"));
    assert_eq!(host.faults().fired(), 2);
    assert_eq!(host.faults().attempted(WriteKind::Unbind), 2);
}

#[test]
fn fault_injection_walks_every_write_of_a_detach() {
    // The pattern issue 5 uses: fail each write in turn; the device must be recoverable.
    for nth in 1..=3u64 {
        let tree = fixture_tree("quad-nic");
        let host = Host::open_simulated(&tree.path).unwrap();
        let nic = addr("0000:02:00.3");
        host.faults().inject(None, nth, libc::EPERM);
        let r = host
            .set_driver_override(&nic, Some("vfio-pci"))
            .and_then(|()| host.unbind(&nic))
            .and_then(|()| host.drivers_probe(&nic));
        assert!(r.is_err(), "write {nth} should fail");
        reattach(&host, &nic);
        assert_eq!(
            host.driver(&nic).unwrap().as_deref(),
            Some("tg3"),
            "after {nth}"
        );
    }
}

#[test]
fn threads_share_one_simulated_host() {
    let tree = fixture_tree("sriov-server");
    let host = Arc::new(Host::open_simulated(&tree.path).unwrap());
    let vfs = host.virtual_functions(&addr("0000:3b:00.0")).unwrap();
    let threads: Vec<_> = vfs
        .into_iter()
        .map(|vf| {
            let host = host.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    detach(&host, &vf);
                    assert_eq!(host.driver(&vf).unwrap().as_deref(), Some("vfio-pci"));
                    reattach(&host, &vf);
                    assert_eq!(host.driver(&vf).unwrap().as_deref(), Some("iavf"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// One write, named.
type NamedWrite = (&'static str, fn(&Host, &PciAddress));

/// The writes of a detach and a re-attach in every way the simulator knows (override and
/// probe, `new_id`, explicit bind), one after the other.
fn steps_of_a_round_trip() -> Vec<NamedWrite> {
    vec![
        ("override vfio-pci", |h, a| {
            h.set_driver_override(a, Some("vfio-pci")).unwrap()
        }),
        ("unbind tg3", |h, a| h.unbind(a).unwrap()),
        ("probe to vfio-pci", |h, a| h.drivers_probe(a).unwrap()),
        ("clear override", |h, a| {
            h.set_driver_override(a, None).unwrap()
        }),
        ("unbind vfio-pci", |h, a| h.unbind(a).unwrap()),
        ("new_id vfio-pci", |h, _| {
            h.new_id("vfio-pci", 0x14e4, 0x1657).unwrap()
        }),
        ("remove_id vfio-pci", |h, _| {
            h.remove_id("vfio-pci", 0x14e4, 0x1657).unwrap()
        }),
        ("unbind vfio-pci again", |h, a| h.unbind(a).unwrap()),
        ("bind tg3", |h, a| h.bind(a, "tg3").unwrap()),
    ]
}

/// The tree without the simulator's temporary files (which a crash may leave behind).
fn settled_digest(tree: &TempTree) -> std::collections::BTreeMap<String, String> {
    let mut d = digest(&tree.path);
    d.retain(|path, _| !(path.starts_with(".virtpci-sim/") && path.ends_with(".tmp")));
    d
}

/// A write is one system call for the kernel; the simulator makes it in steps, in the writing
/// process. Whichever step a process dies after (here: the step hook unwinds), the next
/// simulator to attach must find the tree as before the write or as after it.
#[test]
fn a_write_cut_between_any_two_steps_is_made_whole_or_not_at_all() {
    struct Killed;
    let a = addr("0000:02:00.0"); // tg3 14e4:1657
    let writes = steps_of_a_round_trip();
    let run_until = |n: usize| {
        let tree = fixture_tree("quad-nic");
        let host = Host::open_simulated(&tree.path).unwrap();
        for (_, w) in &writes[..n] {
            w(&host, &a);
        }
        tree
    };
    let mut cuts = 0;
    let mut after = settled_digest(&run_until(0));
    for (i, (name, write)) in writes.iter().enumerate() {
        let before = std::mem::replace(&mut after, settled_digest(&run_until(i + 1)));
        assert_ne!(before, after, "{name} changes nothing");
        for k in 1.. {
            let tree = run_until(i);
            let sysfs = Sysfs::open(&tree.path).unwrap();
            let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = done.clone();
            let hook = move |_: &str| {
                if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == k {
                    std::panic::resume_unwind(Box::new(Killed));
                }
            };
            let kernel = SimulatedKernel::attach_with_step_hook(&sysfs, Arc::new(hook)).unwrap();
            let host = Host::with_writer(Some(&tree.path), Arc::new(kernel)).unwrap();
            let cut = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(&host, &a)));
            drop(host);
            // The next process.
            Host::open_simulated(&tree.path).unwrap();
            let now = settled_digest(&tree);
            assert!(
                now == before || now == after,
                "{name} cut after step {k}: neither before nor after the write"
            );
            match cut {
                Ok(()) => {
                    assert_eq!(now, after, "{name}");
                    break;
                }
                Err(payload) => assert!(payload.is::<Killed>(), "{name} step {k} panicked"),
            }
            cuts += 1;
        }
    }
    assert!(cuts > 2 * writes.len(), "only {cuts} cuts");
}
