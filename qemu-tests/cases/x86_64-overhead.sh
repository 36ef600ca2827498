#!/bin/sh
# x86_64 q35, two root ports with one e1000e (8086:10d3) each: what vfioctl's own work (plan,
# journal, lock, verify) adds to the kernel's. `vfioctl bind` + `restore` of one NIC is timed
# against the plain shell sequence of the Ten64 VFIO page on the same NIC in the same guest
# (echo into the driver's unbind, driver_override, the vfio-pci driver's bind; and back:
# vfio-pci's unbind, an empty driver_override, drivers_probe), rounds interleaved. The case
# prints the times and their ratio (facts bind-ms, shell-ms, bind-ratio in the matrix table, and
# the same with -fixed for rounds without address-space randomisation, see below); it checks
# where every round left the NIC, never how long it took.
set -euo pipefail
. /lib/case-lib.sh
NIC=0000:01:00.0
NIC2=0000:02:00.0
SYS=/sys/bus/pci
# Nine rounds: between guests, the same binary's pairs move by 10% or more; a median of nine is
# steadier than one of five.
ROUNDS=9

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

# rounds <tag>: ROUNDS interleaved rounds; times go to /tmp/<kind>-<tag>-ms.
rounds() {
  tag=$1
  rm -f /tmp/vfioctl-$tag-ms /tmp/shell-$tag-ms /tmp/start-$tag-ms /tmp/plan-$tag-ms
  i=1
  while [ $i -le $ROUNDS ]; do
    timed /tmp/vfioctl-$tag-ms vfioctl_round
    step "$tag round $i: vfioctl gave $NIC back to e1000e" gc driver $NIC e1000e
    step "$tag round $i: vfioctl left no driver_override" gc override $NIC none
    timed /tmp/start-$tag-ms start_round
    timed /tmp/plan-$tag-ms plan_round
    timed /tmp/shell-$tag-ms shell_round
    step "$tag round $i: the shell gave $NIC back to e1000e" gc driver $NIC e1000e
    step "$tag round $i: the shell left no driver_override" gc override $NIC none
    echo "$tag round $i: vfioctl $(tail -n 1 /tmp/vfioctl-$tag-ms) ms, shell $(tail -n 1 /tmp/shell-$tag-ms) ms;" \
      "two start-ups $(tail -n 1 /tmp/start-$tag-ms) ms, both dry runs $(tail -n 1 /tmp/plan-$tag-ms) ms"
    i=$((i + 1))
  done
  v=$(median /tmp/vfioctl-$tag-ms)
  s=$(median /tmp/shell-$tag-ms)
  ratio=$(awk -v v="$v" -v s="$s" 'BEGIN { if (s > 0) printf "%.2f", v / s; else print "n/a" }')
  echo "$tag: bind+restore of $NIC, median of $ROUNDS rounds: vfioctl $v ms, shell sequence $s ms, ratio $ratio (goal: under 1.5)"
}

# As the guest boots: address-space randomisation on. TCG translates guest code to host code
# and finds a translation again by the code's virtual address, so every start of a
# position-independent binary at a new address translates all it runs once more (about 90 ms
# a start here); hardware has no such cost, and the kernel's code, at one address per boot,
# is translated once for both sides.
rounds aslr
fact bind-ms "$v"
fact shell-ms "$s"
fact bind-ratio "$ratio"
fact startup-ms "$(median /tmp/start-aslr-ms)"
fact dry-run-ms "$(median /tmp/plan-aslr-ms)"
# The same rounds with randomisation off, so that translations are found again as a CPU's
# caches are after a warm-up: what is left is vfioctl's own work against the kernel's.
echo 0 >/proc/sys/kernel/randomize_va_space
rounds fixed
echo 2 >/proc/sys/kernel/randomize_va_space
fact bind-ms-fixed "$v"
fact shell-ms-fixed "$s"
fact bind-ratio-fixed "$ratio"
fact startup-ms-fixed "$(median /tmp/start-fixed-ms)"
fact dry-run-ms-fixed "$(median /tmp/plan-fixed-ms)"
step "$NIC2 was never touched" gc driver $NIC2 e1000e
common_end
