# shellcheck shell=bash
# EFI system partition images for runs above microhv; loaded by common.sh.

# microhv_efi: the microhv image to boot: MICROHV_EFI when set, else
# build/microhv.efi, built when needed.
microhv_efi() {
  if [ -n "${MICROHV_EFI:-}" ]; then
    [ -f "$MICROHV_EFI" ] || die "MICROHV_EFI=$MICROHV_EFI: no such file"
    echo "$MICROHV_EFI"
  else
    make -s build/microhv.efi >/dev/null
    echo build/microhv.efi
  fi
}

# esp_with_microhv DIR CONFIG_LINES [SRC:DEST...]: DIR/esp.img with microhv
# as EFI/BOOT/BOOTX64.EFI, DIR/microhv.cfg (CONFIG_LINES, one per line) as
# \EFI\microhv\microhv.cfg, and the other files given.
esp_with_microhv() {
  local dir=$1 config=$2 efi
  shift 2
  efi=$(microhv_efi)
  mkdir -p "$dir"
  printf '%s\n' "$config" >"$dir/microhv.cfg"
  scripts/make-esp.sh "$dir/esp.img" "$efi:EFI/BOOT/BOOTX64.EFI" \
    "$dir/microhv.cfg:EFI/microhv/microhv.cfg" "$@"
}

# esp_guest_app DIR OPTIONS: DIR emptied, then DIR/esp.img where microhv
# chainloads build/guest_suite.efi (tests/guest) with `options = OPTIONS`.
esp_guest_app() {
  local dir=$1 opts=$2
  check_cfg_options "$opts"
  make -s build/guest_suite.efi >/dev/null
  rm -rf "$dir"
  esp_with_microhv "$dir" "image = \\EFI\\microhv\\guest_suite.efi${opts:+
options = $opts}" build/guest_suite.efi:EFI/microhv/guest_suite.efi
}

# The Linux guest's kernel command line: 115200 baud (the 9600 default costs
# minutes under Bochs), no crypto self-tests, no mitigations, a quiet console
# (dmesg keeps everything /init checks). LINUX_KERNEL_ARGS in the environment
# replaces them (e.g. `ignore_loglevel` instead of `quiet` to see where a boot
# stops).
LINUX_KERNEL_ARGS="${LINUX_KERNEL_ARGS:-console=ttyS0,115200 cryptomgr.notests=1 mitigations=off quiet}"

# esp_linux DIR OPTIONS [CONFIG]: DIR/esp.img where microhv chainloads
# Debian's kernel (build/linux/vmlinuz from scripts/linux-guest.sh, run first)
# with LINUX_KERNEL_ARGS, the initrd \EFI\linux\initrd.img and OPTIONS (read
# by tests/linux/init: microhv.cpus=N, linux-guest.shell=1, ...); CONFIG:
# more microhv.cfg lines (e.g. `testdev = on`).
esp_linux() {
  local dir=$1 opts=$2 config=${3:-}
  esp_with_microhv "$dir" "image = \\EFI\\linux\\vmlinuz
options = $LINUX_KERNEL_ARGS initrd=\\EFI\\linux\\initrd.img $opts${config:+
$config}" \
    build/linux/vmlinuz:EFI/linux/vmlinuz build/linux/initrd.img:EFI/linux/initrd.img
}
