#!/usr/bin/env bash
# make test-qemu: boots build/microhv.efi as the default boot loader of an ESP
# under QEMU TCG + OVMF. TCG has no VMX, so microhv must print its banner, say
# why VT-x is unavailable, and return EFI_UNSUPPORTED to the firmware.
#
# The return is proven by the firmware itself: OVMF's boot manager prints
#   BdsDxe: failed to start Boot0002 "..." from ...: Unsupported
# only after StartImage() has come back with that status, and then goes on
# to the next boot option ("BdsDxe: loading Boot0003 ..."). If microhv hangs
# neither line appears and the run times out; a crash shows up as an OVMF
# exception dump, a triple fault in QEMU's log, or QEMU exiting (-no-reboot).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

TIMEOUT=${TEST_QEMU_TIMEOUT:-120}
out=build/test-qemu
version=$(cat VERSION 2>/dev/null || echo 0.0.0)

CRASHED='X64 Exception Type'
RETURNED='BdsDxe: failed to start Boot[0-9A-F]{4} .*: Unsupported$'
MOVED_ON='BdsDxe: (loading|starting) Boot[0-9A-F]{4}'

rm -rf "$out"
mkdir -p "$out"
scripts/make-esp.sh "$out/esp.img" build/microhv.efi:EFI/BOOT/BOOTX64.EFI || exit 1

start_ns=$(date +%s%N)
scripts/qemu.sh --accel tcg --timeout "$TIMEOUT" --serial "$out/serial.log" \
  --debugcon "$out/debugcon.log" --qemu-log "$out/qemu.log" \
  --fail-on "$CRASHED" --until '^microhv: returning to firmware$' --until "$RETURNED" --until "$MOVED_ON" \
  "$out/esp.img"
qemu_status=$?
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
elapsed=$(printf '%d.%d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))

# The serial log without terminal escape sequences and carriage returns.
sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$out/serial.log" >"$out/serial.txt"

failures=0
verdict() {  # verdict OK|... DESCRIPTION
  if [ "$1" = OK ]; then
    echo "PASS: $2"
  else
    echo "FAIL: $2"
    failures=$((failures + 1))
  fi
}

# Each expected line must come after the previous one found.
next_line=1
expect_line() {  # expect_line DESCRIPTION REGEX
  local found
  if found=$(tail -n +$next_line "$out/serial.txt" | grep -nE -m1 -e "$2"); then
    next_line=$((next_line + ${found%%:*}))
    verdict OK "$1"
  else
    verdict NO "$1"
  fi
}

escaped_version=$(sed 's/[][\.*^$()+?{}|/]/\\&/g' <<<"$version")
expect_line "banner 'microhv $version (TLFS/Hyper-V interface on Intel VT-x)'" \
  "^microhv $escaped_version \(TLFS/Hyper-V interface on Intel VT-x\)$"
expect_line "'microhv: VT-x not available:' with a reason and what to do" \
  '^microhv: VT-x not available: .+; .*(firmware setup|-cpu host,\+vmx|Bochs)'
expect_line "'microhv: returning to firmware'" '^microhv: returning to firmware$'
expect_line "firmware got EFI_UNSUPPORTED back (BdsDxe: failed to start ...: Unsupported)" \
  "$RETURNED"
expect_line "firmware moved on to the next boot option (BdsDxe: loading/starting Boot...)" \
  "$MOVED_ON"

if grep -qs 'Triple fault' "$out/qemu.log"; then
  verdict NO "no triple fault (QEMU log $out/qemu.log reports one)"
elif exception=$(grep -hs -m1 "$CRASHED" "$out/serial.txt" "$out/debugcon.log"); then
  verdict NO "no CPU exception (OVMF reports: $exception)"
else
  verdict OK "no CPU exception or triple fault"
fi

case $qemu_status in
  0) verdict OK "QEMU kept running until the firmware moved on (${elapsed}s)" ;;
  3) verdict NO "QEMU run stopped at OVMF's exception dump" ;;
  124) verdict NO "QEMU run timed out after ${TIMEOUT}s: microhv or the firmware hung" ;;
  *) verdict NO "QEMU run ended early with status $qemu_status (reset, crash or QEMU error)" ;;
esac

if [ $failures -ne 0 ]; then
  echo "--- last lines of $out/serial.txt:"
  tail -n 15 "$out/serial.txt"
  echo "---"
  echo "test-qemu: FAIL ($failures failed checks; logs in $out/)"
  exit 1
fi
echo "test-qemu: PASS (${elapsed}s)"
