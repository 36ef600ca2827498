#!/bin/sh
# x86_64: root port -> pcie-pci-bridge -> two conventional e1000. The bridge (no driver on x86)
# and both NICs form one group (requester-ID alias through the bridge).
set -euo pipefail
. /lib/case-lib.sh
BR=0000:01:00.0
NIC1=0000:02:01.0
NIC2=0000:02:02.0

common_start
step "bridge and both NICs share one group" gc expect-group $BR,$NIC1,$NIC2 --shared yes \
  --reason pci_bridge_alias --reason-device $BR
step "the bridge has no driver" gc driver $BR none
require_subcommands bind restore check
partial_bind $NIC1 e1000

step "vfioctl bind $NIC1 (whole group) exits 0" gc exit 0 -- vfioctl bind $NIC1
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
step "$NIC2 is on vfio-pci" gc driver $NIC2 vfio-pci
step "the bridge still has no driver" gc driver $BR none
step "the group is viable" gc viable $NIC2 yes

step "vfioctl restore --all exits 0" gc exit 0 -- vfioctl restore --all
step "$NIC1 is back on e1000" gc driver $NIC1 e1000
step "$NIC2 is back on e1000" gc driver $NIC2 e1000
common_end
