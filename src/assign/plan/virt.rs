//! The aarch64 and riscv64 `virt` machines (armv7l `virt` is placed as aarch64's, as libvirt
//! does): which guests virtpci places at all, the defaults
//! libvirt's QEMU driver gives these machines (an implicit pcie-root from QEMU's generic
//! host bridge, virtio as the network and video model, their USB model, riscv64's memory
//! balloon), and the choice between virtio-mmio and PCI for virtio devices
//! (qemuDomainAssignVirtioMMIOAddresses). Everything else about PCI placement on these
//! machines is q35's without its chipset: PCI Express endpoints behind pcie-root-ports,
//! conventional PCI behind a pcie-to-pci-bridge.

use super::Planner;
use crate::assign::LibvirtLevel;
use crate::error::{Error, Result};
use crate::topology::MachineKind;
use crate::xml::domain::{Device, DeviceAddress, DeviceKind};

/// The address type of a virtio device on the MMIO transport.
pub const VIRTIO_MMIO: &str = "virtio-mmio";

impl<'a> Planner<'a> {
    /// The guests virtpci does not place are refused here, before anything else, naming the
    /// architecture and machine type: a daemon must never get a definition back with its
    /// devices silently left without addresses. The supported set is
    /// [`MachineKind::from_os`]. A missing machine type is the emulator's default: libvirt
    /// 11.3 (QEMU 10.0) takes `virt` on aarch64, armv7l and riscv64, 9.0 (QEMU 7.2) takes
    /// `integratorcp` and `spike`, which have no PCI.
    pub(super) fn check_machine_supported(&self) -> Result<()> {
        let default_without_pci = self.def.machine.is_none()
            && self.machine().is_virt()
            && self.options.libvirt < LibvirtLevel::V11_3;
        if self.machine() != MachineKind::Other && !default_without_pci {
            return Ok(());
        }
        let arch = self.def.arch.unwrap_or("x86_64");
        let machine = match (self.def.machine, arch) {
            (Some(m), _) => m,
            (None, "aarch64" | "armv7l") => "integratorcp",
            (None, "riscv64") => "spike",
            (None, _) => "(default)",
        };
        Err(Error::config_unsupported(format!(
            "virtpci does not place PCI addresses for architecture '{arch}' machine type \
             '{machine}' (supported: x86_64/i686 pc and q35, aarch64 and armv7l virt, riscv64 virt, s390x s390-ccw-virtio, ppc64 pseries)"
        )))
    }

    /// The defaults libvirt's QEMU driver fills into a `virt` guest before addresses are
    /// given (qemuDomainDeviceDefPostParse): an interface without a model is virtio.
    pub(super) fn fill_virt_device_defaults(&mut self) {
        if !self.machine().is_virt() {
            return;
        }
        for d in &mut self.def.devices {
            if let DeviceKind::Net {
                model: model @ None,
                hostdev: None,
                ..
            } = &mut d.kind
            {
                *model = Some("virtio");
            }
        }
    }

    /// The model a USB controller without one gets: qemu-xhci on aarch64 `virt` and pseries,
    /// piix3-uhci elsewhere (libvirt has no xhci preference for armv7l and riscv64, so they
    /// keep x86's).
    pub(super) fn default_usb_model(&self) -> &'static str {
        match self.machine() {
            MachineKind::ArmVirt if self.def.arch == Some("armv7l") => "piix3-uhci",
            MachineKind::ArmVirt | MachineKind::Pseries => "qemu-xhci",
            _ => "piix3-uhci",
        }
    }

    /// libvirt adds a virtio memory balloon by default on x86 and riscv64, not on aarch64.
    pub(super) fn adds_default_memballoon(&self) -> bool {
        self.machine() != MachineKind::ArmVirt
    }

    /// qemuDomainAssignVirtioMMIOAddresses: on `virt`, virtio devices use PCI while the
    /// guest has a pcie-root (always, since QEMU 7.2 and 10.0 have the generic host bridge
    /// and pcie-root-port) and no device uses virtio-mmio yet; once one device has a
    /// virtio-mmio address, every virtio device without an address gets one too.
    pub(super) fn choose_virtio_transport(&mut self) {
        if !self.machine().is_virt() {
            return;
        }
        let any_mmio = self
            .def
            .devices
            .iter()
            .any(|d| matches!(&d.address, DeviceAddress::Other(t) if t == VIRTIO_MMIO));
        if self.has_pcie_root() && !any_mmio {
            return;
        }
        for d in &mut self.def.devices {
            if d.address == DeviceAddress::None && takes_virtio_transport(d) {
                d.address = DeviceAddress::Other(VIRTIO_MMIO.to_string());
            }
        }
    }
}

/// The devices libvirt moves to virtio-mmio with the others (qemuDomainPrimeVirtioDevice
/// Addresses): virtio disks, interfaces, videos and inputs, every virtio-serial and SCSI
/// controller, vhost-scsi host devices, the memory balloon, RNGs, virtio-pmem and
/// virtio-mem memory, and crypto devices.
fn takes_virtio_transport(d: &Device) -> bool {
    let virtio_model = |m: Option<&str>| {
        matches!(
            m,
            Some("virtio" | "virtio-transitional" | "virtio-non-transitional")
        )
    };
    match &d.kind {
        DeviceKind::Disk { bus, .. } => *bus == "virtio",
        DeviceKind::Net {
            model,
            hostdev: None,
            ..
        } => virtio_model(*model),
        DeviceKind::Video { model, .. } => *model == "virtio",
        DeviceKind::Input { bus, .. } => *bus == "virtio",
        DeviceKind::Controller(c) => matches!(c.ctype, "virtio-serial" | "scsi"),
        DeviceKind::Hostdev(h) => h.mode == "subsystem" && h.htype == "scsi_host",
        DeviceKind::Memballoon { model } => *model != "none",
        DeviceKind::Rng { .. } | DeviceKind::Crypto { .. } => true,
        DeviceKind::Memory { model } => matches!(*model, "virtio-pmem" | "virtio-mem"),
        _ => false,
    }
}
