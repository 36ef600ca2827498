#!/bin/sh
# x86_64 q35, two root ports with one e1000e (8086:10d3) each: `vfioctl boot install`'s rule run
# by Debian's real systemd-udevd. The devices are added afresh as at a cold boot (e1000e unloaded,
# both functions removed, then a bus rescan), so udev handles their `add` events before any
# driver can probe them.
set -euo pipefail
. /lib/case-lib.sh
NIC1=0000:01:00.0
NIC2=0000:02:00.0
SYS=/sys/bus/pci/devices

define() {
  mkdir -p /etc/vfioctl/vms
  printf 'version = 1\nboot = true\n[[device]]\naddress = "%s"\nid = "%s"\n' "$NIC1" "$1" \
    >/etc/vfioctl/vms/nic.toml
}
# Removes both NICs with e1000e unloaded, then adds them again as the kernel does at boot.
cold_add() {
  for n in $NIC1 $NIC2; do
    if [ -e $SYS/$n/driver ]; then
      echo $n >$SYS/$n/driver/unbind
    fi
    echo >$SYS/$n/driver_override
  done
  modprobe -r e1000e
  for n in $NIC1 $NIC2; do echo 1 >$SYS/$n/remove; done
  dmesg -c >/dev/null
  echo 1 >/sys/bus/pci/rescan
  udevadm settle --timeout=30
}
no_e1000e_probe_of() {
  ! dmesg | grep -q "e1000e $1" && [ ! -e /sys/bus/pci/drivers/e1000e/$1 ]
}
boot_status_has() {
  vfioctl boot status --json >/tmp/boot-status.json || true
  cat /tmp/boot-status.json
  grep -q "$1" /tmp/boot-status.json
}

common_start
step "$NIC1 starts on e1000e" gc driver $NIC1 e1000e
require_subcommands boot

define 8086:10d3
step "boot install (rule only) exits 0" gc exit 0 -- vfioctl boot install --initramfs none
step "the rule is written" test -s /etc/udev/rules.d/61-vfioctl-boot.rules
mkdir -p /run/udev
step "systemd-udevd starts" /usr/lib/systemd/systemd-udevd --daemon
# As dracut does (rd.driver.pre): vfio-pci is loaded before the devices' add events.
modprobe vfio_iommu_type1
modprobe vfio-pci
cold_add
dmesg | grep -E "e1000e|vfio" || true
step "$NIC1 was added straight onto vfio-pci" gc driver $NIC1 vfio-pci
step "$NIC1 has driver_override vfio-pci" gc override $NIC1 vfio-pci
step "e1000e never probed $NIC1 (dmesg, e1000e's sysfs)" no_e1000e_probe_of $NIC1
step "the identical $NIC2 is on e1000e" gc driver $NIC2 e1000e
step "$NIC2 has no override" gc override $NIC2 none
step "boot status exits 0" gc exit 0 -- vfioctl boot status
step "boot status: no host driver bound $NIC1" boot_status_has '"host_driver": null'

# A hot-add while e1000e is loaded. The kernel sends the add uevent when it scans the device and
# probes drivers a moment later, after assigning resources; whoever comes first, the device must
# end on vfio-pci: either udev set the override before the probe (e1000e never bound it), or
# e1000e bound it, and the rule's bind line moved it and recorded e1000e.
echo $NIC1 >/sys/bus/pci/drivers/vfio-pci/unbind
echo >$SYS/$NIC1/driver_override
echo 1 >$SYS/$NIC1/remove
dmesg -c >/dev/null
echo 1 >/sys/bus/pci/rescan
udevadm settle --timeout=30
step "the re-added $NIC1 ends on vfio-pci" gc driver $NIC1 vfio-pci
if no_e1000e_probe_of $NIC1; then
  echo "udev set the override before the kernel probed $NIC1"
  step "boot status: no host driver bound the re-added $NIC1" boot_status_has '"host_driver": null'
  step "boot status exits 0" gc exit 0 -- vfioctl boot status
else
  echo "e1000e probed $NIC1 before udev set the override"
  step "boot status names e1000e as having bound it first" boot_status_has '"host_driver": "e1000e"'
  step "boot status exits 4 after a host driver touched it" gc exit 4 -- vfioctl boot status
fi

# Hotplug through the QEMU monitor: e1000e cards hot-added on the empty hotplug root ports rp3
# (bus 03) and rp4 (bus 04), which a definition names. With e1000e not loaded, as for a card
# that is the first of its kind, udev's add event sets the override before the module is loaded
# for it: the card goes straight to vfio-pci. With e1000e loaded the kernel probes the card before
# udev sees it; it must end on vfio-pci all the same.
HOT1=0000:03:00.0
HOT2=0000:04:00.0
printf 'version = 1\nboot = true\n[[device]]\naddress = "%s"\nid = "8086:10d3"\n[[device]]\naddress = "%s"\nid = "8086:10d3"\n' \
  "$HOT1" "$HOT2" >/etc/vfioctl/vms/hot.toml
step "boot install with the hotplug definition exits 0" gc exit 0 -- vfioctl boot install --initramfs none
udevadm control --reload || true
modprobe -r e1000e
dmesg -c >/dev/null
host_device_add rp3 hot1 e1000e
step "$HOT1 appeared after device_add" wait_for_device $HOT1
udevadm settle --timeout=30
dmesg | grep -E "e1000e|vfio|pciehp" || true
step "the hot-added $HOT1 went straight to vfio-pci" gc driver $HOT1 vfio-pci
step "e1000e never probed $HOT1 (dmesg, e1000e's sysfs)" no_e1000e_probe_of $HOT1
step "udev loaded e1000e for it, which took $NIC2 back" gc driver $NIC2 e1000e
host_device_add rp4 hot2 e1000e
step "$HOT2 appeared after device_add" wait_for_device $HOT2
udevadm settle --timeout=30
step "the hot-added $HOT2 ends on vfio-pci though e1000e was loaded" gc driver $HOT2 vfio-pci
if no_e1000e_probe_of $HOT2; then
  echo "udev set the override before the kernel probed $HOT2"
else
  echo "e1000e probed $HOT2 before udev set the override; the rule moved it"
  step "boot status names e1000e as having bound $HOT2 first" boot_status_has '"host_driver": "e1000e"'
fi
rm /etc/vfioctl/vms/hot.toml

# Identity drift: the definition expects another device at the address.
define 8086:10d4
step "boot install for the drifted definition exits 0" gc exit 0 -- vfioctl boot install --initramfs none
# udevd also notices changed rule files by itself; the reload only hurries it.
udevadm control --reload || true
step "systemd-udevd is still running" pidof systemd-udevd
cold_add
step "the drifted $NIC1 is left on e1000e" gc driver $NIC1 e1000e
step "$NIC1 got no override" gc override $NIC1 none
step "boot status exits 4" gc exit 4 -- vfioctl boot status
step "boot status says why" boot_status_has 'should be 8086:10d4 but is 8086:10d3: the rule left it to the host'

step "boot remove exits 0" gc exit 0 -- vfioctl boot remove
step "the rule is gone" test ! -e /etc/udev/rules.d/61-vfioctl-boot.rules
udevadm control --exit || true
common_end
