#!/usr/bin/env bash
# make run GUEST=linux: Debian's Linux kernel boots above microhv and leaves
# you at a busybox shell on its serial console (try `dmesg | grep -i vmbus`;
# `exit` powers the machine off). QEMU/KVM with nested VT-x when the host has
# it, otherwise Bochs + OVMF with 2 CPUs (about 2 minutes to the shell).
# RUN_TIMEOUT (seconds, default 1800) bounds the session.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/linux-guest.sh
make -s build/microhv.efi
out=build/run-linux
mkdir -p "$out/bochs"
printf '%s\n' 'image = \EFI\linux\vmlinuz' \
  'options = console=ttyS0,115200 cryptomgr.notests=1 mitigations=off quiet initrd=\EFI\linux\initrd.img microhv.cpus=2 linux-guest.shell=1' \
  >"$out/microhv.cfg"
scripts/make-esp.sh "$out/esp.img" build/microhv.efi:EFI/BOOT/BOOTX64.EFI \
  "$out/microhv.cfg:EFI/microhv/microhv.cfg" build/linux/vmlinuz:EFI/linux/vmlinuz \
  build/linux/initrd.img:EFI/linux/initrd.img

kvm_nested_vmx_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  grep -qw vmx /proc/cpuinfo || return 1
  local nested=/sys/module/kvm_intel/parameters/nested
  [ -r $nested ] && grep -qE '^(Y|1)$' $nested
}
if kvm_nested_vmx_usable; then
  echo "run-linux: nested VT-x available; QEMU/KVM (the console is this terminal)"
  exec scripts/qemu.sh --accel kvm --timeout "${RUN_TIMEOUT:-1800}" --serial stdio "$out/esp.img"
fi

# Bochs: COM1 is a TCP socket on this machine's loopback; this script is the
# terminal at the other end (bash's /dev/tcp), so the emulator's own screen
# output stays in its log.
port=${RUN_LINUX_PORT:-14501}
echo "run-linux: no nested VT-x; Bochs + OVMF with 2 CPUs (about 2 minutes to the shell; logs in $out/bochs)"
scripts/bochs.sh --cpu broadwell_ult --megs 256 --timeout "${RUN_TIMEOUT:-1800}" --opt 'cpu: count=2' \
  --opt "com1: enabled=1, mode=socket-server, dev=localhost:$port" "$out/esp.img" "$out/bochs" \
  >"$out/bochs/run.out" 2>&1 &
bochs_pid=$!
trap 'kill -HUP $bochs_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then break; fi
  kill -0 $bochs_pid 2>/dev/null || { echo "run-linux: Bochs ended early; see $out/bochs/" >&2; exit 1; }
  sleep 0.2
done
{ tr -d '\r' <&3 | sed -u -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g'; } &
reader=$!
cat >&3 || true
wait $bochs_pid || true
kill $reader 2>/dev/null || true
