#!/usr/bin/env python3
"""test_mpnas.py - tests of the Python wrapper (python/mpnas/), in the suite's format:
"ok NAME" / "FAIL NAME" per test, then "# RESULT passed failed" (tests/run.sh adds it up).

    python3 python/test_mpnas.py [--library PATH/libmpnas.so] [--infer PATH/infer]

--library (or MPNAS_LIBRARY) picks the shared library; --infer (or MPNAS_INFER) is the
examples/infer program, used to check that predictions made through Python equal the
C API's for the same model file and images, float for float (both printed as %.9g).
Without it that test is skipped (tests/test_python.sh always passes it). With numpy
installed, numpy arrays are tested too."""

import array
import gc
import math
import os
import re
import subprocess
import sys
import tempfile
import traceback
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

ARGS = {"--library": None, "--infer": None}
_argv = sys.argv[1:]
while _argv:
    _opt = _argv.pop(0)
    if _opt in ARGS and _argv:
        ARGS[_opt] = _argv.pop(0)
    else:
        sys.exit("usage: test_mpnas.py [--library PATH] [--infer PATH]")
if ARGS["--library"]:
    os.environ["MPNAS_LIBRARY"] = ARGS["--library"]
INFER = ARGS["--infer"] or os.environ.get("MPNAS_INFER")

import mpnas  # noqa: E402
import synthetic  # noqa: E402

try:
    import numpy  # optional
except ImportError:
    numpy = None

PASSED = FAILED = 0
_failures = []


def check(cond, what):
    if not cond:
        _failures.append(what)


def expect_error(cls, status, fn, *args, **kwargs):
    """Run fn; return the MpnasError it raised (checked to be cls with `status`)."""
    try:
        fn(*args, **kwargs)
    except mpnas.MpnasError as e:
        check(isinstance(e, cls), "%s raised %s, expected %s" % (fn, type(e).__name__, cls.__name__))
        check(e.status == status, "status %d, expected %d (%s)" % (e.status, status, e))
        check(e.name == mpnas.STATUS_NAMES[status], "name %s" % e.name)
        check(bool(e.message), "an empty message")
        return e
    _failures.append("%s did not raise %s" % (getattr(fn, "__name__", fn), cls.__name__))
    return None


def run(test):
    global PASSED, FAILED
    del _failures[:]
    skipped = None
    try:
        skipped = test()
    except Exception:
        _failures.append("exception:\n" + traceback.format_exc())
    name = test.__name__
    if isinstance(skipped, str):
        print("skip %s: %s" % (name, skipped))
        return
    if _failures:
        FAILED += 1
        print("FAIL %s" % name)
        for f in _failures[:10]:
            print("    " + f.replace("\n", "\n    ").rstrip())
    else:
        PASSED += 1
        print("ok %s" % name)
    sys.stdout.flush()


# ---- fixtures -------------------------------------------------------------------------------

def tiny_space(ctx):
    """A fast space: 4 layers of k{3,5} x e{2,4} (+ zero on the second of each stage)."""
    space = mpnas.Space(ctx, "empty").configure(stem_channels=8, stem_stride=2, head_channels=32)
    space.add_stage(16, 2, 2, "relu", True)
    space.add_stage(24, 2, 2, "hswish", True)
    space.set_choices(-1, [3, 5], [2, 4])
    return space


DOMAINS = ("stripes", "colours")
TRAIN = {d: synthetic.make(d, 160, seed=3) for d in DOMAINS}
TEST = {d: synthetic.make(d, 24, seed=3, start=50000) for d in DOMAINS}


def tiny_supernet(ctx, steps=6):
    sn = mpnas.Supernet(tiny_space(ctx))
    for d in DOMAINS:
        sn.add_domain(d, synthetic.CLASSES[d])
        sn.set_data(d, *TRAIN[d])
    sn.configure(steps=steps, train_batch=8, valid_batch=8)
    return sn


def read_header_version():
    path = os.path.join(HERE, os.pardir, "include", "mpnas.h")
    with open(path) as f:
        m = re.search(r'#define MPNAS_VERSION_STRING "([^"]+)"', f.read())
    return m.group(1) if m else None


def write_idx(path, data, dims):
    with open(path, "wb") as f:
        f.write(bytes((0, 0, 8, len(dims))))
        for d in dims:
            f.write(int(d).to_bytes(4, "big"))
        f.write(bytes(data))


_TRAINED = {}


def trained_model(ctx):
    """A model over the tiny space with two domains, trained for a few steps."""
    space = tiny_space(ctx)
    classes = synthetic.CLASSES
    model = mpnas.Model.create(space, [("stripes", classes["stripes"], [1, 0, 3, 2]),
                                       ("colours", classes["colours"], "k3e2 k5e2 k3e4 zero")])
    for d in DOMAINS:
        model.set_data(d, *TRAIN[d])
    model.configure(steps=20, batch=8, valid_every=10, valid_batch=8)
    model.train()
    return model


# ---- tests ------------------------------------------------------------------------------------

def test_library():
    want = read_header_version()
    check(mpnas.version() == want, "version %r, header %r" % (mpnas.version(), want))
    major, minor, patch = (int(x) for x in want.split("."))
    check(mpnas.version_number() == major * 10000 + minor * 100 + patch, "version_number")
    check(mpnas.status_string(-3) != mpnas.status_string(-2), "status strings")
    check(mpnas.isa_supported("scalar"), "the scalar ISA is always supported")
    check(mpnas.OUTPUT_PROBABILITIES == 1 and mpnas.SEARCH_STEPS == 2 and mpnas.E_STATE == -10,
          "module constants")
    check(not mpnas._L().missing, "functions missing from the library: %s" % mpnas._L().missing)


def test_context():
    with mpnas.Context(threads=1, seed=2 ** 64 - 1, isa="scalar") as ctx:
        check(ctx.threads == 1, "threads")
        check(ctx.seed == 2 ** 64 - 1, "a 64-bit seed round trip: %d" % ctx.seed)
        check(ctx.isa == "scalar" and ctx.isa_active == "scalar", "isa %s" % ctx.isa_active)
        ctx.isa = "auto"
        check(ctx.isa == "auto", "isa back to auto")
        check(isinstance(ctx.openmp, bool), "openmp")
        logs = []
        ctx.set_log_callback(lambda level, msg: logs.append((level, msg)))
        ctx.set_log_callback(None)
    check(ctx.closed, "the with block closes the context")


