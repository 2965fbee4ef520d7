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
# The watcher in the background, COMMAND in the foreground (Ctrl-C reaches it).
progress_watch "$PROG" "$log" $$ 10 2>&1 &
watcher=$!
status=0
"$@" >"$log" 2>&1 || status=$?
kill $watcher 2>/dev/null || true
exit $status
