#!/usr/bin/env bash
# Installs everything the QEMU guest tests need on a fresh Debian 12 machine. Idempotent.
#
# Run as root. Installs QEMU, busybox, cpio and kmod with apt; downloads (does not install) the
# stock Debian kernels for amd64 and arm64 plus busybox-static:arm64 and unpacks them with
# `dpkg -x` into the cache dir; adds the Rust musl targets (or a cross gcc as fallback).
#
# Cache dir: $VFIOCTL_QEMU_CACHE, default <repo>/qemu-tests/work. The results are described in
# $CACHE/setup.env, which the runner reads.
set -euo pipefail

start=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VFIOCTL_QEMU_CACHE:-$here/work}
export DEBIAN_FRONTEND=noninteractive
log() { printf '[setup +%ss] %s\n' "$(($(date +%s) - start))" "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: must run as root (apt-get install, dpkg --add-architecture)" >&2
  exit 1
fi
mkdir -p "$CACHE/debs"

# 1. Host packages.
host_pkgs=(qemu-system-x86 qemu-system-arm busybox-static cpio kmod zstd xz-utils)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  log "adding dpkg architecture arm64"
  dpkg --add-architecture arm64
fi
log "apt-get update"
apt-get update -q >"$CACHE/apt-update.log" 2>&1 || { cat "$CACHE/apt-update.log" >&2; exit 1; }

missing=()
for p in "${host_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >"$CACHE/apt-install.log" 2>&1 \
    || { tail -50 "$CACHE/apt-install.log" >&2; exit 1; }
else
  log "host packages already installed"
fi

# 2. Kernels and arm64 busybox: downloaded and unpacked, never installed.
# The kernel package is whatever the linux-image-<arch> metapackage depends on today.
kernel_pkg() { # $1 = amd64|arm64
  local meta=linux-image-$1
  [ "$1" = arm64 ] && meta=linux-image-arm64:arm64
  apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' | sed 's/:arm64$//'
}
# fetch <pkg[:arch]> <dest dir>: apt-get download + dpkg -x, skipped when already unpacked.
fetch() {
  local pkg=$1 dest=$2 ver stamp deb
  ver=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
    echo "setup.sh: no candidate for $pkg" >&2
    exit 1
  fi
  stamp="$dest/.unpacked-$(echo "${pkg}_$ver" | tr ':/' '__')"
  if [ -e "$stamp" ]; then
    log "$pkg $ver already unpacked in $dest"
    return
  fi
  log "downloading $pkg $ver"
  local name=${pkg%%:*} arch=amd64
  [ "$name" != "$pkg" ] && arch=${pkg##*:}
  # apt's sandbox user cannot write here; the warning about it is harmless, keep it out of sight.
  (cd "$CACHE/debs" && apt-get download -q "$pkg=$ver" >>"$CACHE/apt-download.log" 2>&1) \
    || { tail -20 "$CACHE/apt-download.log" >&2; exit 1; }
  deb=$(ls -t "$CACHE/debs/${name}_"*"_${arch}.deb" | head -1)
  rm -rf "$dest"
  mkdir -p "$dest"
  log "unpacking $(basename "$deb")"
  dpkg -x "$deb" "$dest"
  touch "$stamp"
}

kpkg_amd64=$(kernel_pkg amd64)
kpkg_arm64=$(kernel_pkg arm64)
[ -n "$kpkg_amd64" ] && [ -n "$kpkg_arm64" ] || { echo "setup.sh: cannot resolve kernel packages" >&2; exit 1; }
fetch "$kpkg_amd64" "$CACHE/k-amd64"
fetch "$kpkg_arm64:arm64" "$CACHE/k-arm64"
fetch busybox-static:arm64 "$CACHE/bb-arm64"
# Old downloads of other versions are dead weight.
find "$CACHE/debs" -name '*.deb' -mtime +30 -delete

kver_amd64=${kpkg_amd64#linux-image-}
kver_arm64=${kpkg_arm64#linux-image-}
for k in "$CACHE/k-amd64/boot/vmlinuz-$kver_amd64" "$CACHE/k-arm64/boot/vmlinuz-$kver_arm64" \
  "$CACHE/bb-arm64/bin/busybox" /bin/busybox; do
  [ -e "$k" ] || { echo "setup.sh: missing $k after unpacking" >&2; exit 1; }
done

# 3. Rust targets for the static guest binaries.
rust_mode=musl
if command -v rustup >/dev/null; then
  log "rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
  if ! rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl >"$CACHE/rustup.log" 2>&1; then
    cat "$CACHE/rustup.log" >&2
    rust_mode=gnu
  fi
else
  rust_mode=gnu
fi
if [ "$rust_mode" = gnu ]; then
  # Fallback: static glibc builds; aarch64 needs Debian's cross gcc as the linker.
  log "musl targets unavailable: installing the aarch64 cross gcc for static glibc builds"
  apt-get install -y -q --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    >>"$CACHE/apt-install.log" 2>&1
  rustup target add aarch64-unknown-linux-gnu >>"$CACHE/rustup.log" 2>&1 || true
fi

cat >"$CACHE/setup.env" <<ENV
# Written by qemu-tests/setup.sh; read by the vfioctl-qemu-tests runner.
KVER_X86_64=$kver_amd64
KERNEL_X86_64=$CACHE/k-amd64/boot/vmlinuz-$kver_amd64
MODROOT_X86_64=$CACHE/k-amd64
BUSYBOX_X86_64=/bin/busybox
KVER_AARCH64=$kver_arm64
KERNEL_AARCH64=$CACHE/k-arm64/boot/vmlinuz-$kver_arm64
MODROOT_AARCH64=$CACHE/k-arm64
BUSYBOX_AARCH64=$CACHE/bb-arm64/bin/busybox
RUST_MODE=$rust_mode
ENV
log "done: $CACHE/setup.env (kernels $kver_amd64 / $kver_arm64, rust $rust_mode)"
