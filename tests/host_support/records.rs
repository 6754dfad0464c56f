//! One PCI device record for the generated hosts of the benchmarks and the thread tests:
//! Intel ids, and for a bridge (class 0x060400) an ACS capability.

use virtpci::host::snapshot::{ConfigRecord, DeviceRecord};

/// The record of a device at `address` below `parent`, bound to `driver`, in IOMMU group
/// `group`, with PCIe port type `pcie` ("root_port", "endpoint", ...).
pub fn device_record(
    address: String,
    parent: Option<String>,
    class: &str,
    driver: &str,
    group: u32,
    pcie: &str,
    multifunction: bool,
) -> DeviceRecord {
    let bridge = class == "0x060400";
    DeviceRecord {
        address,
        parent,
        vendor: "0x8086".into(),
        device: if bridge { "0x2030" } else { "0x1521" }.into(),
        class: class.into(),
        subsystem_vendor: None,
        subsystem_device: None,
        revision: None,
        driver: Some(driver.into()),
        native_driver: None,
        driver_override: None,
        numa_node: None,
        iommu_group: Some(group),
        physfn: None,
        sriov_totalvfs: None,
        vf_mac: None,
        vf_vlan: None,
        reset_method: None,
        net: vec![],
        block: vec![],
        config: ConfigRecord {
            pcie: Some(pcie.into()),
            multifunction,
            acs: bridge.then(|| "0x001f".into()),
            ..Default::default()
        },
    }
}