def test_errors():
    ctx = mpnas.Context()
    sn = mpnas.Supernet(tiny_space(ctx))
    e = expect_error(mpnas.OutOfRangeError, -3, sn.set, "steps", 0)
    if e:
        check("MPNAS_SEARCH_STEPS" in e.message, "the library's message: %r" % e.message)
        check(e.function == "mpnas_supernet_set_int", "function %r" % e.function)
        check(isinstance(e, ValueError), "OutOfRangeError is a ValueError")
        check("MPNAS_E_OUT_OF_RANGE" in str(e) and e.message in str(e), "str(e) = %r" % str(e))
    check(ctx.last_error == "", "the error is consumed by the exception")
    e = expect_error(mpnas.UnknownParameterError, -2, sn.set_int, 999, 1)
    if e:
        check("999" in e.message, "message %r" % e.message)
    expect_error(mpnas.UnknownParameterError, -2, sn.set, "no_such_parameter", 1)
    expect_error(mpnas.UnknownParameterError, -2, mpnas.Space, ctx, "no_such_preset")
    expect_error(mpnas.OutOfRangeError, -3, mpnas.Context, threads=-1)
    expect_error(mpnas.OutOfRangeError, -3, sn.set, "learning_rate", -1.0)
    sn.add_domain("a", 3)
    e = expect_error(mpnas.InvalidArgumentError, -1, sn.add_domain, "a", 3)  # duplicate
    images, labels = synthetic.make("stripes", 4)
    expect_error(mpnas.InvalidArgumentError, -1, sn.set_data, "a", images[:-1], labels)
    expect_error(mpnas.InvalidArgumentError, -1, sn.set_data, "a", images, labels[:2])
    e = expect_error(mpnas.OutOfRangeError, -3, sn.set_data, "a", images, [0, 1, 2, 7])
    if e:
        check("label" in e.message, "message names the label: %r" % e.message)
    expect_error(mpnas.InvalidArgumentError, -1, sn.set_data, "no such domain", images, labels)
    expect_error(mpnas.IOFailureError, -6, mpnas.Model.load, ctx, "/nonexistent/model.mpnas")
    expect_error(mpnas.CorruptError, -7, mpnas.Model.load_buffer, ctx, b"not a model file" * 4)
    model = mpnas.Model.create(tiny_space(ctx), [("a", 3, [0, 0, 0, 0])])
    expect_error(mpnas.StateError, -10, model.predictor)  # not trained, not loaded
    ctx.close()
    check(sn.closed and model.closed, "closing the context closes its handles")
    expect_error(mpnas.InvalidArgumentError, -1, sn.set, "steps", 5)


def test_buffers():
    ctx = mpnas.Context()
    space = tiny_space(ctx)
    n, shape = space.image_size, space.input_shape
    images, labels = synthetic.make("stripes", 3)
    floats = array.array("f", [v / 255.0 for v in images])
    cases = [
        ("bytes", images, 0),
        ("bytearray", bytearray(images), 0),
        ("memoryview", memoryview(images), 0),
        ("array B", array.array("B", images), 0),
        ("array f", floats, 1),
        ("list of ints", list(images), 0),
        ("list of floats", floats.tolist(), 1),
        ("array d (converted)", array.array("d", floats), 1),
        ("read-only slice", memoryview(images)[:2 * n], 0),
    ]
    if numpy is not None:
        u8 = numpy.frombuffer(images, dtype=numpy.uint8).reshape(3, 32, 32, 3)
        cases += [
            ("numpy uint8 (read-only)", u8, 0),
            ("numpy uint8 copy", u8.copy(), 0),
            ("numpy float32", u8.astype(numpy.float32) / 255, 1),
            ("numpy float64", u8.astype(numpy.float64) / 255, 1),
            ("numpy non-contiguous", numpy.repeat(u8, 2, axis=0)[::2], 0),
        ]
    for name, data, dtype in cases:
        buf = mpnas._Buffer(data, shape)
        want = 2 if name == "read-only slice" else 3
        check(buf.dtype == dtype and buf.count == want,
              "%s: dtype %d count %d" % (name, buf.dtype, buf.count))
    check(mpnas._Buffer(images, shape, dtype="f32").dtype == 1, "dtype='f32' converts")
    check(mpnas._Buffer(images, shape, count=3).count == 3, "an explicit count")
    sn = mpnas.Supernet(space)
    sn.add_domain("a", 3)
    label_cases = [labels, array.array("i", labels), array.array("l", labels), tuple(labels)]
    if numpy is not None:
        label_cases += [numpy.array(labels, dtype=numpy.int64), numpy.array(labels, dtype=numpy.int32)]
    for name, data, _ in cases:
        for lab in label_cases:
            # raises on failure; one label per image
            sn.set_data("a", data, lab[:2] if name == "read-only slice" else lab)
    sn.set_data(0, floats, labels, split="valid")


def test_space():
    ctx = mpnas.Context()
    space = mpnas.Space(ctx, "32px")
    check(space.input_shape == (32, 32, 3), "input shape %s" % (space.input_shape,))
    L = space.num_layers
    check(L == 10, "32px layers %d" % L)
    path = [1] * L
    text = space.path_string(path)
    check(space.parse_path(text) == path, "parse(path_string(p)) == p")
    check(space.path_string(text) == text, "a path given as text")
    macs, params = space.path_cost(path, 10)
    check(macs > 0 and params > 0, "path cost %d %d" % (macs, params))
    check(space.op_info(1, 0) == (0, 0, False) and space.op_name(1, 0) == "zero", "op 0 of layer 1 is zero")
    jac = space.jaccard([path, path, [2] * L], numpy=False)
    check(jac[0][1] == 1.0 and jac[0][0] == 1.0 and jac[0][2] < 1.0, "jaccard %s" % jac)
    check(space.node_users([path, path], 0, 1) == 2, "node users")
    t = tiny_space(ctx)
    check(t.num_layers == 4 and t.num_stages == 2, "tiny space")
    check(t.ops(1) == ["zero", "k3e2", "k5e2", "k3e4", "k5e4"], "ops %s" % t.ops(1))


def test_search():
    ctx = mpnas.Context(threads=1, seed=5)
    sn = tiny_supernet(ctx, steps=6)
    calls = []
    done = sn.search(progress=lambda step, total: calls.append((step, total)), every=2)
    check(done == 6 and sn.step == 6, "steps done %d" % done)
    check(calls and calls[-1] == (6, 6), "progress calls %s" % calls)
    space = sn.space
    for d in sn.domains:
        path = sn.path(d)
        check(len(path) == space.num_layers and all(0 <= op < space.num_ops(l)
                                                     for l, op in enumerate(path)), "path %s" % path)
        check(isinstance(sn.path_string(d), str), "path string")
        stats = sn.domain_stats(d)
        check(0.0 <= stats["valid_accuracy"] <= 1.0, "stats %s" % stats)
    jac = sn.jaccard(numpy=False)
    check(all(jac[i][i] == 1.0 for i in range(len(jac))), "jaccard diagonal %s" % jac)
    ctrl = sn.controller("colours")
    probs = ctrl.probabilities(1, numpy=False)
    check(len(probs) == space.num_ops(1) and abs(sum(probs) - 1) < 1e-9, "probabilities %s" % probs)
    check(ctrl.argmax() == sn.path("colours"), "the path is the controller's argmax")


