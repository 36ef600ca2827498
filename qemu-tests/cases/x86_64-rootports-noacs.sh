#!/bin/sh
# x86_64: two root ports without ACS as functions of one slot: both ports and both NICs share one
# group. Binding the group moves both NICs; the ports stay on pcieport and the group is viable.
set -euo pipefail
. /lib/case-lib.sh
RP1=0000:00:10.0
RP2=0000:00:10.1
NIC1=0000:01:00.0
NIC2=0000:02:00.0

common_start
step "ports and NICs share one group" gc expect-group $RP1,$RP2,$NIC1,$NIC2 --shared yes \
  --reason 'acs_missing_upstream|multifunction_without_acs' --reason-device "$RP1|$RP2"
require_subcommands bind restore check
partial_bind $NIC1 e1000e

step "vfioctl bind $NIC1 (whole group) exits 0" gc exit 0 -- vfioctl bind $NIC1
step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
step "$NIC2 is on vfio-pci too" gc driver $NIC2 vfio-pci
step "root port $RP1 stays on pcieport" gc driver $RP1 pcieport
step "root port $RP2 stays on pcieport" gc driver $RP2 pcieport
step "the group is viable" gc viable $NIC1 yes

step "vfioctl restore --all exits 0" gc exit 0 -- vfioctl restore --all
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC2 is back on e1000e" gc driver $NIC2 e1000e
step "$NIC2 has no driver_override left" gc override $NIC2 none
common_end
