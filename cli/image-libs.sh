#!/bin/sh
# image-libs.sh OUT - which image libraries the mpnas command can use with this $CC:
# libpng and libjpeg(-turbo), each when pkg-config knows it AND a test program links
# with its flags (a cross compiler cannot use the host's). Writes OUT with two lines:
# the compile flags (-DMPNAS_CLI_PNG, -DMPNAS_CLI_JPEG and the include folders), then the
# link flags. Called by the Makefile once per build configuration.
set -u
out=$1
cc=${CC:-cc}
pkg=${PKG_CONFIG:-pkg-config}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cflags=""
libs=""
found=""
missing=""

# try NAME PACKAGE DEFINE PROGRAM
try() {
  flags=$($pkg --cflags "$2" 2>/dev/null) && link=$($pkg --libs "$2" 2>/dev/null) &&
    printf '%s\n' "$4" > "$tmp/t.c" &&
    $cc "$tmp/t.c" -o "$tmp/t" $flags $link >/dev/null 2>&1
  if [ $? -eq 0 ]; then
    cflags="$cflags -D$3 $flags"
    libs="$libs $link"
    found="$found $1"
  else
    missing="$missing $1"
  fi
}

try PNG libpng MPNAS_CLI_PNG '#include <png.h>
int main(void) { return png_access_version_number() == 0; }'
try JPEG libjpeg MPNAS_CLI_JPEG '#include <stdio.h>
#include <jpeglib.h>
int main(void) { struct jpeg_error_mgr e; return jpeg_std_error(&e) == 0; }'

printf '%s\n%s\n' "$cflags" "$libs" > "$out"
if [ -n "$missing" ]; then
  echo "  mpnas command: image formats:${found:- none}; without$missing (libpng-dev, libjpeg-dev not found for $cc)"
fi
