#!/usr/bin/env bash
# Builds static (musl) release binaries of vfioctl for x86_64 and aarch64, for hosts where nobody
# builds Rust (an OpenWrt-based Ten64 host), and checks with file(1) that each is a static
# executable for its architecture. No cross gcc: rust-lld links both.
#
# Usage: packaging/build-static.sh [OUTDIR]    (default: target/static)
# Writes OUTDIR/vfioctl-x86_64 and OUTDIR/vfioctl-aarch64.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/static}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "$out"
for arch in x86_64 aarch64; do
  target=$arch-unknown-linux-musl
  rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
  env_target=$(tr 'a-z-' 'A-Z_' <<<"$target")
  # The same environment as build-deb.sh --target, so the arm64 package reuses this build.
  env "CARGO_TARGET_${env_target}_LINKER=$sysroot/lib/rustlib/$host/bin/rust-lld" \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked -p vfioctl --bin vfioctl --target "$target" >&2
  install -m 0755 "$target_dir/$target/release/vfioctl" "$out/vfioctl-$arch"
  description=$(file -b "$out/vfioctl-$arch")
  case "$arch" in
    x86_64) machine="x86-64" ;;
    aarch64) machine="ARM aarch64" ;;
  esac
  grep -q "$machine" <<<"$description" || { echo "$out/vfioctl-$arch is not $machine: $description" >&2; exit 1; }
  grep -Eq "static(-pie)? linked|statically linked" <<<"$description" \
    || { echo "$out/vfioctl-$arch is not static: $description" >&2; exit 1; }
  echo "$out/vfioctl-$arch: $description"
done
