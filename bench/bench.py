#!/usr/bin/env python3
"""vfioctl benchmarks against named peers, on simulated hosts of growing size.

Builds simulated hosts (about 16, 256, 1,024 and 4,096 PCI functions; the large ones SR-IOV PFs
with their VFs behind ACS root ports) with vfioctl-sim's `write-tree` example, then times, side by
side on the same tree and in the same run:

  * `vfioctl list --json` and `vfioctl groups --json` against `lspci -nnk` reading the same tree
    (`lspci -A linux-sysfs -O sysfs.path=<root>/sys/bus/pci -nnk`), and against the IOMMU-group
    shell loop the guides tell users to run (`lspci -nns` for every group member);
  * `vfioctl bind --dry-run` of every VF of the largest host (the whole plan with group checks);
  * `vfioctl doctor --json` on the largest host, when this vfioctl has `doctor`.

Whole-process wall time, warm cache, after one warm-up run; the median of --runs runs. Peak memory
is each process's own maximum resident set size (wait4's rusage). Nothing here asserts a timing:
it prints the figures and the ratios, and whether each goal of the benchmark issue was met.

Usage: python3 bench/bench.py [--runs N] [--sizes 16,256,1024,4096] [--out results.json]
"""

import argparse
import json
import resource
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


GNU_TIME = shutil.which("time") and os.path.exists("/usr/bin/time") and "/usr/bin/time"


def run_once(argv, shell=False):
    """Runs a command to completion; returns (seconds, peak RSS in KiB).

    The kernel charges a child with the resident size of the process it was forked from until it
    execs, so a child of this Python process would report Python's size. GNU time (Debian's
    `time`) forks from a small C process and reports the command's own peak (%M); without it the
    peak is wait4's and includes Python's, which the report says.
    """
    if shell:
        argv = ["/bin/bash", "-c", argv]
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", "/dev/stderr"] + list(argv)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    code = proc.returncode
    if code not in (0, 4):  # doctor exits 4 when it finds problems, which it must on a sim host
        raise RuntimeError(f"{argv!r} exited {code}: {err[-300:]!r}")
    peak = 0
    if GNU_TIME:
        lines = err.decode(errors="replace").strip().splitlines()
        peak = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    else:
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak


