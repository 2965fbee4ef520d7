#!/usr/bin/env bash
# The SynIC demo under Bochs 2.7 + OVMF (cpu tigerlake, VT-x emulated): what
# `make run` shows when the host has no VT-x. microhv.efi boots as
# EFI/BOOT/BOOTX64.EFI, virtualizes the firmware and chainloads
# build/guest_suite.efi with `options = --demo GUEST_OPTIONS...` from
# \EFI\microhv\microhv.cfg; the guest exchanges messages and an event with
# itself through microhv (tests/guest/demo.cpp) and powers off. The serial
# console (firmware, microhv, demo) is streamed to the terminal as it comes,
# without the firmware's terminal escape sequences. About 25 s; Ctrl-C stops
# it, Bochs included.
#
# usage: scripts/demo.sh [GUEST_OPTIONS...]   e.g. --rounds=5
# Exit status 0 when the demo printed "demo: done (...)", 1 otherwise.
# Logs: build/demo/out/{com1.txt,bochs.log,bochs.out}.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi;
# BOCHS_TIMEOUT (default 300) limits the run in seconds.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

dir=build/demo
esp_guest_app "$dir" "--demo${*:+ $*}"
log=$dir/out/com1.txt

say "booting Bochs + OVMF + microhv (emulated VT-x; OVMF alone takes 10-40 s)"
start=$SECONDS
proc_traps
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-300}" --heartbeat "$PROG" \
  --until "^demo: (done|FAILED|this guest is not)|$GUEST_APP_STOP_RE" "$dir/esp.img" "$dir/out" &
bochs_pid=$!
proc_track $bochs_pid
# Stream COM1 while Bochs runs.
tail -n +1 -F --pid=$bochs_pid "$log" 2>/dev/null | plain_text | sed -u '/^$/d' || true
wait $bochs_pid || true
touch "$log"

echo
say "Bochs ran $(elapsed $start) s; serial log in $log"
log_has "$log" '^demo: done \(' && exit 0
die "the demo did not finish (no \"demo: done\" line); see $log and $dir/out/bochs.log"
