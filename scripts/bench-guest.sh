#!/usr/bin/env bash
# make bench-guest: round trips through microhv measured from a guest, under
# Bochs 2.7 + OVMF (cpu tigerlake, VT-x emulated). microhv.efi boots as
# EFI/BOOT/BOOTX64.EFI, virtualizes the firmware and chainloads
# build/guest_suite.efi with `options = --bench` from \EFI\microhv\microhv.cfg.
# The guest prints TSC ticks per round trip (tests/guest/bench.cpp); with
# Bochs' `clock: sync=none` they count executed instructions, so the figures
# are path lengths and the same on every run. About 25 s.
#
# usage: scripts/bench-guest.sh [GUEST_OPTIONS...]   e.g. --iterations=500
# Prints the `bench:` lines; exit status 0 when all figures and the ratio
# were printed (whether or not the ratio meets its target) and no figure is
# more than 10% above its baseline in tests/bench/guest_baseline.txt (the
# path lengths are deterministic under Bochs, so this is a stable check),
# 1 otherwise. BENCH_BASELINE=file compares against another file.
# Logs: build/bench-guest/out/{com1.txt,bochs.log,bochs.out}.
# MICROHV_EFI=path boots that microhv image instead of building build/microhv.efi.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

dir=build/bench-guest
esp_guest_app "$dir" "--bench${*:+ $*}"
guest_app_boot "$dir" 1 "${BOCHS_TIMEOUT:-300}" '^bench: (done|ERROR|FAILED|no Hyper-V)' --progress "$PROG"
log_lines "$GUEST_LOG" '^bench: |^microhv: (error|.*stopped)'

missing=0
for re in '^bench: cpuid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-invalid median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: post-deliver-eom median [0-9]+ ticks \(min [0-9]+\)$' \
  '^bench: ratio post-deliver-eom / cpuid = [0-9]+\.[0-9]{2} \(target <= 2\.5\)$'; do
  log_has "$GUEST_LOG" "$re" || { warn "missing a line matching /$re/"; missing=1; }
done
[ $missing -eq 0 ] || die "FAILED; see $GUEST_LOG and $dir/out/bochs.log"

# Regression check: every figure of the baseline file, median against
# baseline + 10%.
baseline=${BENCH_BASELINE:-tests/bench/guest_baseline.txt}
[ -f "$baseline" ] || die "no baseline file $baseline"
regressed=0
while read -r name base _; do
  case "$name" in '' | '#'*) continue ;; esac
  line=$(log_lines "$GUEST_LOG" "^bench: $name median [0-9]+ ticks")
  [ -n "$line" ] || { warn "no figure for '$name' (baseline $base)"; regressed=1; continue; }
  now=$(sed -E 's/^bench: [^ ]+ median ([0-9]+) ticks.*/\1/' <<<"$line" | head -n1)
  if [ $((now * 100)) -gt $((base * 110)) ]; then
    warn "REGRESSION: $name median $now ticks, baseline $base (+$(((now - base) * 100 / base))%; limit +10%)"
    regressed=1
  else
    echo "$PROG: $name median $now ticks, baseline $base: ok"
  fi
done <"$baseline"
[ $regressed -eq 0 ] || die "FAILED: a figure regressed more than 10% against $baseline"
