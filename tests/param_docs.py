#!/usr/bin/env python3
"""param_docs.py - the header's parameter comments, the library's descriptions and the
Python wrapper must agree. Run by tests/test_param_docs.sh (make test):

    python3 tests/param_docs.py [--library PATH/libmpnas.so] [--header PATH/mpnas.h]

For every parameter constant of include/mpnas.h's *_param enums, its comment (the one
after it, or else the one above it) must start with the form the header describes
("int 1..10^8, default 1000", "double (0..100], default 0.05", "MPNAS_COST_*, default
MPNAS_COST_MACS", "read-only int") and say what mpnas_param_bounds says: type, range,
open ends, odd-only, default, read-only. Each handle kind must list exactly the
constants of its enums. The Python wrapper must use the short name the header's rule
gives (the constant without MPNAS_ and its handle's word, lower case; ABDP keeps
"abdp_"), know each parameter's code under that name and as a module constant, and name
enumerated values, statistics and status codes as the header does, and carry its
version (mpnas.__version__, which the Python package takes as its own).

Prints "ok NAME" / "FAIL NAME" with the mismatches, then "# RESULT passed failed"."""

import ctypes
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ARGS = {"--library": None, "--header": os.path.join(ROOT, "include", "mpnas.h")}
_argv = sys.argv[1:]
while _argv:
    _opt = _argv.pop(0)
    if _opt in ARGS and _argv:
        ARGS[_opt] = _argv.pop(0)
    else:
        sys.exit("usage: param_docs.py [--library PATH] [--header PATH]")
if ARGS["--library"]:
    os.environ["MPNAS_LIBRARY"] = ARGS["--library"]
sys.path.insert(0, os.path.join(ROOT, "python"))
import mpnas  # noqa: E402

# Which enums of the header hold which handle kind's parameters.
KINDS = {
    "context": ["mpnas_context_param"],
    "space": ["mpnas_space_param"],
    "supernet": ["mpnas_search_param", "mpnas_abdp_param"],
    "model": ["mpnas_train_param", "mpnas_abdp_param"],
    "domain": ["mpnas_domain_param"],
}
HANDLE_WORDS = ("CONTEXT_", "SPACE_", "SEARCH_", "TRAIN_", "MODEL_", "DOMAIN_")


# ---- Reading the header ---------------------------------------------------------------

def strip_comment(text):
    """The text of a /* ... */ comment, its lines joined."""
    body = text[2:-2]
    lines = [re.sub(r"^\s*\*?\s?", "", line).rstrip() for line in body.split("\n")]
    return " ".join(line for line in lines if line).strip()


def read_header(path):
    """(constants {NAME: value}, params {enum name: [(NAME, comment text)]})."""
    src = open(path).read()
    constants = {m.group(1): int(m.group(2)) for m in
                 re.finditer(r"\b(MPNAS_[A-Z0-9_]+)\s*=\s*(-?\d+)", src)}
    params = {}
    for m in re.finditer(r"typedef enum (mpnas_\w+_param) \{(.*?)\} \1;", src, re.S):
        body = m.group(2)
        entries = []
        pos = [(e.start(), e.end(), e.group(1)) for e in
               re.finditer(r"^\s*(MPNAS_[A-Z0-9_]+)\s*=\s*-?\d+,?", body, re.M)]
        for i, (start, end, name) in enumerate(pos):
            after = body[end:pos[i + 1][0] if i + 1 < len(pos) else len(body)]
            trailing = re.match(r"[ \t]*(/\*.*?\*/)", after, re.S)
            if trailing:
                comment = trailing.group(1)
            else:  # the comment block right above, if it ends just before the constant
                before = body[:start].rstrip()
                above = re.search(r"(/\*(?:(?!\*/).)*?\*/)$", before, re.S)
                comment = above.group(1) if above else "/**/"
            entries.append((name, strip_comment(comment)))
        params[m.group(1)] = entries
    return constants, params


NUM = r"-?(?:\d+\^\d+(?:-1)?|\d+(?:\.\d+)?(?:e-?\d+)?)"


def number(text):
    """A number as the header writes it: 1000, 0.999, 3e-4, 10^8, 2^63-1, -2^63."""
    m = re.fullmatch(r"(-?)(\d+)\^(\d+)(-1)?", text)
    if m:
        v = int(m.group(2)) ** int(m.group(3)) - (1 if m.group(4) else 0)
        return -v if m.group(1) else v
    return float(text)


def parse_spec(comment, constants):
    """{type, lo, hi, lo_open, hi_open, odd, default, read_only, values} from the start of
    a parameter's comment, or a string saying why it does not parse."""
    m = re.match(r"read-only (int|double)(?::|$)", comment)
    if m:
        return {"type": "real" if m.group(1) == "double" else "int", "read_only": True}
    m = re.match(r"(MPNAS_[A-Z0-9_]+_)\*, default (MPNAS_[A-Z0-9_]+)(?::|$| \()", comment)
    if m:
        prefix, default = m.group(1), m.group(2)
        values = sorted(v for c, v in constants.items() if c.startswith(prefix))
        if not values:
            return "no constants named %s*" % prefix
        if default not in constants or not default.startswith(prefix):
            return "default %s is not one of %s*" % (default, prefix)
        return {"type": "int", "read_only": False, "lo": values[0], "hi": values[-1],
                "lo_open": False, "hi_open": False, "odd": False,
                "default": constants[default], "values": prefix}
    m = re.match(r"(int|double) (odd )?([\(\[]?)(%s)\.\.(%s)([\]\)]?), default (%s|depends)"
                 r"(?::|$| \()" % (NUM, NUM, NUM), comment)
    if not m:
        return "does not start with the form the header describes: %r" % comment[:60]
    typ, odd, lo_b, lo, hi, hi_b, default = m.groups()
    if bool(lo_b) != bool(hi_b):
        return "brackets on one end only: %r" % comment[:40]
    return {"type": "real" if typ == "double" else "int", "read_only": False,
            "lo": number(lo), "hi": number(hi), "lo_open": lo_b == "(", "hi_open": hi_b == ")",
            "odd": bool(odd), "default": None if default == "depends" else number(default),
            "values": None}


