#!/usr/bin/env bash
# make test-linux: an unmodified Debian Linux kernel boots above microhv and
# talks VMBus to microhv's built-in host. Bochs 2.7 + OVMF, 2 CPUs.
#
#   scripts/test-linux.sh [--baseline qemu|bochs | --console | --crash] [--timeout S] [--cpus N] [--shell]
#
# Default (microhv): an ESP with build/microhv.efi as EFI/BOOT/BOOTX64.EFI,
# \EFI\microhv\microhv.cfg naming \EFI\linux\vmlinuz (+ load options), and
# the kernel + initramfs from scripts/linux-guest.sh. microhv virtualizes the
# machine and chainloads the kernel through its EFI stub; /init
# (tests/linux/init) prints `linux-guest: PASS|FAIL ...` lines and powers off.
# Passes when the guest reports every check passed (at least MIN_CHECKS of
# them) and microhv's log has a line for each of MICROHV_REQUIRED below.
#
# --baseline qemu|bochs: the same kernel WITHOUT microhv, started by OVMF's
# EFI shell from startup.nsh: QEMU TCG (q35, 1 CPU) or Bochs (cpu model
# broadwell_ult, 1 CPU). Linux finds no Hyper-V there: passes when exactly the
# BASELINE_HYPERV_CHECKS fail and all the others pass.
#
# --console: the same checks on the session of `make run GUEST=linux` that
# tests/linux/console_test.py drives through a pseudo-terminal as a user
# would (Ctrl-C while booting, then a second run to the shell, commands,
# `exit`); its serial log is judged as above, and the console test must pass.
#
# Above microhv (default and --console) /init also times clock_gettime
# through the reference TSC page and through TIME_REF_COUNT (/bin/clockbench,
# linux-guest.bench=1, with microhv's testdev = on) and prints the ratio.
#
# --crash: a separate boot above microhv whose /init, after its checks,
# crashes the kernel (linux-guest.crash=1: echo c > /proc/sysrq-trigger with
# hv_vmbus loaded). Passes when microhv prints the guest's crash report with
# the panic text and parks the partition's VPs (make test-linux-crash).
#
# --shell adds linux-guest.shell=1 (a busybox shell on COM1 after the checks;
# only useful with an interactive console, not here).
#
# LINUX_KERNEL_ARGS replaces the kernel's console options (scripts/lib/esp.sh).
# MICROHV_EFI=PATH boots another microhv image; TEST_LINUX_TIMEOUT=S sets
# the default timeout (microhv: 360 s, Bochs baseline: 420 s, QEMU: 180 s).
#
# Prints the guest's uptime when /init started, the uptime at the verdict and
# the wall time. Logs: build/test-linux/<mode>/ (com1.txt, bochs.log, ...);
# microhv on another CPU count than 2: build/test-linux/microhv-<N>cpu/.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

