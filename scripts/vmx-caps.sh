#!/usr/bin/env bash
# Prints the VMX capability MSRs of Bochs 2.7 CPU models, as microhv reads
# them at take-over ("microhv: VMX: ..." lines), and what microhv then
# decided. These are the values behind the Bochs rows of
# vmx/entry_check/cap_matrix.cpp.
#
#   scripts/vmx-caps.sh [MODEL ...]     (default: every model with VMX)
#
# One Bochs boot per model (15-30 s each): build/microhv.efi alone on the
# ESP, stopped once microhv has logged its capabilities and its verdict.
# Output per model: build/vmx-caps/MODEL/{com1.txt,bochs.log}.
# MICROHV_EFI=path boots that image instead of building build/microhv.efi.
set -euo pipefail
cd "$(dirname "$0")/.."

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  # Bochs' model table (bochs -help cpu) minus the CPUs without VMX.
  models=(core2_penryn_t9600 corei5_lynnfield_750 corei5_arrandale_m520
    corei7_sandy_bridge_2600k corei7_ivy_bridge_3770k corei7_haswell_4770 broadwell_ult
    corei7_skylake_x corei3_cnl corei7_icelake_u tigerlake)
fi

efi=${MICROHV_EFI:-build/microhv.efi}
[ -n "${MICROHV_EFI:-}" ] || make -s build/microhv.efi >/dev/null
root=build/vmx-caps
mkdir -p "$root"
scripts/make-esp.sh "$root/esp.img" "$efi:EFI/BOOT/BOOTX64.EFI"

# The last line microhv prints at take-over, whichever way it goes.
done_re='VMX controls:|VT-x not available|EPT/VPID capabilities|VMX controls unsupported'
done_re+='|returning to firmware|virtualization failed|launching the firmware|host stopped|guest stopped'
for model in "${models[@]}"; do
  echo "== $model"
  out=$root/$model
  scripts/bochs.sh --cpu "$model" --timeout 120 --until "$done_re" --linger 2 \
    "$root/esp.img" "$out" || echo "vmx-caps: bochs.sh exited with status $? for $model" >&2
  tr -d '\r' <"$out/com1.txt" 2>/dev/null |
    grep -a -E '^microhv: (VMX|VT-x|EPT/VPID|error|launching|returning|vmx: image)' || echo "(no VMX lines)"
done
