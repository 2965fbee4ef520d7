#!/usr/bin/env bash
# Runs build/guest_suite.efi as a guest of microhv under Bochs 2.7 + OVMF
# (tigerlake: VMX with EPT). A test chainloader (chainload/) starts
# \microhv.efi, which virtualizes the firmware and returns to it, then
# \guest_suite.efi. About 15 s.
#
# usage: tests/guest/run-bochs.sh [--no-microhv] [SUITE_OPTIONS]
# Output: build/guest-bochs/{com1.txt,bochs.log,...}. Prints the suite's and
# microhv's lines; exit status 0 when the summary shows 0 failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

with_microhv=1
if [ "${1:-}" = "--no-microhv" ]; then
  with_microhv=0
  shift
fi
make -s build/guest_suite.efi >/dev/null
dir=build/guest-bochs
rm -rf "$dir"
mkdir -p "$dir"
tests/guest/chainload/build.sh "$dir/chainload.efi" "${1:-}"
files=("$dir/chainload.efi:EFI/BOOT/BOOTX64.EFI" "build/guest_suite.efi:guest_suite.efi")
if [ $with_microhv -eq 1 ]; then
  make -s build/microhv.efi >/dev/null
  files+=("build/microhv.efi:microhv.efi")
fi
scripts/make-esp.sh "$dir/esp.img" "${files[@]}"
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-300}" \
  --until '^[0-9]+ passed, [0-9]+ failed|host stopped|guest stopped' \
  "$dir/esp.img" "$dir/out" || echo "run-bochs.sh: bochs.sh exited with status $?" >&2

log=$dir/out/com1.txt
tr -d '\r' <"$log" | grep -a -E '^guest: |^microhv: |^[0-9]+ passed, [0-9]+ failed' || true
tr -d '\r' <"$log" | grep -a -q -E '^[0-9]+ passed, 0 failed$'
