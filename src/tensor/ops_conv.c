/* ops_conv.c - convolution-like ops (KxK stem conv, pointwise, depthwise, fully
 * connected) on top of the kernel table: shape logic, scratch from the workspace arena
 * and the split of work across threads. See ops.h for the contracts.
 *
 * Threading: every parallel loop runs over a fixed list of `parts` (parts = the team
 * size chosen below) with a static schedule, and each part's range depends only on the
 * problem and on `parts`. So a given thread count always computes the same partial
 * results in the same order (bit-identical run to run, with or without OpenMP), and the
 * weight gradients, whose splits never cut a reduction, do not depend on it at all. */
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "tensor/bn_plan.h"
#include "tensor/ops.h"

/* Below about this many multiply-adds per thread, starting a parallel region costs
 * more than it saves (a few microseconds on the target machines). */
#define MPNAS__PAR_MIN_WORK 32768.0

/* Row granule of GEMM row splits and k granule of weight-gradient splits: keeps slices
 * aligned with SIMD register tiles. */
#define MPNAS__ROW_GRANULE 8
#define MPNAS__K_GRANULE 8

/* The KxK conv backward's im2col buffer holds whole images, at most about this many
 * floats (one image more if a single image is larger). The chunk size does not depend on the
 * thread count, so neither does the weight gradient accumulated chunk by chunk. */
#define MPNAS__IM2COL_FLOATS ((size_t)1 << 20)

/* Number of parts to split `work` multiply-adds into: 1 when single-threaded or small,
 * never more than max_parts (the number of indivisible units). */
int mpnas__team_size(const mpnas__engine *eng, double work, int max_parts) {
  int nt = eng->threads;
  if (nt <= 1 || max_parts <= 1) return 1;
  double by_work = work / MPNAS__PAR_MIN_WORK;
  if (by_work < (double)nt) nt = (int)by_work;
  if (nt > max_parts) nt = max_parts;
  return nt < 1 ? 1 : nt;
}

