#!/bin/sh
# x86_64 q35 + intel-iommu, rootports topology, with a real qemu-system-x86_64 packed into the
# initramfs (NESTED_QEMU in build-initramfs.sh). `vfioctl run` of a VM definition:
#   1. binds 0000:01:00.0, starts the nested QEMU with -device vfio-pci, which opens the group and
#      the device; SIGTERM to vfioctl is forwarded to QEMU, and the NIC goes back to e1000e;
#   2. vfioctl is SIGKILLed mid-run: the orphaned QEMU keeps the NIC, and once it is gone
#      `vfioctl recover` gives it back from the journal.
# The nested QEMU runs with -S: its devices are realized (config space read, DMA set up through
# the emulated VT-d) but its CPU never runs, so TCG-in-TCG costs only QEMU's start-up.
set -euo pipefail
. /lib/case-lib.sh
NIC1=0000:01:00.0
NIC2=0000:02:00.0
QEMU=/usr/bin/qemu-system-x86_64
# The nested QEMU's HMP monitor on a pipe chardev: commands into $MON.in, replies from $MON.out.
MON=/tmp/nested-mon

gone() {
  ! alive "$1"
}
# holds_fd <pid> <link target>: one of the process's fds points at that target.
holds_fd() {
  for fd in /proc/"$1"/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = "$2" ] && return 0
  done
  echo "pid $1 has no fd on $2; it has:"
  ls -l /proc/"$1"/fd/ 2>&1 | sed 's/^/  /'
  return 1
}
# start_run <tag>: `vfioctl run nested` in the background; $RUN is its pid, its output goes to
# /tmp/<tag>.out and .err (QEMU's too: it inherits them), the monitor's to /tmp/<tag>.mon.
start_run() {
  rm -f $MON.in $MON.out
  mkfifo $MON.in $MON.out
  cat $MON.out >/tmp/"$1".mon &
  echo "\$ vfioctl run nested &"
  vfioctl run nested >/tmp/"$1".out 2>/tmp/"$1".err &
  RUN=$!
}
# wait_qemu <tag>: until the nested QEMU has realized its vfio-pci device (it holds an
# anon_inode:[vfio-device] fd) and sets $QPID; fails at once when vfioctl exits first.
wait_qemu() {
  n=600 # 0.2 s each: 120 s
  while :; do
    QPID=$(pidof qemu-system-x86_64 || true)
    if [ -n "$QPID" ] && holds_fd "$QPID" 'anon_inode:[vfio-device]' >/dev/null; then
      echo "nested QEMU pid $QPID has the device after $(((600 - n) / 5)) s"
      return 0
    fi
    if gone "$RUN"; then
      echo "vfioctl run exited before QEMU had the device:"
      cat /tmp/"$1".err
      return 1
    fi
    n=$((n - 1))
    if [ "$n" -le 0 ]; then
      echo "no nested QEMU with a VFIO device fd after 120 s:"
      cat /tmp/"$1".err
      return 1
    fi
    sleep 0.2
  done
}
# is_child <pid> <parent>
is_child() {
  [ "$(awk '/^PPid:/ {print $2}' "/proc/$1/status")" = "$2" ]
}
# hmp <tag> <command> <pattern>: sends a monitor command, waits for the pattern in the replies.
hmp() {
  echo "$2" >$MON.in
  if poll 30 grep -q "$3" /tmp/"$1".mon; then
    tr -d '\r' </tmp/"$1".mon | grep -B2 -A3 "$3" | sed 's/^/  (hmp) /' || true
    return 0
  fi
  echo "no '$3' in the monitor's replies:"
  cat /tmp/"$1".mon
  return 1
}
# check_in_use: `vfioctl check` still calls the group viable and says it is open elsewhere.
check_in_use() {
  out=$(vfioctl check $NIC1 2>&1) || {
    echo "vfioctl check $NIC1 exited $?: $out"
    return 1
  }
  echo "$out"
  echo "$out" | grep -q 'open elsewhere'
}
journal_lists() {
  grep -q "\"vm:$1\"" /run/vfioctl/journal.json
}
journal_empty() {
  [ ! -e /run/vfioctl/journal.json ] || ! grep -q "$NIC1" /run/vfioctl/journal.json
}

common_start
step "$NIC1 is alone in its group (single)" gc expect-group $NIC1 --shared no --reason single
step "$NIC1 starts on e1000e" gc driver $NIC1 e1000e
require_subcommands run recover check
step "the packed nested QEMU runs in the guest" $QEMU --version
# vfio.ko names vfio_iommu_type1 as a softdep; busybox modprobe ignores softdeps, so vfioctl
# loads it itself after vfio-pci (without it QEMU fails with "No available IOMMU models").
step "vfio-pci is not loaded yet" gc module vfio_pci absent
step "vfio_iommu_type1 is not loaded yet" gc module vfio_iommu_type1 absent
GROUP=$(basename "$(readlink /sys/bus/pci/devices/$NIC1/iommu_group)")

mkdir -p /etc/vfioctl/vms
cat >/etc/vfioctl/vms/nested.toml <<EOF
version = 1
description = "a nested QEMU that gets the first e1000e"

