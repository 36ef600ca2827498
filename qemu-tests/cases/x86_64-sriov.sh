#!/bin/sh
# x86_64 q35 + intel-iommu, QEMU 8.0+'s igb (82576) behind a root port with ACS: vfioctl creates
# VFs without autoprobe, sets a VF's MAC through netlink, binds the VF (its own group), renders
# one root port per VF, refuses a VF count change while a VF is held, and restore gives
# everything back (the MAC, the VF count, the PF on igb). Then `apply` of a definition whose
# [[sriov]] table makes the VFs, with the PF named by its permanent MAC after its current MAC was
# changed: the VFs are made without autoprobe, VF 1's MAC is set (read back through netlink), VF 1
# is bound, and `restore --vm` gives it all back.
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
# VF 1 is function 2 of its slot: the kernel never counts a VF as multifunction, so neither may
# the prediction (it had joined VF 1 to VF 0 for want of ACS).
step "vfioctl groups --predict forms the kernel's groups with the VFs" gc predict-match

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

IF=$(basename /sys/bus/pci/devices/$PF/net/*)
PERM=$(cat /sys/class/net/$IF/address)
fact permaddr "$PERM"
ip link set dev "$IF" address 02:00:00:00:00:99
step "the PF's current MAC is no longer its permanent one" [ "$(cat /sys/class/net/$IF/address)" != "$PERM" ]
MAC2=52:54:00:ab:cd:01
rm /etc/vfioctl/vms/sriov.toml
printf 'version = 1\nboot = true\n[[sriov]]\npf = "%s"\nnumvfs = 2\n[[vf]]\npf = "%s"\nindex = 1\nmac = "%s"\n[qemu]\nmachine = "q35"\n' \
  "$PERM" "$PERM" $MAC2 >/etc/vfioctl/vms/web.toml
vfioctl vm check web || true
step "apply of [[sriov]] numvfs = 2 and vf { pf = permanent MAC, index = 1, mac } exits 0" \
  gc exit 0 -- vfioctl apply
step "apply made 2 VFs" [ "$(numvfs)" = 2 ]
step "apply set sriov_drivers_autoprobe to 0" [ "$(cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe)" = 0 ]
VF1=$(vf_addr 1)
step "VF 1 ($VF1) is on vfio-pci" gc driver "$VF1" vfio-pci
step "VF 0 landed on no driver" gc driver "$(vf_addr 0)" none
vfioctl vf list $PF --json >/tmp/vfs2.json
step "the PF's netlink reports $MAC2 on VF 1" grep -q "$MAC2" /tmp/vfs2.json
vfioctl status >/tmp/status.txt || true
cat /tmp/status.txt
step "status shows VF 1 bound with its MAC" grep -q "vf 1 of $PF  $VF1  bound, mac $MAC2" /tmp/status.txt
vfioctl restore --vm web >/tmp/restore2.txt 2>&1 || rc=$?
cat /tmp/restore2.txt
step "restore --vm web gives the VF count back" grep -q "$PF sriov_numvfs 0, sriov_drivers_autoprobe 1 *\[restored\]" /tmp/restore2.txt
step "restore --vm web removes the VFs" [ "$(numvfs)" = 0 ]
step "restore --vm web puts autoprobe back to 1" [ "$(cat /sys/bus/pci/devices/$PF/sriov_drivers_autoprobe)" = 1 ]
step "the PF is still on igb" gc driver $PF igb
common_end
