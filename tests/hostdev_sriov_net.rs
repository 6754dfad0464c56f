//! `<interface type='hostdev'>` on the simulated SR-IOV server: only a VF whose PF has a
//! netdev may be given as a network interface, with libvirt's words for every refusal, and
//! nothing changes when one is refused.

mod host_support;
mod hostdev_support;

use host_support::*;
use hostdev_support::*;
#[cfg(feature = "test-hooks")]
use std::os::unix::process::ExitStatusExt;
#[cfg(feature = "test-hooks")]
use std::process::{Command, Stdio};
use std::sync::Arc;
use virtpci::host::{Host, MacAddr, VfNet};
use virtpci::hostdev::{HostdevManager, PrepareOptions};
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
    let e = b
        .mgr
        .prepare_domain(QEMU, xml, PrepareOptions::default())
        .unwrap_err();
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
        .check_domain(
            QEMU,
            &interface_domain(0x3b, 0, 0, ""),
            PrepareOptions::default(),
        )
        .unwrap();
    assert!(report.violations.iter().any(|v| v.message.contains(
        "Interface type hostdev is currently supported on SR-IOV Virtual Functions only"
    )));
    // The same PF as a plain <hostdev> is still allowed to be checked (no interface rule).
    let plain = "<domain type='kvm'><name>vm1</name><devices>\
        <hostdev mode='subsystem' type='pci' managed='yes'><source>\
        <address domain='0' bus='0x3b' slot='0' function='0'/></source></hostdev>\
        </devices></domain>";
    let report = b
        .mgr
        .check_domain(QEMU, plain, PrepareOptions::default())
        .unwrap();
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

fn mac(text: &str) -> MacAddr {
    MacAddr::parse(text).unwrap()
}

#[test]
fn prepare_sets_the_vfs_mac_and_vlan_and_reattach_restores_them() {
    let b = Bench::new("sriov-server");
    let pf = addr("0000:3b:00.0");
    // What the PF held before: set by an earlier user of VF 2.
    let earlier = VfNet {
        mac: mac("52:54:00:00:00:02"),
        vlan: 7,
    };
    b.host.set_vf_net(&pf, 2, earlier).unwrap();
    let before = b.drivers();
    let xml = interface_domain(
        0x3b,
        2,
        2,
        "<mac address='52:54:00:aa:bb:cc'/><vlan><tag id='42'/></vlan>",
    );
    b.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    assert_eq!(b.driver("0000:3b:02.2").as_deref(), Some("vfio-pci"));
    assert_eq!(
        b.host.vf_net(&pf, 2).unwrap(),
        VfNet {
            mac: mac("52:54:00:aa:bb:cc"),
            vlan: 42
        }
    );
    // The original is in the saved book.
    let book = b.book();
    let saved = book.active[0].saved_net.as_ref().unwrap();
    assert_eq!(
        (saved.pf, saved.index, saved.mac.as_str(), saved.vlan),
        (pf, 2, "52:54:00:00:00:02", 7)
    );
    // A restarted daemon gives back exactly what was saved.
    b.restart().reattach_domain(QEMU, &xml).unwrap();
    assert_eq!(b.host.vf_net(&pf, 2).unwrap(), earlier);
    assert_eq!(b.drivers(), before);
    assert!(b.book().active.is_empty());

    // A MAC alone leaves the VLAN the PF holds; no <mac>/<vlan> changes nothing.
    let xml = interface_domain(0x3b, 2, 2, "<mac address='52:54:00:aa:bb:dd'/>");
    b.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    assert_eq!(
        b.host.vf_net(&pf, 2).unwrap(),
        VfNet {
            mac: mac("52:54:00:aa:bb:dd"),
            vlan: 7
        }
    );
    b.mgr.reattach_domain(QEMU, &xml).unwrap();
    assert_eq!(b.host.vf_net(&pf, 2).unwrap(), earlier);
    let xml = interface_domain(0x3b, 2, 6, "");
    b.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    assert!(b.book().active[0].saved_net.is_none());
    b.mgr.reattach_domain(QEMU, &xml).unwrap();
    assert_eq!(b.drivers(), before);
}