# ---------------------------------------------------------------- verdict rules
# Lines of the guest (tests/linux/init; format in tests/linux/README.md).
GUEST_PASS_RE='^linux-guest: PASS '
GUEST_FAIL_RE='^linux-guest: FAIL '
GUEST_SUMMARY_RE='^linux-guest: [0-9]+ passed, [0-9]+ failed'
GUEST_UPTIME_RE='^linux-guest: uptime [0-9.]+$'
# The guest's checks: Hyper-V detected, modules loaded, VMBus version,
# /sys/bus/vmbus, online CPUs, no Call Trace, no hv_post_msg() failed, the
# clocksource (TSC page, not the MSR), Hyper-V clockevents, with the
# benchmark the clock_gettime ratio, IPI hypercalls, remote TLB flush
# hypercalls, no WARNING.
MIN_CHECKS=14
# microhv's own log: one regex per required line (served PostMessage calls).
MICROHV_REQUIRED=(
  '^microhv: .*PostMessage'
  '^microhv: vmbus: INITIATE_CONTACT version .*: accepted'
  '^microhv: vmbus: reply 15 delivered'
  '^microhv: vmbus: reply 4 delivered'
  '^microhv: vmbus: reply 17 delivered'
  '^microhv: reference TSC page: overlay mapped at GPA '
  '^linux-guest: clockbench: ratio msr / tsc-page = '
)
# --crash: microhv's report of the guest's panic, with its text.
MICROHV_CRASH_REQUIRED=(
  '^microhv: crash: partition 1 reported a crash from VP [0-9]+: .*\(P3/P4: message\)'
  '^microhv: crash: \| .*Kernel panic - not syncing: sysrq triggered crash'
  '^microhv: crash: partition 1 stopped'
  '^microhv: cpu [0-9]+: VP [0-9]+ parked'
)
# microhv lines that fail the test at once.
MICROHV_FATAL_RE='^microhv: (error|panic|fatal)|guest stopped|host stopped|host exception'
# microhv lines saying Linux will not be started (the run stops there).
MICROHV_NO_GUEST_RE='^microhv: (config: .*no next stage|cannot load next stage|no next stage)|BdsDxe: starting Boot[0-9A-F]{4} "UiApp"'
# What ends Bochs early (besides the guest powering off: after a match Bochs
# gets 20 s more to let the guest finish and power off).
STOP_RE="${GUEST_SUMMARY_RE}|Kernel panic - not syncing|X64 Exception Type|${MICROHV_FATAL_RE}|${MICROHV_NO_GUEST_RE}"
# Baseline: the checks that need Hyper-V and must FAIL without microhv.
BASELINE_HYPERV_CHECKS=(
  'Hyper-V detected'
  'modules loaded'
  'VMBus version negotiated'
  '/sys/bus/vmbus exists'
  'IPI hypercalls'
  'remote TLB flush hypercalls'
  'clocksource is the TSC page'
  'Hyper-V clockevent registered on every CPU'
)

# ---------------------------------------------------------------- options
mode=microhv
crash=0
timeout_s=${TEST_LINUX_TIMEOUT:-}
cpus=""
shell_arg=""
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) mode=$2; shift 2 ;;
    --console) mode=console; shift ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --shell) shell_arg=" linux-guest.shell=1"; shift ;;
    --crash) crash=1; shift ;;
    *) sed -n '2,43p' "$0" >&2; exit 2 ;;
  esac
done
case $mode in
  microhv) cpus=${cpus:-2}; timeout_s=${timeout_s:-360} ;;
  console) cpus=2 ;;
  bochs) cpus=${cpus:-1}; timeout_s=${timeout_s:-420} ;;
  qemu) cpus=${cpus:-1}; timeout_s=${timeout_s:-180} ;;
  *) die "--baseline takes qemu or bochs" ;;
esac
out=build/test-linux/$mode
case $mode in bochs | qemu) out=build/test-linux/baseline-$mode ;; esac
# Another CPU count than the default gets its own logs (so runs can overlap).
[ $mode != microhv ] || [ "$cpus" = 2 ] || out=build/test-linux/microhv-${cpus}cpu
[ $crash = 0 ] || out=build/test-linux/crash
extra_args=""
case $mode in
  microhv | console)
    if [ $crash = 1 ]; then
      [ $mode = microhv ] || die "--crash runs its own boot, not the console session"
      extra_args=" linux-guest.crash=1"
      # The report ends the run: Bochs stops once the VPs are parked (the
      # guest's summary and its panic come before and must not stop it).
      STOP_RE="^microhv: cpu [0-9]+: VP [0-9]+ parked|X64 Exception Type|${MICROHV_FATAL_RE}|${MICROHV_NO_GUEST_RE}"
      MIN_CHECKS=$((MIN_CHECKS - 1)) # no benchmark
      MICROHV_REQUIRED=("${MICROHV_REQUIRED[@]:0:4}" "${MICROHV_CRASH_REQUIRED[@]}")
    else
      extra_args=" linux-guest.bench=1"
    fi
    ;;
esac
mkdir -p "$out"

