#!/usr/bin/python3
"""Build the held-out set (four domains MDD-6 does not use) as 32x32 uint8 IDX files.

Called by tools/data/make_heldout.sh after it has fetched and unpacked the sources:

    build_heldout.py --cache data/cache --out data/heldout [--domains digits8,cards,flags,iconthemes]

The held-out set exists to check the library's defaults on domains they were not chosen
on (tools/data/README.md, "Held-out set"). Its sources are packages that MDD-6 does not
use; its layout is MDD-6's (build_mdd6.py; the helpers both use are in idx_common.py):

    <out>/<domain>/{train,test}-{images,labels}.idx, classes.txt, and per domain a list
    of every source looked at (kept with its side, or dropped with the reason).

Inputs (all unpacked under --cache, the cache that make_data.sh also uses):
    root/<debian-package>/...            `dpkg -x` of each Debian package
    npm/<name>-<version>/package/...     `tar xzf` of each `npm pack` tarball

SVG files are rendered with librsvg through PyGObject (Debian's python3-gi,
gir1.2-rsvg-2.0, python3-gi-cairo); everything else is numpy and PIL. Everything is
deterministic: file lists are sorted, rendering sizes are fixed, splits and sample order
come from SHA-256 of names, and nothing depends on time, locale or a random state.
"""

import csv
import gzip
import json
import os
import re
import sys
import time
from configparser import RawConfigParser

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx_common import (SIZE, SourceError, composite_on_white, must_exist,  # noqa: E402
                        on_test_side, package_lines, parse_args, save_domain, sha256_hex,
                        shuffled, tool_versions, write_manifest)

DOMAINS = ("digits8", "cards", "flags", "iconthemes")
SUPER = 4               # SVGs are rendered at SUPER x 32 px and area-averaged down to 32


# ---------------------------------------------------------------------------------------------
# rendering helpers

_rsvg = None


def rsvg():
    """(Rsvg, cairo) modules, imported on first use (only the SVG domains need them)."""
    global _rsvg
    if _rsvg is None:
        import gi
        gi.require_version("Rsvg", "2.0")
        from gi.repository import Rsvg
        import cairo
        _rsvg = (Rsvg, cairo)
    return _rsvg


def svg_handle(path):
    """An Rsvg.Handle of an .svg or .svgz file."""
    Rsvg, _ = rsvg()
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return Rsvg.Handle.new_from_data(data)
    except Exception as e:  # noqa: BLE001 - GLib.Error
        raise SourceError("%s: librsvg cannot read it (%s)" % (path, str(e).strip()))


