/* test_quantize.c - post-training int8 quantisation (docs/QUANTIZATION.md): int8 logits
 * near the float ones and top-1 agreement on a trained model (with and without
 * squeeze-excite), save/load round trips bit-identical in int8, the int8-only file and
 * its size, refusals (before training, bad arguments, a version-1 reader, corrupt QNT8
 * sections, float uses of an int8-only model), predictor precision switching, threads. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "alloc_counting.h"
#include "check.h"
#include "../examples/synthetic.h"
#include "common/serial.h"
#include "model/model_quant.h"
#include "mpnas.h"

#define OKC(call) CHECK_EQ_INT((call), MPNAS_OK)
#define NTEST 300 /* unseen images per domain */

/* test_model.c's small space for 32x32x3 inputs (stem 8/2, stages (16,1,2) relu and
 * (24,2,2) hswish, head 32, k {3,5} x e {2,3}), squeeze-excite as asked. */
static mpnas_space *small_space(mpnas_context *ctx, int se) {
  mpnas_space *sp = NULL;
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_STRIDE, 2));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 32));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, se ? MPNAS_SE_ALWAYS : MPNAS_SE_NEVER));
  OKC(mpnas_space_add_stage(sp, 16, 1, 2, MPNAS_ACT_RELU, 0));
  OKC(mpnas_space_add_stage(sp, 24, 2, 2, MPNAS_ACT_HSWISH, 1));
  const int32_t k[2] = {3, 5}, e[2] = {2, 3};
  OKC(mpnas_space_set_choices(sp, -1, k, 2, e, 2));
  return sp;
}

typedef struct images {
  uint8_t *x;
  int32_t *y;
  int n;
} images;

static images synth(int domain, int n, uint64_t first) {
  images im = {malloc((size_t)n * SYN_PIXELS), malloc(sizeof(int32_t) * (size_t)n), n};
  for (int i = 0; i < n; i++)
    im.y[i] = syn_image(domain, first + (uint64_t)i, 7, im.x + (size_t)i * SYN_PIXELS);
  return im;
}
static void images_free(images *im) {
  free(im->x);
  free(im->y);
}

#define D 3
static const int32_t PATHS[D][3] = {{1, 2, 0}, {1, 3, 2}, {0, 1, 1}};

/* A model of D synthetic domains trained `steps` steps (2 threads). */
static mpnas_model *trained(mpnas_context *ctx, int se, int steps) {
  mpnas_space *sp = small_space(ctx, se);
  mpnas_model *m = NULL;
  OKC(mpnas_model_create(ctx, sp, &m));
  mpnas_space_free(sp);
  for (int d = 0; d < D; d++) {
    OKC(mpnas_model_add_domain(m, SYN_NAMES[d], SYN_CLASSES[d], PATHS[d], 3, NULL));
    images im = synth(d, 800, 0);
    OKC(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, im.x, im.y, im.n));
    images_free(&im);
  }
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, steps));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 24));
  OKC(mpnas_model_train(m, 0, NULL, NULL, 0));
  return m;
}

static mpnas_context *context(void) {
  mpnas_context *ctx = NULL;
  OKC(mpnas_context_create(&ctx));
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 2));
  return ctx;
}

/* Logits of im through a new predictor of the given precision. */
static float *logits_of(const mpnas_model *m, int d, const images *im, int32_t precision) {
  mpnas_predictor *p = NULL;
  float *out = calloc((size_t)im->n * SYN_CLASSES[d], sizeof(float));
  OKC(mpnas_predictor_create(m, &p));
  OKC(mpnas_predictor_set_precision(p, precision));
  OKC(mpnas_predictor_run(p, d, MPNAS_DTYPE_U8, im->x, im->n, MPNAS_OUTPUT_LOGITS, out,
                          (size_t)im->n * SYN_CLASSES[d]));
  mpnas_predictor_free(p);
  return out;
}

static int argmax(const float *v, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[b]) b = i;
  return b;
}

/* Compare int8 with float on NTEST unseen images per domain. Tolerances (stated): top-1
 * agreement >= 0.95, top-1 accuracy within 0.03, RMS logit difference <= 0.15 x the
 * float logits' RMS. Measured on this model (gcc, x86-64): agreement 0.98-1.00, RMS
 * ratio 0.03-0.06. */
static void compare(const mpnas_model *m, const char *what, double min_agree) {
  for (int d = 0; d < D; d++) {
    images te = synth(d, NTEST, 1000000);
    int C = SYN_CLASSES[d];
    float *f = logits_of(m, d, &te, MPNAS_PRECISION_FLOAT32);
    float *q = logits_of(m, d, &te, MPNAS_PRECISION_INT8);
    int agree = 0, right_f = 0, right_q = 0;
    double se = 0, ss = 0;
    for (int i = 0; i < te.n; i++) {
      int af = argmax(f + (size_t)i * C, C), aq = argmax(q + (size_t)i * C, C);
      agree += af == aq;
      right_f += af == te.y[i];
      right_q += aq == te.y[i];
      for (int c = 0; c < C; c++) {
        double a = f[(size_t)i * C + c], b = q[(size_t)i * C + c];
        se += (a - b) * (a - b);
        ss += a * a;
      }
    }
    double ratio = sqrt(se / ss), ag = (double)agree / te.n;
    printf("    %s %-9s float %.3f int8 %.3f agreement %.3f logit RMS ratio %.3f\n", what,
           SYN_NAMES[d], (double)right_f / te.n, (double)right_q / te.n, ag, ratio);
    CHECK_MSG(ag >= min_agree, "%s: agreement %.3f", SYN_NAMES[d], ag);
    CHECK_MSG(fabs((double)(right_f - right_q)) / te.n <= 0.03, "%s: top-1 %d vs %d",
              SYN_NAMES[d], right_f, right_q);
    CHECK_MSG(ratio <= 0.15, "%s: logit RMS ratio %.3f", SYN_NAMES[d], ratio);
    free(f);
    free(q);
    images_free(&te);
  }
}

/* One model for most tests (trained once). */
static mpnas_context *g_ctx;
static mpnas_model *g_model;

static void test_int8_close_to_float(void) {
  int64_t qz = -1;
  OKC(mpnas_model_get_int(g_model, MPNAS_MODEL_QUANTIZED, &qz));
  CHECK_EQ_INT(qz, 0);
  OKC(mpnas_model_quantize(g_model, 0));
  OKC(mpnas_model_get_int(g_model, MPNAS_MODEL_QUANTIZED, &qz));
  CHECK_EQ_INT(qz, 1);
  compare(g_model, "no SE", 0.95);
}

static void test_squeeze_excite(void) {
  mpnas_context *ctx = context();
  mpnas_model *m = trained(ctx, 1, 100);
  OKC(mpnas_model_quantize(m, 128));
  compare(m, "SE   ", 0.95);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
}

