#!/usr/bin/env bash
# make test: runs every test stage in order, each as a make target, streaming
# its output; then prints a summary table and "N passed, N failed".
#
# Stages: test-unit, test-fuzz-smoke, test-qemu, and test-vtd, test-bochs,
# test-load and test-linux when their scripts exist. A stage whose make
# target does not exist (yet) is skipped and counted neither as passed nor as
# failed. Every stage prints a line at least every ~12 s (progress_run around each stage;
# inside, scripts/heartbeat.sh, bochs.sh --progress and the console test's
# progress every 10 s).
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"

stages=(test-unit test-fuzz-smoke test-qemu)
[ -f scripts/test-vtd.sh ] && stages+=(test-vtd)
[ -f scripts/test-bochs.sh ] && stages+=(test-bochs)
[ -f scripts/test-load.sh ] && stages+=(test-load)
[ -f scripts/test-linux.sh ] && stages+=(test-linux)

# A target exists when `make -n` knows it and has something to do for it (a
# .PHONY name without a rule only gets "Nothing to be done").
make_target_exists() {
  local dry
  dry=$(LC_ALL=C make -n "$1" 2>&1) || return 1
  ! grep -q "Nothing to be done for '$1'" <<<"$dry"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# Each stage's output is also kept, so that the end of the run can repeat
# what failed (a CI log is often read from its end).
logs=build/test-all
mkdir -p "$logs"
results=()
times=()
passed=0
failed=0
for stage in "${stages[@]}"; do
  if ! make_target_exists "$stage"; then
    echo "=== $stage: skipped (no make target)"
    results+=(SKIP)
    times+=(-)
    continue
  fi
  echo "=== $stage (at $(date +%T))"
  start=$(now_ms)
  # -j2: the build machine has 2 cores. progress_run: a line after 12 s of
  # silence (a long compile, a quiet test binary).
  progress_run "$stage" make -j2 --no-print-directory "$stage" 2>&1 | tee "$logs/$stage.log"
  if [ "${PIPESTATUS[0]}" -eq 0 ]; then
    results+=(PASS)
    passed=$((passed + 1))
  else
    results+=(FAIL)
    failed=$((failed + 1))
  fi
  times+=("$(seconds $(($(now_ms) - start)))s")
  echo "=== $stage: ${results[-1]} (${times[-1]})"
done

echo
printf '%-18s %-6s %s\n' stage result time
for i in "${!stages[@]}"; do
  printf '%-18s %-6s %s\n' "${stages[$i]}" "${results[$i]}" "${times[$i]}"
done
echo "$passed passed, $failed failed"
for i in "${!stages[@]}"; do
  [ "${results[$i]}" = FAIL ] || continue
  echo
  echo "--- what failed in ${stages[$i]} (all of it: $logs/${stages[$i]}.log)"
  grep -aE '(^|[[:space:]:])FAIL(ED)?([[:space:]:]|$)|[Ee]rror[: ]|[1-9][0-9]* failed|SUMMARY: |fuzz oracle: ' \
    "$logs/${stages[$i]}.log" |
    grep -avE ': ok +' | tail -n 25
done
[ $failed -eq 0 ]
