/* params.c - see params.h. */
#include "net/params.h"

#include <string.h>

#include "train/optim.h"

void mpnas__params_init(mpnas__params *p, const mpnas_context *ctx) {
  *p = (mpnas__params){0};
  p->ctx = ctx;
}

static size_t add_info(const mpnas_context *ctx, mpnas__param_info **info, int *count,
                       int *cap, size_t *total, size_t n, int32_t kind, int32_t fan_in) {
  if (*count == *cap) {
    int ncap = *cap ? *cap * 2 : 32;
    mpnas__param_info *ni = mpnas__malloc(ctx, sizeof *ni * (size_t)ncap);
    if (ni == NULL) return (size_t)-1;
    if (*count) memcpy(ni, *info, sizeof *ni * (size_t)*count);
    mpnas__free(ctx, *info);
    *info = ni;
    *cap = ncap;
  }
  /* Keep every tensor 16-float aligned so kernels see aligned rows where they can. */
  size_t offset = (*total + 15) & ~(size_t)15;
  (*info)[*count] = (mpnas__param_info){offset, n, kind, fan_in};
  (*count)++;
  *total = offset + n;
  return offset;
}

size_t mpnas__params_add(mpnas__params *p, size_t count, int32_t kind, int32_t fan_in) {
  if (p->w != NULL) return (size_t)-1;
  return add_info(p->ctx, &p->info, &p->count, &p->cap, &p->total, count, kind, fan_in);
}

size_t mpnas__params_add_buffer(mpnas__params *p, size_t count, int32_t kind) {
  if (p->b != NULL) return (size_t)-1;
  return add_info(p->ctx, &p->binfo, &p->bcount, &p->bcap, &p->btotal, count, kind, 0);
}

mpnas_status mpnas__params_alloc(mpnas__params *p) {
  size_t n = p->total ? p->total : 1;
  p->w = mpnas__calloc(p->ctx, n, sizeof(float));
  /* g and b in one block, g first: data-parallel training sums both in one call. */
  p->g = mpnas__calloc(p->ctx, n + p->btotal, sizeof(float));
  p->s1 = mpnas__calloc(p->ctx, n, sizeof(float));
  p->s2 = mpnas__calloc(p->ctx, n, sizeof(float));
  p->w_old = mpnas__calloc(p->ctx, n, sizeof(float));
  p->s1_old = mpnas__calloc(p->ctx, n, sizeof(float));
  p->s2_old = mpnas__calloc(p->ctx, n, sizeof(float));
  if (!p->w || !p->g || !p->s1 || !p->s2 || !p->w_old || !p->s1_old || !p->s2_old)
    return MPNAS_E_NO_MEMORY;
  p->b = p->g + n;
  return MPNAS_OK;
}

static void fill_by_kind(const mpnas__param_info *in, float *base, mpnas__rng *rng) {
  float *v = base + in->offset;
  switch (in->kind) {
    case MPNAS__PARAM_CONV:
    case MPNAS__PARAM_FC:
      mpnas__init_he(rng, in->count, in->fan_in > 0 ? in->fan_in : 1, v);
      break;
    case MPNAS__PARAM_GAMMA:
    case MPNAS__PARAM_ONE:
      for (size_t i = 0; i < in->count; i++) v[i] = 1.0f;
      break;
    default:
      memset(v, 0, sizeof(float) * in->count);
  }
}

void mpnas__params_init_values(mpnas__params *p, mpnas__rng *rng) {
  for (int i = 0; i < p->count; i++) fill_by_kind(&p->info[i], p->w, rng);
  for (int i = 0; i < p->bcount; i++) fill_by_kind(&p->binfo[i], p->b, rng);
  memset(p->s1, 0, sizeof(float) * p->total);
  memset(p->s2, 0, sizeof(float) * p->total);
  p->steps = 0;
}

void mpnas__params_zero_grad(mpnas__params *p) { memset(p->g, 0, sizeof(float) * p->total); }

