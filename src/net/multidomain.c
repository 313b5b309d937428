/* multidomain.c - the multi-domain training skeleton (multidomain.h). */
#include "net/multidomain.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#if defined(_OPENMP)
#include <omp.h>
#endif

/* Random stream ids of a domain's data (rng.h: one stream per consumer): its
 * validation split and its batches. */
#define STREAM_SPLIT 100u
#define STREAM_DATA 1000u

/* ---- Domains ----------------------------------------------------------------------- */

mpnas_status mpnas__domains_check_new(mpnas_context *ctx, const mpnas__domain *domains,
                                      int32_t D, const char *name) {
  for (int32_t d = 0; d < D; d++)
    if (strcmp(domains[d].name, name) == 0)
      return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "a domain named \"%s\" exists", name);
  if (D >= MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "at most %d domains", MPNAS__MAX_DOMAINS);
  return MPNAS_OK;
}

void mpnas__domain_init(mpnas__domain *d, const char *name, int32_t classes) {
  memset(d, 0, sizeof *d);
  memcpy(d->name, name, strlen(name) + 1);
  d->classes = classes;
  d->loss_ema = d->valid_acc = d->reward = d->cost = NAN;
  d->weight = 1.0;
}

mpnas_status mpnas__domains_prepare(mpnas_context *ctx, mpnas__domain *domains, int32_t D,
                                    mpnas__image_shape shape, double valid_fraction) {
  for (int32_t d = 0; d < D; d++)
    if (domains[d].data.train.count == 0)
      return mpnas__fail(ctx, MPNAS_E_STATE, "domain \"%s\" has no training data",
                         domains[d].name);
  mpnas_status st = MPNAS_OK;
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    st = mpnas__domain_data_prepare(ctx, &domains[d].data, domains[d].name, shape,
                                    valid_fraction, STREAM_SPLIT + (uint64_t)d,
                                    STREAM_DATA + (uint64_t)d);
  if (st != MPNAS_OK) mpnas__domains_unprepare(ctx, domains, D);
  return st;
}

void mpnas__domains_unprepare(const mpnas_context *ctx, mpnas__domain *domains, int32_t D) {
  for (int32_t d = 0; d < D; d++) mpnas__domain_data_unprepare(ctx, &domains[d].data);
}

mpnas_status mpnas__domains_abdp(mpnas_context *ctx, const mpnas__domain *domains, int32_t D,
                                 const mpnas__abdp_config *cfg, int sizes_known,
                                 mpnas__abdp **out) {
  int32_t classes[MPNAS__MAX_DOMAINS];
  int64_t sizes[MPNAS__MAX_DOMAINS];
  if (D > MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_INTERNAL, "%d domains (at most %d)", (int)D,
                       MPNAS__MAX_DOMAINS);
  for (int32_t d = 0; d < D; d++) {
    classes[d] = domains[d].classes;
    sizes[d] = sizes_known ? domains[d].data.ntrain : 1;
  }
  return mpnas__abdp_create(ctx, D, classes, sizes, cfg, out);
}

mpnas_status mpnas__domains_sum_correct(mpnas_context *ctx, int32_t D, int32_t *right) {
  if (ctx->world <= 1) return MPNAS_OK;
  int64_t sum[MPNAS__MAX_DOMAINS];
  for (int32_t d = 0; d < D; d++) sum[d] = right[d];
  mpnas_status st = mpnas__allreduce(ctx, sum, D, MPNAS_COLLECTIVE_I64, "the validation counts");
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++) right[d] = (int32_t)sum[d];
  return st;
}

/* ---- The step ---------------------------------------------------------------------- */

/* Threads that run whole domains' passes at once (more are not used for that). */
#define MAX_PASS_THREADS 64
/* Gradient floats a step may keep for domains that ran out of order (64 MB). */
#define MAX_KEPT_FLOATS ((size_t)16 << 20)

/* Where one domain's pass runs: a workspace, the batch drawn into it (sized for the
 * largest count a step can give, so that the workspace does not grow from step to step),
 * and a gradient buffer laid out like the params store's g, zero between passes
 * (mpnas__params_grad_parts). */
typedef struct pass_slot {
  mpnas__arena *ws;
  float *x;
  int32_t *labels;
  float *grads;
} pass_slot;

