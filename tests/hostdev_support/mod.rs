//! Helpers shared by the hostdev tests: a simulated fixture host with a manager, and the
//! driver/override of every device to compare before and after.
#![allow(dead_code)]

pub use crate::host_support::{addr, fixture_tree, TempTree};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use virtpci::assign::explain::guest_warning_messages;
use virtpci::host::Host;
use virtpci::hostdev::{CheckReport, HostdevManager, OwnershipBook, PrepareOptions};
use virtpci::xml::hostdevs::hostdevs_from_domain_xml;
use virtpci::{HostdevSpec, PciAddress, Result};

/// A simulated fixture host and a manager on it.
pub struct Bench {
    pub tree: TempTree,
    pub host: Arc<Host>,
    pub mgr: HostdevManager,
}

impl Bench {
    pub fn new(fixture: &str) -> Bench {
        let tree = fixture_tree(fixture);
        let host = Arc::new(Host::open_simulated(&tree.path).unwrap());
        let mgr = HostdevManager::new(host.clone(), &tree.join("state")).unwrap();
        Bench { tree, host, mgr }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.tree.join("state")
    }

    /// Prepare `hostdevs` for domain `dom` of driver QEMU, without a UUID and with the default
    /// options (the common case of these tests).
    pub fn prepare(&self, dom: &str, hostdevs: &[HostdevSpec]) -> Result<()> {
        self.mgr
            .prepare_pci_devices("QEMU", dom, None, hostdevs, PrepareOptions::default())
    }

    /// Another manager on the same state directory (a restarted daemon).
    pub fn restart(&self) -> HostdevManager {
        HostdevManager::new(self.host.clone(), &self.state_dir()).unwrap()
    }

    pub fn driver(&self, a: &str) -> Option<String> {
        self.host.driver(&addr(a)).unwrap()
    }

    pub fn book(&self) -> OwnershipBook {
        self.mgr.book().unwrap()
    }

    /// Driver and driver_override of every device of the host.
    pub fn drivers(&self) -> BTreeMap<PciAddress, (Option<String>, Option<String>)> {
        drivers(&self.host)
    }

    /// Fake mount and route tables for the simulated host.
    pub fn set_proc(&self, mounts: &str, route: &str) {
        let dir = self.tree.join(".virtpci-sim/proc");
        std::fs::create_dir_all(dir.join("self")).unwrap();
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::write(dir.join("self/mounts"), mounts).unwrap();
        std::fs::write(dir.join("net/route"), route).unwrap();
    }
}

pub fn drivers(host: &Host) -> BTreeMap<PciAddress, (Option<String>, Option<String>)> {
    host.device_addresses()
        .unwrap()
        .into_iter()
        .map(|a| {
            (
                a,
                (host.driver(&a).unwrap(), host.driver_override(&a).unwrap()),
            )
        })
        .collect()
}

pub fn managed(list: &[&str]) -> Vec<HostdevSpec> {
    list.iter().map(|a| HostdevSpec::managed(addr(a))).collect()
}

pub fn unmanaged(list: &[&str]) -> Vec<HostdevSpec> {
    list.iter()
        .map(|a| HostdevSpec::unmanaged(addr(a)))
        .collect()
}

pub const QUAD: [&str; 4] = [
    "0000:02:00.0",
    "0000:02:00.1",
    "0000:02:00.2",
    "0000:02:00.3",
];
pub const GPU: [&str; 4] = [
    "0000:01:00.0",
    "0000:01:00.1",
    "0000:01:00.2",
    "0000:01:00.3",
];

/// An IPv4 route table whose default route is on `iface`.
pub fn default_route(iface: &str) -> String {
    format!(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
         {iface}\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    )
}

/// The manager's calls for a domain definition, read as the CLI and the C API read it: the
/// PCI hostdevs, name and UUID through `xml::hostdevs`, then the spec-taking call (and, for the
/// dry run, the guest's warnings, as `virtpci check` adds them).
pub trait DomainXmlCalls {
    fn prepare_domain(&self, drv: &str, xml: &str, options: PrepareOptions) -> Result<()>;
    fn reattach_domain(&self, drv: &str, xml: &str) -> Result<()>;
    fn check_domain(&self, drv: &str, xml: &str, options: PrepareOptions) -> Result<CheckReport>;
}

impl DomainXmlCalls for HostdevManager {
    fn prepare_domain(&self, drv: &str, xml: &str, options: PrepareOptions) -> Result<()> {
        let d = hostdevs_from_domain_xml(xml)?;
        self.prepare_pci_devices(
            drv,
            d.required_name()?,
            d.uuid.as_ref(),
            &d.hostdevs,
            options,
        )
    }

    fn reattach_domain(&self, drv: &str, xml: &str) -> Result<()> {
        let d = hostdevs_from_domain_xml(xml)?;
        self.reattach_pci_devices(drv, d.required_name()?, &d.hostdevs)
    }

    fn check_domain(&self, drv: &str, xml: &str, options: PrepareOptions) -> Result<CheckReport> {
        let d = hostdevs_from_domain_xml(xml)?;
        let mut report = self.check(drv, d.required_name()?, &d.hostdevs, options)?;
        report.warnings.extend(guest_warning_messages(xml));
        Ok(report)
    }
}

/// A managed PCI `<hostdev>` for host address 0000:BUS:SLOT.FUNCTION, with `extra` inside.
pub fn hostdev(bus: u32, slot: u32, function: u32, extra: &str) -> String {
    format!(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x{bus:02x}' slot='0x{slot:02x}' function='0x{function:x}'/></source>{extra}</hostdev>\n"
    )
}

/// `DIR/NAME.xml`: a domain named NAME whose `<devices>` hold `body`.
pub fn write_domain(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.xml"));
    std::fs::write(
        &path,
        format!("<domain type='kvm'><name>{name}</name><devices>\n{body}</devices></domain>\n"),
    )
    .unwrap();
    path
}