# ---------------------------------------------------------------- inputs
scripts/linux-guest.sh
options="microhv.cpus=$cpus$shell_arg$extra_args"
# testdev: clockbench switches the reference TSC page through it.
MICROHV_TESTDEV='testdev = on'
case $mode in
  microhv) esp_linux "$out" "$options" "$MICROHV_TESTDEV" ;;
  bochs | qemu)
    # No BOOTX64.EFI: OVMF's boot manager ends in its built-in EFI shell,
    # which runs startup.nsh from the first file system after a countdown.
    printf 'fs0:\r\n\\vmlinuz %s initrd=\\initrd.img %s\r\n' "$LINUX_KERNEL_ARGS" "$options" >"$out/startup.nsh"
    scripts/make-esp.sh "$out/esp.img" \
      "$out/startup.nsh:startup.nsh" build/linux/vmlinuz:vmlinuz build/linux/initrd.img:initrd.img
    ;;
esac
[ $mode = console ] || say "mode $mode, $cpus CPU(s), timeout ${timeout_s}s; kernel options: $options"

# ---------------------------------------------------------------- boot
log=$out/com1.txt
rm -f "$log" "$out/wall-to-init"
start=$SECONDS
status=0
if [ $mode = console ]; then
  # The user's path: `make run GUEST=linux` on a pseudo-terminal, first
  # interrupted with Ctrl-C while the firmware boots, then again to the
  # shell (/init's checks run before it), commands typed, `exit`.
  # The session's microhv.cfg and kernel options get the benchmark's
  # additions (scripts/run-linux.sh reads these two). Under Bochs unless
  # RUN_EMULATOR says otherwise: on a host with nested VT-x `make run` picks
  # QEMU/KVM, but what this test expects (the firmware's status line, the
  # boot-time ratio against the Bochs baseline) is Bochs'.
  RUN_EMULATOR="${RUN_EMULATOR:-bochs}" \
    RUN_LINUX_OPTIONS="${extra_args# }" RUN_MICROHV_CONFIG="$MICROHV_TESTDEV" \
    tests/linux/console_test.py --sessions interrupt,shell || status=$?
  cp build/run-linux/session.log "$log" 2>/dev/null || true
else
  # Wall time until /init's first line shows up in the serial log.
  (
    while sleep 1; do
      if log_has "$log" "$GUEST_UPTIME_RE"; then
        echo $((SECONDS - start)) >"$out/wall-to-init"
        exit 0
      fi
    done
  ) &
  proc_track $!
  proc_traps
  if [ $mode = qemu ]; then
    # No --until: QEMU runs until the guest powers it off (ACPI), which is
    # part of what this checks.
    scripts/qemu.sh --accel tcg --timeout "$timeout_s" --serial "$log" \
      --fail-on 'Kernel panic - not syncing|X64 Exception Type' \
      "$out/esp.img" -- -smp "$cpus" || status=$?
  else
    # The later `cpu:` line overrides the count.
    scripts/bochs.sh --cpu broadwell_ult --megs 256 --timeout "$timeout_s" \
      --opt "cpu: count=$cpus" --until "$STOP_RE" --linger 20 --progress "$PROG [$mode]" \
      "$out/esp.img" "$out" || status=$?
  fi
  proc_cleanup
fi
wall=$(elapsed $start)
wall_init=$(cat "$out/wall-to-init" 2>/dev/null || echo none)
say "$([ $mode = console ] && echo "console test" || echo emulator) ran ${wall} s (status $status)"

touch "$log"
text=$(plain_text "$log" | tr -d '\000')
lines() { grep -aE -e "$1" <<<"$text" || true; }

{ lines '^(linux-guest|microhv): ' | sed 's/^/  | /' | head -120; } || true
uptime_init=$(lines "$GUEST_UPTIME_RE" | head -n1 | awk '{print $3}')
uptime_verdict=$(lines '^linux-guest: uptime [0-9.]+ at the verdict' | awk '{print $3}' | tail -n1)
secs() { [ -n "$1" ] && [ "$1" != none ] && echo "$1 s" || echo "none"; }
say "guest uptime at /init: $(secs "$uptime_init"), at the verdict: $(secs "$uptime_verdict")"
say "wall time: $(secs "$wall_init") to /init, $wall s in all"

