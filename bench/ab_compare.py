#!/usr/bin/python3
"""ab_compare.py - two builds of one benchmark side by side, alternating, with the
spread that says whether a difference is real.

    python3 bench/ab_compare.py --a build/old/bench/bench_train --b build/t/bench/bench_train \
        [--rounds 12] [--field train_img_s ...] [--markdown] -- --threads 1 --steps 8 --train-only

Runs `A --json ARGS` and `B --json ARGS` in turn, `rounds` times, the order flipped every
other round (A B, B A, ...) so neither side always runs on the warmer machine. Every
JSON line a benchmark prints (bench_kernels, bench_train, bench_search) is one
record, named by its text fields and its thread count; the fields compared are --field
(default: those of DEFAULT_FIELDS it prints). Per record and field it reports both
sides' medians, the median of the per-round ratios B / A with their range, how many
rounds B won, and a two-sided sign test: on a shared VM whose speed drifts by the
minute, a per-round ratio (both sides run seconds apart) is what carries the signal,
and p > 0.05 is reported as "no difference". Throughputs (fields with img_s or gflops
in their name) are better higher, everything else (times, memory) lower. Standard
library only; the benchmarks need nothing else either.
"""
import argparse
import json
import math
import statistics
import subprocess
import sys

DEFAULT_FIELDS = ["median_ms", "train_img_s", "eval_b_img_s", "eval_b1_latency_ms",
                  "peak_rss_mb", "step_ms", "train_ms", "valid_ms"]


def fail(msg):
    print(f"ab_compare.py: {msg}", file=sys.stderr)
    sys.exit(2)


def records(binary, args):
    """{record name: {field: value}} from one run's JSON lines."""
    try:
        run = subprocess.run([binary, "--json"] + args, capture_output=True, text=True)
    except OSError as e:
        fail(f"cannot run {binary}: {e.strerror}")
    if run.returncode != 0:
        fail(f"{binary} exited with status {run.returncode}: {run.stderr.strip()[-300:]}")
    recs = {}
    for line in run.stdout.splitlines():
        if not line.lstrip().startswith("{"):
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            fail(f"{binary} printed a line that is not JSON ({e.msg}): {line[:120]}")
        name = " ".join(f"{v}" for k, v in r.items() if isinstance(v, str))
        if "threads" in r:
            name += f" t{r['threads']}"
        recs[name] = {k: v for k, v in r.items() if isinstance(v, (int, float))}
    if not recs:
        fail(f"{binary} printed no JSON record (does it take --json?)")
    return recs


def higher_is_better(field):
    return "img_s" in field or "gflops" in field


def sign_test(wins, n):
    """Two-sided p of `wins` successes in n fair coin flips (ties left out by the caller)."""
    if n == 0:
        return 1.0
    k = min(wins, n - wins)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="benchmark binary A (the baseline)")
    ap.add_argument("--b", required=True, help="benchmark binary B (the change)")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--field", action="append", help="JSON field to compare (repeatable)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then the benchmark's arguments")
    a = ap.parse_args()
    bench_args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    runs = {"A": [], "B": []}
    for r in range(a.rounds):
        for side in ("AB" if r % 2 == 0 else "BA"):
            runs[side].append(records(a.a if side == "A" else a.b, bench_args))
        print(f"# round {r + 1}/{a.rounds} done", file=sys.stderr)

    rows = []
    for name in runs["A"][0]:
        fields = a.field or [f for f in DEFAULT_FIELDS if f in runs["A"][0][name]]
        for f in fields:
            pairs = [(ra[name][f], rb[name][f]) for ra, rb in zip(runs["A"], runs["B"])
                     if name in ra and name in rb and f in ra[name] and f in rb[name]]
            if not pairs or any(x == 0 for x, _ in pairs):
                continue
            higher = higher_is_better(f)
            ratios = [y / x for x, y in pairs]
            wins = sum(1 for x, y in pairs if (y > x if higher else y < x))
            ties = sum(1 for x, y in pairs if x == y)
            p = sign_test(wins, len(pairs) - ties)
            rm = statistics.median(ratios)
            verdict = ("no difference" if p > 0.05
                       else "B better" if (rm > 1) == higher else "B worse")
            rows.append([name, f, f"{statistics.median(x for x, _ in pairs):.4g}",
                         f"{statistics.median(y for _, y in pairs):.4g}", f"{rm:.3f}",
                         f"{min(ratios):.3f}-{max(ratios):.3f}", f"{wins}/{len(pairs)}",
                         f"{p:.3f}", verdict])

    head = ["record", "field", "A median", "B median", "B/A median", "B/A range",
            "B better", "sign test p", "verdict"]
    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
    else:
        print("\t".join(head))
    for cells in rows:
        print(("| " + " | ".join(cells) + " |") if a.markdown else "\t".join(cells))


if __name__ == "__main__":
    main()
