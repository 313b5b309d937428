#!/bin/sh
# test_onnx.sh - the ONNX export against real ONNX tools, and a model built into a program
# (docs/EXPORT.md):
#   - tests/onnx_fixture.c trains a small three-domain model and exports every domain;
#   - onnx.checker.check_model (Debian's python3-onnx) accepts every file (full check);
#   - ONNX Runtime (npm's onnxruntime-node on this machine's Node.js) runs each on 64
#     images: its logits equal the predictor's within 1e-4 (max abs) and every top-1 is
#     the same (tests/onnx_compare.js);
#   - `mpnas export --onnx` writes the same bytes as the library call; its errors;
#   - `mpnas export --c-array` writes a header with which examples/embedded_model.c
#     builds (EXAMPLE_CC, EXAMPLE_LIBS from `make test`) and predicts exactly what
#     examples/infer predicts from the model file.
# onnxruntime-node is looked for in $ONNXRUNTIME_NODE_DIR, else build/npm/node_modules
# (where .ci/run installs it); when missing and npm is there, the test installs it into
# build/npm. A SKIP line is printed (and nothing counted) only for a tool that cannot be
# had: python3-onnx not installed, or no Node.js / npm or no network for the install.
# Prints "ok ..."/"FAIL ..." lines and "# RESULT passed failed".
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build/cc-omp}
case $build in /*) ;; *) build="$here/$build" ;; esac
mpnas="$build/cli/mpnas"
fixture="$build/tests/onnx_fixture"
infer="$build/examples/infer"
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }
result() {
  echo "# RESULT $passed $failed"
  exit 0
}
for f in "$mpnas" "$fixture" "$infer"; do
  [ -x "$f" ] || { bad "test_onnx: $f is missing (make test builds it)"; result; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$fixture" "$tmp" >"$tmp/fixture.log" 2>&1; then
  ok "onnx_fixture: a three-domain model trained and every domain exported"
else
  cat "$tmp/fixture.log"
  bad "onnx_fixture failed"
  result
fi

# ---- onnx.checker -------------------------------------------------------------------
# The first Python that has onnx: $PYTHON, python3 on PATH, Debian's own (a pyenv or venv
# python3 earlier on PATH does not see Debian's python3-onnx).
python=
for p in $PYTHON python3 /usr/bin/python3; do
  if "$p" -c "import onnx" 2>/dev/null; then python=$p; break; fi
done
if [ -n "$python" ]; then
  while read -r name classes; do
    if out=$("$python" - "$tmp/$name.onnx" "$classes" 2>&1 <<'EOF'
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)  # full_check: shape inference too
out = m.graph.output[0].type.tensor_type.shape.dim
assert [d.dim_param or d.dim_value for d in out] == ["N", int(sys.argv[2])], out
print("opset", m.opset_import[0].version, "nodes", len(m.graph.node))
EOF
    ); then ok "onnx.checker accepts $name.onnx ($out)"; else echo "$out"; bad "onnx.checker on $name.onnx"; fi
  done <"$tmp/domains.txt"
else
  echo "SKIP test_onnx checker: python3 cannot import onnx (apt-get install python3-onnx)"
fi

# ---- ONNX Runtime ---------------------------------------------------------------------
ortdir=${ONNXRUNTIME_NODE_DIR:-$here/build/npm/node_modules}
node=$(command -v node 2>/dev/null)
if [ -n "$node" ] && [ ! -d "$ortdir/onnxruntime-node" ] && [ -z "$ONNXRUNTIME_NODE_DIR" ] &&
  command -v npm >/dev/null 2>&1; then
  echo "installing onnxruntime-node into build/npm (npm; the CPU build is in the package)"
  mkdir -p "$here/build/npm"
  npm install --prefix "$here/build/npm" --no-audit --no-fund --ignore-scripts onnxruntime-node \
    >"$tmp/npm.log" 2>&1 || tail -n 5 "$tmp/npm.log"
fi
if [ -z "$node" ]; then
  echo "SKIP test_onnx runtime: no node on PATH (Node.js runs onnxruntime-node)"
elif ! NODE_PATH="$ortdir" "$node" -e "require('onnxruntime-node')" >"$tmp/ort.log" 2>&1; then
  head -n 3 "$tmp/ort.log"
  echo "SKIP test_onnx runtime: onnxruntime-node cannot be loaded from $ortdir (npm install onnxruntime-node)"
else
  while read -r name classes; do
    if out=$(NODE_PATH="$ortdir" "$node" "$here/tests/onnx_compare.js" "$tmp/$name.onnx" \
      "$tmp/$name.input.f32" "$tmp/$name.logits.f32" 64 3 32 32 "$classes" 1e-4 2>&1); then
      ok "onnxruntime $name: logits equal the predictor's ($out, tolerance 1e-4)"
    else
      echo "$out"
      bad "onnxruntime $name: logits differ from the predictor's"
    fi
  done <"$tmp/domains.txt"
fi

# ---- mpnas export --------------------------------------------------------------------
cd "$tmp" || exit 1
if "$mpnas" export model.mpnas --domain gratings --onnx cli.onnx && cmp -s cli.onnx gratings.onnx; then
  ok "mpnas export --onnx writes the library's bytes"
else
  bad "mpnas export --onnx"
fi
"$mpnas" export model.mpnas --domain nosuch --onnx x.onnx 2>err
if [ $? -eq 1 ] && grep -q "no domain nosuch" err && [ ! -e x.onnx ]; then
  ok "mpnas export: an unknown domain is a usage error"
else
  bad "mpnas export: unknown domain"
fi
"$mpnas" export model.mpnas --domain shapes --onnx "$tmp/no/such/dir/x.onnx" 2>err
if [ $? -eq 2 ] && [ -s err ]; then ok "mpnas export: an unwritable path is exit 2"; else bad "mpnas export: unwritable path"; fi
"$mpnas" export model.mpnas --onnx x.onnx 2>err
if [ $? -eq 1 ]; then ok "mpnas export: --onnx without --domain is a usage error"; else bad "mpnas export without --domain"; fi

# ---- the model as a C array ------------------------------------------------------------
if "$mpnas" export model.mpnas --c-array model_data.h && grep -q "model_data_size" model_data.h; then
  ok "mpnas export --c-array writes model_data.h"
else
  bad "mpnas export --c-array"
fi
if [ -z "$EXAMPLE_CC" ]; then
  echo "SKIP test_onnx embedded: EXAMPLE_CC is not set (make test sets it)"
elif $EXAMPLE_CC -I"$tmp" "$here/examples/embedded_model.c" -o embedded $EXAMPLE_LIBS 2>cc.log; then
  ok "examples/embedded_model.c builds with the header"
  for d in shapes colours; do
    ./embedded "$d" >emb.txt 2>&1
    "$infer" model.mpnas "$d" --logits --count 4 | grep '^image' >inf.txt
    if [ -s inf.txt ] && cmp -s emb.txt inf.txt; then
      ok "embedded_model $d predicts what infer predicts from the file"
    else
      cat emb.txt inf.txt
      bad "embedded_model $d"
    fi
  done
else
  cat cc.log
  bad "examples/embedded_model.c does not build"
fi
result
