//! `virtpci generate-docs`: the man pages and the bash completion, generated from the clap
//! definitions so they never disagree with `--help`. `meson install` runs it (hidden from
//! `--help`: it is a build step, not a user command).

use clap::{Args, CommandFactory};
use std::path::{Path, PathBuf};
use virtpci::{Error, Result};

#[derive(Args)]
pub struct DocsArgs {
    /// Write virtpci.1 and one virtpci-SUBCOMMAND.1 per subcommand here.
    #[arg(long, value_name = "DIR")]
    pub man_dir: PathBuf,
    /// Write the bash completion here, as the file `virtpci`.
    #[arg(long, value_name = "DIR")]
    pub bash_completion_dir: Option<PathBuf>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::system(format!("Failed to create '{}'", dir.display()), &e))?;
    }
    std::fs::write(path, bytes)
        .map_err(|e| Error::system(format!("Failed to write '{}'", path.display()), &e))
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| Error::internal(format!("cannot render a man page: {e}")))?;
    Ok(page)
}

pub fn run(args: DocsArgs) -> Result<()> {
    let mut cmd = crate::Cli::command();
    cmd.build();
    write(&args.man_dir.join("virtpci.1"), &render(cmd.clone())?)?;
    let documented = |s: &&clap::Command| !s.is_hide_set() && s.get_name() != "help";
    for sub in cmd.get_subcommands().filter(documented) {
        // "virtpci-check(1)", titled as git titles its subcommands' pages.
        let name = format!("virtpci-{}", sub.get_name());
        let page = render(sub.clone().name(name.clone()).display_name(name.clone()))?;
        write(&args.man_dir.join(format!("{name}.1")), &page)?;
    }
    if let Some(dir) = &args.bash_completion_dir {
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "virtpci", &mut script);
        write(&dir.join("virtpci"), &script)?;
    }
    Ok(())
}
