# shellcheck shell=bash
# QEMU (q35 + OVMF); loaded by common.sh.

# qemu_command ACCEL ESP VARS [ARG...]: sets QEMU_COMMAND to a QEMU command
# line booting the disk image ESP with OVMF, its variable store in the file
# VARS (a fresh copy of OVMF_VARS.fd; the caller removes it), no display, no
# network, no reboot (a guest reset or triple fault ends QEMU), and ARGs.
# ACCEL kvm: -cpu host,+vmx (nested VT-x for microhv); tcg: -cpu max, which
# has no VMX (microhv then says VT-x is unavailable).
qemu_command() {
  local accel=$1 esp=$2 vars=$3 cpu
  shift 3
  case $accel in
    kvm) cpu=(-accel kvm -cpu "host,+vmx") ;;
    tcg) cpu=(-accel tcg -cpu max) ;;
    *) die "qemu_command: accel must be kvm or tcg, not $accel" ;;
  esac
  cp /usr/share/OVMF/OVMF_VARS.fd "$vars"
  # shellcheck disable=SC2034  # the caller's
  QEMU_COMMAND=(qemu-system-x86_64 -machine q35 "${cpu[@]}" -m 256 -smp 1
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd"
    -drive "if=pflash,format=raw,unit=1,file=$vars"
    -drive "format=raw,file=$esp"
    -display none -monitor none -net none -no-reboot "$@")
}
