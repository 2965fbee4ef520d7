#!/usr/bin/env bash
# make check-layers (run by make test-unit, so by make test): fails when an
# #include points up the layer order, or sideways between two top-level
# folders of the same layer. The order (README.md, "Architecture"); a path
# belongs to the layer of its longest matching prefix:
#
#   0 arch/               x86-64 facts and primitives
#   1 kernel/base/        strong types, lock, log, format, config
#   1 kernel/platform/    the interfaces the hardware back end implements
#   2 hypercall/tlfs/     the TLFS vocabulary
#   3 kernel/             the object model
#   4 synic/              SynIC behaviour and the messaging operations
#   5 hypercall/          hypercall ABI, call table, synthetic-MSR front, CPUID
#   6 synic/services/     microhv's service partitions
#   7 vmx/                portable VT-x logic
#   8 vmx/hw/             target-only VT-x code, the composition root
#   9 boot/               UEFI entry and take-over, ACPI tables
#  10 tests/              anything
#
# Only quoted includes of project paths are checked (<...> are system
# headers). Usage: scripts/check-layers.sh [FILE...] (default: every source
# file under the folders above).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find arch kernel hypercall synic vmx boot tests \
    -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.c' -o -name '*.S' \) | sort)
fi

awk '
BEGIN {
  n = split("arch/:0 kernel/base/:1 kernel/platform/:1 hypercall/tlfs/:2 kernel/:3 synic/:4 " \
            "hypercall/:5 synic/services/:6 vmx/:7 vmx/hw/:8 boot/:9 tests/:10", entries, " ")
  for (i = 1; i <= n; ++i) {
    split(entries[i], kv, ":")
    prefix[i] = kv[1]
    level[i] = kv[2]
  }
  bad = 0
  checked = 0
}
# Layer of a path: the longest matching prefix; -1 when none matches.
function layer_of(path,    i, best, best_len) {
  best = -1
  best_len = 0
  for (i = 1; i <= n; ++i) {
    if (index(path, prefix[i]) == 1 && length(prefix[i]) > best_len) {
      best = level[i]
      best_len = length(prefix[i])
    }
  }
  return best
}
function top_of(path) {
  return substr(path, 1, index(path, "/") - 1)
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
  inc = $0
  sub(/^[^"]*"/, "", inc)
  sub(/".*$/, "", inc)
  to = layer_of(inc)
  if (to < 0) next
  from = layer_of(FILENAME)
  ++checked
  if (to > from) {
    printf "%s:%d: includes %s (layer %d) from layer %d: includes must point down\n",
           FILENAME, FNR, inc, to, from
    ++bad
  } else if (to == from && top_of(inc) != top_of(FILENAME)) {
    printf "%s:%d: includes %s: %s/ and %s/ are the same layer (%d) and must not include each other\n",
           FILENAME, FNR, inc, top_of(FILENAME), top_of(inc), to
    ++bad
  }
}
END {
  if (bad > 0) {
    printf "check-layers: %d upward or sideways include(s); see the layer order in README.md\n", bad
    exit 1
  }
  printf "check-layers: %d includes in %d files point down the layers\n", checked, ARGC - 1
}
' "${files[@]}"
