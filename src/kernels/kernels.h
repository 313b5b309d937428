/* kernels.h - the kernel interface: what every ISA (ref = scalar, avx2, neon) provides.
 *
 * All tensors are NHWC and contiguous (float32; int8 for inference, below). Kernels
 * never allocate, never fail and never start threads: the op layer (src/tensor/) checks
 * shapes, splits the work across threads and hands each call a slice. A kernel exists
 * once per ISA; the op layer calls it through the table chosen for the context
 * (dispatch.c).
 *
 * Conventions shared by all kernels:
 *  - SAME padding: output size ho = ceil(h / stride), pad_top = pad_left = k / 2
 *    (symmetric, PyTorch's padding = k/2). Only odd k.
 *  - Weight gradients ACCUMULATE (+=) into their buffer; input gradients OVERWRITE.
 *  - Fused epilogue: y = act(acc * scale[c] + shift[c]) (+ residual), where scale and
 *    shift may each be NULL (meaning 1 and 0) and residual may be NULL. The residual is
 *    added AFTER the activation (an inverted bottleneck's project conv has no
 *    activation, so this is "BN then add").
 */
#ifndef MPNAS_KERNELS_H
#define MPNAS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Activation functions (values shared with the public MPNAS_ACT_* enum). */
enum {
  MPNAS__ACT_NONE = 0,
  MPNAS__ACT_RELU = 1,
  MPNAS__ACT_RELU6 = 2,
  MPNAS__ACT_HSWISH = 3,   /* x * relu6(x + 3) / 6 */
  MPNAS__ACT_SIGMOID = 4,  /* 1 / (1 + exp(-x)) */
  MPNAS__ACT_HSIGMOID = 5, /* relu6(x + 3) / 6, the squeeze-excite gate */
  MPNAS__ACT_COUNT = 6
};

/* Apply activation `act` to one value (the reference definition every kernel matches). */
float mpnas__act_apply(int act, float x);
/* Its derivative at x (the pre-activation input). At kinks the derivative is taken
 * from the flat side: relu'(0) = 0, relu6'(0) = relu6'(6) = 0, hswish'(+-3) and
 * hsigmoid'(+-3) use the outer (constant) piece. */
float mpnas__act_grad(int act, float x);

/* Geometry of a depthwise convolution of ONE image. */
typedef struct mpnas__dw_shape {
  int h, w, c;   /* input height, width, channels */
  int k, stride; /* odd kernel size, stride 1 or 2 */
  int ho, wo;    /* output size = ceil(h / stride), ceil(w / stride) */
  int pad;       /* k / 2 on top and left */
} mpnas__dw_shape;

/* Fill ho, wo, pad from h, w, c, k, stride. */
void mpnas__dw_shape_init(mpnas__dw_shape *s, int h, int w, int c, int k, int stride);

/* Depthwise forward, one image, output rows [oh0, oh1).
 * x: [h][w][c], wt: [k][k][c], y: [ho][wo][c] (only the given rows are written). */
typedef void (*mpnas__dw_fwd_fn)(const mpnas__dw_shape *s, const float *x, const float *wt,
                                 const float *scale, const float *shift, int act, float *y,
                                 int oh0, int oh1);
/* Depthwise gradient w.r.t. the input, one image, input rows [ih0, ih1) overwritten:
 * dx[i][j][c] = sum over taps (ky,kx) and output pixels (oy,ox) with
 * oy*stride + ky - pad == i and ox*stride + kx - pad == j of dy[oy][ox][c]*wt[ky][kx][c]. */
typedef void (*mpnas__dw_bwd_input_fn)(const mpnas__dw_shape *s, const float *dy,
                                       const float *wt, float *dx, int ih0, int ih1);
/* Depthwise gradient w.r.t. the weights over n images, channels [c0, c1) only:
 * dwt[ky][kx][c] += sum over images and output pixels of x[tap pixel][c] * dy[..][c].
 * x: [n][h][w][c], dy: [n][ho][wo][c]. Channel ranges let threads split the work with
 * no reduction, so the result does not depend on the thread count. */
typedef void (*mpnas__dw_bwd_weight_fn)(const mpnas__dw_shape *s, int n, const float *x,
                                        const float *dy, float *dwt, int c0, int c1);

/* GEMM for pointwise (1x1) convolution: y[m][n] = x[m][k] . w[k][n] with the fused
 * epilogue. The weights are first packed into an ISA-specific layout (pack once per
 * weight update; a predictor packs a model's pointwise weights once, mpnas__model_pack). */
typedef size_t (*mpnas__gemm_packed_floats_fn)(int k, int n);
typedef void (*mpnas__gemm_pack_fn)(int k, int n, const float *w, float *packed);
/* rows: m of x and y (the op layer splits m across threads). residual: [m][n] or NULL. */
typedef void (*mpnas__gemm_fn)(int m, int k, int n, const float *x, const float *packed,
                               const float *scale, const float *shift, int act,
                               const float *residual, float *y);