/* Part t of `parts` of [0, total), cut at multiples of `granule`: [*b, *e). */
void mpnas__split_range(int total, int parts, int t, int granule, int *b, int *e) {
  long long units = (total + granule - 1) / granule;
  long long u0 = units * t / parts, u1 = units * (t + 1) / parts;
  long long lo = u0 * granule, hi = u1 * granule;
  *b = (int)(lo < total ? lo : total);
  *e = (int)(hi < total ? hi : total);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* ---- Row producers ---------------------------------------------------------------- */

/* GEMM and depthwise forwards as "compute output rows [r0, r1)" plus an argument
 * struct, so the plain forwards and those that also take BN statistics share the two
 * ways of spreading rows over threads below. */
typedef void (*rows_fn)(const void *arg, int slot, int r0, int r1);
/* slot (< the runner's parts): the thread's index in the runner's team; calls with
 * different slots may run at once, calls with the same slot never do, so a producer may
 * keep per-slot scratch. */

/* Rows [0, rows) in `parts` slices cut at multiples of `granule`, one slice per thread
 * (rows are independent, so the split never changes a result). */
static void run_rows(int parts, int rows, int granule, rows_fn fn, const void *arg) {
  /* A team of one calls fn directly: even with its if clause false, an OpenMP region
   * costs libgomp a team set-up and a barrier whose FUTEX_WAKE is a system call. */
  if (parts <= 1) {
    if (rows > 0) fn(arg, 0, 0, rows);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
  for (int t = 0; t < parts; t++) {
    int r0, r1;
    mpnas__split_range(rows, parts, t, granule, &r0, &r1);
    if (r1 > r0) fn(arg, t, r0, r1);
  }
}

/* Rows [0, plan->units) of y ([units * unit_px][plan->c]) and their statistics into the
 * plan's partials; `parts` and `granule` are the plain forward's split. If the chunks
 * spread evenly over that team, threads take whole chunks and fold each block right
 * after producing it (still in cache); otherwise the plain split, then the statistics.
 * Either way blocks and fold order are the plan's: the statistics are the same. */
static void run_rows_stats(const mpnas__engine *eng, mpnas__bn_plan *plan, int parts,
                           int granule, rows_fn fn, const void *arg, const float *y) {
  int team = mpnas__bn_plan_fused_team(plan, parts);
  if (team > 0) {
    const mpnas__kernels *kt = eng->k;
    int nchunks = plan->nchunks;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(team) schedule(static) if (team > 1)
#endif
    for (int t = 0; t < nchunks; t++) {
      int slot = 0, b0, b1;
#if defined(_OPENMP)
      slot = omp_get_thread_num(); /* < team <= parts */
#endif
      mpnas__bn_plan_chunk(plan, t, &b0, &b1);
      for (int b = b0; b < b1; b++) {
        int r0, r1;
        mpnas__bn_plan_block(plan, b, &r0, &r1);
        fn(arg, slot, r0, r1);
        mpnas__bn_plan_fold(kt, plan, t, b, 0, plan->c, y);
      }
    }
  } else {
    run_rows(parts, plan->units, granule, fn, arg);
    mpnas__bn_plan_fold_all(eng, plan, y);
  }
}

/* ---- GEMM helpers ----------------------------------------------------------------- */

/* Arguments of y[m][n] = epilogue(x[m][k] . packed) for gemm_part. */
typedef struct gemm_args {
  const mpnas__kernels *kt;
  int k, n;
  const float *x, *packed, *scale, *shift;
  int act;
  const float *residual; /* NULL: none */
  float *y;
} gemm_args;

/* Rows [r0, r1) of the GEMM. */
static void gemm_part(const void *arg, int slot, int r0, int r1) {
  (void)slot;
  const gemm_args *a = arg;
  a->kt->gemm(r1 - r0, a->k, a->n, a->x + (size_t)r0 * a->k, a->packed, a->scale, a->shift,
              a->act, a->residual != NULL ? a->residual + (size_t)r0 * a->n : NULL,
              a->y + (size_t)r0 * a->n);
}

/* Threads for an m x k x n GEMM split by rows (one formula for the plain and the
 * statistics forward). */
static int gemm_parts(const mpnas__engine *eng, int m, int k, int n) {
  return mpnas__team_size(eng, (double)m * k * n, ceil_div(m, MPNAS__ROW_GRANULE));
}

/* y[m][n] = epilogue(x[m][k] . packed), rows split across threads. */
static void gemm_rows(const mpnas__engine *eng, int m, int k, int n, const float *x,
                      const float *packed, const float *scale, const float *shift, int act,
                      const float *residual, float *y) {
  gemm_args a = {eng->k, k, n, x, packed, scale, shift, act, residual, y};
  run_rows(gemm_parts(eng, m, k, n), m, MPNAS__ROW_GRANULE, gemm_part, &a);
}

/* The pointwise weight gradient dw[k][n] += x[m][k]^T . dy[m][n] is split one of two
 * ways, chosen by the shape alone so that its bits never depend on the thread count:
 * - by fixed chunks of rows (whole blocks of MPNAS__GEMM_BWD_ROWS, at most
 *   WGRAD_ROW_CHUNKS, fixed by m), each chunk's sums into its own partial (the first
 *   chunk's straight into dw), the partials then added in chunk order: a thread reads
 *   only its rows, and work made row by row for the product (a BN's input gradient, a
 *   normalised input) is made once;
 * - by ranges of dw's rows (input channels) over all the rows, where the partials would
 *   outweigh the rows (wide weights over few rows: a classifier or a squeeze-excite
 *   layer over a batch's pooled features). */
#define WGRAD_ROW_CHUNKS 8

/* `count` zeroed partials of len floats from ws (NULL for none), or *ok = 0. */
static float *zeroed_partials(mpnas__arena *ws, int count, size_t len, int *ok) {
  if (count <= 0) return NULL;
  float *p = mpnas__arena_floats(ws, (size_t)count * len);
  if (p == NULL) *ok = 0;
  else memset(p, 0, sizeof(float) * (size_t)count * len);
  return p;
}

typedef struct wgrad_plan {
  int chunks;      /* row chunks; 0: ranges of dw's rows */
  int parts;       /* threads */
  float *partials; /* [chunks - 1][k][n], zeroed (arena scratch) */
} wgrad_plan;

static mpnas_status wgrad_plan_make(const mpnas__engine *eng, mpnas__arena *ws, int m, int k,
                                    int n, wgrad_plan *p) {
  int blocks = ceil_div(m, MPNAS__GEMM_BWD_ROWS);
  p->chunks = (double)WGRAD_ROW_CHUNKS * k * n > (double)m * (k + n) ? 0
              : blocks < WGRAD_ROW_CHUNKS ? blocks : WGRAD_ROW_CHUNKS;
  p->parts = mpnas__team_size(eng, (double)m * k * n,
                              p->chunks > 0 ? p->chunks : ceil_div(k, MPNAS__K_GRANULE));
  int ok = 1;
  p->partials = zeroed_partials(ws, p->chunks - 1, (size_t)k * n, &ok);
  return ok ? MPNAS_OK : MPNAS_E_NO_MEMORY;
}

/* Thread t's share: dw's rows [*k0, *k1) over the chunks [*j0, *j1) (one chunk of all
 * the rows when split by dw's rows). */
static void wgrad_share(const wgrad_plan *p, int k, int t, int *k0, int *k1, int *j0, int *j1) {
  if (p->chunks == 0) {
    mpnas__split_range(k, p->parts, t, MPNAS__K_GRANULE, k0, k1);
    *j0 = 0, *j1 = 1;
  } else {
    *k0 = 0, *k1 = k;
    mpnas__split_range(p->chunks, p->parts, t, 1, j0, j1);
  }
}

/* Rows [*r0, *r1) of chunk j, and where their sums go. */
static float *wgrad_chunk(const wgrad_plan *p, int m, int k, int n, int j, float *dw, int *r0,
                          int *r1) {
  if (p->chunks == 0) {
    *r0 = 0, *r1 = m;
    return dw;
  }
  mpnas__split_range(m, p->chunks, j, MPNAS__GEMM_BWD_ROWS, r0, r1);
  return j == 0 ? dw : p->partials + (size_t)(j - 1) * k * n;
}

/* dst += each of `count` partials of len floats, in order. */
static void add_partials(float *dst, const float *partials, int count, size_t len) {
  for (int j = 0; j < count; j++)
    for (size_t e = 0; e < len; e++) dst[e] += partials[(size_t)j * len + e];
}

/* Whether a weight gradient's fixed chunks - `chunks` parts of [0, total) cut at
 * multiples of granule, each unit `scale` rows - each lie within one of the BN
 * reductions' chunks of the total * scale rows (mpnas__reduce_chunk_rows): then a thread
 * making the BN's chunks in order makes each of the weight gradient's in its order too,
 * so both sums keep their bits when one pass makes them. */
static int chunks_nest_in_reduce(int total, int chunks, int granule, int scale) {
  const int m = total * scale;
  for (int j = 0, t = 0; j < chunks; j++) {
    int u0, u1, r0, r1;
    mpnas__split_range(total, chunks, j, granule, &u0, &u1);
    for (;; t++) {
      mpnas__reduce_chunk_rows(m, t, &r0, &r1);
      if (u0 * scale < r1) break;
    }
    if (u0 * scale < r0 || u1 * scale > r1) return 0;
  }
  return 1;
}

/* Rows of the BN-normalised input the weight gradient takes at a time: whole blocks of
 * the kernel's sums, a thread's buffer of at most BN_IN_WGRAD_FLOATS (in L2). */
#define BN_IN_WGRAD_FLOATS 65536

static int wgrad_buffer_rows(int width) {
  int rows = BN_IN_WGRAD_FLOATS / (width > 0 ? width : 1) / MPNAS__GEMM_BWD_ROWS;
  return (rows > 0 ? rows : 1) * MPNAS__GEMM_BWD_ROWS;
}

/* dw[k][n] += x[m][k]^T . dy[m][n] (split as above). With in, of act((x - mu) * k + b):
 * where the kernel adds its blocks' sums in turn (weight_grad_in_blocks), each thread
 * normalises a buffer of rows at a time (its columns of dw's rows only) and the kernel
 * takes them from there with the bits of one call over the chunk; else the whole input
 * is normalised first. Scratch from ws, released before returning. */
static mpnas_status gemm_weight_grad(const mpnas__engine *eng, mpnas__arena *ws, int m, int k,
                                     int n, const float *x, const mpnas__bn_act *in,
                                     const float *dy, float *dw) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  const mpnas__kernels *kt = eng->k;
  wgrad_plan p;
  float *scratch = NULL;
  int rows = wgrad_buffer_rows(k);
  mpnas_status st = wgrad_plan_make(eng, ws, m, k, n, &p);
  if (st == MPNAS_OK && in != NULL) {
    if (kt->weight_grad_in_blocks) {
      scratch = mpnas__arena_floats(ws, (size_t)p.parts * rows * k);
    } else if ((scratch = mpnas__arena_floats(ws, (size_t)m * k)) != NULL) {
      mpnas__bn_act_reapply(eng, m, k, x, in->mu, in->k, in->b, in->act, NULL, scratch);
      x = scratch, in = NULL;
    }
    if (scratch == NULL) st = MPNAS_E_NO_MEMORY;
  }
  if (st != MPNAS_OK) {
    mpnas__arena_release(ws, mark);
    return st;
  }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(p.parts) schedule(static, 1) if (p.parts > 1)
#endif
  for (int t = 0; t < p.parts; t++) {
    int k0, k1, j0, j1;
    wgrad_share(&p, k, t, &k0, &k1, &j0, &j1);
    if (k1 <= k0) continue;
    for (int j = j0; j < j1; j++) {
      int c0, c1;
      float *sums = wgrad_chunk(&p, m, k, n, j, dw, &c0, &c1);
      if (in == NULL) {
        kt->gemm_bwd_weight(c1 - c0, k, n, x + (size_t)c0 * k, dy + (size_t)c0 * n, sums, k0,
                            k1);
        continue;
      }
      float *buf = scratch + (size_t)t * rows * k;
      for (int i0 = c0; i0 < c1; i0 += rows) {
        int r = c1 - i0 < rows ? c1 - i0 : rows;
        kt->bn_apply(r, k1 - k0, (size_t)k, x + (size_t)i0 * k + k0, in->mu + k0, in->k + k0,
                     in->b + k0, in->act, NULL, buf + k0);
        kt->gemm_bwd_weight(r, k, n, buf, dy + (size_t)i0 * n, sums, k0, k1);
      }
    }
  }
  if (p.chunks > 1) add_partials(dw, p.partials, p.chunks - 1, (size_t)k * n);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* Pack w [k][n] into arena scratch. */
static float *pack_weights(const mpnas__engine *eng, mpnas__arena *ws, int k, int n,
                           const float *w) {
  float *packed = mpnas__arena_floats(ws, eng->k->gemm_packed_floats(k, n));
  if (packed != NULL) eng->k->gemm_pack(k, n, w, packed);
  return packed;
}

/* Pack w^T ([n][k], from w [k][n]) for the input gradient dx = dy . w^T. The transpose
 * is a temporary on top of the packed block, popped before returning. */
static float *pack_weights_transposed(const mpnas__engine *eng, mpnas__arena *ws, int k,
                                      int n, const float *w) {
  float *packed = mpnas__arena_floats(ws, eng->k->gemm_packed_floats(n, k));
  if (packed == NULL) return NULL;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *wt = mpnas__arena_floats(ws, (size_t)k * n);
  if (wt == NULL) return NULL;
  for (int p = 0; p < k; p++)
    for (int j = 0; j < n; j++) wt[(size_t)j * k + p] = w[(size_t)p * n + j];
  eng->k->gemm_pack(n, k, wt, packed);
  mpnas__arena_release(ws, mark);
  return packed;
}

/* ---- Pointwise ---------------------------------------------------------------------- */

mpnas_status mpnas__pw_fwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                           int cout, const float *x, const float *wt, const float *scale,
                           const float *shift, int act, const float *residual, float *y) {
  if (m <= 0 || cout <= 0) return MPNAS_OK;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *packed = pack_weights(eng, ws, cin, cout, wt);
  if (packed == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  gemm_rows(eng, m, cin, cout, x, packed, scale, shift, act, residual, y);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

size_t mpnas__pw_packed_floats(const mpnas__engine *eng, int cin, int cout) {
  return eng->k->gemm_packed_floats(cin, cout);
}

void mpnas__pw_pack(const mpnas__engine *eng, int cin, int cout, const float *wt,
                    float *packed) {
  eng->k->gemm_pack(cin, cout, wt, packed);
}

void mpnas__pw_fwd_packed(const mpnas__engine *eng, int m, int cin, int cout, const float *x,
                          const float *packed, const float *scale, const float *shift, int act,
                          const float *residual, float *y) {
  if (m > 0 && cout > 0) gemm_rows(eng, m, cin, cout, x, packed, scale, shift, act, residual, y);
}

mpnas_status mpnas__pw_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                           int cout, const float *x, const float *wt, const float *dy,
                           float *dx, float *dwt) {
  return mpnas__pw_bwd_bn_in(eng, ws, m, cin, cout, x, NULL, wt, dy, NULL, dx, dwt);
}

mpnas_status mpnas__pw_bwd_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const mpnas__bn_act *in,
                                 const float *wt, const float *dy, const float *residual,
                                 float *dx, float *dwt) {
  if (m <= 0) return MPNAS_OK;
  if (dx != NULL) {
    mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
    float *packed = pack_weights_transposed(eng, ws, cin, cout, wt);
    if (packed == NULL) {
      mpnas__arena_release(ws, mark);
      return MPNAS_E_NO_MEMORY;
    }
    gemm_rows(eng, m, cout, cin, dy, packed, NULL, NULL, MPNAS__ACT_NONE, residual, dx);
    mpnas__arena_release(ws, mark);
  }
  return dwt != NULL ? gemm_weight_grad(eng, ws, m, cin, cout, x, in, dy, dwt) : MPNAS_OK;
}

mpnas_status mpnas__pw_bwd_bn_dy(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const float *wt, float *g,
                                 const float *bx, const float *mu, const float *coef,
                                 const float *residual, float *dx, float *dwt) {
  if (m <= 0) return MPNAS_OK;
  if (!eng->k->weight_grad_in_blocks) { /* the BN's input gradient whole, over g, first */
    mpnas__bn_bwd_apply_coef(eng, m, cout, bx, g, mu, coef, g);
    return mpnas__pw_bwd_bn_in(eng, ws, m, cin, cout, x, NULL, wt, g, residual, dx, dwt);
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  wgrad_plan p;
  int rows = wgrad_buffer_rows(cout);
  mpnas_status st = wgrad_plan_make(eng, ws, m, cin, cout, &p);
  float *packed = st == MPNAS_OK && dx != NULL ? pack_weights_transposed(eng, ws, cin, cout, wt)
                                               : NULL;
  float *scratch = st == MPNAS_OK ? mpnas__arena_floats(ws, (size_t)p.parts * rows * cout) : NULL;
  if (scratch == NULL || (dx != NULL && packed == NULL)) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  const mpnas__kernels *kt = eng->k;
  const float *a = coef, *b = coef + cout, *d = coef + 2 * (size_t)cout;
  /* Blocks of rows into the thread's buffer, the weight gradient (the split of
   * gemm_weight_grad, so its bits) and the input gradient from there. Split by chunks of
   * rows, a thread makes its chunks' blocks and all their input gradient; split by dw's
   * rows, it makes every block (its channels need all the rows) and the input gradient of
   * its share of each block's rows (any row split gives the same bits). */
#if defined(_OPENMP)
#pragma omp parallel for num_threads(p.parts) schedule(static, 1) if (p.parts > 1)
#endif
  for (int t = 0; t < p.parts; t++) {
    int k0, k1, j0, j1;
    wgrad_share(&p, cin, t, &k0, &k1, &j0, &j1);
    int dx_parts = p.chunks == 0 ? p.parts : 1, dx_part = p.chunks == 0 ? t : 0;
    float *buf = scratch + (size_t)t * rows * cout;
    for (int j = j0; j < j1; j++) {
      int c0, c1;
      float *sums = wgrad_chunk(&p, m, cin, cout, j, dwt, &c0, &c1);
      for (int i0 = c0; i0 < c1; i0 += rows) {
        int r = c1 - i0 < rows ? c1 - i0 : rows;
        size_t off = (size_t)i0 * cout;
        kt->bn_bwd_dx(r, cout, (size_t)cout, bx + off, g + off, mu, a, b, d, buf);
        if (dwt != NULL && k1 > k0)
          kt->gemm_bwd_weight(r, cin, cout, x + (size_t)i0 * cin, buf, sums, k0, k1);
        if (dx == NULL) continue;
        int q0, q1;
        mpnas__split_range(r, dx_parts, dx_part, MPNAS__ROW_GRANULE, &q0, &q1);
        if (q1 > q0)
          kt->gemm(q1 - q0, cout, cin, buf + (size_t)q0 * cout, packed, NULL, NULL,
                   MPNAS__ACT_NONE, residual != NULL ? residual + (size_t)(i0 + q0) * cin : NULL,
                   dx + (size_t)(i0 + q0) * cin);
      }
    }
  }
  if (dwt != NULL && p.chunks > 1) add_partials(dwt, p.partials, p.chunks - 1, (size_t)cin * cout);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* Rows of the input gradient dx = dz . w^T for mpnas__pw_dx_bn_bwd's BN backward; with
 * dwt, the same rows' share of the conv's weight gradient too: the BN's output made from
 * x's rows (in cache after, for the BN's sums) into the slot's buffer a part at a time,
 * each part's sums added to its chunk's (wgrad_chunk), cut where a chunk ends. */
typedef struct pw_dx_args {
  const mpnas__kernels *kt;
  int m, cout, c;
  const float *dz, *packed;
  float *dx;
  const float *x;           /* with dwt: the BN's input [m][c] */
  const mpnas__bn_act *act; /* and its BN and activation */
  const wgrad_plan *plan;   /* dwt's split (chunks of rows) */
  float *dwt, *scratch;     /* scratch: [slots][rows][c] */
  int rows;                 /* wgrad_buffer_rows(c) */
} pw_dx_args;

static void pw_dx_rows(const void *arg, int slot, int r0, int r1) {
  const pw_dx_args *a = arg;
  const size_t c = (size_t)a->c;
  a->kt->gemm(r1 - r0, a->cout, a->c, a->dz + (size_t)r0 * a->cout, a->packed, NULL, NULL,
              MPNAS__ACT_NONE, NULL, a->dx + (size_t)r0 * c);
  if (a->dwt == NULL) return;
  float *buf = a->scratch + (size_t)slot * a->rows * c;
  const mpnas__bn_act *in = a->act;
  for (int p = r0; p < r1;) {
    int j = 0, c0, c1;
    float *sums;
    for (;; j++) { /* the chunk of row p */
      sums = wgrad_chunk(a->plan, a->m, a->c, a->cout, j, a->dwt, &c0, &c1);
      if (p < c1) break;
    }
    int r = r1 < c1 ? r1 - p : c1 - p;
    r = r < a->rows ? r : a->rows;
    a->kt->bn_apply(r, a->c, c, a->x + (size_t)p * c, in->mu, in->k, in->b, in->act, NULL, buf);
    a->kt->gemm_bwd_weight(r, a->c, a->cout, buf, a->dz + (size_t)p * a->cout, sums, 0, a->c);
    p += r;
  }
}

mpnas_status mpnas__pw_dx_bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int c,
                                 int cout, const float *wt, const float *dz, const float *x,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, const mpnas__bn_act *act,
                                 float *coef, float *dx, float *dgamma, float *dbeta,
                                 float *dwt) {
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  const int threads = gemm_parts(eng, m, cout, c);
  wgrad_plan plan = {0, 1, NULL};
  float *scratch = NULL;
  int rows = wgrad_buffer_rows(c);
  mpnas_status st = MPNAS_OK;
  if (dwt != NULL && m > 0) {
    st = wgrad_plan_make(eng, ws, m, c, cout, &plan);
    /* in this pass: summed by chunks of rows in blocks, which nest in the BN's */
    if (st == MPNAS_OK && eng->k->weight_grad_in_blocks && plan.chunks > 0 &&
        chunks_nest_in_reduce(m, plan.chunks, MPNAS__GEMM_BWD_ROWS, 1)) {
      if ((scratch = mpnas__arena_floats(ws, (size_t)threads * rows * c)) == NULL)
        st = MPNAS_E_NO_MEMORY;
    } else if (st == MPNAS_OK) { /* the weight gradient in a pass of its own */
      mpnas__arena_release(ws, mark); /* the plan's partials: it makes its own */
      plan.chunks = 0;
      st = gemm_weight_grad(eng, ws, m, c, cout, x, act, dz, dwt);
      dwt = NULL;
    }
  }
  float *packed = st == MPNAS_OK && m > 0 ? pack_weights_transposed(eng, ws, c, cout, wt) : NULL;
  if (st == MPNAS_OK && (packed != NULL || m <= 0)) {
    pw_dx_args a = {eng->k, m, cout, c, dz, packed, dx, x, act, &plan, dwt, scratch, rows};
    st = mpnas__bn_bwd_produced(eng, ws, m, c, x, gamma, save_mean, save_invstd, act,
                                pw_dx_rows, &a, threads, coef, dx, dgamma, dbeta);
    if (dwt != NULL && plan.chunks > 1)
      add_partials(dwt, plan.partials, plan.chunks - 1, (size_t)c * cout);
  } else if (st == MPNAS_OK) {
    st = MPNAS_E_NO_MEMORY;
  }
  mpnas__arena_release(ws, mark);
  return st;
}

/* Zero statistics for an empty output (no rows: mean 0, no spread). */
static void stats_empty(int c, double *mean, double *m2) {
  for (int j = 0; j < c; j++) mean[j] = m2[j] = 0.0;
}

mpnas_status mpnas__pw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                 int cout, const float *x, const float *wt, float *y,
                                 double *mean, double *m2) {
  return mpnas__pw_fwd_stats_bn_in(eng, ws, m, cin, cout, x, NULL, wt, y, mean, m2);
}

