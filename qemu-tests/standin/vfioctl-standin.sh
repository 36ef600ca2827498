#!/bin/sh
# A stand-in for the vfioctl CLI inside the guest, in busybox sh, to self-test the case scripts
# while the real bind/restore/check are being written. It is NOT vfioctl: it implements the
# contract the cases assume with the plain sysfs sequence (driver_override, unbind,
# drivers_probe) and delegates everything else (groups, list, ...) to the real binary, packed as
# /bin/vfioctl-real. Use it through the runner (see qemu-tests/README.md, "Self-test").
#
#   bind [--only] <addr>   whole group (endpoints only; bridges stay), or that function only
#   restore <addr>|--all   back to the recorded driver
#   check <group>          viable / not viable via vfioctl-guest-check group-status
# exit codes: 0 ok, 1 failed and rolled back, 2 bad input, 3 refused by a safety rule
set -euo pipefail

PCI=/sys/bus/pci/devices
STATE=/run/vfioctl-standin
mkdir -p "$STATE"

die() {
  echo "vfioctl-standin: $2" >&2
  exit "$1"
}
valid_addr() {
  echo "$1" | grep -Eq '^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$'
}
driver_of() {
  if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi
}
is_bridge() {
  case $(cat "$PCI/$1/class") in 0x0604*) return 0 ;; *) return 1 ;; esac
}
group_of() {
  [ -e "$PCI/$1/iommu_group" ] && basename "$(readlink "$PCI/$1/iommu_group")"
}
# to_driver <addr> <override or empty>: set the override, unbind, reprobe.
reprobe() {
  echo "$2" >"$PCI/$1/driver_override"
  if [ -e "$PCI/$1/driver" ]; then echo "$1" >"$PCI/$1/driver/unbind"; fi
  echo "$1" >/sys/bus/pci/drivers_probe 2>/dev/null || true
}
restore_one() {
  [ -e "$STATE/$1" ] || return 0
  reprobe "$1" ""
  rm -f "$STATE/$1"
  echo "restored $1: $(driver_of "$1")"
}

cmd_bind() {
  only=0
  if [ "${1:-}" = --only ]; then only=1; shift; fi
  [ $# = 1 ] || die 2 "usage: bind [--only] <addr>"
  valid_addr "$1" || die 2 "malformed address $1"
  [ -e "$PCI/$1" ] || die 2 "no device $1"
  targets=$1
  if [ "$only" = 0 ] && g=$(group_of "$1"); then
    targets=""
    for d in /sys/kernel/iommu_groups/"$g"/devices/*; do
      d=${d##*/}
      is_bridge "$d" && continue
      targets="$targets $d"
    done
    # Safety rule: a group member that is neither an endpoint we take nor on a DMA-owner-safe
    # driver keeps the group from ever becoming viable.
    for d in /sys/kernel/iommu_groups/"$g"/devices/*; do
      d=${d##*/}
      is_bridge "$d" || continue
      case $(driver_of "$d") in
        none | pcieport | pci-stub | vfio-pci) ;;
        *) die 3 "$d in group $g is bound to $(driver_of "$d"); the group can never be viable" ;;
      esac
    done
  fi
  modprobe vfio-pci
  modprobe vfio_iommu_type1 || true
  done_list=""
  for d in $targets; do
    [ -e "$STATE/$d" ] || driver_of "$d" >"$STATE/$d"
    reprobe "$d" vfio-pci
    done_list="$done_list $d"
    if [ "$(driver_of "$d")" != vfio-pci ]; then
      for r in $done_list; do restore_one "$r"; done
      die 1 "binding $d to vfio-pci failed; rolled back"
    fi
    echo "bound $d to vfio-pci"
  done
}

cmd_restore() {
  [ $# = 1 ] || die 2 "usage: restore <addr>|--all"
  if [ "$1" = --all ]; then
    for f in "$STATE"/*; do
      [ -e "$f" ] && restore_one "${f##*/}"
    done
    return 0
  fi
  valid_addr "$1" || die 2 "malformed address $1"
  [ -e "$PCI/$1" ] || die 2 "no device $1"
  if g=$(group_of "$1"); then
    for d in /sys/kernel/iommu_groups/"$g"/devices/*; do restore_one "${d##*/}"; done
  else
    restore_one "$1"
  fi
}

cmd_check() {
  [ $# = 1 ] || die 2 "usage: check <group>"
  if [ -e "/dev/vfio/$1" ] && vfioctl-guest-check group-status "$1" | grep -q 'viable=true'; then
    echo viable
  else
    echo "not viable"
    return 1
  fi
}

sub=${1:-}
[ $# -gt 0 ] && shift
case $sub in
  bind | restore | check)
    if [ "${1:-}" = --help ]; then echo "vfioctl-standin $sub"; exit 0; fi
    "cmd_$sub" "$@"
    ;;
  *) exec vfioctl-real "$sub" "$@" ;;
esac
