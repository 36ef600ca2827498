#!/usr/bin/env python3
"""vfioctl benchmarks against named peers, on simulated hosts of growing size.

Builds simulated hosts (about 16, 256, 1,024 and 4,096 PCI functions; the large ones SR-IOV PFs
with their VFs behind ACS root ports, every second VF on iavf with an interface, so that
`/sys/class/net` grows with the host as on a host that uses its VFs) with vfioctl-sim's
`write-tree` example, then times, side by side on the same tree and in the same run:

  * every read-only command (`list --json`, `groups --json`, `groups --predict --json`,
    `doctor --json`, `status --json`, `vm check` and `vm qemu-args` of a definition written into
    the tree, `bind --dry-run` of one VF's group, `show` and `check` of that VF) against
    `lspci -nnk` reading the same tree
    (`lspci -A linux-sysfs -O sysfs.path=<root>/sys/bus/pci -nnk`);
  * `groups --json` against the IOMMU-group shell loop the guides tell users to run (`lspci -nns`
    for every group member), up to about 1,000 functions (beyond, the loop takes minutes);
  * system calls per function of `list` and `doctor` (`strace -c -f`, when strace is installed)
    next to the fewest the command needs;
  * SR-IOV: `vf list --json` against `lspci -nnk` (a row of every host, like the other read
    commands), and `vf create <PF> 64` then `restore <PF>` on the simulated kernel (the test
    binary, which serves the tree's writes as Linux would: 64 VF directories made and removed),
    reported per VF.
  * the Kubernetes device plugin idle on the largest host: it binds one VF's group, a fake
    kubelet (`vfioctl-fake-kubelet --watch`) holds `ListAndWatch` open for --plugin-seconds, and
    the plugin's CPU seconds per minute (utime + stime from /proc) and resident memory (VmRSS,
    VmHWM) over that time are reported. The plugin runs as `vfioctl-testbin`, the same entry
    point with the simulated kernel, which the bind at start needs.

Whole-process wall time, warm cache, after one warm-up round; the median of --runs rounds, each
of which runs every command on every host and lspci beside them, so that ratios compare figures
taken in the same minutes. Peak memory
is each process's own maximum resident set size (wait4's rusage). Nothing here asserts a timing:
it prints the figures and the ratios, and whether each goal of the benchmark issue was met.

Needs Debian's pciutils (lspci), time (exact peak memory) and strace (system calls).

Usage: python3 bench/bench.py [--runs N] [--sizes 16,256,1024,4096] [--plugin-seconds 60]
                              [--out results.json]
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
    """Runs a command to completion; returns (seconds, peak RSS in KiB, CPU seconds).

    CPU seconds are user + system time of the command and everything it waited for (threads
    included), from this process's children's rusage before and after; GNU time's own share of
    it is a fraction of a millisecond.

    The kernel charges a child with the resident size of the process it was forked from until it
    execs, so a child of this Python process would report Python's size. GNU time (Debian's
    `time`) forks from a small C process and reports the command's own peak (%M); without it the
    peak is wait4's and includes Python's, which the report says.
    """
    if shell:
        argv = ["/bin/bash", "-c", argv]
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", "/dev/stderr"] + list(argv)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    code = proc.returncode
    if code not in (0, 4):  # doctor exits 4 when it finds problems, which it must on a sim host
        raise RuntimeError(f"{argv!r} exited {code}: {err[-300:]!r}")
    peak = 0
    if GNU_TIME:
        lines = err.decode(errors="replace").strip().splitlines()
        peak = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    else:
        peak = after.ru_maxrss
    return elapsed, peak, cpu


def summarize(samples):
    """(median wall seconds, largest peak KiB, median CPU seconds) of run_once samples."""
    return (statistics.median(s[0] for s in samples), max(s[1] for s in samples),
            statistics.median(s[2] for s in samples))


def measure(argv, runs, shell=False):
    run_once(argv, shell)  # warm-up: page cache, dentries
    return summarize([run_once(argv, shell) for _ in range(runs)])


def build(release_dir):
    subprocess.run(
        ["cargo", "build", "--release", "-p", "vfioctl", "-p", "vfioctl-sim", "-p", "vfioctl-testbin",
         "--examples", "--bins"],
        cwd=REPO, check=True,
    )
    return (os.path.join(release_dir, "vfioctl"), os.path.join(release_dir, "examples", "write-tree"),
            os.path.join(release_dir, "vfioctl-testbin"))


def vf_writes(testbin, write_tree, work, runs):
    """`vf create <PF> 64` and `restore <PF>` on a simulated PF with no VFs yet, alternately
    (each undoes the other); medians of `runs` pairs, in seconds per run."""
    root = os.path.join(work, "vf-writes")
    # One root port and one X710 PF (250 VFs possible, none made): the tree the writes start from.
    subprocess.run([write_tree, "sriov", root, "--functions", "3"], check=True, stdout=subprocess.DEVNULL)
    pf = "0000:01:00.0"
    create = [testbin, "--root", root, "vf", "create", pf, str(VF_COUNT)]
    restore = [testbin, "--root", root, "restore", pf]
    run_once(create)
    run_once(restore)
    pairs = [(run_once(create), run_once(restore)) for _ in range(runs)]
    return (statistics.median(c[0] for c, _ in pairs), max(c[1] for c, _ in pairs),
            statistics.median(c[2] for c, _ in pairs)), \
        (statistics.median(r[0] for _, r in pairs), max(r[1] for _, r in pairs),
         statistics.median(r[2] for _, r in pairs))


def build_plugin(release_dir):
    """The test binary (the plugin binds through the simulated kernel) and the fake kubelet."""
    subprocess.run(
        ["cargo", "build", "--release", "-p", "vfioctl-testbin", "-p", "vfioctl-qemu-tests",
         "--bin", "vfioctl-testbin", "--bin", "vfioctl-fake-kubelet"],
        cwd=REPO, check=True,
    )
    return os.path.join(release_dir, "vfioctl-testbin"), os.path.join(release_dir, "vfioctl-fake-kubelet")


def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory_kib(pid):
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS"), values.get("VmHWM")


def plugin_idle(testbin, kubelet_bin, root, vf, seconds):
    """The idle device plugin serving one VF's group to a kubelet that watches for `seconds`."""
    work = tempfile.mkdtemp(prefix="vfioctl-plugin-")
    try:
        config = os.path.join(work, "device-plugin.toml")
        with open(config, "w") as f:
            f.write(f'version = 1\n[[resource]]\nname = "bench.io/vf"\nselect = [{{ address = "{vf}" }}]\n')
        plugins = os.path.join(work, "device-plugins")
        os.mkdir(plugins)
        with open(os.path.join(work, "plugin.log"), "w") as log:
            plugin = subprocess.Popen([testbin, "--root", root, "device-plugin", "--config", config,
                                       "--plugin-dir", plugins], stdout=subprocess.DEVNULL, stderr=log)
            kubelet = subprocess.Popen([kubelet_bin, plugins, "bench.io/vf", "--watch", str(seconds)],
                                       stdout=subprocess.PIPE, text=True)
            # The fake kubelet first says how registration went ("ok: ..."), then `registered`
            # once the ListAndWatch stream is open.
            line = kubelet.stdout.readline().strip()
            while line.startswith("ok:"):
                line = kubelet.stdout.readline().strip()
            if line != "registered":
                plugin.terminate()
                plugin.wait()
                sys.exit(f"bench: the plugin never registered ({line!r}); see {work}/plugin.log")
            cpu0, t0 = proc_cpu_seconds(plugin.pid), time.monotonic()
            rest = kubelet.stdout.read()
            kubelet.wait()
            cpu1, t1 = proc_cpu_seconds(plugin.pid), time.monotonic()
            rss, hwm = proc_memory_kib(plugin.pid)
            plugin.send_signal(15)
            plugin.wait(timeout=60)
        updates = int(rest.split("updates:")[1].split()[0]) if "updates:" in rest else None
        wall = t1 - t0
        return {"seconds": wall, "cpu_per_minute": (cpu1 - cpu0) / wall * 60, "rss_kib": rss,
                "hwm_kib": hwm, "updates": updates, "exit": plugin.returncode}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# The commands timed on every host, by key: (label, argv after `vfioctl --root ROOT`). `{vf}` is
