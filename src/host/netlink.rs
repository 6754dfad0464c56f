//! A VF's MAC address and VLAN as its PF holds them, on a real host: read with RTM_GETLINK
//! (IFLA_EXT_MASK RTEXT_FILTER_VF, answer in IFLA_VFINFO_LIST → IFLA_VF_INFO → IFLA_VF_MAC /
//! IFLA_VF_VLAN) and set with RTM_SETLINK (IFLA_VFINFO_LIST → IFLA_VF_INFO → IFLA_VF_MAC,
//! IFLA_VF_VLAN), as `ip link set PF vf N mac M vlan V` and libvirt's virnetdev.c do.
//!
//! The messages are built and parsed by netlink-packet-route and sent over a blocking
//! netlink-sys socket, one request and its answer per call: no async runtime inside a C
//! library, no thread, no socket kept between calls.

use super::vfnet::{MacAddr, VfNet};
use super::{Host, WriteKind};
use crate::error::{quote, Error, ErrorCode, Result};
use crate::pci::PciAddress;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo, VfInfo, VfInfoMac,
    VfInfoVlan,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::path::Path;

impl Host {
    /// Whether a VF's MAC and VLAN are read and set through netlink: the host is the running
    /// kernel's own `/sys` (a tree elsewhere, even a copy of it, is not what netlink talks to).
    pub(crate) fn vf_net_through_netlink(&self) -> bool {
        !self.keeps_vf_net()
            && std::fs::canonicalize(self.root()).is_ok_and(|p| p == Path::new("/sys"))
    }

    /// Whether [`Host::vf_net`] and [`Host::set_vf_net`] work here: the simulated kernel, or
    /// netlink on the running kernel.
    pub(crate) fn vf_net_supported(&self) -> bool {
        self.keeps_vf_net() || self.vf_net_through_netlink()
    }

    /// [`Host::vf_net`] on the running kernel. Refused while the PF is down, as libvirt
    /// refuses to save a VF's config then: changes made through a PF that is down do not take
    /// effect, yet no error says so.
    pub(super) fn netlink_vf_net(&self, pf: &PciAddress, index: u32) -> Result<VfNet> {
        let ifname = self.pf_ifname(pf)?;
        let (net, up) = vf_net(&ifname, index)?;
        if !up {
            return Err(Error::internal(format!(
                "Unable to configure VF {index} of PF '{ifname}' because the PF is not online. Please change host network config to put the PF online."
            )));
        }
        Ok(net)
    }

    /// [`Host::set_vf_net`] on the running kernel; an injected fault of kind `vf_net` fails
    /// it before anything is sent, as for the writes to sysfs.
    pub(super) fn netlink_set_vf_net(&self, pf: &PciAddress, index: u32, net: VfNet) -> Result<()> {
        let ifname = self.pf_ifname(pf)?;
        self.faults.before_write(WriteKind::VfNet).map_err(|e| {
            Error::system(
                format!(
                    "Cannot set interface MAC to {} for ifname {ifname} vf {index}",
                    net.mac
                ),
                &e,
            )
        })?;
        set_vf_net(&ifname, index, net)
    }

    /// The PF's network interface, with libvirt's words when it has none.
    fn pf_ifname(&self, pf: &PciAddress) -> Result<String> {
        self.net_interfaces(pf)?.into_iter().next().ok_or_else(|| {
            Error::internal(format!("The PF device {pf} has no network device name"))
        })
    }
}

/// The MAC and VLAN that the PF netdev `pf_ifname` holds for its VF `vf`, and whether the PF
/// is up.
pub fn vf_net(pf_ifname: &str, vf: u32) -> Result<(VfNet, bool)> {
    let what = || format!("Cannot get VF {vf} info of ifname {pf_ifname}");
    let request = link_message(pf_ifname, LinkAttribute::ExtMask(vec![LinkExtentMask::Vf]));
    let answer = exchange(RouteNetlinkMessage::GetLink(request), NLM_F_REQUEST, &what)?;
    let Some(RouteNetlinkMessage::NewLink(link)) = answer else {
        return Err(Error::internal(format!(
            "{}: no link in the netlink answer",
            what()
        )));
    };
    let mut mac = None;
    let mut vlan = None;
    for attribute in &link.attributes {
        let LinkAttribute::VfInfoList(list) = attribute else {
            continue;
        };
        for LinkVfInfo(infos) in list {
            for info in infos {
                match info {
                    VfInfo::Mac(m) if m.vf_id == vf => mac = Some(mac_of(m)),
                    VfInfo::Vlan(v) if v.vf_id == vf => vlan = Some(v.vlan_id),
                    _ => {}
                }
            }
        }
    }
    if !link
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::VfInfoList(_)))
    {
        return Err(Error::internal("missing IFLA_VF_INFO in netlink response"));
    }
    let mac = mac.ok_or_else(|| {
        Error::internal(format!(
            "couldn't find IFLA_VF_INFO for VF {vf} in netlink response"
        ))
    })?;
    let vlan = u16::try_from(vlan.unwrap_or(0))
        .ok()
        .filter(|v| *v <= 4095)
        .ok_or_else(|| Error::internal(format!("{}: VLAN id out of range", what())))?;
    let up = link.header.flags.contains(LinkFlags::Up);
    Ok((VfNet { mac, vlan }, up))
}

