//! The network side of an `<interface type='hostdev'>`: the MAC address and VLAN tag the
//! domain asks for, parsed and checked with libvirt's words (domain_conf.c's MAC parsing,
//! virnetdev.c's virNetDevSetNetConfig), and the checks virhostdev.c makes before anything
//! moves (virHostdevSaveNetConfig: only an SR-IOV VF, whose PF has a netdev).

use crate::error::{Error, ErrorCode, Result};
use crate::host::Host;
use crate::pci::PciAddress;
use std::fmt;

/// A MAC address (six bytes, printed `52:54:00:aa:bb:cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// libvirt's virMacAddrParse (six groups of one or two hex digits joined by `:`), then its
    /// domain parser's refusal of a multicast address.
    pub fn parse(text: &str) -> Result<MacAddr> {
        let bad = || {
            Error::internal(format!(
                "unable to parse mac address '{}'",
                text.escape_debug()
            ))
        };
        let mut out = [0u8; 6];
        let mut parts = text.split(':');
        for byte in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if out[0] & 1 != 0 {
            return Err(Error::xml(format!(
                "expected unicast mac address, found multicast '{}'",
                text.escape_debug()
            )));
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        let m = MacAddr::parse("52:54:00:AA:bb:c").unwrap();
        assert_eq!(m.to_string(), "52:54:00:aa:bb:0c");
        for bad in [
            "",
            "52:54:00:aa:bb",
            "52:54:00:aa:bb:cc:dd",
            "52:54:00:aa:bb:xx",
            "525:4:0:a:b:c",
        ] {
            let e = MacAddr::parse(bad).unwrap_err();
            assert_eq!(
                e.message,
                format!("internal error: unable to parse mac address '{bad}'")
            );
        }
        let e = MacAddr::parse("01:00:5e:00:00:01").unwrap_err();
        assert_eq!(
            e.message,
            "XML error: expected unicast mac address, found multicast '01:00:5e:00:00:01'"
        );
    }
}
