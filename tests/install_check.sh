#!/bin/sh
# install_check.sh [MAKEVAR=value ...] - `make install` into a staging DESTDIR, twice: with
# the default folders (PREFIX/lib, PREFIX/include) and with a multiarch LIBDIR
# (PREFIX/lib/<triplet>). Each time: exactly the header, both libraries (with soname
# links), mpnas.pc and the mpnas command (PREFIX/bin, which runs) land in the install
# folders under DESTDIR, nothing is written
# outside DESTDIR, mpnas.pc's prefix/libdir/includedir are the install folders, a program
# builds through pkg-config shared and static (`cc -static ... pkg-config --static`) and
# both run; `make uninstall` removes every file again.
# The arguments go to every make call, e.g. `sh tests/install_check.sh OPENMP=0` checks
# the OpenMP-free build (build it first: make OPENMP=0). $CC compiles the program (cc).
set -eu
cc=${CC:-cc}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# PREFIX is a path that must stay untouched: anything written outside DESTDIR lands there.
prefix=$stage/prefix
dest=$stage/dest
fail() { echo "install_check: $*"; exit 1; }

cat > "$stage/hello.c" <<'C'
#include <mpnas.h>
#include <stdio.h>
int main(void) {
  mpnas_context *ctx;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  printf("libmpnas %s\n", mpnas_version_string());
  mpnas_context_free(ctx);
  return mpnas_version_number() == MPNAS_VERSION_NUMBER ? 0 : 1;
}
C

# check_install LIBDIR [make variables...]: LIBDIR is where the libraries must go.
check_install() {
  libdir=$1
  shift
  rm -rf "$dest"
  make -s install DESTDIR="$dest" PREFIX="$prefix" "$@" >/dev/null
  [ ! -e "$prefix" ] || fail "make install $* wrote outside DESTDIR, into $prefix"
  version=$(readlink "$dest$libdir/libmpnas.so.0") || fail "missing $libdir/libmpnas.so.0"
  want=$(printf '%s\n' "$prefix/include/mpnas.h" "$libdir/libmpnas.a" \
    "$libdir/libmpnas.so" "$libdir/libmpnas.so.0" "$libdir/$version" \
    "$libdir/pkgconfig/mpnas.pc" "$prefix/bin/mpnas" | sort)
  got=$(cd "$dest" && find . -type f -o -type l | sed 's|^\.||' | sort)
  [ "$got" = "$want" ] || fail "make install $* installed
$got
instead of
$want"

  # The command is linked with the static library: it runs without LD_LIBRARY_PATH.
  "$dest$prefix/bin/mpnas" --version >/dev/null || fail "the installed mpnas command does not run"

  pc="env PKG_CONFIG_PATH=$dest$libdir/pkgconfig pkg-config"
  [ "$($pc --variable=prefix mpnas)" = "$prefix" ] || fail "mpnas.pc: prefix is not $prefix"
  [ "$($pc --variable=libdir mpnas)" = "$libdir" ] || fail "mpnas.pc: libdir is not $libdir"
  [ "$($pc --variable=includedir mpnas)" = "$prefix/include" ] ||
    fail "mpnas.pc: includedir is not $prefix/include"

  # The sysroot maps the .pc's paths into DESTDIR, as for a staged cross install.
  pc="env PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$dest$libdir/pkgconfig pkg-config"
  "$cc" "$stage/hello.c" -o "$stage/hello" $($pc --cflags --libs mpnas)
  readelf -d "$stage/hello" | grep -q 'NEEDED.*\[libmpnas\.so\.0\]' ||
    fail "the pkg-config (shared) program does not load libmpnas.so.0"
  LD_LIBRARY_PATH="$dest$libdir" "$stage/hello" >/dev/null || fail "the shared program failed"
  # (stderr kept aside: a static libgomp.a makes ld warn about dlopen in static programs)
  "$cc" -static "$stage/hello.c" -o "$stage/hello-static" $($pc --static --cflags --libs mpnas) \
    2>"$stage/static.log" || { cat "$stage/static.log"
    fail "static link through pkg-config --static failed: $($pc --static --libs mpnas)"; }
  ! readelf -d "$stage/hello-static" 2>/dev/null | grep -q NEEDED ||
    fail "the -static program is not static"
  "$stage/hello-static" >/dev/null || fail "the static program failed"

  make -s uninstall DESTDIR="$dest" PREFIX="$prefix" "$@" >/dev/null
  left=$(find "$dest" -type f -o -type l)
  [ -z "$left" ] || fail "make uninstall $* left
$left"
  echo "install_check: ok: $libdir (installed, the mpnas command and shared and static programs built with pkg-config ran, uninstalled)"
}

check_install "$prefix/lib" "$@"
triplet=$("$cc" -dumpmachine)
check_install "$prefix/lib/$triplet" LIBDIR="$prefix/lib/$triplet" "$@"
