/* model_quant.c - post-training int8 quantisation of the multi-path model: calibration,
 * the quantised state, the int8 forward and the QNT8 section (see model_quant.h,
 * docs/QUANTIZATION.md). */
#include "model/model_quant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CALIB_CHUNK 32 /* images per calibration forward */

/* The activations the int8 epilogue fuses (kernels.h); others would need a table. */
static int act_fusable(int act) {
  return act == MPNAS__ACT_NONE || act == MPNAS__ACT_RELU || act == MPNAS__ACT_RELU6 ||
         act == MPNAS__ACT_HSWISH;
}

/* ---- Walking the state: allocate, count, write, read ------------------------------------
 * One walk visits every array of the int8 form in the file's order, so allocation, the
 * section's size, the writer and the reader cannot disagree. */

/* FIT: do the stored floats fit half precision (io->st set if not); HALVE: round them. */
enum { IO_ALLOC, IO_COUNT, IO_WRITE, IO_READ, IO_FIT, IO_HALVE };
/* FINITE: additive (a weight, a shift): a half's absolute error (<= 2^-25 when subnormal)
 * is harmless. FACTOR, POSITIVE: multiply a whole channel or tensor (BN scale; weight and
 * activation scales, which are > 0 too): in half they must be 0 or normal, since a
 * subnormal's relative error reaches 2^-1. WSCALE: a conv's weight scales (POSITIVE);
 * with halves (version 3) folded into each domain's BN scale (fold_weight_scales), 1 in
 * memory and not in the file. DERIVED: in memory only, not in the file. */
enum { V_FINITE, V_FACTOR, V_POSITIVE, V_WSCALE, V_DERIVED };

typedef struct qio {
  int mode;
  int half;           /* the file's floats are binary16 (format version 3) */
  mpnas__arena *store;
  mpnas__writer *w;
  mpnas__reader *r;
  size_t bytes;       /* IO_COUNT */
  mpnas_status st;    /* first failure (IO_ALLOC: no memory; IO_READ: a bad value) */
  char why[200];
  int least;          /* IO_COUNT before reading: BN scales as codes (the smallest form) */
} qio;

static void io_fail(qio *io, mpnas_status st, const char *what, size_t i, double v) {
  if (io->st != MPNAS_OK) return;
  io->st = st;
  snprintf(io->why, sizeof io->why, "%s: value %zu is %g", what, i, v);
}

/* Whether v, rounded to half, keeps what its kind needs (io_f32's kinds). */
static int fits_half(float v, int kind) {
  float h = mpnas__f16_round(v);
  if (!isfinite(h)) return 0;
  if (kind == V_POSITIVE) return h >= MPNAS__F16_MIN_NORMAL;
  if (kind == V_FACTOR) return v == 0.0f || fabsf(h) >= MPNAS__F16_MIN_NORMAL;
  return 1;
}

static void io_f32(qio *io, float **p, size_t n, int kind, const char *what) {
  if (io->st != MPNAS_OK) return;
  if (kind == V_WSCALE && !io->half) kind = V_POSITIVE;
  if (kind == V_WSCALE && io->mode != IO_ALLOC) {
    for (size_t i = 0; i < n && io->mode == IO_READ; i++) (*p)[i] = 1.0f;
    return;
  }
  /* FIT checks the BN scales in fold_weight_scales, as the products they become. */
  if (kind == V_FACTOR && io->mode == IO_FIT) return;
  switch (io->mode) {
    case IO_ALLOC:
      *p = mpnas__arena_alloc(io->store, sizeof(float) * (n ? n : 1));
      if (*p == NULL) io->st = MPNAS_E_NO_MEMORY;
      return;
    case IO_COUNT:
      if (kind != V_DERIVED) io->bytes += (io->half ? 2 : 4) * n;
      return;
    case IO_WRITE:
      if (kind == V_DERIVED) return;
      if (io->half)
        mpnas__writer_put_f16_array(io->w, *p, n);
      else
        mpnas__writer_put_f32_array(io->w, *p, n);
      return;
    case IO_FIT:
      for (size_t i = 0; i < n && kind != V_DERIVED; i++)
        if (!fits_half((*p)[i], kind)) {
          io_fail(io, MPNAS_E_UNSUPPORTED, what, i, (double)(*p)[i]);
          return;
        }
      return;
    case IO_HALVE:
      for (size_t i = 0; i < n && kind != V_DERIVED; i++) (*p)[i] = mpnas__f16_round((*p)[i]);
      return;
    default:
      if (kind == V_DERIVED) return;
      if (io->half)
        mpnas__reader_get_f16_array(io->r, *p, n);
      else
        mpnas__reader_get_f32_array(io->r, *p, n);
      for (size_t i = 0; i < n; i++) {
        float v = (*p)[i];
        /* 1/v must be finite too where v is a scale the forward divides by; halves as
         * the quantiser writes them (no subnormal factor). */
        if (!isfinite(v) || (kind == V_POSITIVE && !(v > 0.0f && isfinite(1.0f / v))) ||
            (io->half && !fits_half(v, kind))) {
          io_fail(io, MPNAS_E_CORRUPT, what, i, (double)v);
          return;
        }
      }
  }
}

static void io_i8(qio *io, int8_t **p, size_t n, const char *what) {
  if (io->st != MPNAS_OK) return;
  switch (io->mode) {
    case IO_ALLOC:
      *p = mpnas__arena_alloc(io->store, n ? n : 1);
      if (*p == NULL) io->st = MPNAS_E_NO_MEMORY;
      return;
    case IO_COUNT: io->bytes += n; return;
    case IO_WRITE: mpnas__writer_put_bytes(io->w, *p, n); return;
    case IO_FIT:
    case IO_HALVE: return;
    default:
      mpnas__reader_get_bytes(io->r, *p, n);
      for (size_t i = 0; i < n; i++)
        if ((*p)[i] == -128) { /* symmetric weights use -127..127 only */
          io_fail(io, MPNAS_E_CORRUPT, what, i, -128.0);
          return;
        }
  }
}