typedef struct {
  unsigned char *p;
  size_t n;
} blob;

static blob save(const mpnas_model *m) {
  blob b = {NULL, 0};
  OKC(mpnas_model_save_buffer(m, NULL, 0, &b.n));
  b.p = malloc(b.n);
  OKC(mpnas_model_save_buffer(m, b.p, b.n, &b.n));
  return b;
}

static uint32_t ld32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void st32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t ld64(const unsigned char *p) {
  return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}
static size_t find_section(const blob *b, const char *tag) {
  size_t off = 32;
  while (off + 24 <= b->n) {
    uint64_t len = ld64(b->p + off + 8);
    if (memcmp(b->p + off, tag, 4) == 0) return off;
    off += 24 + (size_t)len + (size_t)((8 - len % 8) % 8);
  }
  return 0;
}
static void fix_section_crc(blob *b, size_t off) {
  uint64_t len = ld64(b->p + off + 8);
  uint32_t c = mpnas__crc32(0, b->p + off, 20);
  c = mpnas__crc32(c, b->p + off + 24, (size_t)len);
  st32(b->p + off + 20, c);
}

/* Bit-identical int8 outputs after a round trip; the int8-only file. */
static void test_round_trip_and_int8_only(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  images te = synth(1, 64, 2000000);
  float *ref_q = logits_of(m, 1, &te, MPNAS_PRECISION_INT8);
  float *ref_f = logits_of(m, 1, &te, MPNAS_PRECISION_FLOAT32);
  size_t bytes = (size_t)te.n * SYN_CLASSES[1] * sizeof(float);

  blob q = save(m);
  CHECK_EQ_INT(ld32(q.p + 8), 3); /* format version 3: QNT8's floats in half precision */
  CHECK(find_section(&q, "QNT8") != 0 && find_section(&q, "PARW") != 0);
  mpnas_model *l = NULL;
  OKC(mpnas_model_load_buffer(g_ctx, q.p, q.n, &l));
  float *got = logits_of(l, 1, &te, MPNAS_PRECISION_INT8);
  CHECK(memcmp(got, ref_q, bytes) == 0);
  free(got);
  got = logits_of(l, 1, &te, MPNAS_PRECISION_FLOAT32);
  CHECK(memcmp(got, ref_f, bytes) == 0);
  free(got);
  /* Saving the loaded model again gives the same bytes. */
  blob q2 = save(l);
  CHECK(q2.n == q.n && memcmp(q2.p, q.p, q.n) == 0);
  free(q2.p);

  /* int8 only: saved without PARW / PARB, loads, predicts the same bits. */
  OKC(mpnas_model_drop_float(l));
  OKC(mpnas_model_get_int(l, MPNAS_MODEL_QUANTIZED, &qz));
  CHECK_EQ_INT(qz, 2);
  blob o = save(l);
  CHECK(find_section(&o, "PARW") == 0 && find_section(&o, "PARB") == 0);
  CHECK(find_section(&o, "QNT8") != 0);
  mpnas_model *o8 = NULL;
  OKC(mpnas_model_load_buffer(g_ctx, o.p, o.n, &o8));
  mpnas_predictor *p = NULL;
  OKC(mpnas_predictor_create(o8, &p));
  int32_t prec = -1;
  OKC(mpnas_predictor_get_precision(p, &prec));
  CHECK_EQ_INT(prec, MPNAS_PRECISION_INT8); /* the default of an int8-only model */
  float *out = calloc(bytes, 1);
  OKC(mpnas_predictor_run(p, 1, MPNAS_DTYPE_U8, te.x, te.n, MPNAS_OUTPUT_LOGITS, out,
                          bytes / sizeof(float)));
  CHECK(memcmp(out, ref_q, bytes) == 0);
  /* Float uses are refused with a message. */
  CHECK_EQ_INT(mpnas_predictor_set_precision(p, MPNAS_PRECISION_FLOAT32), MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(g_ctx), "int8 only") != NULL);
  CHECK_EQ_INT(mpnas_model_train(o8, 1, NULL, NULL, 0), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_quantize(o8, 0), MPNAS_E_STATE);
  size_t sz = 0;
  CHECK_EQ_INT(mpnas_model_export_onnx_buffer(o8, 0, NULL, 0, &sz), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(o8, "/nonexistent/x.ckpt"), MPNAS_E_STATE);
  /* evaluate runs the int8 form: the predictor's top-1. */
  double top1 = -1, loss = 0;
  OKC(mpnas_model_evaluate(o8, 1, MPNAS_DTYPE_U8, te.x, te.y, te.n, &top1, &loss));
  int right = 0;
  for (int i = 0; i < te.n; i++) right += argmax(ref_q + (size_t)i * 4, 4) == te.y[i];
  CHECK_NEAR(top1, (double)right / te.n, 1e-12);
  mpnas_predictor_free(p);
  free(out);
  CHECK(o.n < q.n);
  mpnas_model_free(o8);
  mpnas_model_free(l);
  free(o.p);
  free(q.p);
  free(ref_q);
  free(ref_f);
  images_free(&te);
}

/* Version 3 stores a tensor's BN scales as halves, not int8 codes, where a code would be
 * more than 1/64 off some channel's own scale (model_quant.c, CODE_MAX_REL_ERR): here
 * the head's even channels get a folded BN scale 300x smaller, so every domain's head scales
 * span > 64x. The halves round-trip bit for bit; an infinite or NaN half among them, or
 * a code step where halves follow, is refused. */