# one VF, alone in its IOMMU group (the ACS root ports isolate it), `{vm}` a definition naming it.
COMMANDS = [
    ("list", "list --json", ["list", "--json"]),
    ("groups", "groups --json", ["groups", "--json"]),
    ("predict", "groups --predict --json", ["groups", "--predict", "--json"]),
    ("doctor", "doctor --json", ["doctor", "--json"]),
    ("status", "status --json", ["status", "--json"]),
    ("vm_check", "vm check", ["vm", "check", "{vm}"]),
    ("bind_one", "bind --dry-run <VF>", ["bind", "--dry-run", "--json", "{vf}"]),
    ("show", "show <VF>", ["show", "{vf}"]),
    ("check", "check <VF>", ["check", "--json", "{vf}"]),
    ("qemu_args", "vm qemu-args", ["vm", "qemu-args", "{vm}"]),
    ("vf_list", "vf list --json", ["vf", "list", "--json"]),
]
# VFs made and removed per `vf create` / `restore` run of the SR-IOV write benchmark.
VF_COUNT = 64
# Commands whose cost must not depend on the host's size.
LOCAL = ("bind_one", "show", "check", "qemu_args")
# Figures without a goal of issue 23 (whose read-only commands are list, groups, predict,
# doctor, status, vm check and bind --dry-run): the SR-IOV issue asks for the ratio only.
NO_GOAL = ("vf_list",)

