/* model_run.c - a trained model run over a host's batch: evaluation and prediction
 * (model_run.h), in chunks of EVAL_CHUNK images so the workspace stays bounded. */
#include "model/model_run.h"

#include <math.h>

#define EVAL_CHUNK 256 /* images per inference call */

/* Logits of images [first, first + n) of a host batch, through ws (with packed weights,
 * or NULL: mpnas__model_infer). Finite inputs give
 * finite logits unless the model's weights overflow float (a file may hold any finite
 * weights): checked here, one pass, so no caller returns NaN or infinite outputs. */
static mpnas_status run_chunk(const mpnas_model *m, mpnas__arena *ws,
                              const mpnas__model_packed *packed, const mpnas__quant_packed *qpk,
                              int32_t domain, int32_t dtype, const void *images, int64_t first,
                              int n, float *logits) {
  mpnas__image_shape shape = mpnas__space_image_shape(&m->space);
  size_t per = (size_t)shape.h * shape.w * shape.c;
  size_t host = mpnas__dtype_values(dtype, shape) * mpnas__dtype_elem(dtype); /* bytes */
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *x = mpnas__arena_floats(ws, per * (size_t)n);
  if (x == NULL) return MPNAS_E_NO_MEMORY;
  const mpnas__domain *d = &m->domains[domain];
  mpnas__normalise(d->mean, d->invstd, shape, dtype,
                   (const unsigned char *)images + (size_t)first * host, n, x);
  /* qpk: the int8 form (packed by the caller), else the float one. */
  mpnas_status st = qpk != NULL ? mpnas__model_infer_q8(m, ws, domain, n, x, logits, qpk)
                                : mpnas__model_infer(m, ws, domain, n, x, logits, packed);
  mpnas__arena_release(ws, mark);
  if (st != MPNAS_OK) return st;
  size_t classes = (size_t)d->classes;
  for (size_t i = 0; i < (size_t)n * classes; i++)
    if (!isfinite(logits[i]))
      return mpnas__fail(m->ctx, MPNAS_E_CORRUPT,
                         "domain \"%s\": the output for image %lld is not finite (%g): the "
                         "model's weights overflow float arithmetic",
                         d->name, (long long)(first + (int64_t)(i / classes)), (double)logits[i]);
  return MPNAS_OK;
}

mpnas_status mpnas__model_evaluate(const mpnas_model *m, int32_t domain, int32_t dtype,
                                   const void *images, const int32_t *labels, int64_t count,
                                   double *top1, double *loss) {
  mpnas_context *ctx = m->ctx;
  int32_t classes = m->domains[domain].classes;
  mpnas__arena ws;
  mpnas__arena_init(&ws, ctx);
  /* An int8-only model evaluates its int8 form (packed once for this call). */
  mpnas__quant_packed qpk;
  mpnas__quant_packed_init(&qpk, ctx);
  float *logits = mpnas__malloc(ctx, sizeof(float) * EVAL_CHUNK * (size_t)classes);
  double sum = 0.0;
  int64_t right = 0;
  mpnas_status st = MPNAS_OK;
  if (logits == NULL) st = MPNAS_E_NO_MEMORY;
  if (st == MPNAS_OK && m->float_dropped) st = mpnas__quant_pack(m, &ctx->engine, &qpk);
  for (int64_t first = 0; first < count && st == MPNAS_OK; first += EVAL_CHUNK) {
    int n = (int)(count - first < EVAL_CHUNK ? count - first : EVAL_CHUNK);
    st = run_chunk(m, &ws, NULL, m->float_dropped ? &qpk : NULL, domain, dtype, images, first,
                   n, logits);
    if (st != MPNAS_OK) break;
    int r = 0;
    sum += (double)mpnas__softmax_xent(n, classes, logits, labels + first, 0.0f, NULL, &r) * n;
    right += r;
  }
  mpnas__free(ctx, logits);
  mpnas__arena_destroy(&ws);
  mpnas__quant_packed_free(&qpk);
  if (st == MPNAS_E_NO_MEMORY) return mpnas__fail(ctx, st, "evaluating %lld images", (long long)count);
  if (st != MPNAS_OK) return st;
  if (!isfinite(sum))
    return mpnas__fail(ctx, MPNAS_E_CORRUPT,
                       "domain \"%s\": the mean cross-entropy is not finite: the model's "
                       "logits are too far apart for float arithmetic",
                       m->domains[domain].name);
  if (top1) *top1 = (double)right / (double)count;
  if (loss) *loss = sum / (double)count;
  return MPNAS_OK;
}

static void softmax_rows(int n, int classes, float *v) {
  for (int i = 0; i < n; i++) {
    float *r = v + (size_t)i * classes, mx = r[0];
    for (int c = 1; c < classes; c++) mx = r[c] > mx ? r[c] : mx;
    double sum = 0.0;
    for (int c = 0; c < classes; c++) sum += (r[c] = expf(r[c] - mx));
    float inv = (float)(1.0 / sum);
    for (int c = 0; c < classes; c++) r[c] *= inv;
  }
}

mpnas_status mpnas__model_predict(const mpnas_model *m, mpnas__arena *ws,
                                  const mpnas__model_packed *packed,
                                  const mpnas__quant_packed *qpk, int32_t domain, int32_t dtype,
                                  const void *images, int64_t count, int probabilities,
                                  float *out) {
  int32_t classes = m->domains[domain].classes;
  for (int64_t first = 0; first < count; first += EVAL_CHUNK) {
    int n = (int)(count - first < EVAL_CHUNK ? count - first : EVAL_CHUNK);
    float *o = out + (size_t)first * classes;
    mpnas_status st = run_chunk(m, ws, packed, qpk, domain, dtype, images, first, n, o);
    if (st != MPNAS_OK)
      return st == MPNAS_E_NO_MEMORY ? mpnas__fail(m->ctx, st, "predicting %d images", n) : st;
    if (probabilities) softmax_rows(n, classes, o);
  }
  /* The first call grew the workspace in pieces; merge them so later calls reuse one. */
  if (mpnas__arena_reset(ws) != MPNAS_OK)
    return mpnas__fail(m->ctx, MPNAS_E_NO_MEMORY,
                       "merging the predictor's workspace (the outputs are written)");
  return MPNAS_OK;
}