static void test_factor_halves(void) {
  int64_t qz = 0;
  OKC(mpnas_model_get_int(g_model, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(g_model, 0));
  blob src = save(g_model);
  mpnas_model *m = NULL;
  OKC(mpnas_model_load_buffer(g_ctx, src.p, src.n, &m));
  free(src.p);
  for (int d = 0; d < D; d++) {
    images im = synth(d, 300, 0);
    OKC(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, im.x, im.y, im.n));
    images_free(&im);
  }
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  /* the folded inference BN the quantiser reads (model.h: affine, slot 3N + 1 the head) */
  for (int d = 0; d < D; d++) {
    float *scale = m->affine + m->affine_off[(size_t)(3 * m->nnodes + 1) * D + d];
    for (int c = 0; c < hg.cout; c += 2) scale[c] /= 300.0f;
  }
  OKC(mpnas_model_quantize(m, 0));
  int coded = 0;
  for (int d = 0; d < D; d++) {
    CHECK_MSG(m->quant->doms[d].head.a_step == 0.0f, "domain %d: head scales as codes", d);
    coded += m->quant->doms[d].stem.a_step > 0.0f;
  }
  CHECK(coded > 0); /* the others stay codes */
  images te = synth(2, 64, 3000000);
  size_t bytes = (size_t)te.n * SYN_CLASSES[2] * sizeof(float);
  float *ref = logits_of(m, 2, &te, MPNAS_PRECISION_INT8);
  blob b = save(m);
  mpnas_model *l = NULL;
  OKC(mpnas_model_load_buffer(g_ctx, b.p, b.n, &l));
  float *got = logits_of(l, 2, &te, MPNAS_PRECISION_INT8);
  CHECK(memcmp(got, ref, bytes) == 0);
  blob b2 = save(l);
  CHECK(b2.n == b.n && memcmp(b2.p, b.p, b.n) == 0);
  /* The last domain's head: a (step 0, then C halves), b (step, C codes), out (half, i8)
   * end the section. */
  size_t sec = find_section(&b, "QNT8"), end = sec + 24 + (size_t)ld64(b.p + sec + 8);
  size_t C = (size_t)hg.cout, a_at = end - 3 - (2 + C) - 2 * C;
  CHECK_EQ_INT((int)(b.p[a_at - 2] | b.p[a_at - 1]), 0); /* the step: +0 */
  const uint32_t bad[3][2] = {{0, 0x7c00u}, {0, 0x7e00u}, {2, 0x3c00u}}; /* {at, half} */
  for (int i = 0; i < 3; i++) {
    blob c = {malloc(b.n), b.n};
    memcpy(c.p, b.p, b.n);
    size_t at = bad[i][0] ? a_at - 2 : a_at + 2 * (C / 2);
    c.p[at] = (unsigned char)(bad[i][1] & 0xff);
    c.p[at + 1] = (unsigned char)(bad[i][1] >> 8);
    fix_section_crc(&c, sec);
    mpnas_model *x = NULL;
    CHECK_EQ_INT(mpnas_model_load_buffer(g_ctx, c.p, c.n, &x), MPNAS_E_CORRUPT);
    CHECK(x == NULL);
    CHECK_MSG(strstr(mpnas_context_last_error(g_ctx), "QNT8") != NULL, "%s",
              mpnas_context_last_error(g_ctx));
    free(c.p);
  }
  free(b2.p);
  free(b.p);
  free(got);
  free(ref);
  images_free(&te);
  mpnas_model_free(l);
  mpnas_model_free(m);
}

/* A file of an unquantised model stays version 1; a quantised one is version 3 (QNT8's
 * floats as halves). A version-1 reader (the format before QNT8) refuses both quantised
 * versions with MPNAS_E_VERSION, a version-2 reader (full-float QNT8) version 3. */
static void test_versions(void) {
  mpnas_context *ctx = context();
  mpnas_model *m = trained(ctx, 0, 20);
  blob v1 = save(m);
  CHECK_EQ_INT(ld32(v1.p + 8), 1);
  CHECK(find_section(&v1, "QNT8") == 0);
  OKC(mpnas_model_quantize(m, 16));
  CHECK(m->quant->half == 1);
  blob v3 = save(m);
  CHECK_EQ_INT(ld32(v3.p + 8), 3);
  /* The part before QNT8 is the version-1 file's but for the header. */
  size_t qoff = find_section(&v3, "QNT8");
  CHECK(qoff == v1.n && memcmp(v1.p + 32, v3.p + 32, v1.n - 32) == 0);
  /* The same int8 form in full floats: what a version-2 writer gave (the model's values
   * are halves, so it predicts the same either way). */
  m->quant->half = 0;
  blob v2 = save(m);
  m->quant->half = 1;
  CHECK_EQ_INT(ld32(v2.p + 8), 2);
  CHECK(find_section(&v2, "QNT8") == v1.n);
  static const mpnas__file_kind old = {"MPNASMDL", "model", 1, 1};
  static const mpnas__file_kind old2 = {"MPNASMDL", "model", 2, 1};
  mpnas__reader r;
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &old, v2.p, v2.n), MPNAS_E_VERSION);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &old, v3.p, v3.n), MPNAS_E_VERSION);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &old2, v3.p, v3.n), MPNAS_E_VERSION);
  OKC(mpnas__reader_open(&r, ctx, &old2, v2.p, v2.n));
  OKC(mpnas__reader_open(&r, ctx, &old, v1.p, v1.n));
  /* The version-2 file loads as version 2: same int8 outputs, re-saved as version 2
   * byte for byte (a loaded version-2 model is not rounded to halves). */
  images te = synth(2, 32, 3000000);
  float *ref = logits_of(m, 2, &te, MPNAS_PRECISION_INT8);
  size_t bytes = (size_t)te.n * SYN_CLASSES[2] * sizeof(float);
  mpnas_model *l2 = NULL;
  OKC(mpnas_model_load_buffer(ctx, v2.p, v2.n, &l2));
  CHECK(l2 != NULL && l2->quant->half == 0);
  float *got = logits_of(l2, 2, &te, MPNAS_PRECISION_INT8);
  CHECK(memcmp(got, ref, bytes) == 0);
  free(got);
  blob again = save(l2);
  CHECK(again.n == v2.n && memcmp(again.p, v2.p, v2.n) == 0);
  free(again.p);
  OKC(mpnas_model_drop_float(l2));
  blob o2 = save(l2);
  CHECK_EQ_INT(ld32(o2.p + 8), 2);
  mpnas_model_free(l2);
  free(ref);
  images_free(&te);
  /* Sizes: float file, float + int8, int8 only. The int8-only file keeps in float the
   * stem, SE, the classifiers and each domain's folded BN and affines: small next to
   * the int8 weights in a real model (docs/QUANTIZATION.md has MDD-6's sizes). */
  OKC(mpnas_model_drop_float(m));
  blob o = save(m);
  int64_t params = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_PARAMS, &params));
  printf("    file sizes (%lld parameters): float %zu, float + int8 %zu, int8 only %zu bytes "
         "(%.2f of float; %zu in full floats, version 2)\n", (long long)params, v1.n, v3.n,
         o.n, (double)o.n / (double)v1.n, o2.n);
  CHECK(o.n < v1.n / 2 && o.n < o2.n);
  mpnas_model_free(m);
  free(o.p);
  free(o2.p);
  free(v1.p);
  free(v2.p);
  free(v3.p);
  mpnas_context_free(ctx);
}

