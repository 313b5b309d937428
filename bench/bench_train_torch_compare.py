#!/usr/bin/python3
"""bench_train_torch_compare.py - the MBV2-9 reference network end to end, libmpnas's
bench_train side by side with PyTorch (shared/bench/bench_train_torch.py), alternating.

    /usr/bin/python3 bench/bench_train_torch_compare.py --bin build/<cfg>/bench/bench_train \
        [--threads 1 2] [--rounds 3] [--steps 10] [--batch 64] [--configs cl cl-openblas] \
        [--torch-script ../shared/bench/bench_train_torch.py] [--markdown] [--json FILE]

For each thread count, `rounds` times: run bench_train --json (its own median of
--ours-rounds rounds of `steps` training steps), then the PyTorch script once per
PyTorch configuration (median of `steps` steps). Each side runs in its own process, so
neither inherits the other's threads or memory. Reports per figure the median over
rounds of each side, PyTorch's best configuration for that figure (as
shared/design/BENCHMARKS.md asks), and the ratio ours / PyTorch (> 1: libmpnas is better;
for latency the ratio is PyTorch ms / ours ms). Alternating keeps both sides exposed to
the same machine state, which matters on a shared VM.

PyTorch configurations: nchw (its default layout), cl (channels_last), cl-openblas
(channels_last with LD_LIBRARY_PATH on Debian's libopenblas0-pthread; skipped when it is
not installed). Run with /usr/bin/python3 (Debian's python3-torch). PyTorch is optional
for libmpnas: nothing in the build or the tests needs this script.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
# (key in both sides' JSON, label, higher is better)
FIGURES = [("train_img_s", "train img/s", True), ("eval_b_img_s", "eval batch img/s", True),
           ("eval_b1_latency_ms", "batch-1 latency ms", False)]


def json_lines(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def ours(a, threads):
    cmd = [a.bin, "--json", "--threads", str(threads), "--steps", str(a.steps),
           "--rounds", str(a.ours_rounds), "--batch", str(a.batch)]
    return json_lines(cmd)[0]


def torch_run(a, threads, config):
    cmd = [sys.executable, a.torch_script, "--threads", str(threads), "--steps", str(a.steps),
           "--batch", str(a.batch)]
    env = dict(os.environ)
    if config != "nchw":
        cmd.append("--channels-last")
    if config == "cl-openblas":
        env["LD_LIBRARY_PATH"] = OPENBLAS + ":" + env.get("LD_LIBRARY_PATH", "")
        env["OPENBLAS_NUM_THREADS"] = str(threads)  # as shared/bench/run_all.sh does
    else:  # the script reads LD_LIBRARY_PATH to label its BLAS: keep it honest
        env["LD_LIBRARY_PATH"] = ":".join(p for p in env.get("LD_LIBRARY_PATH", "").split(":")
                                          if "openblas" not in p)
    return json_lines(cmd, env)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path of bench_train (make bench-train)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per run")
    ap.add_argument("--ours-rounds", type=int, default=3, help="bench_train --rounds")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--configs", nargs="+", default=["cl", "cl-openblas"],
                    choices=["nchw", "cl", "cl-openblas"])
    ap.add_argument("--torch-script",
                    default=os.path.join(HERE, "..", "..", "shared", "bench", "bench_train_torch.py"))
    ap.add_argument("--markdown", action="store_true", help="print the final table as markdown")
    ap.add_argument("--json", default=None, help="also write every run's record to this file")
    a = ap.parse_args()
    if not os.path.exists(a.bin):
        sys.exit(f"no {a.bin}: build it with make bench-train (or its binary target)")
    if not os.path.exists(a.torch_script):
        sys.exit(f"no {a.torch_script}: pass --torch-script")
    configs = [c for c in a.configs if c != "cl-openblas" or os.path.isdir(OPENBLAS)]
    if len(configs) < len(a.configs):
        print(f"# {OPENBLAS} missing (apt-get install libopenblas0-pthread): cl-openblas skipped")

    runs, rows = [], []
    print(f"# MBV2-9, batch {a.batch}, {a.rounds} alternating rounds, {a.steps} steps per run, "
          f"PyTorch configs {' '.join(configs)}", flush=True)
    for t in a.threads:
        samples = {"ours": {k: [] for k, _, _ in FIGURES}}
        samples.update({c: {k: [] for k, _, _ in FIGURES} for c in configs})
        for r in range(a.rounds):
            recs = [("ours", ours(a, t))] + [(c, torch_run(a, t, c)) for c in configs]
            for side, rec in recs:
                runs.append(dict(rec, side=side, round=r))
                for k, _, _ in FIGURES:
                    samples[side][k].append(rec[k])
            print(f"threads {t} round {r}: " + "; ".join(
                f"{side} " + " ".join(f"{rec[k]:g}" for k, _, _ in FIGURES) for side, rec in recs),
                flush=True)
        for k, label, higher in FIGURES:
            med = {side: statistics.median(v[k]) for side, v in samples.items()}
            pick = max if higher else min
            best = pick(configs, key=lambda c: med[c])
            ratio = med["ours"] / med[best] if higher else med[best] / med["ours"]
            rows.append(dict(threads=t, figure=label, ours=med["ours"], torch=med[best],
                             torch_config=best, ratio=ratio,
                             torch_all={c: med[c] for c in configs}))

    print()
    if a.markdown:
        print("| threads | figure | libmpnas | PyTorch best (config) | libmpnas speed-up | "
              "PyTorch per config |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            per = ", ".join(f"{c} {v:g}" for c, v in r["torch_all"].items())
            print(f"| {r['threads']} | {r['figure']} | {r['ours']:g} | {r['torch']:g} "
                  f"({r['torch_config']}) | {r['ratio']:.2f}x | {per} |")
    else:
        for r in rows:
            print(f"{r['threads']:2d}  {r['figure']:20s} ours {r['ours']:9g}  PyTorch "
                  f"{r['torch']:9g} ({r['torch_config']:11s})  speed-up {r['ratio']:5.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(runs=runs, table=rows), f, indent=1)


if __name__ == "__main__":
    main()
