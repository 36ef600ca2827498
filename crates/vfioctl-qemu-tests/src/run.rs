//! Booting: one QEMU per prepared variant, at most `jobs` at once, and what its serial console
//! says: the sentinel line, the measured facts and the group layout; meanwhile it runs the QMP
//! commands the guest asks for ([`crate::monitor`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::matrix::Variant;
use crate::monitor::{Monitor, qmp_args};
use crate::prepare::PreparedCase;
use crate::report::group_layout;
use crate::{FACT, HarnessError, INIT_MARKER, Result, SENTINEL, err, io_err};

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest printed `VFIOCTL-CASE-RESULT: PASS`.
    Pass,
    /// The guest printed `FAIL <reason>`, or the VM ended without a sentinel.
    Fail(String),
    /// The guest printed `SKIP <reason>`: the vfioctl under test lacks a subcommand the case needs.
    /// The checks before that point passed.
    Skip(String),
    /// The VM was killed at the time limit.
    Timeout,
}

impl Outcome {
    /// True for [`Outcome::Pass`].
    pub fn passed(&self) -> bool {
        *self == Outcome::Pass
    }

    /// Whether this outcome fails the run: anything but a pass, except a skip unless `strict`.
    pub fn fails_run(&self, strict: bool) -> bool {
        match self {
            Outcome::Pass => false,
            Outcome::Skip(_) => strict,
            Outcome::Fail(_) | Outcome::Timeout => true,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("PASS"),
            Outcome::Fail(reason) => write!(f, "FAIL {reason}"),
            Outcome::Skip(reason) => write!(f, "SKIP {reason}"),
            Outcome::Timeout => f.write_str("TIMEOUT"),
        }
    }
}

/// Reads the result from a serial log: the last sentinel line wins.
pub fn parse_sentinel(log: &str) -> Option<Outcome> {
    log.lines().rev().find_map(|line| {
        let rest = line[line.find(SENTINEL)? + SENTINEL.len()..].trim();
        Some(if rest == "PASS" {
            Outcome::Pass
        } else if let Some(reason) = rest.strip_prefix("SKIP") {
            Outcome::Skip(reason.trim().to_owned())
        } else {
            Outcome::Fail(rest.strip_prefix("FAIL").unwrap_or(rest).trim().to_owned())
        })
    })
}

