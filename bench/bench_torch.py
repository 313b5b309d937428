#!/usr/bin/python3
"""bench_torch.py - the benchmark shapes through PyTorch, alone or side by side with
libmpnas's bench_kernels (alternating rounds, medians).

Needs Debian's python3-torch, so run it with /usr/bin/python3. PyTorch is optional for
libmpnas: nothing in the build or the tests needs this script.

    /usr/bin/python3 bench/bench_torch.py [--threads 1 2] [--reps 15] [--only dw3]
        PyTorch only, channels_last (its fastest layout on this machine).
    /usr/bin/python3 bench/bench_torch.py --compare --bin build/<cfg>/bench/bench_kernels \
        [--rounds 5] [--reps 11] [--markdown]
        For each shape and thread count, `rounds` times: run bench_kernels --json on that
        shape (a subprocess, `reps` repetitions, median), then PyTorch on the same shape
        (same reps, median). Reports the median over rounds of each and the speed ratio
        torch_ms / ours_ms (> 1: libmpnas is faster). Alternating keeps both sides
        exposed to the same machine state, which matters on a shared VM.

FLOP convention (same as bench_kernels.c and shared/bench/bench_conv_torch.py):
forward = 2*MACs; forward+backward = 3 x forward (forward, dX and dW).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# name, N, C, H, W, K, stride   (keep in sync with bench/bench_kernels.c)
DW_SHAPES = [
    ("dw3s1_c96_36", 32, 96, 36, 36, 3, 1),
    ("dw3s2_c144_36", 32, 144, 36, 36, 3, 2),
    ("dw3s1_c192_18", 32, 192, 18, 18, 3, 1),
    ("dw5s1_c192_18", 32, 192, 18, 18, 5, 1),
    ("dw7s1_c384_18", 32, 384, 18, 18, 7, 1),
    ("dw7s2_c384_18", 32, 384, 18, 18, 7, 2),
]
# name, N, Cin, Cout, H, W
PW_SHAPES = [
    ("pw_16to96_36", 32, 16, 96, 36, 36),
    ("pw_96to24_36", 32, 96, 24, 36, 36),
    ("pw_32to192_18", 32, 32, 192, 18, 18),
    ("pw_192to64_18", 32, 192, 64, 18, 18),
    ("pw_64to384_18", 32, 64, 384, 18, 18),
    ("pw_384to96_18", 32, 384, 96, 18, 18),
]


def out_dim(h, k, s):
    return (h + 2 * (k // 2) - k) // s + 1


def dw_flops(n, c, h, w, k, s):
    return 2.0 * n * c * out_dim(h, k, s) * out_dim(w, k, s) * k * k


def pw_flops(n, cin, cout, h, w):
    return 2.0 * n * cin * cout * h * w


def shapes(only):
    for (name, n, c, h, w, k, s) in DW_SHAPES:
        if not only or only in name:
            yield name, ("dw", n, c, h, w, k, s), dw_flops(n, c, h, w, k, s)
    for (name, n, cin, cout, h, w) in PW_SHAPES:
        if not only or only in name:
            yield name, ("pw", n, cin, cout, h, w), pw_flops(n, cin, cout, h, w)


# ---- PyTorch side -------------------------------------------------------------------

class TorchCase:
    """Tensors for one shape, channels_last, built once and reused across rounds."""

    def __init__(self, torch, spec):
        F = torch.nn.functional
        cl = torch.channels_last
        if spec[0] == "dw":
            _, n, c, h, w, k, s = spec
            cin, cout, groups, stride, pad = c, c, c, s, k // 2
        else:
            _, n, cin, cout, h, w = spec
            k, groups, stride, pad = 1, 1, 1, 0
        x = torch.randn(n, cin, h, w).contiguous(memory_format=cl)
        wt = (torch.randn(cout, cin // groups, k, k) * 0.1).contiguous(memory_format=cl)
        b = torch.zeros(cout)
        xg, wg, bg = x.clone().requires_grad_(True), wt.clone().requires_grad_(True), b.clone().requires_grad_(True)

        def fwd():
            with torch.no_grad():
                F.conv2d(x, wt, b, stride, pad, 1, groups)

        def fwdbwd():
            y = F.conv2d(xg, wg, bg, stride, pad, 1, groups)
            y.backward(torch.ones_like(y))
            xg.grad = None
            wg.grad = None
            bg.grad = None

        self.fns = {"fwd": fwd, "fwd+bwd": fwdbwd}


def time_median_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


# ---- libmpnas side --------------------------------------------------------------------

def ours_ms(binary, name, threads, reps):
    """Run bench_kernels on one shape; {mode: median ms}."""
    cmd = [binary, "--json", "--only", name, "--threads", str(threads), "--reps", str(reps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    res = {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if rec["kernel"] == name:
            res[rec["mode"]] = rec["median_ms"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=None, help="substring filter on shape names")
    ap.add_argument("--compare", action="store_true", help="alternate with bench_kernels")
    ap.add_argument("--bin", default=None, help="path of bench_kernels (with --compare)")
    ap.add_argument("--markdown", action="store_true", help="print the final table as markdown")
    ap.add_argument("--json", default=None, help="also write all records to this file")
    a = ap.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is not available (Debian python3-torch; run with /usr/bin/python3)")
    if a.compare and (not a.bin or not os.path.exists(a.bin)):
        sys.exit("--compare needs --bin pointing at bench_kernels (make bench-build)")
    torch.manual_seed(0)

    records = []
    print(f"# torch {torch.__version__}, {'ours vs PyTorch' if a.compare else 'PyTorch'}, "
          f"channels_last, reps {a.reps}" + (f", rounds {a.rounds}" if a.compare else ""), flush=True)
    for t in a.threads:
        torch.set_num_threads(t)
        for name, spec, flops in shapes(a.only):
            case = TorchCase(torch, spec)
            samples = {"fwd": {"ours": [], "torch": []}, "fwd+bwd": {"ours": [], "torch": []}}
            for _ in range(a.rounds if a.compare else 1):
                if a.compare:
                    for mode, ms in ours_ms(a.bin, name, t, a.reps).items():
                        samples[mode]["ours"].append(ms)
                for mode, fn in case.fns.items():
                    samples[mode]["torch"].append(time_median_ms(fn, a.reps))
            del case
            for mode in ("fwd", "fwd+bwd"):
                fl = flops * (3 if mode == "fwd+bwd" else 1)
                tm = statistics.median(samples[mode]["torch"])
                rec = dict(kernel=name, threads=t, mode=mode, torch_ms=round(tm, 3),
                           torch_gflops=round(fl / tm * 1e-6, 2))
                if a.compare and samples[mode]["ours"]:
                    om = statistics.median(samples[mode]["ours"])
                    rec.update(ours_ms=round(om, 3), ours_gflops=round(fl / om * 1e-6, 2),
                               speedup=round(tm / om, 2))
                records.append(rec)
                if a.compare and "ours_ms" in rec:
                    print(f"{name:15s} {t:2d} {mode:8s} ours {rec['ours_ms']:9.3f} ms "
                          f"({rec['ours_gflops']:6.1f} GF/s)  torch {tm:9.3f} ms "
                          f"({rec['torch_gflops']:6.1f} GF/s)  torch/ours {rec['speedup']:5.2f}x",
                          flush=True)
                else:
                    print(f"{name:15s} {t:2d} {mode:8s} torch {tm:9.3f} ms ({rec['torch_gflops']:6.1f} GF/s)",
                          flush=True)

    if a.markdown and a.compare:
        print()
        print("| shape | thr | mode | ours ms | ours GFLOP/s | PyTorch ms | PyTorch GFLOP/s | PyTorch/ours |")
        print("|---|---|---|---|---|---|---|---|")
        for r in records:
            if "ours_ms" in r:
                print(f"| {r['kernel']} | {r['threads']} | {r['mode']} | {r['ours_ms']:.3f} | "
                      f"{r['ours_gflops']:.1f} | {r['torch_ms']:.3f} | {r['torch_gflops']:.1f} | "
                      f"{r['speedup']:.2f}x |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
