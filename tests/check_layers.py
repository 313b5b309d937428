#!/usr/bin/env python3
"""check_layers.py - the layer map of docs/ARCHITECTURE.md holds in the built library.

  1. Layers: every call from one source file into another (read off the compiled objects
     with nm: undefined symbols against the defining object) and every #include of a
     library header goes down the stack or stays in its folder:
       kernels < common < tensor, train, data < net < search < model < api
  2. No cycle between source files (calls), inside a folder too.
  3. Every repository path a comment names (docs/X.md, src/..., tests/...) exists.

Usage: check_layers.py OBJ_DIR (the build's obj/ folder, e.g. build/obj) from the
repository's root. Prints one line per failure and "# RESULT passed failed".
"""
import glob
import os
import re
import subprocess
import sys

RANK = {"kernels": 0, "common": 1, "tensor": 2, "train": 2, "data": 2, "net": 3,
        "search": 4, "model": 5, "api": 6}
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL " + what)


def allowed(src, dst):
    a, b = src.split("/")[0], dst.split("/")[0]
    return a == b or RANK[b] < RANK[a]


def call_graph(obj_dir):
    defined, needs = {}, {}
    for obj in sorted(glob.glob(os.path.join(obj_dir, "**", "*.o"), recursive=True)):
        unit = os.path.relpath(obj, obj_dir)[:-2]
        out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
        needs[unit] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "TDRB":
                defined[f[2]] = unit
            elif len(f) == 2 and f[0] == "U":
                needs[unit].add(f[1])
    return {u: {defined[s] for s in syms if s in defined and defined[s] != u}
            for u, syms in needs.items()}


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: check_layers.py OBJ_DIR (run from the repository's root)")
    graph = call_graph(sys.argv[1])
    check(len(graph) > 20, "found %d objects in %s (not a build's obj/?)" % (len(graph),
                                                                            sys.argv[1]))
    for src in sorted(graph):
        for dst in sorted(graph[src]):
            check(allowed(src, dst), "%s.c calls into %s.c, a layer above it" % (src, dst))
    for comp in cycles(graph):
        check(False, "a cycle of calls between " + ", ".join(c + ".c" for c in comp))
    include = re.compile(r'#include "([a-z]+)/')
    for path in sorted(glob.glob("src/**/*.[ch]", recursive=True)):
        unit = os.path.relpath(path, "src")
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            m = include.match(line)
            if m and m.group(1) in RANK:
                check(allowed(unit, m.group(1) + "/"),
                      "%s:%d includes %s/, a layer above it" % (path, n, m.group(1)))
    # Paths a comment names: at the start of a word (not inside ../shared/... or a
    # build folder), with an extension or a trailing slash.
    ref = re.compile(r'(?<![\w./$-])((?:docs|src|tests|bench|examples|tools|cli|python|abi)'
                     r'/[\w./+-]*\w(?:\.\w+|/))')
    for path in sorted(glob.glob("src/**/*.[ch]", recursive=True) + ["include/mpnas.h"] +
                       glob.glob("tests/*.[ch]") + glob.glob("cli/*.[ch]") +
                       glob.glob("examples/*.[ch]") + glob.glob("python/**/*.py", recursive=True)):
        for n, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
            for m in ref.finditer(line):
                target = m.group(1)
                check(os.path.exists(target), "%s:%d names %s, which does not exist" %
                      (path, n, target))
    print("# RESULT %d %d" % (passed, failed))


if __name__ == "__main__":
    main()
