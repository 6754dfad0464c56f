//! `virtpci assign FILE.xml|-`: print the domain with libvirt's PCI addresses filled in.

use std::io::{Read, Write};
use virtpci::assign::{AssignHost, AssignOptions};
use virtpci::error::quote;
use virtpci::{Error, Result};

/// Read the domain from `path` (`-` is standard input), assign, print the XML on standard
/// output and the warnings on standard error. With `host`, pseries PCI hostdevs get their
/// isolation groups, and with `mirror_numa` pc/q35 ones mirror its NUMA nodes.
pub fn run(
    path: &str,
    options: AssignOptions,
    host: Option<&dyn AssignHost>,
    mirror_numa: bool,
) -> Result<()> {
    let xml = read_input(path)?;
    let out = virtpci::assign::assign_domain_xml_on_host(&xml, options, host, mirror_numa)?;
    for warning in &out.warnings {
        eprintln!("warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.xml.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::system("cannot write the result", &e))
}

/// `virtpci assign --explain`: each device's address and why, as text or JSON, for the
/// assignment `options` ask for. The strict function-0 rule, when asked for, fails as the
/// plain assignment would.
pub fn explain(
    path: &str,
    json: bool,
    options: AssignOptions,
    host: Option<&dyn AssignHost>,
    mirror_numa: bool,
) -> Result<()> {
    let xml = read_input(path)?;
    if options.strict_function0 {
        virtpci::assign::assign_domain_xml_on_host(&xml, options, host, mirror_numa)?;
    }
    let explanation = virtpci::assign::explain::explain_on_host(&xml, &options, host, mirror_numa)?;
    if json {
        println!("{}", explanation.to_json());
    } else {
        print!("{}", explanation.to_text());
    }
    Ok(())
}

pub fn read_input(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::system("cannot read the domain XML from standard input", &e))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| Error::system(format!("cannot read '{}'", quote(path)), &e))?;
    }
    Ok(text)
}

/// The emulator capabilities `--emulator-caps FILE` or `--emulator-caps-list a,b,c` give;
/// without either, the emulator of the libvirt level.
pub fn emulator_caps(
    file: Option<&std::path::Path>,
    list: Option<&str>,
) -> Result<virtpci::assign::EmulatorCaps> {
    use virtpci::assign::EmulatorCaps;
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::system(format!("cannot read '{}'", quote(&shown)), &e))?;
        return EmulatorCaps::from_capabilities_xml(&text)
            .map_err(|e| e.context(format!("in '{}'", quote(&shown))));
    }
    Ok(match list {
        Some(list) => EmulatorCaps::from_names(list.split(',').map(str::trim)),
        None => EmulatorCaps::default(),
    })
}
