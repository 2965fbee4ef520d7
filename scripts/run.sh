#!/usr/bin/env bash
# make run: boots microhv with the SynIC demo guest (tests/guest --demo) and
# shows the serial console live.
#  - On a host with nested VT-x (/dev/kvm usable, CPU has vmx, kvm_intel
#    nested=Y): QEMU/KVM with -cpu host,+vmx and OVMF.
#  - Otherwise: Bochs 2.7 + OVMF, which emulates VT-x (scripts/demo.sh).
# Arguments are passed to the demo (e.g. --rounds=5). RUN_TIMEOUT (seconds,
# default 300) bounds the run. The console is kept under build/run or build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."

kvm_nested_vmx_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  grep -qw vmx /proc/cpuinfo || return 1
  local nested=/sys/module/kvm_intel/parameters/nested
  [ -r $nested ] && grep -qE '^(Y|1)$' $nested
}

if ! kvm_nested_vmx_usable; then
  echo "run.sh: no nested VT-x on this host; running microhv under Bochs, which emulates VT-x"
  BOCHS_TIMEOUT=${RUN_TIMEOUT:-300} exec scripts/demo.sh "$@"
fi

echo "run.sh: nested VT-x available; running microhv under QEMU/KVM"
out=build/run
scripts/guest-esp.sh "$out" "--demo${*:+ $*}"
status=0
scripts/qemu.sh --accel kvm --timeout "${RUN_TIMEOUT:-300}" \
  --serial "$out/serial.log" --live --fail-on 'X64 Exception Type' \
  --until '^demo: (done|FAILED)' "$out/esp.img" || status=$?
echo
echo "run.sh: QEMU status $status; serial log in $out/serial.log"
exit $status
