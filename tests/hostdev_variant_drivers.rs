//! VFIO variant drivers, module loading and iommufd on a simulated SR-IOV host whose mlx5
//! VF a modules.alias maps to mlx5_vfio_pci: the driver is chosen as libvirt 10.0 chooses it
//! and reported with its reason, the module is loaded, `<driver model>` forces a driver,
//! `<driver iommufd='yes'/>` finds the VFIO device cdev, and every failure leaves every device
//! where it was.

mod host_support;
mod hostdev_support;

use host_support::*;
use hostdev_support::{drivers, DomainXmlCalls};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use virtpci::host::snapshot::HostSnapshot;
use virtpci::host::{Host, WriteKind};
use virtpci::hostdev::{HostdevManager, PrepareOptions};
use virtpci::ErrorCode;

const QEMU: &str = "QEMU";
const VF: &str = "0000:d8:00.2";
const MLX5_ALIAS: &str = "alias vfio_pci:v000015B3d00001018sv*sd*bc*sc*i* mlx5_vfio_pci";

/// sriov-server with two ConnectX-5 VFs (15b3:1018) under the mlx5 PF d8:00.0, each alone in
/// its IOMMU group, and a modules directory in the tree's default place.
struct Mlx5Host {
    tree: TempTree,
    host: Arc<Host>,
    mgr: HostdevManager,
    warnings: Arc<Mutex<Vec<String>>>,
}

fn modules_dir(tree: &TempTree) -> PathBuf {
    tree.join(".virtpci-sim/modules")
}

impl Mlx5Host {
    fn new() -> Mlx5Host {
        Mlx5Host::with_modules(
            &format!(
                "alias pci:v000015B3d00001018sv*sd*bc*sc*i* mlx5_core\n\
                 alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n\
                 {MLX5_ALIAS}\n"
            ),
            "kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz\n\
             kernel/drivers/vfio/pci/mlx5/mlx5-vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz\n",
        )
    }

    fn with_modules(alias: &str, dep: &str) -> Mlx5Host {
        let text = std::fs::read_to_string(fixture_path("sriov-server")).unwrap();
        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let devices = doc["devices"].as_array_mut().unwrap();
        for (function, group) in [(2, 60), (3, 61)] {
            devices.push(serde_json::json!({
                "address": format!("0000:d8:00.{function}"),
                "parent": "0000:d7:00.0",
                "vendor": "0x15b3", "device": "0x1018", "class": "0x020000",
                "subsystem_vendor": "0x15b3", "subsystem_device": "0x0001",
                "driver": "mlx5_core", "iommu_group": group, "numa_node": 1,
                "physfn": "0000:d8:00.0", "reset_method": "flr",
                "config": {"pcie": "endpoint", "flr": true}
            }));
        }
        let tree = TempTree::new("mlx5");
        HostSnapshot::from_json(&doc.to_string())
            .unwrap()
            .materialize(&tree.path)
            .unwrap();
        let dir = modules_dir(&tree);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.alias"), alias).unwrap();
        std::fs::write(dir.join("modules.dep"), dep).unwrap();
        let host = Arc::new(Host::open_simulated(&tree.path).unwrap());
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let w = warnings.clone();
        let mgr = HostdevManager::new(host.clone(), &tree.join("state"))
            .unwrap()
            .with_logger(Arc::new(move |m: &str| {
                w.lock().unwrap().push(m.to_string())
            }));
        Mlx5Host {
            tree,
            host,
            mgr,
            warnings,
        }
    }

    fn driver(&self, a: &str) -> Option<String> {
        self.host.driver(&addr(a)).unwrap()
    }

