#!/usr/bin/env bash
# Builds the Linux guest: build/linux/vmlinuz and build/linux/initrd.img, from
# Debian packages only (nothing is installed on the host).
#
#   scripts/linux-guest.sh [--force]
#
# - The kernel is Debian's, the one linux-image-amd64 depends on
#   (linux-image-6.1.0-N-amd64). Set LINUX_IMAGE_PKG to pin another one.
#   Its .deb (about 70 MB) is fetched with `apt-get download` into
#   build/linux/debs/ (kept: reruns do not fetch again), unpacked with
#   dpkg-deb -x and given a modules.dep with `depmod -b`; build/linux/root/
#   keeps only the kernel and the modules the guest loads (a few MB).
# - The initramfs (gzip'd cpio newc) holds busybox (from the host's
#   busybox-static package), /init (tests/linux/init), the modules named in
#   MODULES below with everything they depend on (decompressed to plain .ko:
#   busybox insmod does not read .ko.xz) and /lib/modules/load-order, the
#   order in which /init loads them (dependencies first), and
#   /bin/clockbench (tests/linux/clockbench.c, built here with gcc -static):
#   the clock_gettime benchmark.
# - Reproducible: fixed timestamps, owners and inode numbers, sorted entries,
#   gzip -n. Idempotent: does nothing when the outputs are newer than every
#   input (the .deb, busybox, tests/linux/*, this script); --force rebuilds.
#
# build/linux/manifest.txt records the package versions and the module list.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"  # depmod

# Modules the guest loads (their dependencies are added from modules.dep).
MODULES=(hv_vmbus)

out=build/linux
debs=$out/debs
root=$out/root
stage=$out/initramfs
force=0
[ "${1:-}" = --force ] && force=1

die() {
  echo "linux-guest: $*" >&2
  exit 1
}
log() { echo "linux-guest: $*" >&2; }

for tool in apt-get apt-cache dpkg-deb depmod cpio gzip readelf; do
  command -v $tool >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || die "busybox is missing (package busybox-static)"
readelf -l "$busybox" 2>/dev/null | grep -q 'LOAD' &&
  ! readelf -l "$busybox" | grep -q 'program interpreter' ||
  die "$busybox is not statically linked (package busybox-static)"

mkdir -p "$debs"

# ------------------------------------------------------------ the kernel .deb
# Resolve linux-image-6.1.0-N-amd64 from the meta package; without apt lists
# (no `apt-get update` yet) fall back to the newest cached .deb.
resolve_kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
pkg=${LINUX_IMAGE_PKG:-}
[ -n "$pkg" ] || pkg=$(resolve_kernel_package)
if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ] &&
  ! ls "$debs"/linux-image-[0-9]*-amd64_*.deb >/dev/null 2>&1; then
  log "apt-cache knows no linux-image-amd64: apt-get update"
  apt-get update -q >&2 || true
  pkg=$(resolve_kernel_package)
