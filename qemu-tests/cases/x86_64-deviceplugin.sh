#!/bin/sh
# x86_64 q35 + intel-iommu, two root ports with ACS: the Kubernetes device plugin binds NIC1's
# group at start, a fake kubelet (vfioctl-fake-kubelet) gets its registration, lists the device
# and allocates it: the host paths exist and VFIO_GROUP_GET_STATUS says viable. SIGTERM gives it
# back.
set -euo pipefail
. /lib/case-lib.sh
NIC1=0000:01:00.0
NIC2=0000:02:00.0
DIR=/var/lib/kubelet/device-plugins

common_start
require_subcommands device-plugin
mkdir -p "$DIR" /etc/vfioctl
cat >/etc/vfioctl/device-plugin.toml <<TOML
version = 1
[[resource]]
name = "vfioctl.io/nic"
select = [{ address = "$NIC1" }]
TOML
step "the configuration is valid" vfioctl device-plugin --check-config --config /etc/vfioctl/device-plugin.toml
vfioctl device-plugin --config /etc/vfioctl/device-plugin.toml --plugin-dir "$DIR" 2>/tmp/plugin.log &
plugin=$!
step "the fake kubelet registers, lists and allocates $NIC1's group on the real kernel" \
  vfioctl-fake-kubelet "$DIR" vfioctl.io/nic "$NIC1"
step "$NIC1 is on vfio-pci while served" gc driver $NIC1 vfio-pci
step "$NIC2 is untouched" gc driver $NIC2 e1000e
kill -TERM "$plugin"
rc=0
wait "$plugin" || rc=$?
cat /tmp/plugin.log
step "the plugin exits 0 at SIGTERM" [ "$rc" = 0 ]
step "$NIC1 is back on e1000e" gc driver $NIC1 e1000e
step "$NIC1 has no driver_override left" gc override $NIC1 none
step "/dev/vfio node of $NIC1's group is gone" gc vfio-node $NIC1 absent
common_end
