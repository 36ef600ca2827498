#!/usr/bin/env bash
# Packs a guest initramfs: busybox, /init, the kernel modules the tests need (with their
# modules.dep closure) and any extra files.
#
# usage: build-initramfs.sh <out.cpio.gz> <modroot> <kver> <busybox> [src:dst ...]
#   modroot  directory holding lib/modules/<kver> (an unpacked linux-image .deb)
#   busybox  a static busybox for the guest architecture
#   src:dst  extra files; dst is the absolute path inside the guest (e.g. bin/vfioctl)
# env: MODULES      modules to include (default: vfio-pci and its deps, e1000e, e1000, and
#                   what the host-safety case loads itself: virtio-net, xHCI, usb-storage, vfat)
#      INIT         the /init script (default: init.sh beside this script)
#      NESTED_QEMU  a host qemu-system-x86_64 to pack, at the same path, with its ldd closure,
#                   Debian's TCG accel module and the SeaBIOS blobs (only the x86_64-nested case
#                   sets it: it adds about 19 MB, compressed)
#      GUEST_UDEV_ROOT  a Debian root (packaging/test-initramfs.sh --prepare makes one) whose
#                   systemd-udevd, its libraries and 80-drivers.rules are packed (x86_64-udev)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 4 ]; then
  sed -n '5,14p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
out=$1 modroot=$2 kver=$3 busybox=$4
shift 4
MODULES=${MODULES:-"vfio vfio_iommu_type1 vfio_pci e1000e e1000"}
# For the cases that need them (x86_64-hostsafety, x86_64-sriov): packed when this kernel has them as modules.
# Newer Debian kernels (7.x) lack some of them as .ko files: the cases that use them run on the
# oldest kernel only.
OPTIONAL_MODULES=${OPTIONAL_MODULES:-"virtio_pci virtio_net xhci_pci usb_storage sd_mod vfat nls_cp437 nls_ascii igb igbvf nvme"}
INIT=${INIT:-$here/init.sh}
NESTED_QEMU=${NESTED_QEMU:-}
GUEST_UDEV_ROOT=${GUEST_UDEV_ROOT:-}

kmoddir=$modroot/lib/modules/$kver
[ -d "$kmoddir" ] || { echo "build-initramfs: no $kmoddir" >&2; exit 1; }
# The .deb ships no modules.dep (its postinst would make it); make it once in the unpacked tree.
if [ ! -s "$kmoddir/modules.dep" ]; then
  depmod -b "$modroot" "$kver"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,lib/modules/"$kver"}

# Module closure, in load order, as modprobe itself computes it.
declare -A seen=()
for m in $MODULES $OPTIONAL_MODULES; do
  deps=$(modprobe -d "$modroot" -S "$kver" --show-depends "$m" 2>&1) || {
    case " $OPTIONAL_MODULES " in
      *" $m "*) echo "build-initramfs: optional module $m not in $kver: left out" >&2; continue ;;
    esac
    echo "build-initramfs: module $m: $deps" >&2
    exit 1
  }
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue # "builtin <name>" needs nothing
    rel=${path#"$kmoddir"/}
    [ -n "${seen[$rel]:-}" ] && continue
    seen[$rel]=1
    dst=$stage/lib/modules/$kver/$rel
    mkdir -p "$(dirname "$dst")"
    # busybox insmod cannot load compressed modules: store them plain.
    case $path in
      *.ko.xz) xz -dc "$path" >"${dst%.xz}" ;;
      *.ko.zst) zstd -q -dc "$path" >"${dst%.zst}" ;;
      *.ko.gz) gzip -dc "$path" >"${dst%.gz}" ;;
      *) cp "$path" "$dst" ;;
    esac
  done <<<"$deps"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
  [ -e "$kmoddir/$f" ] && cp "$kmoddir/$f" "$stage/lib/modules/$kver/"
done
depmod -b "$stage" "$kver"

cp "$busybox" "$stage/bin/busybox"
cp "$INIT" "$stage/init"
chmod 755 "$stage/init" "$stage/bin/busybox"
for spec in "$@"; do
  src=${spec%%:*} dst=${spec#*:}
  mkdir -p "$stage/$(dirname "$dst")"
  cp "$src" "$stage/$dst"
done

# A nested QEMU for `vfioctl run` inside the guest. Everything goes to the path it has on the host,
# so the binary finds its libraries (glibc searches the multiarch dirs without an ld.so.cache), its
# modules (CONFIG_QEMU_MODDIR) and its firmware (Debian's firmware path) without any setting.
if [ -n "$NESTED_QEMU" ]; then
  qemu_bin=$(readlink -f "$NESTED_QEMU")
  moddir=/usr/lib/x86_64-linux-gnu/qemu
  # Debian builds TCG as a module: without it, "could not load module for type 'tcg-accel-ops'".
  nested_files=("$qemu_bin" "$moddir/accel-tcg-x86_64.so")
  # SeaBIOS for q35, and the option ROMs QEMU loads for any x86 machine.
  for blob in /usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
    /usr/share/qemu/linuxboot_dma.bin; do
    nested_files+=("$blob")
  done
  libs=()
  for elf in "$qemu_bin" "$moddir/accel-tcg-x86_64.so"; do
    # "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    while read -r lib; do
      libs+=("$lib")
    done < <(ldd "$elf" | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
  done
  for f in "${nested_files[@]}" "${libs[@]}"; do
    [ -e "$f" ] || { echo "build-initramfs: nested QEMU needs $f" >&2; exit 1; }
    mkdir -p "$stage$(dirname "$f")"
    cp -L "$f" "$stage$f"
  done
  if [ "$qemu_bin" != "$NESTED_QEMU" ]; then
    mkdir -p "$stage$(dirname "$NESTED_QEMU")"
    ln -sf "$qemu_bin" "$stage$NESTED_QEMU"
  fi
fi

# Debian's udevd (udevadm under another name) with its ldd closure as the root resolves it.
if [ -n "$GUEST_UDEV_ROOT" ]; then
  u=$GUEST_UDEV_ROOT
  for f in usr/bin/udevadm usr/lib/udev/rules.d/80-drivers.rules \
    $(chroot "$u" ldd /usr/bin/udevadm | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    f=${f#/}
    mkdir -p "$stage/$(dirname "$f")"
    cp -L "$u/$f" "$stage/$f"
  done
  mkdir -p "$stage/usr/lib/systemd"
  ln -sf ../../bin/udevadm "$stage/usr/lib/systemd/systemd-udevd"
fi

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