    /// Give the tree's kernel iommufd and VFIO device cdevs.
    fn with_iommufd(self, cdevs: bool) -> Mlx5Host {
        let dev = self.tree.join(".virtpci-sim/dev");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("iommu"), "").unwrap();
        if cdevs {
            std::fs::create_dir_all(dev.join("vfio/devices")).unwrap();
        }
        self
    }

    /// Prepare refused: the error, with every device where it was and nothing booked.
    fn refused(&self, xml: &str) -> virtpci::Error {
        let before = drivers(&self.host);
        let e = self
            .mgr
            .prepare_domain(QEMU, xml, PrepareOptions::default())
            .unwrap_err();
        assert_eq!(drivers(&self.host), before, "{}", e.message);
        let book = self.mgr.book().unwrap();
        assert!(book.active.is_empty() && book.inactive.is_empty());
        e
    }

    /// The CLI's `args` on this host's tree (`--simulate --sysfs TREE`), `xml` on standard
    /// input and `env` set; it must succeed. Its standard output.
    fn cli(&self, args: &[&str], xml: &str, env: &[(&str, &str)]) -> Vec<u8> {
        let input = self.tree.join("input.xml");
        std::fs::write(&input, xml).unwrap();
        let out = Command::new(virtpci_bin())
            .args(args)
            .args(["--simulate", "--sysfs"])
            .arg(&self.tree.path)
            .arg("-")
            .envs(env.iter().copied())
            .stdin(std::fs::File::open(input).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

fn domain(driver: &str) -> String {
    format!(
        "<domain type='kvm'><name>vm1</name><devices>\
         <hostdev mode='subsystem' type='pci' managed='yes'>{driver}<source>\
         <address domain='0' bus='0xd8' slot='0' function='2'/></source></hostdev>\
         </devices></domain>"
    )
}

#[test]
fn check_names_the_variant_driver_and_the_alias_line() {
    let m = Mlx5Host::new();
    let report = m
        .mgr
        .check_domain(QEMU, &domain(""), PrepareOptions::default())
        .unwrap();
    assert!(report.ok(), "{:?}", report.violations);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    let h = &json["hostdevs"][0];
    assert_eq!(h["stub"], "mlx5_vfio_pci");
    assert_eq!(h["driver_choice"]["driver"], "mlx5_vfio_pci");
    assert_eq!(h["driver_choice"]["reason"], "alias");
    assert_eq!(h["driver_choice"]["alias_line"], MLX5_ALIAS);
    assert_eq!(h["driver_choice"]["alias_line_number"], 3);
    assert_eq!(h["load_module"], "mlx5_vfio_pci");
    assert_eq!(h["reset_methods"], serde_json::json!(["flr"]));
    // The CLI says the same.
    let stdout = m.cli(&["check", "--json"], &domain(""), &[]);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        json["hostdevs"][0]["driver_choice"]["alias_line"],
        MLX5_ALIAS
    );
    // vfio-pci forced: the reason says so.
    let forced = m
        .mgr
        .check_domain(
            QEMU,
            &domain("<driver name='vfio' model='vfio-pci'/>"),
            PrepareOptions::default(),
        )
        .unwrap();
    let c = forced.hostdevs[0].driver_choice.as_ref().unwrap();
    assert_eq!((c.driver.as_str(), c.reason.name()), ("vfio-pci", "forced"));
}

#[test]
fn prepare_loads_and_binds_the_variant_and_reattach_returns_the_vf() {
    let m = Mlx5Host::new();
    assert!(!m.host.driver_loaded("mlx5_vfio_pci").unwrap());
    m.mgr
        .prepare_domain(QEMU, &domain(""), PrepareOptions::default())
        .unwrap();
    assert!(m.host.driver_loaded("mlx5_vfio_pci").unwrap());
    assert!(m
        .tree
        .join("module/mlx5_vfio_pci/drivers/pci:mlx5_vfio_pci")
        .exists());
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
    assert!(m.host.bound_to_vfio(&addr(VF)).unwrap());
    // The other VF was not touched.
    assert_eq!(m.driver("0000:d8:00.3").as_deref(), Some("mlx5_core"));
    m.mgr.reattach_domain(QEMU, &domain("")).unwrap();
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));
    assert!(!m
        .tree
        .join(&format!("bus/pci/devices/{VF}/vfio-dev"))
        .exists());
}

#[test]
fn a_forced_model_is_used_and_a_non_vfio_one_refused() {
    let m = Mlx5Host::new();
    let xml = domain("<driver name='vfio' model='vfio-pci'/>");
    m.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    assert_eq!(m.driver(VF).as_deref(), Some("vfio-pci"));
    assert!(!m.host.driver_loaded("mlx5_vfio_pci").unwrap());
    m.mgr.reattach_domain(QEMU, &xml).unwrap();
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

    let writes = m.host.faults().attempted_total();
    let e = m.refused(&domain("<driver model='mlx5_core'/>"));
    assert_eq!(e.code, ErrorCode::ConfigUnsupported);
    assert!(
        e.message.contains(
            "hostdev driver model 'mlx5_core' of PCI device 0000:d8:00.2 is not a VFIO driver"
        ),
        "{}",
        e.message
    );
    assert_eq!(m.host.faults().attempted_total(), writes);
}

