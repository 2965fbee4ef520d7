#!/usr/bin/env bash
# make test-bochs: microhv on (emulated) VT-x, Bochs 2.7 + OVMF, cpu tigerlake
# (VMX with EPT, VPID and unrestricted guest). Three boots, judged from COM1:
#
#  1. takeover (1 CPU): build/microhv.efi as EFI/BOOT/BOOTX64.EFI, no
#     configuration. microhv must say that there is no DMA remapping
#     hardware (one line), VMXON, VMLAUNCH the firmware as its guest,
#     answer CPUID 0x40000000 and trap VMCALL as seen from the guest side,
#     return EFI_SUCCESS into the now-virtualized firmware, and the firmware
#     must go on (its boot manager starts the next boot option) without
#     microhv ever stopping the guest.
#  2. suite (1 CPU, when tests/guest exists): the same plus
#     \EFI\microhv\microhv.cfg naming build/guest_suite.efi, which microhv
#     chainloads; the suite checks the Hyper-V interface from the guest
#     (hypercall page overlay, SynIC message delivery by event injection, the
#     time group, ...) and must report 0 failures. testdev is off: port 0x3000
#     must not exit. Then (--crash-at-end) the suite reports a crash with a
#     text page through the crash MSRs: microhv must print it legibly and
#     park the VP.
#  3. suite-smp (`cpu: count=2`, testdev = on): every CPU a VP. Both CPUs are
#     virtualized (one "cpu N: VMLAUNCH ok, VP N" line each), the AP is
#     started again by MP services through an emulated INIT and a SIPI and
#     comes back as VP 1, the test device answers port 0x3000, and the suite
#     (its smp checks included) reports 0 failures.
#
# Boot 3 (~70 s) runs in the background while 1 and 2 run one after the
# other (BOCHS_PARALLEL=0 runs all three in turn). Logs:
# build/test-bochs/<stage>/{com1.txt,bochs.log,bochs.out}.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

top=build/test-bochs
efi=build/microhv.efi
[ -f "$efi" ] || { echo "test-bochs: $efi missing (make all)" >&2; exit 1; }
mkdir -p "$top"
fail=0
t0=$(date +%s)

if scripts/check-relocs.sh build/microhv.so; then
  echo "test-bochs: ok   image has RELATIVE relocations only (the only kind GNU-EFI applies)"
else
  echo "test-bochs: FAIL build/microhv.so has relocations GNU-EFI does not apply"
  fail=1
fi

