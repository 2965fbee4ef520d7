#!/usr/bin/env bash
# Builds a FAT16 EFI system partition image with mtools (no root, no loop mount).
#
#   scripts/make-esp.sh OUT.img SRC:DEST [SRC:DEST ...]
#
# DEST is a path inside the image, e.g. EFI/BOOT/BOOTX64.EFI; its directories
# are created. OUT is always rebuilt from scratch. The image is a whole-disk
# FAT16 volume ("superfloppy"): OVMF under QEMU and Bochs both accept it, while
# a FAT32 one made by `mformat -F` is not recognised by OVMF under Bochs.
set -euo pipefail

IMAGE_MIB=32

usage() {
  echo "usage: $0 OUT.img SRC:DEST [SRC:DEST ...]" >&2
  exit 2
}

[ $# -ge 2 ] || usage
out=$1
shift

for pair in "$@"; do
  case $pair in
    *:*) ;;
    *) echo "make-esp: '$pair' is not SRC:DEST" >&2; usage ;;
  esac
  src=${pair%%:*}
  [ -f "$src" ] || { echo "make-esp: no such file: $src" >&2; exit 1; }
done

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
rm -f "$tmp"
truncate -s "${IMAGE_MIB}M" "$tmp"
# Geometry comes from the file size; 32 MiB gives FAT16.
mformat -i "$tmp" -v MICROHV ::

declare -A made_dirs=()
for pair in "$@"; do
  src=${pair%%:*}
  dest=${pair#*:}
  dest=${dest#/}
  dir=""
  IFS=/ read -r -a parts <<<"$(dirname "$dest")"
  for part in "${parts[@]}"; do
    [ "$part" = "." ] && continue
    dir="$dir/$part"
    if [ -z "${made_dirs[$dir]:-}" ]; then
      mmd -i "$tmp" "::$dir"
      made_dirs[$dir]=1
    fi
  done
  mcopy -o -i "$tmp" "$src" "::/$dest"
done

mv -f "$tmp" "$out"
trap - EXIT
