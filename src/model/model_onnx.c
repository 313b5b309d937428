/* model_onnx.c - one domain's path of a model as an ONNX model (docs/EXPORT.md).
 *
 * The walk binds the domain's path exactly as inference does (mpnas__model_bind: the
 * node weights and the domain's folded BN, mpnas__model_fold), then writes each bound
 * op as standard ONNX (opset 13) ops, the folded BN multiplied into the convolution
 * weights and its shift as the convolution's bias:
 *   input [N,C,H,W] float, raw pixel values -> Sub(mean) -> Mul(1/std)   (the domain's
 *   input normalisation; not folded into the stem: the stem's zero padding is zero
 *   after normalising, which no fold of the raw pixels reproduces at the borders)
 *   stem Conv + act; per layer: [Conv 1x1 + act] -> Conv kxk group=C + act ->
 *   [GlobalAveragePool -> Conv 1x1 -> Relu -> Conv 1x1 -> HardSigmoid -> Mul] ->
 *   Conv 1x1 -> [Add input]; head Conv 1x1 + act -> GlobalAveragePool -> Flatten ->
 *   Gemm -> logits [N,classes].
 * Activations: Relu; relu6 = Clip(0, 6); hard-sigmoid = HardSigmoid(1/6, 1/2);
 * hard-swish = Mul(x, HardSigmoid(x)) (HardSwish itself needs opset 14); Sigmoid.
 *
 * Field numbers are those of onnx/onnx.proto. Nodes and initializers are written
 * interleaved as the walk meets them: the graph's repeated fields keep their own order,
 * which is all protobuf asks. */
#include <stdio.h>
#include <string.h>

#include "common/protobuf.h"
#include "model/model.h"

#define ONNX_IR_VERSION 7 /* what opset 13 came with (ONNX 1.8) */
#define ONNX_OPSET 13
#define ONNX_FLOAT 1 /* TensorProto.DataType */

/* ModelProto */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3,
       MODEL_DOC = 6, MODEL_GRAPH = 7, MODEL_OPSET = 8, MODEL_METADATA = 14 };
/* OperatorSetIdProto, StringStringEntryProto */
enum { OPSET_VERSION = 2, ENTRY_KEY = 1, ENTRY_VALUE = 2 };
/* GraphProto */
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11,
       GRAPH_OUTPUT = 12 };
/* NodeProto */
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP = 4, NODE_ATTR = 5 };
/* AttributeProto and its AttributeType values */
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS_TYPE = 7 };
/* TensorProto */
enum { TENSOR_DIMS = 1, TENSOR_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW = 9 };
/* ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto, its Dimension */
enum { VI_NAME = 1, VI_TYPE = 2, TYPE_TENSOR = 1, TT_ELEM = 1, TT_SHAPE = 2, SHAPE_DIM = 1,
       DIM_VALUE = 1, DIM_PARAM = 2 };

#define NAME_CAP 64

typedef struct writer {
  mpnas__proto pb;
  mpnas_context *ctx;
  int relu6_bounds; /* Clip's min/max initializers written */
} writer;

/* ---- Graph pieces ---------------------------------------------------------------------- */

static void initializer(writer *o, const char *name, const int64_t *dims, int ndims,
                        const float *v, size_t count) {
  mpnas__proto_begin(&o->pb, GRAPH_INITIALIZER);
  for (int i = 0; i < ndims; i++) mpnas__proto_int(&o->pb, TENSOR_DIMS, dims[i]);
  mpnas__proto_int(&o->pb, TENSOR_TYPE, ONNX_FLOAT);
  mpnas__proto_string(&o->pb, TENSOR_NAME, name);
  mpnas__proto_floats_le(&o->pb, TENSOR_RAW, v, count);
  mpnas__proto_end(&o->pb);
}

/* A node with up to three inputs (NULL ends the list) and one output, named after it;
 * its attributes follow until node_end. */
