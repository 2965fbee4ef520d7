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

# progress_run LABEL COMMAND...: runs COMMAND with its output streamed as it
# comes; after 10 s without output prints "LABEL: still running (N s)", and
# again every 10 s. Returns COMMAND's status.
progress_run() {
  local label=$1 log pid status=0 start=$SECONDS size=0 quiet_since=$SECONDS
  shift
  log=$(mktemp)
  "$@" >"$log" 2>&1 &
  pid=$!
  tail -n +1 -s 0.5 -f --pid="$pid" "$log" &
  local tail_pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if [ "$(stat -c %s "$log")" != "$size" ]; then
      size=$(stat -c %s "$log")
      quiet_since=$SECONDS
    elif [ $((SECONDS - quiet_since)) -ge 10 ]; then
      echo "$label: still running ($((SECONDS - start)) s)"
      quiet_since=$SECONDS
    fi
  done
  wait "$pid" || status=$?
  wait "$tail_pid" 2>/dev/null || true
  rm -f "$log"
  return $status
}
