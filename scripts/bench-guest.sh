#!/usr/bin/env bash
# make bench-guest: round trips through microhv measured from a guest, under
# Bochs 2.7 + OVMF (cpu tigerlake, VT-x emulated). microhv.efi boots as
# EFI/BOOT/BOOTX64.EFI, virtualizes the firmware and chainloads
# build/guest_suite.efi with `options = --bench` from \EFI\microhv\microhv.cfg.
# The guest prints TSC ticks per round trip (tests/guest/bench.cpp); with
# Bochs' `clock: sync=none` they count executed instructions, so the figures
# are path lengths and the same on every run. About 25 s.
#
# usage: scripts/bench-guest.sh [GUEST_OPTIONS...]   e.g. --iterations=500
# Prints the `bench:` lines; exit status 0 when all figures and the ratio
# were printed (whether or not the ratio meets its target), 1 otherwise.
# Logs: build/bench-guest/out/{com1.txt,bochs.log,bochs.out}.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi.
set -euo pipefail
cd "$(dirname "$0")/.."

opts="--bench${*:+ $*}"
# microhv.cfg is `key = value` lines with `#` comments: keep options plain.
[[ "$opts" =~ ^[A-Za-z0-9=,._:/\\\ -]*$ ]] || { echo "bench-guest: unsupported characters in options: $opts" >&2; exit 2; }
dir=build/bench-guest
scripts/guest-esp.sh "$dir" "$opts"

start=$(date +%s)
status=0
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-300}" \
  --until '^bench: (done|ERROR|FAILED|no Hyper-V)|guest stopped|host stopped|virtualization failed|BdsDxe: starting Boot.*UiApp' \
  "$dir/esp.img" "$dir/out" || status=$?
log=$dir/out/com1.txt
touch "$log"
tr -d '\r' <"$log" | grep -a -E '^bench: |^microhv: (error|.*stopped)' || true
echo "bench-guest: Bochs ran $(($(date +%s) - start)) s (bochs.sh status $status)"

missing=0
for re in '^bench: cpuid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-invalid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-deliver-eom median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: ratio post-deliver-eom / cpuid = [0-9]+\.[0-9]{2} \(target <= 2\)$'; do
  if ! tr -d '\r' <"$log" | grep -a -q -E "$re"; then
    echo "bench-guest: missing a line matching /$re/" >&2
    missing=1
  fi
done
if [ $missing -ne 0 ]; then
  echo "bench-guest: FAILED; see $log and $dir/out/bochs.log" >&2
  exit 1
fi
