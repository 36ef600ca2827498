#!/usr/bin/env bash
# Validates the manifests in this directory against the Kubernetes API schema, strictly (unknown
# fields are errors), with kubernetes-validate from PyPI in a virtualenv kept between runs, and
# checks that the ConfigMap's configuration is one the device plugin accepts.
#
# Usage: bash packaging/kubernetes/validate.sh [VFIOCTL_BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=1.37.0
venv=${VFIOCTL_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vfioctl/kubernetes-validate-$version}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$version"
fi
"$venv/bin/kubernetes-validate" --strict --no-warn "$here"/*.yaml
if [ -n "${1:-}" ]; then
  # The ConfigMap's file and the example file parse as the plugin parses them.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/python" - "$here/vfioctl-device-plugin.yaml" "$tmp/device-plugin.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "ConfigMap"]
open(sys.argv[2], "w").write(docs[0]["data"]["device-plugin.toml"])
PY
  for file in "$tmp/device-plugin.toml" "$here/device-plugin.toml"; do
    "$1" device-plugin --check-config --config "$file"
  done
fi
echo "kubernetes manifests: valid"
