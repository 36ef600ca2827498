//! Man pages and shell completions, generated from the same clap definitions as `--help`, so they
//! cannot drift from it.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

use crate::cli::Cli;
use crate::cmd::manpage;
use crate::error::CliError;
use crate::exit::Exit;

fn io_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::new(
        Exit::Failed,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Every man page: (file name, roff text), `vfioctl.1` and one `vfioctl-<command>.1` per
/// visible command, each ending with EXIT STATUS, FILES, EXAMPLES and SEE ALSO.
pub(crate) fn man_pages() -> Vec<(String, String)> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect(&command, None, &mut pages);
    pages
}

fn page_name(command: &clap::Command) -> String {
    command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned()
}

fn collect(command: &clap::Command, parent: Option<&str>, pages: &mut Vec<(String, String)>) {
    let name = page_name(command);
    let children: Vec<&clap::Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .collect();
    let mut related: Vec<String> = parent.map(|p| format!("{p}(1)")).into_iter().collect();
    related.extend(children.iter().map(|c| format!("{}(1)", page_name(c))));
    // The exit-code table is clap's after-help; here it is EXIT STATUS instead of EXTRA.
    let man = Man::new(
        command
            .clone()
            .after_help(None::<&str>)
            .after_long_help(None::<&str>),
    )
    .source(format!("vfioctl {}", env!("CARGO_PKG_VERSION")))
    .manual("vfioctl manual");
    let mut roff = roff::Roff::new();
    manpage::render(&mut roff, &name, &related);
    let mut text = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render(&mut text);
    let mut text = String::from_utf8_lossy(&text).into_owned();
    // clap_mangen ends with VERSION (and AUTHORS): the extra sections go before them.
    let extra = roff.to_roff();
    match text.find(".SH VERSION") {
        Some(at) => text.insert_str(at, &extra),
        None => text.push_str(&extra),
    }
    pages.push((format!("{name}.1"), text));
    for child in children {
        collect(child, Some(&name), pages);
    }
}

/// Writes `man/vfioctl.1`, one `man/vfioctl-<command>.1` per command, and bash, zsh and fish
/// completions under `out`.
pub(crate) fn generate(out: &Path) -> Result<(), CliError> {
    let man_dir = out.join("man");
    let completions = out.join("completions");
    for dir in [&man_dir, &completions] {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    }
    for (file, text) in man_pages() {
        let path = man_dir.join(file);
        std::fs::write(&path, text).map_err(|e| io_error(&path, &e))?;
    }
    let command = Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut command = command.clone();
        clap_complete::generate_to(shell, &mut command, "vfioctl", &completions)
            .map_err(|e| io_error(&completions, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_stands_alone() {
        let pages = man_pages();
        assert!(pages.len() > 15, "{}", pages.len());
        for (file, text) in &pages {
            for section in [
                ".SH \"EXIT STATUS\"",
                ".SH \"SEE ALSO\"",
                ".SH EXAMPLES",
                ".SH FILES",
            ] {
                assert!(text.contains(section), "{file} lacks {section}");
            }
            assert!(!text.contains(".SH EXTRA"), "{file} still has EXTRA");
            assert!(!text.contains("README"), "{file} refers to the README");
        }
    }

    #[test]
    fn exit_status_lists_every_code() {
        let codes: Vec<&str> = manpage::exit_codes().iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, ["0", "1", "2", "3", "4", "5"]);
    }

    #[test]
    fn bind_page() {
        let pages = man_pages();
        let (_, bind) = pages
            .iter()
            .find(|(f, _)| f == "vfioctl-bind.1")
            .expect("a bind page");
        insta::assert_snapshot!(bind);
    }
}
