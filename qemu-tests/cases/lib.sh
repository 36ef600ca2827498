# Sourced by every case script in the guest (installed as /lib/case-lib.sh).
# `step <description> <command...>` runs one check; on failure it records the description as the
# failure reason (init prints it in the sentinel line) and exits the case.
step() {
  desc=$1
  shift
  echo "--- STEP: $desc"
  if "$@"; then
    return 0
  fi
  echo "$desc" >>/tmp/fail-reason
  echo "--- FAILED STEP: $desc"
  exit 1
}
# Guest-side checker, see crates/vfioctl-qemu-tests/src/bin/vfioctl-guest-check.rs.
gc() {
  vfioctl-guest-check "$@"
}
# True when /init loaded vfio-pci before the case (vfiotest.preload=1).
preloaded() {
  grep -q 'vfiotest.preload=1' /proc/cmdline
}
# Records a failure reason and ends the case.
case_fail() {
  echo "$1" >>/tmp/fail-reason
  echo "--- FAILED: $1"
  exit 1
}
# fact <key> <value>: a measured fact; the runner shows it in the matrix table.
fact() {
  echo "VFIOCTL-FACT: $1=$2"
}
# The hardware description the kernel took: acpi when it has ACPI tables, else dt.
firmware_tables() {
  if [ -d /sys/firmware/acpi/tables ]; then echo acpi; else echo dt; fi
}
# The boot the runner asked for (vfiotest.boot=bios|dt|acpi on the kernel command line).
requested_boot() {
  sed -n 's/.*vfiotest\.boot=\([a-z]*\).*/\1/p' /proc/cmdline
}
# acs_state <addr>: enabled, disabled or absent, from the port's config space.
acs_state() {
  gc acs "$1" | sed -n 's/.*state=//p'
}
# The first root port of every topology, at addr=0x10.
ROOT_PORT=0000:00:10.0
# The layout a case expects on aarch64 depends on one fact: whether the kernel enabled ACS on
# the root port. ACPI boots do; device-tree boots of the kernels measured so far do not.
root_port_isolates() {
  [ "$(acs_state $ROOT_PORT)" = enabled ]
}
# The prediction from config space must form the kernel's groups. A vfioctl without
# `groups --predict` is reported as such (fact predict=unavailable), never as agreement. A
# difference is reported (fact predict=differs, and the CHECK FAILED line with both sides) and the
# case goes on; the runner lists the differences and fails the run on them under
# VFIOCTL_QEMU_PREDICT_STRICT=1.
predict_check() {
  rc=0
  gc predict-match || rc=$?
  case $rc in
    0) fact predict match ;;
    3) fact predict unavailable ;;
    *) fact predict differs ;;
  esac
}
# The checks every case starts with: the VM booted as asked, vfioctl's view equals the kernel's
# (and so does its prediction), vfio-pci not loaded yet.
common_start() {
  boot=$(requested_boot)
  want=acpi
  [ "$boot" = dt ] && want=dt
  step "the kernel took its hardware description from $want ($boot boot)" [ "$(firmware_tables)" = "$want" ]
  if [ -e /sys/bus/pci/devices/$ROOT_PORT ]; then
    fact rp-acs "$(acs_state $ROOT_PORT)"
  fi
  step "vfioctl groups --json matches /sys/kernel/iommu_groups" gc groups-match
  step "vfioctl list --json matches sysfs" gc list-match
  predict_check
  if ! preloaded; then
    step "vfio-pci is not loaded before vfioctl runs" gc module vfio_pci absent
  fi
}
# The checks every case ends with: bad input is refused, everything is restored.
common_end() {
  step "bind of a malformed address exits 2" gc exit 2 -- vfioctl bind 0000:zz:00.0
  step "bind of a missing device exits 2" gc exit 2 -- vfioctl bind 0000:3f:1f.7
  step "restore --all with nothing bound exits 0" gc exit 0 -- vfioctl restore --all
  step "vfioctl list --json matches sysfs at the end" gc list-match
}
# partial_bind <addr> <original driver>: `bind --only` one function of a shared group. Either a
# safety rule refuses it (exit 3), or it binds just that function and the group is not viable.
partial_bind() {
  rc=0
  echo "\$ vfioctl bind --only $1"
  vfioctl bind --only "$1" || rc=$?
  echo "exit $rc"
  case $rc in
    0)
      step "bind --only put $1 on vfio-pci" gc driver "$1" vfio-pci
      step "a partially bound group is not viable" gc viable "$1" no
      step "restore --all after the partial bind" gc exit 0 -- vfioctl restore --all
      step "$1 is back on $2" gc driver "$1" "$2"
      step "$1 has no driver_override left" gc override "$1" none
      ;;
    3) echo "bind --only $1 refused by a safety rule (accepted)" ;;
    *) case_fail "vfioctl bind --only $1 exited $rc, expected 0 or 3" ;;
  esac
}
# require_subcommands <sub>...: ends the case as SKIP (exit 77) when this vfioctl build does not
# have one of them yet, so the checks before it still count while the CLI is being written.
# The runner turns SKIP into a failure when VFIOCTL_QEMU_STRICT=1.
require_subcommands() {
  for sub in "$@"; do
    if ! vfioctl "$sub" --help >/dev/null 2>&1; then
      echo "vfioctl has no '$sub' subcommand yet" >>/tmp/skip-reason
      echo "--- SKIP: vfioctl has no '$sub' subcommand yet"
      exit 77
    fi
  done
}
# alive <pid>: the process exists and is not a zombie.
alive() {
  [ -r "/proc/$1/status" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}
# poll <seconds> <command...>: reruns the command every 0.2 s until it succeeds.
poll() {
  n=$(($1 * 5))
  shift
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    [ "$n" -gt 0 ] || return 1
    sleep 0.2
  done
}
# host_device_add <root port id> <device id> <driver>: asks the runner to hot-add a device
# through QMP (see crates/vfioctl-qemu-tests/src/monitor.rs); wait for it with wait_for_device.
host_device_add() {
  echo "VFIOTEST-QMP: {\"execute\":\"device_add\",\"arguments\":{\"driver\":\"$3\",\"bus\":\"$1\",\"id\":\"$2\",\"romfile\":\"\"}}"
}
# wait_for_device <addr> [seconds]: true once the device is in sysfs (default 30 s).
wait_for_device() {
  i=0
  while [ ! -e /sys/bus/pci/devices/$1 ]; do
    i=$((i + 1))
    [ $i -gt "${2:-30}" ] && return 1
    sleep 1
  done
}
