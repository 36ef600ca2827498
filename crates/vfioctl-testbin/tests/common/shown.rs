//! What a person sees of one run, for snapshots: the command line, the exit status, standard
//! output and standard error, with temporary paths shown as placeholders.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use vfioctl_sim::{SimBuilder, SimTree};

/// Builds a simulated host for a snapshot. The umask is pinned first: file modes in the tree
/// (`/dev/vfio/vfio`) are what `doctor` reports, and they must not depend on the shell that ran
/// the tests.
pub(crate) fn host(builder: SimBuilder) -> SimTree {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    super::tree(builder)
}

/// Runs vfioctl on `root` with the words of `line` as arguments (names from an empty pci.ids)
/// and renders the run.
pub(crate) fn shown(root: &Path, line: &str) -> String {
    shown_with_input(root, line, "")
}

/// [`shown`], with `input` on standard input (as libvirt gives its hook the domain XML).
pub(crate) fn shown_with_input(root: &Path, line: &str, input: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let empty = root.join("empty-pci.ids");
    if !empty.exists() {
        std::fs::write(&empty, "").expect("empty pci.ids");
    }
    let mut child = plain(&mut Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin")))
        .arg("--root")
        .arg(root)
        .arg("--pci-ids")
        .arg(empty)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vfioctl");
    // Small enough for the pipe's buffer, so writing it all first cannot block on the child.
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait for vfioctl");
    render(&args, &output, &[(root, "[ROOT]")])
}

/// Leaves out the environment that changes how clap and vfioctl print (colours, width).
pub(crate) fn plain(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1")
}

/// Renders one run as the person at the terminal saw it, each path in `redact` replaced by its
/// placeholder (longest first, so a path inside another is not half-replaced).
pub(crate) fn render(args: &[&str], output: &Output, redact: &[(&Path, &str)]) -> String {
    let mut redact: Vec<(String, &str)> = redact
        .iter()
        .map(|(path, name)| (path.display().to_string(), *name))
        .collect();
    redact.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let clean = |bytes: &[u8]| {
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        for (path, name) in &redact {
            text = text.replace(path.as_str(), name);
        }
        text
    };
    let status = match output.status.code() {
        Some(code) => format!("exit {code}"),
        None => format!("killed: {}", output.status),
    };
    format!(
        "$ vfioctl {}\n[{status}]\n--- stdout\n{}--- stderr\n{}",
        clean(args.join(" ").as_bytes()),
        clean(&output.stdout),
        clean(&output.stderr),
    )
}

/// Runs `cmd` (a vfioctl with its root and environment set) with the words of `line` (names from
/// an empty pci.ids) and renders the run, the tree and the stand-in QEMU's directory shown as
/// placeholders.
pub(crate) fn shown_vm(cmd: &mut Command, root: &Path, qemu_dir: &Path, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let empty = root.join("empty-pci.ids");
    std::fs::write(&empty, "").expect("empty pci.ids");
    let output = plain(cmd)
        .arg("--pci-ids")
        .arg(&empty)
        .args(&args)
        .output()
        .expect("run vfioctl");
    render(
        &args,
        &output,
        &[(root, "[ROOT]"), (qemu_dir, "[QEMU_DIR]")],
    )
}