def measure(argv, runs, shell=False):
    run_once(argv, shell)  # warm-up: page cache, dentries
    samples = [run_once(argv, shell) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def build(release_dir):
    subprocess.run(
        ["cargo", "build", "--release", "-p", "vfioctl", "-p", "vfioctl-sim", "--examples", "--bins"],
        cwd=REPO, check=True,
    )
    return os.path.join(release_dir, "vfioctl"), os.path.join(release_dir, "examples", "write-tree")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="16,256,1024,4096")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    lspci = shutil.which("lspci")
    if not lspci:
        sys.exit("bench: lspci is missing (apt-get install pciutils); it is the peer every figure is compared with")
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    vfioctl, write_tree = build(os.path.join(target, "release"))
    has_doctor = subprocess.run([vfioctl, "doctor", "--help"], capture_output=True).returncode == 0
    # What launching any process through this harness costs (fork/exec from Python, GNU time):
    # measured with `true` and taken off every figure, so small hosts compare the commands and
    # not the harness.
    baseline = measure([shutil.which("true") or "/bin/true"], args.runs * 2)[0]

    results = []
    # sysfs lives in memory; a tmpfs is the fair stand-in for it (a disk-backed /tmp measures the
    # disk's metadata cache instead).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix="vfioctl-bench-", dir=shm)
    try:
        for size in sizes:
            root = os.path.join(work, str(size))
            subprocess.run([write_tree, "sriov", root, "--functions", str(size)], check=True,
                           stdout=subprocess.DEVNULL)
            functions = len(os.listdir(os.path.join(root, "sys/bus/pci/devices")))
            sysfs = f"{root}/sys/bus/pci"
            peer_lspci = [lspci, "-A", "linux-sysfs", "-O", f"sysfs.path={sysfs}", "-nnk"]
            loop = (
                f'for d in {root}/sys/kernel/iommu_groups/*/devices/*; do '
                f'n=${{d#*/iommu_groups/}}; n=${{n%%/*}}; printf "IOMMU Group %s " "$n"; '
                f'{lspci} -A linux-sysfs -O sysfs.path={sysfs} -nns "${{d##*/}}"; done'
            )
            row = {"size": size, "functions": functions}
            row["lspci_nnk"] = measure(peer_lspci, args.runs)
            row["group_loop"] = measure(loop, max(1, args.runs // 2), shell=True) if functions <= 1100 else None
            row["list"] = measure([vfioctl, "--root", root, "list", "--json"], args.runs)
            row["groups"] = measure([vfioctl, "--root", root, "groups", "--json"], args.runs)
            if size == max(sizes):
                row["bind_dry_run"] = measure(
                    [vfioctl, "--root", root, "bind", "--dry-run", "--json", "8086:154c"], args.runs)
                if has_doctor:
                    row["doctor"] = measure([vfioctl, "--root", root, "doctor", "--json"], args.runs)
            results.append(row)
            print(f"size {size}: {functions} functions measured", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(results, baseline)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


def ms(value):
    return f"{value * 1000:8.2f}"


def report(results, baseline):
    machine = f"{os.cpu_count()} cores, {os.uname().machine}, kernel {os.uname().release}"
    print(f"\nvfioctl benchmark ({machine}); medians of whole-process wall time, warm cache,")
    print(f"less {baseline * 1000:.2f} ms that launching `true` through this harness takes")
    if not GNU_TIME:
        print("peak memory from wait4 includes the benchmark's own Python; install Debian's `time` for exact figures")
    print(f"{'functions':>9}  {'command':<26} {'ms':>8}  {'peer':<12} {'peer ms':>8}  {'ratio':>6}  "
          f"{'us/fn':>7}  {'growth':>6}  {'peak KiB':>8}")
    previous = {}
    goals = []
    for row in results:
        for key, value in list(row.items()):
            if isinstance(value, tuple):
                row[key] = (max(value[0] - baseline, 1e-6), value[1])
        n = row["functions"]
        peer_ms = row["lspci_nnk"][0]
        lines = [("lspci -nnk", row["lspci_nnk"], None)]
        if row.get("group_loop"):
            lines.append(("group loop (lspci -nns)", row["group_loop"], None))
        lines.append(("vfioctl list --json", row["list"], "lspci -nnk"))
        lines.append(("vfioctl groups --json", row["groups"], "lspci -nnk"))
        if row.get("group_loop"):
            lines.append(("vfioctl groups --json", row["groups"], "group loop"))
        if row.get("bind_dry_run"):
            lines.append(("vfioctl bind --dry-run VFs", row["bind_dry_run"], None))
        if row.get("doctor"):
            lines.append(("vfioctl doctor --json", row["doctor"], None))
        for name, (secs, kib), peer in lines:
            per_fn = secs / n * 1e6
            key = (name, peer)
            growth = f"{per_fn / previous[key]:6.2f}" if key in previous else "     -"
            previous[key] = per_fn
            if peer == "lspci -nnk":
                ref = peer_ms
            elif peer == "group loop":
                ref = row["group_loop"][0]
            else:
                ref = None
            ratio = f"{secs / ref:6.3f}" if ref else "     -"
            print(f"{n:>9}  {name:<26} {ms(secs)}  {peer or '-':<12} {ms(ref) if ref else '       -'}  "
                  f"{ratio}  {per_fn:7.1f}  {growth}  {kib:>8}")
        goals.append((f"list <= 0.5 x lspci at {n}", row["list"][0] <= 0.5 * peer_ms))
        goals.append((f"groups <= 1.0 x lspci at {n}", row["groups"][0] <= 1.0 * peer_ms))
    big = [r for r in results if r["functions"] >= 1000]
    if len(big) >= 2:
        a, b = big[-2], big[-1]
        for name in ("list", "groups"):
            g = (b[name][0] / b["functions"]) / (a[name][0] / a["functions"])
            goals.append((f"{name}: time per function grows {g:.2f}x from {a['functions']} to {b['functions']} (< 1.10)", g < 1.10))
    largest = results[-1]
    for name in ("list", "groups", "bind_dry_run", "doctor"):
        if largest.get(name):
            kib = largest[name][1]
            goals.append((f"{name}: peak memory {kib / 1024:.1f} MiB at {largest['functions']} functions (< 32 MiB)", kib < 32 * 1024))
    print("\nGoals (measured, not asserted):")
    for text, met in goals:
        print(f"  [{'met' if met else 'MISSED'}] {text}")


if __name__ == "__main__":
    main()
