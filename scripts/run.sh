#!/usr/bin/env bash
# make run: boots build/microhv.efi under QEMU + OVMF and shows the serial
# console live. KVM with nested VT-x is used when the host offers it; otherwise
# TCG, where microhv reports that VT-x is unavailable and returns.
#
# Ends once microhv has returned to the firmware and the firmware has moved on,
# when QEMU exits (e.g. a power-off), or after RUN_TIMEOUT seconds (default 120).
# The console is also kept in build/run/serial.log.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/run
mkdir -p "$out"
scripts/make-esp.sh "$out/esp.img" build/microhv.efi:EFI/BOOT/BOOTX64.EFI

status=0
scripts/qemu.sh --accel auto --timeout "${RUN_TIMEOUT:-120}" \
  --serial "$out/serial.log" --live --fail-on 'X64 Exception Type' \
  --until '^microhv: returning to firmware$' --until '^BdsDxe: ' \
  "$out/esp.img" || status=$?

echo
case $status in
  0) echo "run.sh: microhv returned to the firmware; QEMU stopped" ;;
  3) echo "run.sh: the firmware reported a CPU exception; QEMU stopped" ;;
  124) echo "run.sh: timed out; QEMU stopped" ;;
  *) echo "run.sh: QEMU exited with status $status" ;;
esac
echo "run.sh: serial log in $out/serial.log"
exit $status
