#!/bin/sh
# aarch64 virt + SMMUv3: one root port, a two-function e1000e without ACS: the functions always
# share a group, and the root port joins it when the kernel left its ACS off (device-tree boot
# of 6.1 and 6.12).
set -euo pipefail
. /lib/case-lib.sh
RP=$ROOT_PORT
F0=0000:01:00.0
F1=0000:01:00.1

common_start
if [ "$(requested_boot)" = acpi ]; then
  step "ACPI boot: the kernel enabled ACS on the root port" gc acs $RP enabled
fi
if root_port_isolates; then
  step "both functions share one group" gc expect-group $F0,$F1 --shared yes --reason multifunction_without_acs
  step "root port $RP is alone" gc expect-group $RP --shared no
else
  step "the root port and both functions share one group" gc expect-group $RP,$F0,$F1 --shared yes \
    --reason 'acs_missing_upstream|multifunction_without_acs' --reason-device "$RP|$F0|null"
fi
require_subcommands bind restore check
partial_bind $F0 e1000e

step "vfioctl bind $F0 (whole group) exits 0" gc exit 0 -- vfioctl bind $F0
step "$F0 is on vfio-pci" gc driver $F0 vfio-pci
step "$F1 is on vfio-pci" gc driver $F1 vfio-pci
step "root port stays on pcieport" gc driver $RP pcieport
step "the group is viable" gc viable $F0 yes

step "vfioctl restore --all exits 0" gc exit 0 -- vfioctl restore --all
step "$F0 is back on e1000e" gc driver $F0 e1000e
step "$F1 is back on e1000e" gc driver $F1 e1000e
common_end