static void test_training_drops_int8(void) {
  mpnas_context *ctx = context();
  mpnas_model *m = trained(ctx, 0, 10);
  OKC(mpnas_model_quantize(m, 16));
  mpnas_predictor *p = NULL;
  OKC(mpnas_predictor_create(m, &p));
  OKC(mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8));
  images te = synth(0, 4, 0);
  float out[16];
  OKC(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, te.x, 4, MPNAS_OUTPUT_LOGITS, out, 16));
  /* New weights drop the int8 form: here a checkpoint loaded into the model (training
   * further does the same, mpnas_model_train). */
  char path[] = "/tmp/mpnas_test_quantize_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) close(fd);
  OKC(mpnas_model_save_checkpoint(m, path));
  OKC(mpnas_model_load_checkpoint(m, path));
  remove(path);
  int64_t qz = -1;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  CHECK_EQ_INT(qz, 0);
  CHECK_EQ_INT(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, te.x, 4, MPNAS_OUTPUT_LOGITS, out, 16),
               MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(ctx), "quantised") != NULL);
  /* Quantised again, the predictor repacks and runs. */
  OKC(mpnas_model_quantize(m, 16));
  OKC(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, te.x, 4, MPNAS_OUTPUT_LOGITS, out, 16));
  mpnas_predictor_free(p);
  images_free(&te);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
}

static void test_refusals(void) {
  mpnas_context *ctx = context();
  mpnas_space *sp = small_space(ctx, 0);
  mpnas_model *m = NULL;
  OKC(mpnas_model_create(ctx, sp, &m));
  mpnas_space_free(sp);
  OKC(mpnas_model_add_domain(m, "a", 4, PATHS[0], 3, NULL));
  CHECK_EQ_INT(mpnas_model_quantize(NULL, 0), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_quantize(m, 0), MPNAS_E_STATE); /* before training */
  CHECK(strstr(mpnas_context_last_error(ctx), "mpnas_model_quantize") != NULL);
  CHECK_EQ_INT(mpnas_model_drop_float(m), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_drop_float(NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_predictor_set_precision(NULL, 0), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_predictor_get_precision(NULL, NULL), MPNAS_E_INVALID_ARGUMENT);
  mpnas_model_free(m);

  m = trained(ctx, 0, 10);
  CHECK_EQ_INT(mpnas_model_quantize(m, -1), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_model_quantize(m, 65537), MPNAS_E_OUT_OF_RANGE);
  mpnas_predictor *p = NULL;
  OKC(mpnas_predictor_create(m, &p));
  CHECK_EQ_INT(mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_predictor_set_precision(p, 7), MPNAS_E_OUT_OF_RANGE);
  CHECK_EQ_INT(mpnas_predictor_get_precision(p, NULL), MPNAS_E_INVALID_ARGUMENT);
  /* Calibration needs the training images. */
  OKC(mpnas_model_clear_data(m));
  CHECK_EQ_INT(mpnas_model_quantize(m, 0), MPNAS_E_STATE);
  CHECK(strstr(mpnas_context_last_error(ctx), "training images") != NULL);
  mpnas_predictor_free(p);
  mpnas_model_free(m);

  /* Unsupported activations: a sigmoid stage. */
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 16));
  OKC(mpnas_space_add_stage(sp, 8, 1, 2, MPNAS_ACT_SIGMOID, 0));
  OKC(mpnas_model_create(ctx, sp, &m));
  mpnas_space_free(sp);
  const int32_t path[1] = {0};
  OKC(mpnas_model_add_domain(m, "a", 4, path, 1, NULL));
  images im = synth(0, 40, 0);
  OKC(mpnas_model_set_data(m, 0, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, im.x, im.y, im.n));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 2));
  OKC(mpnas_model_train(m, 0, NULL, NULL, 0));
  CHECK_EQ_INT(mpnas_model_quantize(m, 0), MPNAS_E_UNSUPPORTED);
  images_free(&im);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
}

/* Quantised files as stored: the fuzz seeds, written by earlier builds (version 2: 12
 * quantised, 15 int8 only) and by this one (version 3: 16, 19). Each loads in its own
 * encoding, re-saves to the same bytes, and its int8 outputs survive that round trip
 * bit for bit. */
static void test_stored_files(void) {
  static const struct {
    const char *path;
    uint32_t version;
    int64_t quantized;
  } files[] = {
      {"tests/fuzz/corpus/model/seed-12.bin", 2, 1},
      {"tests/fuzz/corpus/model/seed-15.bin", 2, 2},
      {"tests/fuzz/corpus/model/seed-16.bin", 3, 1},
      {"tests/fuzz/corpus/model/seed-19.bin", 3, 2},
  };
  for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
    FILE *fp = fopen(files[f].path, "rb");
    CHECK_MSG(fp != NULL, "cannot open %s (run from the repository root)", files[f].path);
    if (fp == NULL) continue;
    blob b = {malloc(1 << 16), 0};
    b.n = fread(b.p, 1, 1 << 16, fp);
    fclose(fp);
    CHECK_EQ_INT(ld32(b.p + 8), files[f].version);
    mpnas_model *l = NULL;
    OKC(mpnas_model_load_buffer(g_ctx, b.p, b.n, &l));
    if (l == NULL) {
      free(b.p);
      continue;
    }
    int64_t qz = -1;
    OKC(mpnas_model_get_int(l, MPNAS_MODEL_QUANTIZED, &qz));
    CHECK_EQ_INT(qz, files[f].quantized);
    CHECK_EQ_INT(l->quant->half, files[f].version == 3);
    blob again = save(l);
    CHECK_MSG(again.n == b.n && memcmp(again.p, b.p, b.n) == 0, "%s: saved again differs",
              files[f].path);
    /* int8 outputs of domain 0 on a few deterministic images, before and after. */
    const mpnas_space *sp = NULL;
    OKC(mpnas_model_space(l, &sp));
    int64_t h = 0, w = 0, c = 0;
    OKC(mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_HEIGHT, &h));
    OKC(mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_WIDTH, &w));
    OKC(mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_CHANNELS, &c));
    int32_t classes = 0;
    OKC(mpnas_model_domain_classes(l, 0, &classes));
    enum { N = 4 };
    size_t per = (size_t)(h * w * c), nout = (size_t)N * (size_t)classes;
    uint8_t *x = malloc(per * N);
    for (size_t i = 0; i < per * N; i++) x[i] = (uint8_t)((i * 37u + 11u) & 0xffu);
    float *out[2] = {calloc(nout, sizeof(float)), calloc(nout, sizeof(float))};
    mpnas_model *l2 = NULL;
    OKC(mpnas_model_load_buffer(g_ctx, again.p, again.n, &l2));
    for (int k = 0; k < 2 && l2 != NULL; k++) {
      mpnas_predictor *p = NULL;
      OKC(mpnas_predictor_create(k ? l2 : l, &p));
      OKC(mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8));
      OKC(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, x, N, MPNAS_OUTPUT_LOGITS, out[k], nout));
      mpnas_predictor_free(p);
    }
    for (size_t i = 0; i < nout; i++) CHECK(isfinite(out[0][i]));
    CHECK(memcmp(out[0], out[1], sizeof(float) * nout) == 0);
    free(out[0]);
    free(out[1]);
    free(x);
    mpnas_model_free(l2);
    mpnas_model_free(l);
    free(again.p);
    free(b.p);
  }
}

