#!/bin/sh
# test_param_docs.sh - include/mpnas.h's parameter comments, the library's descriptions
# (mpnas_param_bounds, mpnas_param_names) and the Python wrapper's names must agree:
# tests/param_docs.py against this build's shared library ($LIBMPNAS_DIR/libmpnas.so,
# set by tests/run.sh).
#
# Prints the checks' "# RESULT passed failed" line. Without python3 on PATH ($PYTHON
# picks another interpreter) the test is SKIPPED and counts as 0 passed, 0 failed. Run
# alone: sh tests/test_param_docs.sh (after `make`).
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$(command -v python3 2>/dev/null)}
if [ -z "$python" ]; then
  echo "SKIP test_param_docs: python3 is not on PATH (counted as 0 passed, 0 failed)"
  echo "# RESULT 0 0"
  exit 0
fi
libdir=${LIBMPNAS_DIR:-lib}
case $libdir in /*) ;; *) libdir="$here/$libdir" ;; esac
exec "$python" "$here/tests/param_docs.py" --library "$libdir/libmpnas.so" \
  --header "$here/include/mpnas.h"
