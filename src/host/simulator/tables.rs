//! The simulator's tables in the tree: id rules (`DRIVER VENDOR DEVICE` per line) for native
//! drivers and dynamic ids, and the reading of any table file.

use super::*;

/// "Driver `driver` claims devices `vendor:device`".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdRule {
    pub driver: String,
    pub vendor: u16,
    pub device: u16,
}
pub(super) fn parse_rules(text: &str, what: &str) -> Result<BTreeSet<IdRule>> {
    let mut rules = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let rule = match fields.as_slice() {
            [d, v, p] if is_valid_driver_name(d) => u16::from_str_radix(v, 16)
                .ok()
                .zip(u16::from_str_radix(p, 16).ok())
                .map(|(vendor, device)| IdRule {
                    driver: d.to_string(),
                    vendor,
                    device,
                }),
            _ => None,
        };
        match rule {
            Some(r) => {
                rules.insert(r);
            }
            None => {
                return Err(Error::internal(format!(
                    "{what}, line {}: expected 'DRIVER VENDOR DEVICE', found '{}'",
                    i + 1,
                    line.escape_debug()
                )))
            }
        }
    }
    Ok(rules)
}

pub(super) fn format_rules(rules: &BTreeSet<IdRule>, header: &str) -> String {
    let mut out = format!("# {header}\n# DRIVER VENDOR DEVICE\n");
    for r in rules {
        out.push_str(&format!("{} {:04x} {:04x}\n", r.driver, r.vendor, r.device));
    }
    out
}

/// Parse `"vvvv dddd ..."` as written to new_id/remove_id.
pub(super) fn parse_id_pair(data: &[u8]) -> io::Result<(u16, u16)> {
    let text = std::str::from_utf8(data).map_err(|_| errno(libc::EINVAL))?;
    let mut fields = text.split_whitespace();
    let mut next = || -> io::Result<u16> {
        let f = fields.next().ok_or_else(|| errno(libc::EINVAL))?;
        let f = f.strip_prefix("0x").unwrap_or(f);
        u16::from_str_radix(f, 16).map_err(|_| errno(libc::EINVAL))
    };
    Ok((next()?, next()?))
}

impl SimulatedKernel {
    pub(super) fn read_rules(&self, rel: &str) -> Result<BTreeSet<IdRule>> {
        read_table(&self.root, rel, parse_rules)
    }

    pub(super) fn store_rules(
        &self,
        rel: &str,
        rules: &BTreeSet<IdRule>,
        header: &str,
    ) -> Result<()> {
        let path = self.root.join(rel);
        let tmp = self.root.join(format!("{rel}.tmp"));
        let text = format_rules(rules, header);
        let io = || -> io::Result<()> {
            let mut f = open_regular(&tmp, Access::CreateTruncate)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            self.step(&format!("write {rel}.tmp"));
            fs::rename(&tmp, &path)?;
            self.step(&format!("rename {rel}.tmp {rel}"));
            Ok(())
        };
        io().map_err(|e| Error::system(format!("Failed to write '{}'", path.display()), &e))
    }
}

/// One of the simulator's tables, `rel` under `root`, parsed; empty when the file is absent.
pub(super) fn read_table<T: Default>(
    root: &Path,
    rel: &str,
    parse: fn(&str, &str) -> Result<T>,
) -> Result<T> {
    let path = root.join(rel);
    match read_regular(&path) {
        Ok(Some(text)) => parse(&text, &path.display().to_string()),
        Ok(None) => Ok(T::default()),
        Err(e) => Err(Error::system(
            format!("Failed to read '{}'", path.display()),
            &e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_format() {
        let text = "# comment\ne1000e 8086 10d3\n\nsnd_hda_intel 10de 228b # audio\n";
        let rules = parse_rules(text, "x").unwrap();
        assert_eq!(rules.len(), 2);
        let again = parse_rules(&format_rules(&rules, "h"), "x").unwrap();
        assert_eq!(rules, again);
        assert!(parse_rules("e1000e 8086\n", "f")
            .unwrap_err()
            .message
            .contains("line 1"));
        assert!(parse_rules("../x 8086 10d3\n", "f").is_err());
    }

    #[test]
    fn id_pairs() {
        assert_eq!(parse_id_pair(b"8086 10d3\n").unwrap(), (0x8086, 0x10d3));
        assert!(parse_id_pair(b"8086").is_err());
        assert!(parse_id_pair(b"zz 10d3").is_err());
    }
}
