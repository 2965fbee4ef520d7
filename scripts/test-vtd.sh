#!/usr/bin/env bash
# make test-vtd: microhv's VT-d code under QEMU TCG + OVMF on a q35 machine
# with an emulated Intel IOMMU and QEMU's edu DMA device (tests/vtd/main.cpp).
# TCG has no VT-x, so build/vtd_test.efi runs the VT-d code as an ordinary
# EFI application. Two boots: aw-bits=39 (the unit walks 3-level tables) and
# aw-bits=48 (4-level). Each must print its checks and "N passed, 0 failed",
# show the blocked DMA and the fault microhv decoded (device and address),
# and power off without a CPU exception.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

TIMEOUT=${TEST_VTD_TIMEOUT:-90}
out=build/test-vtd
CRASHED='X64 Exception Type'
SUMMARY='^[0-9]+ passed, [0-9]+ failed$'

rm -rf "$out"
mkdir -p "$out"
scripts/make-esp.sh "$out/esp.img" build/vtd_test.efi:EFI/BOOT/BOOTX64.EFI || exit 1

failures=0
verdict() {  # verdict OK|NO DESCRIPTION
  if [ "$1" = OK ]; then
    echo "PASS: $2"
  else
    echo "FAIL: $2"
    failures=$((failures + 1))
  fi
}

for aw in 39 48; do
  echo "--- intel-iommu,aw-bits=$aw"
  serial=$out/serial-aw$aw.log
  text=$out/serial-aw$aw.txt
  start_ns=$(date +%s%N)
  scripts/qemu.sh --accel tcg --timeout "$TIMEOUT" --serial "$serial" \
    --qemu-log "$out/qemu-aw$aw.log" --fail-on "$CRASHED" --until "$SUMMARY" \
    "$out/esp.img" -- -device intel-iommu,aw-bits=$aw -device edu
  status=$?
  elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
  sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$serial" >"$text"
  # The test's own lines and microhv's, without the firmware's console.
  grep -a -E '^(vtd-test: |microhv: |[0-9]+ passed, [0-9]+ failed$)' "$text" |
    grep -a -v '^vtd-test: DMAR '

  levels=$((aw == 39 ? 3 : 4))
  summary=$(grep -a -E -m1 "$SUMMARY" "$text")
  if [ -n "$summary" ] && [[ $summary == *" 0 failed" ]] && ! grep -aq '^vtd-test: FAIL' "$text"; then
    verdict OK "aw-bits=$aw: $summary ($(printf '%d.%d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))s)"
  else
    verdict NO "aw-bits=$aw: ${summary:-no summary line} (QEMU status $status; log $text)"
  fi
  if grep -aqE "^microhv: vtd: unit 0x[0-9a-f]+ \(.*\): VT-d [0-9.]+, $levels-level tables" "$text"; then
    verdict OK "aw-bits=$aw: the unit walks $levels-level tables"
  else
    verdict NO "aw-bits=$aw: no 'microhv: vtd: unit ... $levels-level tables' line"
  fi
  if grep -aqE '^microhv: error: vtd: unit 0x[0-9a-f]+: DMA write by [0-9a-f]{2}:[0-9a-f]{2}\.[0-7] to 0x[0-9a-f]+ blocked' "$text" &&
    grep -aqE '^microhv: error: vtd: unit 0x[0-9a-f]+: DMA read by [0-9a-f]{2}:[0-9a-f]{2}\.[0-7] to 0x[0-9a-f]+ blocked' "$text"; then
    verdict OK "aw-bits=$aw: microhv logged the blocked DMA write and read with device and address"
  else
    verdict NO "aw-bits=$aw: microhv's 'DMA write/read by BB:DD.F to 0x... blocked' lines are missing"
  fi
  if grep -qs 'Triple fault' "$out/qemu-aw$aw.log" || grep -aq "$CRASHED" "$text"; then
    verdict NO "aw-bits=$aw: CPU exception or triple fault (see $text, $out/qemu-aw$aw.log)"
  fi
  case $status in
    0) ;;
    3) verdict NO "aw-bits=$aw: stopped at OVMF's exception dump" ;;
    124) verdict NO "aw-bits=$aw: timed out after ${TIMEOUT}s" ;;
    *) verdict NO "aw-bits=$aw: QEMU ended with status $status" ;;
  esac
done

if [ $failures -ne 0 ]; then
  echo "test-vtd: FAIL ($failures failed checks; logs in $out/)"
  exit 1
fi
echo "test-vtd: PASS"
