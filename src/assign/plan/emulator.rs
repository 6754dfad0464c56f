//! The x86 rules that follow the emulator's capabilities (see `assign::caps`): libvirt's
//! post-parse defaults (USB, SCSI, video and NIC models; q35's default USB controller), the
//! connect flags of virtio devices, and the model name of root ports. The bus added for a
//! legacy PCI device on q35 is the address set's (`AddressSet::pcie_to_pci_bridge`).

use super::Planner;
use crate::assign::caps::{EmulatorCap, EmulatorCaps};
use crate::error::{Error, Result};
use crate::topology::{ConnectFlags, MachineKind, PciModel};
use crate::xml::domain::DeviceKind;

impl Planner<'_> {
    pub(super) fn caps(&self) -> EmulatorCaps {
        self.options.emulator
    }

    fn is_x86(&self) -> bool {
        matches!(self.machine(), MachineKind::I440fx | MachineKind::Q35)
    }

    /// The model of the USB controller libvirt adds to q35 (qemuDomainDefAddDefaultDevices):
    /// qemu-xhci, else nec-xhci, else ich9-ehci1 (with its UHCI companions), else none.
    pub(super) fn q35_default_usb_model(&self) -> Option<&'static str> {
        let caps = self.caps();
        if caps.has(EmulatorCap::QemuXhci) {
            Some("qemu-xhci")
        } else if caps.has(EmulatorCap::NecUsbXhci) {
            Some("nec-xhci")
        } else if caps.has(EmulatorCap::Ich9UsbEhci1) {
            Some("ich9-ehci1")
        } else {
            None
        }
    }

    /// Add q35's default USB controller, when the emulator has one (virDomainDefAddUSBController:
    /// an ich9-ehci1 comes with its three UHCI companions on the same index).
    pub(super) fn add_q35_default_usb(&mut self) {
        let Some(model) = self.q35_default_usb_model() else {
            return;
        };
        self.add_implicit_controller("usb", 0, Some(model));
        if model == "ich9-ehci1" {
            for companion in ["ich9-uhci1", "ich9-uhci2", "ich9-uhci3"] {
                self.add_implicit_controller("usb", 0, Some(companion));
            }
        }
    }

    /// The model an x86 USB controller written without one gets (qemuDomainControllerDefPostParse):
    /// piix3-uhci when the emulator has it, else none (libvirt leaves the default).
    pub(super) fn x86_usb_model_default(&self) -> Option<&'static str> {
        self.caps()
            .has(EmulatorCap::Piix3UsbUhci)
            .then_some("piix3-uhci")
    }

    /// The model of a SCSI controller without one on x86 (qemuDomainGetSCSIControllerModel):
    /// lsilogic, else virtio-scsi, else none ([`no_scsi_model`] is libvirt's refusal).
    pub(super) fn x86_scsi_model_default(&self) -> Option<&'static str> {
        let caps = self.caps();
        if caps.has(EmulatorCap::ScsiLsi) {
            Some("lsilogic")
        } else if caps.has(EmulatorCap::VirtioScsi) {
            Some("virtio-scsi")
        } else {
            None
        }
    }

    /// The model of a `<video>` without one on x86 (qemuDomainDefaultVideoDevice): cirrus,
    /// else vga, else libvirt's "default", which takes no PCI address.
    pub(super) fn x86_video_model_default(&self) -> &'static str {
        let caps = self.caps();
        if caps.has(EmulatorCap::CirrusVga) {
            "cirrus"
        } else if caps.has(EmulatorCap::Vga) {
            "vga"
        } else {
            "default"
        }
    }

    /// Fill the x86 defaults that depend on the emulator into the devices as read: video
    /// and NIC models (qemuDomainDefaultNetModel: rtl8139, else e1000, else virtio, else
    /// rtl8139).
    pub(super) fn fill_x86_emulator_defaults(&mut self) {
        if !self.is_x86() {
            return;
        }
        let caps = self.caps();
        let video = self.x86_video_model_default();
        let net = if caps.has(EmulatorCap::Rtl8139) || caps.has(EmulatorCap::E1000) {
            None
        } else if caps.has(EmulatorCap::VirtioNet) {
            Some("virtio")
        } else {
            None
        };
        for d in &mut self.def.devices {
            match &mut d.kind {
                DeviceKind::Video {
                    model,
                    model_given: false,
                    ..
                } => *model = video,
                DeviceKind::Net {
                    model: model @ None,
                    hostdev: None,
                    ..
                } => *model = net,
                _ => {}
            }
        }
    }

    /// The connect flags of virtio devices (qemuDomainFillDevicePCIConnectFlagsIterInit):
    /// those of a PCI Express endpoint when the emulator has non-transitional virtio
    /// devices, else conventional PCI.
    pub(super) fn virtio_flags(&self, pcie: ConnectFlags) -> ConnectFlags {
        if self.caps().has(EmulatorCap::VirtioPciNonTransitional) {
            pcie
        } else {
            ConnectFlags::PCI_AUTO
        }
    }

    /// The `<model name>` of a pcie-root-port (qemuDomainPCIControllerSetDefaultModelName):
    /// the generic one when the emulator has it, else ioh3420.
    pub(super) fn root_port_model_name(&self) -> &'static str {
        if self.caps().has(EmulatorCap::PcieRootPort) {
            "pcie-root-port"
        } else {
            "ioh3420"
        }
    }
}