static void node_begin(writer *o, const char *op, const char *out, const char *in0,
                       const char *in1, const char *in2) {
  mpnas__proto_begin(&o->pb, GRAPH_NODE);
  const char *in[3] = {in0, in1, in2};
  for (int i = 0; i < 3 && in[i]; i++) mpnas__proto_string(&o->pb, NODE_INPUT, in[i]);
  mpnas__proto_string(&o->pb, NODE_OUTPUT, out);
  mpnas__proto_string(&o->pb, NODE_NAME, out);
  mpnas__proto_string(&o->pb, NODE_OP, op);
}
static void node_end(writer *o) { mpnas__proto_end(&o->pb); }

static void attr_int(writer *o, const char *name, int64_t v) {
  mpnas__proto_begin(&o->pb, NODE_ATTR);
  mpnas__proto_string(&o->pb, ATTR_NAME, name);
  mpnas__proto_int(&o->pb, ATTR_TYPE, ATTR_INT);
  mpnas__proto_int(&o->pb, ATTR_I, v);
  mpnas__proto_end(&o->pb);
}
static void attr_ints(writer *o, const char *name, int64_t v, int count) {
  mpnas__proto_begin(&o->pb, NODE_ATTR);
  mpnas__proto_string(&o->pb, ATTR_NAME, name);
  mpnas__proto_int(&o->pb, ATTR_TYPE, ATTR_INTS_TYPE);
  for (int i = 0; i < count; i++) mpnas__proto_int(&o->pb, ATTR_INTS, v);
  mpnas__proto_end(&o->pb);
}
static void attr_float(writer *o, const char *name, float v) {
  mpnas__proto_begin(&o->pb, NODE_ATTR);
  mpnas__proto_string(&o->pb, ATTR_NAME, name);
  mpnas__proto_int(&o->pb, ATTR_TYPE, ATTR_FLOAT);
  mpnas__proto_float(&o->pb, ATTR_F, v);
  mpnas__proto_end(&o->pb);
}

/* A one-input node without attributes: out = op(x). */
static void unary(writer *o, const char *op, const char *x, const char *out) {
  node_begin(o, op, out, x, NULL, NULL);
  node_end(o);
}

static void hard_sigmoid(writer *o, const char *x, const char *out) {
  node_begin(o, "HardSigmoid", out, x, NULL, NULL);
  attr_float(o, "alpha", 1.0f / 6.0f);
  attr_float(o, "beta", 0.5f);
  node_end(o);
}

/* out = act(x); returns the name of the result (x itself for MPNAS__ACT_NONE). */
static const char *activation(writer *o, int act, const char *x, char *out) {
  char gate[NAME_CAP + 8];
  switch (act) {
  case MPNAS__ACT_NONE:
    return x;
  case MPNAS__ACT_RELU:
    unary(o, "Relu", x, out);
    break;
  case MPNAS__ACT_RELU6:
    if (!o->relu6_bounds) {
      const float lo = 0.0f, hi = 6.0f;
      initializer(o, "relu6.min", NULL, 0, &lo, 1);
      initializer(o, "relu6.max", NULL, 0, &hi, 1);
      o->relu6_bounds = 1;
    }
    node_begin(o, "Clip", out, x, "relu6.min", "relu6.max");
    node_end(o);
    break;
  case MPNAS__ACT_HSWISH:
    snprintf(gate, sizeof gate, "%s.gate", out);
    hard_sigmoid(o, x, gate);
    node_begin(o, "Mul", out, x, gate, NULL);
    node_end(o);
    break;
  case MPNAS__ACT_SIGMOID:
    unary(o, "Sigmoid", x, out);
    break;
  case MPNAS__ACT_HSIGMOID:
    hard_sigmoid(o, x, out);
    break;
  default:
    if (o->pb.status == MPNAS_OK)
      o->pb.status = mpnas__fail(o->ctx, MPNAS_E_UNSUPPORTED,
                                 "activation %d has no ONNX form in this exporter", act);
    return x;
  }
  return out;
}

/* Weight layouts of the model: [k][k][cin][cout] (the stem, 1x1 convs and the SE and
 * classifier matrices, k = 1) and depthwise [k][k][c]. */
