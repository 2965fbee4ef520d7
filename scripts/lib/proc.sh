# shellcheck shell=bash
# Process groups for emulator runs; loaded by common.sh.
#
# Emulators run under timeout(1), which moves itself and the emulator into a
# process group of their own (the group id is timeout's pid). A terminal's
# Ctrl-C therefore does not reach them, and Bochs' term display would turn a
# SIGINT into a key press anyway. Whoever starts one calls proc_track PID;
# proc_traps makes the script stop every tracked group when it exits, however
# it exits (end of script, error, Ctrl-C, SIGTERM, SIGHUP).
PROC_GROUPS=()

proc_track() { PROC_GROUPS+=("$1"); }

# proc_stop PID [GRACE]: SIGHUP to PID's group (Bochs' term display quits on
# it; timeout(1) passes it on to its command) and to PID itself (timeout(1)
# may not have made its group yet right after the start; a tracked script
# stops its own emulator on SIGHUP), then SIGKILL after GRACE seconds
# (default 10). Returns once nothing of it is left.
proc_stop() {
  local pid=$1 grace=${2:-10} i
  kill -HUP -- "-$pid" 2>/dev/null || true
  kill -HUP "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
}

proc_cleanup() {
  local pid
  for pid in "${PROC_GROUPS[@]}"; do proc_stop "$pid"; done
  PROC_GROUPS=()
}

# proc_traps [CLEANUP_FUNCTION]: on exit run the function (default
# proc_cleanup); INT, TERM and HUP end the script with 128 + the signal.
proc_traps() {
  # shellcheck disable=SC2064  # the function name is fixed now
  trap "${1:-proc_cleanup}" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}