/* Rows of the BN-normalised input at a time: a slot's buffer of BN_IN_ROWS x cin floats
 * stays in L2 while the product reads it. A multiple of the row granule and of the
 * kernels' row tiles, so the product's rows are computed as without the buffer. */
#define BN_IN_ROWS 64

typedef struct gemm_bn_args {
  gemm_args g;
  const mpnas__bn_act *in;
  float *scratch; /* [parts][BN_IN_ROWS][k] */
} gemm_bn_args;

/* Rows [r0, r1): BN_IN_ROWS rows of x normalised into the slot's buffer, their product. */
static void gemm_bn_part(const void *arg, int slot, int r0, int r1) {
  const gemm_bn_args *a = arg;
  const gemm_args *g = &a->g;
  float *buf = a->scratch + (size_t)slot * BN_IN_ROWS * g->k;
  for (int i0 = r0; i0 < r1; i0 += BN_IN_ROWS) {
    int rows = r1 - i0 < BN_IN_ROWS ? r1 - i0 : BN_IN_ROWS;
    g->kt->bn_apply(rows, g->k, (size_t)g->k, g->x + (size_t)i0 * g->k, a->in->mu, a->in->k,
                    a->in->b, a->in->act, NULL, buf);
    g->kt->gemm(rows, g->k, g->n, buf, g->packed, NULL, NULL, MPNAS__ACT_NONE, NULL,
                g->y + (size_t)i0 * g->n);
  }
}

