//! PCI configuration space: the header and the capabilities that passthrough cares about.
//!
//! Offsets and bits are those of the PCI and PCIe specifications (the same facts libvirt's
//! `virPCIDeviceInit` reads): status bit 0x10 says a capability list exists, its head is at
//! 0x34; PM is id 0x01 (NO_SOFT_RESET is bit 3 of PM_CTRL at cap+4); PCIe is id 0x10 (port type
//! in bits 4..7 of cap+2, FLR is bit 28 of DevCap at cap+4); Advanced Features is id 0x13 (FLR
//! is bit 1 of cap+3); extended capabilities start at 0x100 (ACS is id 0x0D, control at cap+6).

use crate::error::{Error, Result};

/// Size of the standard header every device has.
pub(crate) const HEADER_SIZE: usize = 64;
/// Size of conventional PCI config space.
pub(crate) const PCI_CONFIG_SIZE: usize = 256;
/// Size of PCIe extended config space.
pub(crate) const PCIE_CONFIG_SIZE: usize = 4096;

pub(crate) const CAP_ID_PM: u8 = 0x01;
pub(crate) const CAP_ID_PCIE: u8 = 0x10;
pub(crate) const CAP_ID_AF: u8 = 0x13;
pub(crate) const EXT_CAP_ID_ACS: u16 = 0x0d;

/// Offset of PM_CTRL within the PM capability.
pub(crate) const PM_CTRL: usize = 4;
/// Offset of the bridge control register in a type 1 header; bit 0x40 is secondary bus reset.
pub(crate) const BRIDGE_CONTROL: usize = 0x3e;
pub(crate) const BRIDGE_CTL_BUS_RESET: u16 = 0x40;

/// ACS control bits libvirt requires of a downstream port: SV, RR, CR, UF.
pub(crate) const ACS_REQUIRED: u16 = 0x01 | 0x04 | 0x08 | 0x10;

/// The header layout (byte 0x0E without the multifunction bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderType {
    Endpoint,
    PciBridge,
    Cardbus,
}

/// PCIe device/port type (bits 4..7 of the PCIe capabilities register).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciePortType {
    Endpoint,
    LegacyEndpoint,
    RootPort,
    UpstreamPort,
    DownstreamPort,
    PcieToPciBridge,
    PciToPcieBridge,
    IntegratedEndpoint,
    EventCollector,
    Other(u8),
}

impl PciePortType {
    pub(crate) fn from_bits(v: u8) -> PciePortType {
        match v {
            0 => PciePortType::Endpoint,
            1 => PciePortType::LegacyEndpoint,
            4 => PciePortType::RootPort,
            5 => PciePortType::UpstreamPort,
            6 => PciePortType::DownstreamPort,
            7 => PciePortType::PcieToPciBridge,
            8 => PciePortType::PciToPcieBridge,
            9 => PciePortType::IntegratedEndpoint,
            10 => PciePortType::EventCollector,
            v => PciePortType::Other(v),
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            PciePortType::Endpoint => 0,
            PciePortType::LegacyEndpoint => 1,
            PciePortType::RootPort => 4,
            PciePortType::UpstreamPort => 5,
            PciePortType::DownstreamPort => 6,
            PciePortType::PcieToPciBridge => 7,
            PciePortType::PciToPcieBridge => 8,
            PciePortType::IntegratedEndpoint => 9,
            PciePortType::EventCollector => 10,
            PciePortType::Other(v) => v,
        }
    }
}

/// The PCI Express capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcieCapability {
    pub offset: usize,
    pub port_type: PciePortType,
    /// Function Level Reset supported (DevCap bit 28).
    pub flr: bool,
}

/// The power management capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmCapability {
    pub offset: usize,
    /// NO_SOFT_RESET: a D3hot→D0 transition does not reset the device.
    pub(crate) no_soft_reset: bool,
}

/// The ACS extended capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcsCapability {
    pub offset: usize,
    pub(crate) control: u16,
}

/// A device's configuration space as read from its `config` file, with the parsed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSpace {
    /// The bytes read (64 for unprivileged readers, 256 for conventional PCI, 4096 for PCIe).
    pub bytes: Vec<u8>,
    pub header_type: HeaderType,
    pub multifunction: bool,
    pub pcie: Option<PcieCapability>,
    pub pm: Option<PmCapability>,
    /// FLR through the Advanced Features capability.
    pub(crate) af_flr: bool,
    pub acs: Option<AcsCapability>,
}