/* Weight gradient: dw[k0:k1][n] += x[m][k0:k1]^T . dy[m][n] (rows k0..k1-1 of dw only,
 * x and dy with full row lengths k and n). Splitting k across threads needs no
 * reduction. */
typedef void (*mpnas__gemm_bwd_weight_fn)(int m, int k, int n, const float *x,
                                          const float *dy, float *dw, int k0, int k1);
/* Where a table's weight gradients add their partial sums (weight_grad_in_blocks): when
 * set, gemm_bwd_weight adds the sums of each block of MPNAS__GEMM_BWD_ROWS rows, counted
 * from the first row passed, to dw in turn, and dw_bwd_weight adds each image's sums to
 * dwt in turn (within an image, bands of rows). The op layer may then pass the rows a
 * block, or the images one, at a time with the same bits, each from a small buffer (the
 * BN-normalised input of mpnas__pw_bwd_bn_in, mpnas__dw_bwd_bn_in), or several images in
 * one call. The reference and NEON kernels sum longer runs at once (0): the op layer
 * then passes dw_bwd_weight one image at a time. */
#define MPNAS__GEMM_BWD_ROWS 64

/* ---- Batch norm and activations (src/kernels/misc/, reference in ref/misc-ref.c) ----
 * Memory-bound passes over m rows of c channels; row i of every [m][c] operand starts
 * ld floats after row i-1 (ld >= c), so the op layer can hand a kernel a slice of the
 * channels. Per-channel vectors (mu, k, b, a, d) hold c floats. ops_misc.c splits rows
 * across threads (see there) and merges the partial statistics in a fixed order.
 *
 * The split follows the passes over memory. Forward: bn_stats (the reduction), then
 * bn_apply, which stores the BN output and/or the activation's in the same pass (also
 * into small buffers, where the next conv applies a BN to the rows it reads).
 * Backward: act_bwd, then bn_bwd_reduce (the sums) and bn_bwd_dx (the elementwise input
 * gradient); bn_bwd_reduce_act does the first two in one pass, from the BN's input.
 * act_fwd / act_bwd also serve squeeze-excite. The per-channel arithmetic between passes (mean -> scale and
 * shift, sums -> gradient coefficients) is O(c) and stays in double in the op layer.
 *
 * Statistics are returned in double. The SIMD kernels accumulate in float over blocks of
 * at most MPNAS__BN_BLOCK_ROWS rows and add the block results in double, so rounding
 * error does not grow with m; the reference accumulates in double throughout. */
#define MPNAS__BN_BLOCK_ROWS 256

/* Mean and sum of squared deviations of each channel over m >= 1 rows:
 * mean[ch] = sum_i x[i][ch] / m, m2[ch] = sum_i (x[i][ch] - mean[ch])^2 (overwritten).
 * Numerically safe whatever |mean| / std: per block of rows, the block mean, then the
 * squared deviations from it (a second pass over the block, which is in cache), and
 * the blocks merged with Chan et al.'s pairwise update in double. That reads memory
 * once, like a one-pass sum of (x - K)^2 with a fixed shift K, without that method's
 * weak spot: its error grows with ((mean - K) / std)^2, and a K taken from the data
 * (say the first row) can sit many standard deviations from the mean. */
typedef void (*mpnas__bn_stats_fn)(int m, int c, size_t ld, const float *x, double *mean,
                                   double *m2);
/* BN output and activation in one pass: t = (x - mu[ch]) * k[ch] + b[ch];
 * norm[i][ch] = t (skipped when norm is NULL) and y[i][ch] = act(t). Either output may
 * be x itself (each element is read before it is written); norm != y unless act is
 * MPNAS__ACT_NONE. */
typedef void (*mpnas__bn_apply_fn)(int m, int c, size_t ld, const float *x, const float *mu,
                                   const float *k, const float *b, int act, float *norm,
                                   float *y);
/* The reductions of BN backward over m rows, in double, ADDED to s0, s1, s2 (the caller
 * zeroes them first): s0[ch] += sum (x - mu[ch]), s1[ch] += sum dy, s2[ch] += sum dy * (x -
 * mu[ch]). Each block's sum is added as it is taken (block by block in row order; the
 * reference row by row), so calls on consecutive runs of whole blocks add up to the bits
 * of one call over all of them: a caller may reduce rows in blocks as it produces them. */
typedef void (*mpnas__bn_bwd_reduce_fn)(int m, int c, size_t ld, const float *x,
                                        const float *dy, const float *mu, double *s0,
                                        double *s1, double *s2);
