#!/usr/bin/env bash
# Builds the package, checks its contents, installs it, runs the installed binary, verifies the
# installed unit, and removes it again, checking that nothing is left. Needs root (dpkg -i).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(packaging/build-deb.sh "${1:-target/debian}" | tail -n1)
echo "package: $deb"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/vfioctl ./usr/share/man/man1/vfioctl.1.gz ./usr/share/man/man1/vfioctl-bind.1.gz \
  ./usr/share/bash-completion/completions/vfioctl ./usr/share/zsh/vendor-completions/_vfioctl \
  ./usr/share/fish/vendor_completions.d/vfioctl.fish ./lib/systemd/system/vfioctl-apply.service \
  ./usr/share/vfioctl/known-devices.toml ./usr/share/doc/vfioctl/examples/ten64-wifi-tpu.toml \
  ./usr/share/vfioctl/hooks/libvirt-qemu.d-vfioctl ./usr/share/vfioctl/hooks/proxmox-hookscript \
  ./usr/share/doc/vfioctl/copyright; do
  grep -qxF "$path" <<<"$contents" || { echo "missing from the package: $path"; exit 1; }
done
if command -v lintian >/dev/null 2>&1; then
  echo "lintian (reviewed; warnings listed, not fatal):"
  lintian --tag-display-limit 0 "$deb" || true
fi
if [ "$(id -u)" != 0 ]; then
  echo "not root: skipping install and removal"
  exit 0
fi
dpkg -i "$deb"
/usr/bin/vfioctl --version
/usr/bin/vfioctl --help | grep -q "Exit codes"
man -w vfioctl >/dev/null 2>&1 || test -f /usr/share/man/man1/vfioctl.1.gz
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify /lib/systemd/system/vfioctl-apply.service
fi
dpkg -r vfioctl
for path in /usr/bin/vfioctl /lib/systemd/system/vfioctl-apply.service /usr/share/man/man1/vfioctl.1.gz; do
  [ ! -e "$path" ] || { echo "left behind after dpkg -r: $path"; exit 1; }
done
dpkg -P vfioctl >/dev/null
echo "package: installs, runs and removes cleanly"
