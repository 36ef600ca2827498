#!/usr/bin/env bash
# Installs everything the QEMU guest tests need on a fresh Debian 12 machine. Idempotent.
#
# Run as root. Installs QEMU 7.2, edk2 for aarch64 (qemu-efi-aarch64), busybox, cpio and kmod
# with the host's apt. Everything else comes through a private apt configuration under
# $CACHE/apt (its own sources, lists, cache and status; /etc/apt is never written) and is
# downloaded, never installed, then unpacked with `dpkg -x` into the cache dir:
# - three kernel generations for amd64 and arm64: bookworm's 6.1, trixie's 6.12 and the newest
#   of trixie-backports (7.x), each in kernels/<kver>;
# - QEMU 10 from bookworm-backports with its data and SeaBIOS, in qemu-<version>;
# - busybox-static:arm64.
# It also adds the Rust musl targets (or a cross gcc as fallback).
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
# qemu-efi-aarch64: edk2 (AAVMF) for the aarch64 ACPI boot.
host_pkgs=(qemu-system-x86 qemu-system-arm qemu-efi-aarch64 busybox-static cpio kmod zstd xz-utils)
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

# 2. A private apt: its own sources, lists, cache and status under $CACHE/apt. It reads nothing
# from /etc/apt but the archive keyring and writes nothing there, so the host's own apt state is
# untouched whatever suites the matrix needs.
APTDIR=$CACHE/apt
mkdir -p "$APTDIR"/{lists/partial,cache/archives/partial,parts,prefs,sources.d}
: >"$APTDIR/status"
key=/usr/share/keyrings/debian-archive-keyring.gpg
{
  for suite in bookworm bookworm-backports trixie trixie-backports; do
    echo "deb [signed-by=$key] http://deb.debian.org/debian $suite main"
  done
  for suite in bookworm-security trixie-security; do
    echo "deb [signed-by=$key] http://deb.debian.org/debian-security $suite main"
  done
} >"$APTDIR/sources.list"
cat >"$APTDIR/apt.conf" <<CONF
Dir::Etc::Main "$APTDIR/none.conf";
Dir::Etc::Parts "$APTDIR/parts";
Dir::Etc::SourceList "$APTDIR/sources.list";
Dir::Etc::SourceParts "$APTDIR/sources.d";
Dir::Etc::Preferences "$APTDIR/preferences";
Dir::Etc::PreferencesParts "$APTDIR/prefs";
Dir::State "$APTDIR";
Dir::State::Lists "$APTDIR/lists";
Dir::State::status "$APTDIR/status";
Dir::Cache "$APTDIR/cache";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; };
Acquire::Languages "none";
CONF
papt() { APT_CONFIG=$APTDIR/apt.conf "$@"; }
log "apt-get update (private: $APTDIR)"
papt apt-get update -q >"$CACHE/apt-update-private.log" 2>&1 \
  || { cat "$CACHE/apt-update-private.log" >&2; exit 1; }