/* act_bwd folded into bn_bwd_reduce, one pass where the two would take three: t =
 * (x - mu[ch]) * k[ch] + b[ch] (bn_apply's t, from the forward's coefficients), g =
 * dy * act'(t), stored to g (g may be dy), and bn_bwd_reduce's sums with g for dy. Every
 * value has the bits of the same table's bn_apply, act_bwd (on t, or on act(t) where
 * act' reads off the output: ReLU, ReLU6) and bn_bwd_reduce in turn. */
typedef void (*mpnas__bn_bwd_reduce_act_fn)(int m, int c, size_t ld, const float *x,
                                            const float *dy, const float *mu, const float *k,
                                            const float *b, int act, float *g, double *s0,
                                            double *s1, double *s2);
/* BN input gradient: dx = a[ch] * dy + b[ch] * (x - mu[ch]) + d[ch]. dx may be dy. */
typedef void (*mpnas__bn_bwd_dx_fn)(int m, int c, size_t ld, const float *x, const float *dy,
                                    const float *mu, const float *a, const float *b,
                                    const float *d, float *dx);
/* y = act(x) over n values (y may be x); dx = dy * act'(x), x the pre-activation input
 * (dx may be dy). Values match mpnas__act_apply / mpnas__act_grad; the SIMD sigmoid
 * may use a vector exp accurate to ~1e-6 relative. */
typedef void (*mpnas__act_fwd_fn)(int act, size_t n, const float *x, float *y);
typedef void (*mpnas__act_bwd_fn)(int act, size_t n, const float *x, const float *dy,
                                  float *dx);

/* ---- int8 inference (reference in ref/q8-ref.c; SIMD kernels in src/kernels/q8/) ----
 * A quantised activation tensor is int8 NHWC with one affine for the whole tensor:
 * real = scale * (q - zero), zero in [-128, 127]. Weights are int8, symmetric per
 * output channel (real = w_scale[c] * q, q in [-127, 127]). Products are summed
 * exactly in int32 (k * 255 * 127 < 2^31 for every k this library uses). The epilogue
 * requantises in float, in one of two forms chosen by act:
 *   acc[c] = sum over the row / window of (x - x_zero) * w[..][c]      (exact, int32)
 * - act NONE, RELU or RELU6: the folded form. mult and bias are already in units of the
 *   output (the output scale and zero point folded in by the caller) and the activation
 *   is the clamp [qmin, qmax] (its bounds in the output's integers):
 *   v      = fma((float)acc[c], mult[c], bias[c])             (bias NULL: 0)
 *   v      = fma(res_scale, (float)(residual - res_zero), v)  (residual NULL: nothing)
 * - act HSWISH: the real form (hard-swish does not commute with the output affine):
 *   t      = hswish(fma((float)acc[c], mult[c], bias[c]))
 *   t      = fma(res_scale, (float)(residual - res_zero), t)
 *   v      = fma(t, out_inv_scale, (float)out_zero)
 * then in both: y = (int8) round-half-to-even(clamp(v, qmin, qmax)), NaN -> qmin, where
 * -128 <= qmin <= qmax <= 127; fma is fused (one rounding, C's fmaf). The folded form
 * is a convert, one fma, the clamp and the rounding convert per output where the former
 * contract (real form for every act, unfused) took 9 float operations with ReLU6: at
 * MobileNet's small k the epilogue is most of the kernels' time. Out-of-image taps of a
 * depthwise window contribute nothing (real zero padding, i.e. x == x_zero). The SIMD
 * kernels (q8/q8-avx2.c, q8/q8-vnni-avx2.c, q8/q8-vnni-avx512.c, q8/q8-neon.c,
 * q8/q8-dotprod-neon.c) are bit-identical to the reference: they do its float
 * operations in its order, fusing exactly its fmas, and tests/test_q8_kernels.c allows
 * no difference. */
typedef struct mpnas__q8_epilogue {
  const float *mult;      /* [channels] */
  const float *bias;      /* [channels] or NULL */
  int act;                /* MPNAS__ACT_HSWISH: the real form; anything else: folded */
  float out_inv_scale;    /* 1 / the output's scale (the real form only) */
  int32_t out_zero;       /* (the real form only) */
  int32_t qmin, qmax;     /* the final clamp */
  const int8_t *residual; /* laid out as y (rows of n), or NULL */
  float res_scale;
  int32_t res_zero;
} mpnas__q8_epilogue;

/* Pointwise GEMM: y[m][n] = epilogue(sum_k (x[m][k] - x_zero) * w[k][n]). The weights
 * w [k][n] are packed once into an ISA-specific layout of q8_gemm_packed_bytes(k, n)
 * bytes (64-byte aligned, supplied by the caller) that also holds what the kernel needs
 * to take x_zero off (the column sums). */
