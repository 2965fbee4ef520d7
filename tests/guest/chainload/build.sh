#!/usr/bin/env bash
# Builds the test chainloader: tests/guest/chainload/build.sh OUT.efi [SUITE_OPTIONS]
# SUITE_OPTIONS: the suite's load options, e.g. --only=seed,event (letters,
# digits, '=', ',', '-', '_' and spaces only).
set -euo pipefail
out=$1
opts=${2:-}
[[ "$opts" =~ ^[A-Za-z0-9=,_\ -]*$ ]] || { echo "chainload: unsupported characters in options: $opts" >&2; exit 2; }
src=$(dirname "$0")/chainload.c
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gcc -c -O2 -fpic -fshort-wchar -mno-red-zone -ffreestanding -fno-stack-protector -Wall \
  -I/usr/include/efi -I/usr/include/efi/x86_64 -DGNU_EFI_USE_MS_ABI \
  "-DSUITE_OPTIONS=L\"$opts\"" "$src" -o "$tmp/chainload.o"
ld -nostdlib -znocombreloc -shared -Bsymbolic -T /usr/lib/elf_x86_64_efi.lds \
  /usr/lib/crt0-efi-x86_64.o "$tmp/chainload.o" -o "$tmp/chainload.so" -L/usr/lib -lefi -lgnuefi
objcopy -j .text -j .sdata -j .data -j .dynamic -j .dynsym -j .rel -j .rela -j .rel.* -j .rela.* \
  -j .reloc --target efi-app-x86_64 --subsystem=10 "$tmp/chainload.so" "$out"
