#!/usr/bin/env python3
"""example.py - the whole libmpnas pipeline from Python, in well under a minute on 2 cores.

  1. makes three small procedural image domains in pure Python (python/synthetic.py:
     stripes, colours, position; 32x32x3 uint8);
  2. describes a small search space (4 searchable layers, kernels 3/5, expansions 2/4);
  3. runs a short MPNAS search: one controller per domain picks that domain's path;
  4. derives the multi-path model from the searched paths and trains it from scratch;
  5. evaluates it on held-out images, classifies a few through a predictor;
  6. saves it, reloads it (from the file and from bytes) and checks that the reloaded
     model predicts exactly the same.

    python3 python/example.py [--out DIR] [--threads N] [--search-steps N] [--train-steps N]

The library is found through MPNAS_LIBRARY or ../lib/libmpnas.so (`make` at the top of
the repository builds it). With --out the model is kept as DIR/example.mpnas; draw it
with `build/<config>/examples/figures DIR/example.mpnas` (docs/FIGURES.md)."""

import argparse
import os
import sys
import tempfile
import time

# OpenMP threads that wait by spinning collapse when the cores are busy with other work
# (measured here: 2 s alone, 54 s next to other jobs); passive waiting costs little.
# Set before the library (and its OpenMP runtime) is loaded; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpnas  # noqa: E402
import synthetic  # noqa: E402


def small_space(ctx):
    space = mpnas.Space(ctx, "empty").configure(stem_channels=8, stem_stride=2, head_channels=64)
    space.add_stage(16, 2, 2, "relu", True)    # out channels, layers, stride, act, skippable
    space.add_stage(24, 2, 2, "hswish", True)
    space.set_choices(-1, kernels=[3, 5], expansions=[2, 4])
    return space


def bar(label, step, total, start, extra=""):
    width = 24
    filled = width * step // total
    tty = sys.stdout.isatty()
    sys.stdout.write("%s  %s [%s%s] %4d/%d %5.1fs %s" % ("\r" if tty else "", label, "#" * filled,
                                                       " " * (width - filled), step, total,
                                                       time.time() - start, extra))
    if step == total or not tty:
        sys.stdout.write("\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="directory to keep the model file in (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--search-steps", type=int, default=60)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--train-images", type=int, default=600, help="per domain")
    args = ap.parse_args()
    t0 = time.time()

    # 1. Data: train and test images never overlap (different index ranges).
    train = {d: synthetic.make(d, args.train_images, seed=1) for d in synthetic.DOMAINS}
    test = {d: synthetic.make(d, 200, seed=1, start=100000) for d in synthetic.DOMAINS}

    with mpnas.Context(threads=args.threads, seed=1) as ctx:
        print("libmpnas %s (%s), kernels %s, %d thread(s); data: %s, %d training images each"
              % (mpnas.version(), mpnas.library_path(), ctx.isa_active, ctx.threads,
                 ", ".join(synthetic.DOMAINS), args.train_images))

        # 2-3. Space, supernet, search.
        space = small_space(ctx)
        sn = mpnas.Supernet(space)
        for d in synthetic.DOMAINS:
            sn.add_domain(d, synthetic.CLASSES[d])
            sn.set_data(d, *train[d])                 # bytes + list of labels; copied
        sn.configure(steps=args.search_steps, train_batch=16, valid_batch=32)
        start = time.time()

        def search_progress(step, total):
            acc = " ".join("%.2f" % sn.domain_stat(d, "valid_accuracy") for d in sn.domains)
            bar("search", step, total, start, "acc " + acc)

        sn.search(progress=search_progress, every=10)
        print("\n%-9s %-24s %8s %8s" % ("domain", "path", "kMAC", "params"))
        for d in sn.domains:
            macs, params = space.path_cost(sn.path(d), synthetic.CLASSES[d])
            print("%-9s %-24s %8.1f %8d" % (d, sn.path_string(d), macs / 1e3, params))
        names = sn.domains
        jac = sn.jaccard()
        print("\nJaccard similarity of the paths' node sets:")
        print("%9s" % "" + "".join("%9s" % n for n in names))
        for n, row in zip(names, jac):
            print("%-9s" % n + "".join("%9.2f" % v for v in row))

        # 4. The multi-path model: the searched paths, trained from scratch.
        model = mpnas.Model.from_supernet(sn)
        sn.close()                                    # the model has its own copies
        model.configure(steps=args.train_steps, batch=16, valid_every=25)
        print("\nmodel: %d nodes, %d parameters, %.1f kMAC (all domains)"
              % (model.nodes, model.params, model.macs / 1e3))
        start = time.time()

        def train_progress(step, total):
            acc = " ".join("%.2f" % model.domain_stat(d, "valid_accuracy") for d in model.domains)
            bar("train ", step, total, start, "valid acc " + acc)

        model.train(progress=train_progress, every=25)

        # 5. Evaluation and a few predictions.
        print("\n%-9s %8s %8s" % ("domain", "top-1", "loss"))
        for d in model.domains:
            ev = model.evaluate(d, *test[d])
            print("%-9s %8.3f %8.3f" % (d, ev.top1, ev.loss))
        images, labels = test["colours"]
        with model.predictor() as predictor:
            probs = predictor.run("colours", images[:8 * synthetic.PIXELS], output="probabilities")
        print("\ncolours, first 8 test images: predicted / label / confidence")
        for p, y in zip(probs, labels):
            k = max(range(len(p)), key=p.__getitem__)
            print("  %d / %d / %.2f" % (k, y, p[k]))

        # 6. Save, reload, compare.
        model.clear_data()
        out_dir = args.out or tempfile.mkdtemp(prefix="mpnas-example-")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "example.mpnas")
        model.save(path)
        reloaded = mpnas.Model.load(ctx, path)
        from_bytes = mpnas.Model.load_buffer(ctx, model.save_buffer())
        same = True
        for d in model.domains:
            images = test[d][0]
            want = model.predictor().run(d, images, flat=True).tobytes()  # bit for bit
            same &= reloaded.predictor().run(d, images, flat=True).tobytes() == want
            same &= from_bytes.predictor().run(d, images, flat=True).tobytes() == want
        print("\nsaved %s (%d bytes); reloaded from the file and from bytes: predictions %s"
              % (path, os.path.getsize(path), "identical" if same else "DIFFER"))
        if not args.out:
            os.remove(path)
            os.rmdir(out_dir)
    print("done in %.1f s" % (time.time() - t0))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