def test_cancel_and_resume():
    ctx = mpnas.Context(threads=1, seed=5)
    sn = tiny_supernet(ctx, steps=6)
    expect_error(mpnas.CancelledError, -9, sn.search, 0, lambda step, total: True, 2)
    check(sn.step == 2, "cancelled at step %d" % sn.step)

    class Boom(Exception):
        pass

    def boom(step, total):
        raise Boom()

    try:
        sn.search(0, boom, 2)
        check(False, "the callback's exception was swallowed")
    except Boom:
        pass
    check(sn.step == 4, "stopped by the exception at step %d" % sn.step)
    sn.search()
    check(sn.step == 6, "resumed to the end: %d" % sn.step)
    # the same search uninterrupted ends on the same paths
    other = tiny_supernet(mpnas.Context(threads=1, seed=5), steps=6)
    other.search()
    check(other.paths() == sn.paths(), "resumed %s vs uninterrupted %s" % (sn.paths(), other.paths()))


def test_checkpoint():
    with tempfile.TemporaryDirectory() as tmp:
        ctx = mpnas.Context(threads=1, seed=9)
        a = tiny_supernet(ctx, steps=6)
        a.search(3)
        ckpt = os.path.join(tmp, "search.ckpt")
        a.save_checkpoint(ckpt)
        a.search()
        b = tiny_supernet(mpnas.Context(threads=1, seed=9), steps=6)
        b.load_checkpoint(ckpt)
        check(b.step == 3, "restored step %d" % b.step)
        b.search()
        check(a.paths() == b.paths(), "resumed from a checkpoint: %s vs %s" % (b.paths(), a.paths()))
        with open(ckpt, "rb") as f:
            data = f.read()
        d = tiny_supernet(mpnas.Context(threads=1, seed=9), steps=6)
        d.load_checkpoint_buffer(bytearray(data))
        check(d.step == 3, "restored from a buffer: step %d" % d.step)
        d.search()
        check(a.paths() == d.paths(), "resumed from a buffer: %s vs %s" % (d.paths(), a.paths()))
        expect_error(mpnas.CorruptError, -7, d.load_checkpoint_buffer, data[:-8])
        c = mpnas.Supernet(mpnas.Space(ctx, "32px"))
        c.add_domain("stripes", 3)
        expect_error(mpnas.IncompatibleError, -11, c.load_checkpoint, ckpt)


def test_lifetime():
    sn = mpnas.Supernet(tiny_space(mpnas.Context()))  # only sn holds the context now
    sn.add_domain("a", 3)
    check(sn.context.threads >= 0 and not sn.context.closed, "the supernet keeps its context alive")
    space = sn.space
    sn.close()
    check(space.closed, "a supernet's space view closes with it")
    sn.close()  # idempotent
    with mpnas.Context() as ctx:
        with mpnas.Supernet(tiny_space(ctx)) as s2:
            pass
        check(s2.closed and not ctx.closed, "with closes the supernet only")
    # The garbage collector may finalise a parent before its children (a reference cycle,
    # e.g. through a traceback): it has cleared the parent's weak list of children by
    # then, so the parent's free must wait for the last child.
    ctx = mpnas.Context()
    sn = mpnas.Supernet(tiny_space(ctx))
    ctx._children = weakref.WeakSet()  # as the collector leaves it
    ctx.close()
    check(ctx.closed and ctx._pending is not None, "the context's free is deferred")
    sn.add_domain("still-works", 3)
    sn.close()
    check(ctx._pending is None, "the context is freed with its last child")
    for _ in range(20):  # real cycles, finalised in whatever order the collector picks
        c = mpnas.Context()
        cycle = [c, mpnas.Supernet(tiny_space(c)), mpnas.Space(c)]
        cycle.append(cycle)
        del c, cycle
        gc.collect()


def test_model():
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    check(model.domains == list(DOMAINS), "domains %s" % model.domains)
    check(model.path("stripes") == [1, 0, 3, 2], "path %s" % model.path("stripes"))
    check(model.path_string("colours") == "k3e2 k5e2 k3e4 zero", model.path_string("colours"))
    check(model.domain_classes("colours") == synthetic.CLASSES["colours"], "classes")
    check(model.step == 20, "trained %d steps" % model.step)
    check(model.params > 0 and model.macs > 0, "params %d macs %d" % (model.params, model.macs))
    space = model.space
    paths = [model.path(d) for d in DOMAINS]
    nodes = sum(1 for l in range(space.num_layers) for op in range(space.num_ops(l))
                if space.op_info(l, op).kernel and space.node_users(paths, l, op))
    check(model.nodes == nodes, "nodes %d, from the paths %d" % (model.nodes, nodes))
    for l in range(space.num_layers):
        for op in range(space.num_ops(l)):
            if space.op_info(l, op).kernel:
                check(model.node_users(l, op) == space.node_users(paths, l, op), "users %d %d" % (l, op))
    check(model.jaccard(numpy=False) == space.jaccard(paths, numpy=False), "jaccard %s" % model.jaccard(numpy=False))
    for d in DOMAINS:
        ev = model.evaluate(d, *TEST[d])
        check(0.0 <= ev.top1 <= 1.0 and ev.loss > 0 and math.isfinite(ev.loss), "evaluate %s" % (ev,))
    images, labels = TEST["colours"]
    with model.predictor() as p:
        logits = p.run("colours", images, numpy=False)
        probs = p.run("colours", images, output="probabilities", numpy=False)
        flat = p.run("colours", images, flat=True, numpy=False)
        classes = synthetic.CLASSES["colours"]
        check(len(logits) == 24 and all(len(r) == classes for r in logits), "shape of the result")
        check(isinstance(flat, array.array) and flat.typecode == "f" and flat.tolist() ==
              [v for r in logits for v in r], "flat output")
        for lr, pr in zip(logits, probs):
            m = max(lr)
            z = sum(math.exp(v - m) for v in lr)
            check(all(abs(math.exp(v - m) / z - q) < 1e-5 for v, q in zip(lr, pr)), "softmax")
        top = p.predict("colours", images, numpy=False)
        acc = sum(t == y for t, y in zip(top, labels)) / len(labels)
        check(abs(acc - model.evaluate("colours", images, labels).top1) < 1e-9,
              "predict() vs evaluate(): %s" % acc)
        check(p.run(1, images[:3 * 3072], numpy=False) == logits[:3], "a smaller batch, domain by index")
        if numpy is not None:
            out = numpy.zeros((24, classes), dtype=numpy.float32)
            p.run("colours", numpy.frombuffer(images, numpy.uint8).reshape(24, 32, 32, 3), out=out)
            check(out.tolist() == logits, "numpy in and out")
    check(p.closed, "with closes the predictor")
    # close the model: its predictors close first
    p2 = model.predictor()
    model.close()
    check(p2.closed, "closing a model closes its predictors")


