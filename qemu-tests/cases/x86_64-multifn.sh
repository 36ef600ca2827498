#!/bin/sh
# x86_64: one root port, a two-function e1000e (01:00.0 and 01:00.1) without ACS: one group.
# Binding only .0 leaves the group not viable; binding the group makes it viable.
set -euo pipefail
. /lib/case-lib.sh
F0=0000:01:00.0
F1=0000:01:00.1

common_start
step "both functions share one group" gc expect-group $F0,$F1 --shared yes --reason multifunction_without_acs
require_subcommands bind restore check
partial_bind $F0 e1000e

step "vfioctl bind $F0 (whole group) exits 0" gc exit 0 -- vfioctl bind $F0
step "$F0 is on vfio-pci" gc driver $F0 vfio-pci
step "$F1 is on vfio-pci" gc driver $F1 vfio-pci
step "the group is viable" gc viable $F0 yes

step "vfioctl restore --all exits 0" gc exit 0 -- vfioctl restore --all
step "$F0 is back on e1000e" gc driver $F0 e1000e
step "$F1 is back on e1000e" gc driver $F1 e1000e
common_end