log=""
matches() { log_has "$log" "$1"; }
expect() {  # expect DESCRIPTION REGEX
  if matches "$2"; then
    echo "test-bochs: ok   $1"
  else
    echo "test-bochs: FAIL $1 (no line matching /$2/)"
    fail=1
  fi
}
reject() {  # reject DESCRIPTION REGEX
  if matches "$2"; then
    echo "test-bochs: FAIL $1:"
    log_lines "$log" "$2" | head -5 | sed 's/^/  | /' || true
    fail=1
  else
    echo "test-bochs: ok   $1"
  fi
}
declare -A boot_pid boot_start
proc_traps
boot_start_bg() {  # boot_start_bg STAGE UNTIL-REGEX LINGER [bochs.sh options...]
  local stage=$1 until=$2 linger=$3 out=$top/$1
  shift 3
  rm -f "$out/com1.txt"
  boot_start[$stage]=$(date +%s)
  scripts/bochs.sh --timeout "${BOCHS_TIMEOUT:-600}" --until "$until" --linger "$linger" \
    --progress "test-bochs [$stage]" "$@" "$out/esp.img" "$out" >"$out/bochs.sh.out" &
  boot_pid[$stage]=$!
  proc_track "${boot_pid[$stage]}"
}
boot_wait() {  # boot_wait STAGE: waits for it and makes its COM1 log current
  local stage=$1 status=0
  wait "${boot_pid[$stage]}" || status=$?
  echo "test-bochs: [$stage] Bochs ran $(($(date +%s) - ${boot_start[$stage]})) s (status $status)"
  log=$top/$stage/com1.txt
  touch "$log"
}
boot() {  # boot STAGE UNTIL-REGEX LINGER [bochs.sh options...]
  boot_start_bg "$@"
  boot_wait "$1"
}
bochs_hints() {  # bochs_hints STAGE
  { grep -a -E 'VMENTER FAIL|VMFAIL|VMABORT|>>PANIC<<' "$top/$1/bochs.log" 2>/dev/null | grep -v 'Received SIGHUP' |
    grep -v 'ACPI control: soft power off' | head -10 | sed 's/^/  bochs.log | /'; } || true
}
suite_until="^[0-9]+ passed, [0-9]+ failed|$GUEST_APP_STOP_RE"
check_suite() {  # check_suite: the suite's verdict in $log
  log_lines "$log" '^guest: (FAIL|SKIP)|passed, .* failed|guest stopped' | sed 's/^/  | /' | head -40 || true
  expect "microhv chainloaded the suite" '^microhv: starting next stage .*guest_suite'
  expect "suite finished with 0 failures" '^[1-9][0-9]* passed, 0 failed'
  # The issue's floor: at least MIN_SUITE_CHECKS checks must have run and passed.
  local passed
  passed=$(log_lines "$log" '^[0-9]+ passed, 0 failed' | tail -1 | cut -d' ' -f1)
  if [ "${passed:-0}" -ge "${MIN_SUITE_CHECKS:-40}" ]; then
    echo "test-bochs: ok   suite ran $passed checks (at least ${MIN_SUITE_CHECKS:-40})"
  else
    echo "test-bochs: FAIL suite ran ${passed:-0} passing checks, fewer than ${MIN_SUITE_CHECKS:-40}"
    fail=1
  fi
  expect "SynIC message delivered by injection (AutoEOI)" '^guest: PASS post-message-interrupts-once'
  expect "SynIC non-AutoEOI SINT through the local APIC" '^guest: PASS sint-non-autoeoi-redelivers-after-eoi'
  expect "hypercall page is a read+execute overlay" '^guest: PASS hypercall-page-write-protected'
  expect "a continued rep call takes a pending interrupt at its VMCALL" '^guest: PASS rep-continued-call-takes-pending-interrupt'
  expect "built-in VMBus host attached to the guest partition" '^microhv: vmbus: VMBus host attached'
  expect "hostile: the bit-52 HYPERCALL escape is #GP" '^guest: PASS hostile-hypercall-bit52-escape'
  expect "hostile: an access above the top of RAM does not stop the guest" '^guest: PASS hostile-read-above-ram'
  expect "hostile: 2,000 hypercall-page moves" '^guest: PASS hostile-overlay-2000-moves'
  check_overlay_tables
  reject "microhv never stopped the guest" 'guest stopped|host stopped|host exception'
  reject "no microhv errors" '^microhv: error:'
}
# The EPT table count microhv reports every 512 hypercall-page moves stays
# within one overlay's splits (2 tables) of the first report: moving the
# page reuses its tables (issue 9 item 7: it used to fill the pool after
# about 500 moves).
check_overlay_tables() {
  local n lo hi
  read -r n lo hi < <(log_lines "$log" '^microhv: hypercall page: overlay mapped at .*\(move [0-9]+; EPT: ' |
    sed -nE 's/.*\(move ([0-9]+); EPT: ([0-9]+) tables in use.*/\1 \2/p' |
    awk '$1 % 512 == 0 {n++; if (n == 1 || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2}
      END {printf "%d %d %d\n", n, lo, hi}')
  if [ "$n" -ge 3 ] && [ $((hi - lo)) -le 2 ]; then
    echo "test-bochs: ok   EPT tables in use stay at $lo..$hi over $n reports (every 512 overlay moves)"
  else
    echo "test-bochs: FAIL EPT tables in use at every 512th overlay move: $n report(s), $lo..$hi (expected at least 3, within 2 of each other)"
    fail=1
  fi
}

have_suite=0
if ls tests/guest/*.cpp >/dev/null 2>&1; then
  have_suite=1
  make -s build/guest_suite.efi >/dev/null
  suite_config='image = \EFI\microhv\guest_suite.efi'
  # The 1-CPU suite ends with a crash report through the crash MSRs.
  esp_with_microhv "$top/suite" "$suite_config
options = --crash-at-end" build/guest_suite.efi:EFI/microhv/guest_suite.efi
  esp_with_microhv "$top/suite-smp" "$suite_config
testdev = on" build/guest_suite.efi:EFI/microhv/guest_suite.efi
  # The longest boot first, in the background.
  if [ "${BOCHS_PARALLEL:-1}" = 1 ]; then
    boot_start_bg suite-smp "$suite_until" 1 --opt 'cpu: count=2'
  fi
fi

# ---- 1. takeover
mkdir -p "$top/takeover"
scripts/make-esp.sh "$top/takeover/esp.img" "$efi:EFI/BOOT/BOOTX64.EFI"
boot takeover "$GUEST_APP_STOP_RE" 8
log_lines "$log" '^microhv' | grep -av '^microhv: VMX: ' | sed 's/^/  | /' | head -40 || true
expect "VMXON" '^microhv: VMXON ok'
expect "VMLAUNCH of the firmware" '^microhv: launching the firmware as guest'
# The guest owns the UART: the host's VMLAUNCH line (logged at the VP's
# first exit) may split a guest line, so it is not anchored, and the guest
# line is looked for with it taken out.
expect "the boot CPU is VP 0" 'microhv: cpu 0: VMLAUNCH ok, VP 0 '
if plain_text "$log" | tr -d '\000' |
  perl -0pe 's/microhv: cpu \d+: VMLAUNCH ok, VP \d+ \(APIC ID \d+\)\r?\n//g' |
  grep -aE '^microhv: guest: the firmware is running as a guest of microhv' >/dev/null; then
  # (not grep -q: it would stop reading early, and under pipefail the
  # writers' SIGPIPE would fail the pipeline although the line is there)
  echo "test-bochs: ok   firmware resumed as guest"
else
  echo "test-bochs: FAIL firmware resumed as guest (no line 'microhv: guest: the firmware is running as a guest of microhv')"
  fail=1
fi
expect "CPUID from the guest: hypervisor bit, VMX hidden, Hyper-V vendor leaf" \
  '^microhv: guest: CPUID.1:ECX hypervisor=1 vmx=0; CPUID 0x40000000: max leaf 0x4000000[5-9a-f] vendor "Microsoft Hv"'
expect "VMCALL from the guest exits to microhv (HV_STATUS_INVALID_HYPERCALL_CODE)" \
  '^microhv: guest: VMCALL with call code 0xffff returned 0x2$'
# Bochs has no IOMMU (no ACPI DMAR table): one line says what that means
# (issue 14), as information, and the take-over goes on (iommu = if-present).
expect "no DMA remapping hardware: one line, devices can reach microhv's memory" \
  "^microhv: vtd: no DMA remapping hardware \(no ACPI DMAR table\): devices can reach microhv's memory$"
expect "efi_main returned into the firmware" '^microhv: returning to firmware'
expect "firmware kept running as a guest (boot manager starts the next option)" 'BdsDxe: starting Boot[0-9A-F]{4}'
reject "microhv never stopped the guest" 'guest stopped|host stopped|host exception'
reject "no microhv errors" '^microhv: error:'
reject "no test device without testdev = on" '^microhv: testdev:'
[ $fail -eq 0 ] || bochs_hints takeover

if [ $have_suite -eq 1 ]; then
  # ---- 2. guest conformance suite, chainloaded, 1 CPU
  boot suite "$suite_until" 4
  check_suite
  reject "port 0x3000 does not exit with testdev off" '^microhv: testdev:'
  expect "the time group ran: TSC page against TIME_REF_COUNT" '^guest: PASS time-tsc-page-matches-time-ref-count'
  expect "the time group ran: a periodic synthetic timer in message mode" '^guest: PASS time-stimer-periodic-message'
  expect "the time group ran: a direct-mode timer wakes a halted VP" '^guest: PASS time-stimer-direct-periodic-wakes-halted-vp'
  expect "crash report: microhv names the partition, VP and P0-P4" \
    '^microhv: crash: partition 1 reported a crash from VP 0: P0 0x5555 .*\(P3/P4: message\)$'
  expect "crash report: the guest's text, line by line" '^microhv: crash: \| guest suite: crash report test$'
  expect "crash report: control characters shown as dots" '^microhv: crash: \| second line with a tab\.and a bell \. \(shown as dots\)$'
  expect "crash report: the partition stops and its VP is parked" '^microhv: cpu 0: VP 0 parked: partition 1 stopped after its crash report'
  reject "the guest did not run on after its crash report" '^guest: FAIL crash-at-end'
  [ $fail -eq 0 ] || bochs_hints suite

  # ---- 3. the suite on 2 CPUs: every CPU a VP
  [ "${BOCHS_PARALLEL:-1}" = 1 ] || boot_start_bg suite-smp "$suite_until" 1 --opt 'cpu: count=2'
  boot_wait suite-smp
  log_lines "$log" '^microhv: (cpu [0-9]+:|guest: (cpu|[0-9]+ of)|testdev:|vmx: MP)' | sed 's/^/  | /' | head -20 || true
  expect "MP services found 2 processors" '^microhv: vmx: MP services: 2 processors \(2 enabled\), BSP is processor 0: 2 VP\(s\)'
  # Not anchored: the guest owns the UART, and a VM exit in the middle of one
  # of its lines (the line is logged at the VP's first exit) splits it.
  expect "cpu 0 virtualized as VP 0" 'microhv: cpu 0: VMLAUNCH ok, VP 0 '
  expect "cpu 1 virtualized as VP 1" 'microhv: cpu 1: VMLAUNCH ok, VP 1 '
  expect "the AP reads VP_INDEX 1 and sees the hypervisor bit" \
    '^microhv: guest: cpu 1 runs above microhv: VP_INDEX 1, CPUID.1:ECX hypervisor=1$'
  expect "2 of 2 processors are VPs" '^microhv: guest: 2 of 2 processor\(s\) run above microhv as VP 0-1$'
  expect "an INIT IPI to a VP is emulated (kick by NMI IPI)" '^microhv: cpu 0: INIT IPI to cpu 1 emulated'
  expect "the kicked CPU took the NMI as a kick" '^microhv: cpu 1: first kick taken \(NMI exit\)'
  expect "SIPI restarts the VP in real mode" '^microhv: cpu 1: INIT/SIPI: VP 1 restarted in real mode at 0x[0-9a-f]+000 '
  expect "the restarted AP is still VP 1" \
    '^microhv: guest: cpu 1 started again by MP services runs above microhv: VP_INDEX 1, CPUID.1:ECX hypervisor=1$'
  expect "testdev: 32-bit OUT to port 0x3000 reaches the test device" \
    '^microhv: testdev: 32-bit OUT 0x00010000 to port 0x3000 from VP 0 '
  expect "testdev: other accesses to port 0x3000 pass through" \
    '^microhv: guest: testdev: 32-bit OUTs to port 0x3000 accepted; a 1-byte IN from it read 0x'
  expect "time: the test device sets the TSC page to sequence 0 and back" '^guest: PASS time-tsc-page-sequence-0-then-valid'
  expect "time: VP 1 reads the TSC page in step with TIME_REF_COUNT" '^guest: PASS time-vp1-tsc-page-matches-time-ref-count'
  expect "time: VP 1's synthetic timer fires on VP 1 while it halts" '^guest: PASS time-vp1-stimer-fires-on-vp1-halted'
  check_suite
  expect "an IPI hypercall reaches VP 1" '^guest: PASS ipi-vp1-spinning'
  expect "a flush hypercall returns after VP 1 dropped its stale translation" '^guest: PASS flush-vp1-list-mask'
  [ $fail -eq 0 ] || bochs_hints suite-smp
fi

echo "test-bochs: total $(($(date +%s) - t0)) s"
if [ $fail -ne 0 ]; then
  echo "test-bochs: FAILED; logs in $top/*/com1.txt and bochs.log"
  exit 1
fi
echo "test-bochs: PASS"
