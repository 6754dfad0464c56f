//! What a PF holds for each of its VFs: the "administrative" MAC address and VLAN tag (what
//! `ip link show PF` lists as `vf N ... link/ether MAC, vlan TAG`). On a real host they are
//! read and set with netlink (RTM_GETLINK/RTM_SETLINK, IFLA_VF_MAC/IFLA_VF_VLAN), which virtpci
//! does not do yet: [`super::Host::vf_net`] and [`super::Host::set_vf_net`] refuse there. The
//! simulated kernel keeps them in `VF_NET_FILE`, one line per VF that was set:
//! `PF INDEX MAC VLAN` (a VF not listed holds the zero MAC and no VLAN, as a fresh VF does).

use crate::error::{Error, Result};
use crate::pci::PciAddress;
use std::collections::BTreeMap;
use std::fmt;

/// The simulator's per-VF MAC and VLAN table.
pub(crate) const VF_NET_FILE: &str = ".virtpci-sim/vf-net";
/// The (simulator-only) attribute of a PF that a [`super::WriteKind::VfNet`] write targets;
/// its data is `INDEX MAC VLAN`.
pub(crate) const VF_NET_ATTR: &str = "virtpci_vf_net";

/// A MAC address (six bytes, printed `52:54:00:aa:bb:cc`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// The MAC and VLAN a PF holds for one VF (VLAN 0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VfNet {
    pub mac: MacAddr,
    pub vlan: u16,
}

impl VfNet {
    /// `INDEX MAC VLAN`, the data of a VfNet write.
    pub(crate) fn to_data(self, index: u32) -> String {
        format!("{index} {} {}", self.mac, self.vlan)
    }

    /// The inverse of [`VfNet::to_data`]; `None` when malformed.
    pub(crate) fn from_data(text: &str) -> Option<(u32, VfNet)> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [index, mac, vlan] = fields.as_slice() else {
            return None;
        };
        let vlan: u16 = vlan.parse().ok().filter(|v| *v <= 4095)?;
        // The zero MAC (and only unicast ones) is what a PF may hold.
        let mac = MacAddr::parse(mac).ok()?;
        Some((index.parse().ok()?, VfNet { mac, vlan }))
    }
}

/// Parse the simulator's table (`PF INDEX MAC VLAN` lines, `#` comments).
pub(crate) fn parse_table(text: &str, what: &str) -> Result<BTreeMap<(PciAddress, u32), VfNet>> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(char::is_whitespace).and_then(|(pf, rest)| {
            let pf = super::names::parse_device_name(pf)?;
            let (index, net) = VfNet::from_data(rest)?;
            Some(((pf, index), net))
        });
        let (key, net) = parsed.ok_or_else(|| {
            Error::internal(format!(
                "{what}:{}: malformed line '{}'",
                n + 1,
                line.escape_debug()
            ))
        })?;
        out.insert(key, net);
    }
    Ok(out)
}

/// Format the table as [`parse_table`] reads it.
pub(crate) fn format_table(table: &BTreeMap<(PciAddress, u32), VfNet>) -> String {
    let mut text = String::from(
        "# virtpci simulated kernel: MAC and VLAN each PF holds for a VF\n# PF INDEX MAC VLAN\n",
    );
    for ((pf, index), net) in table {
        text.push_str(&format!("{pf} {}\n", net.to_data(*index)));
    }
    text
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

    #[test]
    fn table_round_trip() {
        let text = "# c\n0000:3b:00.0 2 52:54:00:aa:bb:cc 42\n0000:3b:00.0 0 00:00:00:00:00:00 0\n";
        let t = parse_table(text, "t").unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(parse_table(&format_table(&t), "t").unwrap(), t);
        assert!(parse_table("0000:3b:00.0 2 52:54:00:aa:bb:cc 4096\n", "t").is_err());
        assert!(parse_table("0000:3b:00.0 x 52:54:00:aa:bb:cc 1\n", "t").is_err());
    }
}
