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
cd "$(dirname "$0")/.."

cpus=2
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  cpus=$1
  shift
fi
[ "$cpus" -ge 1 ] && [ "$cpus" -le 8 ] || { echo "test-load: CPUS must be 1..8, not $cpus" >&2; exit 2; }
opts="--load${*:+ $*}"
# microhv.cfg is `key = value` lines with `#` comments: keep options plain.
[[ "$opts" =~ ^[A-Za-z0-9=,._\ -]*$ ]] || { echo "test-load: unsupported characters in options: $opts" >&2; exit 2; }
dir=build/test-load
scripts/guest-esp.sh "$dir" "$opts"

start=$(date +%s)
status=0
# ignore_bad_msrs=1: OVMF's PEI reads MSR 0x17 on every CPU.
cpu_opts=()
if [ "$cpus" -gt 1 ]; then
  cpu_opts=(--opt "cpu: model=tigerlake, count=$cpus, ips=50000000, reset_on_triple_fault=0, ignore_bad_msrs=1")
fi
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-900}" "${cpu_opts[@]}" \
  --until '^[0-9]+ passed, [0-9]+ failed|guest stopped|host stopped|virtualization failed|BdsDxe: starting Boot.*UiApp' \
  "$dir/esp.img" "$dir/out" || status=$?
log=$dir/out/com1.txt
touch "$log"
tr -d '\r' <"$log" | grep -a -E '^load: |^[0-9]+ passed, [0-9]+ failed|^microhv: (error|.*stopped|.*failed)' || true
echo "test-load: $cpus CPUs, Bochs ran $(($(date +%s) - start)) s (bochs.sh status $status)"
if ! tr -d '\r' <"$log" | grep -a -q -E '^load: PASS$'; then
  echo "test-load: FAILED; see $log and $dir/out/bochs.log" >&2
  exit 1
fi