static void st16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v & 0xffu);
  p[1] = (unsigned char)(v >> 8);
}

/* Every kind of bad value in QNT8 is refused with MPNAS_E_CORRUPT (CRCs fixed), with its
 * floats as halves (version 3) and as full floats (version 2). */
static void test_corrupt_sections(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  for (int half = 1; half >= 0; half--) {
    m->quant->half = half;
    blob good = save(m);
    m->quant->half = 1;
    CHECK_EQ_INT(ld32(good.p + 8), half ? 3 : 2);
    size_t sec = find_section(&good, "QNT8"), pay = sec + 24, fb = half ? 2 : 4;
    /* Offsets: i32 calibration; stem weights (3x3x3x8 floats); node 0 (layer 0, k3 e2,
     * 8 -> 16): expand int8 [8][16], its 16 scales, ... Values: float bits, or half's. */
    const mpnas__node *n0 = &m->nodes[0];
    size_t stem = fb * (3 * 3 * 3 * 8), exp_w = (size_t)n0->g.cin * n0->g.cmid;
    CHECK(n0->g.expand);
    /* Domain 0 starts after the nodes' int8 weights, scales (version 2 only: version 3
     * folds them into the BN scales) and SE weights, and the head's; there its
     * classifier's int8 weights, scales, biases, then the stem's BN scale (version 3:
     * a half step, then int8 codes). */
    size_t dom0 = 4 + stem;
    for (int32_t i = 0; i < m->nnodes; i++) {
      const mpnas__ib_geom *g = &m->nodes[i].g;
      size_t cm = (size_t)g->cmid, r = (size_t)g->se;
      dom0 += (g->expand ? (size_t)g->cin * cm : 0) + (size_t)(g->k * g->k) * cm +
              cm * (size_t)g->cout + (g->se ? fb * (cm * r + r + r * cm + cm) : 0);
      if (!half) dom0 += fb * ((g->expand ? cm : 0) + cm + (size_t)g->cout); /* scales */
    }
    mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
    size_t classes0 = (size_t)m->domains[0].classes, fc_q = (size_t)hg.cout * classes0;
    dom0 += (size_t)hg.cin * (size_t)hg.cout + (half ? 0 : fb * (size_t)hg.cout);
    size_t fc_s = dom0 + fc_q, stem_a = fc_s + 2 * fb * classes0;
    /* Version 3's BN step and code cases go to the stem's shift, which is always coded
     * (its scale may be halves: test_factor_halves), right after the scale. */
    size_t sc = (size_t)mpnas__space_stem_geom(&m->space).cout;
    size_t bn_at = !half ? stem_a
                   : stem_a + 2 + (m->quant->doms[0].stem.a_step == 0.0f ? 2 * sc : sc);
    struct {
      size_t at;
      uint32_t f32, f16;
      int byte;
      const char *what;
    } cases[] = {
        {0, 0, 0, 0, "0 calibration images"},
        {4, 0x7fc00000u, 0x7e00u, 0, "a NaN stem weight"},
        {4, 0x7f800000u, 0xfc00u, 0, "an infinite stem weight"},
        {4 + stem, 0x80u, 0x80u, 1, "int8 weight -128"},
        {4 + stem + exp_w, 0, 0, 0, "a zero weight scale"},
        {4 + stem + exp_w, 0xbf800000u, 0xbc00u, 0, "a negative weight scale"},
        {4 + stem + exp_w, 0x7f800000u, 0x7c00u, 0, "an infinite weight scale"},
        {4 + stem + exp_w, 0x00000001u, 0x0001u, 0, "a subnormal weight scale"},
        {fc_s, 0, 0, 0, "a zero classifier scale"},
        {fc_s, 0xbf800000u, 0xbc00u, 0, "a negative classifier scale"},
        {fc_s, 0x00000001u, 0x03ffu, 0, "a subnormal classifier scale"},
        {fc_s + fb, 0x7fc00000u, 0x7e00u, 0, "a NaN classifier scale"},
        {bn_at, 0x7f800000u, 0x7c00u, 0, "an infinite BN scale (version 3: a shift's step)"},
        {bn_at, 0x00000001u, 0x8001u, 0, "a negative BN step (version 3)"},
        {bn_at, 0x00000001u, 0x0000u, 0, "a zero BN shift step (version 3)"},
        {bn_at + 2, 0x80u, 0x80u, 1, "a BN code of -128 (version 3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      /* Weight scales are in version 2 only, where any finite BN scale is valid; the BN
       * codes and their steps in version 3 only. */
      if (half && cases[i].at == 4 + stem + exp_w) continue;
      if (!half && (cases[i].at == bn_at + 2 || (cases[i].at == bn_at && cases[i].f32 == 1u)))
        continue;
      blob b = {malloc(good.n), good.n};
      memcpy(b.p, good.p, good.n);
      if (cases[i].byte)
        b.p[pay + cases[i].at] = (unsigned char)cases[i].f32;
      else if (cases[i].at == 0 || !half)
        st32(b.p + pay + cases[i].at, cases[i].f32);
      else
        st16(b.p + pay + cases[i].at, cases[i].f16);
      fix_section_crc(&b, sec);
      mpnas_model *l = NULL;
      mpnas_status st = mpnas_model_load_buffer(g_ctx, b.p, b.n, &l);
      CHECK_MSG(st == MPNAS_E_CORRUPT, "%s (version %d): status %d", cases[i].what,
                half ? 3 : 2, (int)st);
      CHECK(l == NULL);
      CHECK_MSG(strstr(mpnas_context_last_error(g_ctx), "QNT8") != NULL, "%s: %s",
                cases[i].what, mpnas_context_last_error(g_ctx));
      mpnas_model_free(l);
      free(b.p);
    }
    /* The last domain's head output affine (scale, zero: i32, in version 3 i8): the
     * section's end. */
    size_t zb = half ? 1 : 4, len = (size_t)ld64(good.p + sec + 8), qp = pay + len - fb - zb;
    const uint32_t bad_f32[4] = {0, 0x7fc00000u, 0xbf800000u, 0x00000001u};
    const uint32_t bad_f16[4] = {0, 0x7e00u, 0xbc00u, 0x0001u};
    for (int i = 0; i < (half ? 4 : 5); i++) { /* an i8 zero point is never out of range */
      blob b = {malloc(good.n), good.n};
      memcpy(b.p, good.p, good.n);
      if (i == 4)
        st32(b.p + qp + fb, 200u); /* zero point out of range */
      else if (half)
        st16(b.p + qp, bad_f16[i]);
      else
        st32(b.p + qp, bad_f32[i]);
      fix_section_crc(&b, sec);
      mpnas_model *l = NULL;
      CHECK_EQ_INT(mpnas_model_load_buffer(g_ctx, b.p, b.n, &l), MPNAS_E_CORRUPT);
      mpnas_model_free(l);
      free(b.p);
    }
    /* Cut or grown by a value: the size check (a half file read as full floats or back). */
    blob c = {malloc(good.n), good.n};
    memcpy(c.p, good.p, good.n);
    st32(c.p + 8, half ? 2 : 3);
    st32(c.p + 28, mpnas__crc32(0, c.p, 28)); /* the header's CRC */
    mpnas_model *lc = NULL;
    CHECK_EQ_INT(mpnas_model_load_buffer(g_ctx, c.p, c.n, &lc), MPNAS_E_CORRUPT);
    free(c.p);
    /* A missing QNT8 in a quantised file: rename the tag. */
    blob b = {malloc(good.n), good.n};
    memcpy(b.p, good.p, good.n);
    memcpy(b.p + sec, "QNT9", 4);
    fix_section_crc(&b, sec);
    mpnas_model *l = NULL;
    CHECK_EQ_INT(mpnas_model_load_buffer(g_ctx, b.p, b.n, &l), MPNAS_E_CORRUPT);
    free(b.p);
    free(good.p);
  }
}

/* A QNT8 section over a space whose layer or head activation has no int8 form (SIGMOID,
 * HSIGMOID) is refused as MPNAS_E_CORRUPT naming QNT8: such a file cannot come from
 * mpnas_model_quantize (MPNAS_E_UNSUPPORTED), so it was altered. Made by patching the
 * activation in SPCE (valid there: the float model has every activation) of a quantised
 * file; the same patch to ReLU6, which has an int8 form, loads. */
static void test_unfusable_activation_file(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  blob good = save(m);
  size_t sec = find_section(&good, "QNT8"), spce = find_section(&good, "SPCE");
  CHECK(sec != 0 && spce != 0);
  /* SPCE (docs/MODEL-FORMAT.md): head activation at 32; two default lists of 2 (small_space)
   * end at 64, the stage count there, stage 0 from 68: its activation at 68 + 12. */
  const size_t pay = spce + 24, head_act = 32, stage0_act = 80;
  CHECK_EQ_INT((int)ld32(good.p + pay + 64), 2);               /* stages */
  CHECK_EQ_INT((int)ld32(good.p + pay + 68), 16);              /* stage 0's channels */
  CHECK_EQ_INT((int)ld32(good.p + pay + stage0_act), MPNAS_ACT_RELU);
  const struct {
    size_t at;
    int32_t act;
    mpnas_status want;
  } cases[] = {
      {stage0_act, MPNAS_ACT_SIGMOID, MPNAS_E_CORRUPT},
      {stage0_act, MPNAS_ACT_HSIGMOID, MPNAS_E_CORRUPT},
      {head_act, MPNAS_ACT_SIGMOID, MPNAS_E_CORRUPT},
      {head_act, MPNAS_ACT_HSIGMOID, MPNAS_E_CORRUPT},
      {stage0_act, MPNAS_ACT_RELU6, MPNAS_OK}, /* the patch itself is sound */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    blob b = {malloc(good.n), good.n};
    memcpy(b.p, good.p, good.n);
    st32(b.p + pay + cases[i].at, (uint32_t)cases[i].act);
    fix_section_crc(&b, spce);
    mpnas_model *l = NULL;
    mpnas_status st = mpnas_model_load_buffer(g_ctx, b.p, b.n, &l);
    CHECK_MSG(st == cases[i].want, "case %zu (activation %d at %zu): status %d", i,
              (int)cases[i].act, cases[i].at, (int)st);
    if (cases[i].want == MPNAS_OK) {
      int64_t lq = 0;
      CHECK(l != NULL);
      if (l != NULL) OKC(mpnas_model_get_int(l, MPNAS_MODEL_QUANTIZED, &lq));
      CHECK_EQ_INT((int)lq, 1);
    } else {
      CHECK(l == NULL);
      CHECK_MSG(strstr(mpnas_context_last_error(g_ctx), "QNT8") != NULL &&
                    strstr(mpnas_context_last_error(g_ctx), "int8 form") != NULL,
                "case %zu: %s", i, mpnas_context_last_error(g_ctx));
    }
    mpnas_model_free(l);
    free(b.p);
  }
  free(good.p);
}

/* Switching a predictor's precision back and forth gives each form's own outputs; a
 * change of ISA repacks. */
static void test_precision_switching(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  images te = synth(2, 20, 3000000);
  size_t count = (size_t)te.n * SYN_CLASSES[2];
  float *rf = logits_of(m, 2, &te, MPNAS_PRECISION_FLOAT32);
  float *rq = logits_of(m, 2, &te, MPNAS_PRECISION_INT8);
  float *out = calloc(count, sizeof(float));
  mpnas_predictor *p = NULL;
  OKC(mpnas_predictor_create(m, &p));
  for (int round = 0; round < 4; round++) {
    int32_t prec = round % 2 ? MPNAS_PRECISION_INT8 : MPNAS_PRECISION_FLOAT32;
    OKC(mpnas_predictor_set_precision(p, prec));
    OKC(mpnas_predictor_run(p, 2, MPNAS_DTYPE_U8, te.x, te.n, MPNAS_OUTPUT_LOGITS, out, count));
    CHECK(memcmp(out, prec ? rq : rf, count * sizeof(float)) == 0);
  }
  /* The scalar table's int8 kernels, then back to the default (packs again). */
  OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_SCALAR));
  OKC(mpnas_predictor_run(p, 2, MPNAS_DTYPE_U8, te.x, te.n, MPNAS_OUTPUT_LOGITS, out, count));
  int agree = 0;
  for (int i = 0; i < te.n; i++)
    agree += argmax(out + (size_t)i * SYN_CLASSES[2], SYN_CLASSES[2]) ==
             argmax(rq + (size_t)i * SYN_CLASSES[2], SYN_CLASSES[2]);
  CHECK(agree >= te.n - 1); /* the SIMD kernels may differ by 1 at a rounding boundary */
  OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_AUTO));
  OKC(mpnas_predictor_run(p, 2, MPNAS_DTYPE_U8, te.x, te.n, MPNAS_OUTPUT_LOGITS, out, count));
  CHECK(memcmp(out, rq, count * sizeof(float)) == 0);
  mpnas_predictor_free(p);
  free(out);
  free(rf);
  free(rq);
  images_free(&te);
}

