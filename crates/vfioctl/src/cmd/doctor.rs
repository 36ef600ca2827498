//! `doctor`: what will make passthrough fail on this host, or for the named devices, and what to
//! do about it. The host layer reads the facts, the core checks them, this module renders.

use serde::Serialize;

use vfioctl_core::PciAddress;
use vfioctl_core::doctor::{Finding, Severity, Verdict, run, verdicts};

use crate::cli::DoctorArgs;
use crate::cmd::inventory::JSON_VERSION;
use crate::context::Context;
use crate::error::CliError;
use crate::exit::Exit;
use crate::term::Tone;

/// The known-devices table vfioctl ships; `/etc/vfioctl/devices.toml` overrides and extends it.
pub(crate) const KNOWN_DEVICES: &str = include_str!("../../../../data/known-devices.toml");

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    verdicts: &'a [Verdict],
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `vfioctl doctor [DEVICE...]`.
pub(crate) fn doctor(ctx: &mut Context, args: &DoctorArgs) -> Result<Exit, CliError> {
    // Only what the checks read: the summary every command lists, and the power state and reset
    // methods of the functions a VM could get (several times fewer files than a full read).
    let inventory = ctx.inventory_at(vfioctl_host::read::Depth::Health)?;
    let mut named: Vec<PciAddress> = Vec::new();
    for text in &args.devices {
        let address = crate::cmd::select::resolve_for_reading(ctx, &inventory, text)?.address;
        if !named.contains(&address) {
            named.push(address);
        }
    }
    let mut facts = vfioctl_host::facts::gather(&ctx.root, &inventory, KNOWN_DEVICES)?;
    vfioctl_host::facts_dpaa2::gather(&ctx.root, ctx.restool.as_ref(), &mut facts)?;
    let findings = run(&facts, &inventory, &named);
    let verdicts = verdicts(&findings, &inventory, &named);
    let problems = findings.iter().any(Finding::is_problem);

    if ctx.json {
        ctx.json_document(&Doc {
            version: JSON_VERSION,
            findings: &findings,
            verdicts: &verdicts,
        })?;
    } else {
        render_text(ctx, &findings, &verdicts);
    }
    Ok(if problems {
        Exit::Problems
    } else {
        Exit::Success
    })
}

fn render_text(ctx: &mut Context, findings: &[Finding], verdicts: &[Verdict]) {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    for (severity, title, tone) in [
        (Severity::Error, "Errors", Tone::Refused),
        (Severity::Warning, "Warnings", Tone::Warning),
        (Severity::Info, "Info", Tone::Heading),
    ] {
        if severity == Severity::Info && ctx.quiet {
            continue;
        }
        let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
        if group.is_empty() {
            continue;
        }
        ctx.tone_line(Tone::Heading, &format!("{title}:"), "");
        for f in group {
            ctx.line_parts(&[
                (None, "  "),
                (Some(tone), &format!("{severity}[{}]:", f.id)),
                (None, &format!(" {}", f.message)),
            ]);
            if ctx.verbose > 0 {
                ctx.line(format!("    read: {}", f.path));
            }
            if !f.remedy.is_empty() {
                ctx.line(format!("    remedy: {}", f.remedy));
            }
        }
        ctx.line("");
    }
    let (errors, warnings, infos) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    if errors + warnings == 0 {
        ctx.tone_line(
            Tone::Good,
            "No problems found",
            &format!(" ({}).", plural(infos, "note", "notes")),
        );
    } else {
        let tone = if errors > 0 { Tone::Bad } else { Tone::Warning };
        ctx.tone_line(
            tone,
            &format!(
                "{}, {}, {}.",
                plural(errors, "error", "errors"),
                plural(warnings, "warning", "warnings"),
                plural(infos, "note", "notes")
            ),
            "",
        );
    }
    for v in verdicts {
        let tone = if v.can_go { Tone::Good } else { Tone::Bad };
        ctx.tone_line(tone, &v.to_string(), "");
    }
}