/// The facts a guest printed (`VFIOCTL-FACT: key=value`), in order; a later value of a key
/// replaces the earlier one.
pub fn parse_facts(log: &str) -> BTreeMap<String, String> {
    log.lines()
        .filter_map(|line| {
            let rest = line[line.find(FACT)? + FACT.len()..].trim();
            let (k, v) = rest.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// The prefix of `vfioctl-guest-check predict-match`'s failure line.
const PREDICT_DIFF: &str = "CHECK FAILED: predicted groups differ from the kernel's: ";

/// The difference `predict-match` printed, if any (the last one).
pub fn parse_predict_diff(log: &str) -> Option<String> {
    log.lines().rev().find_map(|line| {
        let rest = &line[line.find(PREDICT_DIFF)? + PREDICT_DIFF.len()..];
        Some(rest.trim().to_owned())
    })
}

/// One finished VM.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The variant.
    pub variant: Variant,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall clock, QEMU start to exit (both boots when it was retried).
    pub seconds: f64,
    /// The serial log.
    pub log: PathBuf,
    /// What the guest measured (`VFIOCTL-FACT:` lines).
    pub facts: BTreeMap<String, String>,
    /// What `gc predict-match` found when `groups --predict` formed other groups than the
    /// kernel: the groups only the kernel and only the prediction formed.
    pub predict_diff: Option<String>,
    /// The IOMMU groups `/init` listed before the case ran ([`group_layout`]); `None` when the
    /// guest never got that far.
    pub layout: Option<String>,
}

/// Boots one prepared case and waits for it, at most its `timeout`. A VM that dies before `/init`
/// runs (a TCG timing panic under host load, say) is booted once more; the first log is kept as
/// `serial.log.1`.
pub fn run_case(p: &PreparedCase) -> Result<CaseReport> {
    let log = p.dir.join("serial.log");
    let (mut outcome, mut seconds, mut text) = boot_once(p, p.timeout)?;
    if !outcome.passed() && !text.contains(INIT_MARKER) {
        let first = p.dir.join("serial.log.1");
        let _ = fs::rename(&log, &first);
        eprintln!(
            "[qemu-tests] {}: guest never reached /init ({outcome}); booting once more",
            p.variant.id()
        );
        let (o, s, t) = boot_once(p, p.timeout)?;
        text = t;
        outcome = match o {
            Outcome::Pass => Outcome::Pass,
            other => Outcome::Fail(format!(
                "{other} (after a retry; first boot: see serial.log.1)"
            )),
        };
        seconds += s;
    }
    Ok(CaseReport {
        variant: p.variant.clone(),
        outcome,
        seconds,
        log,
        facts: parse_facts(&text),
        predict_diff: parse_predict_diff(&text),
        layout: group_layout(&text),
    })
}

fn boot_once(p: &PreparedCase, timeout: Duration) -> Result<(Outcome, f64, String)> {
    let log = p.dir.join("serial.log");
    let errlog = p.dir.join("qemu.err");
    let _ = fs::remove_file(&log);
    let err_file = fs::File::create(&errlog).map_err(|e| io_err("create", &errlog, &e))?;
    let Some((program, args)) = p.argv.split_first() else {
        return err("empty QEMU command line");
    };
    let socket = p.dir.join("qmp.sock");
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(p.dir.join("qmp.log"));
    let mut monitor = Monitor::new(socket.clone(), p.dir.join("qmp.log"));
    let start = Instant::now();
    let mut child = Command::new(program)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .args(qmp_args(&socket))
        .args(["-display", "none", "-monitor", "none", "-serial"])
        .arg(format!("file:{}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .spawn()
        .map_err(|e| HarnessError(format!("failed to start {program}: {e}")))?;
    let timed_out = loop {
        match child.try_wait() {
            Ok(Some(_)) => break false,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            Ok(None) => {
                if let Ok(serial) = fs::read(&log) {
                    monitor.follow(&serial);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return err(format!("failed to wait for QEMU: {e}")),
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let _ = fs::remove_file(&socket);
    let text = fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let outcome = match parse_sentinel(&text) {
        Some(o) => o,
        None if timed_out => Outcome::Timeout,
        None => Outcome::Fail(no_sentinel_reason(
            &text,
            &fs::read_to_string(&errlog).unwrap_or_default(),
        )),
    };
    Ok((outcome, seconds, text))
}

/// Why a VM ended without a sentinel: a kernel panic line, else QEMU's last error.
fn no_sentinel_reason(serial: &str, qemu_err: &str) -> String {
    if let Some(panic) = serial.lines().find(|l| l.contains("Kernel panic")) {
        let msg = panic[panic.find("Kernel panic").unwrap_or(0)..].trim();
        return format!("no sentinel: {msg}");
    }
    match qemu_err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.contains("warning:"))
    {
        Some(line) => format!("no sentinel; qemu: {}", line.trim()),
        None => "no sentinel in serial log".to_owned(),
    }
}

/// Boots all prepared cases, at most `jobs` at once; reports come back in input order. The
/// longest case (a nested QEMU) starts first, so the short ones fill the other slot meanwhile;
/// the cases that time something ([`crate::Case::alone`]) boot last, one at a time.
pub fn run_cases(prepared: &[PreparedCase], jobs: usize) -> Vec<Result<CaseReport>> {
    let results: Mutex<Vec<Option<Result<CaseReport>>>> =
        Mutex::new(prepared.iter().map(|_| None).collect());
    let (alone, shared): (Vec<usize>, Vec<usize>) =
        (0..prepared.len()).partition(|&i| prepared[i].case().alone);
    let mut shared = shared;
    shared.sort_by_key(|&i| !prepared[i].case().nested_qemu);
    run_queue(prepared, shared, jobs, &results);
    run_queue(prepared, alone, 1, &results);
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.unwrap_or_else(|| err("case was not run")))
        .collect()
}

/// Boots the cases of `order`, at most `jobs` at once, into their places in `results`.
fn run_queue(
    prepared: &[PreparedCase],
    order: Vec<usize>,
    jobs: usize,
    results: &Mutex<Vec<Option<Result<CaseReport>>>>,
) {
    let queue: Mutex<VecDeque<usize>> = Mutex::new(order.into());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                    let Some(i) = next else { break };
                    let report = run_case(&prepared[i]);
                    if let Ok(r) = &report {
                        eprintln!(
                            "[qemu-tests] {:<50} {} ({:.1} s)",
                            r.variant.id(),
                            r.outcome,
                            r.seconds
                        );
                    }
                    if let Ok(mut res) = results.lock() {
                        res[i] = Some(report);
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_sentinel() {
        let log = "noise\r\nVFIOCTL-CASE-RESULT: FAIL early\nmore\n\u{1b}[0mVFIOCTL-CASE-RESULT: PASS\r\n";
        assert_eq!(parse_sentinel(log), Some(Outcome::Pass));
        let log = "VFIOCTL-CASE-RESULT: FAIL bind of 0000:03:00.0 left e1000e\n";
        assert_eq!(
            parse_sentinel(log),
            Some(Outcome::Fail("bind of 0000:03:00.0 left e1000e".to_owned()))
        );
        assert_eq!(parse_sentinel("[ 1.0] Kernel panic\n"), None);
        let skip = parse_sentinel("VFIOCTL-CASE-RESULT: SKIP no bind\n").unwrap();
        assert_eq!(skip, Outcome::Skip("no bind".to_owned()));
        assert!(!skip.fails_run(false));
        assert!(skip.fails_run(true));
        assert!(Outcome::Timeout.fails_run(false));
    }

    #[test]
    fn explains_a_missing_sentinel() {
        let serial =
            "[ 0.04] Kernel panic - not syncing: timer doesn't work\n[ 0.04] Call Trace:\n";
        assert_eq!(
            no_sentinel_reason(serial, "qemu: warning: nic e1000e.0 has no peer\n"),
            "no sentinel: Kernel panic - not syncing: timer doesn't work"
        );
        assert_eq!(
            no_sentinel_reason("", "qemu: could not load kernel\nqemu: warning: x\n"),
            "no sentinel; qemu: qemu: could not load kernel"
        );
        assert_eq!(no_sentinel_reason("", ""), "no sentinel in serial log");
    }

    #[test]
    fn collects_facts() {
        let log = "x\r\n\u{1b}[0mVFIOCTL-FACT: rp-acs=disabled\nVFIOCTL-FACT: predict = match\nVFIOCTL-FACT: rp-acs=enabled\r\n";
        let facts = parse_facts(log);
        assert_eq!(facts.len(), 2);
        assert_eq!(facts["rp-acs"], "enabled");
        assert_eq!(facts["predict"], "match");
    }

    #[test]
    fn reads_the_prediction_difference() {
        let log = "CHECK FAILED: predicted groups differ from the kernel's: kernel only []; \
                   predicted only [0000:00:00.0]\r\nVFIOCTL-FACT: predict=differs\n";
        assert_eq!(
            parse_predict_diff(log).as_deref(),
            Some("kernel only []; predicted only [0000:00:00.0]")
        );
        assert_eq!(
            parse_predict_diff("predict-match: 5 predicted groups equal\n"),
            None
        );
    }
}
