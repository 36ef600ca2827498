//! `vfioctl-packaging copyright`: writes the Debian copyright file of the crates linked into
//! vfioctl for one target, from what Cargo resolves for that build (`packaging/build-deb.sh`
//! runs it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use serde::Deserialize;
use vfioctl_packaging::{Crate, Upstream, render};

/// Build-time tools for vfioctl's packages.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Print the machine-readable Debian copyright file for the package built from PACKAGE.
    Copyright {
        /// The Cargo package whose binary is shipped.
        #[arg(long, default_value = "vfioctl")]
        package: String,
        /// The Rust target triple the binary is built for (default: the host's).
        #[arg(long)]
        target: Option<String>,
        /// Build without the package's default features (as the package is built).
        #[arg(long)]
        no_default_features: bool,
        /// The directory holding the licence texts, one file per DEP-5 short name.
        #[arg(long, default_value = "packaging/licenses")]
        licenses: PathBuf,
        /// Files under other holders' copyright (JSON: files, copyright, license, comment).
        #[arg(long, default_value = "packaging/third-party.json")]
        third_party: PathBuf,
        /// The project's copyright line.
        #[arg(long, default_value = "2026 vfioctl developers")]
        copyright: String,
    },
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(default)]
    authors: Vec<String>,
    license: Option<String>,
    repository: Option<String>,
    source: Option<String>,
}

fn cargo(args: &[&str]) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("cargo printed non-UTF-8: {e}"))
}

/// The registry crates linked into the binary: `cargo tree` resolves the features and target of
/// this build; proc-macros and build scripts run at build time and are not linked.
fn linked(
    package: &str,
    target: Option<&str>,
    no_default: bool,
) -> Result<BTreeSet<(String, String)>, String> {
    let mut args = vec![
        "tree",
        "--locked",
        "-p",
        package,
        "-e",
        "normal,no-proc-macro",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    if no_default {
        args.push("--no-default-features");
    }
    let tree = cargo(&args)?;
    Ok(tree
        .lines()
        .filter(|line| !line.contains(" (/") && !line.trim().is_empty())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let version = words.next()?.strip_prefix('v')?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect())
}

fn run(cli: Cli) -> Result<String, String> {
    let Tool::Copyright {
        package,
        target,
        no_default_features,
        licenses,
        third_party,
        copyright,
    } = cli.command;
    let third_party = serde_json::from_str(
        &std::fs::read_to_string(&third_party)
            .map_err(|e| format!("cannot read {}: {e}", third_party.display()))?,
    )
    .map_err(|e| format!("{}: {e}", third_party.display()))?;
    let linked = linked(&package, target.as_deref(), no_default_features)?;
    let metadata: Metadata =
        serde_json::from_str(&cargo(&["metadata", "--locked", "--format-version", "1"])?)
            .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
    let own = metadata
        .packages
        .iter()
        .find(|p| p.name == package && p.source.is_none())
        .ok_or_else(|| format!("package {package} is not in this workspace"))?;
    let crates: Vec<Crate> = metadata
        .packages
        .iter()
        .filter(|p| p.source.is_some() && linked.contains(&(p.name.clone(), p.version.clone())))
        .map(|p| Crate {
            name: p.name.clone(),
            version: p.version.clone(),
            authors: p.authors.clone(),
            license: p.license.clone(),
            repository: p.repository.clone(),
        })
        .collect();
    let upstream = Upstream {
        name: package.clone(),
        copyright,
        license: own.license.clone().unwrap_or_default(),
        source: own.repository.clone(),
        third_party,
    };
    let read = |name: &str| std::fs::read_to_string(licenses.join(name)).ok();
    render(&upstream, &crates, &read).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vfioctl-packaging: {e}");
            ExitCode::FAILURE
        }
    }
}
