#!/usr/bin/env bash
# Runs each libFuzzer target (build/fuzz_NAME, ASan+UBSan) for SECONDS on its
# own corpus (build/fuzz-corpus/NAME), prints a progress line every 10 s and
# then one row per target: executions, executions per second, coverage
# (libFuzzer's cov: covered edges, ft: features) and corpus size.
# Usage: scripts/fuzz.sh SECONDS NAME...   Exit status 1 if a target failed
# (its crashing input is saved as build/fuzz-NAME-crash-*, its log is
# build/fuzz-NAME.log). Inputs that once failed, tests/fuzz/regressions/NAME/,
# are read as seeds first, so every run replays them.
set -u
secs=$1
shift
cd "$(dirname "$0")/.."
rows=()
failed=0
for t in "$@"; do
  corpus=build/fuzz-corpus/$t
  log=build/fuzz-$t.log
  mkdir -p "$corpus"
  seeds=()
  [ -d "tests/fuzz/regressions/$t" ] && seeds=("tests/fuzz/regressions/$t")
  echo "fuzz: $t for ${secs} s (log $log)"
  "build/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="build/fuzz-$t-" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      sleep 1
      kill -0 "$pid" 2>/dev/null || break
    done
    if kill -0 "$pid" 2>/dev/null; then
      last=$(grep -aE '^#[0-9]+' "$log" | tail -1 | sed -E 's/ +/ /g; s/ rss:.*//')
      echo "fuzz: $t running: ${last:-starting}"
    fi
  done
  wait "$pid"
  rc=$?
  stat() { grep -a "^stat::$1:" "$log" | tail -1 | awk '{print $2}'; }
  final=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$final")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$final")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$final")
  verdict=ok
  if [ "$rc" -ne 0 ]; then
    verdict=FAILED
    failed=1
    grep -aE 'fuzz oracle:|ERROR: |SUMMARY: ' "$log" | head -5 | sed 's/^/  | /'
  fi
  rows+=("$(printf '%-11s %-6s %12s %9s %7s %7s %6s' "$t" "$verdict" "$(stat number_of_executed_units)" \
    "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done
printf '%-11s %-6s %12s %9s %7s %7s %6s\n' target result executions exec/s cov ft corpus
printf '%s\n' "${rows[@]}"
exit "$failed"
