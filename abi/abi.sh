#!/bin/sh
# abi.sh check|update LIB - the public ABI baseline (docs/API-STABILITY.md). Run from the
# top folder; `make abi-check` and `make abi-update` call it with the built library.
#
#   update  writes abi/libmpnas.abi (abidw from Debian's abigail-tools: the exported
#           functions and the types of include/ they use; private types dropped) and
#           abi/constants.txt (every `MPNAS_NAME = value` enumerator of include/mpnas.h).
#   check   compares LIB with them. Fails (exit 1) when
#           - LIB has no debug information (DWARF: the default CFLAGS have -g), without
#             which abidiff would compare the symbol names only,
#           - abidiff's exit status has bit 1 (an error; bit 2, a usage error, comes with
#             it),
#           - or bit 8 (ABIDIFF_ABI_INCOMPATIBLE_CHANGE: an exported function or variable
#             was removed),
#           - or bit 4 (ABIDIFF_ABI_CHANGE: a change, e.g. of a parameter or return type,
#             that needs review) when there is more to it than added functions or
#             variables (abidiff is run again with --no-added-syms to tell),
#           - or a constant of abi/constants.txt is missing or has another value (enum
#             constants cross the ABI as int32_t, so abidiff does not see them).
#           Passes when nothing changed or only functions, variables or constants were
#           added (it then says so: run `make abi-update` to take them into the baseline).
set -u
mode=${1:-}
lib=${2:-}
baseline=abi/libmpnas.abi
constants=abi/constants.txt
if [ -z "$lib" ] || { [ "$mode" != check ] && [ "$mode" != update ]; }; then
  echo "usage: sh abi/abi.sh check|update LIB" >&2
  exit 2
fi
for tool in abidw abidiff; do
  command -v $tool >/dev/null 2>&1 || {
    echo "abi: $tool not found (Debian: apt-get install abigail-tools)" >&2
    exit 1
  }
done

header_constants() {
  sed -n 's/^[[:space:]]*\(MPNAS_[A-Z0-9_]*\)[[:space:]]*=[[:space:]]*\(-\{0,1\}[0-9][0-9]*\).*/\1 = \2/p' \
    include/mpnas.h | LC_ALL=C sort
}

if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "abi: $lib has no debug information (build it with -g, as the default CFLAGS do)" >&2
  exit 1
fi

if [ "$mode" = update ]; then
  abidw --headers-dir include --drop-private-types --exported-interfaces-only \
    --drop-undefined-syms --no-show-locs --no-corpus-path --no-comp-dir-path --no-elf-needed \
    --type-id-style hash --out-file "$baseline" "$lib" || exit 1
  header_constants > "$constants"
  echo "abi: wrote $baseline ($(grep -c '<elf-symbol ' "$baseline") functions and variables)" \
    "and $constants ($(wc -l < "$constants") constants) from $lib"
  exit 0
fi

diff_abi() {
  abidiff --headers-dir2 include --drop-private-types --exported-interfaces-only \
    --no-show-locs "$@" "$baseline" "$lib"
}
status=0
report=$(diff_abi 2>&1)
rc=$?
if [ $((rc & 1)) -ne 0 ]; then
  printf '%s\n' "$report"
  echo "abi: FAIL: abidiff could not compare (exit status $rc)"
  status=1
elif [ $((rc & 8)) -ne 0 ]; then
  printf '%s\n' "$report"
  echo "abi: FAIL: incompatible change against $baseline (abidiff exit status $rc)"
  status=1
elif [ $((rc & 4)) -ne 0 ]; then
  printf '%s\n' "$report"
  if diff_abi --no-added-syms >/dev/null 2>&1; then
    echo "abi: compatible: only additions (take them into the baseline: make abi-update)"
  else
    echo "abi: FAIL: a change against $baseline that is not only additions (abidiff exit status $rc)"
    status=1
  fi
fi

changed=$(header_constants | LC_ALL=C comm -23 "$constants" -)
if [ -n "$changed" ]; then
  echo "abi: FAIL: constants of $constants missing or changed in include/mpnas.h:"
  printf '%s\n' "$changed"
  status=1
elif [ -n "$(header_constants | LC_ALL=C comm -13 "$constants" -)" ]; then
  echo "abi: constants added (take them into the baseline: make abi-update)"
fi
[ "$status" -eq 0 ] && echo "abi: ok: $lib keeps the ABI of $baseline and $constants"
exit "$status"
