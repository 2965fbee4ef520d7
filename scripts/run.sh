#!/usr/bin/env bash
# make run: boots microhv with the SynIC demo guest (tests/guest --demo) and
# shows the serial console live.
#  - On a host with nested VT-x (/dev/kvm usable, CPU has vmx, kvm_intel
#    nested=Y): QEMU/KVM with -cpu host,+vmx and OVMF.
#  - Otherwise: Bochs 2.7 + OVMF, which emulates VT-x (scripts/demo.sh).
# Arguments are passed to the demo (e.g. --rounds=5). RUN_TIMEOUT (seconds,
# default 300) bounds the run. The console is kept under build/run or build/demo.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

if ! kvm_nested_vmx_usable; then
  say "no nested VT-x on this host; running microhv under Bochs, which emulates VT-x"
  BOCHS_TIMEOUT=${RUN_TIMEOUT:-300} exec scripts/demo.sh "$@"
fi

say "nested VT-x available; running microhv under QEMU/KVM"
out=build/run
esp_guest_app "$out" "--demo${*:+ $*}"
status=0
scripts/qemu.sh --accel kvm --timeout "${RUN_TIMEOUT:-300}" \
  --serial "$out/serial.log" --live --fail-on 'X64 Exception Type' \
  --until '^demo: (done|FAILED)' "$out/esp.img" || status=$?
echo
say "QEMU status $status; serial log in $out/serial.log"
exit $status
