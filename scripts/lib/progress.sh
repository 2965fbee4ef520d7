# shellcheck shell=bash
# Progress lines for long runs; loaded by common.sh.

# last_line FILE: the last non-empty line of FILE as plain text, at most 110
# characters ("(no serial output yet)" before FILE has any).
last_line() {
  local line=""
  [ -f "$1" ] && line=$(tail -c 8192 "$1" | plain_text | tr -d '\000' | grep -a -v '^[[:space:]]*$' | tail -n 1 | cut -c1-110 || true)
  echo "${line:-(no serial output yet)}"
}

# progress_watch LABEL FILE PID [EVERY [SILENT]]: while PID runs, every EVERY
# seconds (default 10) prints "LABEL: N s: <last line of FILE>" on stderr, so
# that no stage of `make test` is silent for long. With SILENT=1 only when
# FILE has not grown in that time (its lines are on screen already). Run it
# in the background.
progress_watch() {
  local label=$1 file=$2 pid=$3 every=${4:-10} silent=${5:-0} start=$SECONDS next size=-1 now_size
  next=$((SECONDS + every))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    now_size=$(stat -c %s "$file" 2>/dev/null || echo 0)
    if [ "$silent" = 1 ] && [ "$now_size" != "$size" ]; then
      size=$now_size
      next=$((SECONDS + every))
    elif [ $SECONDS -ge $next ]; then
      printf '%s: %3d s: %s\n' "$label" $((SECONDS - start)) "$(last_line "$file")" >&2
      next=$((SECONDS + every))
    fi
  done
}

# progress_run LABEL COMMAND...: runs COMMAND with its output streamed line
# by line; after 12 s without output prints "LABEL: still running (N s)", and
# again every 12 s (12: the progress lines inside, every 10 s, keep it quiet). COMMAND runs in the foreground (a background job of a
# script would ignore Ctrl-C); the watcher is the background job. Returns
# COMMAND's status.
progress_run() {
  local label=$1 stamp watcher status start=$SECONDS
  shift
  stamp=$(mktemp)
  (
    last=$SECONDS
    while kill -0 $$ 2>/dev/null; do
      sleep 1
      quiet=$(($(date +%s) - $(stat -c %Y "$stamp" 2>/dev/null || date +%s)))
      if [ "$quiet" -ge 12 ] && [ $((SECONDS - last)) -ge 12 ]; then
        echo "$label: still running ($((SECONDS - start)) s)"
        last=$SECONDS
      fi
    done
  ) &
  watcher=$!
  # `: >` updates the stamp without a process per line.
  "$@" 2>&1 | while IFS= read -r line || [ -n "$line" ]; do
    printf '%s\n' "$line"
    : >"$stamp"
  done
  status=${PIPESTATUS[0]}
  kill $watcher 2>/dev/null || true
  wait $watcher 2>/dev/null || true
  rm -f "$stamp"
  return "$status"
}
