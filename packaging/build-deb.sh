#!/usr/bin/env bash
# Builds the Debian package of vfioctl from the workspace with dpkg-deb: the binary, man pages and
# bash/zsh/fish completions generated from the clap definitions, the boot-apply systemd unit, the
# libvirt hook and Proxmox VE hookscript, an example VM definition and the known-devices table.
#
# Usage: packaging/build-deb.sh [OUTDIR]    (default: target/debian)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
target_dir=${CARGO_TARGET_DIR:-target}

# The plain release binary of crates/vfioctl: the simulated kernel lives only in the test-only
# vfioctl-testbin, so the package can never change behaviour under a marked `--root` tree.
cargo build --release --locked -p vfioctl --bin vfioctl
if grep -qF '.vfioctl-sim/kernel.json' "$target_dir/release/vfioctl"; then
  echo "error: $target_dir/release/vfioctl holds the test simulator's marker; package the binary of crates/vfioctl" >&2
  exit 1
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg="$stage/vfioctl_${version}_${arch}"

install -D -m 0755 "$target_dir/release/vfioctl" "$pkg/usr/bin/vfioctl"
strip --strip-unneeded "$pkg/usr/bin/vfioctl" 2>/dev/null || true
"$pkg/usr/bin/vfioctl" generate-docs --out "$stage/docs"
for page in "$stage"/docs/man/*.1; do
  install -D -m 0644 "$page" "$pkg/usr/share/man/man1/$(basename "$page")"
  gzip -9n "$pkg/usr/share/man/man1/$(basename "$page")"
done
install -D -m 0644 "$stage/docs/completions/vfioctl.bash" "$pkg/usr/share/bash-completion/completions/vfioctl"
install -D -m 0644 "$stage/docs/completions/_vfioctl" "$pkg/usr/share/zsh/vendor-completions/_vfioctl"
install -D -m 0644 "$stage/docs/completions/vfioctl.fish" "$pkg/usr/share/fish/vendor_completions.d/vfioctl.fish"
install -D -m 0644 packaging/systemd/vfioctl-apply.service "$pkg/lib/systemd/system/vfioctl-apply.service"
install -D -m 0755 packaging/libvirt/vfioctl "$pkg/usr/share/vfioctl/hooks/libvirt-qemu.d-vfioctl"
install -D -m 0755 packaging/proxmox/vfioctl-hookscript "$pkg/usr/share/vfioctl/hooks/proxmox-hookscript"
install -D -m 0644 data/known-devices.toml "$pkg/usr/share/vfioctl/known-devices.toml"
install -D -m 0644 packaging/examples/ten64-wifi-tpu.toml "$pkg/usr/share/doc/vfioctl/examples/ten64-wifi-tpu.toml"
install -D -m 0644 README.md "$pkg/usr/share/doc/vfioctl/README.md"
install -D -m 0644 RELIABILITY.md "$pkg/usr/share/doc/vfioctl/RELIABILITY.md"
install -d -m 0755 "$pkg/etc/vfioctl/vms"

cat > "$stage/changelog" <<CHANGELOG
vfioctl ($version) unstable; urgency=medium

  * Package built from the vfioctl workspace.

 -- vfioctl developers <vfioctl@localhost>  $(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
CHANGELOG
# A native package: its changelog is changelog.gz (Debian policy 12.7).
install -D -m 0644 "$stage/changelog" "$pkg/usr/share/doc/vfioctl/changelog"
gzip -9n "$pkg/usr/share/doc/vfioctl/changelog"
cat > "$pkg/usr/share/doc/vfioctl/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: vfioctl

Files: *
Copyright: 2026 vfioctl developers
License: MIT or Apache-2.0
 On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

install -d "$pkg/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: vfioctl
Version: $version
Architecture: $arch
Maintainer: vfioctl developers <vfioctl@localhost>
Installed-Size: $installed_size
Depends: libc6 (>= 2.34)
Recommends: kmod
Suggests: qemu-system-x86 | qemu-system-arm
Section: admin
Priority: optional
Homepage: https://github.com/
Description: safe, explainable and reversible VFIO device passthrough
 vfioctl lists PCI devices and their IOMMU groups and explains why a group
 is shared; binds whole groups to vfio-pci (and NXP DPAA2 containers to
 vfio-fsl-mc) with refusals that protect the host's disk, network and
 console; gives every device back to the driver it had; diagnoses what
 would make passthrough fail; renders QEMU and libvirt arguments; and
 applies declarative VM definitions at boot.
CONTROL
sed -i '/^Homepage:/d' "$pkg/DEBIAN/control"
cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
POSTINST
cat > "$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  rmdir --ignore-fail-on-non-empty /etc/vfioctl/vms /etc/vfioctl 2>/dev/null || true
fi
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out/vfioctl_${version}_${arch}.deb" >/dev/null
echo "$out/vfioctl_${version}_${arch}.deb"
