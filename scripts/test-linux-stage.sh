#!/usr/bin/env bash
# make test-linux: the three Linux boots under Bochs at once (each Bochs is one
# host thread; together they take about as long as the slowest alone):
#   - the console session in the foreground (scripts/test-linux.sh --console:
#     `make run GUEST=linux` driven through a pseudo-terminal, 2 CPUs);
#   - the baseline, the same kernel without microhv (--baseline bochs);
#   - the crash boot, which ends in a kernel panic that microhv reports (--crash).
# Then the boot-time ratio of the console session to the baseline.
# The two background boots write to build/test-linux-{baseline,crash}.log;
# their last lines are shown when they end.
set -uo pipefail
cd "$(dirname "$0")/.."
PROG=test-linux
. scripts/lib/common.sh

# Their own timeouts are raised: three boots share two cores.
TEST_LINUX_TIMEOUT=900 scripts/test-linux.sh --baseline bochs >build/test-linux-baseline.log 2>&1 &
base_pid=$!
TEST_LINUX_TIMEOUT=900 scripts/test-linux.sh --crash >build/test-linux-crash.log 2>&1 &
crash_pid=$!
trap 'kill -HUP $base_pid $crash_pid 2>/dev/null' EXIT

scripts/test-linux.sh --console
console=$?

background() {  # background NAME PID LOG: waits for it, shows how it ended
  local status=0
  say "waiting for the $1 boot: $(tail -n 1 "$3")"
  wait "$2" || status=$?
  echo "--- $1 (build/$(basename "$3"))"
  grep -aE '^test-linux: (ok|FAIL|PASS|FAILED|note|guest uptime|wall time)' "$3" | tail -40
  return $status
}
base=0
crash=0
background "baseline (no microhv)" $base_pid build/test-linux-baseline.log || base=$?
background "crash" $crash_pid build/test-linux-crash.log || crash=$?
trap - EXIT

status=0
[ $console -eq 0 ] || { say "FAIL the console session above"; status=1; }
[ $base -eq 0 ] || { say "FAIL the baseline boot (build/test-linux-baseline.log)"; status=1; }
[ $crash -eq 0 ] || { say "FAIL the crash boot (build/test-linux-crash.log)"; status=1; }
if [ $console -eq 0 ] && [ $base -eq 0 ]; then
  scripts/linux-boot-ratio.sh build/test-linux/console/com1.txt || status=1
fi
exit $status
