#!/usr/bin/env bash
# Packs a guest initramfs: busybox, /init, the kernel modules the tests need (with their
# modules.dep closure) and any extra files.
#
# usage: build-initramfs.sh <out.cpio.gz> <modroot> <kver> <busybox> [src:dst ...]
#   modroot  directory holding lib/modules/<kver> (an unpacked linux-image .deb)
#   busybox  a static busybox for the guest architecture
#   src:dst  extra files; dst is the absolute path inside the guest (e.g. bin/vfioctl)
# env: MODULES  modules to include (default: vfio-pci and its deps, e1000e, e1000)
#      INIT     the /init script (default: init.sh beside this script)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 4 ]; then
  sed -n '5,11p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
out=$1 modroot=$2 kver=$3 busybox=$4
shift 4
MODULES=${MODULES:-"vfio vfio_iommu_type1 vfio_pci e1000e e1000"}
INIT=${INIT:-$here/init.sh}

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
for m in $MODULES; do
  deps=$(modprobe -d "$modroot" -S "$kver" --show-depends "$m" 2>&1) || {
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

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
