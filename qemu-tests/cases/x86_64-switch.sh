#!/bin/sh
# x86_64: root port -> x3130 switch -> two downstream ports (no ACS in QEMU) -> one e1000e each.
# Each NIC shares a group with its own downstream port; the NICs stay apart.
set -euo pipefail
. /lib/case-lib.sh
UP=0000:01:00.0
DN1=0000:02:00.0
DN2=0000:02:01.0
NIC1=0000:03:00.0
NIC2=0000:04:00.0

common_start
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
common_end