#[test]
fn a_device_already_on_a_vfio_driver_keeps_it() {
    let m = Mlx5Host::new();
    let xml = domain("<driver name='vfio' model='vfio-pci'/>");
    m.mgr
        .prepare_domain(QEMU, &xml, PrepareOptions::default())
        .unwrap();
    m.mgr.reattach_domain(QEMU, &xml).unwrap();
    // Put it on vfio-pci through the node-device API, then prepare without a model.
    m.mgr
        .node_device_detach(&addr(VF), Some("vfio-pci"), false)
        .unwrap();
    let report = m
        .mgr
        .check_domain(QEMU, &domain(""), PrepareOptions::default())
        .unwrap();
    let c = report.hostdevs[0].driver_choice.as_ref().unwrap();
    assert_eq!((c.driver.as_str(), c.reason.name()), ("vfio-pci", "kept"));
}

#[test]
fn module_loading_forbidden_or_impossible_names_the_module() {
    let m = Mlx5Host::new();
    m.host.set_module_loading(false);
    let e = m.refused(&domain(""));
    assert_eq!(
        e.message,
        "internal error: Failed to load PCI driver module mlx5_vfio_pci: loading modules is forbidden on this host; load it first (modprobe mlx5_vfio_pci)"
    );
    m.host.set_module_loading(true);
    // The load itself fails (a fault on the load): nothing moved, nothing booked.
    m.host
        .faults()
        .inject(Some(WriteKind::LoadModule), 1, libc::ENOENT);
    let e = m.refused(&domain(""));
    assert!(
        e.message
            .starts_with("internal error: Failed to load PCI driver module mlx5_vfio_pci: "),
        "{}",
        e.message
    );
    assert!(!m.host.driver_loaded("mlx5_vfio_pci").unwrap());
    // A later bind fails: the VF goes back to mlx5_core (the module stays loaded).
    m.host
        .faults()
        .inject(Some(WriteKind::DriversProbe), 1, libc::EIO);
    m.refused(&domain(""));
    assert!(m.host.driver_loaded("mlx5_vfio_pci").unwrap());
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));
}

#[test]
fn a_module_missing_from_modules_dep_is_skipped() {
    let m = Mlx5Host::with_modules(
        &format!("alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n{MLX5_ALIAS}\n"),
        "kernel/drivers/vfio/pci/vfio-pci.ko: \n",
    );
    let report = m
        .mgr
        .check_domain(QEMU, &domain(""), PrepareOptions::default())
        .unwrap();
    let c = report.hostdevs[0].driver_choice.as_ref().unwrap();
    assert_eq!(c.driver, "vfio-pci");
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.starts_with("mlx5_vfio_pci matched line 2 but is not in ")),
        "{:?}",
        report.warnings
    );
    // Forced, it cannot be loaded: refused before anything moves.
    let e = m.refused(&domain("<driver model='mlx5_vfio_pci'/>"));
    assert!(
        e.message.contains("mlx5_vfio_pci: it is not in "),
        "{}",
        e.message
    );
}

