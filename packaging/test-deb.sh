#!/usr/bin/env bash
# Proves the Debian package: builds it with cargo-deb, checks its control data (Depends covers
# what dpkg-shlibdeps finds, md5sums, conffiles, maintainer scripts), contents and copyright file,
# runs lintian (fatal apart from the overrides listed in packaging/lintian-overrides.txt),
# installs it, runs the installed binary, verifies the unit, enables it, removes and purges the
# package and checks that nothing is left, the enable symlink included. Needs root for dpkg -i.
#
# Usage: packaging/test-deb.sh [OUTDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
deb=$(packaging/build-deb.sh "$out" | tail -n1)
echo "package: $deb"
fail() { echo "test-deb: $*" >&2; exit 1; }

control=$(mktemp -d)
trap 'rm -rf "$control"' EXIT
dpkg-deb -e "$deb" "$control"
for file in md5sums conffiles postinst postrm; do
  [ -s "$control/$file" ] || fail "no $file in the control archive"
done
grep -qx /etc/vfioctl/devices.toml "$control/conffiles" || fail "/etc/vfioctl/devices.toml is not a conffile"
grep -q "deb-systemd-helper purge vfioctl-apply.service" "$control/postrm" \
  || fail "postrm does not purge the unit's enable symlinks"

# Depends must cover what dpkg-shlibdeps finds for the binary (cargo-deb leaves out libgcc-s1).
# A publisher's homepage and address (see build-deb.sh) reach the control file.
if [ -n "${VFIOCTL_HOMEPAGE:-}" ]; then
  [ "$(dpkg-deb -f "$deb" Homepage)" = "$VFIOCTL_HOMEPAGE" ] || fail "Homepage is not $VFIOCTL_HOMEPAGE"
fi
if [ -n "${VFIOCTL_MAINTAINER:-}" ]; then
  [ "$(dpkg-deb -f "$deb" Maintainer)" = "$VFIOCTL_MAINTAINER" ] || fail "Maintainer is not $VFIOCTL_MAINTAINER"
fi
depends=$(dpkg-deb -f "$deb" Depends)
binary="$control/vfioctl"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/vfioctl >"$binary"
mkdir -p "$control/debian" && : >"$control/debian/control"
shlibs=$(cd "$control" && dpkg-shlibdeps -O "$binary" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
IFS=, read -ra needed <<<"$shlibs"
for dep in "${needed[@]}"; do
  dep=$(sed 's/^ *//; s/ *$//' <<<"$dep")
  grep -qF "${dep%% *}" <<<"$depends" || fail "Depends ($depends) lacks $dep (dpkg-shlibdeps)"
done
echo "Depends: $depends (dpkg-shlibdeps: $shlibs)"

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/vfioctl ./usr/share/man/man1/vfioctl.1.gz ./usr/share/man/man1/vfioctl-bind.1.gz \
  ./usr/share/bash-completion/completions/vfioctl ./usr/share/zsh/vendor-completions/_vfioctl \
  ./usr/share/fish/vendor_completions.d/vfioctl.fish ./usr/lib/systemd/system/vfioctl-apply.service \
  ./usr/share/vfioctl/known-devices.toml ./usr/share/doc/vfioctl/examples/ten64-wifi-tpu.toml \
  ./usr/share/vfioctl/hooks/libvirt-qemu.d-vfioctl ./usr/share/vfioctl/hooks/proxmox-hookscript \
  ./usr/share/doc/vfioctl/copyright ./usr/share/doc/vfioctl/changelog.gz ./etc/vfioctl/devices.toml; do
  grep -qxF "$path" <<<"$contents" || fail "missing from the package: $path"
done
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/share/doc/vfioctl/copyright >"$control/copyright"
for crate in clap serde rustix; do
  grep -q "^Files: vendor/$crate-" "$control/copyright" || fail "copyright does not list crate $crate"
done
grep -q "^License: Expat$" "$control/copyright" || fail "copyright lacks the Expat licence text"

if command -v lintian >/dev/null 2>&1; then
  echo "lintian (overrides: packaging/lintian-overrides.txt):"
  tags=$(lintian --tag-display-limit 0 --display-info "$deb" 2>&1 || true)
  unexpected=$(grep -E '^[EWI]: ' <<<"$tags" | grep -vFf <(grep -v '^#' packaging/lintian-overrides.txt | grep .) || true)
  [ -z "$tags" ] || echo "$tags"
  [ -z "$unexpected" ] || fail "lintian tags not in packaging/lintian-overrides.txt:
$unexpected"
fi
if [ "$(id -u)" != 0 ]; then
  echo "not root: skipping install and removal"
  exit 0
fi
dpkg -i "$deb"
/usr/bin/vfioctl --version
/usr/bin/vfioctl --help | grep -q "Exit codes"
zcat /usr/share/man/man1/vfioctl-bind.1.gz | grep -q '^.SH "EXIT STATUS"' || fail "vfioctl-bind(1) has no EXIT STATUS"
[ -d /etc/vfioctl/vms ] || fail "postinst did not create /etc/vfioctl/vms"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify /usr/lib/systemd/system/vfioctl-apply.service
fi
# An admin enables the boot-time bind; the purge must take the symlink with it.
if command -v systemctl >/dev/null 2>&1; then
  systemctl enable vfioctl-apply.service 2>/dev/null \
    || ln -sf /usr/lib/systemd/system/vfioctl-apply.service /etc/systemd/system/multi-user.target.wants/
else
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf /usr/lib/systemd/system/vfioctl-apply.service /etc/systemd/system/multi-user.target.wants/
fi
dpkg -r vfioctl
for path in /usr/bin/vfioctl /usr/lib/systemd/system/vfioctl-apply.service /usr/share/man/man1/vfioctl.1.gz; do
  [ ! -e "$path" ] || fail "left behind after dpkg -r: $path"
done
[ -e /etc/vfioctl/devices.toml ] || fail "dpkg -r removed the conffile (only a purge should)"
dpkg -P vfioctl >/dev/null
left=$(find /etc /usr /var/lib/systemd -name 'vfioctl*' 2>/dev/null | grep -v "^$PWD" || true)
[ -z "$left" ] || fail "left behind after purge: $left"
echo "package: installs, runs, removes and purges cleanly"
