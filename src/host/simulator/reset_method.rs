//! `reset_method` in the simulated kernel: the file lists the methods the device offers; a
//! write of some of them, in any order, keeps only those; `default` brings back what the
//! device offered first (kept in `.virtpci-sim/reset-methods`, `DEVICE METHOD...` per line,
//! written on the first change). A method the device does not offer: `EINVAL`.

use super::*;

/// The methods each device offered before its first change.
pub const RESET_METHODS_FILE: &str = ".virtpci-sim/reset-methods";
const RESET_METHODS_TEMP: &str = ".virtpci-sim/reset-methods.tmp";
const RESET_METHOD_TEMP: &str = ".virtpci-sim/reset_method.tmp";

impl SimulatedKernel {
    fn offered_methods(&self) -> io::Result<BTreeMap<PciAddress, Vec<String>>> {
        let text = read_regular(&self.root.join(RESET_METHODS_FILE))?.unwrap_or_default();
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let Some(addr) = words.next().and_then(parse_device_name) {
                out.insert(addr, words.map(str::to_string).collect());
            }
        }
        Ok(out)
    }

    pub(super) fn set_reset_method(
        &self,
        addr: &PciAddress,
        dir: &str,
        data: &[u8],
    ) -> io::Result<()> {
        let rel = format!("{dir}/reset_method");
        let now = read_regular(&self.root.join(&rel))?.ok_or_else(|| errno(libc::ENOENT))?;
        let mut table = self.offered_methods()?;
        let offered = match table.get(addr) {
            Some(o) => o.clone(),
            None => {
                let o: Vec<String> = now.split_whitespace().map(str::to_string).collect();
                table.insert(*addr, o.clone());
                let text: String = table
                    .iter()
                    .map(|(a, m)| format!("{a} {}\n", m.join(" ")))
                    .collect();
                self.replace_file(RESET_METHODS_TEMP, RESET_METHODS_FILE, text.as_bytes())?;
                o
            }
        };
        let text = std::str::from_utf8(data).map_err(|_| errno(libc::EINVAL))?;
        let wanted: Vec<&str> = text.split_whitespace().collect();
        let new = if wanted == ["default"] {
            offered
        } else {
            if wanted.is_empty() || wanted.iter().any(|w| !offered.iter().any(|o| o == w)) {
                return Err(errno(libc::EINVAL));
            }
            wanted.iter().map(|w| w.to_string()).collect()
        };
        self.replace_file(
            RESET_METHOD_TEMP,
            &rel,
            format!("{}\n", new.join(" ")).as_bytes(),
        )
    }
}
