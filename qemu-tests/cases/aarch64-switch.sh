#!/bin/sh
# aarch64 virt + SMMUv3, DT boot: the kernel never enables ACS on the root port, so the root
# port, the switch ports and both NICs form one group.
set -euo pipefail
. /lib/case-lib.sh
RP=0000:00:10.0
UP=0000:01:00.0
DN1=0000:02:00.0
DN2=0000:02:01.0
NIC1=0000:03:00.0
NIC2=0000:04:00.0

common_start
step "everything below the root port shares one group" gc expect-group $RP,$UP,$DN1,$DN2,$NIC1,$NIC2 \
  --shared yes --reason acs_missing_upstream --reason-device $RP
require_subcommands bind restore check
partial_bind $NIC1 e1000e

step "vfioctl bind $NIC1 (whole group) exits 0" gc exit 0 -- vfioctl bind $NIC1
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
step "$NIC2 is on vfio-pci" gc driver $NIC2 vfio-pci
step "root port stays on pcieport" gc driver $RP pcieport
step "downstream port stays on pcieport" gc driver $DN2 pcieport
step "the group is viable" gc viable $NIC2 yes

step "vfioctl restore --all exits 0" gc exit 0 -- vfioctl restore --all
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC2 is back on e1000e" gc driver $NIC2 e1000e
common_end