enum { KKIO, KKC };

/* out = Conv(x) with weights w * scale[o] and bias shift[o] (scale, shift may be NULL:
 * 1 and none). group 1, or group = cin = cout (depthwise, KKC). SAME padding k/2 on
 * every side, as the engine pads (odd k). */
static void conv(writer *o, const char *x, const char *out, const float *w, int layout,
                 int cin, int cout, int k, int stride, const float *scale,
                 const float *shift) {
  if (o->pb.status != MPNAS_OK) return;
  if (k % 2 == 0) {
    o->pb.status = mpnas__fail(o->ctx, MPNAS_E_UNSUPPORTED,
                               "%s: an even kernel (%d) pads asymmetrically, which this "
                               "exporter does not write", out, k);
    return;
  }
  int depthwise = layout == KKC, cig = depthwise ? 1 : cin;
  size_t kk = (size_t)k * k, count = (size_t)cout * cig * kk;
  float *t = mpnas__malloc(o->ctx, sizeof(float) * count);
  if (t == NULL) {
    o->pb.status = mpnas__fail(o->ctx, MPNAS_E_NO_MEMORY, "allocating %zu floats", count);
    return;
  }
  /* ONNX weights are [cout][cin / group][k][k]. */
  for (int oc = 0; oc < cout; oc++)
    for (int ic = 0; ic < cig; ic++)
      for (size_t p = 0; p < kk; p++) {
        float v = depthwise ? w[p * (size_t)cout + (size_t)oc]
                            : w[(p * (size_t)cin + (size_t)ic) * (size_t)cout + (size_t)oc];
        t[((size_t)oc * cig + (size_t)ic) * kk + p] = scale ? v * scale[oc] : v;
      }
  char wname[NAME_CAP + 8], bname[NAME_CAP + 8];
  snprintf(wname, sizeof wname, "%s.w", out);
  snprintf(bname, sizeof bname, "%s.b", out);
  int64_t dims[4] = {cout, cig, k, k};
  initializer(o, wname, dims, 4, t, count);
  mpnas__free(o->ctx, t);
  if (shift) initializer(o, bname, dims, 1, shift, (size_t)cout);
  node_begin(o, "Conv", out, x, wname, shift ? bname : NULL);
  attr_ints(o, "kernel_shape", k, 2);
  attr_ints(o, "strides", stride, 2);
  attr_ints(o, "pads", k / 2, 4);
  if (depthwise) attr_int(o, "group", cout);
  node_end(o);
}

/* ValueInfoProto of a float tensor; dims < 0 is the batch dimension "N". */
static void value_info(writer *o, uint32_t field, const char *name, const int64_t *dims,
                       int ndims) {
  mpnas__proto_begin(&o->pb, field);
  mpnas__proto_string(&o->pb, VI_NAME, name);
  mpnas__proto_begin(&o->pb, VI_TYPE);
  mpnas__proto_begin(&o->pb, TYPE_TENSOR);
  mpnas__proto_int(&o->pb, TT_ELEM, ONNX_FLOAT);
  mpnas__proto_begin(&o->pb, TT_SHAPE);
  for (int i = 0; i < ndims; i++) {
    mpnas__proto_begin(&o->pb, SHAPE_DIM);
    if (dims[i] < 0)
      mpnas__proto_string(&o->pb, DIM_PARAM, "N");
    else
      mpnas__proto_int(&o->pb, DIM_VALUE, dims[i]);
    mpnas__proto_end(&o->pb);
  }
  mpnas__proto_end(&o->pb);
  mpnas__proto_end(&o->pb);
  mpnas__proto_end(&o->pb);
  mpnas__proto_end(&o->pb);
}

static void metadata(writer *o, const char *key, const char *value) {
  mpnas__proto_begin(&o->pb, MODEL_METADATA);
  mpnas__proto_string(&o->pb, ENTRY_KEY, key);
  mpnas__proto_string(&o->pb, ENTRY_VALUE, value);
  mpnas__proto_end(&o->pb);
}

