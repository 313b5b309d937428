#!/usr/bin/env python3
"""python_package.py - the installed Python package, as tests/test_python_package.sh
installs it: run with the venv's python from outside the source tree,

    python python_package.py --venv VENV --libdir LIBDIR --destdir DEST --destdir-libdir L

it checks that `import mpnas` is the venv's copy, that it found the library installed
in LIBDIR (through pkg-config, MPNAS_LIBRARY unset) and would find one staged with
DESTDIR=DEST in L (pkg-config with PKG_CONFIG_SYSROOT_DIR), then runs a tiny search and
training on images loaded with mpnas.image_folder (when Pillow is installed) and
checks the numpy=True results (when numpy is). Prints "ok NAME" / "FAIL NAME" per
check, "skip NAME: why" for one that cannot run here, then "# RESULT passed failed"."""

import os
import random
import sys
import tempfile
import traceback

ARGS = {"--venv": None, "--libdir": None, "--destdir": None, "--destdir-libdir": None}
_argv = sys.argv[1:]
while _argv:
    _opt = _argv.pop(0)
    if _opt in ARGS and _argv:
        ARGS[_opt] = _argv.pop(0)
    else:
        sys.exit("usage: python_package.py --venv VENV --libdir LIBDIR --destdir DEST "
                 "--destdir-libdir L")

import mpnas  # noqa: E402  (the installed package: this folder holds no mpnas)

try:
    import numpy
except ImportError:
    numpy = None
try:
    from PIL import Image
except ImportError:
    Image = None

RESULTS = [0, 0]


def check(name, fn):
    try:
        skipped = fn()
    except Exception:
        RESULTS[1] += 1
        print("FAIL %s\n%s" % (name, traceback.format_exc()))
        return
    if isinstance(skipped, str):
        print("skip %s: %s" % (name, skipped))
    else:
        RESULTS[0] += 1
        print("ok   %s" % name)


def real(path):
    return os.path.realpath(path)


def test_installed():
    where = real(mpnas.__file__)
    assert where.startswith(real(ARGS["--venv"]) + os.sep), "mpnas imported from %s" % where
    assert "MPNAS_LIBRARY" not in os.environ
    lib = real(mpnas.library_path())
    assert os.path.dirname(lib) == real(ARGS["--libdir"]), "library %s" % lib
    assert mpnas.__version__ == mpnas.version(), (mpnas.__version__, mpnas.version())
    assert mpnas.param_info("supernet", "steps").default == 400


def test_destdir_lookup():
    dest, libdir = ARGS["--destdir"], ARGS["--destdir-libdir"]
    saved = dict(os.environ)
    os.environ.update(PKG_CONFIG_SYSROOT_DIR=dest, PKG_CONFIG_PATH=dest + libdir + "/pkgconfig")
    try:
        candidates = [real(c) for c in mpnas._default_candidates() if os.sep in c]
    finally:
        os.environ.clear()
        os.environ.update(saved)
    want = real(dest + libdir + "/libmpnas.so")
    assert os.path.exists(want) and want in candidates, (want, candidates)


def make_folder(root, size):
    """Two classes of a few images each: red-ish and blue-ish squares."""
    rng = random.Random(3)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        os.makedirs(os.path.join(root, name))
        for i in range(12):
            shade = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in colour)
            Image.new("RGB", (size + i % 3, size), shade).save(
                os.path.join(root, name, "%02d.png" % i))
    with open(os.path.join(root, "red", "README.txt"), "w") as f:
        f.write("not an image: ignored\n")


def domain_data(tmp, name):
    """(images, labels, classes) of a small domain: from an image folder with Pillow,
    else random pixels."""
    if Image is not None:
        make_folder(os.path.join(tmp, name), 8)
        data = mpnas.image_folder(os.path.join(tmp, name), 8)
        return data.images, data.labels, len(data.classes)
    rng = random.Random(name)
    return bytes(rng.randrange(256) for _ in range(24 * 8 * 8 * 3)), [i % 2 for i in range(24)], 2