def _surface_rgb(surface, w, h):
    """cairo ARGB32 surface (premultiplied, native-endian BGRA) -> h x w x 3 RGB on white."""
    surface.flush()
    stride = surface.get_stride()
    a = np.ndarray((h, stride // 4, 4), dtype=np.uint8, buffer=surface.get_data())[:, :w]
    if sys.byteorder != "little":
        a = a[..., ::-1]
    a = a.astype(np.int32)
    alpha = a[..., 3:4]
    # premultiplied colour c over white: c + (255 - alpha), exact in integers
    rgb = a[..., [2, 1, 0]] + (255 - alpha)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def area_down(rgb, factor=SUPER):
    """Area average of factor x factor blocks, rounded half up (integer arithmetic)."""
    h, w, c = rgb.shape
    s = rgb.reshape(h // factor, factor, w // factor, factor, c).astype(np.int32).sum(axis=(1, 3))
    n = factor * factor
    return ((s + n // 2) // n).astype(np.uint8)


def svg_size(handle):
    """The document's size in pixels (its width/height, else its viewBox)."""
    ok, dw, dh = handle.get_intrinsic_size_in_pixels()
    if not ok or dw <= 0 or dh <= 0:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            dim = handle.get_dimensions()
        dw, dh = float(dim.width), float(dim.height)
    if dw <= 0 or dh <= 0:
        raise SourceError("an SVG document without a size")
    return float(dw), float(dh)


def render_svg_fill(handle):
    """Render a whole SVG document stretched to fill SUPER*32 px square, then area-average
    it to 32 x 32. Transparency is composited on white."""
    Rsvg, cairo = rsvg()
    n = SIZE * SUPER
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, n, n)
    cr = cairo.Context(surface)
    dw, dh = svg_size(handle)
    vp = Rsvg.Rectangle()
    vp.x, vp.y, vp.width, vp.height = 0.0, 0.0, dw, dh
    cr.scale(n / dw, n / dh)
    handle.render_document(cr, vp)
    return area_down(_surface_rgb(surface, n, n))


def layer_rect(handle, layer, shrink=1.0):
    """Logical (x, y, w, h) of element `layer` in document pixels, or None if it is empty
    (for example an element that only lives in <defs>). librsvg measures the layer in a
    viewport of the document's size times `shrink`; its answer is in document units all
    the same (_kde_deck checks that), and heavy filters are evaluated far faster in a
    small viewport."""
    Rsvg, _ = rsvg()
    dw, dh = svg_size(handle)
    vp = Rsvg.Rectangle()
    vp.x, vp.y, vp.width, vp.height = 0.0, 0.0, dw * shrink, dh * shrink
    try:
        ok, _ink, log = handle.get_geometry_for_layer(layer, vp)
    except Exception:  # noqa: BLE001 - GLib.Error: no such element
        return None
    if not ok or log.width <= 0.5 or log.height <= 0.5:
        return None
    return (log.x, log.y, log.width, log.height)


def load_raster(path):
    """A PNG (or other raster) as RGBA uint8."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def raster_fill(rgba):
    """RGBA H x W x 4 -> 32 x 32 x 3: composited on white, stretched to fill (Lanczos)."""
    rgb = composite_on_white(rgba)
    if rgb.shape[:2] != (SIZE, SIZE):
        rgb = np.asarray(Image.fromarray(rgb, "RGB").resize((SIZE, SIZE), Image.LANCZOS))
    return np.ascontiguousarray(rgb)


def write_report(out, domain, fname, header, lines):
    with open(os.path.join(out, domain, fname), "w", encoding="utf-8", newline="\n") as f:
        f.write(header + "\n")
        for line in lines:
            f.write(line + "\n")


# ---------------------------------------------------------------------------------------------
# digits8: scikit-learn's copy of the UCI optical handwritten digits (8 x 8, 0..16)

DIGITS_FILE = ("python3-sklearn", "usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz")
# Every writer filled in the same preprinted form, so the labels repeat one sequence per
# form: it starts with 0-9 three times and ends with ...90898. A form starts where that
# opening is found or right after that ending (each catches the forms where the other is
# damaged); the 1,797 rows are 14 forms of 122-130 digits in file order.
FORM_START = "0123456789012345678901234567890"
FORM_END = "90898"
DIGITS_FORMS = 14
DIGITS_TEST_FORM_MOD = 4    # form k (0-based, file order) is test when k % 4 == 3


def build_digits8(cache, out):
    path = must_exist(os.path.join(cache, "root", DIGITS_FILE[0], DIGITS_FILE[1]),
                      "scikit-learn digits file")
    with gzip.open(path, "rt", encoding="ascii") as f:
        rows = [[int(v) for v in r] for r in csv.reader(f) if r]
    arr = np.asarray(rows, dtype=np.int64)
    if arr.shape != (1797, 65) or arr[:, :64].min() < 0 or arr[:, :64].max() > 16 \
            or arr[:, 64].min() < 0 or arr[:, 64].max() > 9:
        raise SourceError("%s: expected 1797 rows of 64 values in 0..16 and a digit" % path)
    labels = "".join(str(int(v)) for v in arr[:, 64])
    starts = {0}
    starts.update(m.start() for m in re.finditer("(?=%s)" % FORM_START, labels))
    starts.update(m.end() for m in re.finditer(FORM_END, labels))
    starts.discard(len(labels))
    bounds = sorted(starts) + [len(labels)]
    forms = list(zip(bounds, bounds[1:]))
    if len(forms) != DIGITS_FORMS or min(b - a for a, b in forms) < 100:
        raise SourceError("%s: expected %d forms of ~130 digits, found %s"
                          % (path, DIGITS_FORMS, [b - a for a, b in forms]))
    pixels = (arr[:, :64] * 255 + 8) // 16  # 0..16 -> 0..255, rounded half up
    train, test, report = [], [], []
    for k, (a, b) in enumerate(forms):
        is_test = k % DIGITS_TEST_FORM_MOD == DIGITS_TEST_FORM_MOD - 1
        report.append("%s form %2d: rows %4d-%4d (%d digits)"
                      % ("test " if is_test else "train", k, a, b - 1, b - a))
        for i in range(a, b):
            small = Image.fromarray(pixels[i].reshape(8, 8).astype(np.uint8), "L")
            img = np.asarray(small.resize((SIZE, SIZE), Image.BICUBIC))
            (test if is_test else train).append(("row%04d" % i, img, int(arr[i, 64])))
    info = save_domain(out, "digits8", [str(d) for d in range(10)], shuffled(train),
                       shuffled(test), 1)
    write_report(out, "digits8", "forms.txt",
                 "# digits8: the 14 forms of sklearn's digits.csv.gz (file order) and their side",
                 report)
    return info


# ---------------------------------------------------------------------------------------------
# cards: French-suited playing-card decks of AisleRiot (gnome-cards-data) and KDE
# (kdegames-card-data-kf5), one class per rank

CARD_RANKS = ["A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K"]
CARD_SUITS = ["club", "diamond", "heart", "spade"]   # AisleRiot's grid rows, in this order
KDE_RANK_IDS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "jack", "queen", "king"]
AISLERIOT_DIR = ("gnome-cards-data", "usr/share/aisleriot/cards")
KDE_DIR = ("kdegames-card-data-kf5", "usr/share/carddecks")
# Decks that are not French-suited with the 13 ranks A-K, so have no place in these classes.
CARD_SKIP = {
    "gnome-cards-data/swiss-xvii.svgz": "Swiss suits (acorns, bells, roses, shields)",
    "kdegames-card-data-kf5/svg-xskat-german/german.svgz": "German suits, 32-card skat deck",
    "kdegames-card-data-kf5/svg-future/future.svgz": "landscape cards ranked 0-C, not A-K",
}
# Decks of one design (the same deck in both packages, 4-colour, bitmap or skat variants of
# one deck) are one family, kept on one side of the split: decks whose 12 court cards (J, Q,
# K) differ by less than CARD_FAMILY_MAD grey levels on average (mean |difference| of the
# 32 x 32 grey images), joined by single linkage. Same designs measure 0.7-25 (Berlin /
# Lattmann 25), different designs 29.8 and up.
CARD_FAMILY_MAD = 27.0
CARD_COPY_MAD = 1.0     # a deck whose 52 cards differ from a kept deck's by < 1 level is a copy
CARDS_TEST_EVERY = 4    # families sorted by the SHA-256 of their first deck: every 4th is test


def render_svg_region(handle, region, scale):
    """Render the area `region` = (x, y, w, h) (document pixels) of a whole SVG document at
    `scale` output pixels per document pixel, composited on white; returns H x W x 3."""
    Rsvg, cairo = rsvg()
    x, y, w, h = region
    pw, ph = int(np.ceil(w * scale)), int(np.ceil(h * scale))
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, pw, ph)
    cr = cairo.Context(surface)
    dw, dh = svg_size(handle)
    vp = Rsvg.Rectangle()
    vp.x, vp.y, vp.width, vp.height = 0.0, 0.0, float(dw), float(dh)
    cr.scale(scale, scale)
    cr.translate(-x, -y)
    handle.render_document(cr, vp)
    return _surface_rgb(surface, pw, ph)


def _aisleriot_deck(path):
    """AisleRiot themes are a 13 x 5 grid: rows clubs, diamonds, hearts, spades, then
    jokers and back; columns A, 2..10, J, Q, K. The grid is rendered once with every cell
    stretched to 128 x 128 px, then each cell is area-averaged to 32 x 32. Returns 52
    images (suit-major)."""
    Rsvg, cairo = rsvg()
    h = svg_handle(path)
    dw, dh = svg_size(h)
    n = SIZE * SUPER
    surface = cairo.ImageSurface(cairo.FORMAT_ARGB32, 13 * n, 4 * n)
    cr = cairo.Context(surface)
    vp = Rsvg.Rectangle()
    vp.x, vp.y, vp.width, vp.height = 0.0, 0.0, float(dw), float(dh)
    cr.scale(13 * n / dw, 5 * n / dh)
    h.render_document(cr, vp)
    grid = _surface_rgb(surface, 13 * n, 4 * n)
    return [area_down(np.ascontiguousarray(grid[s * n:(s + 1) * n, r * n:(r + 1) * n]))
            for s in range(4) for r in range(13)]


KDE_CARD_PX = 128       # KDE decks are rendered once with the median card 128 px tall


def _kde_deck(path):
    """KDE decks name each card's element <rank>_<suit> (1..10, jack, queen, king). The
    document is rendered once (the median card KDE_CARD_PX tall); each card's logical
    rectangle is cut out of it and area-averaged (PIL's box filter) to 32 x 32."""
    h = svg_handle(path)
    # Measure in a 1/16 viewport (fast) when that gives the full-size answer.
    first = "#%s_%s" % (KDE_RANK_IDS[0], CARD_SUITS[0])
    shrink = 1.0 / 16
    full = layer_rect(h, first)
    small = layer_rect(h, first, shrink)
    if full is None or small is None or \
            max(abs(u - v) for u, v in zip(full, small)) > 1e-6 * max(svg_size(h)):
        shrink = 1.0
    rects = []
    for s in CARD_SUITS:
        for r in KDE_RANK_IDS:
            layer = "#%s_%s" % (r, s)
            rect = layer_rect(h, layer, shrink)
            if rect is None:
                return None, "element %s missing or empty for librsvg" % layer
            rects.append(rect)
    scale = KDE_CARD_PX / float(np.median([r[3] for r in rects]))
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    sheet = render_svg_region(h, (x0, y0, x1 - x0, y1 - y0), scale)
    images = []
    for x, y, w, hh in rects:
        left, top = int(round((x - x0) * scale)), int(round((y - y0) * scale))
        right, bottom = int(round((x + w - x0) * scale)), int(round((y + hh - y0) * scale))
        crop = Image.fromarray(np.ascontiguousarray(sheet[top:bottom, left:right]), "RGB")
        images.append(np.asarray(crop.resize((SIZE, SIZE), Image.BOX)))
    return images, None


def card_decks(cache):
    """Sorted (key, path) of every deck file: AisleRiot's *.svgz, KDE's svg-*/*.svgz."""
    decks = []
    base = must_exist(os.path.join(cache, "root", AISLERIOT_DIR[0], AISLERIOT_DIR[1]),
                      "AisleRiot card themes")
    for fn in sorted(os.listdir(base)):
        if fn.endswith(".svgz") or fn.endswith(".svg"):
            decks.append(("%s/%s" % (AISLERIOT_DIR[0], fn), os.path.join(base, fn)))
    base = must_exist(os.path.join(cache, "root", KDE_DIR[0], KDE_DIR[1]), "KDE card decks")
    for d in sorted(os.listdir(base)):
        if not d.startswith("svg-") or not os.path.isdir(os.path.join(base, d)):
            continue
        for fn in sorted(os.listdir(os.path.join(base, d))):
            if fn.endswith(".svgz") or fn.endswith(".svg"):
                decks.append(("%s/%s/%s" % (KDE_DIR[0], d, fn), os.path.join(base, d, fn)))
    return decks


def build_cards(cache, out):
    report = []
    kept = []   # (key, images)
    for key, path in card_decks(cache):
        if key in CARD_SKIP:
            report.append("drop  %s: %s" % (key, CARD_SKIP[key]))
            continue
        if key.startswith(AISLERIOT_DIR[0] + "/"):
            images, why = _aisleriot_deck(path), None
        else:
            images, why = _kde_deck(path)
        if images is None:
            report.append("drop  %s: %s" % (key, why))
            continue
        blobs = [im.tobytes() for im in images]
        if len(set(blobs)) != len(blobs):
            report.append("drop  %s: cards not all distinct" % key)
            continue
        stack = np.stack(images).astype(np.int16)
        copy = [k for k, imgs in kept
                if float(np.abs(np.stack(imgs).astype(np.int16) - stack).mean()) < CARD_COPY_MAD]
        if copy:
            report.append("drop  %s: a copy of %s" % (key, copy[0]))
            continue
        kept.append((key, images))
    court = [i for i in range(52) if i % 13 >= 10]
    grey = [np.stack([imgs[i].astype(np.float64).mean(axis=2) for i in court])
            for _, imgs in kept]
    parent = list(range(len(kept)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i
    links = []
    for i in range(len(kept)):
        for j in range(i + 1, len(kept)):
            mad = float(np.abs(grey[i] - grey[j]).mean())
            if mad < CARD_FAMILY_MAD:
                links.append((kept[i][0], kept[j][0], mad))
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    families = sorted(set(kept[find(i)][0] for i in range(len(kept))),
                      key=lambda k: (sha256_hex(k.encode("utf-8")), k))
    test_families = set(families[CARDS_TEST_EVERY - 1::CARDS_TEST_EVERY])
    train, test, sides = [], [], {}
    for i, (key, images) in enumerate(kept):
        family = kept[find(i)][0]
        is_test = family in test_families
        sides[key] = ("test " if is_test else "train", family)
        for idx, img in enumerate(images):
            s, r = divmod(idx, 13)
            item = ("%s/%s_%s" % (key, CARD_RANKS[r], CARD_SUITS[s]), img, r)
            (test if is_test else train).append(item)
    info = save_domain(out, "cards", CARD_RANKS, shuffled(train), shuffled(test), 3)
    lines = []
    for key, _ in kept:
        side, family = sides[key]
        lines.append("%s %s%s" % (side, key, "" if family == key else "   (family of %s)" % family))
    lines += [l for l in report]
    lines += ["near  %s ~ %s: court cards differ by %.1f grey levels" % l for l in links]
    write_report(out, "cards", "decks.txt",
                 "# cards: %d deck files, %d kept (%d train, %d test) in %d families (decks "
                 "whose court cards differ by < %.0f grey levels on average)"
                 % (len(kept) + len(report), len(kept), len(train) // 52, len(test) // 52,
                    len(families), CARD_FAMILY_MAD), lines)
    print("            (%d decks kept of %d; see cards/decks.txt)"
          % (len(kept), len(kept) + len(report)), flush=True)
    return info


# ---------------------------------------------------------------------------------------------
# flags: national and regional flags from five artworks, one class per region

FLAG_ICONS = "flag-icons-7.5.0"
SVG_COUNTRY_FLAGS = "svg-country-flags-1.2.10"
FLAG_REGIONS = ["Africa", "Americas", "Asia", "Europe", "Oceania"]
FLAG_CONTINENT = {"Africa": "Africa", "North America": "Americas", "South America": "Americas",
                  "Asia": "Asia", "Europe": "Europe", "Oceania": "Oceania"}
FLAGS_TEST_MOD = 4      # a code is test when the SHA-256 of the code is 0 mod 4 (~25%)
# Territories that fly their state's flag (flag-icons' 4x3 pictures differ by < FLAG_SAME_MAD
# grey levels on average, e.g. re, gp, yt = fr) would put one picture on both sides and in
# several regions: such a group is kept once, under the state's code below; a group without
# one of these codes is kept under its first code if its regions agree, else dropped.
FLAG_SAME_MAD = 4.0
FLAG_STATES = ("au", "fr", "gb", "nl", "no", "us")


def flag_sources(cache):
    """(source name, function code -> path or None) for the five artworks."""
    fi = os.path.join(cache, "npm", FLAG_ICONS, "package", "flags")
    scf = os.path.join(cache, "npm", SVG_COUNTRY_FLAGS, "package", "svg")
    iso = os.path.join(cache, "root", "iso-flags-svg", "usr", "share", "iso-flags-svg")
    fam = os.path.join(cache, "root", "famfamfam-flag-png", "usr", "share", "flags",
                       "countries", "16x11")
    for d in (fi, scf, iso, fam):
        must_exist(d, "flag folder")

    def f(fmt):
        return lambda code: fmt % code
    return [("flag-icons-4x3", f(os.path.join(fi, "4x3", "%s.svg"))),
            ("flag-icons-1x1", f(os.path.join(fi, "1x1", "%s.svg"))),
            ("svg-country-flags", f(os.path.join(scf, "%s.svg"))),
            ("iso-flags-4x3", f(os.path.join(iso, "country-4x3", "%s.svg"))),
            ("iso-flags-squared", f(os.path.join(iso, "country-squared", "%s.svg"))),
            ("famfamfam", f(os.path.join(fam, "%s.png")))]


def build_flags(cache, out):
    table_path = must_exist(os.path.join(cache, "npm", FLAG_ICONS, "package", "country.json"),
                            "flag-icons country.json")
    with open(table_path, "rb") as f:
        table = json.load(f)
    codes = {}
    report = []
    for e in sorted(table, key=lambda e: e["code"]):
        cont = e.get("continent")
        if cont not in FLAG_CONTINENT:
            report.append("drop  %-7s %s: continent %s" % (e["code"], e["name"], cont))
            continue
        codes[e["code"]] = (FLAG_REGIONS.index(FLAG_CONTINENT[cont]), e["name"])
    sources = flag_sources(cache)
    # One flag, several codes: compare flag-icons' 4x3 pictures (single linkage).
    ref = {c: render_svg_fill(svg_handle(sources[0][1](c))).astype(np.int16)
           for c in sorted(codes) if os.path.isfile(sources[0][1](c))}
    group = {c: c for c in codes}
    refs = sorted(ref)
    for i, x in enumerate(refs):
        for y in refs[i + 1:]:
            if float(np.abs(ref[x] - ref[y]).mean()) < FLAG_SAME_MAD:
                gx, gy = group[x], group[y]
                for c in group:
                    if group[c] == gy:
                        group[c] = gx
    members = {}
    for c in sorted(codes):
        members.setdefault(group[c], []).append(c)
    for g, cs in sorted(members.items()):
        if len(cs) == 1:
            continue
        owners = [c for c in cs if c in FLAG_STATES]
        regions = set(codes[c][0] for c in cs)
        keep = owners[0] if len(owners) == 1 else (cs[0] if len(regions) == 1 else None)
        for c in cs:
            if c != keep:
                report.append("drop  %-7s %s: the same flag as %s" % (
                    c, codes[c][1], keep or "%s (regions differ)" % ", ".join(x for x in cs if x != c)))
                del codes[c]
    train, test, seen = [], [], {}
    for code in sorted(codes):
        lab, name = codes[code]
        is_test = on_test_side(code, FLAGS_TEST_MOD)
        got = []
        for src, where in sources:
            p = where(code)
            if not os.path.isfile(p):
                continue
            if src == sources[0][0] and code in ref:
                img = ref[code].astype(np.uint8)
            elif p.endswith(".png"):
                img = raster_fill(load_raster(p))
            else:
                img = render_svg_fill(svg_handle(p))
            blob = img.tobytes()
            if blob in seen:
                report.append("drop  %-7s %s: same image as %s" % (code, src, seen[blob]))
                continue
            seen[blob] = "%s %s" % (code, src)
            got.append(src)
            (test if is_test else train).append(("%s/%s" % (code, src), img, lab))
        report.append("%s %-7s %-9s %s: %s" % ("test " if is_test else "train", code,
                                              FLAG_REGIONS[lab], name, ", ".join(got) or "none"))
    info = save_domain(out, "flags", FLAG_REGIONS, shuffled(train), shuffled(test), 3)
    write_report(out, "flags", "codes.txt",
                 "# flags: every code of flag-icons' country.json, its side and region and "
                 "the artworks found", report)
    return info


# ---------------------------------------------------------------------------------------------
# iconthemes: icons of nine themes, one class per theme (the drawing style), on the icon
# names that at least three of the themes draw

ICON_THEMES = [  # (class, Debian package, theme folder under usr/share/icons)
    ("Adwaita", "adwaita-icon-theme", "Adwaita"),
    ("Breeze", "breeze-icon-theme", "breeze"),
    ("elementary", "elementary-icon-theme", "elementary"),
    ("Faba", "faba-icon-theme", "Faba"),
    ("Faenza", "faenza-icon-theme", "Faenza"),
    ("nuoveXT2", "lxde-icon-theme", "nuoveXT2"),
    ("Numix", "numix-icon-theme", "Numix"),
    ("Papirus", "papirus-icon-theme", "Papirus"),
    ("Tango", "tango-icon-theme", "Tango"),
]
ICON_MIN_THEMES = 3     # an icon name is used when at least 3 themes draw it
ICONS_TEST_MOD = 4      # a name is test when the SHA-256 of the name is 0 mod 4 (~25%)


def theme_icons(cache, pkg, folder):
    """{icon name: (rank, path, folder)}: each full-colour icon the theme draws, at the best
    size for 32 px by its index.theme: a Fixed/Threshold 32 px folder (rank 0), else a
    Scalable folder whose MinSize..MaxSize covers 32 (rank 1), else the smallest larger
    fixed size (rank 1 + size), else any other scalable one (rank 1000 + size). Symbolic
    icons (monochrome, name or folder containing 'symbolic'), HiDPI folders (Scale > 1)
    and symbolic links (aliases of another icon) are not used."""
    tdir = must_exist(os.path.join(cache, "root", pkg, "usr", "share", "icons", folder),
                      "icon theme " + folder)
    cp = RawConfigParser(strict=False, interpolation=None)
    cp.read(must_exist(os.path.join(tdir, "index.theme"), "index.theme"), encoding="utf-8")
    dirs = [d.strip() for d in cp.get("Icon Theme", "Directories", fallback="").split(",")
            if d.strip()]
    found = {}
    for d in sorted(set(dirs)):
        if not cp.has_section(d) or cp.getint(d, "Scale", fallback=1) != 1:
            continue
        size = cp.getint(d, "Size", fallback=0)
        typ = cp.get(d, "Type", fallback="Threshold")
        lo, hi = cp.getint(d, "MinSize", fallback=size), cp.getint(d, "MaxSize", fallback=size)
        full = os.path.join(tdir, d)
        if not os.path.isdir(full) or "symbolic" in d:
            continue
        if typ != "Scalable" and size == SIZE:
            rank = 0
        elif typ == "Scalable" and lo <= SIZE <= hi:
            rank = 1
        elif typ != "Scalable" and size > SIZE:
            rank = 1 + size
        elif typ == "Scalable":
            rank = 1000 + size
        else:
            continue
        for fn in sorted(os.listdir(full)):
            p = os.path.join(full, fn)
            if not fn.endswith((".png", ".svg")) or os.path.islink(p) or not os.path.isfile(p):
                continue
            name = fn[:-4]
            if "symbolic" in name:
                continue
            if name not in found or rank < found[name][0]:
                found[name] = (rank, p, d)
    return found


def build_iconthemes(cache, out):
    themes = [(cls, theme_icons(cache, pkg, folder)) for cls, pkg, folder in ICON_THEMES]
    count = {}
    for _, icons in themes:
        for name in icons:
            count[name] = count.get(name, 0) + 1
    rendered = []     # (class index, theme, name, image, folder)
    for lab, (cls, icons) in enumerate(themes):
        for name in sorted(icons):
            if count[name] < ICON_MIN_THEMES:
                continue
            _, p, d = icons[name]
            if p.endswith(".svg"):
                img = render_svg_fill(svg_handle(p))
            else:
                img = raster_fill(load_raster(p))
            rendered.append((lab, cls, name, img, d))
    # The same picture under two names of one theme is kept once (the first name); the
    # same picture in two themes says nothing about the style, so it is dropped from both.
    owners = {}
    for lab, cls, name, img, d in rendered:
        owners.setdefault(img.tobytes(), set()).add(lab)
    train, test, report, seen = [], [], [], set()
    for lab, cls, name, img, d in rendered:
        blob = img.tobytes()
        if len(owners[blob]) > 1:
            report.append("drop  %s/%s: the same image is in %s"
                          % (cls, name, ", ".join(themes[o][0] for o in sorted(owners[blob]))))
            continue
        if (lab, blob) in seen:
            report.append("drop  %s/%s: the same image as another name of the theme" % (cls, name))
            continue
        seen.add((lab, blob))
        is_test = on_test_side(name, ICONS_TEST_MOD)
        report.append("%s %s/%s  (%s)" % ("test " if is_test else "train", cls, name, d))
        (test if is_test else train).append(("%s/%s" % (cls, name), img, lab))
    info = save_domain(out, "iconthemes", [t[0] for t in ICON_THEMES], shuffled(train),
                       shuffled(test), 3)
    write_report(out, "iconthemes", "icons.txt",
                 "# iconthemes: icon names drawn by >= %d of the %d themes; each icon's side "
                 "and source folder, or why it was dropped" % (ICON_MIN_THEMES, len(themes)),
                 report)
    return info


# ---------------------------------------------------------------------------------------------

DEB_SOURCES = {"digits8": [DIGITS_FILE[0]], "cards": [AISLERIOT_DIR[0], KDE_DIR[0]],
               "flags": ["iso-flags-svg", "famfamfam-flag-png"],
               "iconthemes": [t[1] for t in ICON_THEMES]}
NPM_SOURCES = {"flags": [FLAG_ICONS + ".tgz", SVG_COUNTRY_FLAGS + ".tgz"]}


def source_lines(cache, deb_packages, npm_tarballs):
    """The exact inputs and the tool versions (librsvg and cairo if an SVG was rendered)."""
    lines = package_lines(cache, deb_packages, npm_tarballs)
    tools = tool_versions()
    if _rsvg is not None:
        Rsvg, cairo = _rsvg
        tools += ", librsvg %d.%d.%d, cairo %s" % (Rsvg.MAJOR_VERSION, Rsvg.MINOR_VERSION,
                                                   Rsvg.MICRO_VERSION, cairo.cairo_version_string())
    lines.append(tools)
    return lines


def main(argv):
    a = parse_args(argv, __doc__, DOMAINS, "data/heldout")
    builders = {"digits8": build_digits8, "cards": build_cards, "flags": build_flags,
                "iconthemes": build_iconthemes}
    infos, debs, npms = [], [], []
    try:
        for d in DOMAINS:
            if d not in a.domains:
                continue
            t0 = time.time()
            infos.append(builders[d](a.cache, a.out))
            print("            (%s: %.1f s)" % (d, time.time() - t0), flush=True)
            debs += DEB_SOURCES.get(d, [])
            npms += NPM_SOURCES.get(d, [])
    except SourceError as e:
        print("make_heldout: error: %s" % e, file=sys.stderr)
        print("make_heldout: the unpacked sources under %s look incomplete or changed; remove "
              "them and run `make data-heldout` again." % a.cache, file=sys.stderr)
        return 2
    write_manifest(a.out, "The held-out set at 32x32, built by tools/data/make_heldout.sh "
                   "(see tools/data/README.md).", infos, source_lines(a.cache, debs, npms),
                   width=11)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