mpnas_status mpnas__pw_fwd_stats_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int m,
                                       int cin, int cout, const float *x,
                                       const mpnas__bn_act *in, const float *wt, float *y,
                                       double *mean, double *m2) {
  if (cout <= 0) return MPNAS_OK;
  if (m <= 0) {
    stats_empty(cout, mean, m2);
    return MPNAS_OK;
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__bn_plan plan;
  int parts = gemm_parts(eng, m, cin, cout);
  float *packed = pack_weights(eng, ws, cin, cout, wt), *scratch = NULL;
  if (packed == NULL || mpnas__bn_plan_init(&plan, ws, m, 1, cout) != MPNAS_OK ||
      (in != NULL &&
       (scratch = mpnas__arena_floats(ws, (size_t)parts * BN_IN_ROWS * (size_t)cin)) == NULL)) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  gemm_bn_args a = {{eng->k, cin, cout, x, packed, NULL, NULL, MPNAS__ACT_NONE, NULL, y}, in,
                    scratch};
  if (in != NULL) run_rows_stats(eng, &plan, parts, MPNAS__ROW_GRANULE, gemm_bn_part, &a, y);
  else run_rows_stats(eng, &plan, parts, MPNAS__ROW_GRANULE, gemm_part, &a.g, y);
  mpnas__bn_plan_merge(&plan, mean, m2);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* ---- Batch statistics of a pointwise conv from its input's moments --------------------
 * y = x . w is linear, so its batch mean is mean(x) . w and its sum of squared deviations
 * per output channel j is w_j^T S w_j, S being x's (cin x cin) sum of centred outer
 * products. S costs m cin^2 multiply-adds, a product of cin / cout of the conv's, and is
 * read from x (m x cin) instead of y (m x cout): an expanding conv's statistics are known
 * before its output exists, so an evaluation can make the output a few rows at a time,
 * in cache, for the next op (mpnas__expand_dw_fwd_stats). */

/* Per block of MPNAS__BN_BLOCK_ROWS rows: the block's mean (double) and S about it. */
typedef struct moments_args {
  const mpnas__kernels *kt;
  int m, cin;
  const float *x;
  double *mean;   /* [blocks][cin] */
  float *cross;   /* [blocks][cin][cin] */
} moments_args;

/* Block b; xc: [MPNAS__BN_BLOCK_ROWS + 1][cin] for the centred rows and the float mean,
 * m2: [cin] for bn_stats' spread (not used). */
static void moments_block(const moments_args *a, int b, float *xc, double *m2) {
  const int cin = a->cin, r0 = b * MPNAS__BN_BLOCK_ROWS;
  const int rows = a->m - r0 < MPNAS__BN_BLOCK_ROWS ? a->m - r0 : MPNAS__BN_BLOCK_ROWS;
  const float *x = a->x + (size_t)r0 * cin;
  double *mu = a->mean + (size_t)b * cin;
  float *s = a->cross + (size_t)b * cin * cin, *muf = xc + (size_t)rows * cin;
  a->kt->bn_stats(rows, cin, (size_t)cin, x, mu, m2);
  /* S about the mean rounded to float: it exceeds S about the exact mean by rows e e^T,
   * e below half an ulp of the mean, far below S's own rounding. */
  for (int p = 0; p < cin; p++) muf[p] = (float)mu[p];
  for (int i = 0; i < rows; i++)
    for (int p = 0; p < cin; p++) xc[(size_t)i * cin + p] = x[(size_t)i * cin + p] - muf[p];
  memset(s, 0, sizeof(float) * (size_t)cin * cin);
  a->kt->gemm_bwd_weight(rows, cin, cin, xc, xc, s, 0, cin);
}

/* Where the expanded tensor outgrows a 2 MB L2 (4 MB and more), so that not writing it
 * saves memory traffic, the cross products cost at most a third of the conv, and the
 * serial w_j^T S w_j (cin^2 cout) at most 1/64 of it (m >= 64 cin). */
int mpnas__pw_moments_pay(int m, int cin, int cout) {
  return cin > 0 && 3 * cin <= cout && (double)m * cout >= (double)(1 << 20) &&
         (double)m >= 64.0 * cin;
}

mpnas_status mpnas__pw_out_moments(const mpnas__engine *eng, mpnas__arena *ws, int m, int cin,
                                   int cout, const float *x, const float *wt, double *mean,
                                   double *m2) {
  if (cout <= 0) return MPNAS_OK;
  if (m <= 0 || cin <= 0) {
    stats_empty(cout, mean, m2);
    return MPNAS_OK;
  }
  const int blocks = ceil_div(m, MPNAS__BN_BLOCK_ROWS);
  const size_t cc = (size_t)cin * cin;
  const int parts = mpnas__team_size(eng, (double)m * cc, blocks);
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  const size_t slot = (size_t)(MPNAS__BN_BLOCK_ROWS + 1) * cin;
  double *bmean = mpnas__arena_alloc(ws, sizeof(double) * ((size_t)blocks * cin + cc + cin));
  double *spread = mpnas__arena_alloc(ws, sizeof(double) * (size_t)parts * cin);
  double *sw = mpnas__arena_alloc(ws, sizeof(double) * (size_t)cin * cout);
  float *cross = mpnas__arena_floats(ws, (size_t)blocks * cc);
  float *scratch = mpnas__arena_floats(ws, (size_t)parts * slot);
  if (bmean == NULL || spread == NULL || sw == NULL || cross == NULL || scratch == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  moments_args a = {eng->k, m, cin, x, bmean, cross};
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
  for (int t = 0; t < parts; t++) {
    int b0, b1;
    mpnas__split_range(blocks, parts, t, 1, &b0, &b1);
    for (int b = b0; b < b1; b++)
      moments_block(&a, b, scratch + (size_t)t * slot, spread + (size_t)t * cin);
  }
  /* The blocks merged in order (Chan's update): mu, s [cin][cin] over the rows so far. */
  double *s = bmean + (size_t)blocks * cin, *mu = s + cc;
  for (size_t q = 0; q < cc; q++) s[q] = 0.0;
  for (int p = 0; p < cin; p++) mu[p] = 0.0;
  double seen = 0.0;
  for (int b = 0; b < blocks; b++) {
    const double nb = m - b * MPNAS__BN_BLOCK_ROWS < MPNAS__BN_BLOCK_ROWS
                          ? m - b * MPNAS__BN_BLOCK_ROWS
                          : MPNAS__BN_BLOCK_ROWS;
    const double *bm = bmean + (size_t)b * cin;
    const float *bs = cross + (size_t)b * cc;
    const double f = seen * nb / (seen + nb);
    for (int p = 0; p < cin; p++) {
      const double dp = bm[p] - mu[p];
      for (int q = 0; q < cin; q++)
        s[(size_t)p * cin + q] += bs[(size_t)p * cin + q] + f * dp * (bm[q] - mu[q]);
    }
    for (int p = 0; p < cin; p++) mu[p] += (bm[p] - mu[p]) * nb / (seen + nb);
    seen += nb;
  }
  /* mean_j = mu . w_j, m2_j = w_j^T s w_j = sum_p w[p][j] (s w)[p][j] (negative values
   * from rounding clamped to 0), with s w made row by row along w's contiguous rows. */
  for (size_t q = 0; q < (size_t)cin * cout; q++) sw[q] = 0.0;
  for (int p = 0; p < cin; p++)
    for (int q = 0; q < cin; q++) {
      const double spq = s[(size_t)p * cin + q];
      const float *wq = wt + (size_t)q * cout;
      double *swp = sw + (size_t)p * cout;
      for (int j = 0; j < cout; j++) swp[j] += spq * wq[j];
    }
  for (int j = 0; j < cout; j++) mean[j] = m2[j] = 0.0;
  for (int p = 0; p < cin; p++) {
    const float *wp = wt + (size_t)p * cout;
    const double *swp = sw + (size_t)p * cout;
    for (int j = 0; j < cout; j++) {
      mean[j] += mu[p] * wp[j];
      m2[j] += wp[j] * swp[j];
    }
  }
  for (int j = 0; j < cout; j++)
    if (m2[j] < 0.0) m2[j] = 0.0; /* not a NaN: that reaches the output, as from y's sums */
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* ---- Fully connected ------------------------------------------------------------------ */

mpnas_status mpnas__fc_fwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int in, int out,
                           const float *x, const float *wt, const float *b, float *y) {
  /* The bias is the epilogue's shift. */
  return mpnas__pw_fwd(eng, ws, m, in, out, x, wt, NULL, b, MPNAS__ACT_NONE, NULL, y);
}

mpnas_status mpnas__fc_bwd(const mpnas__engine *eng, mpnas__arena *ws, int m, int in, int out,
                           const float *x, const float *wt, const float *dy, float *dx,
                           float *dwt, float *db) {
  mpnas_status st = mpnas__pw_bwd(eng, ws, m, in, out, x, wt, dy, dx, dwt);
  if (st != MPNAS_OK) return st;
  if (db != NULL)
    for (int j = 0; j < out; j++) {
      float acc = 0.0f;
      for (int i = 0; i < m; i++) acc += dy[(size_t)i * out + j];
      db[j] += acc;
    }
  return MPNAS_OK;
}

/* ---- KxK convolution (im2col + GEMM) ---------------------------------------------------- */

typedef struct conv_geom {
  int h, w, cin, k, stride, pad, ho, wo;
  int kkc; /* columns of the im2col matrix: k*k*cin, ordered (ky, kx, ci) like wt */
} conv_geom;

/* One pixel's cin channels: a library call per pixel would cost more than the copy for
 * the stem's 3 (RGB) channels, so up to 4 are copied inline. */
static inline void copy_pixel(float *dst, const float *src, int cin) {
  switch (cin) {
    case 4: dst[3] = src[3]; /* fall through */
    case 3: dst[2] = src[2]; /* fall through */
    case 2: dst[1] = src[1]; /* fall through */
    case 1: dst[0] = src[0]; break;
    default: memcpy(dst, src, sizeof(float) * (size_t)cin);
  }
}
static inline void zero_pixel(float *dst, int cin) {
  switch (cin) {
    case 4: dst[3] = 0.0f; /* fall through */
    case 3: dst[2] = 0.0f; /* fall through */
    case 2: dst[1] = 0.0f; /* fall through */
    case 1: dst[0] = 0.0f; break;
    default: memset(dst, 0, sizeof(float) * (size_t)cin);
  }
}

/* col[p - p0][(ky*k + kx)*cin + ci] = x[i][oy*s+ky-pad][ox*s+kx-pad][ci] for the output
 * pixels p = (i*ho + oy)*wo + ox in [p0, p1), zero outside the image. A kernel row inside
 * the image is k*cin consecutive floats of x, copied in one loop (the stem's 3x3 over 3
 * channels: 9 floats rather than 3 checked pixels; the search step's im2col 1.5x). */
static void im2col_pixels(const conv_geom *g, const float *x, float *col, int p0, int p1) {
  const int run = g->k * g->cin, per_image = g->ho * g->wo;
  const size_t row_floats = (size_t)g->w * g->cin;
  /* Output columns whose k x k window lies inside the image's columns. */
  int in_lo = (g->pad + g->stride - 1) / g->stride, in_hi = (g->w + g->pad - g->k) / g->stride + 1;
  if (in_hi > g->wo) in_hi = g->wo;
  float *dst = col;
  for (int p = p0; p < p1;) { /* a piece of one output row at a time */
    int i = p / per_image, oy = p % per_image / g->wo, ox0 = p % g->wo;
    int ox1 = g->wo - ox0 < p1 - p ? g->wo : ox0 + (p1 - p);
    const float *xi = x + (size_t)i * g->h * row_floats;
    int iy0 = oy * g->stride - g->pad, rows_inside = iy0 >= 0 && iy0 + g->k <= g->h;
    for (int ox = ox0; ox < ox1; ox++) {
      int ix0 = ox * g->stride - g->pad;
      if (rows_inside && ox >= in_lo && ox < in_hi) { /* k runs of k*cin floats */
        const float *src = xi + (size_t)iy0 * row_floats + (size_t)ix0 * g->cin;
        for (int ky = 0; ky < g->k; ky++, dst += run, src += row_floats) {
          if (run == 9) /* the stem's 3x3 over 3 channels: a copy of constant size */
            memcpy(dst, src, 9 * sizeof(float));
          else
            for (int j = 0; j < run; j++) dst[j] = src[j];
        }
        continue;
      }
      for (int ky = 0; ky < g->k; ky++) {
        int iy = iy0 + ky;
        for (int kx = 0; kx < g->k; kx++, dst += g->cin) {
          int ix = ix0 + kx;
          if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
            zero_pixel(dst, g->cin);
          else
            copy_pixel(dst, xi + (size_t)iy * row_floats + (size_t)ix * g->cin, g->cin);
        }
      }
    }
    p += ox1 - ox0;
  }
}

/* The whole output rows [r0, r1) of the count*ho (the backward's chunks of images). */
static void im2col_rows(const conv_geom *g, const float *x, float *col, int r0, int r1) {
  im2col_pixels(g, x, col + (size_t)r0 * g->wo * g->kkc, r0 * g->wo, r1 * g->wo);
}

static void im2col(const mpnas__engine *eng, const conv_geom *g, int count, const float *x,
                   float *col) {
  int rows = count * g->ho;
  int parts = mpnas__team_size(eng, (double)rows * g->wo * g->kkc, rows);
  if (parts <= 1) { /* no OpenMP region for a team of one (run_rows) */
    im2col_rows(g, x, col, 0, rows);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
  for (int t = 0; t < parts; t++) {
    int r0, r1;
    mpnas__split_range(rows, parts, t, 1, &r0, &r1);
    im2col_rows(g, x, col, r0, r1);
  }
}

/* The adjoint of im2col, as a gather so threads never write the same pixel:
 * dx[i][iy][ix][ci] = sum over taps covering (iy, ix) of dcol[..][tap][ci], summed in
 * (ky, kx) order. Overwrites dx; split by input rows. */
static void col2im(const mpnas__engine *eng, const conv_geom *g, int count, const float *dcol,
                   float *dx) {
  int rows = count * g->h;
  int parts = mpnas__team_size(eng, (double)rows * g->w * g->kkc, rows);
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
  for (int t = 0; t < parts; t++) {
    int r0, r1;
    mpnas__split_range(rows, parts, t, 1, &r0, &r1);
    for (int r = r0; r < r1; r++) {
      int i = r / g->h, iy = r % g->h;
      const float *dci = dcol + (size_t)i * g->ho * g->wo * g->kkc;
      for (int ix = 0; ix < g->w; ix++) {
        float *d = dx + (((size_t)i * g->h + iy) * g->w + ix) * g->cin;
        for (int ci = 0; ci < g->cin; ci++) d[ci] = 0.0f;
        for (int ky = 0; ky < g->k; ky++) {
          int ty = iy + g->pad - ky;
          if (ty < 0 || ty % g->stride != 0 || ty / g->stride >= g->ho) continue;
          int oy = ty / g->stride;
          for (int kx = 0; kx < g->k; kx++) {
            int tx = ix + g->pad - kx;
            if (tx < 0 || tx % g->stride != 0 || tx / g->stride >= g->wo) continue;
            int ox = tx / g->stride;
            const float *s = dci + ((size_t)oy * g->wo + ox) * g->kkc +
                             (size_t)(ky * g->k + kx) * g->cin;
            for (int ci = 0; ci < g->cin; ci++) d[ci] += s[ci];
          }
        }
      }
    }
  }
}

static conv_geom conv_geom_make(int h, int w, int cin, int k, int stride) {
  conv_geom g;
  g.h = h;
  g.w = w;
  g.cin = cin;
  g.k = k;
  g.stride = stride;
  g.pad = k / 2;
  g.ho = mpnas__out_size(h, stride);
  g.wo = mpnas__out_size(w, stride);
  g.kkc = k * k * cin;
  return g;
}

/* Images per im2col chunk (at least 1, at most n). */
static int conv_chunk_images(const conv_geom *g, int n) {
  size_t per_image = (size_t)g->ho * g->wo * g->kkc;
  size_t nb = per_image == 0 ? (size_t)n : MPNAS__IM2COL_FLOATS / per_image;
  if (nb < 1) nb = 1;
  if (nb > (size_t)n) nb = (size_t)n;
  return (int)nb;
}

/* Output pixels at a time: a slot's im2col buffer of CONV_COL_ROWS x k*k*cin floats stays
 * in cache while the product reads it, so the im2col matrix never goes to memory. A
 * multiple of the row granule and of the kernels' row tiles (as BN_IN_ROWS). */
#define CONV_COL_ROWS 64

typedef struct conv_col_args {
  gemm_args g; /* g.x unused: the rows come from the buffer */
  const conv_geom *geom;
  const float *x;
  float *scratch; /* [parts][CONV_COL_ROWS][kkc] */
} conv_col_args;

/* Output pixels [r0, r1): CONV_COL_ROWS im2col rows into the slot's buffer, their product. */
static void conv_col_part(const void *arg, int slot, int r0, int r1) {
  const conv_col_args *a = arg;
  const gemm_args *g = &a->g;
  float *buf = a->scratch + (size_t)slot * CONV_COL_ROWS * g->k;
  for (int i0 = r0; i0 < r1; i0 += CONV_COL_ROWS) {
    int rows = r1 - i0 < CONV_COL_ROWS ? r1 - i0 : CONV_COL_ROWS;
    im2col_pixels(a->geom, a->x, buf, i0, i0 + rows);
    g->kt->gemm(rows, g->k, g->n, buf, g->packed, g->scale, g->shift, g->act, NULL,
                g->y + (size_t)i0 * g->n);
  }
}

/* The KxK forward (a 1x1 stride-1 conv as a plain GEMM), with its output's statistics
 * when mean != NULL (those of mpnas__bn_stats over y, bit for bit: the same plan). */
static mpnas_status conv_fwd_any(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int cin, int cout, int k, int stride, const float *x,
                                 const float *wt, const float *scale, const float *shift,
                                 int act, float *y, double *mean, double *m2) {
  if (k == 1 && stride == 1)
    return mean ? mpnas__pw_fwd_stats(eng, ws, n * h * w, cin, cout, x, wt, y, mean, m2)
                : mpnas__pw_fwd(eng, ws, n * h * w, cin, cout, x, wt, scale, shift, act, NULL, y);
  if (cout <= 0) return MPNAS_OK;
  conv_geom g = conv_geom_make(h, w, cin, k, stride);
  int m = n * g.ho * g.wo;
  if (m <= 0) {
    if (mean) stats_empty(cout, mean, m2);
    return MPNAS_OK;
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__bn_plan plan;
  int parts = gemm_parts(eng, m, g.kkc, cout);
  float *packed = pack_weights(eng, ws, g.kkc, cout, wt);
  float *scratch = packed ? mpnas__arena_floats(ws, (size_t)parts * CONV_COL_ROWS * g.kkc) : NULL;
  if (scratch == NULL || (mean && mpnas__bn_plan_init(&plan, ws, m, 1, cout) != MPNAS_OK)) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  conv_col_args a = {{eng->k, g.kkc, cout, NULL, packed, scale, shift, act, NULL, y}, &g, x,
                     scratch};
  if (mean) {
    run_rows_stats(eng, &plan, parts, MPNAS__ROW_GRANULE, conv_col_part, &a, y);
    mpnas__bn_plan_merge(&plan, mean, m2);
  } else {
    run_rows(parts, m, MPNAS__ROW_GRANULE, conv_col_part, &a);
  }
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

mpnas_status mpnas__conv_fwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                             int cin, int cout, int k, int stride, const float *x,
                             const float *wt, const float *scale, const float *shift,
                             int act, float *y) {
  return conv_fwd_any(eng, ws, n, h, w, cin, cout, k, stride, x, wt, scale, shift, act, y, NULL,
                      NULL);
}

mpnas_status mpnas__conv_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                   int w, int cin, int cout, int k, int stride, const float *x,
                                   const float *wt, float *y, double *mean, double *m2) {
  return conv_fwd_any(eng, ws, n, h, w, cin, cout, k, stride, x, wt, NULL, NULL,
                      MPNAS__ACT_NONE, y, mean, m2);
}

mpnas_status mpnas__conv_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                             int cin, int cout, int k, int stride, const float *x,
                             const float *wt, const float *dy, float *dx, float *dwt) {
  if (k == 1 && stride == 1)
    return mpnas__pw_bwd(eng, ws, n * h * w, cin, cout, x, wt, dy, dx, dwt);
  if (n <= 0 || (dx == NULL && dwt == NULL)) return MPNAS_OK;
  conv_geom g = conv_geom_make(h, w, cin, k, stride);
  int nb = conv_chunk_images(&g, n);
  size_t in_image = (size_t)h * w * cin, out_rows = (size_t)g.ho * g.wo;
  size_t col_floats = (size_t)nb * out_rows * g.kkc;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *packed_t = NULL, *col = NULL, *dcol = NULL;
  int ok = 1;
  if (dx != NULL) {
    packed_t = pack_weights_transposed(eng, ws, g.kkc, cout, wt);
    dcol = packed_t != NULL ? mpnas__arena_floats(ws, col_floats) : NULL;
    ok = dcol != NULL;
  }
  if (ok && dwt != NULL) {
    col = mpnas__arena_floats(ws, col_floats);
    ok = col != NULL;
  }
  if (!ok) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  for (int i0 = 0; i0 < n; i0 += nb) {
    int count = n - i0 < nb ? n - i0 : nb;
    int rows = (int)(count * out_rows);
    const float *dyc = dy + (size_t)i0 * out_rows * cout;
    if (dwt != NULL) {
      im2col(eng, &g, count, x + (size_t)i0 * in_image, col);
      mpnas_status st = gemm_weight_grad(eng, ws, rows, g.kkc, cout, col, NULL, dyc, dwt);
      if (st != MPNAS_OK) {
        mpnas__arena_release(ws, mark);
        return st;
      }
    }
    if (dx != NULL) {
      gemm_rows(eng, rows, cout, g.kkc, dyc, packed_t, NULL, NULL, MPNAS__ACT_NONE, NULL, dcol);
      col2im(eng, &g, count, dcol, dx + (size_t)i0 * in_image);
    }
  }
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

/* ---- Depthwise ---------------------------------------------------------------------------- */

/* Arguments of a depthwise forward of n images for dw_part. */
typedef struct dw_args {
  mpnas__dw_fwd_fn fwd;
  const mpnas__dw_shape *s;
  int n;
  const float *x, *wt, *scale, *shift;
  int act;
  float *y;
} dw_args;

/* Output rows [r0, r1) of the n*ho rows, one kernel call per image they touch. Rows
 * rather than images are split so that a part may cover the end of one image and the
 * start of the next: small batches of large images still spread over the threads. */
static void dw_part(const void *arg, int slot, int r0, int r1) {
  (void)slot;
  const dw_args *a = arg;
  const mpnas__dw_shape *s = a->s;
  size_t in_image = (size_t)s->h * s->w * s->c, out_image = (size_t)s->ho * s->wo * s->c;
  for (int i = r0 / s->ho; i < a->n && i * s->ho < r1; i++) {
    int oh0 = r0 - i * s->ho, oh1 = r1 - i * s->ho;
    if (oh0 < 0) oh0 = 0;
    if (oh1 > s->ho) oh1 = s->ho;
    a->fwd(s, a->x + i * in_image, a->wt, a->scale, a->shift, a->act, a->y + i * out_image,
           oh0, oh1);
  }
}

/* Threads for a depthwise forward of `rows` = n*ho output rows (one formula for the
 * plain and the statistics forward). */
static int dw_parts(const mpnas__engine *eng, const mpnas__dw_shape *s, int rows) {
  return mpnas__team_size(eng, (double)rows * s->wo * s->c * s->k * s->k, rows);
}

mpnas_status mpnas__dw_fwd(const mpnas__engine *eng, int n, int h, int w, int c, int k,
                           int stride, const float *x, const float *wt, const float *scale,
                           const float *shift, int act, float *y) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  int rows = n * s.ho;
  if (rows <= 0 || c <= 0) return MPNAS_OK;
  dw_args a = {eng->k->dw_fwd, &s, n, x, wt, scale, shift, act, y};
  run_rows(dw_parts(eng, &s, rows), rows, 1, dw_part, &a);
  return MPNAS_OK;
}

/* The depthwise weight gradient sums over fixed chunks of images, each chunk's sums into
 * its own partial (the first chunk's straight into dwt), then adds the partials to dwt in
 * chunk order. The chunks depend on n alone, so the bits do not depend on the thread
 * count, and a thread takes whole images: contiguous rows, all channels, no cache line
 * shared with another thread, and each image's dy still in cache for its input gradient. */
#define DW_IMAGE_CHUNKS 16
/* The output gradient of a group of images whose weight gradient is summed in one call
 * before their input gradients (dw_bwd_thread): half of a 1 MiB L2. */
#define DW_DY_GROUP_BYTES (512 * 1024)

typedef struct dw_bwd_args {
  const mpnas__kernels *kt;
  const mpnas__dw_shape *s;
  int n, chunks; /* chunks: min(n, DW_IMAGE_CHUNKS) */
  const float *x, *wt, *dy;
  const mpnas__bn_act *in;   /* or NULL */
  const mpnas__bn_dy *dy_bn; /* or NULL; else dy is g, made into dy here image by image */
  float *g;                  /* with dy_bn: g, then dy */
  float *dx, *dwt;           /* dx: NULL unless made here, image by image */
  float *partials;           /* [chunks - 1][k][k][c], zeroed */
  float *scratch;            /* [threads][h][w][c] when in */
} dw_bwd_args;

/* Image i's share of the backward, summing its weight gradient into sums: with dy_bn,
 * its dy made over its g into dy_out (an image; g's own when in place), while in cache
 * for the sums; with in, its input normalised into buf (an image); then the sums and,
 * with dx, the input gradient while dy is in cache. */
static void dw_bwd_image(const dw_bwd_args *a, float *buf, float *dy_out, int i, float *sums) {
  const mpnas__dw_shape *s = a->s;
  const size_t in_image = (size_t)s->h * s->w * s->c;
  const size_t out_image = (size_t)s->ho * s->wo * s->c;
  const float *xi = a->x + i * in_image, *dyi = a->dy + i * out_image;
  if (a->dy_bn != NULL) {
    const mpnas__bn_dy *q = a->dy_bn;
    const int c = s->c;
    a->kt->bn_bwd_dx(s->ho * s->wo, c, (size_t)c, q->x + i * out_image, a->g + i * out_image,
                     q->mu, q->coef, q->coef + c, q->coef + 2 * (size_t)c, dy_out);
    dyi = dy_out;
  }
  if (a->in != NULL) {
    a->kt->bn_apply(s->h * s->w, s->c, (size_t)s->c, xi, a->in->mu, a->in->k, a->in->b,
                    a->in->act, NULL, buf);
    xi = buf;
  }
  a->kt->dw_bwd_weight(s, 1, xi, dyi, sums, 0, s->c);
  if (a->dx != NULL) a->kt->dw_bwd_input(s, dyi, a->wt, a->dx + i * in_image, 0, s->h);
}

/* Thread t of `parts`: the chunks whose first image lies in its share of the images
 * (shares of images, not of chunks, as chunk sizes differ by one). Per image: the input
 * normalised into the thread's image buffer (in), the weight gradient's sums, then the
 * input gradient while dy is in cache; with x and dy as they are, the same per group of
 * images. */
static void dw_bwd_thread(const dw_bwd_args *a, int t, int parts) {
  const mpnas__dw_shape *s = a->s;
  const size_t pixels = (size_t)s->h * s->w, in_image = pixels * s->c;
  const size_t out_image = (size_t)s->ho * s->wo * s->c, taps = (size_t)s->k * s->k * s->c;
  int first, last;
  mpnas__split_range(a->n, parts, t, 1, &first, &last);
  for (int j = 0; j < a->chunks; j++) {
    int i0, i1;
    mpnas__split_range(a->n, a->chunks, j, 1, &i0, &i1);
    if (i0 < first || i0 >= last) continue;
    float *sums = j == 0 ? a->dwt : a->partials + (size_t)(j - 1) * taps;
    if (a->in == NULL && a->dy_bn == NULL && a->kt->weight_grad_in_blocks) {
      /* x and dy both from memory: several images' sums in one call, the bits of one
       * image at a time (kernels.h), with the kernel prefetching each next image (a call
       * per image started each one cold: 1.3-2x slower); with the input gradient, groups
       * whose dy stays in L2 for it */
      int group = i1 - i0;
      if (a->dx != NULL) {
        group = (int)(DW_DY_GROUP_BYTES / (sizeof(float) * (out_image ? out_image : 1)));
        group = group < 1 ? 1 : group;
      }
      for (int i = i0; i < i1; i += group) {
        const int g = i1 - i < group ? i1 - i : group;
        a->kt->dw_bwd_weight(s, g, a->x + i * in_image, a->dy + i * out_image, sums, 0, s->c);
        for (int q = i; a->dx != NULL && q < i + g; q++)
          a->kt->dw_bwd_input(s, a->dy + q * out_image, a->wt, a->dx + q * in_image, 0, s->h);
      }
      continue;
    }
    float *buf = a->scratch != NULL ? a->scratch + (size_t)t * in_image : NULL;
    for (int i = i0; i < i1; i++)
      dw_bwd_image(a, buf, a->dy_bn != NULL ? a->g + i * out_image : NULL, i, sums);
  }
}

/* The input gradient alone: the n*h input rows are independent (gather form), split like
 * the forward's rows. */
static void dw_bwd_input_rows(const mpnas__engine *eng, const mpnas__dw_shape *s, int n,
                              const float *wt, const float *dy, float *dx) {
  int rows = n * s->h;
  size_t in_image = (size_t)s->h * s->w * s->c, out_image = (size_t)s->ho * s->wo * s->c;
  int parts = mpnas__team_size(eng, (double)n * s->ho * s->wo * s->c * s->k * s->k, rows);
  mpnas__dw_bwd_input_fn bwd_in = eng->k->dw_bwd_input;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
  for (int t = 0; t < parts; t++) {
    int r0, r1;
    mpnas__split_range(rows, parts, t, 1, &r0, &r1);
    for (int i = r0 / s->h; i < n && i * s->h < r1; i++) {
      int ih0 = r0 - i * s->h, ih1 = r1 - i * s->h;
      if (ih0 < 0) ih0 = 0;
      if (ih1 > s->h) ih1 = s->h;
      bwd_in(s, dy + i * out_image, wt, dx + i * in_image, ih0, ih1);
    }
  }
}

/* mpnas__dw_bwd_bn_in, and with dy_bn (mpnas__dw_bwd_bn_dy) its dy made over g. */
static mpnas_status dw_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                           int c, int k, int stride, const float *x, const mpnas__bn_act *in,
                           const float *wt, const float *dy, const mpnas__bn_dy *dy_bn,
                           float *g, float *dx, float *dwt) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  if (n <= 0 || c <= 0) return MPNAS_OK;
  if (dwt == NULL) {
    if (dy_bn != NULL)
      mpnas__bn_bwd_apply_coef(eng, n * s.ho * s.wo, c, dy_bn->x, g, dy_bn->mu, dy_bn->coef, g);
    if (dx != NULL) dw_bwd_input_rows(eng, &s, n, wt, dy, dx);
    return MPNAS_OK;
  }
  const size_t taps = (size_t)k * k * c, in_image = (size_t)h * w * c;
  const int chunks = n < DW_IMAGE_CHUNKS ? n : DW_IMAGE_CHUNKS;
  const int parts = mpnas__team_size(eng, (double)n * s.ho * s.wo * c * k * k, chunks);
  /* With fewer than two images a thread, the input gradient by rows balances better. */
  const int dx_here = dx != NULL && n >= 2 * parts;
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int ok = 1;
  float *partials = zeroed_partials(ws, chunks - 1, taps, &ok);
  float *scratch = in == NULL ? NULL : mpnas__arena_floats(ws, (size_t)parts * in_image);
  if (!ok || (in != NULL && scratch == NULL)) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  dw_bwd_args a = {eng->k, &s, n, chunks, x, wt, dy, in, dy_bn, g, dx_here ? dx : NULL,
                   dwt, partials, scratch};
#if defined(_OPENMP)
#pragma omp parallel for num_threads(parts) schedule(static, 1) if (parts > 1)
#endif
  for (int t = 0; t < parts; t++) dw_bwd_thread(&a, t, parts);
  if (chunks > 1) add_partials(dwt, partials, chunks - 1, taps);
  mpnas__arena_release(ws, mark);
  if (dx != NULL && !dx_here) dw_bwd_input_rows(eng, &s, n, wt, dy, dx);
  return MPNAS_OK;
}

mpnas_status mpnas__dw_bwd_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const mpnas__bn_act *in, const float *wt, const float *dy,
                                 float *dx, float *dwt) {
  return dw_bwd(eng, ws, n, h, w, c, k, stride, x, in, wt, dy, NULL, NULL, dx, dwt);
}

