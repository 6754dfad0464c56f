//! The `virtpci` command-line tool, built on the library's Rust API.

mod abi_diff;
mod assign;
mod check;
mod docs;
mod groups;
mod host;
mod nodedev;
mod outcome;
mod prepare;
mod status;
mod target;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use virtpci::{PciAddress, Result};

#[derive(Parser)]
#[command(
    name = "virtpci",
    version,
    about = "Guest PCI topology and host PCI passthrough",
    after_help = "Examples:\n  virtpci assign --explain examples/q35-guest.xml\n  virtpci groups\n  virtpci check --driver QEMU dom.xml\n  virtpci status\n\nEach command's --help has its own examples; `man virtpci-COMMAND` after meson install."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse PCI addresses (DDDD:BB:SS.F or BB:SS.F) and print them in canonical form.
    #[command(after_help = "Examples:\n  virtpci address 0a:1f.7 0000:00:02.0")]
    Address {
        /// The addresses to parse.
        #[arg(required = true)]
        addresses: Vec<String>,
    },
    /// Assign guest PCI addresses to a domain as libvirt 9.0 does, and print the result.
    #[command(
        after_help = "Examples:\n  virtpci assign examples/q35-guest.xml\n  virtpci assign --explain --json --libvirt-version 11.3 dom.xml"
    )]
    Assign {
        /// The domain XML file, or - for standard input.
        file: String,
        /// Instead of the XML, print for each device the address it got and why, each
        /// controller that was added and why, and the warnings (a slot used without function 0).
        #[arg(long)]
        explain: bool,
        /// With --explain: print JSON.
        #[arg(long, requires = "explain")]
        json: bool,
        /// A slot used without function 0 is an error on x86 machine types (pSeries stays
        /// accepted).
        #[arg(long)]
        strict_function0: bool,
        /// Leave at least N free hotplug-capable places: empty pcie-root-ports on q35, free
        /// slots on buses with hotplug on pc (default: libvirt's one spare root port).
        #[arg(long, value_name = "N")]
        hotplug_ports: Option<u32>,
        /// When libvirt's placement runs out of room, keep placing: PCIe switches, bridges
        /// behind bridges, hotplug='no' devices packed into multifunction slots.
        #[arg(long)]
        extend: bool,
        /// The libvirt release whose layout to give: 9.0 (Debian 12, QEMU 7.2; the
        /// default) or 11.3 (Debian 13, QEMU 10.0).
        #[arg(long, value_name = "VERSION", default_value = "9.0")]
        libvirt_version: String,
        /// Put each PCI hostdev behind an expander bus on the guest NUMA cell of its host
        /// device's NUMA node (through <numatune> memnodes, else the same number).
        #[arg(long)]
        mirror_host_numa: bool,
        /// Read the host at this sysfs root (default /sys with --mirror-host-numa): on pseries,
        /// PCI hostdevs get libvirt's isolation groups from its IOMMU groups (one PHB per
        /// group, none on the default PHB); with --mirror-host-numa, its NUMA nodes.
        #[arg(long, value_name = "ROOT")]
        sysfs: Option<std::path::PathBuf>,
        /// The emulator's capabilities, from libvirt's QEMU capabilities XML (<qemuCaps>
        /// with <flag name='...'/>, as in its tests' caps_*.xml); default: the emulator of
        /// the libvirt level.
        #[arg(long, value_name = "FILE", conflicts_with = "emulator_caps_list")]
        emulator_caps: Option<std::path::PathBuf>,
        /// The emulator's capabilities as libvirt names them, comma-separated
        /// (pcie-root-port,ioh3420,...; names virtpci does not read are ignored; an empty
        /// list is an emulator without any).
        #[arg(long, value_name = "NAMES")]
        emulator_caps_list: Option<String>,
    },
    /// List every guest-visible PCI change between two definitions of the same guest.
    #[command(after_help = "Examples:\n  virtpci abi-diff old.xml new.xml --json")]
    AbiDiff(abi_diff::AbiDiffArgs),
    /// List the host's IOMMU groups with their devices (address, class, ids, driver).
    #[command(
        after_help = "Examples:\n  virtpci groups --group 1\n  virtpci groups --device 0000:01:00.0 --json\n  virtpci groups --sysfs /tmp/host    (a tree made by `virtpci host materialize`)"
    )]
    Groups(groups::GroupsArgs),
    /// Record a host's PCI topology as JSON, or build a sysfs-shaped tree from such a record.
    #[command(
        after_help = "Examples:\n  virtpci host snapshot > host.json\n  virtpci host materialize tests/fixtures/hosts/workstation.json /tmp/host\n  virtpci host show 0000:01:00.0 --sysfs /tmp/host --json"
    )]
    Host(host::HostArgs),
    /// Dry run of prepare for a domain: per PCI hostdev its IOMMU group, what would be detached
    /// and reset, and every violation; exits 1 with the message when prepare would fail.
    #[command(
        after_help = "Examples:\n  virtpci check --simulate --sysfs /tmp/host examples/gpu.xml\n  virtpci check --fix --simulate --sysfs /tmp/host examples/gpu-partial.xml > gpu.xml"
    )]
    Check(check::CheckArgs),
    /// Detach a domain's PCI hostdevs from the host and book them to it (real or --simulate).
    #[command(
        after_help = "Examples:\n  virtpci prepare --driver QEMU dom.xml\n  virtpci prepare --simulate --sysfs /tmp/host --json examples/gpu.xml"
    )]
    Prepare(prepare::PrepareArgs),
    /// Give a domain's PCI hostdevs back to their original drivers (real or --simulate).
    #[command(
        after_help = "Examples:\n  virtpci reattach --driver QEMU dom.xml\n  virtpci reattach --all    (after a crash: every device virtpci holds)"
    )]
    Reattach(prepare::ReattachArgs),
    /// Every device the hostdev manager holds: user, stub, interrupted, current driver; and
    /// the devices on a vfio driver it does not hold.
    #[command(
        after_help = "Examples:\n  virtpci status\n  virtpci status --simulate --sysfs /tmp/host --json"
    )]
    Status(status::StatusArgs),
    /// Detach one device from its host driver onto vfio-pci, held unused (virsh
    /// nodedev-detach).
    #[command(
        after_help = "Examples:\n  virtpci nodedev-detach 0000:03:00.0\n  virtpci nodedev-detach --stub mlx5_vfio_pci 0000:d8:00.1"
    )]
    NodedevDetach(nodedev::DetachArgs),
    /// Give one device no domain uses back to its host driver (virsh nodedev-reattach).
    #[command(after_help = "Examples:\n  virtpci nodedev-reattach 0000:03:00.0")]
    NodedevReattach(nodedev::DeviceArgs),
    /// Reset one device no domain uses, by libvirt's rules (virsh nodedev-reset).
    #[command(after_help = "Examples:\n  virtpci nodedev-reset 0000:03:00.0")]
    NodedevReset(nodedev::DeviceArgs),
    /// Book a running domain's PCI hostdevs as they are (after the state directory was lost).
    #[command(after_help = "Examples:\n  virtpci update-active --driver QEMU running-dom.xml")]
    UpdateActive(nodedev::UpdateActiveArgs),
    /// Write the man pages and the bash completion (a build step of meson install).
    #[command(hide = true)]
    GenerateDocs(docs::DocsArgs),
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
        Command::Assign {
            file,
            explain,
            json,
            strict_function0,
            hotplug_ports,
            extend,
            libvirt_version,
            mirror_host_numa,
            sysfs,
            emulator_caps,
            emulator_caps_list,
        } => {
            let options = virtpci::assign::AssignOptions {
                strict_function0,
                hotplug_ports,
                extend,
                libvirt: virtpci::assign::LibvirtLevel::parse(&libvirt_version)?,
                emulator: assign::emulator_caps(
                    emulator_caps.as_deref(),
                    emulator_caps_list.as_deref(),
                )?,
            };
            let host = if mirror_host_numa || sysfs.is_some() {
                Some(virtpci::Host::open(sysfs.as_deref())?)
            } else {
                None
            };
            let host = host.as_ref().map(|h| h as &dyn virtpci::assign::AssignHost);
            if explain {
                assign::explain(&file, json, options, host, mirror_host_numa)
            } else {
                assign::run(&file, options, host, mirror_host_numa)
            }
        }
        Command::AbiDiff(args) => abi_diff::run(args),
        Command::Groups(args) => groups::run(args),
        Command::Host(args) => host::run(args),
        Command::Check(args) => match check::run(args)? {
            None => Ok(()),
            Some(violation) => Err(violation),
        },
        Command::Prepare(args) => prepare::run_prepare(args),
        Command::Reattach(args) => prepare::run_reattach(args),
        Command::Status(args) => status::run(args),
        Command::NodedevDetach(args) => nodedev::run_detach(args),
        Command::NodedevReattach(args) => nodedev::run_reattach(args),
        Command::NodedevReset(args) => nodedev::run_reset(args),
        Command::UpdateActive(args) => nodedev::run_update_active(args),
        Command::GenerateDocs(args) => docs::run(args),
    }
}

/// A library error in the CLI's words: the options that override a refusal are named as
/// the CLI spells them, and a device an unfinished operation left behind names the command
/// that recovers it.
pub fn cli_words(err: virtpci::Error) -> virtpci::Error {
    use virtpci::hostdev::{book::INTERRUPTED_NOTE, critical, plan};
    let err = critical::name_force_option(err, "--force");
    let err = plan::name_legacy_group_option(err, "--legacy-group-check");
    if err.message.contains(INTERRUPTED_NOTE) {
        let detail = format!(
            "{}; `virtpci reattach --driver DRIVER DOMAIN.xml` or `virtpci reattach --all` recovers it",
            err.detail()
        );
        return virtpci::Error::new(err.code, detail);
    }
    err
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err = cli_words(err);
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_command_has_examples_in_its_help() {
        let cmd = Cli::command();
        assert!(cmd.get_after_help().is_some());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.starts_with("Examples:\n  virtpci "),
                "{}",
                sub.get_name()
            );
        }
    }
}
