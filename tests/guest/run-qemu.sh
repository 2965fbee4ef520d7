#!/usr/bin/env bash
# Runs build/guest_suite.efi under QEMU TCG + OVMF, WITHOUT microhv (TCG has
# no VT-x). There is no Hyper-V interface there: the suite must print every
# check (FAIL for those needing Hyper-V), the summary, and shut down cleanly.
#
# usage: tests/guest/run-qemu.sh [SUITE_OPTIONS]    e.g. --only=guest,cpuid
# Output: build/guest-qemu/serial.txt. Prints the suite's lines; exit status 0
# when the summary line "N passed, N failed" was seen (whatever N failed is).
set -euo pipefail
cd "$(dirname "$0")/../.."

make -s build/guest_suite.efi >/dev/null
dir=build/guest-qemu
rm -rf "$dir"
mkdir -p "$dir/esp/EFI/BOOT"
cp /usr/share/OVMF/OVMF_VARS.fd "$dir/vars.fd"
tests/guest/chainload/build.sh "$dir/esp/EFI/BOOT/BOOTX64.EFI" "${1:-}"
cp build/guest_suite.efi "$dir/esp/guest_suite.efi"

timeout -k 5 120 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 256 -smp 1 \
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd \
  -drive if=pflash,format=raw,unit=1,file="$dir/vars.fd" \
  -drive format=raw,file=fat:rw:"$dir/esp" -display none -serial file:"$dir/serial.txt" \
  -net none -no-reboot || echo "run-qemu.sh: qemu exited with status $?" >&2

grep -a -E '^guest: |^[0-9]+ passed, [0-9]+ failed' "$dir/serial.txt" || true
grep -a -q -E '^[0-9]+ passed, [0-9]+ failed$' "$dir/serial.txt"