[[device]]
address = "$NIC1"
id = "8086:10d3"

[qemu]
binary = "$QEMU"
machine = "q35"
accel = "tcg"
memory = "64M"
extra_args = ["-nodefaults", "-display", "none", "-S", "-chardev", "pipe,id=mon,path=$MON", "-mon", "chardev=mon,mode=readline"]
EOF
step "vfioctl vm check nested exits 0" gc exit 0 -- vfioctl vm check nested
dry_run() {
  vfioctl run nested --dry-run >/tmp/dry.out 2>&1 || {
    cat /tmp/dry.out
    return 1
  }
  cat /tmp/dry.out
  grep -q "vfio-pci,host=$NIC1," /tmp/dry.out
}
step "vfioctl run --dry-run renders vfio-pci,host=$NIC1" dry_run
step "--dry-run changed nothing" gc driver $NIC1 e1000e

# 1. A managed run that ends with SIGTERM to vfioctl.
start_run run1
step "vfioctl run starts the nested QEMU and it realizes $NIC1" wait_qemu run1
step "the nested QEMU is vfioctl's child" is_child "$QPID" "$RUN"
step "$NIC1 is on vfio-pci while the VM runs" gc driver $NIC1 vfio-pci
step "$NIC1's driver_override is vfio-pci" gc override $NIC1 vfio-pci
step "$NIC2 is untouched" gc driver $NIC2 e1000e
step "the nested QEMU holds /dev/vfio/$GROUP" holds_fd "$QPID" /dev/vfio/"$GROUP"
step "the nested QEMU holds /dev/vfio/vfio" holds_fd "$QPID" /dev/vfio/vfio
step "vfioctl check $NIC1: viable, group open elsewhere" check_in_use
step "the journal lists the VM as owner (vm:nested)" journal_lists nested
# The IDs come from the NIC's config space, read through the VFIO device fd. (`info pci` does not
# show it yet: behind a root port it needs the bus numbers the firmware assigns, and -S stops the
# firmware.)
step "the nested QEMU read $NIC1's IDs through VFIO (info qtree: vfio-pci, pci id 8086:10d3)" \
  hmp run1 "info qtree" 'pci id 8086:10d3'
step "info qtree has the vfio-pci device hostdev0" grep -q 'dev: vfio-pci, id "hostdev0"' /tmp/run1.mon
echo "\$ kill -TERM $RUN (vfioctl)"
kill -TERM "$RUN"
rc=0
wait "$RUN" || rc=$?
echo "vfioctl run exited $rc; its stderr:"
sed 's/^/  /' /tmp/run1.err
status=$(sed -n 's/.*QEMU exited with status \([0-9]*\) (after forwarding signal 15).*/\1/p' /tmp/run1.err)
step "vfioctl forwarded SIGTERM to QEMU" [ -n "$status" ]
step "vfioctl exits with QEMU's status $status (got $rc)" [ "$rc" = "$status" ]
step "QEMU's status is 0 (quit on SIGTERM) or 143 (killed by it)" \
  sh -c "[ '$status' = 0 ] || [ '$status' = 143 ]"
step "the nested QEMU is gone" gone "$QPID"
step "vfioctl says it gave $NIC1 back" grep -q "gave back $NIC1" /tmp/run1.err
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "/dev/vfio node of $NIC1's group is gone" gc vfio-node $NIC1 absent
step "the journal no longer lists $NIC1" journal_empty

# 2. vfioctl is SIGKILLed mid-run: the journal is all that is left to give the NIC back.
start_run run2
step "second run: the nested QEMU realizes $NIC1" wait_qemu run2
step "$NIC1 is on vfio-pci (second run)" gc driver $NIC1 vfio-pci
echo "\$ kill -KILL $RUN (vfioctl)"
kill -KILL "$RUN"
rc=0
wait "$RUN" || rc=$?
step "vfioctl died of SIGKILL (exit 137, got $rc)" [ "$rc" = 137 ]
step "the orphaned nested QEMU keeps running" alive "$QPID"
step "the orphaned nested QEMU still holds the device" holds_fd "$QPID" 'anon_inode:[vfio-device]'
step "$NIC1 stays on vfio-pci" gc driver $NIC1 vfio-pci
step "the journal still lists $NIC1 for nested" journal_lists nested
echo "\$ kill -KILL $QPID (the orphaned QEMU)"
kill -KILL "$QPID"
step "the orphaned QEMU is gone" poll 30 gone "$QPID"
step "vfioctl recover --dry-run changes nothing" gc exit 0 -- vfioctl recover --dry-run
step "$NIC1 is still on vfio-pci after the dry run" gc driver $NIC1 vfio-pci
step "vfioctl recover exits 0" gc exit 0 -- vfioctl recover
step "$NIC1 is back on e1000e after recover" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left after recover" gc override $NIC1 none
step "/dev/vfio node is gone after recover" gc vfio-node $NIC1 absent
step "the journal is empty after recover" journal_empty
step "$NIC2 was never touched" gc driver $NIC2 e1000e
common_end
