//! The address set of a running guest, for hotplug and unplug with libvirt's semantics
//! (spec §3.12): a hotplugged device needs a hotplug-capable bus, an explicit address must
//! use function 0, the topology never grows, and releasing frees one function only.

use super::plan::{device_flags, plan};
use super::set::AddressSet;
use super::slot_plan::Inventory;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, PciModel};
use crate::xml::domain::{read_device, Device, DomainDef};
use crate::xml::Document;

/// The PCI addresses in use in a running guest.
#[derive(Debug, Clone)]
pub struct HotplugAddressSet {
    pub(super) set: AddressSet,
    /// Which device uses which address, for whole-slot plans (slot_plan.rs).
    pub(super) inventory: Inventory,
    /// What a PCI Express endpoint gets in this guest (conventional PCI without pcie-root).
    pcie_flags: ConnectFlags,
}

impl HotplugAddressSet {
    /// The address set of the guest defined by `domain_xml`, after libvirt's assignment of
    /// any address still missing (what libvirt keeps for the running domain).
    pub fn from_domain_xml(domain_xml: &str) -> Result<HotplugAddressSet> {
        let doc = Document::parse(domain_xml)?;
        let def = DomainDef::from_document(&doc)?;
        let done = plan(def)?;
        let has_pcie_root = done.def.devices.iter().any(|d| {
            d.pci_controller()
                .is_some_and(|(c, m)| m == PciModel::PcieRoot && c.index() == 0)
        });
        Ok(HotplugAddressSet {
            inventory: Inventory::from_definition(&doc, &done.def),
            set: done.set,
            pcie_flags: if has_pcie_root {
                ConnectFlags::PCIE_AUTO
            } else {
                ConnectFlags::PCI_AUTO
            },
        })
    }

    /// The underlying address set.
    pub fn address_set(&self) -> &AddressSet {
        &self.set
    }

    pub(super) fn parse_device(device_xml: &str) -> Result<Device> {
        let doc = Document::parse(device_xml)?;
        read_device(&doc, doc.root)
    }

    /// The flags a hotplugged device needs, or `None` when it does not use PCI.
    pub(super) fn hotplug_flags(&self, device: &Device) -> Option<ConnectFlags> {
        let flags = device_flags(device, self.pcie_flags, self.pcie_flags);
        (!flags.is_empty()).then_some(flags | ConnectFlags::HOTPLUGGABLE)
    }

    /// Reserve an address for the device described by `device_xml` (one device element such
    /// as `<interface type='network'>...</interface>`): its own `<address>` if it has one
    /// (function 0 only), else the next free slot on a hotplug-capable bus. `Ok(None)` when
    /// the device does not use PCI.
    pub fn reserve_next(&mut self, device_xml: &str) -> Result<Option<PciAddress>> {
        let device = Self::parse_device(device_xml)?;
        let Some(flags) = self.hotplug_flags(&device) else {
            return Ok(None);
        };
        let addr = match device.address.present_pci() {
            Some(addr) => {
                self.reserve_checked(&addr, flags)?;
                addr
            }
            None => self.set.reserve_next(flags, None)?,
        };
        self.inventory.add_from_xml(addr, device_xml);
        Ok(Some(addr))
    }

    /// Reserve `addr` for the device described by `device_xml`.
    pub fn reserve(&mut self, addr: &PciAddress, device_xml: &str) -> Result<()> {
        let device = Self::parse_device(device_xml)?;
        let flags = self
            .hotplug_flags(&device)
            .ok_or_else(|| Error::operation_invalid("the device does not use a PCI address"))?;
        self.reserve_checked(addr, flags)?;
        self.inventory.add_from_xml(*addr, device_xml);
        Ok(())
    }

    fn reserve_checked(&mut self, addr: &PciAddress, flags: ConnectFlags) -> Result<()> {
        if addr.function != 0 {
            return Err(Error::internal(
                "Only PCI device addresses with function=0 are supported",
            ));
        }
        self.set.validate(addr, flags, true)?;
        self.set.reserve(addr, flags, true)
    }

    /// Free the function `addr` (unplug). Releasing an address not in use is not an error,
    /// as in libvirt; an address outside the topology is.
    pub fn release(&mut self, addr: &PciAddress) -> Result<()> {
        if addr.domain != 0
            || addr.bus as usize >= self.set.bus_count()
            || addr.slot > 31
            || addr.function > 7
        {
            return Err(Error::invalid_arg(format!(
                "PCI address {addr} is not part of this guest's PCI topology"
            )));
        }
        self.set.release(addr);
        self.inventory.remove(addr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q35: &str = "<domain type='qemu'><os><type machine='q35'>hvm</type></os><devices>\
        <controller type='pci' index='0' model='pcie-root'/>\
        <controller type='pci' index='1' model='pcie-root-port'/>\
        <controller type='pci' index='2' model='pcie-root-port'><target hotplug='off'/></controller>\
        <controller type='usb' index='0' model='none'/><memballoon model='none'/>\
        </devices></domain>";
    const NIC: &str = "<interface type='user'><model type='virtio'/></interface>";

    #[test]
    fn hotplug_uses_hotpluggable_ports_only_and_never_grows() {
        let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
        let a = set.reserve_next(NIC).unwrap().unwrap();
        assert_eq!(a, PciAddress::new(0, 1, 0, 0));
        let err = set.reserve_next(NIC).unwrap_err();
        assert_eq!(err.message, "internal error: No more available PCI slots");
        set.release(&a).unwrap();
        assert_eq!(set.reserve_next(NIC).unwrap(), Some(a));
    }

    #[test]
    fn explicit_hotplug_addresses_need_function_zero() {
        let mut set = HotplugAddressSet::from_domain_xml(Q35).unwrap();
        let err = set.reserve(&PciAddress::new(0, 1, 0, 1), NIC).unwrap_err();
        assert_eq!(
            err.message,
            "internal error: Only PCI device addresses with function=0 are supported"
        );
        let err = set.reserve(&PciAddress::new(0, 2, 0, 0), NIC).unwrap_err();
        assert!(
            err.message.contains("requires hotplug capability"),
            "{}",
            err.message
        );
        assert_eq!(
            set.reserve_next("<input type='mouse' bus='ps2'/>").unwrap(),
            None
        );
    }
}