/// Make the PF netdev `pf_ifname` hold `net` for its VF `vf`, as libvirt's
/// virNetDevSetVfConfig does: the MAC first, then the VLAN (0 clears it), one RTM_SETLINK
/// each. A driver that refuses the all-zero MAC (EINVAL) is given 02:00:00:00:00:00 instead,
/// the zero MAC with only the locally administered bit, as libvirt retries.
pub fn set_vf_net(pf_ifname: &str, vf: u32, net: VfNet) -> Result<()> {
    let set_mac = |mac: MacAddr| {
        set_link_vf(pf_ifname, VfInfo::Mac(VfInfoMac::new(vf, &mac.0)), &|| {
            format!("Cannot set interface MAC to {mac} for ifname {pf_ifname} vf {vf}")
        })
    };
    match set_mac(net.mac) {
        Err(e) if net.mac == MacAddr::default() && e.message.ends_with(EINVAL_TEXT) => {
            set_mac(ALT_ZERO_MAC)?
        }
        done => done?,
    }
    set_link_vf(
        pf_ifname,
        VfInfo::Vlan(VfInfoVlan::new(vf, u32::from(net.vlan), 0)),
        &|| {
            format!(
                "Cannot set interface vlanid to {} for ifname {pf_ifname} vf {vf}",
                net.vlan
            )
        },
    )
}

/// libvirt's stand-in for the all-zero MAC when a driver refuses it.
const ALT_ZERO_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0]);
/// How an EINVAL answer ends its message.
const EINVAL_TEXT: &str = "Invalid argument";

/// A link message naming the netdev `ifname`, with one more attribute.
fn link_message(ifname: &str, attribute: LinkAttribute) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(ifname.to_string()));
    message.attributes.push(attribute);
    message
}

/// One RTM_SETLINK on `pf_ifname` with `info` as its one IFLA_VF_INFO.
fn set_link_vf(pf_ifname: &str, info: VfInfo, what: &dyn Fn() -> String) -> Result<()> {
    let request = link_message(
        pf_ifname,
        LinkAttribute::VfInfoList(vec![LinkVfInfo(vec![info])]),
    );
    exchange(
        RouteNetlinkMessage::SetLink(request),
        NLM_F_REQUEST | NLM_F_ACK,
        what,
    )?;
    Ok(())
}

fn mac_of(m: &VfInfoMac) -> MacAddr {
    let mut bytes = [0u8; 6];
    bytes.copy_from_slice(&m.mac[..6]);
    MacAddr(bytes)
}

/// Send one request and read its answer: the first route message, or `None` for a bare
/// acknowledgement. A kernel error becomes a system error worded by `what`.
fn exchange(
    message: RouteNetlinkMessage,
    flags: u16,
    what: &dyn Fn() -> String,
) -> Result<Option<RouteNetlinkMessage>> {
    let io = |e: std::io::Error| Error::system(what(), &e);
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(io)?;
    socket.bind_auto().map_err(io)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(message));
    packet.header.flags = flags;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map_err(io)?;
    let mut answer: Option<RouteNetlinkMessage> = None;
    loop {
        let (data, _) = socket.recv_from_full().map_err(io)?;
        let mut offset = 0;
        while offset < data.len() {
            let reply: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&data[offset..]).map_err(|e| {
                    Error::internal(format!("{}: malformed netlink answer: {e}", what()))
                })?;
            let length = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(answer),
                        Some(code) => Err(Error::system(
                            what(),
                            &std::io::Error::from_raw_os_error(-code.get()),
                        )),
                    };
                }
                NetlinkPayload::Done(_) => return Ok(answer),
                NetlinkPayload::InnerMessage(m) => {
                    if answer.is_none() {
                        answer = Some(m);
                    }
                    // A GETLINK without NLM_F_ACK ends with its one answer.
                    if flags & NLM_F_ACK == 0 {
                        return Ok(answer);
                    }
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += align4(length);
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The refusal on a tree that is neither simulated nor the running kernel's `/sys` (a host
/// snapshot materialized elsewhere, say): netlink would reach the interfaces of the machine
/// virtpci runs on, not those of the tree.
pub(crate) fn not_the_running_kernel(root: &Path) -> Error {
    Error::new(
        ErrorCode::OperationUnsupported,
        format!(
            "a VF's MAC/VLAN is set through netlink on the running kernel, and the sysfs tree at '{}' is not its /sys (use the simulated kernel for a tree)",
            quote(&root.display().to_string())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No such interface: the kernel's ENODEV comes back as a system error with libvirt's
    /// words (this needs only a netlink socket, which every Linux host has).
    #[test]
    fn a_missing_pf_is_a_clear_error() {
        let e = vf_net("virtpci-none0", 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::SystemError, "{}", e.message);
        assert!(
            e.message
                .contains("Cannot get VF 0 info of ifname virtpci-none0"),
            "{}",
            e.message
        );
        let e = set_vf_net("virtpci-none0", 1, VfNet::default()).unwrap_err();
        assert!(
            e.message.contains(
                "Cannot set interface MAC to 00:00:00:00:00:00 for ifname virtpci-none0 vf 1"
            ),
            "{}",
            e.message
        );
    }

    /// An interface without VFs (loopback): reading a VF is refused, naming it.
    #[test]
    fn an_interface_without_vfs_has_no_vf_info() {
        let e = vf_net("lo", 0).unwrap_err();
        assert_eq!(
            e.message,
            "internal error: missing IFLA_VF_INFO in netlink response"
        );
    }
}
