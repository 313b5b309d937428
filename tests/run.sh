#!/bin/sh
# run.sh - run each test program given, add up their "# RESULT passed failed" lines and
# print the total as "N passed, N failed". A program that crashes or prints no result
# counts as one failure. $RUN prefixes each program (e.g. qemu-aarch64 ...); a *.sh test
# is run with sh, without $RUN.
passed=0
failed=0
for t in "$@"; do
  name=$(basename "$t")
  echo "== $name"
  case $t in
    *.sh) out=$(LIBMPNAS_DIR="$LIB_OUT" sh "$t" 2>&1) ;;
    *) out=$(LIBMPNAS_DIR="$LIB_OUT" $RUN "$t" 2>&1) ;;
  esac
  status=$?
  printf '%s\n' "$out" | grep -v '^# RESULT'
  result=$(printf '%s\n' "$out" | sed -n 's/^# RESULT \([0-9]*\) \([0-9]*\)$/\1 \2/p' | tail -n 1)
  if [ -z "$result" ]; then
    echo "FAIL $name: exited with status $status and printed no result"
    failed=$((failed + 1))
    continue
  fi
  p=${result% *}
  f=${result#* }
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with status $status"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