def values_prefix(kind, code):
    """The library's prefix of an enumeration's value constants ("" if none)."""
    prefix = ctypes.c_char_p()
    handle_kind = mpnas._HANDLE_KINDS["search" if kind == "supernet" else kind][0]
    mpnas._L().mpnas_param_names(handle_kind, code, None, None, ctypes.byref(prefix))
    return prefix.value.decode()


def same(a, b):
    """Numbers equal as the library's doubles hold them (2^63-1 is 2^63 there)."""
    if a is None or b is None:
        return a is None and b is None
    return float(a) == float(b)


# ---- The checks ---------------------------------------------------------------------

def check_kind(kind, enums, constants, params):
    errors = []
    described = mpnas.param_info(kind)  # the library's, through the wrapper
    by_constant = {p.constant: p for p in described.values()}
    documented = [(name, text) for e in enums for name, text in params.get(e, [])]
    if not all(e in params for e in enums):
        errors.append("enum(s) %s not found in the header" % [e for e in enums if e not in params])
    names = [n for n, _ in documented]
    for n in sorted(set(names) - set(by_constant)):
        errors.append("%s is in the header but the library does not describe it" % n)
    for n in sorted(set(by_constant) - set(names)):
        errors.append("the library describes %s, which the header's enums lack" % n)
    for name, text in documented:
        p = by_constant.get(name)
        if p is None:
            continue
        if p.code != constants[name]:
            errors.append("%s: code %d in the header, %d in the library" % (name, constants[name],
                                                                          p.code))
        spec = parse_spec(text, constants)
        if isinstance(spec, str):
            errors.append("%s: its comment %s" % (name, spec))
            continue
        have = {"type": p.type, "read_only": p.read_only}
        if not p.read_only:
            have.update(lo=p.lo, hi=p.hi, lo_open=p.lo_open, hi_open=p.hi_open, odd=p.odd,
                        default=p.default, values=values_prefix(kind, p.code) or None)
            if (p.values is None) != (have["values"] is None):
                errors.append("%s: the wrapper has no value names for it" % name)
        for key in sorted(have):
            a, b = spec.get(key), have[key]
            ok = same(a, b) if key in ("lo", "hi", "default") else a == b
            if not ok:
                errors.append("%s: %s is %r in the header's comment, %r in the library"
                              % (name, key, a, b))
        # The Python name: the header's rule, and the wrapper knows it by it.
        rest = name[len("MPNAS_"):]
        if not rest.startswith("ABDP_"):
            word = [w for w in HANDLE_WORDS if rest.startswith(w)]
            rest = rest[len(word[0]):] if word else rest
        if p.name != rest.lower():
            errors.append("%s: the Python name is %r, the rule gives %r" % (name, p.name,
                                                                           rest.lower()))
        if getattr(mpnas, name[len("MPNAS_"):], None) != constants[name]:
            errors.append("mpnas.%s is not %d" % (name[len("MPNAS_"):], constants[name]))
    return errors


def check_names(constants, header_path):
    """The wrapper's own names: enumerated values, statistics, status codes; its version."""
    errors = []
    version = re.search(r'#define MPNAS_VERSION_STRING "([^"]*)"', open(header_path).read())
    if version is None or mpnas.__version__ != version.group(1):
        errors.append("mpnas.__version__ is %s, the header's MPNAS_VERSION_STRING %s"
                      % (mpnas.__version__, version and version.group(1)))
    for kind, prefix in mpnas._ENUM_PREFIX.items():
        header = {c[len("MPNAS_" + prefix):].lower(): v for c, v in constants.items()
                  if c.startswith("MPNAS_" + prefix)}
        if mpnas._ENUMS[kind] != header:
            errors.append("values of %s: the wrapper has %s, the header MPNAS_%s* %s"
                          % (kind, mpnas._ENUMS[kind], prefix, header))
    header = {c[len("MPNAS_STAT_"):].lower(): v for c, v in constants.items()
              if c.startswith("MPNAS_STAT_")}
    if mpnas._STATS != header:
        errors.append("statistics: the wrapper has %s, the header %s" % (mpnas._STATS, header))
    header = {v: c for c, v in constants.items() if c.startswith("MPNAS_E_") or c == "MPNAS_OK"}
    if mpnas.STATUS_NAMES != header:
        errors.append("status codes: the wrapper has %s, the header %s"
                      % (mpnas.STATUS_NAMES, header))
    return errors


def main():
    constants, params = read_header(ARGS["--header"])
    passed = failed = 0
    tests = [(kind, lambda kind=kind, enums=enums: check_kind(kind, enums, constants, params))
             for kind, enums in KINDS.items()]
    tests.append(("names", lambda: check_names(constants, ARGS["--header"])))
    for name, fn in tests:
        try:
            errors = fn()
        except Exception as e:  # an exception is a failure too, with what it said
            errors = ["%s: %s" % (type(e).__name__, e)]
        if errors:
            failed += 1
            print("FAIL param_docs %s" % name)
            for e in errors:
                print("    " + e)
        else:
            passed += 1
            print("ok   param_docs %s" % name)
    print("# RESULT %d %d" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
