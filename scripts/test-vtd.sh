#!/usr/bin/env bash
# make test-vtd: microhv's DMA protection on its real take-over path, under
# QEMU TCG + OVMF on q35 with QEMU's edu DMA device. TCG has no VT-x, so
# microhv runs in its test mode (microhv.cfg `vtd-selftest = on`, see
# boot/efi/vtd_selftest.hpp): the take-over up to and including DMA
# protection of its resident pool, then, instead of the launch, its next
# stage build/vtd_test.efi (tests/vtd/main.cpp) natively, which programs
# edu's DMA at the pool and at ordinary pages; then microhv turns protection
# off and returns to the firmware. Four boots:
#
#   aw39, aw48  -device intel-iommu,aw-bits=39|48 (3- and 4-level tables),
#               iommu = required: ordinary DMA works, DMA into and out of
#               the pool is blocked, microhv logs each fault with edu's
#               address (00:02.0) and the page, the DMAR is hidden;
#   no-iommu    no intel-iommu, iommu = if-present: microhv says in one line
#               that devices can reach its memory, and edu does (the hole of
#               issue 14, and proof that the checks can fail);
#   required    no intel-iommu, iommu = required: microhv refuses to take
#               over with that line and never starts the next stage.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"

TIMEOUT=${TEST_VTD_TIMEOUT:-240}
out=build/test-vtd
CRASHED='X64 Exception Type'
SUMMARY='^[0-9]+ passed, [0-9]+ failed$'
RETURNED='^microhv: returning to firmware$'

rm -rf "$out"
mkdir -p "$out"
failures=0
verdict() {  # verdict OK|NO DESCRIPTION
  if [ "$1" = OK ]; then
    echo "PASS: $2"
  else
    echo "FAIL: $2"
    failures=$((failures + 1))
  fi
}
text=""
expect() {  # expect NAME DESCRIPTION REGEX
  if grep -aqE -e "$3" "$text"; then verdict OK "$1: $2"; else verdict NO "$1: $2 (no line matching /$3/ in $text)"; fi
}
reject() {  # reject NAME DESCRIPTION REGEX
  if grep -aqE -e "$3" "$text"; then verdict NO "$1: $2 ($(grep -aE -m1 -e "$3" "$text"))"; else verdict OK "$1: $2"; fi
}

# boot NAME CONFIG [QEMU ARG...]: microhv with CONFIG, vtd_test.efi beside it.
boot() {
  local name=$1 config=$2 start_ns status elapsed_ms
  shift 2
  esp_with_microhv "$out/$name" "$config" build/vtd_test.efi:EFI/microhv/vtd_test.efi
  echo "--- $name: ${*:-no intel-iommu}; $(tr '\n' ';' <<<"$config")"
  start_ns=$(date +%s%N)
  scripts/qemu.sh --accel tcg --timeout "$TIMEOUT" --serial "$out/$name/serial.log" \
    --qemu-log "$out/$name/qemu.log" --fail-on "$CRASHED" --until "$RETURNED" \
    "$out/$name/esp.img" -- -device edu "$@"
  status=$?
  elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
  text=$out/$name/serial.txt
  plain_text "$out/$name/serial.log" | tr -d '\000' >"$text"
  # microhv's lines and the test's, without the firmware's console.
  grep -a -E '^(vtd-test: |microhv: |[0-9]+ passed, [0-9]+ failed$)' "$text" |
    grep -a -v -E '^microhv: (VT-x|vmx: MP|config:)'
  case $status in
    0) verdict OK "$name: microhv returned to the firmware ($(printf '%d.%d' $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)))s)" ;;
    3) verdict NO "$name: stopped at OVMF's exception dump" ;;
    124) verdict NO "$name: timed out after ${TIMEOUT}s" ;;
    *) verdict NO "$name: QEMU ended with status $status" ;;
  esac
  if grep -qs 'Triple fault' "$out/$name/qemu.log" || grep -aq "$CRASHED" "$text"; then
    verdict NO "$name: CPU exception or triple fault (see $text, $out/$name/qemu.log)"
  fi
}

