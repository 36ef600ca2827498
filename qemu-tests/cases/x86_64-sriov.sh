#!/bin/sh
# x86_64 q35 + intel-iommu, QEMU 8.0+'s igb (82576) behind a root port with ACS: vfioctl creates
# VFs without autoprobe, sets a VF's MAC through netlink, binds the VF (its own group), renders
# one root port per VF, refuses a VF count change while a VF is held, and restore gives
# everything back (the MAC, the VF count, the PF on igb).
set -euo pipefail
. /lib/case-lib.sh
PF=0000:01:00.0
MAC=52:54:00:12:34:56

vf_addr() {
  basename "$(readlink /sys/bus/pci/devices/$PF/virtfn$1)"
}
numvfs() {
  cat /sys/bus/pci/devices/$PF/sriov_numvfs
}

common_start
modprobe igb
i=0
while ! gc driver $PF igb >/dev/null 2>&1 && [ $i -lt 20 ]; do
  sleep 0.5
  i=$((i + 1))
done
step "$PF is on igb" gc driver $PF igb
fact totalvfs "$(cat /sys/bus/pci/devices/$PF/sriov_totalvfs)"
modprobe igbvf || true
for ifdir in /sys/bus/pci/devices/$PF/net/*; do
  ip link set "$(basename "$ifdir")" up
done

require_subcommands vf
step "vfioctl vf create $PF 2 exits 0" gc exit 0 -- vfioctl vf create $PF 2
step "sriov_numvfs is 2" [ "$(numvfs)" = 2 ]
step "sriov_drivers_autoprobe is 0" [ "$(cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe)" = 0 ]
VF0=$(vf_addr 0)
VF1=$(vf_addr 1)
fact vfs "$VF0,$VF1"
step "VF 1 ($VF1) landed on no driver" gc driver "$VF1" none
step "VF 1 is alone in its group" gc expect-group "$VF1" --shared no
step "vfioctl groups --json matches sysfs with the VFs" gc groups-match

step "vfioctl vf set $PF 1 --mac $MAC exits 0" gc exit 0 -- vfioctl vf set $PF 1 --mac $MAC
vfioctl vf list $PF --json >/tmp/vfs.json
cat /tmp/vfs.json
step "the PF's netlink reports $MAC on VF 1" grep -q "$MAC" /tmp/vfs.json

step "vfioctl bind $VF1 exits 0" gc exit 0 -- vfioctl bind "$VF1"
step "VF 1 is on vfio-pci" gc driver "$VF1" vfio-pci
step "VF 1's group is viable" gc viable "$VF1" yes

vfioctl qemu-args "$VF0" "$VF1" >/tmp/args.txt
cat /tmp/args.txt
step "qemu-args gives each VF its own root port" [ "$(grep -c pcie-root-port /tmp/args.txt)" = 2 ]
mkdir -p /etc/vfioctl/vms
printf 'version = 1\nvf = [{ pf = "%s", index = 1 }, { pf = "%s", index = 0 }]\n[qemu]\nmachine = "q35"\n' \
  $PF $PF >/etc/vfioctl/vms/sriov.toml
vfioctl vm qemu-args sriov >/tmp/vm-args.txt
cat /tmp/vm-args.txt
step "vm qemu-args of vf = { pf, index } entries: one root port per VF" \
  [ "$(grep -c pcie-root-port /tmp/vm-args.txt)" = 2 ]
step "vm qemu-args names VF 1 by its address" grep -q "host=$VF1" /tmp/vm-args.txt

rc=0
vfioctl vf create $PF 3 >/tmp/refused.txt 2>&1 || rc=$?
cat /tmp/refused.txt
step "vf create while VF 1 is held exits 3" [ "$rc" = 3 ]
step "the refusal names the held VF" grep -q "$VF1 on vfio-pci" /tmp/refused.txt
step "nothing changed: still 2 VFs" [ "$(numvfs)" = 2 ]
step "nothing changed: VF 1 still on vfio-pci" gc driver "$VF1" vfio-pci

vfioctl restore --all >/tmp/restore.txt 2>&1 || rc=$?
cat /tmp/restore.txt
step "restore puts VF 1's MAC back" grep -q "link: mac 00:00:00:00:00:00 *\[restored\]" /tmp/restore.txt
step "restore removes the VFs" [ "$(numvfs)" = 0 ]
step "the PF is on igb" gc driver $PF igb
step "sriov_drivers_autoprobe is back to 1" [ "$(cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe)" = 1 ]
common_end
