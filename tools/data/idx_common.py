"""Helpers shared by build_mdd6.py (MDD-6) and build_heldout.py (the held-out set).

Not a script: both builders import it from their own folder (they put that folder first
on sys.path, so it works from any current directory). Everything here is deterministic.

    SIZE, SourceError                     the image side (32) and the "bad source" error
    parse_args                            a builder's command line (--cache, --out, --domains)
    sha256_hex, key_hash, on_test_side    hash splits; shuffled: the fixed sample order
    write_idx, save_domain                uint8 IDX files and a domain's five files
    composite_on_white, must_exist        pixels on white; a source that must be there
    file_sha256, package_lines,           MANIFEST.txt: file hashes, the exact sources,
    tool_versions, write_manifest         the tool versions and the writer itself
"""

import argparse
import hashlib
import os
import struct
import sys

import numpy as np

SIZE = 32


class SourceError(Exception):
    """A source file is missing or not what the README (or DATA.md) describes."""


def parse_args(argv, doc, domains, out_example, *extra):
    """A builder's command line: --cache, --out, the `extra` options ((flag, keyword
    arguments) pairs), --domains (a comma list of `domains`, returned as a list in that
    order of the command line; an unknown name is a usage error). Creates --out."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--cache", required=True, help="folder with root/<pkg>/ and npm/<name>/")
    ap.add_argument("--out", required=True, help="output folder (e.g. %s)" % out_example)
    for flag, kwargs in extra:
        ap.add_argument(flag, **kwargs)
    ap.add_argument("--domains", default=",".join(domains))
    a = ap.parse_args(argv)
    a.domains = [d for d in a.domains.split(",") if d]
    bad = [d for d in a.domains if d not in domains]
    if bad:
        ap.error("unknown domain(s): %s" % ",".join(bad))
    os.makedirs(a.out, exist_ok=True)
    return a


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def key_hash(key):
    """A stable 64-bit integer for a text key (used for splits and sample order)."""
    return int(sha256_hex(key.encode("utf-8"))[:16], 16)


def on_test_side(key, modulus):
    """Hash split: the sample group named `key` goes to test when its hash is 0 mod `modulus`."""
    return key_hash(key) % modulus == 0


def shuffled(items):
    """items: list of (key, image, label). Returns them in a fixed order: by SHA-256 of the key."""
    keys = [k for k, _, _ in items]
    if len(set(keys)) != len(keys):
        raise AssertionError("duplicate sample keys")
    return sorted(items, key=lambda t: (sha256_hex(t[0].encode("utf-8")), t[0]))


def write_idx(path, array):
    """Write a uint8 array as IDX (magic 0x0000 0x08 ndim, big-endian int32 dims, data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", d) for d in array.shape)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(array.tobytes())
    os.replace(tmp, path)


def composite_on_white(rgba):
    """uint8 H x W x 4 -> H x W x 3, alpha composited on white with exact integer rounding."""
    rgba = rgba.astype(np.uint32)
    a = rgba[..., 3:4]
    rgb = (rgba[..., :3] * a + 255 * (255 - a) + 127) // 255
    return rgb.astype(np.uint8)


def must_exist(path, what):
    if not os.path.exists(path):
        raise SourceError("missing %s: %s" % (what, path))
    return path


def save_domain(out_dir, name, classes, train, test, channels):
    """train/test: lists of (key, image, label) already ordered. Writes the five files."""
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    for split, items in (("train", train), ("test", test)):
        shape = (len(items), SIZE, SIZE) if channels == 1 else (len(items), SIZE, SIZE, channels)
        images = np.zeros(shape, dtype=np.uint8)
        labels = np.zeros((len(items),), dtype=np.uint8)
        for i, (_, img, lab) in enumerate(items):
            if img.shape != shape[1:] or img.dtype != np.uint8:
                raise AssertionError("%s: bad image shape %s" % (name, img.shape))
            images[i] = img
            labels[i] = lab
        write_idx(os.path.join(d, "%s-images.idx" % split), images)
        write_idx(os.path.join(d, "%s-labels.idx" % split), labels)
    with open(os.path.join(d, "classes.txt"), "w", encoding="utf-8", newline="\n") as f:
        for c in classes:
            if "\n" in c:
                raise AssertionError("class name with a newline")
            f.write(c + "\n")
    counts = [0] * len(classes)
    for _, _, lab in train + test:
        counts[lab] += 1
    empty = [classes[i] for i, c in enumerate(counts) if c == 0]
    if empty:
        raise AssertionError("%s: classes without samples: %s" % (name, empty))
    print("  %-9s train %6d  test %6d  classes %3d  channels %d"
          % (name, len(train), len(test), len(classes), channels), flush=True)
    return {"domain": name, "train": len(train), "test": len(test), "classes": len(classes),
            "channels": channels}


# ---------------------------------------------------------------------------------------------
# MANIFEST.txt

def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_lines(cache, deb_packages, npm_tarballs):
    """The exact inputs, each once: Debian package files (from the unpack stamps that
    make_data.sh / make_heldout.sh write) and npm tarballs (with their SHA-256)."""
    lines = []
    for pkg in sorted(set(deb_packages)):
        stamp = os.path.join(cache, "root", pkg + ".stamp")
        deb = open(stamp, encoding="utf-8").read().strip() if os.path.exists(stamp) else "?"
        lines.append("deb  %s" % deb)
    for tgz in sorted(set(npm_tarballs)):
        p = os.path.join(cache, "npm", tgz)
        lines.append("npm  %s  sha256 %s" % (tgz, file_sha256(p) if os.path.exists(p) else "?"))
    return lines


def tool_versions():
    """'tool python X, numpy Y, pillow Z' (a builder appends the other libraries it used)."""
    from PIL import __version__ as pil_version
    return "tool python %s, numpy %s, pillow %s" % (sys.version.split()[0], np.__version__,
                                                    pil_version)


def write_manifest(out, title, infos, sources, width=9):
    """MANIFEST.txt: counts per domain, SHA-256 of every output file, the exact sources.
    `title`: the first line (after '# '); `width`: of the domain column of [counts]."""
    lines = ["# " + title,
             "# The same sources give the same bytes: compare this file between runs.",
             "",
             "[counts]",
             "%-*s %7s %7s %8s %9s" % (width, "# domain", "train", "test", "classes", "channels")]
    for i in infos:
        lines.append("%-*s %7d %7d %8d %9d" % (width, i["domain"], i["train"], i["test"],
                                               i["classes"], i["channels"]))
    lines += ["", "[files]", "# sha256  path (relative to this folder)"]
    for i in infos:
        d = os.path.join(out, i["domain"])
        for fn in sorted(os.listdir(d)):
            lines.append("%s  %s/%s" % (file_sha256(os.path.join(d, fn)), i["domain"], fn))
    lines += ["", "[sources]"] + sources
    tmp = os.path.join(out, "MANIFEST.txt.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(out, "MANIFEST.txt"))