def test_image_folder():
    if Image is None:
        try:
            mpnas.image_folder(".", 8)
        except ImportError as e:
            assert "Pillow" in str(e), str(e)
            return "Pillow is not installed (checked the ImportError instead)"
        raise AssertionError("image_folder without Pillow did not raise ImportError")
    with tempfile.TemporaryDirectory() as tmp:
        make_folder(tmp, 16)
        data = mpnas.image_folder(tmp, 8)
        assert data.classes == ["blue", "red"], data.classes
        assert len(data.labels) == 24 and list(data.labels[:12]) == [0] * 12
        if numpy is not None:
            assert data.images.shape == (24, 8, 8, 3) and data.images.dtype == numpy.uint8
            assert data.images[0, 0, 0, 2] > 150 and data.images[12, 0, 0, 0] > 150  # colours
        else:
            assert len(data.images) == 24 * 8 * 8 * 3
        grey = mpnas.image_folder(tmp, (4, 6), channels=1)
        assert len(grey.labels) == 24
    with tempfile.TemporaryDirectory() as tmp:
        # 16-bit grey PNGs scale to 8 bits (convert() alone clipped them: almost white)
        os.makedirs(os.path.join(tmp, "a"))
        im = Image.new("I;16", (4, 4))
        im.putdata([v * 4096 for v in range(16)])  # 0 .. 61440
        im.save(os.path.join(tmp, "a", "ramp.png"))
        images = mpnas.image_folder(tmp, 4, channels=1).images
        px = list((images.ravel() if hasattr(images, "ravel") else images)[:16])
        want = [round(v * 4096 * 255 / 65535) for v in range(16)]
        assert all(abs(int(a) - b) <= 1 for a, b in zip(px, want)), (px, want)
        os.makedirs(os.path.join(tmp, "empty"))
        try:
            mpnas.image_folder(tmp, 8)
        except mpnas.InvalidArgumentError as e:
            assert "empty" in e.message, e.message
        else:
            raise AssertionError("a class folder without images was accepted")


def test_search_and_train():
    with tempfile.TemporaryDirectory() as tmp, mpnas.Context(threads=1, seed=5) as ctx:
        space = mpnas.Space(ctx, "empty").configure(input_height=8, input_width=8,
                                                     stem_channels=4, head_channels=8)
        space.add_stage(8, 2, 2, "relu", True)
        sn = mpnas.Supernet(space)
        for name in ("colours", "noise"):
            images, labels, classes = domain_data(tmp, name)
            sn.add_domain(name, classes)
            sn.set_data(name, images, labels)
        sn.configure(steps=6, train_batch=4, valid_batch=4)
        assert sn.search() == 6 or sn.get("step") == 6
        paths = sn.paths()
        assert set(paths) == {"colours", "noise"}
        model = mpnas.Model.from_supernet(sn)
        model.configure(steps=3, batch=4, valid_every=1)
        model.train()
        images, labels, _ = domain_data(os.path.join(tmp, "test"), "colours")
        ev = model.evaluate("colours", images, labels)
        assert 0.0 <= ev.top1 <= 1.0
        with model.predictor() as p:
            rows = p.run("colours", images, numpy=False)
            assert isinstance(rows, list) and len(rows) == 24
            if numpy is None:
                assert p.run("colours", images) == rows  # lists by default without numpy
                return "numpy is not installed (numpy results not checked)"
            # With numpy installed, numpy arrays by default (and with numpy=True).
            for arr in (p.run("colours", images), p.run("colours", images, numpy=True)):
                assert isinstance(arr, numpy.ndarray) and arr.shape == (24, 2)
                assert arr.dtype == numpy.float32 and arr.tolist() == rows
            top = p.predict("colours", images)
            assert isinstance(top, numpy.ndarray)
            assert top.tolist() == p.predict("colours", images, numpy=False)
        jac = model.jaccard()
        assert jac.shape == (2, 2) and jac.tolist() == model.jaccard(numpy=False)
        probs = sn.controller("colours").probabilities(0)
        assert isinstance(probs, numpy.ndarray) and abs(float(probs.sum()) - 1.0) < 1e-9


def main():
    print("python %s, mpnas %s from %s, library %s%s%s" % (
        sys.version.split()[0], mpnas.__version__, mpnas.__file__, mpnas.library_path(),
        ", numpy %s" % numpy.__version__ if numpy else ", no numpy",
        ", Pillow" if Image else ", no Pillow"))
    for name, fn in (("installed", test_installed), ("destdir_lookup", test_destdir_lookup),
                     ("image_folder", test_image_folder),
                     ("search_and_train", test_search_and_train)):
        check(name, fn)
    print("# RESULT %d %d" % tuple(RESULTS))
    return 1 if RESULTS[1] else 0


if __name__ == "__main__":
    sys.exit(main())