static mpnas_status slot_init(const mpnas__trainer *t, mpnas__arena *ws, int32_t cap,
                              float *grads, pass_slot *slot) {
  size_t per = (size_t)t->shape.h * t->shape.w * t->shape.c;
  slot->ws = ws;
  slot->x = mpnas__arena_floats(ws, per * (size_t)cap);
  slot->labels = mpnas__arena_alloc(ws, sizeof(int32_t) * (size_t)cap);
  slot->grads = grads;
  return slot->x && slot->labels ? MPNAS_OK : MPNAS_E_NO_MEMORY;
}

/* Domain d's part of the step, on the slot's workspace and batch: draw this worker's
 * share of its `count` images (each domain draws from its own stream, so the order in
 * which domains run does not change the images), then forward and backward on its path,
 * the mean loss scaled by loss_scale, gradients accumulated into `grads`. loss: the
 * mean loss (x this worker's images with W workers). No message is set (this may run on
 * a worker thread): the caller reports a failure. */
static mpnas_status domain_pass(const mpnas__trainer *t, const mpnas__engine *eng,
                                const pass_slot *slot, int32_t d, int32_t count,
                                float *grads, double *loss) {
  mpnas_context *ctx = t->ctx;
  mpnas__domain *dm = &t->domains[d];
  int32_t lo, hi;
  mpnas__share(ctx, count, &lo, &hi);
  mpnas__augment aug = {t->augment_pad, dm->hflip};
  mpnas__domain_data_batch_share(&dm->data, t->shape, 0, count, lo, hi, &aug, slot->x,
                                 slot->labels);
  if (hi == lo) return MPNAS_OK; /* more workers than images: this one adds nothing */
  /* The loss scale's share (weight * share / batch), so that the workers' gradients sum
   * to the whole batch's. */
  float loss_scale = (float)(t->domains[d].weight * (double)(hi - lo) / (double)t->batch);
  mpnas__engine shared = mpnas__engine_shared(*eng, ctx, count);
  mpnas__arena_mark mark = mpnas__arena_get_mark(slot->ws);
  mpnas__net net;
  int32_t correct;
  mpnas_status st = t->bind_path(t->owner, d, slot->ws, grads, &net);
  if (st == MPNAS_OK)
    st = mpnas__net_train(&shared, slot->ws, &net, hi - lo, slot->x, slot->labels, 1,
                          t->label_smoothing, loss_scale, loss, &correct);
  mpnas__arena_release(slot->ws, mark);
  if (ctx->world > 1) *loss *= hi - lo;
  return st;
}

/* ---- One domain's batch in shards, one per thread (MPNAS_CONTEXT_SHARD_BATCH) -------
 * Each thread runs its shard of the batch through the whole network, as a data-parallel
 * worker would: the BN sums go over the shards (shard_sum), each shard adds its share of
 * the loss scale's gradients into a buffer of its own, and the buffers are added in shard
 * order after the pass. The activations a thread produces are the ones it reads next, and
 * the threads meet only at the BN sums, where the per-layer split of the default meets
 * at every op and reads rows another core wrote (docs/THREADING.md). */

/* The shards of one pass: a barrier that gives up once a shard has failed (so a failure
 * in one thread cannot leave the others waiting forever), and each shard's buffer while
 * a sum is under way. */
typedef struct shard_team {
  int n;
  atomic_int arrived, generation;
  atomic_int failed; /* 0, or the first failing shard's status */
  double *buf[MAX_PASS_THREADS];
} shard_team;

typedef struct shard_member {
  shard_team *team;
  int index;
} shard_member;

static void team_fail(shard_team *tm, mpnas_status st) {
  int none = 0;
  atomic_compare_exchange_strong(&tm->failed, &none, (int)st);
}

/* Wait for every shard: MPNAS_OK, or the failed shard's status. The waits spin, then
 * yield the processor: on a machine whose cores are busy the shards' threads may not
 * all be running. */
static mpnas_status team_barrier(shard_team *tm) {
  int gen = atomic_load(&tm->generation);
  if (atomic_fetch_add(&tm->arrived, 1) == tm->n - 1) {
    atomic_store(&tm->arrived, 0);
    atomic_fetch_add(&tm->generation, 1);
  } else {
    for (unsigned spins = 0; atomic_load(&tm->generation) == gen; spins++) {
      if (atomic_load(&tm->failed) != 0) break;
      if (spins >= 1u << 14) sched_yield();
    }
  }
  return (mpnas_status)atomic_load(&tm->failed);
}

