// onnx_compare.js - run an exported ONNX model in ONNX Runtime (onnxruntime-node) and
// compare its logits with libmpnas's predictor (tests/test_onnx.sh).
//   node onnx_compare.js MODEL.onnx INPUT.f32 LOGITS.f32 N C H W CLASSES TOL
// INPUT: float32 NCHW [N,C,H,W]; LOGITS: the predictor's float32 [N,CLASSES]. Prints
// "max_abs_diff=X top1_same=K/N" and exits 0 when X <= TOL and every top-1 agrees, 1 if
// not, 2 when onnxruntime-node cannot be loaded (NODE_PATH says where to look).
'use strict';
const fs = require('fs');

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  console.log('cannot load onnxruntime-node: ' + e.message.split('\n')[0]);
  process.exit(2);
}

function floats(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function argmax(v, first, count) {
  let best = 0;
  for (let i = 1; i < count; i++) if (v[first + i] > v[first + best]) best = i;
  return best;
}

async function main() {
  const [model, input, logits, ...rest] = process.argv.slice(2);
  const [n, c, h, w, classes] = rest.slice(0, 5).map(Number);
  const tol = Number(rest[5]);
  const session = await ort.InferenceSession.create(model);
  const x = new ort.Tensor('float32', floats(input), [n, c, h, w]);
  const out = (await session.run({input: x})).logits;
  const ref = floats(logits);
  if (out.dims.length !== 2 || out.dims[0] !== n || out.dims[1] !== classes) {
    console.log('logits have shape [' + out.dims + '], expected [' + n + ',' + classes + ']');
    process.exit(1);
  }
  let maxdiff = 0, same = 0;
  for (let i = 0; i < n * classes; i++) maxdiff = Math.max(maxdiff, Math.abs(out.data[i] - ref[i]));
  for (let i = 0; i < n; i++) same += argmax(out.data, i * classes, classes) === argmax(ref, i * classes, classes);
  console.log('max_abs_diff=' + maxdiff.toExponential(3) + ' top1_same=' + same + '/' + n);
  process.exit(maxdiff <= tol && same === n && Number.isFinite(maxdiff) ? 0 : 1);
}

main().catch((e) => {
  console.log('onnxruntime failed: ' + e.message);
  process.exit(1);
});
