#!/usr/bin/python3
"""bench_q8_torch.py - MBV2-9 batch-1 latency at one thread, float32 and int8: libmpnas's
bench_train --int8 side by side with PyTorch's float and static-int8 paths, alternating.

    /usr/bin/python3 bench/bench_q8_torch.py --bin build/<cfg>/bench/bench_train \
        [--rounds 5] [--reps 200] [--engines qnnpack onednn] [--json FILE]

Each round runs, one after the other: bench_train --threads 1 --rounds 1 --steps 2
--warm 2 --lat-reps REPS --int8 --json (its float and int8 predictors alternating on one
image, medians of REPS), then PyTorch in a child process of this script once per BLAS
configuration (Debian's default BLAS; and with LD_LIBRARY_PATH on Debian's
libopenblas0-pthread when it is installed, which PyTorch's float NCHW convolutions need to
be fast here), each timing every PyTorch variant (median of REPS batch-1 forwards after
10 warm-up ones). Reported: the median over rounds of each figure, and ratios.

PyTorch side: the network of shared/bench/bench_train_torch.py (make_net: the same MBV2-9,
3 input channels, 32x32, 10 classes), in eval mode, torch.set_num_threads(1):
- float32: eager NCHW, eager channels_last, and TorchScript (trace + freeze) NCHW.
- int8: post-training static quantisation in FX graph mode (prepare_fx / convert_fx with
  the engine's default qconfig mapping: per-channel int8 weights where the engine does
  them, uint8 activations, conv+BN(+ReLU) fused by FX; ReLU6 runs as a quantised clamp),
  calibrated on 32 random images, then traced and frozen with TorchScript, once per
  quantised engine this PyTorch build has (torch.backends.quantized.supported_engines:
  qnnpack and onednn in Debian's 1.13; no fbgemm/x86). Dynamic quantisation is not
  measured: it quantises only nn.Linear / recurrent weights at run time, so it leaves
  every conv of this network in float (it would time the float network).
The weights are PyTorch's random init (both sides time a forward only; int8 speed does
not depend on the values). Run with /usr/bin/python3 (Debian's python3-torch). PyTorch
is optional for libmpnas: nothing in the build or the tests needs this script.
"""
import argparse
import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_net_module(path):
    spec = importlib.util.spec_from_file_location("bench_train_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def med_ms(torch, fn, x, reps, warm=10):
    with torch.inference_mode():
        for _ in range(warm):
            fn(x)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def build_variants(torch, netmod, engines):
    torch.manual_seed(0)
    net = netmod.make_net(3).eval()
    x1 = torch.randn(1, 3, 32, 32)
    v = {}
    v["torch float NCHW eager"] = (net, x1)
    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    v["torch float channels_last eager"] = (net_cl, x1.contiguous(memory_format=torch.channels_last))
    with torch.no_grad():
        v["torch float NCHW jit"] = (torch.jit.freeze(torch.jit.trace(net, x1)), x1)
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    calib = torch.randn(32, 3, 32, 32)
    notes = {}
    for eng in engines:
        if eng not in torch.backends.quantized.supported_engines:
            notes[eng] = "not in this build"
            continue
        try:
            torch.backends.quantized.engine = eng
            qm = get_default_qconfig_mapping(eng)
            p = prepare_fx(copy.deepcopy(net), qm, example_inputs=(x1,))
            with torch.no_grad():
                for i in range(0, 32, 8):
                    p(calib[i:i + 8])
            q = convert_fx(p)
            with torch.no_grad():
                qj = torch.jit.freeze(torch.jit.trace(q, x1))
                qj(x1)
            v["torch int8 %s jit" % eng] = (qj, x1, eng)
            v["torch int8 %s fx" % eng] = (q, x1, eng)
        except Exception as e:  # report, do not hide: an engine that does not run here
            notes[eng] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200])
    return v, notes


def ours(binary, reps):
    cmd = [binary, "--threads", "1", "--rounds", "1", "--steps", "2", "--warm", "2",
           "--lat-reps", str(reps), "--int8", "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("{"):
            r = json.loads(line)
            if r.get("bench") == "latency_int8":
                return r["b1_float_ms"], r["b1_int8_ms"]
    raise RuntimeError("bench_train printed no latency_int8 line")


OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"


def worker(a):
    """One round of PyTorch timings in this process: JSON {variant: ms} on stdout."""
    import torch
    torch.set_num_threads(1)
    variants, notes = build_variants(torch, load_net_module(a.torch_script), a.engines)
    res = {}
    for name, v in variants.items():
        if len(v) == 3:
            torch.backends.quantized.engine = v[2]
        res[name] = med_ms(torch, v[0], v[1], a.reps)
    print(json.dumps({"ms": res, "notes": notes, "torch": torch.__version__}), flush=True)


def torch_round(a, blas):
    env = dict(os.environ)
    if blas == "openblas":
        env["LD_LIBRARY_PATH"] = OPENBLAS + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--reps", str(a.reps),
           "--torch-script", a.torch_script, "--engines"] + a.engines
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    r = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
    return {"%s (%s BLAS)" % (k, blas): v for k, v in r["ms"].items()}, r["notes"], r["torch"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", help="bench_train binary")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--engines", nargs="+", default=["qnnpack", "onednn"])
    ap.add_argument("--torch-script",
                    default=os.path.join(HERE, "..", "..", "shared", "bench", "bench_train_torch.py"))
    ap.add_argument("--json", help="write every round's figures here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if not a.bin:
        ap.error("--bin is required")
    blases = ["default"] + (["openblas"] if os.path.isdir(OPENBLAS) else [])
    if len(blases) == 1:
        print("# %s not found (Debian's libopenblas0-pthread): PyTorch with the default BLAS only"
              % OPENBLAS, flush=True)
    rounds = {"ours float": [], "ours int8": []}
    notes, version = {}, "?"
    for r in range(a.rounds):
        f, q = ours(a.bin, a.reps)
        rounds["ours float"].append(f)
        rounds["ours int8"].append(q)
        for blas in blases:
            ms, nt, version = torch_round(a, blas)
            notes.update(nt)
            for k, v in ms.items():
                rounds.setdefault(k, []).append(v)
        print("# round %d: " % (r + 1) + ", ".join("%s %.3f" % (k, vs[-1]) for k, vs in rounds.items()),
              flush=True)
    for eng, why in notes.items():
        print("# engine %s: not measured (%s)" % (eng, why))
    med = {k: statistics.median(vs) for k, vs in rounds.items()}
    print("torch %s, %d rounds, %d reps each, 1 thread, batch 1" % (version, a.rounds, a.reps))
    print("| path | median ms | range ms | / ours int8 |")
    print("|---|---:|---:|---:|")
    for k, vs in rounds.items():
        print("| %s | %.3f | %.3f-%.3f | %.2fx |" % (k, med[k], min(vs), max(vs), med[k] / med["ours int8"]))
    tf = [k for k in med if k.startswith("torch float")]
    tq = [k for k in med if k.startswith("torch int8")]
    print("ours: float / int8 = %.2fx" % (med["ours float"] / med["ours int8"]))
    if tf and tq:
        bf, bq = min(tf, key=med.get), min(tq, key=med.get)
        print("torch best float (%s) / best int8 (%s) = %.2fx" % (bf, bq, med[bf] / med[bq]))
        print("torch best int8 / ours int8 = %.2fx; torch best float / ours float = %.2fx"
              % (med[bq] / med["ours int8"], med[bf] / med["ours float"]))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"rounds": rounds, "median": med, "notes": notes, "torch": version}, fh, indent=1)


if __name__ == "__main__":
    main()
