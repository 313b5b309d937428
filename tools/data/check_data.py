#!/usr/bin/python3
"""Check a built data folder (data/mdd6 or data/heldout) and draw a contact sheet per domain.

    /usr/bin/python3 tools/data/check_data.py data/heldout [--preview DIR] [--domains a,b]
                                              [--no-knn]

For every domain folder (one with train-images.idx): the IDX headers (uint8, 32 x 32, 1 or
3 channels, as many labels as images), the labels (all < the number of lines of
classes.txt), the per-class counts of each split (and the largest / smallest class), and
as a difficulty check the raw-pixel test accuracy of the nearest class mean and of the
1-nearest neighbour (Euclidean; skipped with --no-knn). With --preview DIR it writes
DIR/<domain>-train.png and DIR/<domain>-test.png (tools/data/preview.py: one row per
class). Exit status 1 if any check fails.
"""

import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import preview  # noqa: E402


def read_idx_checked(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise ValueError("%s: not a uint8 IDX file (magic %r)" % (path, data[:4]))
    ndim = data[3]
    dims = struct.unpack(">%di" % ndim, data[4:4 + 4 * ndim])
    if len(data) != 4 + 4 * ndim + int(np.prod(dims)):
        raise ValueError("%s: %d bytes, header says %s" % (path, len(data), dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def knn_scores(xtr, ytr, xte, yte, k):
    xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    xte = xte.reshape(len(xte), -1).astype(np.float32) / 255
    means = np.stack([xtr[ytr == c].mean(axis=0) if (ytr == c).any() else
                      np.full(xtr.shape[1], np.inf, np.float32) for c in range(k)])
    d = (xte ** 2).sum(1)[:, None] - 2 * xte @ means.T + (means ** 2).sum(1)[None]
    ncm = float((d.argmin(1) == yte).mean())
    pred = np.empty(len(xte), dtype=np.int64)
    n2 = (xtr ** 2).sum(1)
    for i in range(0, len(xte), 512):
        dd = n2[None] - 2 * xte[i:i + 512] @ xtr.T
        pred[i:i + 512] = ytr[dd.argmin(1)]
    return ncm, float((pred == yte).mean())


def check_domain(d, name, knn, preview_dir):
    ok = True
    with open(os.path.join(d, "classes.txt"), encoding="utf-8") as f:
        classes = [line.rstrip("\n") for line in f]
    k = len(classes)
    data = {}
    for split in ("train", "test"):
        x = read_idx_checked(os.path.join(d, "%s-images.idx" % split))
        y = read_idx_checked(os.path.join(d, "%s-labels.idx" % split))
        shape_ok = x.ndim in (3, 4) and x.shape[1:3] == (32, 32) and \
            (x.ndim == 3 or x.shape[3] in (1, 3))
        if not shape_ok or y.ndim != 1 or len(y) != len(x):
            print("  FAIL %s %s: images %s, labels %s" % (name, split, x.shape, y.shape))
            ok = False
        if len(y) and int(y.max()) >= k:
            print("  FAIL %s %s: label %d >= %d classes" % (name, split, int(y.max()), k))
            ok = False
        data[split] = (x, y)
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    ch = 1 if xtr.ndim == 3 else xtr.shape[3]
    print("%s: %d classes, %d channel(s), train %d, test %d (test %.0f%%)"
          % (name, k, ch, len(ytr), len(yte), 100.0 * len(yte) / max(1, len(ytr) + len(yte))))
    ctr = np.bincount(ytr, minlength=k)
    cte = np.bincount(yte, minlength=k)
    width = max(len(c) for c in classes[:40])
    for c in range(k):
        if k <= 40:
            print("  %3d %-*s train %5d  test %5d" % (c, width, classes[c], ctr[c], cte[c]))
    for split, cnt in (("train", ctr), ("test", cte)):
        if cnt.min() == 0:
            print("  FAIL %s: a class without %s samples: %s"
                  % (name, split, [classes[i] for i in np.nonzero(cnt == 0)[0]]))
            ok = False
        else:
            print("  %-5s per class: min %d, max %d, max/min %.2f"
                  % (split, cnt.min(), cnt.max(), cnt.max() / cnt.min()))
    print("  pixel mean %.1f, std %.1f (train)" % (xtr.mean(), xtr.std()))
    if knn:
        ncm, nn = knn_scores(xtr, ytr, xte, yte, k)
        print("  raw-pixel test accuracy: nearest class mean %.3f, 1-NN %.3f, chance %.3f "
              "(largest class %.3f)" % (ncm, nn, 1.0 / k, cte.max() / max(1, len(yte))))
    if preview_dir:
        os.makedirs(preview_dir, exist_ok=True)
        for split in ("train", "test"):
            png = os.path.join(preview_dir, "%s-%s.png" % (name, split))
            preview.main([d, png, "--split", split, "--per-class", "24"])
    return ok


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--preview", default="", help="write contact sheets into this folder")
    ap.add_argument("--domains", default="", help="only these (comma-separated)")
    ap.add_argument("--no-knn", action="store_true", help="skip the accuracy check")
    a = ap.parse_args(argv)
    names = sorted(n for n in os.listdir(a.data_dir)
                   if os.path.isfile(os.path.join(a.data_dir, n, "train-images.idx")))
    if a.domains:
        want = [n for n in a.domains.split(",") if n]
        missing = [n for n in want if n not in names]
        if missing:
            print("no such domain in %s: %s" % (a.data_dir, ",".join(missing)))
            return 1
        names = want
    if not names:
        print("%s: no domain folders (with train-images.idx)" % a.data_dir)
        return 1
    ok = True
    for n in names:
        try:
            ok = check_domain(os.path.join(a.data_dir, n), n, not a.no_knn, a.preview) and ok
        except (OSError, ValueError) as e:
            print("  FAIL %s: %s" % (n, e))
            ok = False
    print("all checks passed" if ok else "some checks FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