/* Six threads, each with an int8 predictor on the same model: the single-threaded bits. */
typedef struct job {
  const mpnas_model *m;
  const images *im;
  int d;
  const float *ref;
  int same;
  mpnas_status st;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  size_t count = (size_t)j->im->n * SYN_CLASSES[j->d];
  float *out = calloc(count, sizeof(float));
  mpnas_predictor *p = NULL;
  j->st = mpnas_predictor_create(j->m, &p);
  if (j->st == MPNAS_OK) j->st = mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8);
  j->same = 1;
  for (int rep = 0; rep < 3 && j->st == MPNAS_OK; rep++) {
    j->st = mpnas_predictor_run(p, j->d, MPNAS_DTYPE_U8, j->im->x, j->im->n,
                                MPNAS_OUTPUT_LOGITS, out, count);
    j->same &= memcmp(out, j->ref, count * sizeof(float)) == 0;
  }
  mpnas_predictor_free(p);
  free(out);
  return NULL;
}

static void test_threads(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  images im[D];
  float *ref[D];
  for (int d = 0; d < D; d++) {
    im[d] = synth(d, 23, 4000000);
    ref[d] = logits_of(m, d, &im[d], MPNAS_PRECISION_INT8);
  }
  pthread_t th[6];
  job jobs[6];
  for (int t = 0; t < 6; t++) {
    jobs[t] = (job){m, &im[t % D], t % D, ref[t % D], 0, MPNAS_OK};
    CHECK(pthread_create(&th[t], NULL, run_job, &jobs[t]) == 0);
  }
  for (int t = 0; t < 6; t++) {
    pthread_join(th[t], NULL);
    CHECK_EQ_INT(jobs[t].st, MPNAS_OK);
    CHECK(jobs[t].same);
  }
  for (int d = 0; d < D; d++) {
    free(ref[d]);
    images_free(&im[d]);
  }
}

