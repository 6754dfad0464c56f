//! `virtpci assign FILE.xml|-`: print the domain with libvirt's PCI addresses filled in.

use std::io::{Read, Write};
use virtpci::{AssignOptions, Error, Result};

/// `virtpci assign` arguments.
#[derive(clap::Args)]
pub struct AssignArgs {
    /// The domain XML file, or - for standard input.
    file: String,
    /// Leave at least N free hotplug-capable places: empty pcie-root-ports on q35, free
    /// slots on buses with hotplug on pc (default: libvirt's one spare root port).
    #[arg(long, value_name = "N")]
    hotplug_ports: Option<u32>,
}

/// Read the domain from the file (`-` is standard input), assign, print the XML on standard
/// output and the warnings on standard error.
pub fn run(args: AssignArgs) -> Result<()> {
    let xml = read_input(&args.file)?;
    let options = AssignOptions {
        hotplug_ports: args.hotplug_ports,
    };
    let out = virtpci::assign_domain_xml_with(&xml, &options)?;
    for warning in &out.warnings {
        eprintln!("warning: {warning}");
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.xml.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::system("cannot write the result", &e))
}

fn read_input(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::system("cannot read the domain XML from standard input", &e))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| Error::system(format!("cannot read '{path}'"), &e))?;
    }
    Ok(text)
}
