#!/bin/sh
# test_python.sh - the Python wrapper's tests (python/test_mpnas.py) against this build's
# shared library ($LIBMPNAS_DIR/libmpnas.so, set by tests/run.sh) and examples/infer
# ($BUILD/examples/infer, set by `make test`), which the tests use to check that
# predictions made through Python equal the C API's.
#
# Prints the suite's "# RESULT passed failed" line (python/test_mpnas.py prints it).
# Without python3 on PATH ($PYTHON picks another interpreter) the test is SKIPPED and
# counts as 0 passed, 0 failed ("SKIP test_python: ..." says so). Run alone:
# sh tests/test_python.sh (after `make` and `make examples`; LIBMPNAS_DIR and BUILD default
# to lib and the default build folder).
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$(command -v python3 2>/dev/null)}
if [ -z "$python" ]; then
  echo "SKIP test_python: python3 is not on PATH (counted as 0 passed, 0 failed)"
  echo "# RESULT 0 0"
  exit 0
fi
libdir=${LIBMPNAS_DIR:-lib}
case $libdir in /*) ;; *) libdir="$here/$libdir" ;; esac
if [ ! -e "$libdir/libmpnas.so" ]; then
  echo "FAIL test_python: $libdir/libmpnas.so does not exist (run make)"
  echo "# RESULT 0 1"
  exit 1
fi
build=${BUILD:-build/cc-omp}
case $build in /*) ;; *) build="$here/$build" ;; esac
exec "$python" "$here/python/test_mpnas.py" --library "$libdir/libmpnas.so" --infer "$build/examples/infer"