/// libvirt's refusal of a SCSI controller whose model the emulator cannot give.
pub(super) fn no_scsi_model(index: u32) -> Error {
    Error::internal(format!(
        "Unable to determine model for SCSI controller idx={index}"
    ))
}

/// The capability a PCI controller's `<model name>` needs (virValidateControllerPCIModelNameToQEMUCaps).
fn controller_device_cap(model_name: &str) -> Option<EmulatorCap> {
    Some(match model_name {
        "pci-bridge" => EmulatorCap::PciBridge,
        "i82801b11-bridge" => EmulatorCap::DmiToPciBridge,
        "ioh3420" => EmulatorCap::Ioh3420,
        "pcie-root-port" => EmulatorCap::PcieRootPort,
        "x3130-upstream" => EmulatorCap::X3130Upstream,
        "xio3130-downstream" => EmulatorCap::Xio3130Downstream,
        "pxb" => EmulatorCap::Pxb,
        "pxb-pcie" => EmulatorCap::PxbPcie,
        "pcie-pci-bridge" => EmulatorCap::PcieToPciBridge,
        _ => return None,
    })
}

impl Planner<'_> {
    /// libvirt's validation of `<target hotplug>` on a PCI controller against the emulator
    /// (`name` is what its message calls the controller).
    pub(super) fn check_controller_hotplug_option(
        &self,
        model: PciModel,
        name: &str,
    ) -> Result<()> {
        let (cap, name) = match model {
            PciModel::PciRoot => (EmulatorCap::Piix4AcpiRootPciHotplug, "pci-root"),
            PciModel::PcieRootPort | PciModel::PcieSwitchDownstreamPort => {
                (EmulatorCap::PcieRootPortHotplug, name)
            }
            _ => return Ok(()),
        };
        if self.caps().has(cap) {
            return Ok(());
        }
        Err(Error::config_unsupported(format!(
            "setting the 'hotplug' property on a '{name}' device is not supported by this QEMU \
             binary"
        )))
    }

    /// libvirt's validation of a PCI controller against the emulator: its QEMU device must
    /// be there.
    pub(super) fn check_controller_device(&self, model_name: &str) -> Result<()> {
        match controller_device_cap(model_name) {
            Some(cap) if !self.caps().has(cap) => Err(Error::config_unsupported(format!(
                "The '{model_name}' device is not supported by this QEMU binary"
            ))),
            _ => Ok(()),
        }
    }
}
