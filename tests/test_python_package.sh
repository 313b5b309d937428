#!/bin/sh
# test_python_package.sh - the Python package installed as a user installs it:
# `make install PREFIX=<a staging prefix>` (and once more with DESTDIR), a venv (python3
# -m venv --system-site-packages), `pip install --no-build-isolation --no-index` of
# python/ (offline), then tests/python_package.py run by the venv's python from a folder
# outside the source tree with MPNAS_LIBRARY unset and PKG_CONFIG_PATH at the staged
# mpnas.pc: the package imports from the venv, finds the staged library through
# pkg-config (the DESTDIR one through PKG_CONFIG_SYSROOT_DIR too), runs a tiny search and
# training on images read by mpnas.image_folder, and numpy results (the default when numpy is installed).
#
# The interpreter: $PYTHON, else the first of python3 (PATH) and /usr/bin/python3 whose
# venv has pip, setuptools and wheel (Debian: python3-venv, python3-pip,
# python3-setuptools, python3-wheel; .ci/run installs them). Without one the test is
# SKIPPED and counts as 0 passed, 0 failed. The install runs with the make variables of
# the `make test` that runs this (MAKEFLAGS, LIB_OUT, BUILD), so it installs the build
# under test; alone: sh tests/test_python_package.sh after `make`.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
skip() { echo "SKIP test_python_package: $* (counted as 0 passed, 0 failed)"; echo "# RESULT 0 0"; exit 0; }
fail() { echo "FAIL test_python_package: $*"; echo "# RESULT 0 1"; exit 1; }

venv=$tmp/venv
python=
for cand in ${PYTHON:-python3 /usr/bin/python3}; do
  command -v "$cand" >/dev/null 2>&1 || continue
  "$cand" -c "import wheel" >/dev/null 2>&1 || continue  # quick: before making a venv
  rm -rf "$venv"
  "$cand" -m venv --system-site-packages "$venv" >/dev/null 2>&1 || continue
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || continue
  "$venv/bin/python" -c "import setuptools, wheel" >/dev/null 2>&1 || continue
  python=$cand
  break
done
[ -n "$python" ] || skip "no python3 whose venv has pip, setuptools and wheel (Debian: apt-get install python3-venv python3-pip python3-setuptools python3-wheel)"

# The calling make's jobserver pipe is not ours: drop it, keep its variables (CC, OPENMP).
MAKEFLAGS=$(printf '%s' "${MAKEFLAGS:-}" | sed 's/--jobserver-[a-z]*=[^ ]*//g')
export MAKEFLAGS
prefix=$tmp/prefix dest=$tmp/dest
for where in "PREFIX=$prefix DESTDIR=" "PREFIX=/usr/local DESTDIR=$dest"; do
  # shellcheck disable=SC2086 # $where is two assignments
  make -s -C "$here" install $where ${LIB_OUT:+LIB_OUT="$LIB_OUT"} ${BUILD:+BUILD="$BUILD"} \
    >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "make install $where"; }
done

# The package's sources only (no build output, no bundled library), installed offline.
mkdir "$tmp/src"
cp -R "$here/python/pyproject.toml" "$here/python/mpnas" "$tmp/src/"
rm -rf "$tmp/src/mpnas/__pycache__" "$tmp/src/mpnas"/libmpnas.so*
"$venv/bin/python" -m pip install --no-build-isolation --no-index --no-cache-dir \
  --disable-pip-version-check -q "$tmp/src" >"$tmp/log" 2>&1 ||
  { cat "$tmp/log"; fail "pip install of python/ into a venv of $python"; }

echo "venv of $python, library installed with make install PREFIX=$prefix"
cp "$here/tests/python_package.py" "$tmp/"
cd "$tmp" || fail "cd $tmp"
unset MPNAS_LIBRARY PYTHONPATH
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} \
  "$venv/bin/python" python_package.py --venv "$venv" --libdir "$prefix/lib" \
  --destdir "$dest" --destdir-libdir /usr/local/lib
