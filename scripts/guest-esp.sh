#!/usr/bin/env bash
# Builds DIR/esp.img for a run of the guest app above microhv: microhv.efi as
# EFI/BOOT/BOOTX64.EFI (MICROHV_EFI=path boots another image instead of
# building build/microhv.efi), build/guest_suite.efi as the next stage, and
# \EFI\microhv\microhv.cfg with `options = OPTIONS`. DIR is emptied first.
# Callers validate OPTIONS (microhv.cfg takes plain text only).
#
# usage: scripts/guest-esp.sh DIR OPTIONS
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
opts=$2
efi=${MICROHV_EFI:-build/microhv.efi}
[ -n "${MICROHV_EFI:-}" ] || make -s build/microhv.efi >/dev/null
make -s build/guest_suite.efi >/dev/null
rm -rf "$dir"
mkdir -p "$dir"
printf 'image = \\EFI\\microhv\\guest_suite.efi\noptions = %s\n' "$opts" >"$dir/microhv.cfg"
scripts/make-esp.sh "$dir/esp.img" "$efi:EFI/BOOT/BOOTX64.EFI" \
  build/guest_suite.efi:EFI/microhv/guest_suite.efi "$dir/microhv.cfg:EFI/microhv/microhv.cfg"
