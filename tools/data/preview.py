#!/usr/bin/python3
"""Contact sheet of an MDD-6 domain: one row per class, the first samples of that class.

    /usr/bin/python3 tools/data/preview.py data/mdd6/emoji out.png [--split test]
        [--per-class 16] [--classes 20] [--scale 2]

Reads <domain>/{train,test}-{images,labels}.idx and classes.txt; writes a PNG. Useful to
check orientation, colours and centring by eye.
"""

import argparse
import os
import struct
import sys

import numpy as np
from PIL import Image, ImageDraw


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:3] != b"\0\0\x08":
        raise SystemExit("%s: not a uint8 IDX file" % path)
    ndim = data[3]
    dims = struct.unpack(">%di" % ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("domain_dir")
    ap.add_argument("png")
    ap.add_argument("--split", default="train", choices=("train", "test"))
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--classes", type=int, default=20, help="at most this many classes (rows)")
    ap.add_argument("--scale", type=int, default=2)
    a = ap.parse_args(argv)
    images = read_idx(os.path.join(a.domain_dir, "%s-images.idx" % a.split))
    labels = read_idx(os.path.join(a.domain_dir, "%s-labels.idx" % a.split))
    with open(os.path.join(a.domain_dir, "classes.txt"), encoding="utf-8") as f:
        names = [line.rstrip("\n") for line in f]
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=3)
    n, h, w, _ = images.shape
    rows = list(range(min(len(names), a.classes)))
    cell = h + 2
    label_w = 200
    sheet = Image.new("RGB", (label_w + a.per_class * (w + 2), len(rows) * cell), (60, 60, 60))
    draw = ImageDraw.Draw(sheet)
    for r, c in enumerate(rows):
        idx = np.nonzero(labels == c)[0][:a.per_class]
        draw.text((4, r * cell + h // 2 - 5), "%d %s (%d)" % (c, names[c][:26], int((labels == c).sum())),
                  fill=(255, 255, 255))
        for j, i in enumerate(idx):
            sheet.paste(Image.fromarray(images[i]), (label_w + j * (w + 2), r * cell + 1))
    if a.scale != 1:
        sheet = sheet.resize((sheet.width * a.scale, sheet.height * a.scale), Image.NEAREST)
    sheet.save(a.png)
    print("%s: %d x %d, %s split, %d of %d classes" % (a.png, sheet.width, sheet.height, a.split,
                                                     len(rows), len(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
