#!/bin/sh
# aarch64 virt + SMMUv3: root port -> pcie-pci-bridge -> two e1000. The second e1000 aliases to
# the first one's stream ID and gets no IOMMU group at all; the bridge is bound to shpchp, so the
# group of the bridge and the first NIC can never become viable. That group holds the root port
# too when the kernel did not enable ACS on it (device-tree boot before 7.x).
set -euo pipefail
. /lib/case-lib.sh
RP=0000:00:10.0
BR=0000:01:00.0
NIC1=0000:02:01.0
NIC2=0000:02:02.0

common_start
if [ "$(requested_boot)" = acpi ]; then
  step "ACPI boot: the kernel enabled ACS on the root port" gc acs $RP enabled
fi
if root_port_isolates; then
  step "root port is alone" gc expect-group $RP --shared no
  step "bridge and $NIC1 share one group" gc expect-group $BR,$NIC1 --shared yes \
    --reason pci_bridge_alias --reason-device $BR
else
  step "root port, bridge and $NIC1 share one group" gc expect-group $RP,$BR,$NIC1 --shared yes \
    --reason 'acs_missing_upstream|pci_bridge_alias' --reason-device "$RP|$BR"
fi
step "$NIC2 has no IOMMU group" gc expect-no-group $NIC2
step "the bridge is bound to shpchp" gc driver $BR shpchp

require_subcommands bind restore check
step "vfioctl bind $NIC2 (no group) fails with exit 1" gc exit 1 -- vfioctl bind $NIC2
step "$NIC2 is rolled back to e1000" gc driver $NIC2 e1000
step "$NIC2 has no driver_override left" gc override $NIC2 none

partial_bind $NIC1 e1000

step "vfioctl bind $NIC1 (whole group, shpchp bridge) fails or is refused" gc exit '1|3' -- vfioctl bind $NIC1
step "$NIC1 is still (or again) on e1000" gc driver $NIC1 e1000
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "the bridge is still on shpchp" gc driver $BR shpchp
step "root port is still on pcieport" gc driver $RP pcieport
common_end