/* mpnas__workers.sum_f64 over the shards: shard 0 adds the others' buffers into its own
 * in shard order, and every shard copies the result. */
static int32_t shard_sum(void *user, double *buf, int64_t n) {
  const shard_member *me = user;
  shard_team *tm = me->team;
  tm->buf[me->index] = buf;
  mpnas_status st = team_barrier(tm);
  if (st == MPNAS_OK && me->index == 0)
    for (int64_t i = 0; i < n; i++) {
      double s = buf[i];
      for (int k = 1; k < tm->n; k++) s += tm->buf[k][i];
      buf[i] = s;
    }
  if (st == MPNAS_OK) st = team_barrier(tm);
  if (st == MPNAS_OK && me->index != 0) memcpy(buf, tm->buf[0], sizeof(double) * (size_t)n);
  if (st == MPNAS_OK) st = team_barrier(tm); /* buffers free again before the next sum */
  return (int32_t)st;
}

/* Shards for a pass of `count` images: one per thread, 1 when not sharding. Counted from
 * the threads asked for, not from those ready now: the count changes the results. */
static int shard_count(const mpnas__trainer *t, int32_t count) {
  mpnas_context *ctx = t->ctx;
  int n = mpnas__engine_usable(&ctx->engine).threads;
  if (!ctx->shard_batch || ctx->world > 1) return 1;
  if (n > count) n = count;
  if (n > MAX_PASS_THREADS) n = MAX_PASS_THREADS;
  return n < 1 ? 1 : n;
}

/* Shard k of `shards` of the batch in slot: images [count k / shards, count (k+1) /
 * shards), on workspace ws, gradients into grads; part_loss: its mean loss x its images.
 * A failure is recorded in the team, so the other shards stop at their next sum. */
static void run_shard(const mpnas__trainer *t, const mpnas__engine *eng, const pass_slot *slot,
                      shard_team *team, shard_member *member, mpnas__workers *workers, int k,
                      mpnas__arena *ws, int32_t d, int32_t count, float *grads,
                      double *part_loss) {
  int shards = team->n;
  int32_t lo = (int32_t)((int64_t)count * k / shards);
  int32_t hi = (int32_t)((int64_t)count * (k + 1) / shards);
  size_t per = (size_t)t->shape.h * t->shape.w * t->shape.c;
  *member = (shard_member){team, k};
  *workers = (mpnas__workers){shard_sum, member};
  mpnas__engine e = *eng;
  e.threads = 1;
  e.workers = workers;
  e.shard = k;
  float loss_scale = (float)(t->domains[d].weight * (double)(hi - lo) / (double)t->batch);
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__net net;
  int32_t correct;
  *part_loss = 0.0;
  mpnas_status st = t->bind_path(t->owner, d, ws, grads, &net);
  if (st == MPNAS_OK)
    st = mpnas__net_train(&e, ws, &net, hi - lo, slot->x + per * (size_t)lo, slot->labels + lo,
                          1, t->label_smoothing, loss_scale, part_loss, &correct);
  mpnas__arena_release(ws, mark);
  *part_loss *= hi - lo;
  if (st != MPNAS_OK) team_fail(team, st);
}

/* domain_pass in `shards` shards on as many threads, each on its own child workspace:
 * shard 0's gradients into grads, shard k's into parts + (k - 1) * total (zero, merged by
 * the caller). *ran = 0 when OpenMP gave fewer threads (a host's own parallel region):
 * then nothing ran and nothing was drawn, and the caller runs the pass unsharded. */