# ---------------------------------------------------------------- verdict
bochs_dir=$out
[ $mode != console ] || bochs_dir=build/run-linux
fail=0
bad() {
  say "FAIL $*"
  fail=1
}
good() { say "ok   $*"; }

summary=$(lines "$GUEST_SUMMARY_RE" | tail -n1)
npass=$(lines "$GUEST_PASS_RE" | wc -l)
fails=$(lines "$GUEST_FAIL_RE")
nfail=$(grep -c . <<<"$fails" || true)
if [ -z "$uptime_init" ]; then
  bad "the guest's /init never ran (no 'linux-guest: uptime' line in $log)"
elif [ -z "$summary" ]; then
  bad "/init started but printed no summary line (hang or crash: see $log)"
else
  good "guest summary: ${summary#linux-guest: }"
fi

[ $mode != console ] || [ $status -eq 0 ] || bad "the console test failed (above)"
if [ $mode = microhv ] || [ $mode = console ]; then
  if [ -n "$summary" ]; then
    [ "$nfail" -eq 0 ] && [ "$npass" -ge $MIN_CHECKS ] &&
      good "all $npass guest checks passed" ||
      bad "guest checks: $npass passed (want >= $MIN_CHECKS), $nfail failed"
  fi
  for re in "${MICROHV_REQUIRED[@]}"; do
    if [ -n "$(lines "$re")" ]; then good "microhv log has /$re/"; else bad "no microhv line matching /$re/"; fi
  done
  no_guest=$(lines "$MICROHV_NO_GUEST_RE")
  [ -z "$no_guest" ] || { bad "microhv did not start Linux:"; head -3 <<<"$no_guest" | sed 's/^/  | /'; }
  fatal=$(lines "$MICROHV_FATAL_RE")
  [ -z "$fatal" ] && good "no fatal microhv lines" ||
    { bad "microhv reported:"; head -5 <<<"$fatal" | sed 's/^/  | /'; }
else
  # Without Hyper-V: exactly the Hyper-V checks fail.
  if [ -n "$summary" ]; then
    unexpected=$fails
    for what in "${BASELINE_HYPERV_CHECKS[@]}"; do
      if grep -qF "linux-guest: FAIL $what" <<<"$fails"; then
        good "expected without Hyper-V: FAIL $what"
        unexpected=$(grep -vF "linux-guest: FAIL $what" <<<"$unexpected" || true)
      else
        bad "'$what' did not FAIL although there is no Hyper-V"
      fi
    done
    [ -z "$unexpected" ] && good "every other check passed ($npass)" ||
      { bad "unexpected failures:"; sed 's/^/  | /' <<<"$unexpected"; }
  fi
fi
if [ $crash = 0 ] && lines 'Kernel panic - not syncing' | grep -q .; then bad "kernel panic"; fi
if lines 'X64 Exception Type' | grep -q .; then
  bad "the firmware reported a CPU exception:"
  { grep -aE -A1 'X64 Exception Type' <<<"$text" | head -4 | sed 's/^/  | /'; } || true
fi
if [ -f "$bochs_dir/bochs.log" ]; then
  if grep -aq 'Shutdown port: shutdown requested' "$bochs_dir/bochs.log"; then
    say "note the guest powered Bochs off (port 0x8900)"
  else
    say "note Bochs was stopped from outside (no power-off through port 0x8900)"
  fi
fi

if [ $fail -ne 0 ]; then
  say "FAILED ($mode); logs in $out/"
  if [ -f "$bochs_dir/bochs.log" ]; then
    { grep -a -iE 'VMENTER FAIL|VMFAIL|VMABORT|PANIC|triple' "$bochs_dir/bochs.log" |
      grep -avE 'SIGHUP|Shutdown port' | head -10 |
      sed 's/^/  bochs.log | /'; } || true
  fi
  exit 1
fi
say "PASS ($mode)"
