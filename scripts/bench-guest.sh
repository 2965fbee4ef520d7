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
. "$(dirname "$0")/lib/common.sh"

dir=build/bench-guest
esp_guest_app "$dir" "--bench${*:+ $*}"
guest_app_boot "$dir" 1 "${BOCHS_TIMEOUT:-300}" '^bench: (done|ERROR|FAILED|no Hyper-V)' --progress "$PROG"
log_lines "$GUEST_LOG" '^bench: |^microhv: (error|.*stopped)'

missing=0
for re in '^bench: cpuid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-invalid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-deliver-eom median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: ratio post-deliver-eom / cpuid = [0-9]+\.[0-9]{2} \(target <= 2\)$'; do
  log_has "$GUEST_LOG" "$re" || { warn "missing a line matching /$re/"; missing=1; }
done
[ $missing -eq 0 ] || die "FAILED; see $GUEST_LOG and $dir/out/bochs.log"
