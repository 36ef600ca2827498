#!/bin/sh
# x86_64 q35, two root ports with one e1000e (8086:10d3) each: what vfioctl's own work (plan,
# journal, lock, verify) adds to the kernel's. `vfioctl bind` + `restore` of one NIC is timed
# against the plain shell sequence of the Ten64 VFIO page on the same NIC in the same guest
# (echo into the driver's unbind, driver_override, the vfio-pci driver's bind; and back:
# vfio-pci's unbind, an empty driver_override, drivers_probe), rounds interleaved. The case
# prints the times and their ratio (facts bind-ms, shell-ms, bind-ratio in the matrix table); it
# checks where every round left the NIC, never how long it took.
set -euo pipefail
. /lib/case-lib.sh
NIC=0000:01:00.0
NIC2=0000:02:00.0
SYS=/sys/bus/pci
ROUNDS=5

# Milliseconds since boot, from /proc/uptime (busybox date has no %N): 10 ms steps, which the
# rounds, each well over 100 ms under TCG, make small.
now_ms() {
  read -r up _ </proc/uptime
  echo "${up%.*}${up#*.}0"
}
vfioctl_round() {
  vfioctl bind $NIC >/dev/null
  vfioctl restore $NIC >/dev/null
}
shell_round() {
  echo $NIC >$SYS/drivers/e1000e/unbind
  echo vfio-pci >$SYS/devices/$NIC/driver_override
  echo $NIC >$SYS/drivers/vfio-pci/bind
  echo $NIC >$SYS/drivers/vfio-pci/unbind
  echo >$SYS/devices/$NIC/driver_override
  echo $NIC >$SYS/drivers_probe
}
# timed <file> <function>: runs it, appends its milliseconds to the file.
timed() {
  start=$(now_ms)
  "$2"
  end=$(now_ms)
  echo $((end - start)) >>"$1"
}
# What the pair costs besides the kernel's work, to tell where vfioctl's time goes: starting the
# binary, and planning the bind without doing it (start-up, reading the group, the safety rules).
start_round() {
  vfioctl --version >/dev/null
  vfioctl --version >/dev/null
}
plan_round() {
  vfioctl bind --dry-run $NIC >/dev/null
  vfioctl restore --dry-run --all >/dev/null
}
median() {
  sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

common_start
step "$NIC starts on e1000e" gc driver $NIC e1000e
require_subcommands bind restore

# vfio-pci loaded by hand before anything binds: the shell sequence needs it, and vfioctl then
# neither loads nor unloads it, so both sides do the same kernel work (the other cases test
# vfioctl's own module loading).
modprobe vfio-pci
step "vfio-pci is loaded for the rounds" gc module vfio_pci loaded
# Warm-up, not timed: both paths should find the binary and sysfs in the page cache.
step "warm-up: vfioctl bind $NIC exits 0" gc exit 0 -- vfioctl bind $NIC
step "warm-up: $NIC is on vfio-pci" gc driver $NIC vfio-pci
step "warm-up: vfioctl restore $NIC exits 0" gc exit 0 -- vfioctl restore $NIC
step "warm-up: vfio-pci is still loaded" gc module vfio_pci loaded
shell_round
step "warm-up: the shell gave $NIC back to e1000e" gc driver $NIC e1000e

rm -f /tmp/vfioctl-ms /tmp/shell-ms /tmp/start-ms /tmp/plan-ms
i=1
while [ $i -le $ROUNDS ]; do
  timed /tmp/vfioctl-ms vfioctl_round
  step "round $i: vfioctl gave $NIC back to e1000e" gc driver $NIC e1000e
  step "round $i: vfioctl left no driver_override" gc override $NIC none
  timed /tmp/start-ms start_round
  timed /tmp/plan-ms plan_round
  timed /tmp/shell-ms shell_round
  step "round $i: the shell gave $NIC back to e1000e" gc driver $NIC e1000e
  step "round $i: the shell left no driver_override" gc override $NIC none
  echo "round $i: vfioctl $(tail -n 1 /tmp/vfioctl-ms) ms, shell $(tail -n 1 /tmp/shell-ms) ms;" \
    "two start-ups $(tail -n 1 /tmp/start-ms) ms, both dry runs $(tail -n 1 /tmp/plan-ms) ms"
  i=$((i + 1))
done
step "$NIC2 was never touched" gc driver $NIC2 e1000e

v=$(median /tmp/vfioctl-ms)
s=$(median /tmp/shell-ms)
ratio=$(awk -v v="$v" -v s="$s" 'BEGIN { if (s > 0) printf "%.2f", v / s; else print "n/a" }')
echo "bind+restore of $NIC, median of $ROUNDS rounds: vfioctl $v ms, shell sequence $s ms, ratio $ratio (goal: under 1.5)"
fact bind-ms "$v"
fact shell-ms "$s"
fact bind-ratio "$ratio"
fact startup-ms "$(median /tmp/start-ms)"
fact dry-run-ms "$(median /tmp/plan-ms)"
common_end
