#!/usr/bin/env bash
# Load test: every virtual processor posts messages to the others and signals
# events on them at once, with deliberate receiver stalls (tests/guest/load.cpp,
# guest option --load), under Bochs 2.7 + OVMF with `cpu: count=CPUS`.
# microhv.efi boots as EFI/BOOT/BOOTX64.EFI, virtualizes the firmware and
# chainloads build/guest_suite.efi with `options = --load GUEST_OPTIONS` from
# \EFI\microhv\microhv.cfg.
#
# usage: scripts/test-load.sh [CPUS] [GUEST_OPTIONS...]
#   CPUS            1..8 (default 2); the test needs 2 or more, except with
#                   --self (CPU 0 posting to itself: a harness self-check that
#                   runs on a uniprocessor microhv)
#   GUEST_OPTIONS   --messages=N (per CPU, default 10000), --events=N,
#                   --timeout=SECONDS (guest time, default 300), --self
# Prints the `load:` lines and the summary; exit status 0 only when the guest
# printed `load: PASS`.
# Logs: build/test-load/out/{com1.txt,bochs.log,bochs.out}.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi;
# BOCHS_TIMEOUT=SECONDS is the wall-clock limit (default 900).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

cpus=2
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  cpus=$1
  shift
fi
[ "$cpus" -ge 1 ] && [ "$cpus" -le 8 ] || { warn "CPUS must be 1..8, not $cpus"; exit 2; }
dir=build/test-load
esp_guest_app "$dir" "--load${*:+ $*}"
guest_app_boot "$dir" "$cpus" "${BOCHS_TIMEOUT:-900}" '^[0-9]+ passed, [0-9]+ failed' --progress "$PROG"
log_lines "$GUEST_LOG" '^load: |^[0-9]+ passed, [0-9]+ failed|^microhv: (error|.*stopped|.*failed)'
log_has "$GUEST_LOG" '^load: PASS$' || die "FAILED; see $GUEST_LOG and $dir/out/bochs.log"
