//! What differs between the libvirt levels virtpci reproduces (9.0 with QEMU 7.2, 11.3 with
//! QEMU 10.0), apart from the order of added controllers (see `LibvirtLevel`).

use super::Planner;
use crate::assign::LibvirtLevel;
use crate::error::{Error, Result};
use crate::topology::MachineKind;
use crate::xml::domain::{Device, DeviceAddress, DeviceKind};

/// The versioned machine types an emulator has: (prefix, oldest, newest), versions as
/// major * 100 + minor. QEMU 7.2 still has pc-i440fx-1.4; QEMU 10.0 starts at 2.4. aarch64
/// has virt-2.6 on; riscv64's `virt` has no versions (oldest above newest: none).
fn versioned_machines(level: LibvirtLevel, kind: MachineKind) -> [(&'static str, u32, u32); 2] {
    let newest = match level {
        LibvirtLevel::V9_0 => 702,
        LibvirtLevel::V11_3 => 1000,
    };
    match (kind, level) {
        (MachineKind::ArmVirt, _) => [("virt-", 206, newest); 2],
        (MachineKind::RiscvVirt, _) => [("virt-", 1, 0); 2],
        // s390x: QEMU 7.2 from 2.4 on, QEMU 10.0 from 2.9 on.
        (MachineKind::S390Ccw, LibvirtLevel::V9_0) => [("s390-ccw-virtio-", 204, newest); 2],
        (MachineKind::S390Ccw, LibvirtLevel::V11_3) => [("s390-ccw-virtio-", 209, newest); 2],
        // ppc64: QEMU 7.2 from pseries-2.1 on, QEMU 10.0 from 3.0 on.
        (MachineKind::Pseries, LibvirtLevel::V9_0) => [("pseries-", 201, newest); 2],
        (MachineKind::Pseries, LibvirtLevel::V11_3) => [("pseries-", 300, newest); 2],
        (_, LibvirtLevel::V9_0) => [("pc-i440fx-", 104, 702), ("pc-q35-", 204, 702)],
        (_, LibvirtLevel::V11_3) => [("pc-i440fx-", 204, 1000), ("pc-q35-", 204, 1000)],
    }
}

/// The minor versions QEMU had per major one (2.x went to 2.12, 1.x from 1.4 to 1.7).
fn is_release(version: u32) -> bool {
    let (major, minor) = (version / 100, version % 100);
    match major {
        1 => (4..=7).contains(&minor),
        2 => minor <= 12,
        3 | 10 => minor <= 1,
        4..=9 => minor <= 2,
        _ => false,
    }
}

/// Whether the level's QEMU has machine type `machine` (only the versioned pc and q35 types
/// are checked; others are left to the families virtpci knows).
fn emulator_has_machine(level: LibvirtLevel, kind: MachineKind, machine: &str) -> bool {
    if machine.starts_with("pc-0.") || machine.starts_with("pc-1.") {
        return false;
    }
    for (prefix, oldest, newest) in versioned_machines(level, kind) {
        let Some(version) = machine.strip_prefix(prefix) else {
            continue;
        };
        let parsed = version.split_once('.').and_then(|(a, b)| {
            let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
            (b < 100).then_some(a * 100 + b)
        });
        return parsed.is_some_and(|v| is_release(v) && v >= oldest && v <= newest);
    }
    true
}

impl<'a> Planner<'a> {
    /// The post-parse checks and changes that depend on the level: machine types the level's
    /// QEMU lacks, and devices 9.0 does not know (crypto: dropped with its address).
    pub(super) fn apply_level(&mut self) -> Result<()> {
        let level = self.options.libvirt;
        if let Some(machine) = self.def.machine {
            let kind = self.machine();
            if !emulator_has_machine(level, kind, machine) {
                return Err(Error::config_unsupported(format!(
                    "Emulator '{}' does not support machine type '{machine}'",
                    kind.emulator(self.def.arch)
                )));
            }
        }
        if level == LibvirtLevel::V9_0 {
            for d in &mut self.def.devices {
                if matches!(d.kind, DeviceKind::Crypto { .. }) {
                    d.kind = DeviceKind::Other;
                    d.address = DeviceAddress::None;
                }
            }
        }
        Ok(())
    }
}

impl Planner<'_> {
    /// Disk validation that depends on the level: QEMU 10 has no SCSI passthrough through
    /// virtio-blk, so 11.3 refuses a `lun` disk on the virtio bus.
    pub(super) fn validate_disk_level(&self, d: &Device) -> Result<()> {
        match &d.kind {
            DeviceKind::Disk { device, bus, .. }
                if self.options.libvirt >= LibvirtLevel::V11_3
                    && *device == "lun"
                    && *bus == "virtio" =>
            {
                Err(Error::config_unsupported(
                    "This QEMU doesn't support SCSI emulation with 'virtio-blk' device",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Interface validation that depends on the level: 11.3 wants shared guest memory
    /// behind vhost-user interfaces.
    pub(super) fn validate_nets_level(&self) -> Result<()> {
        if self.options.libvirt < LibvirtLevel::V11_3 || self.def.shared_memory {
            return Ok(());
        }
        let vhost_user = self.def.devices.iter().any(
            |d| matches!(&d.kind, DeviceKind::Net { net_type, .. } if *net_type == "vhostuser"),
        );
        if vhost_user {
            return Err(Error::config_unsupported(
                "'interface' requires shared memory",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types_follow_each_qemu() {
        let v9 = LibvirtLevel::V9_0;
        let v11 = LibvirtLevel::V11_3;
        let x86 = MachineKind::I440fx;
        assert!(emulator_has_machine(v9, x86, "pc-i440fx-1.4"));
        assert!(!emulator_has_machine(v11, x86, "pc-i440fx-2.3"));
        assert!(emulator_has_machine(v11, x86, "pc-i440fx-2.4"));
        assert!(!emulator_has_machine(v9, x86, "pc-q35-2.3"));
        assert!(!emulator_has_machine(v9, x86, "pc-i440fx-8.0"));
        assert!(emulator_has_machine(v11, x86, "pc-q35-10.0"));
        assert!(!emulator_has_machine(v9, x86, "pc-1.3"));
        assert!(emulator_has_machine(v9, x86, "pc"));
        assert!(emulator_has_machine(v9, x86, "q35"));
        assert!(!emulator_has_machine(v9, x86, "pc-i440fx-2.13"));
        let (arm, riscv) = (MachineKind::ArmVirt, MachineKind::RiscvVirt);
        assert!(emulator_has_machine(v9, arm, "virt"));
        assert!(emulator_has_machine(v9, arm, "virt-2.6"));
        assert!(!emulator_has_machine(v9, arm, "virt-2.5"));
        assert!(!emulator_has_machine(v9, arm, "virt-8.0"));
        assert!(emulator_has_machine(v11, arm, "virt-10.0"));
        assert!(!emulator_has_machine(v11, arm, "virt-10.1"));
        assert!(emulator_has_machine(v9, riscv, "virt"));
        assert!(!emulator_has_machine(v11, riscv, "virt-7.2"));
        let s390 = MachineKind::S390Ccw;
        assert!(emulator_has_machine(v9, s390, "s390-ccw-virtio"));
        assert!(emulator_has_machine(v9, s390, "s390-ccw-virtio-2.4"));
        assert!(!emulator_has_machine(v9, s390, "s390-ccw-virtio-2.3"));
        assert!(!emulator_has_machine(v11, s390, "s390-ccw-virtio-2.8"));
        assert!(emulator_has_machine(v11, s390, "s390-ccw-virtio-10.0"));
        assert!(!emulator_has_machine(v9, s390, "s390-ccw-virtio-8.0"));
    }
}