typedef size_t (*mpnas__q8_gemm_packed_bytes_fn)(int k, int n);
typedef void (*mpnas__q8_gemm_pack_fn)(int k, int n, const int8_t *w, void *packed);
typedef void (*mpnas__q8_gemm_fn)(int m, int k, int n, const int8_t *x, int32_t x_zero,
                                  const void *packed, const mpnas__q8_epilogue *e,
                                  int8_t *y);
/* Depthwise forward, one image, output rows [oh0, oh1): x [h][w][c], wt [k][k][c],
 * y [ho][wo][c]; e->residual must be NULL. */
typedef void (*mpnas__q8_dw_fwd_fn)(const mpnas__dw_shape *s, const int8_t *x,
                                    int32_t x_zero, const int8_t *wt,
                                    const mpnas__q8_epilogue *e, int8_t *y, int oh0,
                                    int oh1);

/* One ISA's kernel table. */
typedef struct mpnas__kernels {
  const char *name; /* "scalar", "avx2", "avx2+vnni", "avx512", "avx512+vnni", "neon",
                       "neon+dotprod" */
  int isa;          /* MPNAS_ISA_* */
  mpnas__dw_fwd_fn dw_fwd;
  mpnas__dw_bwd_input_fn dw_bwd_input;
  mpnas__dw_bwd_weight_fn dw_bwd_weight;
  mpnas__gemm_packed_floats_fn gemm_packed_floats;
  mpnas__gemm_pack_fn gemm_pack;
  mpnas__gemm_fn gemm;
  mpnas__gemm_bwd_weight_fn gemm_bwd_weight;
  int weight_grad_in_blocks; /* see MPNAS__GEMM_BWD_ROWS */
  mpnas__bn_stats_fn bn_stats;
  mpnas__bn_apply_fn bn_apply;
  mpnas__bn_bwd_reduce_fn bn_bwd_reduce;
  mpnas__bn_bwd_reduce_act_fn bn_bwd_reduce_act;
  mpnas__bn_bwd_dx_fn bn_bwd_dx;
  mpnas__act_fwd_fn act_fwd;
  mpnas__act_bwd_fn act_bwd;
  mpnas__q8_gemm_packed_bytes_fn q8_gemm_packed_bytes;
  mpnas__q8_gemm_pack_fn q8_gemm_pack;
  mpnas__q8_gemm_fn q8_gemm;
  mpnas__q8_dw_fwd_fn q8_dw_fwd;
} mpnas__kernels;

/* The data-parallel workers a pass is split over: sum_f64 adds n doubles in place over
 * all of them and returns 0 or a failing status (the context's message already set). */
typedef struct mpnas__workers {
  int32_t (*sum_f64)(void *user, double *buf, int64_t n);
  void *user;
} mpnas__workers;

/* What the ops of a pass run on: the kernels, the thread count, and the workers. */
typedef struct mpnas__engine {
  const mpnas__kernels *k;
  int threads; /* >= 1; 1 when built without OpenMP */
  /* Non-NULL while every worker runs the same pass on its share of the rows: training-mode
   * BN then takes its batch statistics (and their gradients) over all workers' rows
   * (tensor/ops_misc.c). NULL: this process's rows are the whole batch. */
  const mpnas__workers *workers;
  /* With workers: this pass's index among them. Threads that share one model (the
   * batch shards of net/multidomain.c) leave the BN running statistics to shard 0. */
  int shard;
} mpnas__engine;

extern const mpnas__kernels mpnas__kernels_scalar;
#if defined(MPNAS_HAVE_AVX2)
extern const mpnas__kernels mpnas__kernels_avx2;
extern const mpnas__kernels mpnas__kernels_avx2_vnni; /* + AVX-VNNI int8 GEMM */
/* The same two with the AVX-512 float GEMM (gemm/gemm-avx512.c, bit-identical results) */
extern const mpnas__kernels mpnas__kernels_avx512;
extern const mpnas__kernels mpnas__kernels_avx512_vnni;
#endif
#if defined(MPNAS_HAVE_NEON)
extern const mpnas__kernels mpnas__kernels_neon;
extern const mpnas__kernels mpnas__kernels_neon_dotprod; /* + SDOT int8 kernels */
#endif

/* 1 if this build and CPU can run isa (MPNAS_ISA_SCALAR / _AVX2 / _NEON). */
int mpnas__isa_available(int isa);
/* The table for an available isa (MPNAS_ISA_AUTO picks the fastest), or NULL. */
const mpnas__kernels *mpnas__kernels_for(int isa);
/* The table called `name` (kernels.name above) if
 * this build and CPU can run it, else NULL. mpnas__kernels_for(isa) gives an ISA's best
 * variant; this lets tests and benchmarks force each one. */
const mpnas__kernels *mpnas__kernels_named(const char *name);

#endif
