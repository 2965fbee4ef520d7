#!/usr/bin/env bash
# Boots an EFI system partition image in Bochs 2.7 + OVMF, unattended
# (display_library term, TERM=dumb and a `c` rc file keep Bochs from stopping at a prompt).
#
#   scripts/bochs.sh [options] ESP.img OUTDIR
#     --timeout SECONDS   wall-clock limit (default 300); Bochs gets SIGHUP, then SIGKILL
#     --until REGEX       stop Bochs once com1.txt has a line matching REGEX
#     --linger SECONDS    with --until: keep running this long after the match (default 1)
#     --cpu MODEL         Bochs cpu model (default tigerlake)
#     --megs N            guest RAM in MiB (default 256)
#     --strict-msrs       ignore_bad_msrs=0 (default 1: OVMF's PEI reads MSR 0x17,
#                         IA32_PLATFORM_ID, which Bochs 2.7 lacks; with 0 it stops
#                         there with a #GP even with one CPU on tigerlake)
#     --opt 'LINE'        extra bochsrc line (repeatable; later lines override)
#
# OUTDIR receives bochsrc, cont.rc, com1.txt (COM1 = the serial log),
# bochs.log (Bochs' own log: it names failed VM-entry checks) and bochs.out
# (Bochs' stdout, including port 0xE9 output). Bochs' exit status is
# meaningless (always 1): callers judge com1.txt. Exit status here: 0 when
# Bochs ended or --until matched, 124 on timeout.
set -euo pipefail

timeout_s=300
until_re=""
linger=1
cpu=tigerlake
megs=256
bad_msrs=1
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --until) until_re=$2; shift 2 ;;
    --linger) linger=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --megs) megs=$2; shift 2 ;;
    --strict-msrs) bad_msrs=0; shift ;;
    --opt) extra+=("$2"); shift 2 ;;
    -*) echo "bochs.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
image=$(realpath "$1")
out=$2
mkdir -p "$out"
out=$(realpath "$out")

command -v bochs >/dev/null || { echo "bochs.sh: bochs is not installed (scripts/install-deps.sh)" >&2; exit 2; }
ovmf=/usr/share/ovmf/OVMF.fd
[ -f "$ovmf" ] || { echo "bochs.sh: $ovmf missing (package ovmf)" >&2; exit 2; }

# A SIGKILLed Bochs leaves the disk locked.
rm -f "$image.lock"
rm -f "$out/com1.txt" "$out/bochs.log" "$out/bochs.out"

{
  echo "megs: $megs"
  echo "cpu: model=$cpu, count=1, ips=50000000, reset_on_triple_fault=0, ignore_bad_msrs=$bad_msrs"
  echo "romimage: file=$ovmf, address=0xffe00000"
  echo "vgaromimage: file=/usr/share/vgabios/vgabios.bin"
  echo "pci: enabled=1, chipset=i440fx"
  echo "display_library: term"
  echo "ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14"
  echo "ata0-master: type=disk, path=$image, mode=flat"
  echo "boot: disk"
  echo "clock: sync=none, time0=local"
  echo "speaker: enabled=0"
  echo "sound: driver=dummy"
  echo "port_e9_hack: enabled=1"
  echo "com1: enabled=1, mode=file, dev=$out/com1.txt"
  echo "log: $out/bochs.log"
  echo "panic: action=fatal"
  echo "error: action=report"
  echo "info: action=report"
  echo "debug: action=ignore"
  for line in "${extra[@]}"; do echo "$line"; done
} >"$out/bochsrc"
echo c >"$out/cont.rc"

cd "$out"
TERM=dumb timeout -s HUP -k 10 "$timeout_s" bochs -q -f "$out/bochsrc" -rc "$out/cont.rc" \
  </dev/null >"$out/bochs.out" 2>&1 &
pid=$!

status=0
if [ -n "$until_re" ]; then
  while kill -0 "$pid" 2>/dev/null; do
    if [ -f "$out/com1.txt" ] && grep -Eq "$until_re" "$out/com1.txt"; then
      # Let the last lines drain into the file (and, with --linger, the
      # guest run on, so a late failure still shows up in the log).
      for _ in $(seq "$linger"); do kill -0 "$pid" 2>/dev/null && sleep 1; done
      kill -HUP "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
  done
fi
wait "$pid" || status=$?
rm -f "$image.lock"
# timeout(1) returns 124 when it had to stop Bochs; --until stops are success.
if [ "$status" -eq 124 ] && ! { [ -n "$until_re" ] && grep -Eq "$until_re" "$out/com1.txt" 2>/dev/null; }; then
  exit 124
fi
exit 0
