# shellcheck shell=bash
# The shell library of scripts/*.sh and tests/guest/run-bochs.sh; sourced,
# never run: `. "$(dirname "$0")/lib/common.sh"`. Moves to the repository
# root, defines PROG (the prefix of every message) and the helpers below, and
# loads the rest of the library (functions only): proc.sh (process groups),
# progress.sh (progress lines), bochs.sh and qemu.sh (emulator command lines),
# esp.sh (EFI system partitions), guest.sh (guest app runs). Callers keep
# `set -euo pipefail`.
PROG=${PROG:-$(basename "$0" .sh)}
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: $*" >&2; }
die() {
  echo "$PROG: $*" >&2
  exit 1
}

# Seconds since START (a $SECONDS value).
elapsed() { echo $((SECONDS - $1)); }

# Serial output as a person reads it: no carriage returns and no ANSI escape
# sequences (OVMF draws its screen with them); line by line, unbuffered, so
# that it can sit in a live pipeline.
plain_text() { sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' "$@"; }

# log_lines FILE REGEX: the lines of FILE (as plain text) matching REGEX.
# Always status 0; grep reads all input so that, under pipefail, an early exit
# cannot kill sed with SIGPIPE.
log_lines() {
  [ -f "$1" ] || return 0
  plain_text "$1" | tr -d '\000' | grep -a -E -e "$2" || true
}
# log_has FILE REGEX: status 0 when a line of FILE matches REGEX.
log_has() { [ -n "$(log_lines "$1" "$2")" ]; }

# microhv.cfg is `key = value` lines with `#` comments: guest options must be
# plain words. check_cfg_options OPTIONS dies otherwise.
check_cfg_options() {
  [[ "$1" =~ ^[A-Za-z0-9=,._:/\\\ -]*$ ]] || die "unsupported characters in guest options: $1"
}

# True on a host where QEMU/KVM can give microhv VT-x: /dev/kvm usable, a
# VMX-capable CPU and kvm_intel loaded with nested=Y.
kvm_nested_vmx_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  grep -qw vmx /proc/cpuinfo || return 1
  local nested=/sys/module/kvm_intel/parameters/nested
  [ -r $nested ] && grep -qE '^(Y|1)$' $nested
}

# shellcheck source=scripts/lib/proc.sh
. scripts/lib/proc.sh
# shellcheck source=scripts/lib/progress.sh
. scripts/lib/progress.sh
# shellcheck source=scripts/lib/bochs.sh
. scripts/lib/bochs.sh
# shellcheck source=scripts/lib/qemu.sh
. scripts/lib/qemu.sh
# shellcheck source=scripts/lib/esp.sh
. scripts/lib/esp.sh
# shellcheck source=scripts/lib/guest.sh
. scripts/lib/guest.sh
