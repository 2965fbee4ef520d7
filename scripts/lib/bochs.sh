# shellcheck shell=bash
# Bochs 2.7 + OVMF, unattended; loaded by common.sh.

# bochs_config OUTDIR IMAGE [LINE...]: writes OUTDIR/bochsrc booting the disk
# IMAGE (an ESP) with OVMF, and OUTDIR/cont.rc (`c`: start without stopping
# at the debugger prompt). LINEs are appended; a later line overrides an
# earlier one (`cpu: count=2`, another `com1:`). Settings from the caller:
#   BOCHS_CPU       cpu model (default tigerlake: VMX with EPT)
#   BOCHS_MEGS      guest RAM in MiB (default 256)
#   BOCHS_BAD_MSRS  ignore_bad_msrs (default 1: OVMF's PEI reads MSR 0x17,
#                   IA32_PLATFORM_ID, which Bochs 2.7 lacks; with 0 it stops
#                   there with a #GP even with one CPU on tigerlake)
# COM1 goes to OUTDIR/com1.txt, Bochs' own log (it names failed VM-entry
# checks) to OUTDIR/bochs.log. `display_library: term` with TERM=dumb (see
# bochs_command) keeps Bochs from asking anything on a terminal.
bochs_config() {
  local out=$1 image=$2 line
  shift 2
  local ovmf=/usr/share/ovmf/OVMF.fd
  command -v bochs >/dev/null || die "bochs is not installed (scripts/install-deps.sh)"
  [ -f "$ovmf" ] || die "$ovmf missing (package ovmf)"
  mkdir -p "$out"
  {
    echo "megs: ${BOCHS_MEGS:-256}"
    echo "cpu: model=${BOCHS_CPU:-tigerlake}, count=1, ips=50000000, reset_on_triple_fault=0, ignore_bad_msrs=${BOCHS_BAD_MSRS:-1}"
    echo "romimage: file=$ovmf, address=0xffe00000"
    echo "vgaromimage: file=/usr/share/vgabios/vgabios.bin"
    echo "pci: enabled=1, chipset=i440fx"
    echo "display_library: term"
    echo "ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14"
    echo "ata0-master: type=disk, path=$(realpath "$image"), mode=flat"
    echo "boot: disk"
    echo "clock: sync=none, time0=local"
    echo "speaker: enabled=0"
    echo "sound: driver=dummy"
    echo "port_e9_hack: enabled=1"
    echo "com1: enabled=1, mode=file, dev=$(realpath "$out")/com1.txt"
    echo "log: $(realpath "$out")/bochs.log"
    echo "panic: action=fatal"
    echo "error: action=report"
    echo "info: action=report"
    echo "debug: action=ignore"
    for line in "$@"; do echo "$line"; done
  } >"$out/bochsrc"
  echo c >"$out/cont.rc"
  # A Bochs that was SIGKILLed leaves the disk locked.
  rm -f "$image.lock" "$out/com1.txt" "$out/bochs.log" "$out/bochs.out"
}

# bochs_command OUTDIR TIMEOUT: sets BOCHS_COMMAND to the command line that
# runs OUTDIR/bochsrc, in OUTDIR, for at most TIMEOUT seconds. timeout(1) sends SIGHUP
# (Bochs' term display quits on it), SIGKILL 10 s later, and makes a process
# group of its own (scripts/lib/proc.sh stops the group). Bochs' exit status
# is meaningless (always 1): callers judge the serial log.
bochs_command() {
  local out
  out=$(realpath "$1")
  # shellcheck disable=SC2034  # the caller's
  BOCHS_COMMAND=(timeout -s HUP -k 10 "$2" env -C "$out" TERM=dumb bochs -q -f "$out/bochsrc" -rc "$out/cont.rc")
}