# The test application's verdict: its summary with 0 failures and no FAIL.
judge_app() {  # judge_app NAME
  local summary
  summary=$(grep -a -E -m1 "$SUMMARY" "$text")
  if [ -n "$summary" ] && [[ $summary == *" 0 failed" ]] && ! grep -aq '^vtd-test: FAIL' "$text"; then
    verdict OK "$1: vtd_test.efi: $summary"
  else
    verdict NO "$1: vtd_test.efi: ${summary:-no summary line}"
  fi
}

selftest='vtd-selftest = on
image = \EFI\microhv\vtd_test.efi'

for aw in 39 48; do
  name=aw$aw
  levels=$((aw == 39 ? 3 : 4))
  boot $name "$selftest
iommu = required
options = expect=protected" -device intel-iommu,aw-bits=$aw
  judge_app $name
  expect $name "the unit walks $levels-level tables" \
    "^microhv: vtd: unit 0x[0-9a-f]+ \(.*\): VT-d [0-9.]+, $levels-level tables"
  expect $name "the whole pool is protected" \
    "^microhv: vtd: DMA remapping on 1 of 1 unit\(s\), $levels-level tables in [0-9]+ pages: devices cannot reach microhv's memory \(1 range\(s\)\)$"
  # The fault lines name edu (as the test found it) and the pages the test
  # aimed at: microhv's first page (read) and the root table (write).
  pool=$(sed -n -E 's/^microhv: vtd-selftest: pool (0x[0-9a-f]+)\.\..*/\1/p' "$text" | head -1)
  root=$(sed -n -E 's/^microhv: vtd-selftest: .*root table (0x[0-9a-f]+),.*/\1/p' "$text" | head -1)
  edu=$(sed -n -E 's/^vtd-test: NOTE edu at ([0-9a-f:.]+) .*/\1/p' "$text" | head -1)
  if [ -n "$pool" ] && [ -n "$root" ] && [ -n "$edu" ]; then
    expect $name "microhv logged the blocked read of its first page $pool by edu ($edu)" \
      "^microhv: error: vtd: unit 0x[0-9a-f]+: DMA read by ${edu//./\\.} to $pool blocked"
    expect $name "microhv logged the blocked write of its root table $root by edu ($edu)" \
      "^microhv: error: vtd: unit 0x[0-9a-f]+: DMA write by ${edu//./\\.} to $root blocked"
  else
    verdict NO "$name: no pool/root table line from microhv or no edu line from the test"
  fi
  expect $name "the DMAR was hidden for the next stage" '^microhv: vtd: ACPI DMAR table at 0x[0-9a-f]+ renamed XMAR'
  expect $name "microhv gave the machine back (translation off, pool freed)" \
    '^microhv: vtd-selftest: 0 fault\(s\) left at the end; DMA remapping off again, DMAR restored, pool freed$'
done

boot no-iommu "$selftest
iommu = if-present
options = expect=unprotected"
judge_app no-iommu
expect no-iommu "the one-line warning" \
  "^microhv: vtd: no DMA remapping hardware \(no ACPI DMAR table\): devices can reach microhv's memory$"
expect no-iommu "edu reached microhv's pool (what VT-d prevents)" '^vtd-test: PASS pool-read-reaches-microhv'

boot required "$selftest
iommu = required
options = expect=protected"
expect required "required refuses with the line" \
  "^microhv: error: vtd: no DMA remapping hardware \(no ACPI DMAR table\): devices can reach microhv's memory; iommu = required: not taking over the machine"
reject required "the next stage never started" '^(microhv: starting next stage|vtd-test: )'

if [ $failures -ne 0 ]; then
  echo "test-vtd: FAIL ($failures failed checks; logs in $out/)"
  exit 1
fi
echo "test-vtd: PASS"
