#!/bin/sh
# x86_64 q35 + intel-iommu: vfioctl refuses what the guest itself needs, and the refusals change
# nothing in sysfs. The guest's own network is a virtio-net-pci (iommu_platform=on) carrying its
# default route; a qemu-xhci has a usb-storage disk mounted; two NVMe controllers of one subsystem
# share the namespace the guest mounts (native multipath: nvme<S>n1 sits under the subsystem, the
# path disks nvme<S>c0n1 and nvme<S>c1n1 under the controllers); the q35 chipset's LPC bridge 00:1f.0
# shares its group with the AHCI and SMBus functions.
set -euo pipefail
. /lib/case-lib.sh
NET=0000:00:02.0
XHCI=0000:00:04.0
NVME_A=0000:00:05.0
NVME_B=0000:00:06.0
LPC=0000:00:1f.0
SATA=0000:00:1f.2

# refused <description> <grep pattern> <vfioctl args...>: exit 3, and the refusal says why.
refused() {
  desc=$1 pattern=$2
  shift 2
  rc=0
  out=$(vfioctl "$@" 2>&1) || rc=$?
  echo "\$ vfioctl $*"
  echo "$out"
  echo "exit $rc"
  [ "$rc" = 3 ] || case_fail "$desc: exit $rc, expected 3"
  echo "$out" | grep -q -- "$pattern" || case_fail "$desc: no '$pattern' in the refusal"
}

common_start
modprobe virtio_pci
modprobe virtio_net
step "$NET starts on virtio-pci" gc driver $NET virtio-pci
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2 dev eth0
modprobe xhci_pci
modprobe usb_storage
modprobe sd_mod
modprobe vfat
poll 30 test -e /sys/class/block/sda1 || case_fail "the usb-storage disk (sda1) never appeared"
mkdir -p /mnt/usb
mount -t vfat -o ro /dev/sda1 /mnt/usb
step "$XHCI starts on xhci_hcd" gc driver $XHCI xhci_hcd
modprobe nvme
# The subsystem takes the instance of whichever controller registers it first: nvme0n1 or
# nvme1n1, the one whose directory is under the subsystem.
multipath_disk() {
  for b in /sys/class/block/nvme*n1; do
    case $(readlink "$b") in */nvme-subsystem/nvme-subsys*/*) echo "${b##*/}" && return 0 ;; esac
  done
  return 1
}
multipath_partition() {
  head=$(multipath_disk) && [ -e "/sys/class/block/${head}p1" ]
}
if ! poll 60 multipath_partition; then
  dmesg | grep -i nvme
  case_fail "no partition of a multipath NVMe disk appeared; block devices: $(ls /sys/class/block)"
fi
HEAD=$(multipath_disk)
step "$HEAD (under the subsystem) has its partition" test -e /sys/class/block/${HEAD}p1
mkdir -p /mnt/nvme
mount -t vfat -o ro /dev/${HEAD}p1 /mnt/nvme
step "$NVME_A starts on nvme" gc driver $NVME_A nvme
step "$NVME_B starts on nvme" gc driver $NVME_B nvme

step "$NET is behind the IOMMU (it has a group)" test -e /sys/bus/pci/devices/$NET/iommu_group
# Every PCI function's driver and override, to show that the refusals change nothing.
pci_state() {
  for d in /sys/bus/pci/devices/*; do
    echo "${d##*/} $(readlink $d/driver 2>/dev/null | sed 's|.*/||') $(cat $d/driver_override)"
  done
}
pci_state >/tmp/pci-before

require_subcommands bind
refused "bind of the virtio-net carrying the default route" \
  "$NET (virtio-pci) -> virtio[0-9]* -> eth0 carries the default route" bind $NET
refused "bind of the xHCI with a mounted USB disk" \
  "$XHCI (xhci_hcd) -> usb [0-9-]* -> sda -> sda1 mounted on /mnt/usb" bind $XHCI
refused "bind of the first controller of the mounted multipath disk" \
  "$NVME_A (nvme) -> nvme[0-9]* -> nvme[0-9]c[0-9]n1 -> $HEAD -> ${HEAD}p1 mounted on /mnt/nvme" \
  bind $NVME_A
refused "bind of the second controller of the mounted multipath disk" \
  "$NVME_B (nvme) -> nvme[0-9]* -> nvme[0-9]c[0-9]n1 -> $HEAD -> ${HEAD}p1 mounted on /mnt/nvme" \
  bind $NVME_B
refused "bind of the LPC bridge" "LPC bridge the host needs" bind $LPC
refused "bind of the AHCI in the LPC bridge's group" "holds the LPC bridge $LPC" bind $SATA
refused "bind --force of the LPC bridge's group" "cannot go to a VM on this board" \
  bind --force $SATA

step "$NET is still on virtio-pci" gc driver $NET virtio-pci
step "$NET has no driver_override" gc override $NET none
step "$XHCI is still on xhci_hcd" gc driver $XHCI xhci_hcd
step "$XHCI has no driver_override" gc override $XHCI none
step "$SATA has no driver_override" gc override $SATA none
step "$NVME_A is still on nvme" gc driver $NVME_A nvme
step "$NVME_B is still on nvme" gc driver $NVME_B nvme
step "$LPC has no driver_override" gc override $LPC none
pci_state >/tmp/pci-after
step "no PCI function changed driver or override" cmp /tmp/pci-before /tmp/pci-after
step "the default route is still there" grep -q '^eth0	00000000' /proc/net/route
step "the USB disk is still mounted" grep -q ' /mnt/usb ' /proc/mounts
step "the NVMe disk is still mounted" grep -q ' /mnt/nvme ' /proc/mounts
if ! preloaded; then
  step "refusals loaded no vfio-pci" gc module vfio_pci absent
fi
umount /mnt/usb
umount /mnt/nvme
common_end
