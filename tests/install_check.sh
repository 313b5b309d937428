#!/bin/sh
# install_check.sh - `make install` into a staging DESTDIR puts the header, both
# libraries (with soname links) and mpnas.pc where PREFIX says; a program builds against
# them through pkg-config and runs; `make uninstall` removes every file again.
set -eu
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
prefix=/opt/mpnas-test
make -s install DESTDIR="$stage" PREFIX="$prefix" >/dev/null
root="$stage$prefix"
for f in include/mpnas.h lib/libmpnas.a lib/libmpnas.so lib/libmpnas.so.0 lib/pkgconfig/mpnas.pc; do
  [ -e "$root/$f" ] || { echo "install_check: missing $f"; exit 1; }
done
grep -q "^prefix=$prefix\$" "$root/lib/pkgconfig/mpnas.pc" || { echo "install_check: bad prefix in mpnas.pc"; exit 1; }
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
flags=$(PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_PATH="$root/lib/pkgconfig" pkg-config --cflags --libs mpnas)
cc "$stage/hello.c" -o "$stage/hello" $flags
LD_LIBRARY_PATH="$root/lib" "$stage/hello"
make -s uninstall DESTDIR="$stage" PREFIX="$prefix" >/dev/null
left=$(find "$root" -type f -o -type l | wc -l)
[ "$left" -eq 0 ] || { echo "install_check: uninstall left $left files"; find "$root"; exit 1; }
echo "install_check: ok (installed, built with pkg-config, ran, uninstalled)"
