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
#   --cpus N   Bochs with `cpu: count=N` (default 1).
#              The smp group needs N >= 2 and SKIPs otherwise.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi.
# Output: build/guest-bochs/out/{com1.txt,bochs.log,...} (GUEST_BOCHS_DIR=DIR to
# use another directory, e.g. for two runs at once). Prints the suite's and
# microhv's lines; exit status 0 when the summary shows 0 failed.
set -euo pipefail
. "$(dirname "$0")/../../scripts/lib/common.sh"

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
[[ "$cpus" =~ ^[1-8]$ ]] || { warn "--cpus takes 1..8, not '$cpus'"; exit 2; }
opts=${1:-}
dir=${GUEST_BOCHS_DIR:-build/guest-bochs}
if [ $with_microhv -eq 1 ]; then
  esp_guest_app "$dir" "$opts"
else
  make -s build/guest_suite.efi >/dev/null
  rm -rf "$dir"
  mkdir -p "$dir"
  tests/guest/chainload/build.sh "$dir/chainload.efi" "$opts"
  scripts/make-esp.sh "$dir/esp.img" "$dir/chainload.efi:EFI/BOOT/BOOTX64.EFI" \
    build/guest_suite.efi:guest_suite.efi
fi
guest_app_boot "$dir" "$cpus" "${BOCHS_TIMEOUT:-300}" '^[0-9]+ passed, [0-9]+ failed' --progress "$PROG"
log_lines "$GUEST_LOG" '^guest: |^microhv: |^[0-9]+ passed, [0-9]+ failed'
log_has "$GUEST_LOG" '^[0-9]+ passed, 0 failed$'
