#!/bin/busybox sh
# Guest /init for the vfioctl QEMU tests (busybox sh).
#
# Mounts proc/sys/devtmpfs, loads the NIC drivers, runs /case.sh and always ends with exactly one
# sentinel line on the console, then powers off:
#   VFIOCTL-CASE-RESULT: PASS
#   VFIOCTL-CASE-RESULT: FAIL <reason>
#   VFIOCTL-CASE-RESULT: SKIP <reason>   (the case exited 77: vfioctl lacks what it needs)
#
# vfio-pci is deliberately NOT loaded, so vfioctl's own module loading is exercised. Kernel
# command-line knobs:
#   vfiotest.preload=1    load vfio_iommu_type1 and vfio-pci before the case
#   vfiotest.timeout=<s>  time limit for /case.sh (default 90)
#   vfiotest.shell=1      drop into a shell instead of powering off (hand debugging)
#   vfiotest.boot=<b>     the boot the runner asked for (bios, dt, acpi); cases check it
# The main part runs in a subshell with `set -euo pipefail`; this outer part must not exit on an
# error, because a dying init panics the kernel before the sentinel is printed.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/tmp

PRELOAD=0 TIMEOUT=90 SHELL_AFTER=0
for arg in $(cat /proc/cmdline); do
  case $arg in
    vfiotest.preload=*) PRELOAD=${arg#*=} ;;
    vfiotest.timeout=*) TIMEOUT=${arg#*=} ;;
    vfiotest.shell=*) SHELL_AFTER=${arg#*=} ;;
  esac
done

main() {
  set -euo pipefail
  echo "=== vfioctl guest: kernel $(uname -r) $(uname -m), uptime $(cut -d' ' -f1 /proc/uptime)s"
  for m in e1000e e1000; do
    modprobe "$m"
  done
  if [ "$PRELOAD" = 1 ]; then
    modprobe vfio_iommu_type1
    modprobe vfio-pci
  fi
  echo "=== PCI devices (address vendor:device driver group):"
  for d in /sys/bus/pci/devices/*; do
    drv=-
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    grp=none
    [ -e "$d/iommu_group" ] && grp=$(basename "$(readlink "$d/iommu_group")")
    echo "  ${d##*/} $(cat "$d/vendor"):$(cat "$d/device") $drv $grp"
  done
  echo "=== IOMMU groups:"
  for g in /sys/kernel/iommu_groups/*; do
    [ -d "$g" ] || continue
    echo "  GROUP ${g##*/}: $(ls "$g/devices" | tr '\n' ' ')"
  done
  echo "=== case start, uptime $(cut -d' ' -f1 /proc/uptime)s"
  timeout "$TIMEOUT" sh /case.sh
}

( main )
rc=$?
if [ "$rc" = 0 ]; then
  result=PASS
elif [ "$rc" = 77 ] && [ -s /tmp/skip-reason ]; then
  result="SKIP $(tail -n1 /tmp/skip-reason)"
else
  reason="case exited with status $rc"
  [ "$rc" = 143 ] && reason="case timed out after ${TIMEOUT}s"
  [ -s /tmp/fail-reason ] && reason=$(tail -n1 /tmp/fail-reason)
  result="FAIL $reason"
fi
echo "=== case end, uptime $(cut -d' ' -f1 /proc/uptime)s"
echo "VFIOCTL-CASE-RESULT: $result"
if [ "$SHELL_AFTER" = 1 ]; then
  setsid cttyhack sh
fi
sync
sleep 0.2
poweroff -f
