#!/bin/sh
# x86_64 q35 + intel-iommu, rootports topology: ownership across actors on a real kernel.
#   1. a manual bind, then another libvirt domain's `release end`: the NIC stays on vfio-pci;
#   2. domain a's `prepare` binds the NIC and a's (pretend) QEMU runs: domain b's `prepare` of the
#      same NIC exits 3 naming a, and b's `release end` (libvirt calls it after the failed start)
#      leaves it; nothing in sysfs changes;
#   3. a NIC put on vfio-pci by plain sysfs writes (driver_override + drivers_probe) survives a
#      domain's prepare and release;
#   4. a restore whose unbind hangs in the kernel: a process holds the NIC's VFIO device fd, so
#      vfio-pci's remove() waits in vfio_unregister_group_dev() until it is closed. vfioctl gives
#      up after --timeout, `doctor` names the stuck helper without waiting for the device, and a
#      `recover` started during the hang waits for it and ends with the NIC on e1000e.
# Standard output stays empty for every hook operation but prepare and release (libvirt reads
# that of migrate and restore as XML).
set -euo pipefail
. /lib/case-lib.sh
NIC1=0000:01:00.0
NIC2=0000:02:00.0

# domain_xml <name> <bus>: a libvirt domain whose one hostdev is 0000:<bus>:00.0.
domain_xml() {
  printf "<domain type='kvm'><name>%s</name><devices><hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x%s' slot='0x00' function='0x0'/></source></hostdev></devices></domain>\n" "$1" "$2" >/tmp/"$1".xml
}
# hook <code> <domain> <op> <sub>: libvirt's call of the qemu hook as packaging/libvirt/vfioctl
# makes it (--quiet), XML on standard input; the exit code must be <code>, and standard output
# empty for every operation but prepare and release (libvirt reads some of them as XML).
# Standard error goes to /tmp/hook.err.
hook() {
  want=$1
  shift
  rc=0
  echo "\$ vfioctl --quiet hook libvirt $1 $2 $3 - </tmp/$1.xml"
  vfioctl --quiet hook libvirt "$1" "$2" "$3" - </tmp/"$1".xml >/tmp/hook.out 2>/tmp/hook.err || rc=$?
  sed 's/^/  stderr: /' /tmp/hook.err
  if [ "$rc" != "$want" ]; then
    echo "exit $rc, expected $want"
    return 1
  fi
  case $2 in
    # What vfioctl bound or gave back: libvirt only logs it.
    prepare | release) sed 's/^/  stdout: /' /tmp/hook.out ;;
    *)
      if [ -s /tmp/hook.out ]; then
        echo "standard output is not empty:"
        cat /tmp/hook.out
        return 1
      fi
      ;;
  esac
}
# state: every PCI function's driver and driver_override, the VFIO nodes and vfioctl's journal.
state() {
  for d in /sys/bus/pci/devices/*; do
    drv=none
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    echo "${d##*/} $drv $(cat "$d/driver_override")"
  done
  ls /dev/vfio 2>/dev/null || true
  cat /run/vfioctl/journal.json 2>/dev/null || true
}
unchanged() {
  state >/tmp/after
  if ! cmp -s "$1" /tmp/after; then
    echo "changed:"
    diff "$1" /tmp/after || true
    return 1
  fi
}
stderr_has() {
  grep -qF "$1" /tmp/hook.err || { echo "stderr lacks: $1"; return 1; }
}
journal_owner() {
  grep -q "\"owner\": \"$1\"" /run/vfioctl/journal.json
}
no_journal_entries() {
  ! grep -q '"device"' /run/vfioctl/journal.json 2>/dev/null
}
sysfs_bind() {
  echo vfio-pci >/sys/bus/pci/devices/"$1"/driver_override
  echo "$1" >/sys/bus/pci/drivers/e1000e/unbind
  echo "$1" >/sys/bus/pci/drivers_probe
}
sysfs_unbind() {
  echo >/sys/bus/pci/devices/"$1"/driver_override
  echo "$1" >/sys/bus/pci/drivers/vfio-pci/unbind
  echo "$1" >/sys/bus/pci/drivers_probe
}