#[test]
fn iommufd_finds_the_cdev_or_refuses_with_what_is_missing() {
    let m = Mlx5Host::new();
    let xml = domain("<driver iommufd='yes'/>");
    let e = m.refused(&xml);
    assert_eq!(e.code, ErrorCode::ConfigUnsupported);
    assert!(
        e.message.contains("iommufd is not supported on this host"),
        "{}",
        e.message
    );
    assert_eq!(m.host.faults().attempted_total(), 0);

    // iommufd but no VFIO device cdevs: refused after the bind, and rolled back.
    let m = m.with_iommufd(false);
    let e = m.refused(&xml);
    assert!(
        e.message.contains("CONFIG_VFIO_DEVICE_CDEV"),
        "{}",
        e.message
    );
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

    let m = m.with_iommufd(true);
    let stdout = m.cli(&["prepare", "--json"], &xml, &[]);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let h = &json["devices"][0];
    assert_eq!(h["to"], "mlx5_vfio_pci");
    // The fixture's two devices already on vfio-pci hold vfio0 and vfio1: the lowest free
    // number is 2.
    let node = m.tree.join(".virtpci-sim/dev/vfio/devices/vfio2");
    assert_eq!(h["cdev"]["path"], node.display().to_string());
    assert!(node.exists());
    let c = m.host.vfio_cdev(&addr(VF)).unwrap();
    assert_eq!(c.node, node);
    assert_eq!(
        std::fs::read_to_string(c.sysfs_dir.join("dev")).unwrap(),
        "511:2\n"
    );
    // The domain-wide element asks the same of every hostdev; reattach removes the cdev.
    let wide = xml
        .replace("<driver iommufd='yes'/>", "")
        .replace("<devices>", "<iommufd enabled='yes'/><devices>");
    let d = virtpci::xml::hostdevs::hostdevs_from_domain_xml(&wide).unwrap();
    assert!(d.hostdevs[0].iommufd);
    // (The CLI keeps its state in the tree: re-attach through it too.)
    m.cli(&["reattach"], &wide, &[]);
    assert!(!node.exists());
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));
}

#[test]
fn reset_methods_are_read_and_chosen_and_a_dead_device_is_reported() {
    let m = Mlx5Host::new();
    let pf = addr("0000:d8:00.0");
    assert_eq!(
        m.host.reset_methods(&pf).unwrap(),
        Some(vec!["flr".to_string(), "bus".to_string()])
    );
    m.host.set_reset_methods(&pf, &["bus"]).unwrap();
    assert_eq!(
        m.host.reset_methods(&pf).unwrap(),
        Some(vec!["bus".to_string()])
    );
    let e = m.host.set_reset_methods(&pf, &["pm"]).unwrap_err();
    assert!(
        e.message.contains("reset method 'pm' is not offered"),
        "{}",
        e.message
    );
    m.host.set_reset_methods(&pf, &[]).unwrap();
    assert_eq!(
        m.host.reset_methods(&pf).unwrap(),
        Some(vec!["flr".to_string(), "bus".to_string()])
    );

    m.mgr
        .prepare_domain(QEMU, &domain(""), PrepareOptions::default())
        .unwrap();
    std::fs::write(
        m.tree.join(&format!("bus/pci/devices/{VF}/power_state")),
        "D3cold\n",
    )
    .unwrap();
    m.mgr.reattach_domain(QEMU, &domain("")).unwrap();
    let warnings = m.warnings.lock().unwrap();
    assert!(
        warnings.iter().any(|w| w.contains(&format!(
            "PCI device {VF} was given back to the host, but it is in D3cold"
        ))),
        "{warnings:?}"
    );
}