static void io_qp(qio *io, mpnas__qparams *p, const char *what) {
  if (io->st != MPNAS_OK) return;
  float *scale = &p->scale;
  switch (io->mode) {
    case IO_ALLOC: return;
    case IO_COUNT: io->bytes += io->half ? 3 : 8; return;
    case IO_WRITE:
      io_f32(io, &scale, 1, V_POSITIVE, what);
      if (io->half) /* version 3: the zero point as the int8 it is */
        mpnas__writer_put_u8(io->w, (uint8_t)p->zero); /* modulo 256: two's complement */
      else
        mpnas__writer_put_i32(io->w, p->zero);
      return;
    case IO_FIT:
    case IO_HALVE: io_f32(io, &scale, 1, V_POSITIVE, what); return;
    default:
      if (io->half)
        mpnas__reader_get_f16_array(io->r, &p->scale, 1);
      else
        p->scale = mpnas__reader_get_f32(io->r);
      if (io->half) {
        int32_t byte = mpnas__reader_get_u8(io->r);
        p->zero = byte > 127 ? byte - 256 : byte;
      } else {
        p->zero = mpnas__reader_get_i32(io->r);
      }
      if (!(p->scale > 0.0f) || !isfinite(p->scale) || !isfinite(1.0f / p->scale) ||
          (io->half && !fits_half(p->scale, V_POSITIVE)))
        io_fail(io, MPNAS_E_CORRUPT, what, 0, (double)p->scale);
      else if (p->zero < -128 || p->zero > 127)
        io_fail(io, MPNAS_E_CORRUPT, what, 1, (double)p->zero);
  }
}

/* The step of v's int8 codes (symmetric, per tensor): the smallest half >= max |v| / 127,
 * so that no code passes 127; 0 if that overflows half. A subnormal step is fine: the
 * error is absolute, at most half a step, whatever the step's precision. */
static float code_step(const float *v, size_t n) {
  float mx = 0.0f;
  for (size_t i = 0; i < n; i++) mx = fabsf(v[i]) > mx ? fabsf(v[i]) : mx;
  if (mx == 0.0f) return 1.0f; /* all codes 0 */
  float want = mx / 127.0f;
  uint16_t h = mpnas__f32_to_f16(want);
  if (mpnas__f16_to_f32(h) < want) h++; /* the next half up (positive: the next pattern) */
  float step = mpnas__f16_to_f32(h);
  return isfinite(step) && step > 0.0f ? step : 0.0f;
}

/* A BN scale multiplies its channel's whole output, so its code's error counts relative
 * to the channel's own value, and a channel far below the tensor's largest would lose
 * most of its digits to a linear code. Above this relative error on any channel, the
 * tensor's scales are stored as halves instead (step 0 marks them in the file), if
 * halves keep them within the bound (else codes: scales under about 2^-19 of a unit,
 * channels that output almost nothing). */
#define CODE_MAX_REL_ERR (1.0f / 64.0f)

/* Whether codes of step `step` keep every BN scale of a tensor within CODE_MAX_REL_ERR
 * (a shift's error is absolute, like an activation's rounding: codes always do). */
static int codes_keep_factors(const float *v, size_t n, float step) {
  for (size_t i = 0; i < n; i++) {
    float code = nearbyintf(v[i] / step);
    code = code > 127.0f ? 127.0f : code < -127.0f ? -127.0f : code;
    if (v[i] != 0.0f && fabsf(code * step - v[i]) > CODE_MAX_REL_ERR * fabsf(v[i])) return 0;
  }
  return 1;
}

/* Version 3's BN scale (folded) or shift of one conv and domain: f16 step, then an int8
 * code per channel, the value code x step (exact in float). With one 2-byte step per
 * tensor that is about a byte a value; the error, at most half a step, is bounded by
 * the tensor's largest value / 254 (measured on MDD-6: docs/QUANTIZATION.md). BN scales
 * whose codes would miss CODE_MAX_REL_ERR: step 0, then the values as halves. */
static void io_codes(qio *io, float **p, float *step, size_t n, int kind, const char *what) {
  if (io->st != MPNAS_OK) return;
  switch (io->mode) {
    case IO_ALLOC: io_f32(io, p, n, kind, what); return;
    case IO_COUNT: io->bytes += 2 + (*step == 0.0f && !io->least ? 2 * n : n); return;
    case IO_WRITE: {
      mpnas__writer_put_f16_array(io->w, step, 1);
      if (*step == 0.0f) {
        mpnas__writer_put_f16_array(io->w, *p, n);
        return;
      }
      for (size_t i = 0; i < n; i++)
        mpnas__writer_put_u8(io->w, (uint8_t)(int)nearbyintf((*p)[i] / *step));
      return;
    }
    case IO_FIT: /* the BN scales are checked once folded (fold_weight_scales) */
      if (kind != V_FACTOR && code_step(*p, n) == 0.0f) io_fail(io, MPNAS_E_UNSUPPORTED, what, 0, 0.0);
      return;
    case IO_HALVE:
      *step = code_step(*p, n);
      if (kind == V_FACTOR && !codes_keep_factors(*p, n, *step)) {
        int fit = 1; /* halves do if they keep every scale within the bound too (a */
        for (size_t i = 0; i < n && fit; i++) { /* subnormal half may, near 2^-14) */
          float v = (*p)[i], h = mpnas__f16_round(v);
          fit = isfinite(h) && fabsf(h - v) <= CODE_MAX_REL_ERR * fabsf(v);
        }
        if (fit) {
          *step = 0.0f;
          for (size_t i = 0; i < n; i++) (*p)[i] = mpnas__f16_round((*p)[i]);
          return;
        }
      }
      for (size_t i = 0; i < n; i++) {
        float code = nearbyintf((*p)[i] / *step);
        code = code > 127.0f ? 127.0f : code < -127.0f ? -127.0f : code;
        (*p)[i] = code * *step;
      }
      return;
    default:
      mpnas__reader_get_f16_array(io->r, step, 1);
      if (kind == V_FACTOR && *step == 0.0f && !signbit(*step)) { /* halves */
        mpnas__reader_get_f16_array(io->r, *p, n);
        for (size_t i = 0; i < n; i++)
          if (!isfinite((*p)[i])) {
            io_fail(io, MPNAS_E_CORRUPT, what, i + 1, (double)(*p)[i]);
            return;
          }
        return;
      }
      if (!(*step > 0.0f) || !isfinite(*step)) {
        io_fail(io, MPNAS_E_CORRUPT, what, 0, (double)*step);
        return;
      }
      for (size_t i = 0; i < n; i++) {
        int32_t code = mpnas__reader_get_u8(io->r);
        code = code > 127 ? code - 256 : code;
        if (code == -128) { /* symmetric codes use -127..127 only */
          io_fail(io, MPNAS_E_CORRUPT, what, i + 1, -128.0);
          return;
        }
        (*p)[i] = (float)code * *step;
      }
  }
}

static void io_conv(qio *io, mpnas__qconv *c, int ch, const char *what) {
  if (io->half) {
    io_codes(io, &c->a, &c->a_step, (size_t)ch, V_FACTOR, what);
    io_codes(io, &c->b, &c->b_step, (size_t)ch, V_FINITE, what);
  } else {
    io_f32(io, &c->a, (size_t)ch, V_FACTOR, what);
    io_f32(io, &c->b, (size_t)ch, V_FINITE, what);
  }
  io_f32(io, &c->mult, (size_t)ch, V_DERIVED, what);
  io_f32(io, &c->bias, (size_t)ch, V_DERIVED, what);
  io_qp(io, &c->out, what);
}