/* ---- The path ------------------------------------------------------------------------ */

/* One inverted bottleneck (block.c's mpnas__ib_fwd_infer) on x; out receives the name
 * of its output ("layerL" after a residual add, else "layerL.project"). */
static void bottleneck(writer *o, int l, const mpnas__ib_geom *g, const mpnas__ib_infer *p,
                       const char *x, char *out) {
  char a[NAME_CAP], b[NAME_CAP], pool[NAME_CAP], se1[NAME_CAP], se1a[NAME_CAP],
      se2[NAME_CAP], gate[NAME_CAP], se[NAME_CAP], proj[NAME_CAP];
  const char *cur = x;
  if (g->expand) {
    snprintf(a, sizeof a, "layer%d.expand", l);
    snprintf(b, sizeof b, "layer%d.expand.act", l);
    conv(o, cur, a, p->exp_w, KKIO, g->cin, g->cmid, 1, 1, p->bn1.scale, p->bn1.shift);
    cur = activation(o, g->act, a, b);
  }
  char dw[NAME_CAP], dwa[NAME_CAP];
  snprintf(dw, sizeof dw, "layer%d.dw", l);
  snprintf(dwa, sizeof dwa, "layer%d.dw.act", l);
  conv(o, cur, dw, p->dw_w, KKC, g->cmid, g->cmid, g->k, g->stride, p->bn2.scale, p->bn2.shift);
  cur = activation(o, g->act, dw, dwa);
  if (g->se) { /* ops_misc.c's mpnas__se_fwd: pool, fc, relu, fc, hard-sigmoid, scale */
    snprintf(pool, sizeof pool, "layer%d.se.pool", l);
    snprintf(se1, sizeof se1, "layer%d.se.fc1", l);
    snprintf(se1a, sizeof se1a, "layer%d.se.fc1.act", l);
    snprintf(se2, sizeof se2, "layer%d.se.fc2", l);
    snprintf(gate, sizeof gate, "layer%d.se.gate", l);
    unary(o, "GlobalAveragePool", cur, pool);
    conv(o, pool, se1, p->se_w1, KKIO, g->cmid, g->se, 1, 1, NULL, p->se_b1);
    unary(o, "Relu", se1, se1a);
    conv(o, se1a, se2, p->se_w2, KKIO, g->se, g->cmid, 1, 1, NULL, p->se_b2);
    hard_sigmoid(o, se2, gate);
    snprintf(se, sizeof se, "layer%d.se", l);
    node_begin(o, "Mul", se, cur, gate, NULL);
    node_end(o);
    cur = se;
  }
  snprintf(proj, sizeof proj, "layer%d.project", l);
  conv(o, cur, proj, p->proj_w, KKIO, g->cmid, g->cout, 1, 1, p->bn3.scale, p->bn3.shift);
  if (g->residual) {
    snprintf(out, NAME_CAP, "layer%d", l);
    node_begin(o, "Add", out, proj, x, NULL);
    node_end(o);
  } else {
    snprintf(out, NAME_CAP, "%s", proj);
  }
}