static void batch_shares_on_isa(void);

/* A batch runs on the threads in shares of images, each end to end on one thread's
 * kernels (mpnas__model_images_in_shares): float and int8 outputs, and evaluate's figures,
 * are the same bits with 1, 2, 3 and 5 threads, for batches that do not divide evenly,
 * with every kernel table this machine runs. */
static void test_batch_shares(void) {
  const int32_t isas[] = {MPNAS_ISA_AUTO, MPNAS_ISA_SCALAR, MPNAS_ISA_AVX2, MPNAS_ISA_NEON};
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    if (!mpnas_isa_supported(isas[i])) continue;
    OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_ISA, isas[i]));
    batch_shares_on_isa();
  }
  OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_AUTO));
}

static void batch_shares_on_isa(void) {
  mpnas_model *m = g_model;
  int64_t qz = 0;
  OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
  if (qz != 1) OKC(mpnas_model_quantize(m, 0));
  int64_t threads0 = 0;
  OKC(mpnas_context_get_int(g_ctx, MPNAS_CONTEXT_THREADS, &threads0));
  const int counts[] = {2, 7, 23};
  const int precisions[] = {MPNAS_PRECISION_FLOAT32, MPNAS_PRECISION_INT8};
  for (int d = 0; d < D; d++)
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
      images im = synth(d, counts[c], 5000000);
      size_t nl = (size_t)counts[c] * SYN_CLASSES[d];
      for (int p = 0; p < 2; p++) {
        OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_THREADS, 1));
        float *ref = logits_of(m, d, &im, precisions[p]);
        double top1_ref = 0, loss_ref = 0;
        if (p == 0)
          OKC(mpnas_model_evaluate(m, d, MPNAS_DTYPE_U8, im.x, im.y, im.n, &top1_ref, &loss_ref));
        const int threads[] = {2, 3, 5};
        for (int t = 0; t < 3; t++) {
          OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_THREADS, threads[t]));
          float *got = logits_of(m, d, &im, precisions[p]);
          CHECK_MSG(memcmp(ref, got, sizeof(float) * nl) == 0,
                    "domain %d, %d images, %s, %d threads: outputs differ", d, counts[c],
                    p ? "int8" : "float", threads[t]);
          free(got);
          if (p == 0) {
            double top1 = -1, loss = -1;
            OKC(mpnas_model_evaluate(m, d, MPNAS_DTYPE_U8, im.x, im.y, im.n, &top1, &loss));
            CHECK(top1 == top1_ref && loss == loss_ref);
          }
        }
        free(ref);
      }
      images_free(&im);
    }
  OKC(mpnas_context_set_int(g_ctx, MPNAS_CONTEXT_THREADS, threads0));
}

/* Memory: every allocation failure during quantising and loading a quantised file is a
 * clean MPNAS_E_NO_MEMORY with nothing leaked; an int8 predictor allocates nothing once
 * warmed up for a batch size. */
static void test_memory(void) {
  alloc_counting c;
  mpnas_context *ctx = alloc_counting_context(&c, 0);
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, 2));
  mpnas_model *m = trained(ctx, 0, 10);
  int failures = 0;
  for (long k = 1; k < 10000; k++) {
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_model_quantize(m, 16);
    c.fail_at = 0;
    if (st == MPNAS_OK) break;
    failures++;
    CHECK_EQ_INT(st, MPNAS_E_NO_MEMORY);
    int64_t qz = -1;
    OKC(mpnas_model_get_int(m, MPNAS_MODEL_QUANTIZED, &qz));
    CHECK_EQ_INT(qz, 0);
  }
  CHECK(failures > 5);
  blob b = save(m);
  for (long k = 1; k < 10000; k++) {
    mpnas_model *l = NULL;
    c.fail_at = c.total + k;
    mpnas_status st = mpnas_model_load_buffer(ctx, b.p, b.n, &l);
    c.fail_at = 0;
    mpnas_model_free(l);
    if (st == MPNAS_OK) break;
    CHECK_EQ_INT(st, MPNAS_E_NO_MEMORY);
  }
  images te = synth(0, 5, 0);
  float out[5 * 4];
  mpnas_predictor *p = NULL;
  OKC(mpnas_predictor_create(m, &p));
  OKC(mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8));
  OKC(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, te.x, 5, MPNAS_OUTPUT_LOGITS, out, 20));
  long before = c.total;
  for (int i = 0; i < 3; i++)
    OKC(mpnas_predictor_run(p, 0, MPNAS_DTYPE_U8, te.x, 5, MPNAS_OUTPUT_LOGITS, out, 20));
  CHECK_EQ_INT(c.total, before);
  mpnas_predictor_free(p);
  images_free(&te);
  free(b.p);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* mpnas__q8_quantize against the contract's arithmetic done the obvious way (clamp,
 * then nearbyintf): the vectorisable form rounds before clamping, which must not
 * change any value - ties, the bounds' neighbourhoods, huge values, infinities, NaN,
 * odd counts and a random sweep over scales and zero points. */