/* The node a domain's layer runs, or NULL for a zero op. */
static const mpnas__node *path_node(const mpnas_model *m, int32_t d, int32_t l) {
  int32_t node = m->node_of[m->op_offset[l] + m->domains[d].path[l]];
  return node < 0 ? NULL : &m->nodes[node];
}

/* The file order (docs/MODEL-FORMAT.md, QNT8): stem weights; each node's int8 weights
 * and scales (SE in float); the head's; then per domain its classifier, and along its
 * path each conv's folded BN and output affine. */
static void walk(qio *io, const mpnas_model *m, mpnas__quant *q) {
  mpnas__conv_geom sg = mpnas__space_stem_geom(&m->space), hg = mpnas__space_head_geom(&m->space);
  io_f32(io, &q->stem_w, mpnas__conv_weight_floats(&sg), V_FINITE, "stem weights");
  for (int32_t i = 0; i < m->nnodes; i++) {
    const mpnas__ib_geom *g = &m->nodes[i].g;
    mpnas__qnode *qn = &q->nodes[i];
    size_t cmid = (size_t)g->cmid;
    if (g->expand) {
      io_i8(io, &qn->exp, (size_t)g->cin * cmid, "expand weights");
      io_f32(io, &qn->exp_s, cmid, V_WSCALE, "expand weight scales");
    }
    io_i8(io, &qn->dw, (size_t)g->k * g->k * cmid, "depthwise weights");
    io_f32(io, &qn->dw_s, cmid, V_WSCALE, "depthwise weight scales");
    if (g->se) {
      io_f32(io, &qn->se_w1, cmid * g->se, V_FINITE, "SE weights");
      io_f32(io, &qn->se_b1, (size_t)g->se, V_FINITE, "SE weights");
      io_f32(io, &qn->se_w2, (size_t)g->se * cmid, V_FINITE, "SE weights");
      io_f32(io, &qn->se_b2, cmid, V_FINITE, "SE weights");
    }
    io_i8(io, &qn->proj, cmid * g->cout, "project weights");
    io_f32(io, &qn->proj_s, (size_t)g->cout, V_WSCALE, "project weight scales");
  }
  io_i8(io, &q->head, (size_t)hg.cin * hg.cout, "head weights");
  io_f32(io, &q->head_s, (size_t)hg.cout, V_WSCALE, "head weight scales");
  for (int32_t d = 0; d < m->ndomains; d++) {
    mpnas__qdomain *qd = &q->doms[d];
    size_t classes = (size_t)m->domains[d].classes;
    io_i8(io, &qd->fc_q, (size_t)hg.cout * classes, "classifier weights");
    io_f32(io, &qd->fc_s, classes, V_POSITIVE, "classifier weight scales");
    io_f32(io, &qd->fc_w, (size_t)hg.cout * classes, V_DERIVED, "classifier weights");
    io_f32(io, &qd->fc_b, classes, V_FINITE, "classifier biases");
    io_conv(io, &qd->stem, sg.cout, "stem BN / output");
    for (int32_t l = 0; l < m->nlayers; l++) {
      const mpnas__node *nd = path_node(m, d, l);
      if (nd == NULL) continue;
      mpnas__qlayer *ql = &qd->layers[l];
      if (nd->g.expand) io_conv(io, &ql->exp, nd->g.cmid, "expand BN / output");
      io_conv(io, &ql->dw, nd->g.cmid, "depthwise BN / output");
      if (nd->g.se) io_qp(io, &ql->se_out, "SE output");
      io_conv(io, &ql->proj, nd->g.cout, "project BN / output");
    }
    io_conv(io, &qd->head, hg.cout, "head BN / output");
  }
}

/* A new, empty int8 form laid out for m; NULL when memory ran out. */
static mpnas__quant *quant_new(const mpnas_model *m) {
  mpnas__quant *q = mpnas__calloc(m->ctx, 1, sizeof *q);
  if (q == NULL) return NULL;
  mpnas__arena_init(&q->store, m->ctx);
  size_t N = (size_t)m->nnodes, D = (size_t)m->ndomains, L = (size_t)m->nlayers;
  q->nodes = mpnas__arena_alloc(&q->store, sizeof *q->nodes * (N ? N : 1));
  q->doms = mpnas__arena_alloc(&q->store, sizeof *q->doms * D);
  int ok = q->nodes != NULL && q->doms != NULL;
  if (ok) {
    memset(q->nodes, 0, sizeof *q->nodes * (N ? N : 1));
    memset(q->doms, 0, sizeof *q->doms * D);
  }
  for (size_t d = 0; d < D && ok; d++) {
    q->doms[d].layers = mpnas__arena_alloc(&q->store, sizeof(mpnas__qlayer) * (L ? L : 1));
    ok = q->doms[d].layers != NULL;
    if (ok) memset(q->doms[d].layers, 0, sizeof(mpnas__qlayer) * (L ? L : 1));
  }
  qio io = {IO_ALLOC, 0, &q->store, NULL, NULL, 0, MPNAS_OK, "", 0};
  if (ok) walk(&io, m, q);
  if (!ok || io.st != MPNAS_OK) {
    mpnas__arena_destroy(&q->store);
    mpnas__free(m->ctx, q);
    return NULL;
  }
  return q;
}

static void quant_delete(const mpnas_model *m, mpnas__quant *q) {
  if (q == NULL) return;
  mpnas__arena_destroy(&q->store);
  mpnas__free(m->ctx, q);
}

/* The epilogue's multipliers (kernels.h, "int8 inference"), in double then float:
 * real form (act HSWISH): mult = input scale * weight scale * BN scale, bias = BN shift;
 * folded form (any other act): both divided by the output scale and the output's zero
 * point added to bias, so the kernel needs one fma per output. 0 if a value is not
 * finite (a file's extreme but finite values). */
static int conv_mult(mpnas__qconv *c, float in_scale, const float *ws, int ch, int act) {
  const int real = act == MPNAS__ACT_HSWISH;
  const double inv = real ? 1.0 : 1.0 / (double)c->out.scale;
  const double zero = real ? 0.0 : (double)c->out.zero;
  for (int i = 0; i < ch; i++) {
    double v = (double)in_scale * (double)ws[i] * (double)c->a[i];
    c->mult[i] = (float)(v * inv);
    c->bias[i] = (float)((double)c->b[i] * inv + zero);
    if (!isfinite(c->mult[i]) || !isfinite(c->bias[i])) return 0;
  }
  return 1;
}

/* The epilogues from the stored parts, along each domain's path; the classifiers'
 * float weights. */
