#!/usr/bin/env bash
# Installs every Debian package microhv needs to build, run and test.
# Idempotent: installs only what is missing. Works as root, through sudo, or
# prints the exact apt-get line to run when neither is possible.
set -euo pipefail

packages=(
  # build
  make g++ binutils gnu-efi clang libclang-rt-14-dev clang-format
  # host tests and benchmarks
  catch2 libbenchmark-dev
  # ESP images
  mtools dosfstools
  # emulators and firmware
  qemu-system-x86 ovmf bochs bochs-term bochsbios vgabios
  # Linux guest (initramfs)
  busybox-static cpio kmod
  # its console (scripts/lib/console.py) and the console test
  python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "microhv: installing missing packages: ${missing[*]}"
cmd=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -q
  "${cmd[@]}"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -q
  sudo "${cmd[@]}"
else
  echo "microhv: cannot install packages without root. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
