#!/usr/bin/env bash
# Runs build/guest_suite.efi under Bochs 2.7 + OVMF (tigerlake: VMX with EPT).
#
# With microhv (default): microhv.efi boots as EFI/BOOT/BOOTX64.EFI,
# virtualizes the firmware and starts the suite itself, as named in
# \EFI\microhv\microhv.cfg (`image = \EFI\microhv\guest_suite.efi`,
# `options = SUITE_OPTIONS`). About 20 s.
# With --no-microhv: there is no microhv to read a configuration, so the test
# chainloader (chainload/, SUITE_OPTIONS compiled in) boots as BOOTX64.EFI and
# starts \guest_suite.efi with those options.
#
# usage: tests/guest/run-bochs.sh [--no-microhv] [--cpus N] [SUITE_OPTIONS]
#   e.g. --only=seed,event   (one word; --demo and --bench have their own
#   scripts: scripts/demo.sh, scripts/bench-guest.sh, and --load has
#   scripts/test-load.sh)
#   --cpus N   Bochs with `cpu: count=N` (default 1); with N >= 2 also
#              ignore_bad_msrs=1 (OVMF's PEI reads MSR 0x17 on every CPU).
#              The smp group needs N >= 2 and SKIPs otherwise.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi.
# Output: build/guest-bochs/out/{com1.txt,bochs.log,...} (GUEST_BOCHS_DIR=DIR to
# use another directory, e.g. for two runs at once). Prints the suite's and
# microhv's lines; exit status 0 when the summary shows 0 failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

with_microhv=1
cpus=1
while [ $# -gt 0 ]; do
  case $1 in
    --no-microhv) with_microhv=0; shift ;;
    --cpus) cpus=${2:-}; shift 2 ;;
    --cpus=*) cpus=${1#--cpus=}; shift ;;
    *) break ;;
  esac
done
[[ "$cpus" =~ ^[1-8]$ ]] || { echo "run-bochs.sh: --cpus takes 1..8, not '$cpus'" >&2; exit 2; }
opts=${1:-}
# microhv.cfg is `key = value` lines with `#` comments; the chainloader takes
# the same set.
[[ "$opts" =~ ^[A-Za-z0-9=,_\ -]*$ ]] || { echo "run-bochs.sh: unsupported characters in options: $opts" >&2; exit 2; }
make -s build/guest_suite.efi >/dev/null
dir=${GUEST_BOCHS_DIR:-build/guest-bochs}
rm -rf "$dir"
mkdir -p "$dir"
if [ $with_microhv -eq 1 ]; then
  efi=${MICROHV_EFI:-build/microhv.efi}
  [ -n "${MICROHV_EFI:-}" ] || make -s build/microhv.efi >/dev/null
  {
    printf 'image = \\EFI\\microhv\\guest_suite.efi\n'
    [ -z "$opts" ] || printf 'options = %s\n' "$opts"
  } >"$dir/microhv.cfg"
  files=("$efi:EFI/BOOT/BOOTX64.EFI" "build/guest_suite.efi:EFI/microhv/guest_suite.efi"
    "$dir/microhv.cfg:EFI/microhv/microhv.cfg")
else
  tests/guest/chainload/build.sh "$dir/chainload.efi" "$opts"
  files=("$dir/chainload.efi:EFI/BOOT/BOOTX64.EFI" "build/guest_suite.efi:guest_suite.efi")
fi
scripts/make-esp.sh "$dir/esp.img" "${files[@]}"
cpu_opts=()
if [ "$cpus" -gt 1 ]; then
  cpu_opts=(--opt "cpu: model=tigerlake, count=$cpus, ips=50000000, reset_on_triple_fault=0, ignore_bad_msrs=1")
fi
scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-300}" "${cpu_opts[@]}" \
  --until '^[0-9]+ passed, [0-9]+ failed|guest stopped|host stopped|virtualization failed|BdsDxe: starting Boot.*UiApp' \
  "$dir/esp.img" "$dir/out" || echo "run-bochs.sh: bochs.sh exited with status $?" >&2

log=$dir/out/com1.txt
touch "$log"
tr -d '\r' <"$log" | grep -a -E '^guest: |^microhv: |^[0-9]+ passed, [0-9]+ failed' || true
tr -d '\r' <"$log" | grep -a -q -E '^[0-9]+ passed, 0 failed$'
