#!/bin/sh
# check_symbols.sh LIB - the shared library must export exactly the symbols listed in
# tests/exported-symbols.txt (one per line, sorted). A new public function means adding
# it there on purpose; a leaked internal symbol fails here.
lib=${1:-lib/libmpnas.so}
here=$(dirname "$0")
actual=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u)
expected=$(grep -v '^#' "$here/exported-symbols.txt" | sort -u)
if [ "$actual" = "$expected" ]; then
  echo "exports match tests/exported-symbols.txt ($(printf '%s\n' "$actual" | wc -l) symbols)"
  exit 0
fi
echo "exported symbols differ from tests/exported-symbols.txt:"
printf '%s\n' "$expected" > /tmp/mpnas-expected.$$
printf '%s\n' "$actual" > /tmp/mpnas-actual.$$
diff /tmp/mpnas-expected.$$ /tmp/mpnas-actual.$$
rm -f /tmp/mpnas-expected.$$ /tmp/mpnas-actual.$$
exit 1
