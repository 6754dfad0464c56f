//! The address set of a running guest, for hotplug and unplug with libvirt's semantics: a
//! hotplugged device needs a hotplug-capable bus, an explicit address must use function 0,
//! the topology never grows, and releasing frees one function only.

use super::caps::EmulatorCap;
use super::plan::{device_flags, plan_with, preferred_flags};
use super::set::AddressSet;
use super::slot_plan::Inventory;
use super::AssignOptions;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::topology::{ConnectFlags, PciModel};
use crate::xml::domain::{read_device, AddressPreferences, Device, DeviceAddress, DomainDef};
use crate::xml::Document;

/// The PCI addresses in use in a running guest.
#[derive(Debug, Clone)]
pub struct HotplugAddressSet {
    pub(super) set: AddressSet,
    /// Which device uses which address, for whole-slot plans (slot_plan.rs).
    pub(super) inventory: Inventory,
    /// What a PCI Express endpoint gets in this guest (conventional PCI without pcie-root).
    pcie_flags: ConnectFlags,
    /// Per bus, the NUMA node of the expander bus it sits behind, if any.
    bus_numa: Vec<Option<u32>>,
    /// The emulator has non-transitional virtio devices: virtio devices get `pcie_flags`,
    /// else conventional PCI.
    virtio_pcie: bool,
    /// s390x: the CCW numbers and zPCI identifiers in use (see `hotplug_s390.rs`).
    pub(super) s390: Option<super::hotplug_s390::S390Ids>,
}

impl HotplugAddressSet {
    /// The address set of the guest defined by `domain_xml`, after libvirt's assignment of
    /// any address still missing (what libvirt keeps for the running domain).
    pub fn from_domain_xml(domain_xml: &str) -> Result<HotplugAddressSet> {
        Self::from_domain_xml_with(domain_xml, &AssignOptions::default())
    }

    /// [`Self::from_domain_xml`] with the assignment `options` (libvirt level, emulator
    /// capabilities) used for the addresses the XML lacks and for the devices hot-plugged
    /// later (virtio devices are PCI Express only with non-transitional virtio).
    pub fn from_domain_xml_with(
        domain_xml: &str,
        options: &AssignOptions,
    ) -> Result<HotplugAddressSet> {
        let doc = Document::parse(domain_xml)?;
        let def = DomainDef::from_document(&doc)?;
        let done = plan_with(def, options)?;
        let s390 = (done.def.machine_kind == crate::topology::MachineKind::S390Ccw)
            .then(|| super::hotplug_s390::S390Ids::of_plan(&done))
            .transpose()?;
        let has_pcie_root = done.def.devices.iter().any(|d| {
            d.pci_controller()
                .is_some_and(|(c, m)| m == PciModel::PcieRoot && c.index() == 0)
        });
        // Every bus's NUMA node: that of the expander bus it sits behind.
        let bus_numa = done.def.inherited_by_buses(done.set.bus_count(), |c, _| {
            c.pci
                .as_ref()
                .and_then(|(_, o)| o.numa_node)
                .and_then(|n| u32::try_from(n).ok())
        });
        Ok(HotplugAddressSet {
            inventory: Inventory::from_definition(&doc, &done.def),
            set: done.set,
            bus_numa,
            pcie_flags: if has_pcie_root {
                ConnectFlags::PCIE_AUTO
            } else {
                ConnectFlags::PCI_AUTO
            },
            virtio_pcie: options.emulator.has(EmulatorCap::VirtioPciNonTransitional),
            s390,
        })
    }

    fn virtio_flags(&self) -> ConnectFlags {
        if self.virtio_pcie {
            self.pcie_flags
        } else {
            ConnectFlags::PCI_AUTO
        }
    }

    /// The underlying address set.
    pub fn address_set(&self) -> &AddressSet {
        &self.set
    }

