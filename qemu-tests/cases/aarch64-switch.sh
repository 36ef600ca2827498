#!/bin/sh
# aarch64 virt + SMMUv3: root port -> x3130 switch -> two downstream ports (no ACS) -> one e1000e
# each. The layout depends on whether the kernel enabled ACS on the root port:
# - not enabled (device-tree boot): the root port, the switch ports and both NICs form one group;
# - enabled (ACPI boot): x86's layout, each NIC in a group with its own downstream port.
set -euo pipefail
. /lib/case-lib.sh
RP=$ROOT_PORT
UP=0000:01:00.0
DN1=0000:02:00.0
DN2=0000:02:01.0
NIC1=0000:03:00.0
NIC2=0000:04:00.0

common_start
if [ "$(requested_boot)" = acpi ]; then
  step "ACPI boot: the kernel enabled ACS on the root port" gc acs $RP enabled
fi
if root_port_isolates; then
  step "root port is alone" gc expect-group $RP --shared no
  step "upstream port is alone" gc expect-group $UP --shared no --reason single
  step "$NIC1 shares a group with $DN1" gc expect-group $DN1,$NIC1 --reason acs_missing_upstream --reason-device $DN1
  step "$NIC2 shares a group with $DN2" gc expect-group $DN2,$NIC2 --reason acs_missing_upstream --reason-device $DN2
  require_subcommands bind restore check
  step "vfioctl bind $NIC1 exits 0" gc exit 0 -- vfioctl bind $NIC1
  step "$NIC1 is on vfio-pci" gc driver $NIC1 vfio-pci
  step "downstream port $DN1 stays on pcieport" gc driver $DN1 pcieport
  step "$NIC2 is untouched" gc driver $NIC2 e1000e
  step "$NIC1's group is viable (port on pcieport)" gc viable $NIC1 yes
  step "vfioctl restore $NIC1 exits 0" gc exit 0 -- vfioctl restore $NIC1
  step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
  step "$NIC1 has no driver_override left" gc override $NIC1 none
else
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
fi
common_end
