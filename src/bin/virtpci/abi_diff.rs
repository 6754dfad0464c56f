//! `virtpci abi-diff OLD.xml NEW.xml [--json] [--strict] [--as-given]`: every guest-visible
//! PCI change between two definitions of the same guest.

use crate::assign::read_input;
use clap::Args;
use virtpci::abi::{check_abi_stability, AbiOptions, LayoutMode};
use virtpci::Result;

#[derive(Args)]
pub struct AbiDiffArgs {
    /// The old definition (domain XML file, or - for standard input).
    old: String,
    /// The new definition.
    new: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Fail (exit status 1) when there is any guest-visible change.
    #[arg(long)]
    strict: bool,
    /// Compare the definitions as written, without completing them by address assignment
    /// first (by default both are assigned, so automatic addresses and multifunction bits
    /// count as the guest will see them).
    #[arg(long)]
    as_given: bool,
}

/// Print the report on standard output; with `--strict`, changes make it an error.
pub fn run(args: AbiDiffArgs) -> Result<()> {
    let old = read_input(&args.old)?;
    let new = read_input(&args.new)?;
    let options = AbiOptions {
        mode: if args.as_given {
            LayoutMode::AsGiven
        } else {
            LayoutMode::Effective
        },
    };
    let report = check_abi_stability(&old, &new, options)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if args.strict {
        if let Some(err) = report.strict_error() {
            return Err(err);
        }
    }
    Ok(())
}