mpnas_status mpnas__dw_bwd_bn_dy(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const mpnas__bn_act *in, const float *wt, float *g,
                                 const mpnas__bn_dy *dy_bn, float *dx, float *dwt) {
  return dw_bwd(eng, ws, n, h, w, c, k, stride, x, in, wt, g, dy_bn, g, dx, dwt);
}

mpnas_status mpnas__dw_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h, int w,
                           int c, int k, int stride, const float *x, const float *wt,
                           const float *dy, float *dx, float *dwt) {
  return mpnas__dw_bwd_bn_in(eng, ws, n, h, w, c, k, stride, x, NULL, wt, dy, dx, dwt);
}

/* Pixels [r0, r1) of the depthwise input gradient for mpnas__dw_dx_bn_bwd: whole image
 * rows straight into dx; a row that r0 or r1 cuts (only when w does not divide the BN's
 * block) whole into the slot's image buffer, and its part copied out. */
typedef struct dw_dx_args {
  const mpnas__dw_shape *s;
  mpnas__dw_bwd_input_fn bwd_in;
  const float *dy, *wt;
  float *dx, *scratch; /* scratch: [slots][h][w][c], or NULL when no row is cut */
} dw_dx_args;

static void dw_dx_rows(const void *arg, int slot, int r0, int r1) {
  const dw_dx_args *a = arg;
  const mpnas__dw_shape *s = a->s;
  const int w = s->w, h = s->h;
  const size_t c = (size_t)s->c, in_image = (size_t)h * w * c;
  const size_t out_image = (size_t)s->ho * s->wo * c;
  for (int p = r0; p < r1;) {
    int row = p / w, i = row / h, iy = row - i * h, px = p - row * w;
    const float *dyi = a->dy + i * out_image;
    if (px == 0 && r1 - p >= w) { /* whole rows, up to r1's row or the image's end */
      int rows = (r1 - p) / w < h - iy ? (r1 - p) / w : h - iy;
      a->bwd_in(s, dyi, a->wt, a->dx + i * in_image, iy, iy + rows);
      p += rows * w;
    } else {
      int end = (row + 1) * w < r1 ? (row + 1) * w : r1;
      float *buf = a->scratch + (size_t)slot * in_image;
      a->bwd_in(s, dyi, a->wt, buf, iy, iy + 1);
      memcpy(a->dx + (size_t)p * c, buf + ((size_t)iy * w + px) * c,
             sizeof(float) * (size_t)(end - p) * c);
      p = end;
    }
  }
}

