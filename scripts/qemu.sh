#!/usr/bin/env bash
# Boots an ESP image under QEMU (q35 + OVMF) and supervises the run.
#
#   scripts/qemu.sh [options] ESP.img [-- extra QEMU arguments]
#
#   --accel auto|kvm|tcg  auto (default) picks KVM with -cpu host,+vmx when
#                         /dev/kvm is usable, the host CPU has vmx and
#                         kvm_intel nested=Y; otherwise TCG with -cpu max
#                         (TCG has no VMX: microhv reports VT-x unavailable).
#   --timeout SECONDS     stop QEMU after this long (default 120)
#   --serial FILE|stdio   where COM1 goes (default stdio)
#   --live                with --serial FILE: also show it on the terminal
#   --debugcon FILE       capture OVMF's debug port (0x402)
#   --qemu-log FILE       QEMU's own log with -d cpu_reset ("Triple fault")
#   --until REGEX         with --serial FILE: stop QEMU (status 0) once a line
#                         matches REGEX. Repeat to require several patterns on
#                         successive lines, in order.
#   --fail-on REGEX       with --serial FILE: stop QEMU (status 3) as soon as a
#                         line matches REGEX, e.g. OVMF's exception dump.
#
# Exit status: 0 when the --until patterns were seen, 3 on --fail-on, 124 on
# timeout, otherwise QEMU's own status (with -no-reboot, a guest reset or
# triple fault ends QEMU too). The OVMF variable store is a fresh copy per
# run. With --serial FILE, QEMU's own messages go to FILE.stderr (stopping
# QEMU makes it say "terminating on signal 15"); they are shown when QEMU
# fails by itself.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

accel=auto
timeout=120
serial=stdio
live=0
debugcon=""
qemu_log=""
until_patterns=()
fail_pattern=""

while [ $# -gt 0 ]; do
  case $1 in
    --accel) accel=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --serial) serial=$2; shift 2 ;;
    --live) live=1; shift ;;
    --debugcon) debugcon=$2; shift 2 ;;
    --qemu-log) qemu_log=$2; shift 2 ;;
    --until) until_patterns+=("$2"); shift 2 ;;
    --fail-on) fail_pattern=$2; shift 2 ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see the comment at the top of this script)" ;;
    *) [ -z "${esp:-}" ] || die "more than one image given"; esp=$1; shift ;;
  esac
done
extra_args=("$@")
[ -n "${esp:-}" ] || die "usage: scripts/qemu.sh [options] ESP.img [-- qemu args]"
[ -f "$esp" ] || die "no such image: $esp"
if [ "$serial" = stdio ] &&
  { [ $live = 1 ] || [ ${#until_patterns[@]} -gt 0 ] || [ -n "$fail_pattern" ]; }; then
  die "--live, --until and --fail-on need --serial FILE"
fi
case $accel in
  auto) if kvm_nested_vmx_usable; then accel=kvm; else accel=tcg; fi ;;
  kvm | tcg) ;;
  *) die "--accel must be auto, kvm or tcg" ;;
esac

mkdir -p build
vars=$(mktemp build/ovmf-vars.XXXXXX)
args=()
stderr=/dev/stderr
if [ "$serial" = stdio ]; then
  args+=(-serial stdio)
else
  mkdir -p "$(dirname "$serial")"
  : >"$serial"
  args+=(-serial "file:$serial")
  stderr=$serial.stderr
fi
[ -z "$debugcon" ] || args+=(-debugcon "file:$debugcon" -global isa-debugcon.iobase=0x402)
[ -z "$qemu_log" ] || args+=(-d cpu_reset -D "$qemu_log")
qemu_command "$accel" "$esp" "$vars" "${args[@]}" "${extra_args[@]}"
say "booting $esp with -accel $accel, timeout ${timeout}s" >&2

# True once the --until patterns have matched successive lines, in order.
until_patterns_seen() {
  local text pattern found
  text=$(plain_text "$serial")
  for pattern in "${until_patterns[@]}"; do
    found=$(grep -nE -m1 -e "$pattern" <<<"$text") || return 1
    text=$(tail -n +$((${found%%:*} + 1)) <<<"$text")
  done
}

cleanup() {
  proc_cleanup
  rm -f "$vars"
}
proc_traps cleanup
# The outer timeout(1) only matters if this script itself is killed: QEMU
# must never outlive its time limit. It also gives QEMU a process group.
timeout -k 5 $((timeout + 30)) "${QEMU_COMMAND[@]}" 2>"$stderr" &
qemu_pid=$!
proc_track $qemu_pid
if [ $live = 1 ]; then
  tail -n +1 -s 0.2 -f --pid=$qemu_pid "$serial" | plain_text &
fi

status=""
deadline=$((SECONDS + timeout))
while kill -0 $qemu_pid 2>/dev/null; do
  if [ -n "$fail_pattern" ] && log_has "$serial" "$fail_pattern"; then
    say "failure output seen, stopping QEMU" >&2
    status=3
    break
  fi
  if [ ${#until_patterns[@]} -gt 0 ] && until_patterns_seen; then
    say "expected output seen, stopping QEMU" >&2
    status=0
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    say "timeout: QEMU still running after ${timeout}s, stopping it" >&2
    status=124
    break
  fi
  sleep 0.2
done

if [ -z "$status" ]; then
  # QEMU ended by itself: guest power-off, reset (-no-reboot) or an error.
  status=0
  wait $qemu_pid || status=$?
  [ $status -eq 0 ] || [ "$stderr" = /dev/stderr ] || sed 's/^/qemu | /' "$stderr" >&2
  # A pattern may have been written just before QEMU ended.
  if [ ${#until_patterns[@]} -gt 0 ] && ! until_patterns_seen; then
    say "QEMU exited (status $status) before the expected output appeared" >&2
    [ $status -ne 0 ] || status=1
  fi
fi
exit $status