common_start
require_subcommands bind restore recover hook doctor
domain_xml a 01
domain_xml b 01
domain_xml c 02
mkdir -p /run/libvirt/qemu

# 1. A manual bind is not another domain's to give back.
step "vfioctl bind $NIC1 (manual) exits 0" gc exit 0 -- vfioctl bind $NIC1
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
state >/tmp/before
step "domain b's release end exits 0, prints nothing" hook 0 b release end
step "the hook says why it left $NIC1" stderr_has "$NIC1 is held by manual"
step "domain b's release changed nothing" unchanged /tmp/before
step "$NIC1 is still on vfio-pci" gc driver $NIC1 vfio-pci
step "vfioctl restore $NIC1 exits 0" gc exit 0 -- vfioctl restore $NIC1
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e

# 2. Domain b's prepare of the NIC domain a holds.
step "domain a's prepare begin binds $NIC1" hook 0 a prepare begin
step "$NIC1 is on vfio-pci for a" gc driver $NIC1 vfio-pci
step "the journal names libvirt:a" journal_owner libvirt:a
sleep 1000 &
QEMU_A=$!
echo $QEMU_A >/run/libvirt/qemu/a.pid
state >/tmp/before
step "domain b's prepare begin exits 3" hook 3 b prepare begin
step "the refusal names the holder" stderr_has "$NIC1 is held by libvirt:a (running, qemu pid $QEMU_A)"
step "the refused prepare changed nothing" unchanged /tmp/before
step "domain b's release end after its failed start exits 0" hook 0 b release end
step "b's release prints nothing on standard output" [ ! -s /tmp/hook.out ]
step "domain b's release changed nothing" unchanged /tmp/before
for op in "migrate begin" "restore begin" "reconnect begin" "attach begin"; do
  # shellcheck disable=SC2086
  step "domain b's $op prints nothing and changes nothing" hook 0 b $op
  step "domain b's $op changed nothing" unchanged /tmp/before
done
kill $QEMU_A
wait $QEMU_A 2>/dev/null || true
rm /run/libvirt/qemu/a.pid
step "domain a's release end gives $NIC1 back" hook 0 a release end
step "$NIC1 is back on e1000e after a's release" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "the journal is empty" no_journal_entries

# 3. Plain sysfs writes, no journal entry: another tool's bind.
# vfioctl unloaded the vfio-pci it had loaded when a's release gave the last device back.
step "vfio-pci loads, as the other tool loads it" modprobe vfio-pci
step "$NIC2 goes to vfio-pci by driver_override + drivers_probe" sysfs_bind $NIC2
step "$NIC2 is on vfio-pci" gc driver $NIC2 vfio-pci
state >/tmp/before
step "domain c's prepare begin exits 0" hook 0 c prepare begin
step "domain c's prepare changed nothing" unchanged /tmp/before
step "domain c's release end exits 0" hook 0 c release end
step "the hook says another tool bound $NIC2" stderr_has "another tool"
step "domain c's release changed nothing" unchanged /tmp/before
step "$NIC2 survived the release on vfio-pci" gc driver $NIC2 vfio-pci
step "$NIC2 goes back by plain sysfs writes" sysfs_unbind $NIC2
step "$NIC2 is on e1000e" gc driver $NIC2 e1000e

