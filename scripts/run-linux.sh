#!/usr/bin/env bash
# make run GUEST=linux: Debian's Linux kernel boots above microhv on 2 CPUs
# and leaves you at a busybox shell on its serial console, in this terminal.
#
# QEMU/KVM with -cpu host,+vmx when the host has nested VT-x (seconds to the
# shell), otherwise Bochs 2.7 + OVMF, which emulates VT-x (minutes). The
# emulator's COM1 is a TCP connection on 127.0.0.1, on a port the kernel picks,
# to scripts/lib/console.py, which is the terminal: guest output appears as it
# is printed, a status line shows the boot stage while the guest is quiet,
# `exit` or `poweroff` in the guest ends the session, Ctrl-] (and Ctrl-C until
# the shell is up) leaves at once, and the emulator never outlives the session.
#
# Settings: RUN_TIMEOUT (seconds, default 1800) bounds the session;
# RUN_EMULATOR=bochs forces Bochs on a host with nested VT-x; RUN_EMULATOR=
# qemu-tcg runs the QEMU path without VT-x (microhv then declines and OVMF
# goes on to its shell: only a check of the console plumbing).
# Logs in build/run-linux/: session.log (the serial console, plain text),
# session.trace (when each stage began, in seconds), emulator.out, and for
# Bochs bochs.log.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

out=build/run-linux
mkdir -p "$out"
# One session per checkout at a time: a second one would rewrite the disk
# image under the first. The lock lives as long as the console (fd 9).
exec 9>"$out/.lock"
flock -n 9 || die "another \`make run GUEST=linux\` from this checkout is still running; leave it first (Ctrl-] in its terminal)"

scripts/linux-guest.sh
# RUN_LINUX_OPTIONS: more kernel options for /init (e.g. linux-guest.bench=1);
# RUN_MICROHV_CONFIG: more microhv.cfg lines (e.g. testdev = on). Both are
# how scripts/test-linux.sh --console adds its clock benchmark.
esp_linux "$out" "microhv.cpus=2 linux-guest.shell=1${RUN_LINUX_OPTIONS:+ $RUN_LINUX_OPTIONS}" \
  "${RUN_MICROHV_CONFIG:-}"
timeout_s=${RUN_TIMEOUT:-1800}
emulator=${RUN_EMULATOR:-}
[ -n "$emulator" ] || { kvm_nested_vmx_usable && emulator=qemu-kvm || emulator=bochs; }
case $emulator in
  qemu-kvm | qemu-tcg)
    qemu_command "${emulator#qemu-}" "$out/esp.img" "$out/ovmf-vars.fd" -smp 2 \
      -serial 'tcp:127.0.0.1:@PORT@,nodelay=on'
    # timeout(1) is the backstop should the console itself be killed.
    command=(timeout -k 10 $((timeout_s + 30)) "${QEMU_COMMAND[@]}")
    hint=$out/emulator.out
    say "QEMU ($emulator) with 2 CPUs"
    ;;
  bochs)
    BOCHS_CPU=broadwell_ult bochs_config "$out" "$out/esp.img" 'cpu: count=2' \
      'com1: enabled=1, mode=socket-client, dev=127.0.0.1:$MICROHV_CONSOLE_PORT'
    bochs_command "$out" $((timeout_s + 30))
    command=("${BOCHS_COMMAND[@]}")
    hint=$out/bochs.log
    say "Bochs 2.7 + OVMF with 2 CPUs, which emulates VT-x (no nested VT-x here): the firmware takes" \
      "about 1 minute, Linux 1-3 more until the shell"
    ;;
  *) die "RUN_EMULATOR must be bochs, qemu-kvm or qemu-tcg, not $emulator" ;;
esac
exec python3 scripts/lib/console.py --name "$PROG" --log "$out/session.log" --timeout "$timeout_s" \
  --trace "$out/session.trace" --emulator-log "$out/emulator.out" --emulator-hint "$hint" -- "${command[@]}"
