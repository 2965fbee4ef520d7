#!/usr/bin/env bash
# The SynIC demo under Bochs 2.7 + OVMF (cpu tigerlake, VT-x emulated): what
# `make run` shows when the host has no VT-x. microhv.efi boots as
# EFI/BOOT/BOOTX64.EFI, virtualizes the firmware and chainloads
# build/guest_suite.efi with `options = --demo GUEST_OPTIONS...` from
# \EFI\microhv\microhv.cfg; the guest exchanges messages and an event with
# itself through microhv (tests/guest/demo.cpp) and powers off. The serial
# console (firmware, microhv, demo) is streamed to the terminal as it comes,
# without the firmware's terminal escape sequences. About 25 s.
#
# usage: scripts/demo.sh [GUEST_OPTIONS...]   e.g. --rounds=5
# Exit status 0 when the demo printed "demo: done (...)", 1 otherwise.
# Logs: build/demo/out/{com1.txt,bochs.log,bochs.out}.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi;
# BOCHS_TIMEOUT (default 300) limits the run in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

opts="--demo${*:+ $*}"
# microhv.cfg is `key = value` lines with `#` comments: keep options plain.
[[ "$opts" =~ ^[A-Za-z0-9=,._:/\\\ -]*$ ]] || { echo "demo: unsupported characters in options: $opts" >&2; exit 2; }
dir=build/demo
scripts/guest-esp.sh "$dir" "$opts"
mkdir -p "$dir/out"
log=$dir/out/com1.txt

echo "demo.sh: booting Bochs + OVMF + microhv (emulated VT-x; OVMF alone takes ~10 s)"
start=$(date +%s)
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-300}" \
  --until '^demo: (done|FAILED|this guest is not)|guest stopped|host stopped|virtualization failed|BdsDxe: starting Boot.*UiApp' \
  "$dir/esp.img" "$dir/out" &
bochs_pid=$!
# Ctrl-C: bochs.sh runs Bochs under timeout(1) in its own process group, so
# the terminal's SIGINT does not reach it; hand timeout(1) a SIGHUP, which it
# passes on to Bochs.
# shellcheck disable=SC2317  # called through the trap
stop() {
  local p
  for p in $(pgrep -P "$bochs_pid" -x timeout 2>/dev/null); do kill -HUP "$p" 2>/dev/null || true; done
  wait "$bochs_pid" 2>/dev/null || true
  echo
  echo "demo.sh: interrupted"
  exit 130
}
trap stop INT TERM

# Stream COM1 while Bochs runs: CRs and ANSI escape sequences removed.
tail -n +1 -F --pid="$bochs_pid" "$log" 2>/dev/null |
  sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e '/^$/d' || true
status=0
wait "$bochs_pid" || status=$?
trap - INT TERM

echo
echo "demo.sh: Bochs ran $(($(date +%s) - start)) s; serial log in $log"
if tr -d '\r' <"$log" | grep -a -q -E '^demo: done \('; then
  exit 0
fi
[ "$status" -eq 124 ] && echo "demo.sh: timed out" >&2
echo "demo.sh: the demo did not finish (no \"demo: done\" line); see $log and $dir/out/bochs.log" >&2
exit 1