static void graph(writer *o, const mpnas_model *m, int32_t d, const mpnas__net *net) {
  const mpnas__domain *dm = &m->domains[d];
  int64_t c = m->space.in_c;
  mpnas__proto_string(&o->pb, GRAPH_NAME, dm->name);
  int64_t in_dims[4] = {-1, c, net->in_h, net->in_w}, out_dims[2] = {-1, net->classes};
  value_info(o, GRAPH_INPUT, "input", in_dims, 4);
  value_info(o, GRAPH_OUTPUT, "logits", out_dims, 2);

  int64_t per_channel[4] = {1, c, 1, 1};
  initializer(o, "input.mean", per_channel, 4, dm->mean, (size_t)c);
  initializer(o, "input.invstd", per_channel, 4, dm->invstd, (size_t)c);
  node_begin(o, "Sub", "input.centred", "input", "input.mean", NULL);
  node_end(o);
  node_begin(o, "Mul", "input.normalised", "input.centred", "input.invstd", NULL);
  node_end(o);

  char bufs[2][NAME_CAP];
  const mpnas__conv_geom *sg = &net->stem_g, *hg = &net->head_g;
  conv(o, "input.normalised", "stem", net->stem.w, KKIO, sg->cin, sg->cout, sg->k, sg->stride,
       net->stem_aff.scale, net->stem_aff.shift);
  const char *cur = activation(o, sg->act, "stem", strcpy(bufs[0], "stem.act"));
  for (int l = 0; l < net->nlayers; l++) {
    const mpnas__net_layer *ly = &net->layers[l];
    if (ly->g == NULL) continue; /* zero op: identity */
    char *out = cur == bufs[0] ? bufs[1] : bufs[0];
    bottleneck(o, l, ly->g, &ly->inf, cur, out);
    cur = out;
  }
  conv(o, cur, "head", net->head.w, KKIO, hg->cin, hg->cout, hg->k, hg->stride,
       net->head_aff.scale, net->head_aff.shift);
  char *head = cur == bufs[0] ? bufs[1] : bufs[0];
  cur = activation(o, hg->act, "head", strcpy(head, "head.act"));
  unary(o, "GlobalAveragePool", cur, "pool");
  node_begin(o, "Flatten", "pool.flat", "pool", NULL, NULL);
  attr_int(o, "axis", 1);
  node_end(o);
  int64_t fc_dims[2] = {hg->cout, net->classes};
  initializer(o, "classifier.w", fc_dims, 2, net->fc_w, (size_t)hg->cout * net->classes);
  initializer(o, "classifier.b", fc_dims + 1, 1, net->fc_b, (size_t)net->classes);
  node_begin(o, "Gemm", "logits", "pool.flat", "classifier.w", "classifier.b");
  node_end(o);
}

mpnas_status mpnas__model_export_onnx(const mpnas_model *m, int32_t d, unsigned char **data,
                                      size_t *len) {
  *data = NULL;
  *len = 0;
  mpnas_context *ctx = m->ctx;
  mpnas__net_layer *layers = mpnas__calloc(ctx, (size_t)m->nlayers + 1, sizeof *layers);
  if (layers == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the path");
  mpnas__net net;
  /* Binding only reads the model (see mpnas__model_infer). */
  mpnas__model_bind((mpnas_model *)(uintptr_t)m, d, NULL, &net, layers);

  writer o = {.ctx = ctx};
  mpnas__proto_init(&o.pb, ctx);
  const mpnas__domain *dm = &m->domains[d];
  char text[400];
  mpnas__proto_int(&o.pb, MODEL_IR_VERSION, ONNX_IR_VERSION);
  mpnas__proto_begin(&o.pb, MODEL_OPSET);
  mpnas__proto_int(&o.pb, OPSET_VERSION, ONNX_OPSET);
  mpnas__proto_end(&o.pb);
  mpnas__proto_string(&o.pb, MODEL_PRODUCER_NAME, "libmpnas");
  mpnas__proto_string(&o.pb, MODEL_PRODUCER_VERSION, MPNAS_VERSION_STRING);
  snprintf(text, sizeof text,
           "libmpnas model, domain \"%s\": input float32 NCHW [N,%d,%d,%d], raw pixel values as "
           "given to mpnas_predictor_run (0..255 for 8-bit images), normalised inside the "
           "graph; output logits [N,%d].",
           dm->name, (int)m->space.in_c, net.in_h, net.in_w, (int)dm->classes);
  mpnas__proto_string(&o.pb, MODEL_DOC, text);
  metadata(&o, "mpnas.domain", dm->name);
  snprintf(text, sizeof text, "%d", (int)dm->classes);
  metadata(&o, "mpnas.classes", text);
  mpnas__proto_begin(&o.pb, MODEL_GRAPH);
  graph(&o, m, d, &net);
  mpnas__proto_end(&o.pb);
  mpnas__free(ctx, layers);
  return mpnas__proto_finish(&o.pb, data, len);
}