static mpnas_status shard_pass(const mpnas__trainer *t, const mpnas__engine *eng,
                               const pass_slot *slot, mpnas__arena *kids, int shards, int32_t d,
                               int32_t count, float *grads, float *parts, double *loss,
                               int *ran) {
  mpnas__domain *dm = &t->domains[d];
  mpnas__augment aug = {t->augment_pad, dm->hflip};
  size_t total = t->params->total;
  shard_team team = {.n = shards};
  atomic_init(&team.arrived, 0);
  atomic_init(&team.generation, 0);
  atomic_init(&team.failed, 0);
  shard_member member[MAX_PASS_THREADS];
  mpnas__workers workers[MAX_PASS_THREADS];
  double part_loss[MAX_PASS_THREADS];
  int team_size = 1;
#if defined(_OPENMP)
#pragma omp parallel num_threads(shards)
#endif
  {
    int k = 0;
#if defined(_OPENMP)
    k = omp_get_thread_num();
    if (k == 0) team_size = omp_get_num_threads();
#endif
    /* The batch once the team is known to be whole, and before any shard reads it. */
    if (k == 0 && team_size == shards)
      mpnas__domain_data_batch_share(&dm->data, t->shape, 0, count, 0, count, &aug, slot->x,
                                     slot->labels);
#if defined(_OPENMP)
#pragma omp barrier
#endif
    if (team_size == shards)
      run_shard(t, eng, slot, &team, &member[k], &workers[k], k, &kids[k], d, count,
                k == 0 ? grads : parts + (size_t)(k - 1) * total, &part_loss[k]);
  }
  *ran = team_size == shards;
  if (!*ran) return MPNAS_OK;
  double sum = 0.0;
  for (int k = 0; k < shards; k++) sum += part_loss[k];
  *loss = sum / count;
  return (mpnas_status)atomic_load(&team.failed);
}

/* The calling thread's index in its team (0 outside a parallel region), < the team's
 * size: the team is at most as large as asked. */
