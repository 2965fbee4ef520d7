#!/usr/bin/env bash
# Runs a long, quiet command so that `make test` still shows it is alive.
#
#   scripts/heartbeat.sh LABEL COMMAND...
#       COMMAND's output is streamed as it comes; after 10 s without any,
#       "LABEL: still running (N s)" (again every 10 s).
#   scripts/heartbeat.sh --log FILE LABEL COMMAND...
#       COMMAND's output goes to FILE; every 10 s "LABEL: N s: <last line>".
#
# Exit status: COMMAND's.
set -euo pipefail
log=""
if [ "${1:-}" = --log ]; then
  log=$2
  shift 2
fi
PROG=$1
shift
. "$(dirname "$0")/lib/common.sh"
[ $# -gt 0 ] || die "usage: scripts/heartbeat.sh [--log FILE] LABEL COMMAND..."

[ -n "$log" ] || { progress_run "$PROG" "$@"; exit; }
"$@" >"$log" 2>&1 &
pid=$!
progress_watch "$PROG" "$log" $pid 10 2>&1
wait $pid
