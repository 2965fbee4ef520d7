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
# timeout,
# otherwise QEMU's own status (with -no-reboot, a guest reset or triple fault
# ends QEMU too). The OVMF variable store is a fresh copy per run.
set -euo pipefail
cd "$(dirname "$0")/.."

OVMF_CODE=/usr/share/OVMF/OVMF_CODE.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS.fd

accel=auto
timeout=120
serial=stdio
live=0
debugcon=""
qemu_log=""
until_patterns=()
fail_pattern=""

die() {
  echo "qemu.sh: $*" >&2
  exit 2
}

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

kvm_nested_vmx_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  grep -qw vmx /proc/cpuinfo || return 1
  local nested=/sys/module/kvm_intel/parameters/nested
  [ -r $nested ] && grep -qE '^(Y|1)$' $nested
}

case $accel in
  auto) if kvm_nested_vmx_usable; then accel=kvm; else accel=tcg; fi ;;
  kvm | tcg) ;;
  *) die "--accel must be auto, kvm or tcg" ;;
esac
if [ "$accel" = kvm ]; then
  cpu_args=(-accel kvm -cpu host,+vmx)
else
  cpu_args=(-accel tcg -cpu max)
fi
echo "qemu.sh: booting $esp with ${cpu_args[*]}, timeout ${timeout}s" >&2

mkdir -p build
vars=$(mktemp build/ovmf-vars.XXXXXX)
cp $OVMF_VARS "$vars"

args=(
  -machine q35 "${cpu_args[@]}" -m 256 -smp 1
  -drive if=pflash,format=raw,unit=0,readonly=on,file="$OVMF_CODE"
  -drive if=pflash,format=raw,unit=1,file="$vars"
  -drive format=raw,file="$esp"
  -display none -net none -no-reboot
)
if [ "$serial" = stdio ]; then
  args+=(-serial stdio)
else
  mkdir -p "$(dirname "$serial")"
  : >"$serial"
  args+=(-serial "file:$serial")
fi
[ -z "$debugcon" ] || args+=(-debugcon "file:$debugcon" -global isa-debugcon.iobase=0x402)
[ -z "$qemu_log" ] || args+=(-d cpu_reset -D "$qemu_log")
args+=("${extra_args[@]}")

# Serial text without OVMF's terminal escape sequences and carriage returns.
plain_text() { sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$@"; }

# True once the --until patterns have matched successive lines, in order.
until_patterns_seen() {
  local text pattern found
  text=$(plain_text "$serial")
  for pattern in "${until_patterns[@]}"; do
    found=$(grep -nE -m1 -e "$pattern" <<<"$text") || return 1
    text=$(tail -n +$((${found%%:*} + 1)) <<<"$text")
  done
}

qemu_pid=""
viewer_pid=""
cleanup() {
  [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
  [ -z "$qemu_pid" ] || wait "$qemu_pid" 2>/dev/null || true
  [ -z "$viewer_pid" ] || wait "$viewer_pid" 2>/dev/null || true
  rm -f "$vars"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# The outer `timeout` only matters if this script itself is killed: QEMU
# must never outlive its time limit.
timeout -k 5 $((timeout + 30)) qemu-system-x86_64 "${args[@]}" &
qemu_pid=$!
if [ $live = 1 ]; then
  tail -n +1 -s 0.2 -f --pid=$qemu_pid "$serial" | plain_text -u &
  viewer_pid=$!
fi

status=""
deadline=$((SECONDS + timeout))
while kill -0 $qemu_pid 2>/dev/null; do
  if [ -n "$fail_pattern" ] && plain_text "$serial" | grep -qE -e "$fail_pattern"; then
    echo "qemu.sh: failure output seen, stopping QEMU" >&2
    status=3
    break
  fi
  if [ ${#until_patterns[@]} -gt 0 ] && until_patterns_seen; then
    echo "qemu.sh: expected output seen, stopping QEMU" >&2
    status=0
    break
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "qemu.sh: timeout: QEMU still running after ${timeout}s, stopping it" >&2
    status=124
    break
  fi
  sleep 0.2
done

if [ -z "$status" ]; then
  # QEMU ended by itself: guest power-off, reset (-no-reboot) or an error.
  status=0
  wait $qemu_pid || status=$?
  qemu_pid=""
  # A pattern may have been written just before QEMU ended.
  if [ ${#until_patterns[@]} -gt 0 ] && ! until_patterns_seen; then
    echo "qemu.sh: QEMU exited (status $status) before the expected output appeared" >&2
    [ $status -ne 0 ] || status=1
  fi
fi
exit $status
