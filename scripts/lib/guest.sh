# shellcheck shell=bash
# Runs of the guest app (build/guest_suite.efi, tests/guest) above microhv
# under Bochs; loaded by common.sh.

# Lines after which nothing more will come from the guest app.
GUEST_APP_STOP_RE='guest stopped|host stopped|virtualization failed|BdsDxe: starting Boot.*UiApp'

# guest_app_boot DIR CPUS TIMEOUT UNTIL [bochs.sh options...]: boots
# DIR/esp.img (esp_guest_app) with CPUS processors until a COM1 line matches
# UNTIL or GUEST_APP_STOP_RE, or TIMEOUT seconds pass. Output in DIR/out;
# sets GUEST_LOG (its com1.txt) and GUEST_BOOT_STATUS (bochs.sh's status),
# and says how long it took.
guest_app_boot() {
  local dir=$1 cpus=$2 timeout_s=$3 until=$4 start=$SECONDS
  shift 4
  GUEST_BOOT_STATUS=0
  # ignore_bad_msrs=1 (the default): OVMF's PEI reads MSR 0x17 on every CPU.
  scripts/bochs.sh --timeout "$timeout_s" --opt "cpu: count=$cpus" \
    --until "$until|$GUEST_APP_STOP_RE" "$@" "$dir/esp.img" "$dir/out" || GUEST_BOOT_STATUS=$?
  GUEST_LOG=$dir/out/com1.txt
  touch "$GUEST_LOG"
  say "$cpus CPU(s), Bochs ran $(elapsed $start) s (bochs.sh status $GUEST_BOOT_STATUS)"
}
