#!/bin/sh
# check_symbols.sh LIB - the shared library must export exactly the symbols listed in
# tests/exported-symbols.txt (one per line, sorted). A new public function means adding
# it there on purpose; a leaked internal symbol fails here.
# The list also names the symbol version node of lib/mpnas.map (e.g. MPNAS_0.1): `nm -D`
# shows a named node as an absolute (A) symbol, and readelf -V as a version definition.
# Every exported function and object must carry one of the listed nodes as its version
# (name@@NODE), so an unversioned (anonymous) script fails here too.
lib=${1:-lib/libmpnas.so}
here=$(dirname "$0")
syms=$(nm -D --defined-only "$lib") || exit 1
actual=$(printf '%s\n' "$syms" | awk '$2 ~ /^[TDBRVWA]$/ {print $3}' | sed 's/@.*//' | sort -u)
expected=$(grep -v '^#' "$here/exported-symbols.txt" | sort -u)
nodes=$(printf '%s\n' "$syms" | awk '$2 == "A" {print $3}')
unversioned=$(printf '%s\n' "$syms" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' |
  while IFS= read -r s; do
    node=${s#*@@}
    if [ "$node" = "$s" ] || ! printf '%s\n' "$nodes" | grep -qxF "$node"; then echo "$s"; fi
  done)
status=0
if [ "$actual" != "$expected" ]; then
  echo "exported symbols differ from tests/exported-symbols.txt:"
  printf '%s\n' "$expected" > /tmp/mpnas-expected.$$
  printf '%s\n' "$actual" > /tmp/mpnas-actual.$$
  diff /tmp/mpnas-expected.$$ /tmp/mpnas-actual.$$
  rm -f /tmp/mpnas-expected.$$ /tmp/mpnas-actual.$$
  status=1
fi
if [ -n "$unversioned" ]; then
  echo "exported symbols without a version node (name@@NODE) of lib/mpnas.map:"
  printf '%s\n' "$unversioned"
  status=1
fi
if [ "$status" -eq 0 ]; then
  echo "exports match tests/exported-symbols.txt ($(printf '%s\n' "$actual" | wc -l) symbols and version nodes, all versioned: $(echo $nodes))"
fi
exit "$status"
