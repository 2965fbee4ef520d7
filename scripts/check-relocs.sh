#!/usr/bin/env bash
# Refuses an EFI image whose relocations GNU-EFI's loader would not apply.
# GNU-EFI's self-relocator handles only R_X86_64_RELATIVE and silently skips
# the rest, leaving NULL pointers in the running image. The usual cause is an
# ODR-used `inline constexpr` object at namespace scope: give it internal
# linkage (`constexpr` in a .cpp, or `static constexpr`).
set -euo pipefail
bad=$(readelf -rW "$1" | awk '$3 ~ /^R_X86_64/ && $3 != "R_X86_64_RELATIVE"' | c++filt)
if [ -n "$bad" ]; then
  echo "error: $1 has relocations GNU-EFI does not apply; give these objects internal linkage:" >&2
  sed 's/^/  /' <<<"$bad" >&2
  exit 1
fi