def test_model_save_load():
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    images = TEST["stripes"][0]
    want = model.predictor().run("stripes", images, numpy=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.mpnas")
        model.save(path)
        loaded = mpnas.Model.load(ctx, path)
        check(loaded.domains == model.domains, "domains after load")
        check(loaded.path("colours") == model.path("colours"), "paths after load")
        check(loaded.predictor().run("stripes", images, numpy=False) == want, "predictions after load")
        data = model.save_buffer()
        check(isinstance(data, bytes) and len(data) > 0, "save_buffer")
        with open(path, "rb") as f:
            check(f.read() == data, "save_buffer() equals the saved file")
        from_buf = mpnas.Model.load_buffer(ctx, bytearray(data))
        check(from_buf.predictor().run("stripes", images, numpy=False) == want, "predictions after load_buffer")


def test_quantize():
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    images, labels = TEST["stripes"]
    check(model.quantized == 0, "a new model is float only")
    with model.predictor() as p:
        expect_error(mpnas.StateError, -10, setattr, p, "precision", "int8")
    model.quantize(64)
    check(model.quantized == 1, "quantized %d" % model.quantized)
    f = model.predictor().run("stripes", images, numpy=False)
    p8 = model.predictor(precision="int8")
    check(p8.precision == "int8", "precision %s" % p8.precision)
    q = p8.run("stripes", images, numpy=False)
    agree = sum(max(range(len(a)), key=a.__getitem__) == max(range(len(b)), key=b.__getitem__)
                for a, b in zip(f, q))
    check(agree >= len(f) - 2, "int8 top-1 agrees with float on %d of %d" % (agree, len(f)))
    p8.precision = mpnas.PRECISION_FLOAT32
    check(p8.run("stripes", images, numpy=False) == f, "switched back to float")
    data = model.save_buffer()
    loaded = mpnas.Model.load_buffer(ctx, data)
    check(loaded.predictor(precision="int8").run("stripes", images, numpy=False) == q,
          "int8 outputs after a round trip")
    loaded.drop_float()
    small = loaded.save_buffer()
    check(len(small) < len(data), "int8-only file %d < %d bytes" % (len(small), len(data)))
    only = mpnas.Model.load_buffer(ctx, small)
    check(only.quantized == 2, "int8 only after load")
    with only.predictor() as p:
        check(p.precision == "int8", "an int8-only model's predictors run int8")
        check(p.run("stripes", images, numpy=False) == q, "int8-only outputs")
        expect_error(mpnas.StateError, -10, setattr, p, "precision", "float32")
    expect_error(mpnas.StateError, -10, only.export_onnx, 0)


def test_export_onnx():
    """export_onnx: a file and bytes alike (ONNX tools check them in tests/test_onnx.sh);
    an unknown domain and an unwritable path raise."""
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    data = model.export_onnx("stripes")
    check(isinstance(data, bytes) and len(data) > 1000, "export_onnx() returns the bytes")
    check(model.export_onnx(model.domain_index("stripes")) == data, "by index, the same bytes")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stripes.onnx")
        check(model.export_onnx("stripes", path) is None, "export_onnx(path) returns None")
        with open(path, "rb") as f:
            check(f.read() == data, "the file holds the same bytes")
        try:
            model.export_onnx("stripes", os.path.join(tmp, "no", "dir", "x.onnx"))
            check(False, "an unwritable path raises")
        except mpnas.IOFailureError as e:
            check("x.onnx" in str(e) or len(str(e)) > 0, "IOFailureError with a message")
    for bad in ("nosuch", 99):
        try:
            model.export_onnx(bad)
            check(False, "export_onnx(%r) raises" % (bad,))
        except (mpnas.InvalidArgumentError, mpnas.OutOfRangeError):
            pass


def test_model_checkpoint():
    """A training checkpoint restored from a file and from a buffer: both resume exactly."""
    ctx = mpnas.Context(threads=1, seed=11)

    def fresh():
        space = tiny_space(ctx)
        model = mpnas.Model.create(space, [("stripes", synthetic.CLASSES["stripes"], [1, 0, 3, 2])])
        model.set_data("stripes", *TRAIN["stripes"])
        model.configure(steps=6, batch=8, valid_every=3, valid_batch=8)
        return model

    whole = fresh()
    whole.train()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "train.ckpt")
        a = fresh()
        a.train(3)
        a.save_checkpoint(ckpt)
        with open(ckpt, "rb") as f:
            data = f.read()
        for how in ("file", "buffer"):
            b = fresh()
            if how == "file":
                b.load_checkpoint(ckpt)
            else:
                b.load_checkpoint_buffer(bytearray(data))
            check(b.step == 3, "restored from a %s: step %d" % (how, b.step))
            b.train()
            check(b.save_buffer() == whole.save_buffer(), "resumed from a %s" % how)
        expect_error(mpnas.CorruptError, -7, fresh().load_checkpoint_buffer, data[:-8])


def test_from_supernet():
    ctx = mpnas.Context(threads=1, seed=5)
    sn = tiny_supernet(ctx, steps=4)
    sn.search()
    model = mpnas.Model.from_supernet(sn)
    check(model.domains == sn.domains, "domains")
    check(all(model.path(d) == sn.path(d) for d in sn.domains), "paths from the search")
    sn.close()  # the model has its own copies
    model.configure(steps=4, batch=4, valid_every=2, valid_batch=4)
    model.train(progress=lambda s, t: None, every=2)
    check(model.step == 4, "trained without the supernet")


