//! Trees whose symlinks are absolute and name the tree's own root, as test harnesses that fake
//! sysfs under a directory make them (libvirt's virpcimock writes `driver` and `physfn` that
//! way): followed beneath the root, by both resolution methods and by the simulated kernel;
//! an absolute link anywhere else (even a sibling sharing the root's name as a prefix) is
//! still refused.

mod host_support;

use host_support::*;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use virtpci::host::{Host, Resolution};
use virtpci::hostdev::HostdevManager;

const DEV: &str = "bus/pci/devices/0000:02:00.0";

/// Replace the symlink `rel` by an absolute one naming the same place through `root`.
fn make_absolute(root: &Path, rel: &str) {
    let link = root.join(rel);
    let real = std::fs::canonicalize(&link).unwrap();
    let canonical_root = std::fs::canonicalize(root).unwrap();
    let rest = real.strip_prefix(&canonical_root).unwrap();
    std::fs::remove_file(&link).unwrap();
    symlink(root.join(rest), &link).unwrap();
}

#[test]
fn absolute_links_into_the_own_root_are_followed() {
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    let plain = Host::open(Some(&tree.path)).unwrap();
    let driver = plain.driver(&a).unwrap();
    let group = plain.iommu_group_num(&a).unwrap();
    assert!(driver.is_some());
    make_absolute(&tree.path, &format!("{DEV}/driver"));
    make_absolute(&tree.path, &format!("{DEV}/iommu_group"));
    assert!(std::fs::read_link(tree.join(&format!("{DEV}/driver")))
        .unwrap()
        .is_absolute());
    for host in [
        Host::open(Some(&tree.path)).unwrap(),
        Host::open_with_resolution(&tree.path, Resolution::Userland).unwrap(),
    ] {
        assert_eq!(host.driver(&a).unwrap(), driver);
        assert_eq!(host.iommu_group_num(&a).unwrap(), group);
    }
}

#[test]
fn absolute_links_to_a_sibling_sharing_the_name_are_refused() {
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    // "<root>-evil" starts with the root's path but is not beneath it.
    let sibling = format!("{}-evil", tree.path.display());
    std::fs::create_dir_all(format!("{sibling}/bus/pci/drivers/evil")).unwrap();
    let link = tree.join(&format!("{DEV}/driver"));
    std::fs::remove_file(&link).unwrap();
    symlink(format!("{sibling}/bus/pci/drivers/evil"), &link).unwrap();
    for host in [
        Host::open(Some(&tree.path)).unwrap(),
        Host::open_with_resolution(&tree.path, Resolution::Userland).unwrap(),
    ] {
        let e = host.driver(&a).unwrap_err();
        assert!(
            e.message.contains("resolves outside the sysfs root"),
            "{}",
            e.message
        );
    }
    std::fs::remove_dir_all(&sibling).unwrap();
}

#[test]
fn the_simulated_kernel_moves_a_device_whose_driver_link_is_absolute() {
    let tree = fixture_tree("quad-nic");
    let a = addr("0000:02:00.0");
    make_absolute(&tree.path, &format!("{DEV}/driver"));
    let host = Arc::new(Host::open_simulated(&tree.path).unwrap());
    let before = host.driver(&a).unwrap();
    let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
    mgr.node_device_detach(&a, None, false).unwrap();
    assert_eq!(host.driver(&a).unwrap().as_deref(), Some("vfio-pci"));
    mgr.node_device_reattach(&a).unwrap();
    assert_eq!(host.driver(&a).unwrap(), before);
}