fi
if [ -z "$pkg" ]; then
  cached=$(ls "$debs"/linux-image-[0-9]*-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$cached" ] || die "apt-cache knows no linux-image-amd64 (run apt-get update)"
  pkg=$(basename "${cached%%_*}")
  log "apt-cache has no linux-image-amd64; using the cached $pkg"
fi
deb=$(ls "$debs/${pkg}"_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$deb" ]; then
  size=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | sed -n 's/^Size: //p' | head -n1)
  log "downloading $pkg (${size:+$((size / 1048576)) MB, }once: kept in $debs)"
  # As root apt fetches as the user _apt, which cannot write into a build/
  # owned by root, and warns that it falls back to root ("unsandboxed"): say
  # so from the start. apt checks the package against the signed lists
  # either way.
  sandbox=()
  [ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
  # apt-get download writes into the current directory.
  (cd "$debs" && apt-get download -q "${sandbox[@]}" "$pkg") || die "apt-get download $pkg failed"
  deb=$(ls "$debs/${pkg}"_*_amd64.deb | sort -V | tail -n1)
fi
pkg_version=$(dpkg-deb -f "$deb" Version)

# ------------------------------------------------------------ is work needed?
inputs=("$deb" "$busybox" "$0" tests/linux/init tests/linux/clockbench.c)
up_to_date() {
  local f i
  for f in "$out/vmlinuz" "$out/initrd.img" "$out/manifest.txt"; do
    [ -f "$f" ] || return 1
    for i in "${inputs[@]}"; do [ "$f" -nt "$i" ] || return 1; done
  done
  # The manifest names the .deb it was built from (a pinned other kernel).
  grep -qxF "kernel-deb: $(basename "$deb")" "$out/manifest.txt"
}
if [ $force = 0 ] && up_to_date; then
  log "up to date: $out/vmlinuz $out/initrd.img ($pkg $pkg_version)"
  exit 0
fi

# ------------------------------------------------------------ module closure
# modules.dep lines: "kernel/a/b.ko.xz: kernel/c.ko.xz kernel/d.ko.xz" where
# the list after the colon is already complete (transitive) and ordered so
# that loading it from right to left satisfies every dependency.
# module_closure MODDIR: load_order=(MODULES and their dependencies).
module_closure() {
  local moddir=$1 name line path deps i
  declare -A seen=()
  load_order=()
  for name in "${MODULES[@]}"; do
    line=$(grep -E "(^|/)${name//_/[_-]}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1) ||
      die "module $name is not in $(basename "$moddir")'s modules.dep"
    path=${line%%:*}
    read -r -a deps <<<"${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
      [ -n "${seen[${deps[$i]}]:-}" ] || { seen[${deps[$i]}]=1; load_order+=("${deps[$i]}"); }
    done
    [ -n "${seen[$path]:-}" ] || { seen[$path]=1; load_order+=("$path"); }
  done
}

# ------------------------------------------------------------ unpack + depmod
# The package unpacks to about 400 MB, nearly all of it modules the guest does
# not load: build/linux/root/ keeps only the kernel, modules.dep and the
# modules in the closure of MODULES.
stamp=$root/.unpacked-from
want_stamp="$(basename "$deb") ${MODULES[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_stamp" ] || [ "$deb" -nt "$stamp" ]; then
  log "unpacking $(basename "$deb") (about 400 MB for a moment; the kernel and ${MODULES[*]} are kept)"
  tmp=$out/unpack.tmp
  rm -rf "$root" "$tmp"
  mkdir -p "$tmp"
  dpkg-deb -x "$deb" "$tmp"
  kver=$(ls "$tmp/lib/modules" | head -n1)
  [ -n "$kver" ] && [ -f "$tmp/boot/vmlinuz-$kver" ] || die "no kernel in $deb"
  log "depmod $kver"
  depmod -b "$tmp" "$kver"
  module_closure "$tmp/lib/modules/$kver"
  mkdir -p "$root/boot" "$root/lib/modules/$kver"
  cp "$tmp/boot/vmlinuz-$kver" "$root/boot/"
  cp "$tmp/lib/modules/$kver/modules.dep" "$root/lib/modules/$kver/"
  for path in "${load_order[@]}"; do
    mkdir -p "$(dirname "$root/lib/modules/$kver/$path")"
    cp "$tmp/lib/modules/$kver/$path" "$root/lib/modules/$kver/$path"
  done
  rm -rf "$tmp"
  echo "$want_stamp" >"$stamp"
fi
kver=$(ls "$root/lib/modules" | head -n1)
moddir=$root/lib/modules/$kver
module_closure "$moddir"

# ------------------------------------------------------------ initramfs tree
log "building the initramfs ($kver, busybox $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo '?'))"
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,proc,sys,tmp,run,root,etc,lib/modules/"$kver"}
cp "$busybox" "$stage/bin/busybox"
# One link per applet busybox has (sh, mount, insmod, dmesg, dd, ...).
for applet in $("$busybox" --list-full); do
  mkdir -p "$stage/$(dirname "$applet")"
  [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
install -m 0755 tests/linux/init "$stage/init"
command -v gcc >/dev/null || die "gcc is missing (package gcc, libc6-dev)"
gcc -static -O2 -Wall -Wextra -o "$stage/bin/clockbench" tests/linux/clockbench.c ||
  die "building tests/linux/clockbench.c (static) failed: is libc6-dev installed?"

: >"$stage/lib/modules/load-order"
for path in "${load_order[@]}"; do
  dest=$stage/lib/modules/$kver/${path%.xz}
  dest=${dest%.zst}
  dest=${dest%.gz}
  mkdir -p "$(dirname "$dest")"
  case $path in
    *.ko.xz) command -v xz >/dev/null || die "xz is missing (package xz-utils)"
      xz -dc "$moddir/$path" >"$dest" ;;
    *.ko.zst) command -v zstd >/dev/null || die "zstd is missing (package zstd)"
      zstd -qdc "$moddir/$path" >"$dest" ;;
    *.ko.gz) gzip -dc "$moddir/$path" >"$dest" ;;
    *.ko) cp "$moddir/$path" "$dest" ;;
    *) die "unexpected module file $path" ;;
  esac
  echo "/lib/modules/$kver/${dest#"$stage/lib/modules/$kver/"}" >>"$stage/lib/modules/load-order"
done
echo "$kver" >"$stage/etc/kernel-release"

# ------------------------------------------------------------ cpio + gzip
# /dev/console must exist before /init runs (the kernel opens it for init's
# stdin/stdout); a device node needs root to mknod, so its entry is written
# here by hand (cpio newc: "070701", 13 eight-digit hex fields, name, padding
# to 4 bytes) and the kernel unpacks the two concatenated archives in turn.
newc_entry() { # name mode rdevmajor rdevminor ino
  local name=$1 mode=$2 major=$3 minor=$4 ino=$5 namesize pad
  namesize=$((${#name} + 1))
  printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
    "$ino" "$mode" 0 0 1 0 0 0 0 "$major" "$minor" "$namesize" 0 "$name"
  pad=$(((4 - (110 + namesize) % 4) % 4))
  [ $pad = 0 ] || head -c $pad /dev/zero
}
dev_archive() {
  newc_entry dev $((0040755)) 0 0 1
  newc_entry dev/console $((0020600)) 5 1 2
  newc_entry TRAILER!!! 0 0 0 0
}

epoch=0
find "$stage" -exec touch -h -d "@$epoch" {} +
tmp=$out/initrd.img.tmp
{
  dev_archive
  (cd "$stage" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
    cpio -o -H newc --quiet --reproducible --owner=0:0)
} | gzip -n -9 >"$tmp"
mv -f "$tmp" "$out/initrd.img"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"

{
  echo "kernel-deb: $(basename "$deb")"
  echo "kernel-package: $pkg $pkg_version"
  echo "kernel-release: $kver"
  echo "busybox-static: $(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)"
  echo "modules (load order):"
  sed 's/^/  /' "$stage/lib/modules/load-order"
  echo "vmlinuz-sha256: $(sha256sum "$out/vmlinuz" | cut -d' ' -f1)"
  echo "initrd-sha256: $(sha256sum "$out/initrd.img" | cut -d' ' -f1)"
} >"$out/manifest.txt"
log "built $out/vmlinuz ($(stat -c %s "$out/vmlinuz") bytes) and $out/initrd.img ($(stat -c %s "$out/initrd.img") bytes)"
sed 's/^/linux-guest:   /' "$out/manifest.txt" >&2