# The fewest system calls per function a whole-host command needs, counted by hand: the first
# 256 bytes of config space (openat, read, close: 3), the `driver` link (readlink: 1) and the
# `iommu_group` link (readlink: 1). `doctor` needs those and what its checks read of every
# function a VM could get: `driver_override` (overrides), `power_state` (D3 states) and
# `reset_method` (reset support), 3 each, and its group's `type` (identity groups), 3 per group,
# which on an SR-IOV host is one per function. Directory listings and start-up are shared by all
# functions: not counted.
MIN_SYSCALLS = {"list": 5, "doctor": 17}


def pick_vf(root):
    """One VF (a function with a `physfn` link) and its vendor:device ID: the first in address
    order that has an interface on its host driver (so bind checks what the host does with it),
    else the first."""
    devices = os.path.join(root, "sys/bus/pci/devices")
    vfs = [n for n in sorted(os.listdir(devices)) if os.path.lexists(os.path.join(devices, n, "physfn"))]
    with_net = [n for n in vfs if os.path.isdir(os.path.join(devices, n, "net"))]
    if not vfs:
        sys.exit(f"bench: no VF in {root}; write-tree's sriov layout should have made some")
    name = (with_net or vfs)[0]
    ids = []
    for attr in ("vendor", "device"):
        with open(os.path.join(devices, name, attr)) as f:
            ids.append(f.read().strip().removeprefix("0x"))
    return name, ":".join(ids)


def write_vm(root, address, ids):
    """A VM definition that passes `address` through, where `vm check` and `status` look."""
    vms = os.path.join(root, "etc/vfioctl/vms")
    os.makedirs(vms, exist_ok=True)
    with open(os.path.join(vms, "bench.toml"), "w") as f:
        f.write(f'version = 1\ndescription = "bench"\n\n[[device]]\naddress = "{address}"\n'
                f'id = "{ids}"\n\n[qemu]\nmachine = "q35"\nmemory = "1G"\n')
    return "bench"


