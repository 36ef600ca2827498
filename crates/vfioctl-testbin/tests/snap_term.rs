//! What reaches a terminal: colour when it is wanted (the escape codes shown as `␛` in the
//! snapshots), none in a pipe or in JSON, and `groups` wrapped to the width the user has.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::shown::{host, plain, render};
use vfioctl_sim::topology::x86_desktop;

/// Runs the test binary on `root` with `line`, after `env` changes the environment.
fn run(root: &Path, line: &str, env: impl FnOnce(&mut Command) -> &mut Command) -> Output {
    let empty = root.join("empty-pci.ids");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vfioctl-testbin"));
    plain(&mut cmd);
    env(&mut cmd)
        .arg("--root")
        .arg(root)
        .arg("--pci-ids")
        .arg(empty)
        .args(line.split_whitespace())
        .output()
        .expect("run vfioctl")
}

/// The run as the snapshot shows it, each escape character as `␛`.
fn shown_coloured(root: &Path, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    let out = run(root, line, |c| c);
    render(&args, &out, &[(root, "[ROOT]")]).replace('\u{1b}', "␛")
}

fn has_escapes(out: &Output) -> bool {
    out.stdout.contains(&0x1b) || out.stderr.contains(&0x1b)
}

#[test]
fn forced_colour_marks_refusals_verdicts_and_headings() {
    let t = host(x86_desktop());
    for (name, line) in [
        (
            "colour_refused_bind",
            "--color always bind --dry-run 0000:05:00.0",
        ),
        (
            "colour_forced_bind",
            "--color always bind --dry-run --force enp3s0",
        ),
        (
            "colour_groups",
            "--color always groups 0000:01:00.0 00:1c.0",
        ),
        ("colour_doctor", "--color always doctor 0000:01:00.0"),
        ("colour_check", "--color always check 0000:01:00.0"),
    ] {
        insta::assert_snapshot!(name, shown_coloured(t.root(), line));
    }
}

#[test]
fn a_pipe_json_and_no_color_get_no_escape_codes() {
    let t = host(x86_desktop());
    let root = t.root();
    let lines = [
        "bind --dry-run 0000:05:00.0",
        "groups",
        "doctor 0000:01:00.0",
        "check 0000:01:00.0",
    ];
    for line in lines {
        // `plain` sets NO_COLOR; without it, a pipe is still not a terminal.
        let piped = run(root, line, |c| c.env_remove("NO_COLOR"));
        assert!(!has_escapes(&piped), "{line}: a pipe got colour");
        let forced = run(root, line, |c| {
            c.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1")
        });
        assert!(
            has_escapes(&forced),
            "{line}: CLICOLOR_FORCE=1 did not colour"
        );
        let no_color = run(root, &format!("{line} --color auto"), |c| {
            c.env("CLICOLOR_FORCE", "1")
        });
        assert!(
            !has_escapes(&no_color),
            "{line}: NO_COLOR did not win over CLICOLOR_FORCE"
        );
        let never = run(root, &format!("--color never {line}"), |c| {
            c.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1")
        });
        assert!(!has_escapes(&never), "{line}: --color never coloured");
        let json = run(root, &format!("--color always --json {line}"), |c| c);
        assert!(!has_escapes(&json), "{line}: --json was coloured");
        assert!(
            serde_json::from_slice::<serde_json::Value>(&json.stdout).is_ok(),
            "{line}: --json is not one JSON document"
        );
    }
}

#[test]
fn groups_wraps_to_the_width_asked_and_keeps_its_columns() {
    let t = host(x86_desktop());
    let root = t.root();
    let at = |line: &str, columns: Option<&str>| {
        let out = run(root, line, |c| match columns {
            Some(n) => c.env("COLUMNS", n),
            None => c,
        });
        assert_eq!(out.status.code(), Some(0), "{line}");
        String::from_utf8(out.stdout).unwrap()
    };
    insta::assert_snapshot!(
        "groups_width_60",
        at("groups --width 60 0000:01:00.0", None)
    );
    // COLUMNS is what --width defaults to; --width wins over it.
    assert_eq!(
        at("groups 0000:01:00.0", Some("60")),
        at("groups --width 60 0000:01:00.0", Some("120"))
    );
    // 0: one line per reason, as before wrapping.
    let unwrapped = at("groups --width 0", None);
    assert!(
        unwrapped
            .lines()
            .any(|l| l.starts_with("IOMMU group 1 (shared):") && l.ends_with("the same VM")),
        "{unwrapped}"
    );
    // No width known (a pipe, no COLUMNS): 80, as ls assumes. The member rows are a table, as
    // lspci's, and are not wrapped.
    let whole = at("groups", None);
    let long: Vec<&str> = whole
        .lines()
        .filter(|l| !l.starts_with("  0000:") && l.chars().count() > 80)
        .collect();
    assert!(long.is_empty(), "{long:#?}");
    // A group's rows line up with every other group's, filtered or not.
    let column = |text: &str, address: &str| {
        let row = format!("  {address}  ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap()
            .to_owned();
        line.find("Class").unwrap()
    };
    let one = at("groups 0000:05:00.0", None);
    assert_eq!(
        column(&whole, "0000:01:00.1"),
        column(&whole, "0000:05:00.0")
    );
    assert_eq!(column(&whole, "0000:05:00.0"), column(&one, "0000:05:00.0"));
}

#[test]
fn list_k_names_the_modules_that_could_take_a_device_back_and_v_shows_more() {
    let t = host(x86_desktop());
    let root = t.root();
    for (name, line) in [
        ("list_kernel", "list -k"),
        ("list_verbose", "list -v -s 0000:01:00.0 -s 0000:05:00.0"),
    ] {
        let args: Vec<&str> = line.split_whitespace().collect();
        insta::assert_snapshot!(
            name,
            render(&args, &run(root, line, |c| c), &[(root, "[ROOT]")])
        );
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&run(root, "--json list -k -s 0000:03:00.0", |c| c).stdout).unwrap();
    assert_eq!(
        doc["devices"][0]["kernel_modules"],
        serde_json::json!(["igb"])
    );
    // Without -k the field is not there: reading modules.alias is not free.
    let plain: serde_json::Value =
        serde_json::from_slice(&run(root, "--json list -s 0000:03:00.0", |c| c).stdout).unwrap();
    assert!(plain["devices"][0].get("kernel_modules").is_none());
}
