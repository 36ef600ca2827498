#!/usr/bin/env bash
# Both architectures: static musl binaries for x86_64 and aarch64 (packaging/build-static.sh
# checks each with file(1)), and the arm64 Debian package built from the aarch64 one, checked with
# dpkg-deb --info (Architecture: arm64, no Depends: the binary is static) and file(1) on the
# packaged binary. The arm64 binary also runs in an arm64 guest: the QEMU layer (.ci/qemu) boots
# Debian's arm64 kernel under qemu-system-aarch64 and runs a static aarch64 vfioctl in it.
#
# Usage: packaging/test-arches.sh [OUTDIR]    (default: target/debian)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/debian}
fail() { echo "test-arches: $*" >&2; exit 1; }
packaging/build-static.sh "$(dirname "$out")/static"
deb=$(packaging/build-deb.sh --target aarch64-unknown-linux-musl "$out" | tail -n1)
echo "package: $deb"
info=$(dpkg-deb --info "$deb")
grep -qx " Architecture: arm64" <<<"$info" || fail "$deb is not Architecture: arm64:
$info"
! grep -Eq "^ Depends: *[^ ]" <<<"$info" || fail "the static arm64 package should depend on nothing:
$info"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/vfioctl >"$work/vfioctl"
description=$(file -b "$work/vfioctl")
grep -q "ARM aarch64" <<<"$description" || fail "packaged binary is not aarch64: $description"
grep -Eq "static(-pie)? linked|statically linked" <<<"$description" \
  || fail "packaged binary is not static: $description"
echo "usr/bin/vfioctl: $description"
if command -v lintian >/dev/null 2>&1; then
  tags=$(lintian --tag-display-limit 0 --display-info "$deb" 2>&1 || true)
  unexpected=$(grep -E '^[EWI]: ' <<<"$tags" | grep -vFf <(grep -v '^#' packaging/lintian-overrides.txt | grep .) || true)
  [ -z "$unexpected" ] || fail "lintian tags not in packaging/lintian-overrides.txt:
$unexpected"
fi
echo "both architectures: static x86_64 and aarch64 binaries, arm64 package"
