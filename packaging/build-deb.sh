#!/usr/bin/env bash
# Builds vfioctl's Debian package with cargo-deb ([package.metadata.deb] in crates/vfioctl/Cargo.toml):
# the binary, man pages and bash/zsh/fish completions generated from the clap definitions, the
# boot-apply systemd unit, the libvirt hook and Proxmox VE hookscript, an example VM definition,
# the known-devices table and a machine-readable copyright file listing every linked crate.
#
# Usage: packaging/build-deb.sh [--target TRIPLE] [OUTDIR]    (default OUTDIR: target/debian)
#   no --target: the host's glibc build (amd64 here), Depends from dpkg-shlibdeps;
#   --target aarch64-unknown-linux-musl: the arm64 package, a static binary (no cross gcc needed:
#   rust-lld links it), so it also runs on an OpenWrt-based host.
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
target=
if [ "${1:-}" = --target ]; then
  target=$2
  shift 2
fi
out=${1:-target/debian}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

# The plain release binary of crates/vfioctl: the simulated kernel lives only in the test-only
# vfioctl-testbin, so the package can never change behaviour under a marked `--root` tree.
no_simulator() {
  if grep -qF '.vfioctl-sim/kernel.json' "$1"; then
    echo "error: $1 holds the test simulator's marker; package the binary of crates/vfioctl" >&2
    exit 1
  fi
}
# The man pages and completions come from a host binary: a cross-built one cannot run here.
cargo build --release --locked -p vfioctl --bin vfioctl >&2
no_simulator "$target_dir/release/vfioctl"
if [ -n "$target" ]; then
  release="$target_dir/$target/release"
else
  release="$target_dir/release"
fi
assets="$release/deb-assets"
rm -rf "$assets"
"$target_dir/release/vfioctl" generate-docs --out "$assets"
# cargo-deb compresses man pages only when they are not under target/release.
gzip -9n "$assets"/man/*.1
cargo run -q --locked -p vfioctl-packaging -- copyright ${target:+--target "$target"} \
  >"$assets/copyright.new"
mv "$assets/copyright.new" "$assets/copyright"

deb_args=(-p vfioctl --locked --no-build --output "$out")
# The project has no public URL or mail address yet: whoever publishes the package gives them
# here (VFIOCTL_MAINTAINER="Name <address>", VFIOCTL_HOMEPAGE=URL) instead of editing the tree.
if [ -n "${VFIOCTL_MAINTAINER:-}" ]; then
  deb_args+=(--maintainer "$VFIOCTL_MAINTAINER")
fi
if [ -n "$target" ]; then
  env_target=$(tr 'a-z-' 'A-Z_' <<<"$target")
  sysroot=$(rustc --print sysroot)
  host=$(rustc -vV | sed -n 's/^host: //p')
  case "$target" in
    *-musl)
      # Static, stripped by the linker: the host's binutils cannot read an aarch64 ELF.
      export "CARGO_TARGET_${env_target}_LINKER=$sysroot/lib/rustlib/$host/bin/rust-lld"
      export CARGO_PROFILE_RELEASE_STRIP=symbols
      deb_args+=(--no-strip --variant static)
      ;;
  esac
  cargo build --release --locked -p vfioctl --bin vfioctl --target "$target" >&2
  no_simulator "$release/vfioctl"
  deb_args+=(--target "$target")
else
  cargo build --release --locked -p vfioctl --bin vfioctl >&2
fi
mkdir -p "$out"
# cargo deb prints the package's path on standard output.
deb=$(cargo deb "${deb_args[@]}" | tail -n1)

# cargo-deb writes no md5sums (dpkg --verify and debsums read them): add them as dh_md5sums
# does, for every file but the conffiles, and repack.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dpkg-deb -R "$deb" "$stage/pkg"
(
  cd "$stage/pkg"
  find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum >DEBIAN/md5sums
)
chmod 0644 "$stage/pkg/DEBIAN/md5sums"
# A static binary has no shared-library dependencies; cargo-deb still writes an empty Depends:,
# which dpkg accepts and lintian rightly flags (empty-field).
sed -i '/^Depends: *$/d' "$stage/pkg/DEBIAN/control"
if [ -n "${VFIOCTL_HOMEPAGE:-}" ]; then
  sed -i "/^Description:/i Homepage: $VFIOCTL_HOMEPAGE" "$stage/pkg/DEBIAN/control"
fi
dpkg-deb --root-owner-group -Zxz --build "$stage/pkg" "$deb" >/dev/null
echo "$deb"