float *mpnas__params_grad_parts(mpnas__params *p, int n) {
  if (n <= p->nparts) return p->parts;
  float *parts = mpnas__malloc(p->ctx, sizeof(float) * ((size_t)n * p->total + 1));
  if (parts == NULL) return NULL;
  /* Written now, not left to calloc: its fresh pages would fault in over many steps, as
   * the sampled paths reach them. */
  memset(parts, 0, sizeof(float) * ((size_t)n * p->total + 1));
  mpnas__free(p->ctx, p->parts);
  p->parts = parts;
  p->nparts = n;
  return parts;
}

static void swap(float **a, float **b) {
  float *t = *a;
  *a = *b;
  *b = t;
}

/* Make the step's outputs current and keep its inputs in the _old arrays. */
static void swap_all(mpnas__params *p) {
  swap(&p->w, &p->w_old);
  swap(&p->s1, &p->s1_old);
  swap(&p->s2, &p->s2_old);
}

void mpnas__params_step(mpnas__params *p, const mpnas__optim_config *cfg, float lr) {
  const float *ms = p->s1;
  /* TensorFlow's RMSProp starts its mean square at 1, not 0 (optim.h): the 1s go into
   * the output array (read there before written), so the state before stays as it was. */
  if (p->steps == 0 && cfg->kind == MPNAS__OPT_RMSPROP) {
    for (size_t i = 0; i < p->total; i++) p->s1_old[i] = 1.0f;
    ms = p->s1_old;
  }
  p->steps++;
  for (int i = 0; i < p->count; i++) {
    const mpnas__param_info *in = &p->info[i];
    float wd = in->kind == MPNAS__PARAM_CONV ? cfg->weight_decay : 0.0f;
    size_t o = in->offset;
    switch (cfg->kind) {
      case MPNAS__OPT_RMSPROP:
        mpnas__rmsprop_step_to(in->count, p->w + o, p->g + o, ms + o, p->s2 + o, p->w_old + o,
                               p->s1_old + o, p->s2_old + o, lr, cfg->rho, cfg->momentum,
                               cfg->eps, wd);
        break;
      case MPNAS__OPT_ADAM:
        mpnas__adam_step_to(in->count, p->w + o, p->g + o, p->s1 + o, p->s2 + o, p->w_old + o,
                            p->s1_old + o, p->s2_old + o, p->steps, lr, cfg->momentum,
                            cfg->rho, cfg->eps, wd);
        break;
      default:
        mpnas__sgd_step_to(in->count, p->w + o, p->g + o, p->s1 + o, p->w_old + o,
                           p->s1_old + o, lr, cfg->momentum, cfg->nesterov, wd);
    }
  }
  /* Padding between tensors (16-float alignment) is never stepped: carry it over so the
   * swapped-in arrays equal what an in-place step leaves (files store whole arrays). */
  int64_t prev_end = 0;
  for (int i = 0; i <= p->count; i++) {
    size_t start = i < p->count ? p->info[i].offset : p->total;
    for (size_t j = (size_t)prev_end; j < start; j++) {
      p->w_old[j] = p->w[j];
      p->s1_old[j] = ms[j];
      p->s2_old[j] = p->s2[j];
    }
    if (i < p->count) prev_end = (int64_t)(p->info[i].offset + p->info[i].count);
  }
  swap_all(p);
}

void mpnas__params_unstep(mpnas__params *p) {
  swap_all(p);
  p->steps--;
}

void mpnas__params_destroy(mpnas__params *p) {
  const mpnas_context *ctx = p->ctx;
  if (ctx == NULL) return;
  mpnas__free(ctx, p->info);
  mpnas__free(ctx, p->binfo);
  mpnas__free(ctx, p->w);
  mpnas__free(ctx, p->g);
  mpnas__free(ctx, p->s1);
  mpnas__free(ctx, p->s2); /* b is in g's block */
  mpnas__free(ctx, p->w_old);
  mpnas__free(ctx, p->s1_old);
  mpnas__free(ctx, p->s2_old);
  mpnas__free(ctx, p->parts);
  *p = (mpnas__params){0};
}