def test_c_agreement():
    """Logits and probabilities through Python equal examples/infer's (the C API's) for the
    same model file and images, compared as %.9g text."""
    if not INFER:
        return "no examples/infer given (--infer or MPNAS_INFER)"
    if not os.path.exists(INFER):
        _failures.append("%s does not exist (make examples)" % INFER)
        return None
    ctx = mpnas.Context(threads=1, seed=13)
    model = trained_model(ctx)
    with tempfile.TemporaryDirectory() as tmp:
        mfile = os.path.join(tmp, "model.mpnas")
        model.save(mfile)
        model = mpnas.Model.load(ctx, mfile)  # compare what the file holds
        for domain in DOMAINS:
            images, labels = TEST[domain]
            n = len(labels)
            ifile, lfile = os.path.join(tmp, domain + "-images.idx"), os.path.join(tmp, domain + "-labels.idx")
            write_idx(ifile, images, (n, 32, 32, 3))
            write_idx(lfile, bytes(labels), (n,))
            proc = subprocess.run([INFER, mfile, domain, ifile, lfile, "--logits", "--probabilities",
                                   "--threads", "1", "--batch", "7"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            check(proc.returncode == 0, "infer exited %d: %s" % (proc.returncode, proc.stderr))
            rows = {}
            for line in proc.stdout.splitlines():
                m = re.match(r"image (\d+): top1 (\d+) label (\d+) logits: (.*) probabilities: (.*)$", line)
                if m:
                    rows[int(m.group(1))] = (int(m.group(2)), m.group(4).split(), m.group(5).split())
            check(len(rows) == n, "%s: infer printed %d rows for %d images" % (domain, len(rows), n))
            with model.predictor() as p:
                logits = p.run(domain, images, numpy=False)
                probs = p.run(domain, images, output="probabilities", numpy=False)
            mismatches = 0
            for i in range(n):
                if i not in rows:
                    continue
                top, c_logits, c_probs = rows[i]
                py_logits = ["%.9g" % v for v in logits[i]]
                py_probs = ["%.9g" % v for v in probs[i]]
                if c_logits != py_logits or c_probs != py_probs:
                    mismatches += 1
                    if mismatches <= 3:
                        _failures.append("%s image %d: C %s / %s, Python %s / %s"
                                         % (domain, i, c_logits, c_probs, py_logits, py_probs))
                check(top == max(range(len(logits[i])), key=logits[i].__getitem__), "top-1 of image %d" % i)
            check(mismatches == 0, "%s: %d of %d images differ" % (domain, mismatches, n))
            ev = model.evaluate(domain, images, labels)
            m = re.search(r"^evaluate: top1 (\S+) loss (\S+)$", proc.stdout, re.M)
            check(m is not None and m.group(1) == "%.4f" % ev.top1 and m.group(2) == "%.4f" % ev.loss,
                  "evaluate: C %s, Python %.4f %.4f" % (m and m.groups(), ev.top1, ev.loss))


def expect_raises(cls, fn, *args, **kwargs):
    """Run fn; return the exception of class cls it raised (a failure if none)."""
    try:
        fn(*args, **kwargs)
    except cls as e:
        return e
    except Exception as e:
        _failures.append("%s raised %s: %s, expected %s" % (getattr(fn, "__name__", fn),
                                                           type(e).__name__, e, cls.__name__))
        return None
    _failures.append("%s%.80r did not raise %s" % (getattr(fn, "__name__", fn), args, cls.__name__))
    return None


def grey_images(count):
    """`count` one-channel 32x32 images (bytes, NHW: the red channel of test images of
    "colours"), the same replicated to 3 channels (bytes, NHWC) and their labels."""
    images, labels = synthetic.make("colours", count, seed=3, start=50000)
    grey = images[0::3]
    return grey, bytes(v for v in grey for _ in range(3)), labels


def test_image_shapes():
    """Images with a shape (here memoryviews, no numpy needed) are checked against the
    space's (H, W, C): (N, H, W, C), one (H, W, C) image, and one channel (N, H, W) or
    (N, H, W, 1) replicated to C channels. Any other shape is refused (such images used
    to be taken as N/3 scrambled RGB images, or any shape of the right size)."""
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    grey, rgb, labels = grey_images(6)  # 6 images: divisible by 3, as in the report
    want_eval = model.evaluate("colours", rgb, labels)
    with model.predictor() as p:
        want = p.run("colours", rgb, numpy=False)
        check(p.run("colours", memoryview(rgb).cast("B", (6, 32, 32, 3)), numpy=False) == want, "(N, H, W, C)")
        check(p.run("colours", memoryview(rgb[:3072]).cast("B", (32, 32, 3)), numpy=False) == want[:1],
              "(H, W, C): one image")
        for shape in ((6, 32, 32, 1), (6, 32, 32)):
            mv = memoryview(grey).cast("B", shape)
            got = p.run("colours", mv, numpy=False)
            check(got == want, "%s: %d results, not the replicated images'" % (shape, len(got)))
            check(len(p.predict("colours", mv, numpy=False)) == 6, "%s: predict" % (shape,))
            ev = model.evaluate("colours", mv, labels)
            check(ev == want_eval, "%s: evaluate %s, replicated %s" % (shape, ev, want_eval))
        for data, shape in ((grey, (3, 32, 32, 2)), (rgb, (6, 3072)), (rgb, (12, 16, 32, 3)),
                            (rgb, (1, 6, 32, 32, 3)), (grey, (32, 32, 6))):
            e = expect_error(mpnas.InvalidArgumentError, -1, p.run, "colours",
                             memoryview(data).cast("B", shape))
            if e:
                check("(N, 32, 32, 3)" in e.message and str(shape) in e.message,
                      "the message names both shapes: %r" % e.message)
    sn = mpnas.Supernet(tiny_space(ctx))
    sn.add_domain("grey", synthetic.CLASSES["colours"])
    sn.set_data("grey", memoryview(grey).cast("B", (6, 32, 32, 1)), labels)
    check(sn.domain_stat("grey", "train_size") == 6,
          "set_data took %g images" % sn.domain_stat("grey", "train_size"))
    expect_error(mpnas.InvalidArgumentError, -1, sn.set_data, "grey",
                 memoryview(grey).cast("B", (6, 32, 32, 1)), labels[:2])


def test_image_counts():
    """Flat buffers: a whole number of images, exactly one label per image (extra labels
    used to be dropped silently), and count= must agree (it used to pick a prefix)."""
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    images, labels = TEST["colours"]  # 24 images
    sn = mpnas.Supernet(tiny_space(ctx))
    sn.add_domain("a", synthetic.CLASSES["colours"])
    untrained = mpnas.Model.create(tiny_space(ctx),
                                   [("a", synthetic.CLASSES["colours"], [1, 0, 3, 2])])
    for fn, domain in ((model.evaluate, "colours"), (untrained.set_data, "a"), (sn.set_data, "a")):
        e = expect_error(mpnas.InvalidArgumentError, -1, fn, domain, images, labels + [0])
        if e:
            check("25 labels for 24 images" in e.message, "message %r" % e.message)
        expect_error(mpnas.InvalidArgumentError, -1, fn, domain, images, labels[:-1])
        expect_error(mpnas.InvalidArgumentError, -1, fn, domain, images, labels, count=23)
        expect_error(mpnas.InvalidArgumentError, -1, fn, domain, images[:-1], labels)
    check(model.evaluate("colours", images, labels, count=24) ==
          model.evaluate("colours", images, labels), "a count that agrees")
    untrained.set_data("a", images, labels, count=24)
    sn.set_data("a", images, labels, count=24)
    with model.predictor() as p:
        e = expect_error(mpnas.InvalidArgumentError, -1, p.run, "colours", images, count=3)
        if e:
            check("count=3" in e.message and "24 images" in e.message, "message %r" % e.message)
        expect_error(mpnas.InvalidArgumentError, -1, p.predict, "colours", images, count=25)
        expect_error(mpnas.InvalidArgumentError, -1, p.run, "colours", images + b"\0")
        check(len(p.run("colours", images, count=24, numpy=False)) == 24, "count=24")


def test_numpy_shapes():
    """The reported cases with numpy arrays: (N, 32, 32, 1) uint8 for a 32x32x3 space is
    N images (replicated, as numpy.repeat does), not N/3; wrong shapes, extra labels and
    float labels are refused."""
    if numpy is None:
        return "numpy is not installed"
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    grey, rgb, labels = grey_images(9)
    g4 = numpy.frombuffer(grey, numpy.uint8).reshape(9, 32, 32, 1)
    rgb4 = numpy.repeat(g4, 3, axis=-1)
    check(rgb4.tobytes() == rgb, "the fixture")
    want_eval = model.evaluate("colours", rgb4, labels)
    with model.predictor() as p:
        want = p.run("colours", rgb4, numpy=False)
        check(p.run("colours", g4, numpy=False) == want, "(N, H, W, 1) uint8 replicated")
        check(len(p.predict("colours", g4, numpy=False)) == 9, "predict: one result per image")
        check(p.run("colours", g4[:, :, :, 0].astype(numpy.float32) / 255, numpy=False) ==
              p.run("colours", rgb4.astype(numpy.float32) / 255, numpy=False), "(N, H, W) float32 replicated")
        check(p.run("colours", g4[::2], numpy=False) == want[::2], "a non-contiguous view")
        check(p.run("colours", rgb4[4], numpy=False) == want[4:5], "(H, W, C): one image")
        check(model.evaluate("colours", g4, numpy.array(labels, numpy.int64)) == want_eval,
              "evaluate")
        for bad in (rgb4.reshape(9, 3072), numpy.zeros((3, 32, 32, 2), numpy.uint8),
                    rgb4.reshape(9, 32, 96), numpy.zeros((3, 32, 32, 3, 1), numpy.float32)):
            e = expect_error(mpnas.InvalidArgumentError, -1, p.run, "colours", bad)
            if e:
                check(str(bad.shape) in e.message and "(N, 32, 32, 3)" in e.message,
                      "message %r" % e.message)
    expect_error(mpnas.InvalidArgumentError, -1, model.evaluate, "colours", g4,
                 numpy.array(labels + [0, 1, 2], numpy.int32))
    for dtype in (numpy.float32, numpy.float64):
        expect_raises(TypeError, model.evaluate, "colours", rgb4, numpy.array(labels, dtype))
    sn = mpnas.Supernet(tiny_space(ctx))
    sn.add_domain("grey", synthetic.CLASSES["colours"])
    sn.set_data("grey", g4, numpy.array(labels))
    check(sn.domain_stat("grey", "train_size") == 9,
          "set_data took %g images" % sn.domain_stat("grey", "train_size"))


def test_parameter_names():
    """Each handle takes its own parameter names only: its table's short names and the
    header's constants with its own prefixes (every prefix used to be stripped, so a
    supernet took "train_steps" as its "steps" and a model "MPNAS_SEARCH_STEPS")."""
    ctx = mpnas.Context(threads=1)
    space = tiny_space(ctx)
    sn = mpnas.Supernet(space)
    sn.add_domain("a", 3)
    model = mpnas.Model.create(space, [("a", 3, [0, 0, 0, 0])])
    sn.set("steps", 5)
    model.set("steps", 6)
    cases = [(sn.set, "train_steps"), (sn.set, "MPNAS_TRAIN_STEPS"), (sn.set, "search_steps"),
             (sn.set, "STEPS"), (sn.set, "mpnas_search_steps"), (model.set, "MPNAS_SEARCH_STEPS"),
             (model.set, "search_steps"), (model.set, "train_steps"), (model.set, "MPNAS_STEPS"),
             (ctx.set, "MPNAS_SPACE_STEM_CHANNELS"), (ctx.set, "space_threads"),
             (space.set, "MPNAS_CONTEXT_THREADS"), (space.set, "context_threads")]
    for fn, name in cases:
        e = expect_error(mpnas.UnknownParameterError, -2, fn, name, 7)
        if e:
            handle = type(fn.__self__).__name__
            check(e.message.startswith(handle) and repr(name) in e.message,
                  "the message names the handle and the parameter: %r" % e.message)
    e = expect_error(mpnas.UnknownParameterError, -2, sn.configure, train_steps=10)
    if e:
        check("did you mean" in e.message and "steps" in e.message, "suggestions: %r" % e.message)
    expect_error(mpnas.UnknownParameterError, -2, model.set_domain_int, "a", "MPNAS_TRAIN_STEPS", 1)
    expect_error(mpnas.UnknownParameterError, -2, model.set_domain_int, "a", "train_hflip", 1)
    check(sn.get("steps") == 5 and model.get("steps") == 6,
          "steps changed: supernet %d, model %d" % (sn.get("steps"), model.get("steps")))
    # the handle's own constants
    sn.set("MPNAS_SEARCH_STEPS", 8)
    sn.set("MPNAS_ABDP_TAU", 0.5)
    model.set("MPNAS_TRAIN_STEPS", 9)
    model.set("MPNAS_ABDP_TAU", 0.25)
    ctx.set("MPNAS_CONTEXT_THREADS", 1)
    space.set("MPNAS_SPACE_HEAD_CHANNELS", 40)
    model.set_domain_int("a", "MPNAS_DOMAIN_HFLIP", 1)
    check(sn.get("steps") == 8 and model.get("MPNAS_TRAIN_STEPS") == 9, "own constants")
    check(sn.get("abdp_tau") == 0.5 and model.get("abdp_tau") == 0.25, "ABDP on both")
    check(space.get("head_channels") == 40, "space constant")
    check(model.get("MPNAS_MODEL_NUM_LAYERS") == 4, "MPNAS_MODEL_* on a model")
    expect_error(mpnas.UnknownParameterError, -2, sn.get, "MPNAS_MODEL_NUM_LAYERS")


def test_nul_paths():
    """A path (or name) with an embedded NUL is refused before C sees it (C used to stop
    at the NUL: model.save("dir/a\\0b") wrote dir/a)."""
    ctx = mpnas.Context(threads=1, seed=11)
    model = trained_model(ctx)
    sn = tiny_supernet(ctx, steps=2)
    sn.search(1)  # a checkpoint to save
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "a")
        for fn in (model.save, model.save_checkpoint, model.load_checkpoint,
                   sn.save_checkpoint, sn.load_checkpoint,
                   lambda path: mpnas.Model.load(ctx, path), ctx.load_model):
            for path in (good + "\0b", os.fsencode(good) + b"\0b"):
                e = expect_error(mpnas.InvalidArgumentError, -1, fn, path)
                if e:
                    check(isinstance(e, ValueError) and "NUL" in e.message,
                          "message %r" % e.message)
        check(os.listdir(tmp) == [], "files written: %s" % os.listdir(tmp))
        model.save(good)  # the same calls without the NUL work
        check(mpnas.Model.load(ctx, os.fsencode(good)).domains == model.domains, "load")
    expect_error(mpnas.InvalidArgumentError, -1, sn.add_domain, "b\0c", 3)
    check(sn.domains == list(DOMAINS), "domains %s" % sn.domains)
    expect_error(mpnas.InvalidArgumentError, -1, model.space.parse_path, "k3e2 k5e2 k3e4 zero\0x")


def test_value_types():
    """Labels must be integers (float labels used to be truncated); integer parameters
    take ints (str and float refused: configure(steps="3") used to work), real ones ints
    or floats (not str)."""
    ctx = mpnas.Context(threads=1)
    sn = mpnas.Supernet(tiny_space(ctx))
    sn.add_domain("a", 3)
    images, labels = synthetic.make("stripes", 4)
    for bad in (array.array("f", labels), array.array("d", labels), [float(v) for v in labels],
                [0, 1, 2.5, 0], ["0", "1", "2", "0"]):
        e = expect_raises(TypeError, sn.set_data, "a", images, bad)
        if e:
            check("labels" in str(e), "message %r" % str(e))
    for good in (labels, array.array("b", labels), array.array("q", labels), bytes(labels),
                 [True, False, 1, 0]):
        sn.set_data("a", images, good)
    sn.set("steps", 5)
    for fn, name, value in ((sn.set, "steps", "3"), (sn.set, "steps", 3.0), (sn.set, "steps", 2.5),
                            (sn.configure, "train_batch", "8"), (sn.set_int, "steps", 3.7),
                            (sn.set, "learning_rate", "0.1"), (sn.set_double, "momentum", "0.5"),
                            (sn.set, "method", 1.0), (sn.set, "learning_rate", None),
                            (ctx.set, "threads", "1"), (sn.space.set, "stem_channels", 8.0)):
        if fn == sn.configure:
            e = expect_raises(TypeError, fn, **{name: value})
        else:
            e = expect_raises(TypeError, fn, name, value)
        if e:
            check(name in str(e), "the message names the parameter: %r" % str(e))
    check(sn.get("steps") == 5, "steps changed to %d" % sn.get("steps"))
    sn.configure(learning_rate=1, momentum=0.5, method="independent", valid_batch=True)
    check(sn.get("learning_rate") == 1.0 and sn.get("valid_batch") == 1, "an int for a real")
    sn.set("method", mpnas.METHOD_MPNAS)
    if numpy is not None:
        sn.configure(steps=numpy.int64(7), learning_rate=numpy.float32(0.5))
        check(sn.get("steps") == 7 and sn.get("learning_rate") == 0.5, "numpy scalars")


def test_collective():
    """Context.set_collective: arguments checked; two workers on two threads (a Python
    barrier as the all-reduce) end with identical searches, and the same paths as one
    worker on the same global batch."""
    import threading
    ctx = mpnas.Context(threads=1, seed=5)
    expect_raises(TypeError, ctx.set_collective, 3, 0, 2)
    expect_raises(TypeError, ctx.set_collective, lambda a, t: None, 0.5, 2)
    expect_raises(mpnas.MpnasError, ctx.set_collective, lambda a, t: None, 2, 2)
    expect_raises(mpnas.MpnasError, ctx.set_collective, None, 0, 2)
    ctx.set_collective(None, 0, 1)
    ctx.close()

    slots, barrier, calls = [None, None], threading.Barrier(2), [0]

    def make_sum(rank):
        def allreduce(arr, dtype):
            slots[rank] = list(arr)
            barrier.wait()
            other = slots[1 - rank]
            total = [a + b for a, b in zip(slots[0], slots[1])]  # one order on both
            barrier.wait()
            for i, v in enumerate(total):
                arr[i] = v
            calls[0] += rank == 0
            check(len(other) == len(arr) and dtype in ("f32", "f64", "i64"), "buffer, type")
        return allreduce

    def run_search(rank, world, out):
        c = mpnas.Context(threads=1, seed=5)
        if world > 1:
            c.set_collective(make_sum(rank), rank, world)
        sn = tiny_supernet(c, steps=3)
        sn.search()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "search.ckpt")
            sn.save_checkpoint(path)
            with open(path, "rb") as f:
                out[rank] = ([sn.path(d) for d in sn.domains], f.read())
        c.close()

    two, one = [None, None], [None]
    threads = [threading.Thread(target=run_search, args=(r, 2, two)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_search(0, 1, one)
    check(two[0] is not None and two[1] is not None, "both workers finished")
    if two[0] is None or two[1] is None:
        return
    check(two[0][1] == two[1][1], "the two workers' search checkpoints are identical")
    check(two[0][0] == one[0][0], "the same paths as one worker")
    check(calls[0] > 3 * 3, "the hook was called (%d times)" % calls[0])


def test_handles_not_copied():
    """copy / deepcopy / pickle of a handle: TypeError (a copy shared the C object and
    freed it twice)."""
    import copy
    import pickle
    ctx = mpnas.Context(threads=1, seed=1)
    space = tiny_space(ctx)
    for h in (ctx, space):
        for fn in (copy.copy, copy.deepcopy, pickle.dumps):
            try:
                fn(h)
                check(False, "%s(%s) did not raise" % (fn.__name__, type(h).__name__))
            except TypeError as e:
                check("cannot be" in str(e), "%s: %s" % (fn.__name__, e))
    check(space.num_layers == 4 and not ctx.closed, "the handles still work")
    ctx.close()


def test_close_in_callback():
    """Closing the running handle (or its context) from its progress callback raises
    StateError (it freed the C object under the call: a crash); the run stops cleanly."""
    ctx = mpnas.Context(threads=1, seed=1)
    model = mpnas.Model.create(tiny_space(ctx), [("stripes", synthetic.CLASSES["stripes"],
                                                  [1, 0, 3, 2])])
    model.set_data("stripes", *TRAIN["stripes"])
    model.configure(steps=6, batch=8)
    for target in (model, ctx):
        expect_error(mpnas.StateError, -10, model.train,
                     progress=lambda step, total, t=target: t.close(), every=1)
        check(not model.closed and not ctx.closed, "nothing was closed")
    check(model.train() == 6, "the model trains to the end afterwards")
    model.close()
    check(model.closed, "closes once the call is over")
    ctx.close()


def test_ctrl_c():
    """Ctrl-C (SIGINT) during train() without a progress callback stops it within a step
    or two with KeyboardInterrupt (it used to run to the end first), the model intact.
    Python's default handler is installed for the test: a process started with SIGINT
    ignored (a background job of a non-interactive shell) has none, and the wrapper then
    rightly leaves the signal alone."""
    import signal
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_stops_train()
    finally:
        signal.signal(signal.SIGINT, before)


def _ctrl_c_stops_train():
    import signal
    import threading
    import time
    ctx = mpnas.Context(threads=1, seed=1)
    model = mpnas.Model.create(tiny_space(ctx), [("stripes", synthetic.CLASSES["stripes"],
                                                  [1, 0, 3, 2])])
    model.set_data("stripes", *TRAIN["stripes"])
    model.configure(steps=100000, batch=8)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.time()
    try:
        model.train()
        check(False, "train() ran to the end despite Ctrl-C")
    except KeyboardInterrupt:
        check(time.time() - start < 30, "stopped soon after the signal")
        check(0 < model.step < 100000, "stopped part way (step %d)" % model.step)
    timer.cancel()
    check(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
          "Python's SIGINT handler is back")
    step = model.step
    check(model.train(max_steps=2) == step + 2, "and resumes")
    ctx.close()


def test_argument_ranges():
    """Integers outside a C argument's range raise OutOfRangeError (they were wrapped:
    2**64 + 5 steps became 5, domain 2**32 + 1 became domain 1); floats raise TypeError."""
    ctx = mpnas.Context(threads=1, seed=1)
    space = tiny_space(ctx)
    model = trained_model(ctx)
    sn = mpnas.Supernet(tiny_space(ctx))
    for fn, args in ((sn.set, ("steps", 2 ** 64 + 5)), (model.path, (2 ** 32,)),
                     (model.path, (2 ** 32 + 1,)), (model.domain_classes, (-2 ** 31 - 1,)),
                     (space.num_ops, (2 ** 32,)), (sn.add_domain, ("x", 2 ** 32 + 3)),
                     (model.evaluate, (2 ** 32 + 1,) + TEST["colours"])):
        expect_error(mpnas.OutOfRangeError, -3, fn, *args)
    for fn, args in ((model.path, (1.9,)), (sn.add_domain, ("x", 3.9))):
        try:
            fn(*args)
            check(False, "%s%r did not raise" % (fn.__name__, args))
        except TypeError:
            pass
    check(sn.num_domains == 0, "no domain was added")
    with mpnas.Predictor(model) as p:
        expect_error(mpnas.OutOfRangeError, -3, p.run, 2 ** 32 + 1, TEST["colours"][0])
    ctx.seed = 2 ** 64 - 1  # a 64-bit seed given unsigned is still accepted
    check(ctx.seed == 2 ** 64 - 1, "the unsigned seed")
    expect_error(mpnas.OutOfRangeError, -3, setattr, ctx, "seed", 2 ** 64)
    ctx.close()


def test_model_space_read_only():
    """A model's or supernet's space (a view) cannot be changed: StateError (a changed
    input size made predictors read past the images; other changes saved files that did
    not load)."""
    ctx = mpnas.Context(threads=1, seed=1)
    model = trained_model(ctx)
    sn = mpnas.Supernet(tiny_space(ctx))
    for view in (model.space, sn.space):
        expect_error(mpnas.StateError, -10, view.set, "input_height", 512)
        expect_error(mpnas.StateError, -10, view.clear_stages)
        expect_error(mpnas.StateError, -10, view.add_stage, 8, 1)
        expect_error(mpnas.StateError, -10, view.set_choices, -1, [7], [16])
        check(view.num_layers == 4 and view.input_shape == (32, 32, 3), "unchanged")
    data = model.save_buffer()
    check(mpnas.Model.load_buffer(ctx, data).space.num_layers == 4, "the model still loads")
    ctx.close()


def test_image_list_forms():
    """Flat one-channel buffers with dtype "u8_grey"/"f32_grey" count one-channel images
    (they were read as colour images: a third of the count); a list of numpy float32
    scalars is float32 (it was truncated to uint8); a list of numpy images is stacked."""
    ctx = mpnas.Context(threads=1, seed=1)
    model = trained_model(ctx)
    images, _ = TEST["stripes"]
    h, w, c = model.space.input_shape
    grey = bytes(images[:3 * h * w])
    with mpnas.Predictor(model) as p:
        check(len(p.run("stripes", grey, dtype="u8_grey")) == 3, "3 grey u8 images")
        check(len(p.run("stripes", list(grey), dtype="f32_grey")) == 3, "3 grey f32 images")
        if numpy is None:
            return None
        arr = numpy.frombuffer(bytes(images), dtype=numpy.uint8).reshape(-1, h, w, c)
        f = arr[:2].astype(numpy.float32) * 0.5 + 0.25
        want = numpy.asarray(p.run("stripes", f))
        got = numpy.asarray(p.run("stripes", list(f.ravel())))
        check(numpy.array_equal(want, got), "numpy float32 scalars are floats")
        stacked = numpy.asarray(p.run("stripes", [f[0], f[1]]))
        check(numpy.array_equal(want, stacked), "a list of numpy images")
        none = p.run("stripes", numpy.zeros((0, h, w, c), dtype=numpy.uint8))
        check(none.shape == (0, synthetic.CLASSES["stripes"]), "no images: an empty result")
        # the other byte order ('>f4' here): converted, not refused
        other = ">f4" if sys.byteorder == "little" else "<f4"
        check(numpy.array_equal(want, numpy.asarray(p.run("stripes", f.astype(other)))),
              "images in the other byte order")
        lab = numpy.arange(2, dtype=other.replace("f", "i"))
        e1 = model.evaluate("stripes", f, list(range(2)))
        e2 = model.evaluate("stripes", f, lab)
        check(e1 == e2, "labels in the other byte order")
    check(model.space.parse_path(b"k3e2 k5e2 k3e4 zero") ==
          model.space.parse_path("k3e2 k5e2 k3e4 zero"), "parse_path takes ASCII bytes")
    ctx.close()


def main():
    print("python %s, %s, library %s%s" % (sys.version.split()[0], mpnas.__file__, mpnas.library_path(),
                                           ", numpy %s" % numpy.__version__ if numpy else ", no numpy"))
    for test in (test_library, test_context, test_errors, test_buffers, test_space, test_search,
                 test_cancel_and_resume, test_checkpoint, test_lifetime, test_model,
                 test_model_save_load, test_quantize, test_export_onnx, test_model_checkpoint, test_from_supernet, test_c_agreement, test_image_shapes,
                 test_image_counts, test_numpy_shapes, test_parameter_names, test_nul_paths,
                 test_value_types, test_collective, test_handles_not_copied,
                 test_close_in_callback, test_ctrl_c, test_argument_ranges,
                 test_model_space_read_only, test_image_list_forms):
        run(test)
    print("# RESULT %d %d" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
