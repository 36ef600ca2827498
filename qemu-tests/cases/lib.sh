# Sourced by every case script in the guest (installed as /lib/case-lib.sh).
# `step <description> <command...>` runs one check; on failure it records the description as the
# failure reason (init prints it in the sentinel line) and exits the case.
step() {
  desc=$1
  shift
  echo "--- STEP: $desc"
  if "$@"; then
    return 0
  fi
  echo "$desc" >>/tmp/fail-reason
  echo "--- FAILED STEP: $desc"
  exit 1
}
# Guest-side checker, see crates/vfioctl-qemu-tests/src/bin/vfioctl-guest-check.rs.
gc() {
  vfioctl-guest-check "$@"
}