def syscalls(argv):
    """Total system calls of a command and its threads, from `strace -c -f`'s summary."""
    with tempfile.NamedTemporaryFile(prefix="vfioctl-strace-", suffix=".txt") as out:
        subprocess.run(["strace", "-c", "-f", "-o", out.name] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        with open(out.name) as f:
            lines = f.read().splitlines()
        for line in reversed(lines):
            fields = line.split()
            if fields and fields[-1] == "total":
                # `% time, seconds, usecs/call, calls, [errors,] total`
                return int(fields[3])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default="16,256,1024,4096")
    parser.add_argument("--plugin-seconds", type=int, default=60,
                        help="how long the idle device plugin is measured on the largest host (0: not at all)")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    lspci = shutil.which("lspci")
    if not lspci:
        sys.exit("bench: lspci is missing (apt-get install pciutils); it is the peer every figure is compared with")
    has_strace = shutil.which("strace") is not None
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    vfioctl, write_tree, testbin = build(os.path.join(target, "release"))
    plugin_bins = build_plugin(os.path.join(target, "release")) if args.plugin_seconds > 0 else None
    # What launching any process through this harness costs (fork/exec from Python, GNU time):
    # measured with `true` and taken off every figure, so small hosts compare the commands and
    # not the harness.
    true_run = measure([shutil.which("true") or "/bin/true"], args.runs * 2)
    baseline, cpu_baseline = true_run[0], true_run[2]

    results = []
    # sysfs lives in memory; a tmpfs is the fair stand-in for it (a disk-backed /tmp measures the
    # disk's metadata cache instead).
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    work = tempfile.mkdtemp(prefix="vfioctl-bench-", dir=shm)
    try:
        jobs = []
        for size in sizes:
            root = os.path.join(work, str(size))
            subprocess.run([write_tree, "sriov", root, "--functions", str(size)], check=True,
                           stdout=subprocess.DEVNULL)
            functions = len(os.listdir(os.path.join(root, "sys/bus/pci/devices")))
            vf, ids = pick_vf(root)
            vm = write_vm(root, vf, ids)
            sysfs = f"{root}/sys/bus/pci"
            row = {"size": size, "functions": functions, "device": vf}
            results.append(row)
            jobs.append((row, "lspci_nnk", [lspci, "-A", "linux-sysfs", "-O", f"sysfs.path={sysfs}", "-nnk"]))
            for key, _, argv in COMMANDS:
                full = [vfioctl, "--root", root] + [a.format(vf=vf, vm=vm) for a in argv]
                jobs.append((row, key, full))
                if has_strace and key in MIN_SYSCALLS:
                    row[f"{key}_syscalls"] = syscalls(full)
            if functions <= 1100:
                loop = (
                    f'for d in {root}/sys/kernel/iommu_groups/*/devices/*; do '
                    f'n=${{d#*/iommu_groups/}}; n=${{n%%/*}}; printf "IOMMU Group %s " "$n"; '
                    f'{lspci} -A linux-sysfs -O sysfs.path={sysfs} -nns "${{d##*/}}"; done'
                )
                row["group_loop"] = measure(loop, max(1, args.runs // 2), shell=True)
            else:
                row["group_loop"] = None
        # Round by round, every command on every host and the peer beside them: the machine's
        # speed drifts over the minutes a run takes, and a ratio (to lspci, or of one host's time
        # per function to another's) is fair only between figures taken in the same minutes.
        samples = {id(row): {} for row in results}
        for round_ in range(args.runs + 1):  # round 0 warms the page cache and dentries
            for row, key, argv in jobs:
                sample = run_once(argv)
                if round_:
                    samples[id(row)].setdefault(key, []).append(sample)
            print(f"round {round_}/{args.runs} done", file=sys.stderr)
        for row in results:
            for key, taken in samples[id(row)].items():
                row[key] = summarize(taken)
        largest = results[-1]
        if plugin_bins:
            root = os.path.join(work, str(largest["size"]))
            largest["plugin"] = plugin_idle(*plugin_bins, root, largest["device"], args.plugin_seconds)
        vf_create, vf_restore = vf_writes(testbin, write_tree, work, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report(results, baseline, cpu_baseline)
    vf_rows = {"vf_create": vf_create, "vf_restore": vf_restore}
    print(f"\nSR-IOV writes on the simulated kernel, {VF_COUNT} VFs per run (medians of {args.runs}):")
    for key, label in (("vf_create", f"vf create <PF> {VF_COUNT}"), ("vf_restore", "restore <PF>")):
        secs, kib = vf_rows[key][:2]
        secs = max(secs - baseline, 1e-6)
        print(f"  {label:<24} {ms(secs)} ms  {secs / VF_COUNT * 1e6:9.1f} us/VF  {kib:>8} KiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"hosts": results, "vf_writes": vf_rows, "vf_count": VF_COUNT}, f, indent=2)


def ms(value):
    return f"{value * 1000:8.2f}"


def report(results, baseline, cpu_baseline):
    machine = f"{os.cpu_count()} cores, {os.uname().machine}, kernel {os.uname().release}"
    print(f"\nvfioctl benchmark ({machine}); medians of whole-process wall time, warm cache,")
    print(f"less {baseline * 1000:.2f} ms that launching `true` through this harness takes; CPU is user +")
    print(f"system time of the whole process (every thread), less `true`'s {cpu_baseline * 1000:.2f} ms, its ratio")
    print("against lspci's CPU time (vfioctl reads the devices of a large host on a few threads, so its")
    print("wall time is below its CPU time; lspci runs on one)")
    if not GNU_TIME:
        print("peak memory from wait4 includes the benchmark's own Python; install Debian's `time` for exact figures")
    print(f"{'functions':>9}  {'command':<30} {'ms':>8}  {'peer':<12} {'peer ms':>8}  {'ratio':>6}  "
          f"{'us/fn':>7}  {'peak KiB':>8}  {'cpu ms':>8}  {'cpu ratio':>9}")
    for row in results:
        for key, value in list(row.items()):
            if isinstance(value, tuple):
                row[key] = (max(value[0] - baseline, 1e-6), value[1], max(value[2] - cpu_baseline, 1e-6))
        n = row["functions"]
        peer_ms = row["lspci_nnk"][0]
        lines = [("lspci -nnk", row["lspci_nnk"], None)]
        if row.get("group_loop"):
            lines.append(("group loop (lspci -nns)", row["group_loop"], None))
            lines.append(("vfioctl groups --json", row["groups"], "group loop"))
        for key, label, _ in COMMANDS:
            lines.append((f"vfioctl {label}", row[key], "lspci -nnk"))
        peer_cpu = row["lspci_nnk"][2]
        for name, (secs, kib, cpu), peer in lines:
            ref = {"lspci -nnk": peer_ms, "group loop": row["group_loop"] and row["group_loop"][0]}.get(peer)
            ratio = f"{secs / ref:6.3f}" if ref else "     -"
            cpu_ratio = f"{cpu / peer_cpu:9.3f}" if peer == "lspci -nnk" else "        -"
            print(f"{n:>9}  {name:<30} {ms(secs)}  {peer or '-':<12} {ms(ref) if ref else '       -'}  "
                  f"{ratio}  {secs / n * 1e6:7.1f}  {kib:>8}  {ms(cpu)}  {cpu_ratio}")

    if any(f"{k}_syscalls" in r for r in results for k in MIN_SYSCALLS):
        print("\nSystem calls per function (strace -c -f: every call of the process, over the functions),"
              "\nagainst the fewest the command needs (config 3, driver link 1, group link 1; doctor"
              "\nadds driver_override, power_state, reset_method and the group's type, 3 each):")
        print(f"{'functions':>9}  {'command':<10} {'calls':>8}  {'per fn':>7}  {'minimum':>7}  {'ratio':>6}")
        for row in results:
            for key, minimum in MIN_SYSCALLS.items():
                calls = row.get(f"{key}_syscalls")
                if calls is None:
                    continue
                per = calls / row["functions"]
                print(f"{row['functions']:>9}  {key:<10} {calls:>8}  {per:7.2f}  {minimum:>7}  {per / minimum:6.2f}")

    for row in results:
        p = row.get("plugin")
        if p:
            print(f"\nDevice plugin idle at {row['functions']} functions, ListAndWatch open for "
                  f"{p['seconds']:.1f} s ({p['updates']} updates): {p['cpu_per_minute']:.3f} CPU s per minute, "
                  f"RSS {p['rss_kib']} KiB (peak {p['hwm_kib']} KiB); exit {p['exit']} after SIGTERM")

    largest = results[-1]
    print(f"\nCPU time against lspci's at {largest['functions']} functions (no goal; the goals are wall time):")
    for key, label, _ in COMMANDS:
        if key not in LOCAL and key not in NO_GOAL:
            print(f"  {label:<26} {ms(largest[key][2])} ms  {largest[key][2] / largest['lspci_nnk'][2]:6.3f} x")

    print("\nGoals (measured, not asserted):")
    for text, met in goals(results):
        print(f"  [{'met' if met else 'MISSED'}] {text}")


def goals(results):
    """The goals of issue 23, each with whether this run met it."""
    out = []
    largest, smallest = results[-1], results[0]
    n, peer_ms = largest["functions"], largest["lspci_nnk"][0]
    host_wide = [(k, label) for k, label, _ in COMMANDS if k not in LOCAL and k not in NO_GOAL]
    for key, label in host_wide:
        r = largest[key][0] / peer_ms
        out.append((f"{label}: {r:.3f} x lspci -nnk at {n} functions (<= 0.5)", r <= 0.5))
    big = [r for r in results if r["functions"] >= 1000]
    if len(big) >= 2:
        a, b = big[-2], big[-1]
        for key, label in host_wide:
            g = (b[key][0] / b["functions"]) / (a[key][0] / a["functions"])
            out.append((f"{label}: time per function grows {g:.2f}x from {a['functions']} to "
                        f"{b['functions']} functions (< 1.10)", g < 1.10))
    for key, label, _ in COMMANDS:
        if key not in LOCAL:
            continue
        if len(results) >= 2:
            g = largest[key][0] / smallest[key][0]
            out.append((f"{label}: {g:.2f}x at {n} functions its time at {smallest['functions']} (<= 2)",
                        g <= 2.0))
        r = largest[key][0] / peer_ms
        out.append((f"{label}: {r:.3f} x lspci -nnk at {n} functions (< 0.1)", r < 0.1))
    for key, label, _ in COMMANDS:
        kib = largest[key][1]
        out.append((f"{label}: peak memory {kib / 1024:.1f} MiB at {n} functions (< 16 MiB)", kib < 16 * 1024))
    return out


if __name__ == "__main__":
    main()
