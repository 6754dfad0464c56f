//! The `virtpci` command-line tool, built on the library's Rust API.

mod abi_diff;
mod assign;
mod groups;
mod host;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use virtpci::{PciAddress, Result};

#[derive(Parser)]
#[command(
    name = "virtpci",
    version,
    about = "Guest PCI topology and host PCI passthrough"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse PCI addresses (DDDD:BB:SS.F or BB:SS.F) and print them in canonical form.
    Address {
        /// The addresses to parse.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Assign guest PCI addresses to a domain as libvirt 9.0 does, and print the result.
    Assign {
        /// The domain XML file, or - for standard input.
        file: String,
    },
    /// List every guest-visible PCI change between two definitions of the same guest.
    AbiDiff(abi_diff::AbiDiffArgs),
    /// List the host's IOMMU groups with their devices (address, class, ids, driver).
    Groups(groups::GroupsArgs),
    /// Record a host's PCI topology as JSON, or build a sysfs-shaped tree from such a record.
    Host(host::HostArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Address { addresses } => {
            for text in addresses {
                let addr = PciAddress::parse(&text)?;
                println!(
                    "{addr}  domain=0x{:04x} bus=0x{:02x} slot=0x{:02x} function=0x{:x}",
                    addr.domain, addr.bus, addr.slot, addr.function
                );
            }
            Ok(())
        }
        Command::Assign { file } => assign::run(&file),
        Command::AbiDiff(args) => abi_diff::run(args),
        Command::Groups(args) => groups::run(args),
        Command::Host(args) => host::run(args),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