mpnas_status mpnas__dw_dx_bn_bwd(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *wt,
                                 const float *dz, const float *x, const float *gamma,
                                 const float *save_mean, const float *save_invstd,
                                 const mpnas__bn_act *act, float *coef, float *dx,
                                 float *dgamma, float *dbeta) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  int m = n > 0 && h > 0 && w > 0 ? n * h * w : 0;
  if (c <= 0) return MPNAS_OK;
  int threads = mpnas__team_size(eng, (double)n * s.ho * s.wo * c * k * k, n * h);
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  float *scratch = NULL;
  if (m > 0 && MPNAS__BN_BLOCK_ROWS % w != 0 &&
      (scratch = mpnas__arena_floats(ws, (size_t)threads * h * w * c)) == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  dw_dx_args a = {&s, eng->k->dw_bwd_input, dz, wt, dx, scratch};
  mpnas_status st = mpnas__bn_bwd_produced(eng, ws, m, c, x, gamma, save_mean, save_invstd,
                                           act, dw_dx_rows, &a, threads, coef, dx, dgamma,
                                           dbeta);
  mpnas__arena_release(ws, mark);
  return st;
}

/* mpnas__dw_bwd_expand in one pass: the producer of the expand BN's dy (the depthwise
 * input gradient) for mpnas__bn_bwd_produced, which makes an image whole at its first
 * row - dw_bwd_image with dy made into the slot's buffer - so that its dy is read from
 * cache by the input gradient, and its x and dx by the BN's sums. */
