#!/bin/sh
# test_layers.sh - the layer map holds in this build: no call or include up the stack, no
# cycle between source files, every path a comment names exists (tests/check_layers.py
# on $BUILD/obj, set by tests/run.sh; needs python3 and nm).
#
# Without python3 or nm the test is SKIPPED and counts as 0 passed, 0 failed. Run alone:
# BUILD=build sh tests/test_layers.sh (after `make`).
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$(command -v python3 2>/dev/null)}
if [ -z "$python" ] || ! command -v nm >/dev/null 2>&1; then
  echo "SKIP test_layers: python3 or nm is not on PATH (counted as 0 passed, 0 failed)"
  echo "# RESULT 0 0"
  exit 0
fi
build=${BUILD:-build}
case $build in /*) ;; *) build="$here/$build" ;; esac
cd "$here" && exec "$python" tests/check_layers.py "$build/obj"