#[test]
fn on_a_real_host_the_mac_and_vlan_are_refused_not_ignored() {
    // The same tree opened with the kernel writer, as a real host is.
    let tree = fixture_tree("sriov-server");
    let host = Arc::new(Host::open(Some(&tree.path)).unwrap());
    let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
    for inner in [
        "<mac address='52:54:00:aa:bb:cc'/>",
        "<vlan><tag id='42'/></vlan>",
    ] {
        let e = mgr
            .prepare_domain(
                QEMU,
                &interface_domain(0x3b, 2, 6, inner),
                PrepareOptions::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::OperationUnsupported);
        assert_eq!(
            e.message,
            format!(
                "Operation not supported: a VF's MAC/VLAN is set through netlink on the running kernel, and the sysfs tree at '{}' is not its /sys (use the simulated kernel for a tree)",
                tree.path.display()
            )
        );
        assert_eq!(host.faults().attempted_total(), 0);
    }
}

#[cfg(feature = "test-hooks")]
#[test]
fn killed_after_each_write_reattach_restores_the_mac_and_vlan() {
    let tree = fixture_tree("sriov-server");
    let xml = tree.join("dom.xml");
    std::fs::write(
        &xml,
        interface_domain(
            0x3b,
            2,
            2,
            "<mac address='52:54:00:aa:bb:cc'/><vlan><tag id='42'/></vlan>",
        ),
    )
    .unwrap();
    let host = Host::open_simulated(&tree.path).unwrap();
    let pf = addr("0000:3b:00.0");
    let initial = drivers(&host);
    let cli = |verb: &str| {
        let mut c = Command::new(virtpci_bin());
        c.arg(verb)
            .args(["--simulate", "--driver", "QEMU", "--sysfs"])
            .arg(&tree.path)
            .arg("--state")
            .arg(tree.join("state"))
            .arg(&xml)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // Run `verb` aborting after `k` writes: true when it got past its last write.
    let finished = |verb: &str, k: u32| {
        let status = cli(verb)
            .env("VIRTPCI_TEST_ABORT_AFTER_WRITES", k.to_string())
            .status()
            .unwrap();
        if !status.success() {
            assert_eq!(
                status.signal(),
                Some(libc::SIGABRT),
                "{verb} abort after {k} writes"
            );
        }
        status.success()
    };
    let mut aborted = 0;
    for k in 0.. {
        if finished("prepare", k) {
            // Past the last write: prepared; now a crash in re-attach at every write.
            assert_eq!(host.vf_net(&pf, 2).unwrap().vlan, 42);
            let mut r = 0;
            for j in 0.. {
                if finished("reattach", j) {
                    break;
                }
                r += 1;
                assert!(cli("reattach").status().unwrap().success(), "reattach {j}");
                assert_eq!(
                    host.vf_net(&pf, 2).unwrap(),
                    VfNet::default(),
                    "reattach {j}"
                );
                assert_eq!(drivers(&host), initial, "reattach {j}");
                assert!(cli("prepare").status().unwrap().success());
            }
            assert!(r >= 4, "{r} re-attach abort points");
            break;
        }
        aborted += 1;
        assert!(
            cli("reattach").status().unwrap().success(),
            "after {k} writes"
        );
        assert_eq!(
            host.vf_net(&pf, 2).unwrap(),
            VfNet::default(),
            "after {k} writes"
        );
        assert_eq!(drivers(&host), initial, "after {k} writes");
        let book = HostdevManager::new(
            Arc::new(Host::open_simulated(&tree.path).unwrap()),
            &tree.join("state"),
        )
        .unwrap()
        .book()
        .unwrap();
        assert!(
            book.active.is_empty() && book.inactive.is_empty(),
            "after {k} writes"
        );
    }
    // driver_override, unbind, drivers_probe, vf_net, reset: at least 5 abort points.
    assert!(aborted >= 5, "{aborted} prepare abort points");
    assert_eq!(host.vf_net(&pf, 2).unwrap(), VfNet::default());
}