typedef struct dw_expand_args {
  dw_bwd_args d;
  int *made; /* [slots]: the image a slot made last, or -1 */
} dw_expand_args;

static void dw_expand_rows(const void *arg, int slot, int r0, int r1) {
  const dw_expand_args *a = arg;
  const mpnas__dw_shape *s = a->d.s;
  const int hw = s->h * s->w;
  const size_t in_image = (size_t)hw * s->c, out_image = (size_t)s->ho * s->wo * s->c;
  const size_t taps = (size_t)s->k * s->k * s->c;
  float *buf = a->d.scratch + (size_t)slot * (in_image + out_image);
  for (int i = r0 / hw; i * hw < r1; i++) {
    if (a->made[slot] == i) continue;
    a->made[slot] = i;
    int j = 0, i0, i1; /* the weight gradient's chunk of image i */
    for (;; j++) {
      mpnas__split_range(a->d.n, a->d.chunks, j, 1, &i0, &i1);
      if (i < i1) break;
    }
    float *sums = j == 0 ? a->d.dwt : a->d.partials + (size_t)(j - 1) * taps;
    dw_bwd_image(&a->d, buf, buf + in_image, i, sums);
  }
}

mpnas_status mpnas__dw_bwd_expand(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                  int w, int c, int k, int stride, const float *x,
                                  const mpnas__bn_act *in, const float *wt, float *g,
                                  const mpnas__bn_dy *dy_bn, const float *gamma,
                                  const float *save_invstd, float *coef, float *dx,
                                  float *dwt, float *dgamma, float *dbeta) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  const int chunks = n < DW_IMAGE_CHUNKS ? n : DW_IMAGE_CHUNKS;
  if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || dwt == NULL ||
      !chunks_nest_in_reduce(n, chunks, 1, h * w)) {
    mpnas_status st = mpnas__dw_bwd_bn_dy(eng, ws, n, h, w, c, k, stride, x, in, wt, g, dy_bn,
                                          NULL, dwt);
    if (st != MPNAS_OK) return st;
    return mpnas__dw_dx_bn_bwd(eng, ws, n, h, w, c, k, stride, wt, g, x, gamma, in->mu,
                               save_invstd, in, coef, dx, dgamma, dbeta);
  }
  const size_t taps = (size_t)k * k * c;
  const size_t slot_floats = (size_t)h * w * c + (size_t)s.ho * s.wo * c;
  const int threads = mpnas__team_size(eng, (double)n * s.ho * s.wo * c * k * k,
                                       mpnas__reduce_chunks(n * h * w));
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  int ok = 1;
  float *partials = zeroed_partials(ws, chunks - 1, taps, &ok);
  float *scratch = mpnas__arena_floats(ws, (size_t)threads * slot_floats);
  int *made = mpnas__arena_alloc(ws, sizeof(int) * (size_t)threads);
  if (!ok || scratch == NULL || made == NULL) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  for (int t = 0; t < threads; t++) made[t] = -1;
  dw_expand_args a = {{eng->k, &s, n, chunks, x, wt, g, in, dy_bn, g, dx, dwt, partials,
                       scratch},
                      made};
  mpnas_status st = mpnas__bn_bwd_produced(eng, ws, n * h * w, c, x, gamma, in->mu,
                                           save_invstd, in, dw_expand_rows, &a, threads, coef,
                                           dx, dgamma, dbeta);
  if (chunks > 1) add_partials(dwt, partials, chunks - 1, taps);
  mpnas__arena_release(ws, mark);
  return st;
}