impl ConfigSpace {
    /// Parse config space bytes of the device `name` (used in messages).
    ///
    /// Errors: fewer than 64 bytes; header type 3 or more (libvirt's
    /// "Unknown PCI header type '%d' for device '%s'"). A broken capability chain (pointer
    /// out of range or looping) ends the walk; what was found before is kept.
    pub fn parse(bytes: Vec<u8>, name: &str) -> Result<ConfigSpace> {
        if bytes.len() < HEADER_SIZE {
            return Err(Error::internal(format!(
                "config space of PCI device {name} is too short: {} bytes, need at least {HEADER_SIZE}",
                bytes.len()
            )));
        }
        let raw_type = bytes[0x0e];
        let header_type = match raw_type & 0x7f {
            0 => HeaderType::Endpoint,
            1 => HeaderType::PciBridge,
            2 => HeaderType::Cardbus,
            t => {
                return Err(Error::internal(format!(
                    "Unknown PCI header type '{t}' for device '{name}'"
                )))
            }
        };
        let mut cfg = ConfigSpace {
            multifunction: raw_type & 0x80 != 0,
            header_type,
            pcie: None,
            pm: None,
            af_flr: false,
            acs: None,
            bytes,
        };
        cfg.walk_capabilities();
        cfg.walk_extended_capabilities();
        Ok(cfg)
    }

    pub(crate) fn read_u8(&self, off: usize) -> Option<u8> {
        self.bytes.get(off).copied()
    }

    pub(crate) fn read_u16(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes([
            *self.bytes.get(off)?,
            *self.bytes.get(off + 1)?,
        ]))
    }

    pub(crate) fn read_u32(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes([
            *self.bytes.get(off)?,
            *self.bytes.get(off + 1)?,
            *self.bytes.get(off + 2)?,
            *self.bytes.get(off + 3)?,
        ]))
    }

    pub fn vendor(&self) -> u16 {
        self.read_u16(0).unwrap_or(0xffff)
    }

    pub fn device(&self) -> u16 {
        self.read_u16(2).unwrap_or(0xffff)
    }

    /// The 24-bit class code (class, subclass, programming interface).
    pub fn class(&self) -> u32 {
        self.read_u32(8).unwrap_or(0) >> 8
    }

    fn walk_capabilities(&mut self) {
        let status = self.read_u16(0x06).unwrap_or(0);
        if status & 0x10 == 0 {
            return;
        }
        let mut pos = self.read_u8(0x34).unwrap_or(0) as usize & !3;
        // At most 48 capabilities fit between 0x40 and 0x100: more means a loop.
        for _ in 0..48 {
            if !(0x40..0xff).contains(&pos) || pos + 2 > self.bytes.len() {
                break;
            }
            let id = self.bytes[pos];
            match id {
                CAP_ID_PM if self.pm.is_none() => {
                    if let Some(ctrl) = self.read_u16(pos + PM_CTRL) {
                        self.pm = Some(PmCapability {
                            offset: pos,
                            no_soft_reset: ctrl & 0x08 != 0,
                        });
                    }
                }
                CAP_ID_PCIE if self.pcie.is_none() => {
                    if let (Some(flags), Some(devcap)) =
                        (self.read_u16(pos + 2), self.read_u32(pos + 4))
                    {
                        self.pcie = Some(PcieCapability {
                            offset: pos,
                            port_type: PciePortType::from_bits(((flags & 0xf0) >> 4) as u8),
                            flr: devcap & (1 << 28) != 0,
                        });
                    }
                }
                CAP_ID_AF if self.read_u8(pos + 3).unwrap_or(0) & 0x02 != 0 => {
                    self.af_flr = true;
                }
                _ => {}
            }
            pos = self.bytes[pos + 1] as usize & !3;
        }
    }

    fn walk_extended_capabilities(&mut self) {
        if self.pcie.is_none() || self.bytes.len() <= PCI_CONFIG_SIZE {
            return;
        }
        let mut pos = PCI_CONFIG_SIZE;
        for _ in 0..(PCIE_CONFIG_SIZE - PCI_CONFIG_SIZE) / 8 {
            if !(PCI_CONFIG_SIZE..PCIE_CONFIG_SIZE).contains(&pos) {
                break;
            }
            let Some(header) = self.read_u32(pos) else {
                break;
            };
            if header == 0 || header == 0xffff_ffff {
                break;
            }
            if (header & 0xffff) as u16 == EXT_CAP_ID_ACS && self.acs.is_none() {
                if let Some(control) = self.read_u16(pos + 6) {
                    self.acs = Some(AcsCapability {
                        offset: pos,
                        control,
                    });
                }
            }
            pos = ((header >> 20) & 0xffc) as usize;
        }
    }

    /// FLR through PCIe DevCap or Advanced Features (a VF has FLR too; ask the host).
    pub fn has_flr(&self) -> bool {
        self.pcie.map(|c| c.flr).unwrap_or(false) || self.af_flr
    }

    /// PM reset possible: a PM capability without NO_SOFT_RESET.
    pub fn has_pm_reset(&self) -> bool {
        self.pm.map(|p| !p.no_soft_reset).unwrap_or(false)
    }

    /// Bridge bus numbers (primary, secondary, subordinate) of a type 1 header.
    pub fn bridge_buses(&self) -> Option<(u8, u8, u8)> {
        if self.header_type != HeaderType::PciBridge {
            return None;
        }
        Some((
            self.read_u8(0x18)?,
            self.read_u8(0x19)?,
            self.read_u8(0x1a)?,
        ))
    }

    /// A PCIe downstream port without ACS, or with ACS control missing one of SV, RR, CR, UF
    /// (libvirt's test for "a switch lacking ACS").
    pub fn downstream_port_lacks_acs(&self) -> bool {
        match self.pcie {
            Some(c) if c.port_type == PciePortType::DownstreamPort => match self.acs {
                None => true,
                Some(acs) => acs.control & ACS_REQUIRED != ACS_REQUIRED,
            },
            _ => false,
        }
    }
}