/// Feed `text` to a command's standard input through a file of the tree.
/// Without the `test-hooks` feature (a release build), the CLI has no crash hooks: asked to
/// abort before its first write, it prepares as usual.
#[cfg(not(feature = "test-hooks"))]
#[test]
fn a_build_without_test_hooks_ignores_them() {
    let m = Mlx5Host::new();
    m.cli(
        &["prepare"],
        &domain(""),
        &[("VIRTPCI_TEST_ABORT_AFTER_WRITES", "0")],
    );
    assert_eq!(m.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
}

/// The C call with per-device driver options (`virtpci_hostdev_prepare_pci_devices_ext`): a
/// forced model and iommufd reach the manager as `<driver model iommufd>` do, a non-VFIO model
/// is refused with nothing changed, and no options leave the choice to modules.alias.
#[test]
fn c_prepare_ext_forces_the_model_and_asks_for_iommufd() {
    use std::ffi::{CStr, CString};
    use virtpci::ffi::address::VirtpciPciAddress;
    use virtpci::ffi::general::{virtpci_last_error_code, virtpci_last_error_message};
    use virtpci::ffi::host::{virtpci_host_free, virtpci_host_open_simulated};
    use virtpci::ffi::hostdev::{
        virtpci_hostdev_manager_free, virtpci_hostdev_manager_new,
        virtpci_hostdev_reattach_pci_devices, VirtpciHostdev,
    };
    use virtpci::ffi::hostdev_extras::{
        virtpci_hostdev_prepare_pci_devices_ext, VirtpciHostdevDriver, VirtpciHostdevPrepareExtras,
    };

    let m = Mlx5Host::new();
    let root = CString::new(m.tree.path.to_str().unwrap()).unwrap();
    let state = CString::new(m.tree.join("c-state").to_str().unwrap()).unwrap();
    let (qemu, dom) = (CString::new(QEMU).unwrap(), CString::new("vm1").unwrap());
    let source = VirtpciPciAddress {
        domain: 0,
        bus: 0xd8,
        slot: 0,
        function: 2,
    };
    let hostdev = VirtpciHostdev {
        source,
        managed: 1,
        unassigned: 0,
        driver: std::ptr::null(),
    };
    let model = |name: &str| CString::new(name).unwrap();
    let extras = |d: &VirtpciHostdevDriver| VirtpciHostdevPrepareExtras {
        size: std::mem::size_of::<VirtpciHostdevPrepareExtras>(),
        nets: std::ptr::null(),
        n_nets: 0,
        drivers: d,
        n_drivers: 1,
    };
    let last_error = || {
        // SAFETY: the thread's last error message is a valid C string.
        let text = unsafe { CStr::from_ptr(virtpci_last_error_message()) };
        (
            virtpci_last_error_code(),
            text.to_string_lossy().into_owned(),
        )
    };
    // SAFETY: every pointer below points at a live local for the whole call.
    unsafe {
        let host = virtpci_host_open_simulated(root.as_ptr());
        assert!(!host.is_null());
        let mgr = virtpci_hostdev_manager_new(host, state.as_ptr());
        assert!(!mgr.is_null());
        let prepare = |x: Option<&VirtpciHostdevPrepareExtras>| {
            virtpci_hostdev_prepare_pci_devices_ext(
                mgr,
                qemu.as_ptr(),
                dom.as_ptr(),
                std::ptr::null(),
                &hostdev,
                1,
                x.map_or(std::ptr::null(), |x| x as *const _),
                0,
            )
        };
        let reattach =
            || virtpci_hostdev_reattach_pci_devices(mgr, qemu.as_ptr(), dom.as_ptr(), &hostdev, 1);

        // A forced vfio-pci wins over modules.alias's mlx5_vfio_pci.
        let vfio_pci = model("vfio-pci");
        let forced = VirtpciHostdevDriver {
            source,
            model: vfio_pci.as_ptr(),
            iommufd: 0,
        };
        assert_eq!(prepare(Some(&extras(&forced))), 0, "{:?}", last_error());
        assert_eq!(m.driver(VF).as_deref(), Some("vfio-pci"));
        assert_eq!(reattach(), 0, "{:?}", last_error());
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

        // A model that is not a VFIO driver is refused, and nothing moves.
        let core = model("mlx5_core");
        let bad = VirtpciHostdevDriver {
            model: core.as_ptr(),
            ..forced
        };
        assert_eq!(prepare(Some(&extras(&bad))), -1);
        let (code, message) = last_error();
        assert_eq!(code, ErrorCode::ConfigUnsupported as i32);
        assert!(message.contains("is not a VFIO driver"), "{message}");
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

        // iommufd asked for on a host without it: refused naming /dev/iommu.
        let iommufd = VirtpciHostdevDriver {
            source,
            model: std::ptr::null(),
            iommufd: 1,
        };
        assert_eq!(prepare(Some(&extras(&iommufd))), -1);
        let (code, message) = last_error();
        assert_eq!(code, ErrorCode::ConfigUnsupported as i32);
        assert!(message.contains("iommufd is not supported"), "{message}");
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

        // With iommufd and cdevs, the chosen variant driver and its cdev.
        let m = m.with_iommufd(true);
        assert_eq!(prepare(Some(&extras(&iommufd))), 0, "{:?}", last_error());
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
        assert!(m.host.vfio_cdev(&addr(VF)).is_ok());
        assert_eq!(reattach(), 0, "{:?}", last_error());

        // No extras: the choice is modules.alias's, without iommufd.
        assert_eq!(prepare(None), 0, "{:?}", last_error());
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_vfio_pci"));
        assert_eq!(reattach(), 0, "{:?}", last_error());
        assert_eq!(m.driver(VF).as_deref(), Some("mlx5_core"));

        virtpci_hostdev_manager_free(mgr);
        virtpci_host_free(host);
    }
}
