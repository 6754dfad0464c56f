//! The network side of an `<interface type='hostdev'>`: the MAC address and VLAN tag the
//! domain asks for, parsed and checked with libvirt's words (domain_conf.c's MAC parsing,
//! virnetdev.c's virNetDevSetNetConfig), and the checks virhostdev.c makes before anything
//! moves (virHostdevSaveNetConfig: only an SR-IOV VF, whose PF has a netdev).

use crate::error::{Error, ErrorCode, Result};
use crate::host::Host;
use crate::pci::PciAddress;

pub use crate::host::vfnet::MacAddr;

/// The largest 802.1Q VLAN id.
pub const VLAN_MAX: u16 = 4095;

/// What an `<interface type='hostdev'>` asks of its VF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetConfig {
    /// `<mac address>`: set as the VF's MAC through its PF.
    pub mac: Option<MacAddr>,
    /// `<vlan><tag id>`: set as the VF's VLAN through its PF; `None` clears it (libvirt sets
    /// tag 0 when no VLAN is given, so a VLAN left by an earlier user does not stay).
    pub vlan: Option<u16>,
}

/// libvirt's refusal of a VLAN an SR-IOV VF cannot carry (more than one tag, or a trunk).
pub fn vlan_trunk_error() -> Error {
    Error::config_unsupported("vlan trunking is not supported by SR-IOV network devices")
}

/// libvirt's refusal of a device that is not a VF as `<interface type='hostdev'>`.
pub fn not_a_vf_error() -> Error {
    Error::config_unsupported(
        "Interface type hostdev is currently supported on SR-IOV Virtual Functions only",
    )
}

/// Setting a VF's MAC and VLAN through its PF is not done yet: refused rather than silently
/// ignored (the guest would get whatever the PF last set, and nothing would be restored).
pub fn not_implemented_error(vf: &PciAddress) -> Error {
    Error::new(
        ErrorCode::OperationUnsupported,
        format!(
            "setting the MAC address and VLAN of SR-IOV VF {vf} through its PF is not implemented yet; \
             give the VF as <hostdev> (its MAC and VLAN stay as the PF has them) or remove <mac> and <vlan>"
        ),
    )
}

/// For a device given as a network interface: its PF and the PF's netdev, or libvirt's
/// refusal (virHostdevSaveNetConfig's checks, made before anything moves): not a VF, or a PF
/// without a netdev. The outer error is a failure to read sysfs.
pub fn vf_net_device(
    host: &Host,
    vf: &PciAddress,
) -> Result<std::result::Result<(PciAddress, String), Error>> {
    let Some(pf) = host.physical_function(vf)? else {
        return Ok(Err(not_a_vf_error()));
    };
    Ok(match host.net_interfaces(&pf)?.into_iter().next() {
        Some(netdev) => Ok((pf, netdev)),
        None => Err(Error::internal(format!(
            "The PF device for VF /sys/bus/pci/devices/{vf} has no network device name"
        ))),
    })
}