/// A description of config space that [`ConfigBuilder::build`] turns into bytes: used by the
/// fixture materializer and by tests. Only the fields virtpci reads are filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigBuilder {
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub revision: u8,
    pub subsystem_vendor: u16,
    pub subsystem_device: u16,
    pub multifunction: bool,
    /// Type 1 header with (primary, secondary, subordinate) buses.
    pub bridge_buses: Option<(u8, u8, u8)>,
    pub pcie_port_type: Option<PciePortType>,
    pub flr: bool,
    pub pm: bool,
    pub pm_no_soft_reset: bool,
    /// ACS capability with this control value (PCIe only).
    pub(crate) acs_control: Option<u16>,
}

impl ConfigBuilder {
    /// The bytes: 4096 when there is a PCIe capability, else 256.
    pub fn build(&self) -> Vec<u8> {
        let size = if self.pcie_port_type.is_some() {
            PCIE_CONFIG_SIZE
        } else {
            PCI_CONFIG_SIZE
        };
        let mut b = vec![0u8; size];
        let put16 =
            |b: &mut Vec<u8>, off: usize, v: u16| b[off..off + 2].copy_from_slice(&v.to_le_bytes());
        let put32 =
            |b: &mut Vec<u8>, off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put16(&mut b, 0, self.vendor);
        put16(&mut b, 2, self.device);
        put16(&mut b, 4, 0x0006); // memory + bus master enabled
        b[8] = self.revision;
        b[9] = (self.class & 0xff) as u8;
        b[10] = ((self.class >> 8) & 0xff) as u8;
        b[11] = ((self.class >> 16) & 0xff) as u8;
        let header = if self.bridge_buses.is_some() { 1 } else { 0 };
        b[0x0e] = header | if self.multifunction { 0x80 } else { 0 };
        if let Some((p, s, sub)) = self.bridge_buses {
            b[0x18] = p;
            b[0x19] = s;
            b[0x1a] = sub;
        } else {
            put16(&mut b, 0x2c, self.subsystem_vendor);
            put16(&mut b, 0x2e, self.subsystem_device);
        }
        // Capability chain: PM at 0x40, PCIe at 0x60.
        let mut caps: Vec<(usize, u8)> = Vec::new();
        if self.pm {
            caps.push((0x40, CAP_ID_PM));
        }
        if self.pcie_port_type.is_some() {
            caps.push((0x60, CAP_ID_PCIE));
        }
        if let Some(&(first, _)) = caps.first() {
            put16(&mut b, 6, 0x0010);
            b[0x34] = first as u8;
        }
        for (i, &(off, id)) in caps.iter().enumerate() {
            b[off] = id;
            b[off + 1] = caps.get(i + 1).map(|c| c.0 as u8).unwrap_or(0);
            match id {
                CAP_ID_PM => {
                    put16(&mut b, off + 2, 0x0003);
                    put16(
                        &mut b,
                        off + PM_CTRL,
                        if self.pm_no_soft_reset { 0x0008 } else { 0 },
                    );
                }
                CAP_ID_PCIE => {
                    let port = self.pcie_port_type.map(|p| p.bits()).unwrap_or(0);
                    put16(&mut b, off + 2, 0x0002 | ((port as u16) << 4));
                    put32(&mut b, off + 4, if self.flr { 1 << 28 } else { 0 });
                }
                _ => {}
            }
        }
        if let Some(control) = self.acs_control {
            if size == PCIE_CONFIG_SIZE {
                // ACS, version 1, last in the chain.
                put32(&mut b, 0x100, EXT_CAP_ID_ACS as u32 | (1 << 16));
                put16(&mut b, 0x104, 0x001f);
                put16(&mut b, 0x106, control);
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_round_trips_through_the_parser() {
        let spec = ConfigBuilder {
            vendor: 0x8086,
            device: 0x10d3,
            class: 0x020000,
            multifunction: true,
            pcie_port_type: Some(PciePortType::Endpoint),
            flr: true,
            pm: true,
            ..Default::default()
        };
        let cfg = ConfigSpace::parse(spec.build(), "0000:01:00.0").unwrap();
        assert_eq!(cfg.vendor(), 0x8086);
        assert_eq!(cfg.device(), 0x10d3);
        assert_eq!(cfg.class(), 0x020000);
        assert_eq!(cfg.header_type, HeaderType::Endpoint);
        assert!(cfg.multifunction);
        assert!(cfg.has_flr());
        assert!(cfg.has_pm_reset());
        assert_eq!(cfg.pcie.unwrap().port_type, PciePortType::Endpoint);
        assert_eq!(cfg.bytes.len(), 4096);
    }

    #[test]
    fn bridges_and_acs() {
        let spec = ConfigBuilder {
            class: 0x060400,
            bridge_buses: Some((0, 2, 5)),
            pcie_port_type: Some(PciePortType::DownstreamPort),
            acs_control: Some(0x001d),
            ..Default::default()
        };
        let cfg = ConfigSpace::parse(spec.build(), "x").unwrap();
        assert_eq!(cfg.header_type, HeaderType::PciBridge);
        assert_eq!(cfg.bridge_buses(), Some((0, 2, 5)));
        assert!(!cfg.downstream_port_lacks_acs());
        let spec = ConfigBuilder {
            acs_control: Some(0x0001),
            ..spec
        };
        assert!(ConfigSpace::parse(spec.build(), "x")
            .unwrap()
            .downstream_port_lacks_acs());
    }

    #[test]
    fn garbage_is_refused_or_survived() {
        assert!(ConfigSpace::parse(vec![0; 10], "x")
            .unwrap_err()
            .message
            .contains("too short"));
        let mut b = vec![0u8; 256];
        b[0x0e] = 0x05;
        assert_eq!(
            ConfigSpace::parse(b.clone(), "0000:00:01.0")
                .unwrap_err()
                .message,
            "internal error: Unknown PCI header type '5' for device '0000:00:01.0'"
        );
        // A capability list that points at itself ends; no hang.
        let mut b = vec![0u8; 256];
        b[6] = 0x10;
        b[0x34] = 0x40;
        b[0x40] = 0x09;
        b[0x41] = 0x40;
        let cfg = ConfigSpace::parse(b, "x").unwrap();
        assert!(cfg.pm.is_none() && cfg.pcie.is_none());
        // Random bytes never panic.
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = vec![0u8; 4096];
            for byte in b.iter_mut() {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *byte = (seed >> 16) as u8;
            }
            b[0x0e] &= 0x81;
            let _ = ConfigSpace::parse(b, "x");
        }
    }
}
