#!/usr/bin/env bash
# Boots an EFI system partition image in Bochs 2.7 + OVMF, unattended.
#
#   scripts/bochs.sh [options] ESP.img OUTDIR
#     --timeout SECONDS   wall-clock limit (default 300); Bochs gets SIGHUP, then SIGKILL
#     --until REGEX       stop Bochs once com1.txt has a line matching REGEX
#     --linger SECONDS    with --until: keep running this long after the match (default 1)
#     --cpu MODEL         Bochs cpu model (default tigerlake)
#     --megs N            guest RAM in MiB (default 256)
#     --strict-msrs       ignore_bad_msrs=0 (see scripts/lib/bochs.sh)
#     --opt 'LINE'        extra bochsrc line (repeatable; later lines override)
#     --progress LABEL    every 10 s, print "LABEL: N s: <last COM1 line>" on stderr
#     --heartbeat LABEL   the same, but only after 10 s without COM1 output
#
# OUTDIR receives bochsrc, cont.rc, com1.txt (COM1 = the serial log),
# bochs.log (Bochs' own log: it names failed VM-entry checks) and bochs.out
# (Bochs' stdout, including port 0xE9 output). Callers judge com1.txt.
# Exit status: 0 when Bochs ended or --until matched, 124 on timeout. Bochs
# runs in a process group of its own that is stopped however this script
# ends (Ctrl-C included).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

timeout_s=300
until_re=""
linger=1
progress=""
silent=0
extra=()
# shellcheck disable=SC2034  # BOCHS_CPU, BOCHS_MEGS, BOCHS_BAD_MSRS: read by bochs_config
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --until) until_re=$2; shift 2 ;;
    --linger) linger=$2; shift 2 ;;
    --cpu) BOCHS_CPU=$2; shift 2 ;;
    --megs) BOCHS_MEGS=$2; shift 2 ;;
    --strict-msrs) BOCHS_BAD_MSRS=0; shift ;;
    --opt) extra+=("$2"); shift 2 ;;
    --progress) progress=$2; shift 2 ;;
    --heartbeat) progress=$2; silent=1; shift 2 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
image=$1
out=$2

bochs_config "$out" "$image" "${extra[@]}"
bochs_command "$out" "$timeout_s"
proc_traps
"${BOCHS_COMMAND[@]}" </dev/null >"$out/bochs.out" 2>&1 &
pid=$!
proc_track $pid
[ -z "$progress" ] || progress_watch "$progress" "$out/com1.txt" $pid 10 $silent &

if [ -n "$until_re" ]; then
  while kill -0 $pid 2>/dev/null; do
    if log_has "$out/com1.txt" "$until_re"; then
      # Let the last lines drain into the file (and, with --linger, the
      # guest run on, so a late failure still shows up in the log).
      for _ in $(seq "$linger"); do kill -0 $pid 2>/dev/null && sleep 1; done
      proc_stop $pid
      break
    fi
    sleep 1
  done
fi
status=0
wait $pid || status=$?
rm -f "$image.lock"
# timeout(1) returns 124 when it had to stop Bochs; --until stops are success.
if [ $status -eq 124 ] && ! { [ -n "$until_re" ] && log_has "$out/com1.txt" "$until_re"; }; then
  exit 124
fi
exit 0
