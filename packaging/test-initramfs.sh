#!/usr/bin/env bash
# Builds real initramfs images from the files `vfioctl boot install` writes, with Debian's own
# mkinitramfs (initramfs-tools) and dracut, and checks what is inside: the udev rule (byte for
# byte), the vfio modules, and the lines that load them. Then `boot remove` and a rebuild must
# leave the rule out again.
#
# Everything happens in a Debian 12 chroot made by debootstrap (so no generator is installed on
# the machine running this, and its /etc/udev is never touched), with a real kernel's modules
# from the QEMU test cache copied in as the "installed" kernel.
#
# usage: test-initramfs.sh <vfioctl binary> <modroot> <kver> [workdir]
#        test-initramfs.sh --prepare [workdir]   (only make the chroot; the QEMU case
#                                                 x86_64-udev packs its systemd-udevd)
#   modroot  a directory holding lib/modules/<kver> (qemu-tests/setup.sh unpacks one)
#   workdir  where the chroot is kept between runs (default: /var/tmp/vfioctl-initramfs)
# Needs root (chroot, bind mounts). Exit 0 when every check passed.
set -euo pipefail

prepare_only=0
if [ "${1:-}" = --prepare ]; then
  prepare_only=1 work=${2:-/var/tmp/vfioctl-initramfs}
elif [ $# -lt 3 ]; then
  sed -n '2,18p' "${BASH_SOURCE[0]}" >&2
  exit 2
else
  vfioctl=$(readlink -f "$1") modroot=$2 kver=$3 work=${4:-/var/tmp/vfioctl-initramfs}
  [ -d "$modroot/lib/modules/$kver" ] || { echo "test-initramfs: no $modroot/lib/modules/$kver" >&2; exit 2; }
fi
[ "$(id -u)" = 0 ] || { echo "test-initramfs: needs root (chroot)" >&2; exit 2; }

R=$work/root
PACKAGES=initramfs-tools,dracut-core,udev,kmod,zstd,cpio
if [ ! -x "$R/usr/bin/dracut" ] || [ ! -x "$R/usr/sbin/mkinitramfs" ]; then
  command -v debootstrap >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  rm -rf "$R"
  mkdir -p "$work"
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$R" http://deb.debian.org/debian \
    >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
fi

[ "$prepare_only" = 1 ] && exit 0

mounted=()
cleanup() {
  for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
for m in proc dev; do
  mount --bind "/$m" "$R/$m"
  mounted=("$R/$m" "${mounted[@]}")
done

# The "installed" kernel: its modules and config, as linux-image would leave them.
rm -rf "$R/lib/modules/$kver"
mkdir -p "$R/lib/modules"
cp -a "$modroot/lib/modules/$kver" "$R/lib/modules/"
[ -e "$modroot/boot/config-$kver" ] && cp "$modroot/boot/config-$kver" "$R/boot/"
chroot "$R" depmod "$kver"

# The VM definition vfioctl reads (--config): the QEMU guests' first e1000e.
V=$work/vfioctl-root
rm -rf "$V"
mkdir -p "$V/sys/bus/pci/devices" "$V/etc/vfioctl/vms"
cat >"$V/etc/vfioctl/vms/nic.toml" <<'TOML'
version = 1
boot = true
[[device]]
address = "0000:01:00.0"
id = "8086:10d3"
TOML
# The generated files go to the chroot: vfioctl's --root is the chroot itself (its sys/bus/pci an
# empty directory: /sys is not mounted there), with the definitions read from V (--config).
mkdir -p "$R/sys/bus/pci"
# Only the modules asked for (ours come from the hook, not from MODULES=most), so a build takes
# seconds; dracut gets the same with its base and udev modules only.
sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
DRACUT=(dracut --force --no-hostonly -m "base udev-rules" --kver "$kver")

fail=0
check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
  else
    echo "FAIL: $what"
    fail=1
  fi
}
in_list() { grep -qE "$1" "$2"; }

rule=etc/udev/rules.d/61-vfioctl-boot.rules
for gen in initramfs-tools dracut; do
  echo "=== $gen"
  "$vfioctl" --root "$R" boot install --initramfs "$gen" --no-regenerate --config "$V/etc/vfioctl/vms" >"$work/install-$gen.txt" 2>&1 ||
    { cat "$work/install-$gen.txt"; exit 1; }
  img=/tmp/initrd-$gen.img
  list=$work/list-$gen.txt
  case $gen in
    initramfs-tools)
      chroot "$R" mkinitramfs -o "$img" "$kver" >"$work/build-$gen.log" 2>&1 ||
        { tail -20 "$work/build-$gen.log"; exit 1; }
      chroot "$R" lsinitramfs "$img" >"$list"
      chroot "$R" sh -c "mkdir -p /tmp/x-$gen && cd /tmp/x-$gen && unmkinitramfs $img ."
      x=$R/tmp/x-$gen
      [ -d "$x/main" ] && x=$x/main
      check "image has the rule, byte for byte" cmp "$R/$rule" "$x/$rule"
      # force_load writes "<module> <args>", so an argument-less line ends in a space.
      for m in vfio vfio_iommu_type1 vfio_pci; do
        check "conf/modules loads $m" grep -qE "^$m( |\$)" "$x/conf/modules"
      done
      ;;
    dracut)
      chroot "$R" "${DRACUT[@]}" "$img" >"$work/build-$gen.log" 2>&1 ||
        { tail -20 "$work/build-$gen.log"; exit 1; }
      chroot "$R" lsinitrd "$img" >"$list"
      chroot "$R" lsinitrd -f "$rule" "$img" >"$work/rule-$gen.txt"
      check "image has the rule, byte for byte" cmp "$R/$rule" "$work/rule-$gen.txt"
      chroot "$R" lsinitrd -f etc/cmdline.d/20-force_drivers.conf "$img" >"$work/force-$gen.txt" || true
      for m in vfio vfio_iommu_type1 vfio_pci; do
        check "force_drivers loads $m (rd.driver.pre)" grep -qx "rd.driver.pre=$m" "$work/force-$gen.txt"
      done
      ;;
  esac
  for m in vfio/vfio.ko vfio/vfio_iommu_type1.ko vfio/pci/vfio-pci.ko; do
    check "image has $m" in_list "lib/modules/$kver/kernel/drivers/${m%.ko}\.ko" "$list"
  done
  check "image has systemd-udevd, which runs the rule" in_list "systemd/systemd-udevd( -> .*)?$" "$list"
  check "the configs name no vfio_virqfd" sh -c "! grep -rqs vfio_virqfd '$R/etc/initramfs-tools/modules' '$R/etc/dracut.conf.d'"

  "$vfioctl" --root "$R" boot remove --no-regenerate >/dev/null
  check "boot remove left no rule" test ! -e "$R/$rule"
  case $gen in
    initramfs-tools) chroot "$R" mkinitramfs -o "$img" "$kver" >/dev/null 2>&1; chroot "$R" lsinitramfs "$img" >"$list" ;;
    dracut) chroot "$R" "${DRACUT[@]}" "$img" >/dev/null 2>&1; chroot "$R" lsinitrd "$img" >"$list" ;;
  esac
  check "rebuilt image has no rule" sh -c "! grep -q 61-vfioctl-boot.rules '$list'"
  rm -rf "$R/tmp/x-$gen" "$R$img"
done
exit $fail