# newest <pkg[:arch]> <suite...>: the package's highest version in those suites.
newest() {
  local pkg=$1
  shift
  papt apt-cache madison "$pkg" | awk -F'|' -v want=" $* " '{
      gsub(/ /, "", $2); split($3, url, " "); suite = url[2]; sub(/\/.*/, "", suite)
      if (index(want, " " suite " ")) { print $2; exit }
    }'
}
# kernel_pkg <amd64|arm64> <suite...>: the linux-image-<version> package that the
# linux-image-<arch> metapackage of those suites depends on.
kernel_pkg() {
  local arch=$1 meta ver
  shift
  meta=linux-image-$arch
  [ "$arch" = arm64 ] && meta=$meta:arm64
  ver=$(newest "$meta" "$@")
  [ -n "$ver" ] || { echo "setup.sh: no $meta in $*" >&2; exit 1; }
  papt apt-cache depends "$meta=$ver" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}' | sed 's/:arm64$//'
}
# fetch <pkg[:arch]> <version> <dest dir>: apt-get download + dpkg -x, skipped when already
# unpacked. Several packages may share one dest dir (QEMU and its firmware).
fetch() {
  local pkg=$1 ver=$2 dest=$3 stamp deb
  stamp="$dest/.unpacked-$(echo "${pkg}_$ver" | tr ':/' '__')"
  if [ -e "$stamp" ]; then
    log "$pkg $ver already unpacked in $dest"
    return
  fi
  log "downloading $pkg $ver"
  local name=${pkg%%:*} arch=amd64
  [ "$name" != "$pkg" ] && arch=${pkg##*:}
  # apt's sandbox user cannot write here; the warning about it is harmless, keep it out of sight.
  (cd "$CACHE/debs" && papt apt-get download -q "$pkg=$ver" >>"$CACHE/apt-download.log" 2>&1) \
    || { tail -20 "$CACHE/apt-download.log" >&2; exit 1; }
  deb=$(ls -t "$CACHE/debs/${name}_"*"_${arch}.deb" "$CACHE/debs/${name}_"*"_all.deb" 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || { echo "setup.sh: apt-get download left no .deb of $pkg" >&2; exit 1; }
  mkdir -p "$dest"
  log "unpacking $(basename "$deb")"
  dpkg -x "$deb" "$dest"
  touch "$stamp"
}
# fetch_kernel <pkg[:arch]>: unpacks into kernels/<kver>, one dir per kernel so that reruns and
# the other generations reuse it. Since 7.x the image package is empty and depends on
# linux-binary-<kver> (the vmlinuz, in usr/lib/modules/<kver>/) and linux-modules-<kver>; both
# are unpacked beside it, and the tree gets the layout of the older packages (boot/vmlinuz-<kver>,
# lib/modules/<kver>) that build-initramfs.sh, modprobe -d and depmod -b expect.
fetch_kernel() {
  local pkg=$1 name=${1%%:*} kver dest ver part
  kver=${name#linux-image-}
  dest=$CACHE/kernels/$kver
  ver=$(papt apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  fetch "$pkg" "$ver" "$dest"
  for part in $(papt apt-cache depends "$pkg=$ver" |
    awk -v k="$kver" '$1 == "Depends:" { n = $2; sub(/:arm64$/, "", n)
      if (n == "linux-binary-" k || n == "linux-modules-" k) print $2 }'); do
    fetch "$part" "$ver" "$dest"
  done
  if [ ! -e "$dest/lib" ] && [ -d "$dest/usr/lib/modules" ]; then
    ln -s usr/lib "$dest/lib"
  fi
  if [ ! -e "$dest/boot/vmlinuz-$kver" ] && [ -e "$dest/usr/lib/modules/$kver/vmlinuz" ]; then
    mkdir -p "$dest/boot"
    ln -s "../usr/lib/modules/$kver/vmlinuz" "$dest/boot/vmlinuz-$kver"
  fi
  [ -e "$dest/boot/vmlinuz-$kver" ] || { echo "setup.sh: $pkg has no boot/vmlinuz-$kver" >&2; exit 1; }
  [ -d "$dest/lib/modules/$kver" ] || { echo "setup.sh: $pkg has no lib/modules/$kver" >&2; exit 1; }
}

# The kernel generations: <label>:<suites>. Each is the newest linux-image-<arch> of its suites.
generations=(
  "bookworm:bookworm bookworm-security"
  "trixie:trixie trixie-security"
  "trixie-backports:trixie-backports"
)
env_kernels=()
labels=()
for gen in "${generations[@]}"; do
  label=${gen%%:*} suites=${gen#*:}
  read -r -a suite_list <<<"$suites"
  kpkg_amd64=$(kernel_pkg amd64 "${suite_list[@]}")
  kpkg_arm64=$(kernel_pkg arm64 "${suite_list[@]}")
  fetch_kernel "$kpkg_amd64"
  fetch_kernel "$kpkg_arm64:arm64"
  envkey=$(echo "$label" | tr 'a-z-' 'A-Z_')
  env_kernels+=("KVER_X86_64_$envkey=${kpkg_amd64#linux-image-}" "KVER_AARCH64_$envkey=${kpkg_arm64#linux-image-}")
  labels+=("$label")
done
bb_ver=$(newest busybox-static:arm64 bookworm bookworm-security)
fetch busybox-static:arm64 "$bb_ver" "$CACHE/bb-arm64"

# A newer QEMU beside the system's 7.2: bookworm-backports' build, which links against
# bookworm's libraries (trixie's would need trixie's glibc). Unpacked with its firmware and data
# and run from there with -L and QEMU_MODULE_DIR; the system QEMU stays as it is.
qemu_ver=$(newest qemu-system-x86 bookworm-backports)
[ -n "$qemu_ver" ] || { echo "setup.sh: no qemu-system-x86 in bookworm-backports" >&2; exit 1; }
qemu_dir=$CACHE/qemu-$(echo "$qemu_ver" | sed 's/^[0-9]*://; s/[+~].*//')
for p in qemu-system-x86 qemu-system-arm qemu-system-common qemu-system-data seabios; do
  name=${p%%:*}
  v=$(newest "$name" bookworm-backports)
  [ -n "$v" ] || v=$(newest "$name" bookworm)
  fetch "$p" "$v" "$qemu_dir"
done
missing_libs=$(for b in "$qemu_dir"/usr/bin/qemu-system-{x86_64,aarch64}; do ldd "$b"; done | awk '/not found/ {print $1}' | sort -u)
[ -z "$missing_libs" ] || { echo "setup.sh: QEMU $qemu_ver needs $missing_libs" >&2; exit 1; }

# Old downloads of other versions are dead weight.
find "$CACHE/debs" -name '*.deb' -mtime +30 -delete

efi=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd
for k in "$CACHE/bb-arm64/bin/busybox" /bin/busybox "$efi"; do
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

kver_amd64=$(echo "${env_kernels[0]}" | cut -d= -f2)
kver_arm64=$(echo "${env_kernels[1]}" | cut -d= -f2)
{
  echo "# Written by qemu-tests/setup.sh; read by the vfioctl-qemu-tests runner."
  echo "KERNELS=${labels[*]}"
  printf '%s\n' "${env_kernels[@]}"
  echo "KERNEL_DIR=$CACHE/kernels"
  echo "BUSYBOX_X86_64=/bin/busybox"
  echo "BUSYBOX_AARCH64=$CACHE/bb-arm64/bin/busybox"
  echo "EFI_AARCH64=$efi"
  echo "QEMU_NEW_DIR=$qemu_dir"
  echo "QEMU_NEW_VERSION=$qemu_ver"
  echo "RUST_MODE=$rust_mode"
  echo "# The first generation under the names hand runs (README) and older runners use."
  echo "KVER_X86_64=$kver_amd64"
  echo "KERNEL_X86_64=$CACHE/kernels/$kver_amd64/boot/vmlinuz-$kver_amd64"
  echo "MODROOT_X86_64=$CACHE/kernels/$kver_amd64"
  echo "KVER_AARCH64=$kver_arm64"
  echo "KERNEL_AARCH64=$CACHE/kernels/$kver_arm64/boot/vmlinuz-$kver_arm64"
  echo "MODROOT_AARCH64=$CACHE/kernels/$kver_arm64"
} >"$CACHE/setup.env.tmp"
mv "$CACHE/setup.env.tmp" "$CACHE/setup.env"
log "done: $CACHE/setup.env (kernels: ${env_kernels[*]}; QEMU $qemu_ver; rust $rust_mode)"