/* Arguments of dw_bn_part: dw_args whose x is the un-normalised input, or (packed set)
 * the input of the expand conv that makes it. */
typedef struct dw_bn_args {
  dw_args d;
  const mpnas__kernels *kt;
  const mpnas__bn_act *in;
  const float *ex, *packed; /* the expand's input [n][h][w][cin] and packed weights, or NULL */
  int cin;
  int block_rows; /* output rows per step: those of a statistics block */
  float *scratch; /* [parts][h][w][c]: a slot's image, only the rows in use written */
  int *made;      /* [parts][3]: the image and input rows [lo, hi) in the slot's buffer */
} dw_bn_args;

/* Input rows [ih0, ih1) of image i into the slot's buffer at their own place, normalised:
 * from x (the conv output) or made by the expand conv from its input. Rows the slot made
 * for the step before (the k - stride rows that steps share) are not made again: they
 * are the same numbers. */
static void dw_bn_input_rows(const dw_bn_args *a, int slot, int i, int ih0, int ih1) {
  const mpnas__dw_shape *s = a->d.s;
  const size_t row = (size_t)s->w * s->c, in_image = (size_t)s->h * row;
  float *buf = a->scratch + (size_t)slot * in_image;
  int *made = a->made + 3 * slot;
  if (made[0] == i && made[1] <= ih0 && ih0 <= made[2]) {
    int from = made[2];
    made[2] = ih1 > made[2] ? ih1 : made[2];
    ih0 = from;
  } else {
    made[0] = i, made[1] = ih0, made[2] = ih1;
  }
  if (ih1 <= ih0) return;
  const int px = (ih1 - ih0) * s->w;
  float *dst = buf + ih0 * row;
  const float *src = dst;
  if (a->packed != NULL)
    a->kt->gemm(px, a->cin, s->c, a->ex + ((size_t)i * s->h + ih0) * s->w * a->cin, a->packed,
                NULL, NULL, MPNAS__ACT_NONE, NULL, dst);
  else
    src = a->d.x + i * in_image + ih0 * row;
  a->kt->bn_apply(px, s->c, (size_t)s->c, src, a->in->mu, a->in->k, a->in->b, a->in->act, NULL,
                  dst);
}

/* Output rows [r0, r1) of the n*ho rows, block_rows at a time: the input rows those read
 * normalised into the slot's image buffer (dw_bn_input_rows), then the kernel on that
 * image. The kernel reads only the rows its output rows cover and pads outside the image
 * with zeros, as it would pad the normalised tensor. */
static void dw_bn_part(const void *arg, int slot, int r0, int r1) {
  const dw_bn_args *a = arg;
  const mpnas__dw_shape *s = a->d.s;
  size_t in_image = (size_t)s->h * s->w * s->c;
  size_t out_image = (size_t)s->ho * s->wo * s->c;
  float *buf = a->scratch + (size_t)slot * in_image;
  for (int b0 = r0; b0 < r1;) {
    int i = b0 / s->ho, oh0 = b0 - i * s->ho;
    int oh1 = oh0 + a->block_rows;
    if (oh1 > s->ho) oh1 = s->ho;
    if (oh1 > r1 - i * s->ho) oh1 = r1 - i * s->ho;
    int ih0 = oh0 * s->stride - s->pad, ih1 = (oh1 - 1) * s->stride - s->pad + s->k;
    if (ih0 < 0) ih0 = 0;
    if (ih1 > s->h) ih1 = s->h;
    dw_bn_input_rows(a, slot, i, ih0, ih1);
    a->d.fwd(s, buf, a->d.wt, NULL, NULL, MPNAS__ACT_NONE, a->d.y + i * out_image, oh0, oh1);
    b0 = i * s->ho + oh1;
  }
}

/* mpnas__dw_fwd_stats_bn_in and mpnas__expand_dw_fwd_stats: the depthwise's input is x,
 * or (packed) made from ex by the expand conv, a few rows at a time. */
static mpnas_status dw_fwd_stats_from(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                      int h, int w, int c, int k, int stride, const float *x,
                                      const float *ex, int cin, const float *exp_w,
                                      const mpnas__bn_act *in, const float *wt, float *y,
                                      double *mean, double *m2) {
  mpnas__dw_shape s;
  mpnas__dw_shape_init(&s, h, w, c, k, stride);
  int rows = n * s.ho;
  if (c <= 0) return MPNAS_OK;
  if (rows <= 0 || s.wo <= 0) {
    stats_empty(c, mean, m2);
    return MPNAS_OK;
  }
  mpnas__arena_mark mark = mpnas__arena_get_mark(ws);
  mpnas__bn_plan plan;
  int parts = dw_parts(eng, &s, rows);
  float *scratch = NULL, *packed = NULL;
  int *made = NULL;
  if (mpnas__bn_plan_init(&plan, ws, rows, s.wo, c) != MPNAS_OK ||
      (in != NULL && ((scratch = mpnas__arena_floats(ws, (size_t)parts * h * w * c)) == NULL ||
                      (made = mpnas__arena_alloc(ws, sizeof(int) * 3 * (size_t)parts)) == NULL)) ||
      (ex != NULL && (packed = pack_weights(eng, ws, cin, c, exp_w)) == NULL)) {
    mpnas__arena_release(ws, mark);
    return MPNAS_E_NO_MEMORY;
  }
  for (int q = 0; made != NULL && q < parts; q++) made[3 * q] = -1;
  dw_bn_args a = {{eng->k->dw_fwd, &s, n, x, wt, NULL, NULL, MPNAS__ACT_NONE, y}, eng->k, in,
                  ex, packed, cin, plan.per_block, scratch, made};
  if (in != NULL) run_rows_stats(eng, &plan, parts, 1, dw_bn_part, &a, y);
  else run_rows_stats(eng, &plan, parts, 1, dw_part, &a.d, y);
  mpnas__bn_plan_merge(&plan, mean, m2);
  mpnas__arena_release(ws, mark);
  return MPNAS_OK;
}

mpnas_status mpnas__dw_fwd_stats_bn_in(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                       int h, int w, int c, int k, int stride, const float *x,
                                       const mpnas__bn_act *in, const float *wt, float *y,
                                       double *mean, double *m2) {
  return dw_fwd_stats_from(eng, ws, n, h, w, c, k, stride, x, NULL, 0, NULL, in, wt, y, mean,
                           m2);
}

mpnas_status mpnas__expand_dw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n,
                                        int h, int w, int cin, int c, int k, int stride,
                                        const float *x, const float *exp_w,
                                        const mpnas__bn_act *in, const float *wt, float *y,
                                        double *mean, double *m2) {
  return dw_fwd_stats_from(eng, ws, n, h, w, c, k, stride, NULL, x, cin, exp_w, in, wt, y, mean,
                           m2);
}

mpnas_status mpnas__dw_fwd_stats(const mpnas__engine *eng, mpnas__arena *ws, int n, int h,
                                 int w, int c, int k, int stride, const float *x,
                                 const float *wt, float *y, double *mean, double *m2) {
  return mpnas__dw_fwd_stats_bn_in(eng, ws, n, h, w, c, k, stride, x, NULL, wt, y, mean, m2);
}