static void test_quantize_values(void) {
  static const float special[] = {0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 2.5f, 126.5f, 127.0f,
                                  127.49f, 127.5f, 127.51f, 128.5f, -127.5f, -128.0f,
                                  -128.49f, -128.5f, -128.51f, -129.5f, 4194303.5f, 4194304.5f,
                                  -4194304.5f, 8388609.0f, -8388609.0f, 12582912.0f,
                                  -12582912.0f, -12582913.0f, 1e20f, -1e20f, 3.4e38f, -3.4e38f,
                                  INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-40f};
  enum { N = 1031 };
  float x[N];
  int8_t q[N + 1];
  uint64_t s = 0x9e3779b97f4a7c15ULL;
  int bad = 0;
  for (int round = 0; round < 200; round++) {
    mpnas__qparams p;
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    p.zero = (int32_t)((s >> 33) % 256) - 128;
    p.scale = round == 0 ? 1.0f : round == 1 ? 0.5f : ldexpf(1.0f + (float)((s >> 20) % 1000) / 1000.0f, (int)((s >> 40) % 20) - 10);
    for (int i = 0; i < N; i++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      int sp = (int)(sizeof special / sizeof special[0]);
      x[i] = i < sp && round < 2 ? special[i]
                                 : (float)((double)(int64_t)(s >> 11) / 9007199254740992.0 - 0.5) *
                                       300.0f * p.scale;
      if (round >= 2 && (s & 7) == 0) x[i] = ((float)((int)(s >> 20) % 600) - 300.0f) * 0.5f * p.scale;
    }
    int count = N - round % 7;
    q[count] = 0x5a;
    mpnas__q8_quantize((size_t)count, x, p, q);
    float inv = 1.0f / p.scale;
    for (int i = 0; i < count; i++) {
      float v = x[i] * inv + (float)p.zero;
      v = v > -128.0f ? v : -128.0f;
      v = v < 127.0f ? v : 127.0f;
      int8_t want = (int8_t)nearbyintf(v);
      if (q[i] != want && bad++ < 5)
        printf("    x %.9g scale %.9g zero %d: got %d, want %d\n", (double)x[i], (double)p.scale,
               (int)p.zero, q[i], want);
    }
    CHECK(q[count] == 0x5a);
  }
  CHECK_EQ_INT(bad, 0);
}

static uint32_t f32_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float v;
  memcpy(&v, &u, 4);
  return v;
}

/* The portable binary16 conversion (common/serial.c): every half widens exactly and
 * narrows back to itself; the midpoint between neighbours rounds to the even one, just
 * below and above it to the nearer; edges: signed zeros, subnormals, the normal range's
 * bounds, overflow to infinity at 65520, NaN. */
static void test_half_values(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float v = mpnas__f16_to_f32((uint16_t)h);
    int nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
    if (nan) {
      bad += !isnan(v) || (mpnas__f32_to_f16(v) & 0x7fffu) <= 0x7c00u;
      continue;
    }
    bad += mpnas__f32_to_f16(v) != h;
    /* Halfway to the next half up in magnitude (not past the largest finite one). */
    uint32_t up = h + 1u;
    if ((h & 0x7fffu) >= 0x7bffu) continue;
    float w = mpnas__f16_to_f32((uint16_t)up);
    double mid = ((double)v + (double)w) / 2.0; /* exact in double, and in float */
    float m = (float)mid;
    uint16_t even = (h & 1u) ? (uint16_t)up : (uint16_t)h;
    bad += mpnas__f32_to_f16(m) != even;
    /* One float ulp either side of the midpoint (away from zero: toward up). */
    uint32_t mb = f32_bits(m);
    bad += mpnas__f32_to_f16(bits_f32(mb - 1u)) != h;
    bad += mpnas__f32_to_f16(bits_f32(mb + 1u)) != up;
    if (bad && bad < 4) printf("    half 0x%04x: round trip or rounding wrong\n", (unsigned)h);
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(mpnas__f32_to_f16(0.0f), 0x0000);
  CHECK_EQ_INT(mpnas__f32_to_f16(-0.0f), 0x8000);
  CHECK_EQ_INT(mpnas__f32_to_f16(1.0f), 0x3c00);
  CHECK_EQ_INT(mpnas__f32_to_f16(-2.0f), 0xc000);
  CHECK_EQ_INT(mpnas__f32_to_f16(65504.0f), 0x7bff);
  CHECK_EQ_INT(mpnas__f32_to_f16(65519.996f), 0x7bff); /* below the midpoint to 2^16 */
  CHECK_EQ_INT(mpnas__f32_to_f16(65520.0f), 0x7c00);   /* the midpoint: to infinity */
  CHECK_EQ_INT(mpnas__f32_to_f16(-1e30f), 0xfc00);
  CHECK_EQ_INT(mpnas__f32_to_f16(bits_f32(0x7f800000u)), 0x7c00);
  CHECK((mpnas__f32_to_f16(bits_f32(0x7fc00000u)) & 0x7e00u) == 0x7e00u);
  CHECK((mpnas__f32_to_f16(bits_f32(0x7f800001u)) & 0x7e00u) == 0x7e00u); /* quieted */
  CHECK_EQ_INT(mpnas__f32_to_f16(MPNAS__F16_MIN_NORMAL), 0x0400);
  CHECK_EQ_INT(mpnas__f32_to_f16(5.9604644775390625e-8f), 0x0001);  /* 2^-24 */
  CHECK_EQ_INT(mpnas__f32_to_f16(2.98023223876953125e-8f), 0x0000); /* 2^-25: tie to 0 */
  CHECK_EQ_INT(mpnas__f32_to_f16(bits_f32(0x33000001u)), 0x0001);   /* just above it */
  CHECK_EQ_INT(mpnas__f32_to_f16(-1e-30f), 0x8000);
  CHECK_EQ_INT(mpnas__f32_to_f16(bits_f32(0x00000001u)), 0x0000);   /* float subnormal */
  CHECK(mpnas__f16_round(0.1f) == mpnas__f16_to_f32(0x2e66u));
  CHECK(mpnas__f16_round(MPNAS__F16_MAX) == MPNAS__F16_MAX);
}

int main(void) {
  g_ctx = context();
  g_model = trained(g_ctx, 0, 150);
  RUN(test_quantize_values);
  RUN(test_half_values);
  RUN(test_int8_close_to_float);
  RUN(test_squeeze_excite);
  RUN(test_round_trip_and_int8_only);
  RUN(test_versions);
  RUN(test_factor_halves);
  RUN(test_stored_files);
  RUN(test_training_drops_int8);
  RUN(test_refusals);
  RUN(test_corrupt_sections);
  RUN(test_unfusable_activation_file);
  RUN(test_precision_switching);
  RUN(test_threads);
  RUN(test_batch_shares);
  RUN(test_memory);
  mpnas_model_free(g_model);
  mpnas_context_free(g_ctx);
  return check_finish();
}