# 4. A hung unbind, and recover during it.
# vfio.ko names vfio_iommu_type1 as a softdep, which busybox modprobe ignores.
step "vfio_iommu_type1 loads" modprobe vfio_iommu_type1
step "vfioctl bind $NIC1 exits 0" gc exit 0 -- vfioctl bind $NIC1
# The binary itself, not the gc function: $! must be the process that holds the fd.
vfioctl-guest-check hold $NIC1 >/tmp/hold.out 2>&1 &
HOLD=$!
step "a process holds $NIC1's VFIO device fd" poll 20 grep -q 'hold:' /tmp/hold.out
cat /tmp/hold.out
dmesg -c >/dev/null
rc=0
vfioctl restore $NIC1 --timeout 2 >/tmp/restore.out 2>/tmp/restore.err || rc=$?
sed 's/^/  /' /tmp/restore.out /tmp/restore.err
step "the restore gives up on the hung unbind (exit 1)" [ "$rc" = 1 ]
step "the restore says the unbind is stuck" grep -q 'unbind' /tmp/restore.out /tmp/restore.err
step "the kernel says vfio-pci's remove waits for the device's user" poll 15 sh -c "dmesg | grep -q 'blocked until released by user'"
dmesg | grep vfio-pci || true
# The driver link goes before remove() runs: a restore that only looked at sysfs now would take
# the NIC for a device with no driver.
fact hung-driver "$(basename "$(readlink /sys/bus/pci/devices/$NIC1/driver 2>/dev/null)" 2>/dev/null || echo none)"
HELPER=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' /run/vfioctl/journal.json | head -n 1)
step "the journal lists the write helper" [ -n "$HELPER" ]
step "the helper is still in the kernel" alive "$HELPER"
fact helper-state "$(awk '/^State:/ {print $2}' /proc/"$HELPER"/status)"
# While the unbind holds the device lock, a read of the NIC's driver_override waits for it too
# (the kernel's driver_override_show takes device_lock): measured here. A watchdog lets the holder
# go after 40 s so that a blocked reader cannot hang the case.
(sleep 40; kill $HOLD 2>/dev/null) &
WATCHDOG=$!
cat /sys/bus/pci/devices/$NIC1/driver_override >/tmp/ovr.out 2>&1 &
READER=$!
sleep 1
if alive $READER; then fact override-read-during-hang blocks; else fact override-read-during-hang returns; fi
# vfioctl reads nothing of a device its live helper unbinds but the driver link, so doctor
# answers during the hang.
vfioctl doctor $NIC1 >/tmp/doctor.out 2>&1 &
DOCTOR=$!
if poll 20 sh -c "! grep -q '^State:' /proc/$DOCTOR/status 2>/dev/null || grep -q '^State:.*Z' /proc/$DOCTOR/status"; then
  rc=0
  wait $DOCTOR || rc=$?
  cat /tmp/doctor.out
  fact doctor-during-hang "exit-$rc"
else
  fact doctor-during-hang blocks
  case_fail "vfioctl doctor did not return during the hang"
fi
step "doctor names the stuck helper" grep -q "helper-stuck.*pid $HELPER" /tmp/doctor.out
step "doctor exits 4" [ "$rc" = 4 ]
vfioctl recover --timeout 30 >/tmp/recover.out 2>/tmp/recover.err &
RECOVER=$!
sleep 2
step "recover waits while the unbind is stuck" alive $RECOVER
step "$NIC1 is not given back under the stuck unbind" sh -c "! readlink /sys/bus/pci/devices/$NIC1/driver | grep -q e1000e"
kill $HOLD 2>/dev/null || true
wait $HOLD 2>/dev/null || true
kill $WATCHDOG 2>/dev/null || true
rc=0
wait $RECOVER || rc=$?
sed 's/^/  /' /tmp/recover.out /tmp/recover.err
step "recover exits 0 once the unbind returned" [ "$rc" = 0 ]
step "$NIC1 ends on its original driver" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "/dev/vfio node of $NIC1's group is gone" gc vfio-node $NIC1 absent
step "nothing is left in the journal" no_journal_entries
rc=0
vfioctl doctor $NIC1 >/tmp/doctor.out 2>&1 || rc=$?
step "doctor no longer names a helper" sh -c "! grep -q helper- /tmp/doctor.out"
common_end
