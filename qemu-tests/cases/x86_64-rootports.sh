#!/bin/sh
# x86_64 q35 + intel-iommu, two root ports with ACS: each NIC is alone in its group.
set -euo pipefail
. /lib/case-lib.sh
NIC1=0000:01:00.0
NIC2=0000:02:00.0

common_start
step "$NIC1 is alone in its group (single)" gc expect-group $NIC1 --shared no --reason single
step "$NIC2 is alone in its group (single)" gc expect-group $NIC2 --shared no --reason single
step "root port 0000:00:10.0 is alone" gc expect-group 0000:00:10.0 --shared no --reason single
step "$NIC1 starts on e1000e" gc driver $NIC1 e1000e

require_subcommands bind restore check
step "vfioctl bind $NIC1 exits 0" gc exit 0 -- vfioctl bind $NIC1
step "vfio-pci is loaded after the bind" gc module vfio_pci loaded
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
step "$NIC2 is untouched" gc driver $NIC2 e1000e
step "/dev/vfio node of $NIC1's group exists" gc vfio-node $NIC1 present
step "$NIC1's group is viable" gc viable $NIC1 yes
step "vfioctl list --json matches sysfs while bound" gc list-match

step "vfioctl restore $NIC1 exits 0" gc exit 0 -- vfioctl restore $NIC1
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "/dev/vfio node of $NIC1's group is gone" gc vfio-node $NIC1 absent
common_end