static int team_slot(void) {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

void mpnas__largest_first(int32_t n, const double *work, int32_t *order) {
  for (int32_t i = 0; i < n; i++) {
    int32_t j = i;
    for (; j > 0 && work[order[j - 1]] < work[i]; j--) order[j] = order[j - 1];
    order[j] = i;
  }
}

/* p->g += grads, and grads zeroed again. A pass touches the tensors on its path only,
 * and of a supernet's widest tensors only its op's slice: blocks of zeros are skipped
 * (adding zeros would change nothing but the sign of a zero). */
static void merge_grads(mpnas__params *p, float *grads) {
  enum { BLOCK = 64 };
  size_t n = p->total;
  float *g = p->g;
  for (size_t b = 0; b < n; b += BLOCK) {
    size_t e = b + BLOCK < n ? b + BLOCK : n;
    int nonzero = 0;
    for (size_t j = b; j < e; j++) nonzero |= grads[j] != 0.0f;
    if (!nonzero) continue;
    for (size_t j = b; j < e; j++) {
      g[j] += grads[j];
      grads[j] = 0.0f;
    }
  }
}

/* A domain's training loss into its statistics and ABDP's moving average. */
static mpnas_status record_loss(const mpnas__trainer *t, int32_t d, double loss) {
  mpnas__domain *dm = &t->domains[d];
  if (!isfinite(loss) && t->lr_setting != NULL)
    return mpnas__fail(t->ctx, MPNAS_E_STATE,
                       "training diverged: domain \"%s\" has a non-finite loss at step %lld "
                       "(lower %s)",
                       dm->name, (long long)t->step, t->lr_setting);
  dm->bn_updates++;
  dm->loss_ema = isnan(dm->loss_ema) ? loss : 0.9 * dm->loss_ema + 0.1 * loss;
  /* A diverged loss is not an observation: it would reach the other domains' weights. */
  if (!(loss >= 0.0 && isfinite(loss))) return MPNAS_OK;
  return mpnas__abdp_observe_loss(t->abdp, d, loss);
}

/* The gradients of this step are complete here: every domain's pass has added into
 * t->params->g, and nothing has read them yet. With W > 1 data-parallel workers
 * (mpnas_context_set_collective), each having run its share of the step's images with
 * its share of each loss scale, one call sums the gradients - and the BN running
 * statistics, in the same block, which are then averaged (each worker updated them from
 * the whole batch's statistics, or from its share where a domain had fewer images than
 * workers) - so every worker takes the same optimiser step; a second sums the losses
 * (loss[d]: this worker's mean loss times its images), which become the step's mean. */
static mpnas_status gradients_complete(const mpnas__trainer *t, const int32_t *counts,
                                       double *loss) {
  mpnas_context *ctx = t->ctx;
  if (ctx->world <= 1) return MPNAS_OK;
  mpnas__params *p = t->params;
  size_t n = (size_t)(p->b - p->g) + p->btotal;
  mpnas_status st = mpnas__allreduce(ctx, p->g, (int64_t)n, MPNAS_COLLECTIVE_F32,
                                     "the gradients");
  if (st == MPNAS_OK)
    st = mpnas__allreduce(ctx, loss, t->ndomains, MPNAS_COLLECTIVE_F64, "the training losses");
  if (st != MPNAS_OK) return st;
  float inv = 1.0f / (float)ctx->world;
  for (size_t i = 0; i < p->btotal; i++) p->b[i] *= inv;
  for (int32_t d = 0; d < t->ndomains; d++)
    if (counts[d] > 0) loss[d] /= counts[d];
  return MPNAS_OK;
}

mpnas_status mpnas__trainer_step(const mpnas__trainer *t) {
  mpnas_context *ctx = t->ctx;
  int32_t D = t->ndomains;
  if (D < 1 || D > MPNAS__MAX_DOMAINS)
    return mpnas__fail(ctx, MPNAS_E_INTERNAL, "a step of %d domains (1..%d)", (int)D,
                       MPNAS__MAX_DOMAINS);

  /* 1. ABDP: this step's images per domain and loss weights. */
  int32_t counts[MPNAS__MAX_DOMAINS];
  mpnas_status st = mpnas__abdp_sample_counts(t->abdp, t->abdp_rng, t->batch * D, counts);
  if (st != MPNAS_OK) return st;
  const double *weight = mpnas__abdp_weights(t->abdp);
  for (int32_t d = 0; d < D; d++) {
    t->domains[d].weight = weight[d];
    t->domains[d].batch_images = counts[d];
  }

  /* 2. Every domain's pass on its share of the step (all of it, or with W workers this
   * worker's share of its images, each drawn on every worker: streams in step). The
   * gradients are summed in domain order, whatever runs where, so the result does not
   * depend on the thread count: the first domain's pass accumulates into the zeroed
   * store, each later one into a zeroed buffer of its own that is then added in
   * (merge_grads), in order. */
  int32_t cap = t->batch;
  if (mpnas__abdp_config_get(t->abdp)->sampling == MPNAS__ABDP_SAMPLE_PROPORTIONAL) cap *= D;
  int32_t run[MPNAS__MAX_DOMAINS], nrun = 0;
  double loss[MPNAS__MAX_DOMAINS];
  mpnas_status status[MPNAS__MAX_DOMAINS];
  for (int32_t d = 0; d < D; d++) {
    loss[d] = 0.0;
    if (counts[d] > 0) run[nrun++] = d;
  }
  mpnas__params *p = t->params;
  mpnas__params_zero_grad(p);
  /* A pass runs a few hundred parallel ops; on a machine where other processes hold some
   * of the processors, each op would wait for them: run on the threads that start
   * promptly now (results do not depend on the thread count). Not with batch shards:
   * there the thread count decides which domains run sharded (other bits than unsharded),
   * so it must be the one asked for, not the one a loaded machine has ready. */
  mpnas__engine eng = ctx->shard_batch ? mpnas__engine_usable(&ctx->engine)
                                       : mpnas__engine_ready(&ctx->engine);
  /* With several threads, whole domains run at once, each on one thread with its own
   * workspace (as the search's validation does): one parallel region per step instead of
   * the ops' own splits meeting at every op. Domains left over (not a multiple of the
   * threads) run after, one by one on all the threads. Not with several workers: their
   * BN sums over the workers must come in one order on all. */
  int threads = eng.threads, par = 0;
  if (threads > 1 && nrun >= 2 && ctx->world == 1) {
    if (threads > nrun) threads = nrun;
    if (threads > MAX_PASS_THREADS) threads = MAX_PASS_THREADS;
    par = nrun / threads * threads;
  }
  /* The domains that run on all the threads may run in shards of their batch, one per
   * thread (MPNAS_CONTEXT_SHARD_BATCH): shard k > 0 adds into gradient part k. */
  int shards_max = 1;
  for (int32_t i = par; i < nrun; i++) {
    int s = shard_count(t, counts[run[i]]);
    if (s > shards_max) shards_max = s;
  }
  /* The domains that run at once start largest pass first (multiply-adds x images), so
   * that the threads finish together. The sum stays in domain order: each keeps its
   * gradient in a part of its own until the passes are done, then the parts are added in
   * order - where those parts fit in MAX_KEPT_FLOATS; else domain order, each part added
   * as soon as the domain before it has been (one part per thread). */
  int keep = par > 1 && t->pass_macs != NULL && (size_t)(par - 1) * p->total <= MAX_KEPT_FLOATS;
  int32_t order[MPNAS__MAX_DOMAINS];
  double work[MPNAS__MAX_DOMAINS];
  for (int32_t i = 0; keep && i < par; i++)
    work[i] = (double)t->pass_macs(t->owner, run[i]) * counts[run[i]];
  if (keep) mpnas__largest_first(par, work, order);
  int nparts = par > 0 ? threads : 1;
  if (keep && par - 1 > nparts) nparts = par - 1;
  if (shards_max > nparts) nparts = shards_max;
  mpnas__arena_mark mark = mpnas__arena_get_mark(t->ws);
  pass_slot main_slot, slots[MAX_PASS_THREADS];
  mpnas__arena_mark kid_mark[MAX_PASS_THREADS];
  mpnas__arena *kids = NULL;
  int nslots = 0;
  int use_parts = nrun > 1 || shards_max > 1;
  float *parts = use_parts ? mpnas__params_grad_parts(p, nparts) : NULL;
  st = use_parts && parts == NULL ? MPNAS_E_NO_MEMORY : MPNAS_OK;
  if (st == MPNAS_OK) st = slot_init(t, t->ws, cap, parts, &main_slot);
  if (st == MPNAS_OK && (par > 0 || shards_max > 1)) {
    kids = mpnas__arena_kids(t->ws, par > 0 && threads > shards_max ? threads : shards_max);
    if (kids == NULL) st = MPNAS_E_NO_MEMORY;
  }
  for (; nslots < threads && par > 0 && st == MPNAS_OK; nslots++) {
    kid_mark[nslots] = mpnas__arena_get_mark(&kids[nslots]);
    st = slot_init(t, &kids[nslots], cap, parts + (size_t)nslots * p->total, &slots[nslots]);
  }
  for (int32_t i = 0; i < nrun; i++) status[i] = st;
  mpnas__engine one = eng; /* a domain's pass on its thread alone */
  one.threads = 1;
  if (st == MPNAS_OK && keep) {
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
#endif
    for (int32_t j = 0; j < par; j++) {
      int32_t i = order[j], d = run[i];
      float *grads = i == 0 ? p->g : parts + (size_t)(i - 1) * p->total;
      status[i] = domain_pass(t, &one, &slots[team_slot()], d, counts[d], grads, &loss[d]);
    }
    for (int32_t i = 1; i < par; i++)
      if (status[i] == MPNAS_OK) merge_grads(p, parts + (size_t)(i - 1) * p->total);
  } else if (st == MPNAS_OK && par > 0) {
#if defined(_OPENMP)
#pragma omp parallel for ordered num_threads(threads) schedule(dynamic, 1)
#endif
    for (int32_t i = 0; i < par; i++) {
      pass_slot *slot = &slots[team_slot()];
      status[i] = domain_pass(t, &one, slot, run[i], counts[run[i]], i == 0 ? p->g : slot->grads,
                              &loss[run[i]]);
#if defined(_OPENMP)
#pragma omp ordered
#endif
      if (i > 0 && status[i] == MPNAS_OK) merge_grads(p, slot->grads);
    }
  }
  for (int32_t i = par; i < nrun && st == MPNAS_OK; i++) {
    int32_t d = run[i];
    float *grads = i == 0 ? p->g : main_slot.grads;
    int shards = shard_count(t, counts[d]), ran = 0;
    if (shards > 1)
      status[i] = shard_pass(t, &eng, &main_slot, kids, shards, d, counts[d], grads,
                             parts + p->total, &loss[d], &ran);
    if (!ran)
      status[i] = domain_pass(t, &eng, &main_slot, d, counts[d], grads, &loss[d]);
    if (status[i] != MPNAS_OK) break;
    if (i > 0) merge_grads(p, main_slot.grads);
    for (int k = 1; ran && k < shards; k++) merge_grads(p, parts + (size_t)k * p->total);
  }
  for (int i = 0; i < nslots; i++) mpnas__arena_release(&kids[i], kid_mark[i]);
  mpnas__arena_release(t->ws, mark);
  for (int32_t i = 0; i < nrun && st == MPNAS_OK; i++) st = status[i];
  if (st != MPNAS_OK && parts != NULL) /* a failed pass left its part unmerged */
    memset(parts, 0, sizeof(float) * p->total * (size_t)nparts);
  if (st == MPNAS_E_NO_MEMORY)
    return mpnas__fail(ctx, st, "workspace allocation failed (batch %d)", (int)t->batch);
  /* 3. The step's gradients are complete. */
  if (st == MPNAS_OK) st = gradients_complete(t, counts, loss);
  for (int32_t d = 0; d < D && st == MPNAS_OK; d++)
    if (counts[d] > 0) st = record_loss(t, d, loss[d]);
  /* 4. One optimiser step. */
  if (st == MPNAS_OK) mpnas__params_step(t->params, &t->optim, t->lr);
  return st;
}

/* ---- Undoing a failed step --------------------------------------------------------- */

mpnas_status mpnas__step_undo_alloc(mpnas__step_undo *u, const mpnas__trainer *t,
                                    int32_t path_len) {
  if (u->domains != NULL && u->ndomains == t->ndomains && u->path_len == path_len &&
      u->nabdp == mpnas__abdp_state_size(t->abdp) && u->nbn == t->params->btotal)
    return MPNAS_OK;
  mpnas__step_undo_free(u); /* none yet, or for other domains (added since) */
  mpnas_context *ctx = t->ctx;
  int32_t D = t->ndomains;
  *u = (mpnas__step_undo){.ctx = ctx, .ndomains = D, .path_len = path_len};
  u->nabdp = mpnas__abdp_state_size(t->abdp);
  u->nbn = t->params->btotal;
  u->domains = mpnas__malloc(ctx, sizeof *u->domains * (size_t)D);
  u->paths = mpnas__malloc(ctx, sizeof(int32_t) * ((size_t)D * (size_t)path_len + 1));
  u->abdp = mpnas__malloc(ctx, sizeof(double) * u->nabdp);
  u->bn = mpnas__malloc(ctx, sizeof(float) * (u->nbn + 1));
  if (!u->domains || !u->paths || !u->abdp || !u->bn) {
    mpnas__step_undo_free(u);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating the state a failed step restores");
  }
  return MPNAS_OK;
}

void mpnas__step_undo_save(mpnas__step_undo *u, const mpnas__trainer *t) {
  int32_t D = u->ndomains;
  memcpy(u->domains, t->domains, sizeof *u->domains * (size_t)D);
  for (int32_t d = 0; d < D && u->path_len > 0; d++)
    memcpy(u->paths + (size_t)d * u->path_len, t->domains[d].sampled,
           sizeof(int32_t) * (size_t)u->path_len);
  mpnas__abdp_export(t->abdp, u->abdp, u->nabdp); /* sized by state_size: cannot fail */
  if (u->nbn > 0) memcpy(u->bn, t->params->b, sizeof(float) * u->nbn);
  u->abdp_rng = *t->abdp_rng;
  u->opt_steps = t->params->steps;
}

void mpnas__step_undo_restore(const mpnas__step_undo *u, const mpnas__trainer *t) {
  int32_t D = u->ndomains;
  memcpy(t->domains, u->domains, sizeof *u->domains * (size_t)D);
  for (int32_t d = 0; d < D && u->path_len > 0; d++)
    memcpy(t->domains[d].sampled, u->paths + (size_t)d * u->path_len,
           sizeof(int32_t) * (size_t)u->path_len);
  mpnas__abdp_import(t->abdp, u->abdp, u->nabdp); /* its own export: valid */
  if (u->nbn > 0) memcpy(t->params->b, u->bn, sizeof(float) * u->nbn);
  *t->abdp_rng = u->abdp_rng;
  if (t->params->steps != u->opt_steps) mpnas__params_unstep(t->params);
}

void mpnas__step_undo_free(mpnas__step_undo *u) {
  if (u->ctx != NULL) {
    mpnas__free(u->ctx, u->domains);
    mpnas__free(u->ctx, u->paths);
    mpnas__free(u->ctx, u->abdp);
    mpnas__free(u->ctx, u->bn);
  }
  *u = (mpnas__step_undo){0};
}