    /// Read the device element `device_xml` and give it to `with`.
    fn with_device<T>(device_xml: &str, with: impl FnOnce(&Device<'_>) -> Result<T>) -> Result<T> {
        let doc = Document::parse(device_xml)?;
        let device = read_device(&doc, doc.root)?;
        with(&device)
    }

    /// The flags a hotplugged device needs (libvirt's, plus hotplug), or `None` when it
    /// does not use PCI. Preferences are not looked at (slot plans use this).
    pub(super) fn hotplug_flags(&self, device: &Device) -> Option<ConnectFlags> {
        let flags = device_flags(device, self.pcie_flags, self.virtio_flags());
        (!flags.is_empty()).then_some(flags | ConnectFlags::HOTPLUGGABLE)
    }

    /// Read the device element `device_xml`: its address and the flags
    /// [`Self::hotplug_flags`] gives it.
    pub(super) fn parse_for_hotplug(
        &self,
        device_xml: &str,
    ) -> Result<(DeviceAddress, Option<ConnectFlags>)> {
        Self::with_device(device_xml, |device| {
            Ok((device.address.clone(), self.hotplug_flags(device)))
        })
    }

    /// The flags a hotplugged device needs (after its `bus` preference), or `None` when it
    /// does not use PCI. A device that prefers `hotplug='no'` cannot be hot-plugged.
    fn preferred_hotplug_flags(&self, device: &Device) -> Result<Option<ConnectFlags>> {
        let flags = device_flags(device, self.pcie_flags, self.virtio_flags());
        if flags.is_empty() && device.prefs.is_empty() {
            return Ok(None);
        }
        if device.prefs.hotplug == Some(false) {
            return Err(Error::operation_invalid(
                "the device's addressPreferences say hotplug='no', so it cannot be hot-plugged",
            ));
        }
        let has_pcie_root = self.pcie_flags == ConnectFlags::PCIE_AUTO;
        let flags = preferred_flags(device, flags, has_pcie_root)?;
        Ok(Some(flags | ConnectFlags::HOTPLUGGABLE))
    }

    /// Reserve an address for the device described by `device_xml` (one device element such
    /// as `<interface type='network'>...</interface>`): its own `<address>` if it has one
    /// (function 0 only), else the next free slot on a hotplug-capable bus. The device's
    /// `<addressPreferences>` are honoured: `bus` picks PCI or PCI Express, `numa` limits the
    /// search to buses behind an expander bus of that node. `Ok(None)` when the device does
    /// not use PCI.
    pub fn reserve_next(&mut self, device_xml: &str) -> Result<Option<PciAddress>> {
        self.reserve_next_with(device_xml, &AddressPreferences::default())
    }

    /// [`Self::reserve_next`] with preferences given apart from the XML; each one set in
    /// `prefs` replaces the device's own.
    pub(crate) fn reserve_next_with(
        &mut self,
        device_xml: &str,
        prefs: &AddressPreferences,
    ) -> Result<Option<PciAddress>> {
        self.refuse_pci_only_on_s390()?;
        self.reserve_pci(device_xml, prefs)
    }

    /// [`Self::reserve_next_with`] on any machine: the PCI address only.
    pub(super) fn reserve_pci(
        &mut self,
        device_xml: &str,
        prefs: &AddressPreferences,
    ) -> Result<Option<PciAddress>> {
        let (flags, present, numa) = Self::with_device(device_xml, |device| {
            let mut device = device.clone();
            device.prefs.hotplug = prefs.hotplug.or(device.prefs.hotplug);
            device.prefs.bus = prefs.bus.or(device.prefs.bus);
            device.prefs.numa = prefs.numa.or(device.prefs.numa);
            Ok((
                self.preferred_hotplug_flags(&device)?,
                device.address.present_pci(),
                device.prefs.numa,
            ))
        })?;
        let Some(flags) = flags else {
            return Ok(None);
        };
        let addr = match present {
            Some(addr) => {
                self.reserve_checked(&addr, flags)?;
                addr
            }
            None => match numa {
                None => self.set.reserve_next(flags, None)?,
                Some(node) => {
                    if !self.bus_numa.contains(&Some(node)) {
                        return Err(Error::operation_invalid(format!(
                            "no bus of this guest is behind an expander bus of NUMA node {node}"
                        )));
                    }
                    let bus_numa = &self.bus_numa;
                    self.set
                        .reserve_next_on(flags, |bus| bus_numa.get(bus) == Some(&Some(node)))?
                }
            },
        };
        self.inventory.add_from_xml(addr, device_xml);
        Ok(Some(addr))
    }

    /// Reserve `addr` for the device described by `device_xml`.
    pub fn reserve(&mut self, addr: &PciAddress, device_xml: &str) -> Result<()> {
        self.refuse_pci_only_on_s390()?;
        let flags =
            Self::with_device(device_xml, |device| self.preferred_hotplug_flags(device))?
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
        self.check_in_topology(addr)?;
        if let Some(ids) = &mut self.s390 {
            ids.release_zpci(addr);
        }
        self.set.release(addr);
        self.inventory.remove(addr);
        Ok(())
    }

    /// Refuse an address outside this guest's buses, slots and functions.
    pub(super) fn check_in_topology(&self, addr: &PciAddress) -> Result<()> {
        if addr.domain != 0
            || addr.bus as usize >= self.set.bus_count()
            || addr.slot > 31
            || addr.function > 7
        {
            return Err(Error::invalid_arg(format!(
                "PCI address {addr} is not part of this guest's PCI topology"
            )));
        }
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
