//! Man pages and shell completions, generated from the same clap definitions as `--help`, so they
//! cannot drift from it.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::CliError;
use crate::exit::Exit;

fn io_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::new(
        Exit::Failed,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Writes `man/vfioctl.1`, one `man/vfioctl-<command>.1` per command, and bash, zsh and fish
/// completions under `out`.
pub fn generate(out: &Path) -> Result<(), CliError> {
    let man_dir = out.join("man");
    let completions = out.join("completions");
    for dir in [&man_dir, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    }
    let command = Cli::command();
    clap_mangen::generate_to(command.clone(), &man_dir).map_err(|e| io_error(&man_dir, &e))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, "vfioctl", &completions)
            .map_err(|e| io_error(&completions, &e))?;
    }
    Ok(())
}
