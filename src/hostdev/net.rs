//! The network side of an `<interface type='hostdev'>`: the MAC address and VLAN tag the
//! domain asks for, parsed and checked with libvirt's words (domain_conf.c's MAC parsing,
//! virnetdev.c's virNetDevSetNetConfig), and the checks virhostdev.c makes before anything
//! moves (virHostdevSaveNetConfig: only an SR-IOV VF, whose PF has a netdev).

use super::book::SavedNet;
use crate::error::{Error, Result};
use crate::host::{Host, MacAddr, VfNet};
use crate::pci::PciAddress;
use crate::xml::hostdevs::HostdevSpec;

/// libvirt's refusal of a device that is not a VF as `<interface type='hostdev'>`.
pub(crate) fn not_a_vf_error() -> Error {
    Error::config_unsupported(
        "Interface type hostdev is currently supported on SR-IOV Virtual Functions only",
    )
}

/// A VF's MAC and VLAN cannot be set on this host (a sysfs tree that is neither simulated
/// nor the running kernel's): refused rather than silently ignored (the guest would get
/// whatever the PF last set).
pub(crate) fn vf_net_unsupported_error(host: &Host) -> Error {
    crate::host::netlink::not_the_running_kernel(host.root())
}

/// For a device given as a network interface: its PF and the PF's netdev, or libvirt's
/// refusal (virHostdevSaveNetConfig's checks, made before anything moves): not a VF, or a PF
/// without a netdev. The outer error is a failure to read sysfs.
pub(crate) fn vf_net_device(
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

/// One VF network interface prepare configures: what its PF holds now (saved in the book
/// before anything changes) and what the domain asks for.
#[derive(Debug, Clone)]
pub(crate) struct NetChange {
    pub vf: PciAddress,
    pub saved: SavedNet,
    pub wanted: VfNet,
}

/// For every hostdev that is a VF network interface asking for a MAC or a VLAN: read what its
/// PF holds (refused on a real host, before anything changes) and what to set.
pub(crate) fn plan_net_changes(host: &Host, hostdevs: &[HostdevSpec]) -> Result<Vec<NetChange>> {
    let mut out = Vec::new();
    for h in hostdevs {
        let Some(net) = h
            .net
            .as_ref()
            .filter(|n| n.mac.is_some() || n.vlan.is_some())
        else {
            continue;
        };
        let (pf, index) = host.vf_index(&h.source)?.ok_or_else(not_a_vf_error)?;
        let now = host.vf_net(&pf, index)?;
        out.push(NetChange {
            vf: h.source,
            saved: SavedNet {
                pf,
                index,
                mac: now.mac.to_string(),
                vlan: now.vlan,
            },
            wanted: VfNet {
                mac: net.mac.unwrap_or(now.mac),
                vlan: net.vlan.unwrap_or(now.vlan),
            },
        });
    }
    Ok(out)
}

/// Give the PF back the MAC and VLAN saved for its VF.
pub(crate) fn restore_saved(host: &Host, saved: &SavedNet) -> Result<()> {
    let mac = MacAddr::parse(&saved.mac)?;
    host.set_vf_net(
        &saved.pf,
        saved.index,
        VfNet {
            mac,
            vlan: saved.vlan,
        },
    )
}