static int derive(const mpnas_model *m, mpnas__quant *q) {
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  /* A file's space with an activation that has no int8 form: the folded epilogue would
   * silently drop it. */
  if (!act_fusable(hg.act)) return 0;
  for (int32_t i = 0; i < m->nnodes; i++)
    if (!act_fusable(m->nodes[i].g.act)) return 0;
  for (int32_t d = 0; d < m->ndomains; d++) {
    mpnas__qdomain *qd = &q->doms[d];
    size_t classes = (size_t)m->domains[d].classes;
    for (size_t i = 0; i < (size_t)hg.cout; i++)
      for (size_t c = 0; c < classes; c++) {
        float v = qd->fc_s[c] * (float)qd->fc_q[i * classes + c];
        if (!isfinite(v)) return 0; /* a file's scale near FLT_MAX */
        qd->fc_w[i * classes + c] = v;
      }
    mpnas__qparams in = qd->stem.out;
    for (int32_t l = 0; l < m->nlayers; l++) {
      const mpnas__node *nd = path_node(m, d, l);
      if (nd == NULL) continue;
      const mpnas__qnode *qn = &q->nodes[nd - m->nodes];
      mpnas__qlayer *ql = &qd->layers[l];
      mpnas__qparams cur = in;
      if (nd->g.expand) {
        if (!conv_mult(&ql->exp, cur.scale, qn->exp_s, nd->g.cmid, nd->g.act)) return 0;
        cur = ql->exp.out;
      }
      if (!conv_mult(&ql->dw, cur.scale, qn->dw_s, nd->g.cmid, nd->g.act)) return 0;
      cur = nd->g.se ? ql->se_out : ql->dw.out;
      if (!conv_mult(&ql->proj, cur.scale, qn->proj_s, nd->g.cout, MPNAS__ACT_NONE)) return 0;
      in = ql->proj.out;
    }
    if (!conv_mult(&qd->head, in.scale, q->head_s, hg.cout, hg.act)) return 0;
  }
  return 1;
}

/* ---- Calibration ------------------------------------------------------------------------ */

/* Ranges of a domain's tensors: per layer expand, depthwise, SE, block output; then the
 * stem's and the head's. [lo, hi] pairs. */
#define R_EXP 0
#define R_DW 1
#define R_SE 2
#define R_OUT 3
typedef struct ranges {
  float *v; /* [(4 * nlayers + 2) * 2] */
  int32_t nlayers;
} ranges;

