#!/usr/bin/env bash
# Prints Linux's boot time (guest uptime when /init starts) above microhv and
# without it (the Bochs baseline), and their ratio, from the logs that
# scripts/test-linux.sh (--console) and scripts/test-linux.sh --baseline bochs
# leave.
#
#   scripts/linux-boot-ratio.sh [ABOVE_MICROHV_LOG [BASELINE_LOG]]
set -euo pipefail
cd "$(dirname "$0")/.."
with_log=${1:-build/test-linux/microhv/com1.txt}
without_log=${2:-build/test-linux/baseline-bochs/com1.txt}
uptime_at_init() {  # first "linux-guest: uptime X" line of a COM1 log
  tr -d '\r' <"$1" | grep -aoE '^linux-guest: uptime [0-9.]+$' | head -1 | awk '{print $3}'
}
with=$(uptime_at_init "$with_log" || true)
without=$(uptime_at_init "$without_log" || true)
if [ -z "$with" ] || [ -z "$without" ]; then
  echo "linux-boot-ratio: missing an uptime (above microhv: '${with:-?}', baseline: '${without:-?}')" >&2
  exit 1
fi
awk -v a="$with" -v b="$without" 'BEGIN {
  printf "linux boot to /init (guest uptime): above microhv %.2f s (2 CPUs), without microhv %.2f s (1 CPU), ratio %.2f\n", a, b, a / b }'
