#!/bin/sh
# aarch64 virt + SMMUv3, two root ports (QEMU gives them ACS) with one e1000e each. Whether each
# NIC is alone depends on the kernel enabling that ACS: on a device-tree boot of 6.1 and 6.12 it
# does not, and each NIC shares a group with its root port; ACPI boots and 7.x isolate them.
set -euo pipefail
. /lib/case-lib.sh
RP1=$ROOT_PORT
RP2=0000:00:11.0
NIC1=0000:01:00.0
NIC2=0000:02:00.0

common_start
if [ "$(requested_boot)" = acpi ]; then
  step "ACPI boot: the kernel enabled ACS on the root port" gc acs $RP1 enabled
fi
if root_port_isolates; then
  step "$NIC1 is alone in its group (single)" gc expect-group $NIC1 --shared no --reason single
  step "$NIC2 is alone in its group (single)" gc expect-group $NIC2 --shared no --reason single
  step "root port $RP1 is alone" gc expect-group $RP1 --shared no
else
  step "$NIC1 shares a group with its root port" gc expect-group $RP1,$NIC1 \
    --reason acs_missing_upstream --reason-device $RP1
  step "$NIC2 shares a group with its root port" gc expect-group $RP2,$NIC2 \
    --reason acs_missing_upstream --reason-device $RP2
fi

require_subcommands bind restore check
step "vfioctl bind $NIC1 exits 0" gc exit 0 -- vfioctl bind $NIC1
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
step "root port $RP1 stays on pcieport" gc driver $RP1 pcieport
step "$NIC2 is untouched" gc driver $NIC2 e1000e
step "/dev/vfio node of $NIC1's group exists" gc vfio-node $NIC1 present
step "$NIC1's group is viable" gc viable $NIC1 yes

step "vfioctl restore $NIC1 exits 0" gc exit 0 -- vfioctl restore $NIC1
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "/dev/vfio node of $NIC1's group is gone" gc vfio-node $NIC1 absent
common_end