static void widen(float *lohi, size_t count, const float *x) {
  float lo = lohi[0], hi = lohi[1];
  for (size_t i = 0; i < count; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  lohi[0] = lo;
  lohi[1] = hi;
}
static float *range_at(ranges *r, int32_t l, int which) { return r->v + 2 * (4 * (size_t)l + which); }
static float *range_stem(ranges *r) { return r->v + 2 * (4 * (size_t)r->nlayers); }
static float *range_head(ranges *r) { return r->v + 2 * (4 * (size_t)r->nlayers + 1); }

#define TAKE(ptr, count)                                  \
  do {                                                    \
    (ptr) = mpnas__arena_floats(ws, (size_t)(count));     \
    if ((ptr) == NULL) return MPNAS_E_NO_MEMORY;          \
  } while (0)

/* The float inference forward of net (mpnas__net_infer's arithmetic, layer for layer)
 * on n images, widening each tensor's range. Scratch stays taken: the caller releases. */
static mpnas_status calib_forward(const mpnas__engine *eng, mpnas__arena *ws,
                                  const mpnas__net *net, int n, const float *x, ranges *r) {
  mpnas_status st;
  const mpnas__conv_geom *sg = &net->stem_g, *hg = &net->head_g;
  int h = mpnas__out_size(net->in_h, sg->stride), w = mpnas__out_size(net->in_w, sg->stride);
  float *cur;
  TAKE(cur, (size_t)n * h * w * sg->cout);
  st = mpnas__conv_fwd(eng, ws, n, net->in_h, net->in_w, sg->cin, sg->cout, sg->k, sg->stride, x,
                       net->stem.w, net->stem_aff.scale, net->stem_aff.shift, sg->act, cur);
  if (st != MPNAS_OK) return st;
  widen(range_stem(r), (size_t)n * h * w * sg->cout, cur);
  for (int l = 0; l < net->nlayers; l++) {
    const mpnas__net_layer *ly = &net->layers[l];
    const mpnas__ib_geom *g = ly->g;
    if (g == NULL) continue;
    const mpnas__ib_infer *p = &ly->inf;
    int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
    int m_in = n * h * w, m_out = n * ho * wo;
    const float *dw_in = cur;
    if (g->expand) {
      float *e;
      TAKE(e, (size_t)m_in * g->cmid);
      st = mpnas__pw_fwd(eng, ws, m_in, g->cin, g->cmid, cur, p->exp_w, p->bn1.scale,
                         p->bn1.shift, g->act, NULL, e);
      if (st != MPNAS_OK) return st;
      widen(range_at(r, l, R_EXP), (size_t)m_in * g->cmid, e);
      dw_in = e;
    }
    float *dd, *y;
    TAKE(dd, (size_t)m_out * g->cmid);
    st = mpnas__dw_fwd(eng, n, h, w, g->cmid, g->k, g->stride, dw_in, p->dw_w, p->bn2.scale,
                       p->bn2.shift, g->act, dd);
    if (st != MPNAS_OK) return st;
    widen(range_at(r, l, R_DW), (size_t)m_out * g->cmid, dd);
    const float *proj_in = dd;
    if (g->se) {
      float *saved, *s;
      TAKE(saved, mpnas__se_saved_floats(n, g->cmid, g->se));
      TAKE(s, (size_t)m_out * g->cmid);
      mpnas__se_weights se = {p->se_w1, p->se_b1, p->se_w2, p->se_b2};
      if ((st = mpnas__se_fwd(eng, ws, n, ho * wo, g->cmid, g->se, dd, &se, saved, s)) != MPNAS_OK)
        return st;
      widen(range_at(r, l, R_SE), (size_t)m_out * g->cmid, s);
      proj_in = s;
    }
    TAKE(y, (size_t)m_out * g->cout);
    st = mpnas__pw_fwd(eng, ws, m_out, g->cmid, g->cout, proj_in, p->proj_w, p->bn3.scale,
                       p->bn3.shift, MPNAS__ACT_NONE, g->residual ? cur : NULL, y);
    if (st != MPNAS_OK) return st;
    widen(range_at(r, l, R_OUT), (size_t)m_out * g->cout, y);
    cur = y;
    h = ho;
    w = wo;
  }
  float *hy;
  TAKE(hy, (size_t)n * h * w * hg->cout);
  st = mpnas__pw_fwd(eng, ws, n * h * w, hg->cin, hg->cout, cur, net->head.w,
                     net->head_aff.scale, net->head_aff.shift, hg->act, NULL, hy);
  if (st != MPNAS_OK) return st;
  widen(range_head(r), (size_t)n * h * w * hg->cout, hy);
  return MPNAS_OK;
}

/* Domain d's float parts (classifier, folded BN) into q, and its activation affines
 * from up to `images` of its training images, evenly spaced. */
static mpnas_status calibrate_domain(mpnas_model *m, mpnas__quant *q, int32_t d, int32_t images,
                                     ranges *r) {
  mpnas_context *ctx = m->ctx;
  mpnas__arena *ws = &m->ws;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__net net;
  mpnas__net_layer *layers = mpnas__arena_alloc(ws, sizeof *layers * ((size_t)m->nlayers + 1));
  if (layers == NULL) return MPNAS_E_NO_MEMORY;
  mpnas__model_bind(m, d, NULL, &net, layers);
  mpnas__qdomain *qd = &q->doms[d];
  const mpnas__domain *dm = &m->domains[d];
  mpnas__conv_geom sg = net.stem_g, hg = net.head_g;
  mpnas__q8_quantize_weights(hg.cout, dm->classes, net.fc_w, qd->fc_s, qd->fc_q);
  memcpy(qd->fc_b, net.fc_b, sizeof(float) * (size_t)dm->classes);
#define COPY_AFF(qc, aff, ch)                                          \
  do {                                                                 \
    memcpy((qc)->a, (aff).scale, sizeof(float) * (size_t)(ch));        \
    memcpy((qc)->b, (aff).shift, sizeof(float) * (size_t)(ch));        \
  } while (0)
  COPY_AFF(&qd->stem, net.stem_aff, sg.cout);
  COPY_AFF(&qd->head, net.head_aff, hg.cout);
  for (int32_t l = 0; l < m->nlayers; l++) {
    const mpnas__net_layer *ly = &layers[l];
    if (ly->g == NULL) continue;
    mpnas__qlayer *ql = &qd->layers[l];
    if (ly->g->expand) COPY_AFF(&ql->exp, ly->inf.bn1, ly->g->cmid);
    COPY_AFF(&ql->dw, ly->inf.bn2, ly->g->cmid);
    COPY_AFF(&ql->proj, ly->inf.bn3, ly->g->cout);
  }
#undef COPY_AFF

  /* Ranges start at [0, 0]: every affine contains real zero anyway. */
  for (size_t i = 0; i < (4 * (size_t)m->nlayers + 2) * 2; i++) r->v[i] = 0.0f;
  const mpnas__dataset *ds = &dm->data.train;
  int64_t count = ds->count < images ? ds->count : images;
  mpnas__image_shape shape = mpnas__space_image_shape(&m->space);
  size_t per = (size_t)shape.h * shape.w * shape.c;
  size_t host = mpnas__dtype_values(ds->dtype, shape) * mpnas__dtype_elem(ds->dtype);
  mpnas__engine eng = mpnas__engine_ready(&ctx->engine);
  mpnas_status st = MPNAS_OK;
  float *x = mpnas__arena_floats(ws, per * CALIB_CHUNK);
  if (x == NULL) st = MPNAS_E_NO_MEMORY;
  for (int64_t first = 0; first < count && st == MPNAS_OK; first += CALIB_CHUNK) {
    int n = (int)(count - first < CALIB_CHUNK ? count - first : CALIB_CHUNK);
    for (int i = 0; i < n; i++) {
      int64_t at = (first + i) * ds->count / count; /* evenly spaced over the split */
      mpnas__normalise(dm->mean, dm->invstd, shape, ds->dtype,
                       (const unsigned char *)ds->images + (size_t)at * host, 1, x + per * (size_t)i);
    }
    mpnas__arena_mark inner = mpnas__arena_get_mark(ws);
    st = calib_forward(&eng, ws, &net, n, x, r);
    mpnas__arena_release(ws, inner);
  }
  mpnas__arena_release(ws, mark);
  if (st != MPNAS_OK) return st;
  for (size_t i = 0; i < (4 * (size_t)m->nlayers + 2) * 2; i++)
    if (!isfinite(r->v[i]))
      return mpnas__fail(ctx, MPNAS_E_CORRUPT,
                         "quantising domain \"%s\": an activation is not finite on the "
                         "calibration images (the weights overflow float arithmetic)",
                         dm->name);
  qd->stem.out = mpnas__q8_affine(range_stem(r)[0], range_stem(r)[1]);
  qd->head.out = mpnas__q8_affine(range_head(r)[0], range_head(r)[1]);
  for (int32_t l = 0; l < m->nlayers; l++) {
    if (layers[l].g == NULL) continue;
    mpnas__qlayer *ql = &qd->layers[l];
    ql->exp.out = mpnas__q8_affine(range_at(r, l, R_EXP)[0], range_at(r, l, R_EXP)[1]);
    ql->dw.out = mpnas__q8_affine(range_at(r, l, R_DW)[0], range_at(r, l, R_DW)[1]);
    ql->se_out = mpnas__q8_affine(range_at(r, l, R_SE)[0], range_at(r, l, R_SE)[1]);
    ql->proj.out = mpnas__q8_affine(range_at(r, l, R_OUT)[0], range_at(r, l, R_OUT)[1]);
  }
  return MPNAS_OK;
}

/* The shared weights: int8 per output channel, the float parts copied. */
static void quantize_weights(const mpnas_model *m, mpnas__quant *q) {
  const float *w = m->params.w;
  mpnas__conv_geom sg = mpnas__space_stem_geom(&m->space), hg = mpnas__space_head_geom(&m->space);
  memcpy(q->stem_w, w + m->stem.w, sizeof(float) * mpnas__conv_weight_floats(&sg));
  for (int32_t i = 0; i < m->nnodes; i++) {
    const mpnas__node *nd = &m->nodes[i];
    const mpnas__ib_geom *g = &nd->g;
    mpnas__qnode *qn = &q->nodes[i];
    if (g->expand) mpnas__q8_quantize_weights(g->cin, g->cmid, w + nd->w.exp_w, qn->exp_s, qn->exp);
    mpnas__q8_quantize_weights(g->k * g->k, g->cmid, w + nd->w.dw_w, qn->dw_s, qn->dw);
    mpnas__q8_quantize_weights(g->cmid, g->cout, w + nd->w.proj_w, qn->proj_s, qn->proj);
    if (g->se) {
      size_t cm = (size_t)g->cmid, r = (size_t)g->se;
      memcpy(qn->se_w1, w + nd->w.se_w1, sizeof(float) * cm * r);
      memcpy(qn->se_b1, w + nd->w.se_b1, sizeof(float) * r);
      memcpy(qn->se_w2, w + nd->w.se_w2, sizeof(float) * r * cm);
      memcpy(qn->se_b2, w + nd->w.se_b2, sizeof(float) * cm);
    }
  }
  mpnas__q8_quantize_weights(hg.cin, hg.cout, w + m->head.w, q->head_s, q->head);
}

/* The epilogue multiplies a conv's sums by input scale x weight scale s[c] x BN scale
 * a[c] (conv_mult): only the product s[c] x a[c] matters. Version 3 stores it in place
 * of each domain's a[c] (which is per domain anyway) and no s: one array per conv and
 * domain instead of two. apply 0: whether the step of every product's codes (and of the
 * stem's a, which has no weight scale) fits half (io_codes); 1: fold, and set every s
 * to 1. */
static int fold_one(float *a, const float *s, int ch, int apply) {
  float mx = 0.0f;
  for (int c = 0; c < ch; c++) {
    float v = s != NULL ? (float)((double)a[c] * (double)s[c]) : a[c];
    if (apply) a[c] = v;
    mx = fabsf(v) > mx ? fabsf(v) : mx;
  }
  return apply || code_step(&mx, 1) != 0.0f; /* the codes' step fits half */
}

static int fold_weight_scales(const mpnas_model *m, mpnas__quant *q, int apply) {
  mpnas__conv_geom sg = mpnas__space_stem_geom(&m->space), hg = mpnas__space_head_geom(&m->space);
  int ok = 1;
  for (int32_t d = 0; d < m->ndomains && ok; d++) {
    mpnas__qdomain *qd = &q->doms[d];
    ok = fold_one(qd->stem.a, NULL, sg.cout, apply) &&
         fold_one(qd->head.a, q->head_s, hg.cout, apply);
    for (int32_t l = 0; l < m->nlayers && ok; l++) {
      const mpnas__node *nd = path_node(m, d, l);
      if (nd == NULL) continue;
      const mpnas__qnode *qn = &q->nodes[nd - m->nodes];
      mpnas__qlayer *ql = &qd->layers[l];
      ok = (!nd->g.expand || fold_one(ql->exp.a, qn->exp_s, nd->g.cmid, apply)) &&
           fold_one(ql->dw.a, qn->dw_s, nd->g.cmid, apply) &&
           fold_one(ql->proj.a, qn->proj_s, nd->g.cout, apply);
    }
  }
  if (!ok || !apply) return ok;
  /* Every domain is folded: the shared scales may go. */
  for (int32_t i = 0; i < m->nnodes; i++) {
    const mpnas__ib_geom *g = &m->nodes[i].g;
    mpnas__qnode *qn = &q->nodes[i];
    for (int c = 0; c < g->cmid; c++) {
      if (g->expand) qn->exp_s[c] = 1.0f;
      qn->dw_s[c] = 1.0f;
    }
    for (int c = 0; c < g->cout; c++) qn->proj_s[c] = 1.0f;
  }
  for (int c = 0; c < hg.cout; c++) q->head_s[c] = 1.0f;
  return 1;
}

/* Every stored float rounded to half precision and the weight scales folded into the BN
 * scales, so that the int8 form computes with exactly what a version-3 file holds (a
 * save / load round trip stays bit-identical), unless a value does not fit (io_f32's
 * kinds: an overflow, a scale below half's normal range): then all stay full floats,
 * saved as version 2. */
static void halve(const mpnas_model *m, mpnas__quant *q) {
  qio io = {IO_FIT, 1, NULL, NULL, NULL, 0, MPNAS_OK, "", 0};
  walk(&io, m, q);
  q->half = io.st == MPNAS_OK && fold_weight_scales(m, q, 0);
  if (!q->half) return;
  fold_weight_scales(m, q, 1);
  io.mode = IO_HALVE;
  walk(&io, m, q);
}

mpnas_status mpnas__model_quantize(mpnas_model *m, int32_t images) {
  mpnas_context *ctx = m->ctx;
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  if (hg.k != 1 || hg.stride != 1)
    return mpnas__fail(ctx, MPNAS_E_UNSUPPORTED, "quantising: the head is not a 1x1 conv");
  if (!act_fusable(hg.act))
    return mpnas__fail(ctx, MPNAS_E_UNSUPPORTED,
                       "quantising: the head's activation %d has no int8 form (NONE, RELU, "
                       "RELU6 and HSWISH do; docs/QUANTIZATION.md)", hg.act);
  for (int32_t i = 0; i < m->nnodes; i++)
    if (!act_fusable(m->nodes[i].g.act))
      return mpnas__fail(ctx, MPNAS_E_UNSUPPORTED,
                         "quantising: layer %d's activation %d has no int8 form (NONE, RELU, "
                         "RELU6 and HSWISH do; docs/QUANTIZATION.md)",
                         (int)m->nodes[i].layer, m->nodes[i].g.act);
  for (int32_t d = 0; d < m->ndomains; d++)
    if (m->domains[d].data.train.count < 1)
      return mpnas__fail(ctx, MPNAS_E_STATE,
                         "quantising: domain \"%s\" has no training images to calibrate on "
                         "(mpnas_model_set_data)", m->domains[d].name);
  mpnas__quant *q = quant_new(m);
  if (q == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the int8 model");
  q->calibration = images;
  quantize_weights(m, q);
  ranges r = {mpnas__malloc(ctx, sizeof(float) * (4 * (size_t)m->nlayers + 2) * 2), m->nlayers};
  mpnas_status st = r.v == NULL ? MPNAS_E_NO_MEMORY : MPNAS_OK;
  for (int32_t d = 0; d < m->ndomains && st == MPNAS_OK; d++)
    st = calibrate_domain(m, q, d, images, &r);
  mpnas__free(ctx, r.v);
  if (st == MPNAS_OK) halve(m, q);
  if (st == MPNAS_OK && !derive(m, q))
    st = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                     "quantising: a requantisation multiplier overflows float (extreme "
                     "weights or BN statistics)");
  if (st != MPNAS_OK) {
    quant_delete(m, q);
    return st == MPNAS_E_NO_MEMORY ? mpnas__fail(ctx, st, "quantising the model") : st;
  }
  mpnas__model_quant_free(m);
  m->quant = q;
  m->quant_generation++;
  return MPNAS_OK;
}

/* ---- Packed weights ----------------------------------------------------------------------- */

void mpnas__quant_packed_init(mpnas__quant_packed *pk, const mpnas_context *ctx) {
  memset(pk, 0, sizeof *pk);
  mpnas__arena_init(&pk->store, ctx);
}

void mpnas__quant_packed_free(mpnas__quant_packed *pk) {
  mpnas__arena_destroy(&pk->store);
  pk->k = NULL;
}

static const void *pack_one(const mpnas__kernels *k, mpnas__arena *store, int cin, int cout,
                            const int8_t *w) {
  void *packed = mpnas__arena_alloc(store, k->q8_gemm_packed_bytes(cin, cout));
  if (packed != NULL) k->q8_gemm_pack(cin, cout, w, packed);
  return packed;
}

mpnas_status mpnas__quant_pack(const mpnas_model *m, const mpnas__engine *eng,
                               mpnas__quant_packed *pk) {
  if (pk->k == eng->k && pk->generation == m->quant_generation) return MPNAS_OK;
  const mpnas_context *ctx = pk->store.ctx;
  mpnas__quant_packed_free(pk); /* another table's layout may differ in size */
  mpnas__quant_packed_init(pk, ctx);
  const mpnas__quant *q = m->quant;
  size_t N = (size_t)m->nnodes;
  mpnas__arena *st = &pk->store;
  pk->exp = mpnas__arena_alloc(st, sizeof *pk->exp * (N ? N : 1));
  pk->proj = mpnas__arena_alloc(st, sizeof *pk->proj * (N ? N : 1));
  int ok = pk->exp != NULL && pk->proj != NULL;
  for (size_t i = 0; i < N && ok; i++) {
    const mpnas__ib_geom *g = &m->nodes[i].g;
    pk->exp[i] = NULL;
    if (g->expand) ok = (pk->exp[i] = pack_one(eng->k, st, g->cin, g->cmid, q->nodes[i].exp)) != NULL;
    if (ok) ok = (pk->proj[i] = pack_one(eng->k, st, g->cmid, g->cout, q->nodes[i].proj)) != NULL;
  }
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  if (ok) ok = (pk->head = pack_one(eng->k, st, hg.cin, hg.cout, q->head)) != NULL;
  if (!ok) {
    mpnas__quant_packed_free(pk);
    mpnas__quant_packed_init(pk, ctx);
    return MPNAS_E_NO_MEMORY;
  }
  pk->k = eng->k;
  pk->generation = m->quant_generation;
  return MPNAS_OK;
}

/* ---- The int8 forward ------------------------------------------------------------------- */

#define TAKE_Q(ptr, count)                                         \
  do {                                                             \
    (ptr) = mpnas__arena_alloc(ws, (size_t)(count) + 1);           \
    if ((ptr) == NULL) return MPNAS_E_NO_MEMORY;                   \
  } while (0)

/* c's epilogue with act (the act conv_mult derived c's multipliers for). The folded
 * form's activation is the clamp to its bounds in the output's integers: ReLU's floor is
 * the zero point exactly (0 is in every calibrated range); ReLU6's ceiling is 6 requantised
 * as the real form would requantise it. */
static mpnas__q8_epilogue epilogue(const mpnas__qconv *c, int act) {
  const float inv = 1.0f / c->out.scale;
  mpnas__q8_epilogue e = {c->mult, c->bias, act, inv, c->out.zero, -128, 127, NULL, 0.0f, 0};
  if (act == MPNAS__ACT_RELU || act == MPNAS__ACT_RELU6) e.qmin = c->out.zero;
  if (act == MPNAS__ACT_RELU6) {
    float top = nearbyintf(6.0f * inv + (float)c->out.zero);
    if (top < 127.0f) e.qmax = top < (float)e.qmin ? e.qmin : (int32_t)top;
  }
  return e;
}

/* One inverted bottleneck in int8: x (affine in) -> y (affine ql->proj.out). */
static mpnas_status q8_block(const mpnas__engine *eng, mpnas__arena *ws, const mpnas__ib_geom *g,
                             const mpnas__qnode *qn, const mpnas__qlayer *ql, const void *exp_packed,
                             const void *proj_packed, int n, int h, int w, const int8_t *x,
                             mpnas__qparams in, int8_t *y) {
  int ho = mpnas__out_size(h, g->stride), wo = mpnas__out_size(w, g->stride);
  int m_in = n * h * w, m_out = n * ho * wo;
  const int8_t *dw_in = x;
  mpnas__qparams cur = in;
  if (g->expand) {
    int8_t *e;
    TAKE_Q(e, (size_t)m_in * g->cmid);
    mpnas__q8_epilogue ep = epilogue(&ql->exp, g->act);
    mpnas__q8_pw_fwd(eng, m_in, g->cin, g->cmid, x, cur.zero, exp_packed, &ep, e);
    dw_in = e;
    cur = ql->exp.out;
  }
  int8_t *d;
  TAKE_Q(d, (size_t)m_out * g->cmid);
  mpnas__q8_epilogue ed = epilogue(&ql->dw, g->act);
  mpnas__q8_dw_fwd(eng, n, h, w, g->cmid, g->k, g->stride, dw_in, cur.zero, qn->dw, &ed, d);
  cur = ql->dw.out;
  const int8_t *proj_in = d;
  if (g->se) { /* squeeze-excite in float: a per-image gate on a small vector */
    size_t count = (size_t)m_out * g->cmid;
    float *df, *sf, *saved;
    int8_t *s;
    TAKE(df, count);
    TAKE(sf, count);
    TAKE(saved, mpnas__se_saved_floats(n, g->cmid, g->se));
    TAKE_Q(s, count);
    mpnas__q8_dequantize(count, d, cur, df);
    mpnas__se_weights se = {qn->se_w1, qn->se_b1, qn->se_w2, qn->se_b2};
    mpnas_status st = mpnas__se_fwd(eng, ws, n, ho * wo, g->cmid, g->se, df, &se, saved, sf);
    if (st != MPNAS_OK) return st;
    mpnas__q8_quantize(count, sf, ql->se_out, s);
    proj_in = s;
    cur = ql->se_out;
  }
  mpnas__q8_epilogue ep = epilogue(&ql->proj, MPNAS__ACT_NONE);
  if (g->residual) {
    ep.residual = x;
    ep.res_scale = in.scale / ql->proj.out.scale; /* the folded form: in output units */
    ep.res_zero = in.zero;
  }
  mpnas__q8_pw_fwd(eng, m_out, g->cmid, g->cout, proj_in, cur.zero, proj_packed, &ep, y);
  return MPNAS_OK;
}

static mpnas_status q8_forward(const mpnas_model *m, const mpnas__engine *eng, mpnas__arena *ws,
                               int32_t d, int n, const float *x, float *logits,
                               const mpnas__quant_packed *pk) {
  const mpnas__quant *q = m->quant;
  const mpnas__qdomain *qd = &q->doms[d];
  mpnas__conv_geom sg = mpnas__space_stem_geom(&m->space), hg = mpnas__space_head_geom(&m->space);
  int h = mpnas__out_size(m->space.in_h, sg.stride), w = mpnas__out_size(m->space.in_w, sg.stride);
  /* Two int8 buffers of the widest block output (ping-pong), as mpnas__net_infer's. */
  size_t widest = (size_t)h * w * sg.cout;
  {
    int hh = h, ww = w;
    for (int32_t l = 0; l < m->nlayers; l++) {
      const mpnas__node *nd = path_node(m, d, l);
      if (nd == NULL) continue;
      hh = mpnas__out_size(hh, nd->g.stride);
      ww = mpnas__out_size(ww, nd->g.stride);
      if ((size_t)hh * ww * nd->g.cout > widest) widest = (size_t)hh * ww * nd->g.cout;
    }
  }
  int8_t *buf[2];
  TAKE_Q(buf[0], widest * (size_t)n);
  TAKE_Q(buf[1], widest * (size_t)n);
  int cur = 0;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *stem;
  TAKE(stem, (size_t)n * h * w * sg.cout);
  mpnas_status st = mpnas__conv_fwd(eng, ws, n, m->space.in_h, m->space.in_w, sg.cin, sg.cout,
                                    sg.k, sg.stride, x, q->stem_w, qd->stem.a, qd->stem.b,
                                    sg.act, stem);
  if (st != MPNAS_OK) return st;
  mpnas__q8_quantize((size_t)n * h * w * sg.cout, stem, qd->stem.out, buf[cur]);
  mpnas__arena_release(ws, mark);
  mpnas__qparams in = qd->stem.out;
  for (int32_t l = 0; l < m->nlayers; l++) {
    const mpnas__node *nd = path_node(m, d, l);
    if (nd == NULL) continue;
    size_t i = (size_t)(nd - m->nodes);
    mark = mpnas__arena_get_mark(ws);
    st = q8_block(eng, ws, &nd->g, &q->nodes[i], &qd->layers[l], pk->exp[i], pk->proj[i], n, h,
                  w, buf[cur], in, buf[!cur]);
    mpnas__arena_release(ws, mark);
    if (st != MPNAS_OK) return st;
    cur = !cur;
    in = qd->layers[l].proj.out;
    h = mpnas__out_size(h, nd->g.stride);
    w = mpnas__out_size(w, nd->g.stride);
  }
  int8_t *hq;
  float *pooled;
  TAKE_Q(hq, (size_t)n * h * w * hg.cout);
  TAKE(pooled, (size_t)n * hg.cout);
  mpnas__q8_epilogue eh = epilogue(&qd->head, hg.act);
  mpnas__q8_pw_fwd(eng, n * h * w, hg.cin, hg.cout, buf[cur], in.zero, pk->head, &eh, hq);
  mpnas__q8_gap(n, h * w, hg.cout, hq, qd->head.out, pooled);
  return mpnas__fc_fwd(eng, ws, n, hg.cout, m->domains[d].classes, pooled, qd->fc_w, qd->fc_b,
                       logits);
}

/* q8_forward on images [lo, hi) of a batch (mpnas__images_fn). */
typedef struct q8_share {
  const mpnas_model *m;
  int32_t d;
  const float *x;
  float *logits;
  const mpnas__quant_packed *pk;
} q8_share;

static mpnas_status q8_images(const void *arg, const mpnas__engine *eng, mpnas__arena *ws,
                              int lo, int hi) {
  const q8_share *a = arg;
  const mpnas_model *m = a->m;
  size_t per = (size_t)m->space.in_h * (size_t)m->space.in_w * (size_t)m->space.in_c;
  return q8_forward(m, eng, ws, a->d, hi - lo, a->x + per * (size_t)lo,
                    a->logits + (size_t)m->domains[a->d].classes * (size_t)lo, a->pk);
}

mpnas_status mpnas__model_infer_q8(const mpnas_model *m, mpnas__arena *ws, int32_t d, int n,
                                   const float *x, float *logits,
                                   const mpnas__quant_packed *pk) {
  /* Threads as mpnas__model_infer: shares on the threads that start promptly. */
  mpnas__engine eng = mpnas__engine_usable(&m->ctx->engine);
  if (m->quant == NULL || pk->k != eng.k || pk->generation != m->quant_generation)
    return MPNAS_E_INTERNAL; /* the caller packs first */
  /* A batch goes to the threads in shares of images (the same bits as one thread). */
  q8_share share = {m, d, x, logits, pk};
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas_status st = mpnas__model_images_in_shares(&m->ctx->engine, ws, n, q8_images, &share);
  mpnas__arena_release(ws, mark);
  return st;
}

/* ---- The QNT8 section ------------------------------------------------------------------- */

void mpnas__quant_write(mpnas__writer *w, const mpnas_model *m) {
  mpnas__writer_put_i32(w, m->quant->calibration);
  qio io = {IO_WRITE, m->quant->half, NULL, w, NULL, 0, MPNAS_OK, "", 0};
  walk(&io, m, m->quant);
}

mpnas_status mpnas__quant_read(mpnas__reader *r, mpnas_model *m, int half, const char *where) {
  mpnas_context *ctx = m->ctx;
  mpnas__quant *q = quant_new(m);
  if (q == NULL) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "%s: allocating the int8 model", where);
  q->half = half != 0;
  /* Version 3 may store a tensor's BN scales as halves instead of codes (io_codes): the
   * section's size is known only once read, so check the least it can be first and that
   * nothing is left after. */
  qio io = {IO_COUNT, q->half, NULL, NULL, r, 0, MPNAS_OK, "", 1};
  walk(&io, m, q);
  size_t have = mpnas__reader_remaining(r);
  mpnas_status st = MPNAS_OK;
  if (q->half ? have < io.bytes + 4 : have != io.bytes + 4) {
    st = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                     "%s: section 'QNT8' holds %zu bytes, the int8 form of this layout takes %s%zu",
                     where, have, q->half ? "at least " : "", io.bytes + 4);
  } else {
    q->calibration = mpnas__reader_get_i32(r);
    if (q->calibration < 1 || q->calibration > MPNAS__QUANT_MAX_IMAGES)
      st = mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: QNT8: %d calibration images (1..%d)", where,
                       (int)q->calibration, MPNAS__QUANT_MAX_IMAGES);
  }
  if (st == MPNAS_OK) {
    io.mode = IO_READ;
    walk(&io, m, q);
    if ((st = mpnas__reader_status(r)) != MPNAS_OK) {
      /* the reader recorded its message */
    } else if (io.st != MPNAS_OK) {
      st = mpnas__fail(ctx, io.st, "%s: QNT8: %s", where, io.why);
    } else if (mpnas__reader_remaining(r) != 0) {
      st = mpnas__fail(ctx, MPNAS_E_CORRUPT, "%s: QNT8: %zu bytes past the int8 form", where,
                       mpnas__reader_remaining(r));
    } else if (!derive(m, q)) {
      st = mpnas__fail(ctx, MPNAS_E_CORRUPT,
                       "%s: QNT8: a requantisation multiplier or classifier weight overflows "
                       "float, or an activation has no int8 form", where);
    }
  }
  if (st != MPNAS_OK) {
    quant_delete(m, q);
    return st;
  }
  mpnas__model_quant_free(m);
  m->quant = q;
  m->quant_generation++;
  return MPNAS_OK;
}
