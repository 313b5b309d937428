/*
 * mpnas.h - the one public header of libmpnas.
 *
 * libmpnas builds one small image classifier that serves several visual domains at
 * once, by multi-path neural architecture search (MPNAS): a shared MobileNet-style
 * super-network, one REINFORCE controller per domain choosing that domain's path, the
 * chosen paths merged into one multi-path model trained with ABDP, and fast per-domain
 * inference on AVX2 and NEON kernels.
 *
 * Conventions (see docs/API-STABILITY.md):
 *  - Every function that can fail returns an mpnas_status: MPNAS_OK (0) or a negative
 *    code below. Codes are never renumbered. Every failing call on a (non-NULL) handle
 *    or context also leaves a non-empty message with detail and its status, read with
 *    mpnas_context_last_error() and mpnas_context_last_status().
 *  - Create functions take an out-parameter; *_free(NULL) is a no-op.
 *  - A function that writes into a caller's buffer takes its capacity. A buffer too
 *    small for the result is MPNAS_E_INVALID_ARGUMENT (inconsistent sizes), in every
 *    such function; where there is an out-parameter for the size (*needed, *size,
 *    *count) it is set even then, and a NULL buffer with it only asks for the size.
 *  - Only opaque handles, fixed-width scalars and pointers with explicit lengths cross
 *    the ABI. Parameters are set through typed setters keyed by an enum value.
 *  - The library never prints, never exits or aborts, and has no global mutable state
 *    (one exception: the pid it uses to notice a fork, docs/THREADING.md).
 *    Logging goes through a callback the host installs.
 *  - Threading: one handle is used by one thread at a time; separate contexts are
 *    independent (docs/THREADING.md).
 */
#ifndef MPNAS_H
#define MPNAS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Export macro --------------------------------------------------------------- */
#if defined(_WIN32)
#  if defined(MPNAS_BUILDING_LIBRARY)
#    define MPNAS_API __declspec(dllexport)
#  else
#    define MPNAS_API
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define MPNAS_API __attribute__((visibility("default")))
#else
#  define MPNAS_API
#endif

/* ---- Version ----------------------------------------------------------------------
 * The shared library's soname follows the major version (libmpnas.so.MAJOR). */
#define MPNAS_VERSION_MAJOR 0
#define MPNAS_VERSION_MINOR 1
#define MPNAS_VERSION_PATCH 0
#define MPNAS_VERSION_NUMBER \
  (MPNAS_VERSION_MAJOR * 10000 + MPNAS_VERSION_MINOR * 100 + MPNAS_VERSION_PATCH)
#define MPNAS_VERSION_STRING "0.1.0"

/* The run-time library's version as MAJOR*10000 + MINOR*100 + PATCH; compare with
 * MPNAS_VERSION_NUMBER to detect a header/library mismatch. */
MPNAS_API uint32_t mpnas_version_number(void);
/* The run-time library's version as "MAJOR.MINOR.PATCH" (static storage). */
MPNAS_API const char *mpnas_version_string(void);

/* ---- Status codes ------------------------------------------------------------------ */
typedef int32_t mpnas_status;
enum {
  MPNAS_OK = 0,
  MPNAS_E_INVALID_ARGUMENT = -1, /* a NULL handle or pointer, inconsistent sizes */
  MPNAS_E_UNKNOWN_PARAMETER = -2, /* a parameter or enum value the library does not know */
  MPNAS_E_OUT_OF_RANGE = -3,     /* a value outside its documented range */
  MPNAS_E_NO_MEMORY = -4,        /* an allocation failed (allocator returned NULL) */
  MPNAS_E_UNSUPPORTED = -5,      /* not available here, e.g. an ISA this CPU lacks */
  MPNAS_E_IO = -6,               /* a file could not be opened, read or written */
  MPNAS_E_CORRUPT = -7,          /* a file or buffer is malformed (size, checksum, magic),
                                    or a model whose weights overflow float arithmetic
                                    (its outputs come out non-finite) */
  MPNAS_E_VERSION = -8,          /* a file's format version is not supported */
  MPNAS_E_CANCELLED = -9,        /* a progress callback asked to stop */
  MPNAS_E_STATE = -10,           /* the call is not valid in the handle's current state */
  MPNAS_E_INCOMPATIBLE = -11,    /* e.g. a checkpoint from a different search space */
  MPNAS_E_INTERNAL = -12         /* a bug in libmpnas: please report it */
};

/* A short constant English description of a status code ("unknown status" for codes
 * the library does not define). Never NULL. */
MPNAS_API const char *mpnas_status_string(mpnas_status status);

/* ---- Context --------------------------------------------------------------------------
 * A context holds the settings every other handle of the library uses (threads, seed,
 * instruction set, allocator, logging) and the last error message. Create one per
 * thread of work; handles created from a context must not outlive it. */
typedef struct mpnas_context mpnas_context;

/* Allocator hooks. malloc_fn returns NULL on failure; free_fn(user, NULL) must be
 * harmless. The library asks for alignment itself, so plain malloc/free semantics are
 * enough. Both may be called from several threads at once (the library's worker
 * threads, predictors running in parallel): they must be thread-safe. */
typedef void *(*mpnas_malloc_fn)(void *user, size_t size);
typedef void (*mpnas_free_fn)(void *user, void *ptr);

/* Log levels for the log callback and MPNAS_CONTEXT_LOG_LEVEL. */
enum {
  MPNAS_LOG_NONE = 0,
  MPNAS_LOG_ERROR = 1,
  MPNAS_LOG_WARNING = 2,
  MPNAS_LOG_INFO = 3,
  MPNAS_LOG_DEBUG = 4
};
/* Called with a NUL-terminated message (no trailing newline) valid during the call. */
typedef void (*mpnas_log_fn)(void *user, int32_t level, const char *message);

/* Instruction sets for MPNAS_CONTEXT_ISA. */
enum {
  MPNAS_ISA_AUTO = 0,   /* the fastest this CPU and build support (default) */
  MPNAS_ISA_SCALAR = 1, /* plain C reference kernels: slow, the test oracle */
  MPNAS_ISA_AVX2 = 2,   /* x86-64 AVX2 + FMA */
  MPNAS_ISA_NEON = 3    /* aarch64 NEON */
};

/* Context parameters, set with mpnas_context_set_int and read with
 * mpnas_context_get_int.
 *
 * Every parameter's comment (here and in the other *_param enums) starts with what it
 * takes, in one form that tests/param_docs.py reads and holds to mpnas_param_bounds:
 *   int LO..HI, default D          an integer; "int odd LO..HI": odd values only
 *   double LO..HI, default D       a real; an open end is bracketed: (0..100], [0..1)
 *   MPNAS_X_*, default MPNAS_X_Y   an enumeration: the constants named MPNAS_X_...
 *   read-only int                  get only
 * then ": " and what it means. "default depends" names a default that other settings
 * decide. */
typedef enum mpnas_context_param {
  /* int 0..1024, default 1: worker threads for kernels (used when built with OpenMP; 1
   * otherwise); 0 means one per available processor. Results are deterministic for a
   * given thread count. */
  MPNAS_CONTEXT_THREADS = 1,
  /* int -2^63..2^63-1, default 0: the seed of every random stream the library draws from
   * (initialisation, sampling, augmentation); any 64-bit value. */
  MPNAS_CONTEXT_SEED = 2,
  /* MPNAS_ISA_*, default MPNAS_ISA_AUTO: the requested instruction set. Asking for an ISA
   * the CPU or this build cannot run returns MPNAS_E_UNSUPPORTED and keeps the previous
   * setting. */
  MPNAS_CONTEXT_ISA = 3,
  /* read-only int: the ISA actually in use (MPNAS_ISA_SCALAR, _AVX2 or _NEON). */
  MPNAS_CONTEXT_ISA_ACTIVE = 4,
  /* MPNAS_LOG_*, default MPNAS_LOG_WARNING: the most verbose level passed to the log
   * callback. */
  MPNAS_CONTEXT_LOG_LEVEL = 5,
  /* read-only int: 1 if this build uses OpenMP, else 0. */
  MPNAS_CONTEXT_OPENMP = 6,
  /* int 1024..2^48, default 2^30: the most bytes a loader reads from a file
   * (mpnas_model_load, mpnas_model_load_checkpoint, mpnas_supernet_load_checkpoint): a
   * larger file, or one whose header declares more, is refused with MPNAS_E_CORRUPT
   * before anything is allocated for it. 2^30 is 1 GiB; raise it for larger models or
   * checkpoints (docs/MODEL-FORMAT.md, "Limits"). The buffer loaders are not bounded by
   * it. */
  MPNAS_CONTEXT_MAX_FILE_BYTES = 7,
  /* int 0..1, default 0: 1 gives each thread of a training step its own shard of a
   * domain's batch, which it runs through the whole network (the batch-norm statistics
   * are still those of the whole batch, summed over the shards), where 0 splits each
   * layer's work over the threads. On a 2-core machine MBV2-9 trained 1.98x as fast on
   * two threads as on one that way, 1.55x with 0 (docs/THREADING.md). With 1, results are deterministic for a given thread count
   * but differ between thread counts, as with data-parallel workers; with 0 they do not
   * depend on it. No effect with one thread, without OpenMP, with data-parallel workers
   * (mpnas_context_set_collective), or where whole domains already run one per thread
   * (a step of several domains). */
  MPNAS_CONTEXT_SHARD_BATCH = 8
} mpnas_context_param;

/* Create a context with the default settings and the C library's malloc/free. On Linux,
 * blocks of 8 MB or more (training tapes, workspaces, parameter stores) are advised to be
 * backed by transparent huge pages (madvise MADV_HUGEPAGE; the system's THP mode decides).
 * A context made with mpnas_context_create_with_allocator gets no such advice. */
MPNAS_API mpnas_status mpnas_context_create(mpnas_context **out);
/* Create a context whose every allocation goes through the given hooks (both non-NULL).
 * `user` is passed back to them untouched. */
MPNAS_API mpnas_status mpnas_context_create_with_allocator(mpnas_context **out,
                                                           mpnas_malloc_fn malloc_fn,
                                                           mpnas_free_fn free_fn,
                                                           void *user);
/* Free a context. Every handle created from it must have been freed first. */
MPNAS_API void mpnas_context_free(mpnas_context *ctx);

MPNAS_API mpnas_status mpnas_context_set_int(mpnas_context *ctx, int32_t param,
                                             int64_t value);
MPNAS_API mpnas_status mpnas_context_get_int(const mpnas_context *ctx, int32_t param,
                                             int64_t *value);

/* Install (or with fn == NULL remove) the log callback. */
MPNAS_API mpnas_status mpnas_context_set_log_callback(mpnas_context *ctx, mpnas_log_fn fn,
                                                      void *user);

/* The message of the last failing call made with this context (or any handle created
 * from it), "" when none. Owned by the context, valid until the next call with it.
 * With ctx == NULL: a constant message saying so. */
MPNAS_API const char *mpnas_context_last_error(const mpnas_context *ctx);
/* The status of that last failing call, MPNAS_OK when none. */
MPNAS_API mpnas_status mpnas_context_last_status(const mpnas_context *ctx);
/* Forget the last error. */
MPNAS_API void mpnas_context_clear_error(mpnas_context *ctx);

/* ---- Data-parallel runs (docs/SCALING.md) --------------------------------------------
 * The library has no network layer: a host running one process per worker (MPI,
 * Horovod, Ray, ...) hands each worker's context an all-reduce callback, its rank and
 * the world size. The callback sums `count` values of `buf` in place over all workers
 * (every worker passes the same count and dtype, in the same order, and must receive
 * the same sum bit for bit: MPI_Allreduce with MPI_SUM does in the common
 * implementations; otherwise reduce to one worker and broadcast), and returns 0 on
 * success; any other value fails the calling search or training step with MPNAS_E_IO
 * and a message naming the value (the workers are then out of step: reload the last
 * checkpoint on every worker). It is called from the thread that called
 * mpnas_supernet_search / mpnas_model_train, never from the library's worker threads:
 * per step, once for the gradients (and BN running statistics) as one flat F32 buffer,
 * once for the domains' training losses (F64), and once per validation for the
 * domains' correct counts (I64).
 * With world_size W > 1, each domain's training and validation batch of every step is
 * drawn whole, identically, on every worker (same seed, same random streams), and
 * worker `rank` runs images [n * rank / W, n * (rank + 1) / W) of it; the summed
 * gradients then equal one worker's on the whole batch up to float rounding, except that
 * batch normalisation takes its batch statistics over each worker's share (per-replica
 * BN, as in most data-parallel trainers; the model's running statistics are averaged
 * over the workers every step, the variance with the whole batch's Bessel correction).
 * Every worker takes the same optimiser and controller steps, so weights, paths and
 * checkpoints are identical on all of them: let rank 0 alone save files. Checkpoints
 * hold nothing of the world size and resume at any.
 * Every worker must use the same settings, seed and data. */
enum { /* dtype of a collective buffer */
  MPNAS_COLLECTIVE_F32 = 0, /* float */
  MPNAS_COLLECTIVE_F64 = 1, /* double */
  MPNAS_COLLECTIVE_I64 = 2  /* int64_t */
};
typedef int32_t (*mpnas_allreduce_fn)(void *user, void *buf, int64_t count, int32_t dtype);
/* Make this context worker `rank` of `world_size` (1..65536), summing through fn.
 * rank outside [0, world_size) or world_size < 1: MPNAS_E_OUT_OF_RANGE; fn NULL with
 * world_size > 1: MPNAS_E_INVALID_ARGUMENT. fn NULL, rank 0, world_size 1 removes the
 * hook (the default). With world_size 1 fn is never called and results are those of no
 * hook, bit for bit. May change between calls (a run resumed at another world size). */
MPNAS_API mpnas_status mpnas_context_set_collective(mpnas_context *ctx, mpnas_allreduce_fn fn,
                                                    void *user, int32_t rank,
                                                    int32_t world_size);

/* 1 if this CPU and this build can run the given MPNAS_ISA_* value, else 0. */
MPNAS_API int32_t mpnas_isa_supported(int32_t isa);


/* ==== Activations (stage and head activations) ========================================= */
enum {
  MPNAS_ACT_NONE = 0,
  MPNAS_ACT_RELU = 1,
  MPNAS_ACT_RELU6 = 2,
  MPNAS_ACT_HSWISH = 3,  /* x * relu6(x + 3) / 6 */
  MPNAS_ACT_SIGMOID = 4,
  MPNAS_ACT_HSIGMOID = 5 /* relu6(x + 3) / 6 */
};

/* ==== Search space =======================================================================
 * A MobileNet-style space: a stem (KxK conv + BN + act), stages of layers, a 1x1 head
 * conv + BN + act + global average pooling, and one classifier per domain. A stage is
 * (out channels, layers, stride, activation); its first layer changes width/resolution
 * and can never be skipped; the others may be skipped if the stage says so. Each layer
 * chooses among ops: inverted bottlenecks dwb(k, e) for every kernel size k and expansion
 * ratio e of the stage's choice lists (optionally each with and without squeeze-excite),
 * plus `zero` (skip) on skippable layers. A space whose every stage has one kernel, one
 * expansion and no skip describes a single fixed network. */
typedef struct mpnas_space mpnas_space;

enum {
  MPNAS_PRESET_EMPTY = 0, /* nothing set: add stages yourself (input 32x32x3) */
  /* 32x32 inputs, minutes on 2 cores: stem 16 ch stride 1; stages (24,2,2) (40,2,2)
   * (80,2,2) (96,1,1) with ReLU6/hard-swish; k {3,5,7} x e {3,6}, skips; head 256. */
  MPNAS_PRESET_32PX = 1,
  /* TuNAS's MobileNetV3-like space for 64-224 px inputs (input 224x224x3 by default). */
  MPNAS_PRESET_MOBILENET_V3 = 2,
  /* The fixed MBV2-9 reference network of the benchmarks (32x32x3, one path). */
  MPNAS_PRESET_MBV2_9 = 3
};

enum { /* MPNAS_SPACE_SE_MODE values */
  MPNAS_SE_NEVER = 0,  /* default */
  MPNAS_SE_CHOICE = 1, /* every op exists with and without squeeze-excite */
  MPNAS_SE_ALWAYS = 2
};

/* Space parameters. The defaults are MPNAS_PRESET_EMPTY's; every preset starts from them
 * and changes some. */
typedef enum mpnas_space_param {
  MPNAS_SPACE_INPUT_HEIGHT = 1,    /* int 1..4096, default 32 */
  MPNAS_SPACE_INPUT_WIDTH = 2,     /* int 1..4096, default 32 */
  MPNAS_SPACE_INPUT_CHANNELS = 3,  /* int 1..64, default 3 */
  MPNAS_SPACE_STEM_CHANNELS = 4,   /* int 1..4096, default 16 */
  MPNAS_SPACE_STEM_KERNEL = 5,     /* int odd 1..11, default 3 */
  MPNAS_SPACE_STEM_STRIDE = 6,     /* int 1..2, default 1 */
  MPNAS_SPACE_STEM_ACTIVATION = 7, /* MPNAS_ACT_*, default MPNAS_ACT_RELU6 */
  MPNAS_SPACE_HEAD_CHANNELS = 8,   /* int 1..8192, default 256 */
  MPNAS_SPACE_HEAD_ACTIVATION = 9, /* MPNAS_ACT_*, default MPNAS_ACT_RELU6 */
  MPNAS_SPACE_SE_MODE = 10,        /* MPNAS_SE_*, default MPNAS_SE_NEVER */
  MPNAS_SPACE_NUM_STAGES = 11,     /* read-only int */
  MPNAS_SPACE_NUM_LAYERS = 12      /* read-only int: searchable layers over all stages */
} mpnas_space_param;

/* Create a space from a preset (MPNAS_PRESET_*). */
MPNAS_API mpnas_status mpnas_space_create(mpnas_context *ctx, int32_t preset,
                                          mpnas_space **out);
MPNAS_API void mpnas_space_free(mpnas_space *space);
MPNAS_API mpnas_status mpnas_space_set_int(mpnas_space *space, int32_t param, int64_t value);
MPNAS_API mpnas_status mpnas_space_get_int(const mpnas_space *space, int32_t param,
                                           int64_t *value);
/* Remove every stage (to describe a new space on top of a preset's stem and head). */
MPNAS_API mpnas_status mpnas_space_clear_stages(mpnas_space *space);
/* Append a stage: out_channels 1..8192, layers 1..64, stride 1 or 2, activation
 * MPNAS_ACT_*, skippable 0/1 (layers after the first may choose `zero`). The stage
 * takes the space's default kernel and expansion lists until it is given its own. */
MPNAS_API mpnas_status mpnas_space_add_stage(mpnas_space *space, int32_t out_channels,
                                             int32_t layers, int32_t stride,
                                             int32_t activation, int32_t skippable);
/* Choice lists for one stage (stage = -1: the default for stages without their own).
 * kernels: odd sizes 1..9, expansions: 1..16; 1..8 entries each, no duplicates. */
MPNAS_API mpnas_status mpnas_space_set_choices(mpnas_space *space, int32_t stage,
                                               const int32_t *kernels, size_t num_kernels,
                                               const int32_t *expansions,
                                               size_t num_expansions);
/* Ops of a searchable layer (0 <= layer < MPNAS_SPACE_NUM_LAYERS). */
MPNAS_API mpnas_status mpnas_space_num_ops(const mpnas_space *space, int32_t layer,
                                           int32_t *num_ops);
/* What op `op` of `layer` is: kernel size (0 for zero), expansion (0 for zero), se 0/1. */
MPNAS_API mpnas_status mpnas_space_op_info(const mpnas_space *space, int32_t layer, int32_t op,
                                           int32_t *kernel, int32_t *expansion, int32_t *se);
/* A path (one op index per layer) as text, e.g. "k3e3 k5e6 zero k7e3-se ...", written
 * NUL-terminated into buf (capacity cap); *needed (may be NULL) receives the length
 * needed including the NUL. MPNAS_E_INVALID_ARGUMENT if buf is too small (buf NULL with
 * needed non-NULL: only the size). */
MPNAS_API mpnas_status mpnas_space_path_string(const mpnas_space *space, const int32_t *path,
                                               size_t num_layers, char *buf, size_t cap,
                                               size_t *needed);
/* Parse such a text back into op indices (inverse of mpnas_space_path_string). */
MPNAS_API mpnas_status mpnas_space_parse_path(const mpnas_space *space, const char *text,
                                              int32_t *path, size_t num_layers);
/* Cost of one domain's path: multiply-accumulates of one image's forward pass and
 * parameter count (stem + layers + head + a classifier of num_classes). MAC counts
 * beyond INT64_MAX (the largest spaces the setters accept reach them) saturate there. */
MPNAS_API mpnas_status mpnas_space_path_cost(const mpnas_space *space, const int32_t *path,
                                             size_t num_layers, int32_t num_classes,
                                             int64_t *macs, int64_t *params);

/* ==== Controllers ========================================================================
 * One categorical distribution per layer over that layer's ops (logits start at 0 =
 * uniform), trained by REINFORCE with a zero-debiased moving-average baseline and Adam
 * (beta1 = 0). A supernet owns one per domain (mpnas_supernet_controller); a standalone
 * controller can be created for RL experiments. */
typedef struct mpnas_controller mpnas_controller;

/* A standalone controller: num_layers layers, ops_per_layer[l] >= 1 ops each. */
MPNAS_API mpnas_status mpnas_controller_create(mpnas_context *ctx, const int32_t *ops_per_layer,
                                               size_t num_layers, mpnas_controller **out);
/* Free a standalone controller; controllers owned by a supernet are left alone. */
MPNAS_API void mpnas_controller_free(mpnas_controller *ctrl);
MPNAS_API mpnas_status mpnas_controller_num_layers(const mpnas_controller *ctrl,
                                                   int32_t *num_layers);
/* Softmax probabilities of one layer's ops into probs[0..num_ops-1] (cap >= num_ops). */
MPNAS_API mpnas_status mpnas_controller_probabilities(const mpnas_controller *ctrl,
                                                      int32_t layer, double *probs,
                                                      size_t cap);
/* The most probable op of every layer. */
MPNAS_API mpnas_status mpnas_controller_argmax(const mpnas_controller *ctrl, int32_t *path,
                                               size_t num_layers);
/* Convergence: the largest op probability of every layer. */
MPNAS_API mpnas_status mpnas_controller_max_probabilities(const mpnas_controller *ctrl,
                                                          double *max_probs,
                                                          size_t num_layers);
/* Draw a path (uses and advances the controller's own random stream). */
MPNAS_API mpnas_status mpnas_controller_sample(mpnas_controller *ctrl, int32_t *path,
                                               size_t num_layers);
MPNAS_API mpnas_status mpnas_controller_log_probability(const mpnas_controller *ctrl,
                                                        const int32_t *path,
                                                        size_t num_layers, double *logp);
/* One REINFORCE step for a sampled path and its reward: advantage = reward - baseline,
 * then one Adam step of size learning_rate (> 0) on -(advantage) * log p(path)
 * - entropy_bonus * entropy. */
MPNAS_API mpnas_status mpnas_controller_update(mpnas_controller *ctrl, const int32_t *path,
                                               size_t num_layers, double reward,
                                               double learning_rate, double entropy_bonus);

/* Node statistics of D domains' paths (paths[d * num_layers + l]): the Jaccard
 * similarity of every pair of domains' node sets (node = (layer, op), zero ops
 * excluded; 1 when both sets are empty) into matrix[D*D]. */
MPNAS_API mpnas_status mpnas_space_jaccard(const mpnas_space *space, const int32_t *paths,
                                           size_t num_domains, size_t num_layers,
                                           double *matrix, size_t cap);
/* How many of the D domains use node (layer, op) (0 = unused, 1 = exclusive, >= 2 =
 * shared). */
MPNAS_API mpnas_status mpnas_space_node_users(const mpnas_space *space, const int32_t *paths,
                                              size_t num_domains, size_t num_layers,
                                              int32_t layer, int32_t op, int32_t *users);

/* ==== Supernet and search ================================================================
 * The one-shot super-network over a space: weights shared inside each layer (one expand
 * conv of the largest expansion, sliced; one depthwise kernel of the largest size,
 * centre-cropped; one project conv; BN sliced alike), a shared stem and head, one
 * classifier and one controller per domain. mpnas_supernet_search runs the MPNAS search
 * (or one of the comparison methods); afterwards each domain's path is the argmax of its
 * controller. */
typedef struct mpnas_supernet mpnas_supernet;

enum { /* MPNAS_SEARCH_METHOD */
  MPNAS_METHOD_MPNAS = 0,       /* one controller per domain, weights shared (default) */
  MPNAS_METHOD_INDEPENDENT = 1, /* one controller and one set of weights per domain */
  MPNAS_METHOD_MULTI_HEAD = 2,  /* one controller for all domains (mean reward) */
  MPNAS_METHOD_SINGLE_PATH = 3  /* no search: the fixed path, all weights shared */
};
enum { /* MPNAS_SEARCH_COST */
  MPNAS_COST_NONE = 0,
  MPNAS_COST_MACS = 1,   /* default */
  MPNAS_COST_PARAMS = 2,
  MPNAS_COST_LATENCY = 3 /* measured on this CPU, node by node */
};
enum { /* MPNAS_SEARCH_REWARD */
  MPNAS_REWARD_ABS = 0, /* TuNAS: Q + beta * |C / C0 - 1| (default) */
  MPNAS_REWARD_MNAS = 1 /* MnasNet: Q * (C / C0)^beta */
};
enum { MPNAS_SPLIT_TRAIN = 0, MPNAS_SPLIT_VALID = 1 };
/* Host images: NHWC with the space's input channels, as uint8 (0..255) or float; or
 * grey (_GREY: NHW, one value per pixel), which the library replicates into every
 * channel, so 1-channel domains need no copying by the host. */
enum {
  MPNAS_DTYPE_U8 = 0,
  MPNAS_DTYPE_F32 = 1,
  MPNAS_DTYPE_U8_GREY = 2,
  MPNAS_DTYPE_F32_GREY = 3
};

typedef enum mpnas_search_param {
  MPNAS_SEARCH_METHOD = 1,            /* MPNAS_METHOD_*, default MPNAS_METHOD_MPNAS */
  MPNAS_SEARCH_STEPS = 2,             /* int 1..10^8, default 400: total steps */
  MPNAS_SEARCH_TRAIN_BATCH = 3,       /* int 1..4096, default 16: train images per domain
                                         per step */
  MPNAS_SEARCH_VALID_BATCH = 4,       /* int 1..4096, default 128: validation images per
                                         domain per step */
  MPNAS_SEARCH_WARMUP_FRACTION = 5,   /* double 0..1, default 0.25: random non-zero ops */
  MPNAS_SEARCH_LEARNING_RATE = 6,     /* double (0..100], default 0.05: SGD Nesterov,
                                         cosine */
  MPNAS_SEARCH_MOMENTUM = 7,          /* double 0..0.999, default 0.9 */
  MPNAS_SEARCH_WEIGHT_DECAY = 8,      /* double 0..1, default 3e-4: on conv weights */
  MPNAS_SEARCH_LABEL_SMOOTHING = 9,   /* double 0..0.999, default 0.1 */
  MPNAS_SEARCH_RL_LEARNING_RATE = 10, /* double (0..100], default 0.05: ramps x RL_RAMP to
                                         the end */
  MPNAS_SEARCH_RL_DELAY_FRACTION = 11, /* double 0..0.999, default 0.25: RL off at first */
  MPNAS_SEARCH_RL_RAMP = 12,          /* double 1..10^6, default 10 */
  MPNAS_SEARCH_ENTROPY_BONUS = 13,    /* double 0..100, default 0 */
  MPNAS_SEARCH_COST = 14,             /* MPNAS_COST_*, default MPNAS_COST_MACS */
  MPNAS_SEARCH_REWARD = 15,           /* MPNAS_REWARD_*, default MPNAS_REWARD_ABS */
  MPNAS_SEARCH_COST_BETA = 16,        /* double -100..0, default depends: the reward
                                         form's own, -0.1 (ABS) or -0.07 (MNAS) */
  MPNAS_SEARCH_COST_TARGET = 17,      /* double 0..10^18, default 0: C0; 0 = the cost of
                                         the path that takes the middle op of every layer */
  MPNAS_SEARCH_SHARING_GAMMA = 18,    /* double 0..100, default 0.5: charge for the
                                         domain's share of the joint model's parameters
                                         (MPNAS method; docs/SEARCH.md), 0 = off (the
                                         paper's reward) */
  MPNAS_SEARCH_VALIDATION_FRACTION = 19, /* double 0..0.9, default 0.1: held out of train
                                            when no validation split is given */
  MPNAS_SEARCH_STEP = 20              /* read-only int: steps done so far */
} mpnas_search_param;

/* ABDP, Adaptive Balanced Domain Prioritization (docs/ABDP.md): how many images of each
 * domain a step draws, and how the domains' losses are weighted. The same parameters
 * are accepted by mpnas_supernet_set_int/_double (the search) and
 * mpnas_model_set_int/_double (the multi-path model's training). */
enum { /* MPNAS_ABDP_SAMPLING */
  MPNAS_ABDP_SAMPLE_BALANCED = 0,    /* the same number of images per domain (default) */
  MPNAS_ABDP_SAMPLE_PROPORTIONAL = 1 /* by dataset size, like the concatenated data */
};
enum { /* MPNAS_ABDP_SIGNAL */
  MPNAS_ABDP_SIGNAL_NONE = 0,  /* every weight 1 (default) */
  MPNAS_ABDP_SIGNAL_LOSS = 1,  /* D * softmax(EMA train loss / ln(classes) / tau) */
  MPNAS_ABDP_SIGNAL_KPI = 2,   /* focal on validation accuracy: (1-k)^gamma * -ln k */
  MPNAS_ABDP_SIGNAL_BOOST = 3  /* D * softmax(EMA train loss / temperature) */
};
typedef enum mpnas_abdp_param {
  MPNAS_ABDP_SAMPLING = 100,      /* MPNAS_ABDP_SAMPLE_*, default MPNAS_ABDP_SAMPLE_BALANCED */
  MPNAS_ABDP_SIGNAL = 101,        /* MPNAS_ABDP_SIGNAL_*, default MPNAS_ABDP_SIGNAL_NONE */
  MPNAS_ABDP_TAU = 102,           /* double 1e-6..1e6, default 1: LOSS temperature */
  MPNAS_ABDP_GAMMA = 103,         /* double 0..100, default 2: KPI focal exponent */
  MPNAS_ABDP_TEMPERATURE = 104,   /* double 1e-6..1e6, default 1: BOOST temperature */
  MPNAS_ABDP_LOSS_MOMENTUM = 105, /* double [0..1), default 0.9: EMA of training losses */
  MPNAS_ABDP_KPI_MOMENTUM = 106,  /* double [0..1), default 0.9: EMA of validation
                                     accuracies */
  MPNAS_ABDP_W_MIN = 107,         /* double 0..1, default 0.25: weight clip */
  MPNAS_ABDP_W_MAX = 108          /* double 1..1e6, default 4: weight clip */
} mpnas_abdp_param;

typedef enum mpnas_domain_stat {
  MPNAS_STAT_TRAIN_LOSS = 1,     /* moving average of the domain's training loss */
  MPNAS_STAT_VALID_ACCURACY = 2, /* last validation batch's top-1 (the reward's Q) */
  MPNAS_STAT_REWARD = 3,         /* last reward */
  MPNAS_STAT_COST = 4,           /* cost of the last sampled path */
  MPNAS_STAT_LOSS_WEIGHT = 5,    /* the domain's current loss weight (ABDP) */
  MPNAS_STAT_TRAIN_SIZE = 6,     /* training images (after any validation split) */
  MPNAS_STAT_VALID_SIZE = 7,
  MPNAS_STAT_MACS = 8,           /* MACs of one image through the domain's path */
  MPNAS_STAT_PARAMS = 9,         /* parameters of the domain's path (alone) */
  MPNAS_STAT_BATCH_IMAGES = 10   /* images of the domain in the last step (ABDP) */
} mpnas_domain_stat;

/* Called every `every` steps and at the end; return non-zero to stop the search (it
 * returns MPNAS_E_CANCELLED and can be resumed by calling mpnas_supernet_search again).
 * It may read the supernet; calls that would change it (set_data, set_*, search,
 * load_checkpoint*, ...) return MPNAS_E_STATE while the search runs, and it must not be
 * freed from here. */
typedef int32_t (*mpnas_search_progress_fn)(void *user, mpnas_supernet *sn, int64_t step,
                                            int64_t total_steps);

/* Create a supernet over a copy of `space`. */
MPNAS_API mpnas_status mpnas_supernet_create(mpnas_context *ctx, const mpnas_space *space,
                                             mpnas_supernet **out);
MPNAS_API void mpnas_supernet_free(mpnas_supernet *sn);
/* The supernet's own copy of the space (valid while sn lives), read-only: the
 * mpnas_space_set_* / _clear_stages / _add_stage / _set_choices calls refuse it with
 * MPNAS_E_STATE (also through FFI, where the const is lost) and mpnas_space_free
 * leaves it alone. */
MPNAS_API mpnas_status mpnas_supernet_space(const mpnas_supernet *sn, const mpnas_space **out);
/* Add a domain (before the search starts): a unique name of 1..63 printable ASCII
 * characters (0x20..0x7E; any other byte, UTF-8 included, is MPNAS_E_INVALID_ARGUMENT)
 * and its class count (2..65535). *domain receives its index 0, 1, ... */
MPNAS_API mpnas_status mpnas_supernet_add_domain(mpnas_supernet *sn, const char *name,
                                                 int32_t num_classes, int32_t *domain);
MPNAS_API mpnas_status mpnas_supernet_num_domains(const mpnas_supernet *sn, int32_t *count);
/* Hand a domain's images in: `count` images of the space's input height x width x
 * channels, NHWC, as uint8 (0..255) or float, or grey NHW images (dtype MPNAS_DTYPE_*,
 * _GREY: replicated into every channel); labels in
 * 0..num_classes-1. The library COPIES both (the host may free them on return).
 * Inputs are normalised per domain and channel with the training split's mean and
 * standard deviation. Without a validation split, MPNAS_SEARCH_VALIDATION_FRACTION of
 * the training images (a seeded random subset) is held out when the search starts. */
MPNAS_API mpnas_status mpnas_supernet_set_data(mpnas_supernet *sn, int32_t domain,
                                               int32_t split, int32_t dtype,
                                               const void *images, const int32_t *labels,
                                               int64_t count);
MPNAS_API mpnas_status mpnas_supernet_set_int(mpnas_supernet *sn, int32_t param, int64_t value);
MPNAS_API mpnas_status mpnas_supernet_get_int(const mpnas_supernet *sn, int32_t param,
                                              int64_t *value);
MPNAS_API mpnas_status mpnas_supernet_set_double(mpnas_supernet *sn, int32_t param,
                                                 double value);
MPNAS_API mpnas_status mpnas_supernet_get_double(const mpnas_supernet *sn, int32_t param,
                                                 double *value);
/* The path used by MPNAS_METHOD_SINGLE_PATH (default: the middle op of every layer). */
MPNAS_API mpnas_status mpnas_supernet_set_fixed_path(mpnas_supernet *sn, const int32_t *path,
                                                     size_t num_layers);
/* Run (or resume) the search for at most max_steps more steps (0 = to the end). Settings
 * that are each in range can still give a domain no usable reward together with the
 * paths' costs (a cost target far from them, beta -100 with MNAS, a latency table of
 * zeros): the call then fails with MPNAS_E_STATE before its first step (each domain's
 * cheapest and dearest paths are tried), the message naming the domain and the numbers
 * (rewards are bounded by 10^15 in magnitude). A step that fails is undone (the steps
 * before it in the call are kept; a failing first step also undoes the call's
 * preparation): retrying continues the run bit for bit (docs/API-STABILITY.md). */
MPNAS_API mpnas_status mpnas_supernet_search(mpnas_supernet *sn, int64_t max_steps,
                                             mpnas_search_progress_fn progress, void *user,
                                             int64_t every);
MPNAS_API mpnas_status mpnas_supernet_domain_stat(const mpnas_supernet *sn, int32_t domain,
                                                  int32_t stat, double *value);
/* The controller of a domain (owned by the supernet; with MPNAS_METHOD_MULTI_HEAD every
 * domain returns the same one). */
MPNAS_API mpnas_status mpnas_supernet_controller(mpnas_supernet *sn, int32_t domain,
                                                 mpnas_controller **ctrl);
/* A domain's current result path: its controller's argmax (the fixed path for
 * MPNAS_METHOD_SINGLE_PATH). */
MPNAS_API mpnas_status mpnas_supernet_path(const mpnas_supernet *sn, int32_t domain,
                                           int32_t *path, size_t num_layers);
/* The latency cost model (MPNAS_COST_LATENCY): seconds[0] = the fixed parts (stem, head,
 * classifier), then one entry per node in layer order, op order within a layer
 * (1 + total ops entries; *count receives that number, seconds may be NULL to ask for
 * it). Measured on this CPU at the first call or search start unless set. */
MPNAS_API mpnas_status mpnas_supernet_latency_table(mpnas_supernet *sn, double *seconds,
                                                    size_t cap, size_t *count);
/* Install a table saved from mpnas_supernet_latency_table (same space), e.g. one
 * measured on the target device. */
MPNAS_API mpnas_status mpnas_supernet_set_latency_table(mpnas_supernet *sn,
                                                        const double *seconds, size_t count);
/* Save / restore the complete search state (weights, optimiser, controllers, random
 * streams, step, settings, latency table) - not the data, which the host hands in again.
 * The file is written to a temporary name and renamed. Loading into a supernet with a
 * different space, domains or method, or into one whose search has started with another
 * MPNAS_SEARCH_VALIDATION_FRACTION, or a checkpoint whose settings give this supernet's
 * paths no usable reward (see mpnas_supernet_search; the latency cost is checked when
 * the search starts), returns MPNAS_E_INCOMPATIBLE; a checkpoint holding a
 * value the setters refuse (or any other malformed content) returns MPNAS_E_CORRUPT with
 * a message naming the field. Either way the supernet is left exactly as it was. A
 * loaded checkpoint replaces every setting and every piece of search state, so a
 * supernet continues from it exactly as a fresh one that loaded it. */
MPNAS_API mpnas_status mpnas_supernet_save_checkpoint(const mpnas_supernet *sn,
                                                      const char *path);
MPNAS_API mpnas_status mpnas_supernet_load_checkpoint(mpnas_supernet *sn, const char *path);
/* Load a search checkpoint from memory: `size` bytes of a file written by
 * mpnas_supernet_save_checkpoint, with the same checks and effects as
 * mpnas_supernet_load_checkpoint (the buffer is not bounded by
 * MPNAS_CONTEXT_MAX_FILE_BYTES and is not kept). */
MPNAS_API mpnas_status mpnas_supernet_load_checkpoint_buffer(mpnas_supernet *sn,
                                                             const void *data, size_t size);

/* ---- The multi-path model ---------------------------------------------------------------
 * The deployable result (docs/MODEL.md): the union of the domains' paths as one network.
 * A node (a layer's op) used by several domains is stored once and shared; each domain
 * has its own classifier and its own BatchNorm running statistics in every node it uses
 * (stem and head included). Trained from scratch with ABDP, evaluated and run per
 * domain. Inference goes through mpnas_predictor (one per thread; a model is read-only
 * to predictors, so any number may run on one model at once). */
typedef struct mpnas_model mpnas_model;
typedef struct mpnas_predictor mpnas_predictor;

typedef enum mpnas_train_param {
  MPNAS_TRAIN_STEPS = 1,            /* int 1..10^8, default 2000: total steps */
  MPNAS_TRAIN_BATCH = 2,            /* int 1..4096, default 32: images per domain per step
                                       (D x this per step, split by MPNAS_ABDP_SAMPLING) */
  MPNAS_TRAIN_OPTIMIZER = 3,        /* MPNAS_OPTIMIZER_*, default MPNAS_OPTIMIZER_SGD
                                       (Nesterov) */
  MPNAS_TRAIN_LEARNING_RATE = 4,    /* double (0..100], default 0.1: peak of the cosine
                                       schedule */
  MPNAS_TRAIN_WARMUP_FRACTION = 5,  /* double 0..1, default 0.05: linear warmup of the
                                       rate */
  MPNAS_TRAIN_MOMENTUM = 6,         /* double 0..0.999, default 0.9 */
  MPNAS_TRAIN_WEIGHT_DECAY = 7,     /* double 0..1, default 1e-4: conv weights only */
  MPNAS_TRAIN_LABEL_SMOOTHING = 8,  /* double 0..0.999, default 0.1 */
  MPNAS_TRAIN_AUGMENT_PAD = 9,      /* int 0..64, default 4: random-crop padding in pixels
                                       (0 = off) */
  MPNAS_TRAIN_VALID_BATCH = 10,     /* int 1..4096, default 64: images per domain per
                                       validation */
  MPNAS_TRAIN_VALID_EVERY = 11,     /* int 1..10^8, default 20: validate every N steps
                                       (KPI signal, progress) */
  MPNAS_TRAIN_VALIDATION_FRACTION = 12, /* double 0..0.9, default 0.1: held out of train
                                           when no validation split is given */
  MPNAS_TRAIN_STEP = 13,            /* read-only int: steps done so far */
  MPNAS_MODEL_NUM_LAYERS = 20,      /* read-only int: searchable layers of the space */
  MPNAS_MODEL_NUM_NODES = 21,       /* read-only int: distinct non-zero nodes */
  MPNAS_MODEL_PARAMS = 22,          /* read-only int: unique parameters (shared once; stem,
                                       head and every classifier included) */
  MPNAS_MODEL_MACS = 23,            /* read-only int: sum over domains of their path's
                                       MACs */
  MPNAS_MODEL_QUANTIZED = 24        /* read-only int: 0 float only, 1 float and int8
                                       (mpnas_model_quantize), 2 int8 only
                                       (mpnas_model_drop_float) */
} mpnas_train_param;

enum { MPNAS_OPTIMIZER_SGD = 0, MPNAS_OPTIMIZER_RMSPROP = 1, MPNAS_OPTIMIZER_ADAM = 2 };
typedef enum mpnas_domain_param { /* mpnas_model_set_domain_int */
  MPNAS_DOMAIN_HFLIP = 1 /* int 0..1, default 0: random horizontal flips in training */
} mpnas_domain_param;
enum { MPNAS_OUTPUT_LOGITS = 0, MPNAS_OUTPUT_PROBABILITIES = 1 };

/* Called every `every` steps and at the end; non-zero stops training with
 * MPNAS_E_CANCELLED (call mpnas_model_train again to go on). It may read the model (and
 * evaluate it); calls that would change it (set_data, clear_data, set_*, train, quantize,
 * drop_float, load_checkpoint*) return MPNAS_E_STATE while training runs, and it must not
 * be freed from here. */
typedef int32_t (*mpnas_train_progress_fn)(void *user, mpnas_model *model, int64_t step,
                                           int64_t total_steps);

/* A model over a copy of `space`, no domains yet: add them with their paths. */
MPNAS_API mpnas_status mpnas_model_create(mpnas_context *ctx, const mpnas_space *space,
                                          mpnas_model **out);
/* A model from a searched supernet: its space, its domains (names, classes, COPIES of
 * their data, validation splits as given) and each domain's result path
 * (mpnas_supernet_path). The weights start fresh: the model trains from scratch. */
MPNAS_API mpnas_status mpnas_model_create_from_supernet(const mpnas_supernet *sn,
                                                        mpnas_model **out);
MPNAS_API void mpnas_model_free(mpnas_model *model);
/* Add a domain before training: a unique name (1..63 printable ASCII characters, as
 * mpnas_supernet_add_domain), class count (2..65535) and its path (one op index per
 * searchable layer). */
MPNAS_API mpnas_status mpnas_model_add_domain(mpnas_model *model, const char *name,
                                              int32_t num_classes, const int32_t *path,
                                              size_t num_layers, int32_t *domain);
MPNAS_API mpnas_status mpnas_model_num_domains(const mpnas_model *model, int32_t *count);
/* A domain's name (into buf, NUL-terminated; *needed = length + 1), classes, path. */
MPNAS_API mpnas_status mpnas_model_domain_name(const mpnas_model *model, int32_t domain,
                                               char *buf, size_t cap, size_t *needed);
MPNAS_API mpnas_status mpnas_model_domain_classes(const mpnas_model *model, int32_t domain,
                                                  int32_t *num_classes);
MPNAS_API mpnas_status mpnas_model_path(const mpnas_model *model, int32_t domain,
                                        int32_t *path, size_t num_layers);
/* The model's own space (valid while the model lives), read-only as
 * mpnas_supernet_space's. */
MPNAS_API mpnas_status mpnas_model_space(const mpnas_model *model, const mpnas_space **out);
/* Training data, as mpnas_supernet_set_data (copied; normalised per domain and channel
 * with the training split's statistics, which the model keeps for inference). */
MPNAS_API mpnas_status mpnas_model_set_data(mpnas_model *model, int32_t domain, int32_t split,
                                            int32_t dtype, const void *images,
                                            const int32_t *labels, int64_t count);
/* Drop the copied data (a trained model does not need it; saving never includes it). */
MPNAS_API mpnas_status mpnas_model_clear_data(mpnas_model *model);
/* MPNAS_TRAIN_*, MPNAS_MODEL_* (read-only) and MPNAS_ABDP_* parameters. Settings
 * change only before training starts (MPNAS_E_STATE after). */
MPNAS_API mpnas_status mpnas_model_set_int(mpnas_model *model, int32_t param, int64_t value);
MPNAS_API mpnas_status mpnas_model_get_int(const mpnas_model *model, int32_t param,
                                           int64_t *value);
MPNAS_API mpnas_status mpnas_model_set_double(mpnas_model *model, int32_t param, double value);
MPNAS_API mpnas_status mpnas_model_get_double(const mpnas_model *model, int32_t param,
                                              double *value);
MPNAS_API mpnas_status mpnas_model_set_domain_int(mpnas_model *model, int32_t domain,
                                                  int32_t param, int64_t value);
/* Train (or resume) for at most max_steps more steps (0 = to the end). A step that fails
 * is undone, as in mpnas_supernet_search. */
MPNAS_API mpnas_status mpnas_model_train(mpnas_model *model, int64_t max_steps,
                                         mpnas_train_progress_fn progress, void *user,
                                         int64_t every);
/* MPNAS_STAT_TRAIN_LOSS, _VALID_ACCURACY, _LOSS_WEIGHT, _TRAIN_SIZE, _VALID_SIZE,
 * _MACS, _PARAMS, _BATCH_IMAGES. */
MPNAS_API mpnas_status mpnas_model_domain_stat(const mpnas_model *model, int32_t domain,
                                               int32_t stat, double *value);
/* Top-1 accuracy and mean cross-entropy of `count` labelled images of a domain (the
 * inference path: running statistics, fused kernels). Float images must be finite
 * (MPNAS_E_INVALID_ARGUMENT naming the first image that is not). If a logit or the loss
 * comes out non-finite (a model whose weights overflow float, e.g. a legal file with
 * huge weights) the result is MPNAS_E_CORRUPT with a message, never MPNAS_OK. */
MPNAS_API mpnas_status mpnas_model_evaluate(const mpnas_model *model, int32_t domain,
                                            int32_t dtype, const void *images,
                                            const int32_t *labels, int64_t count,
                                            double *top1, double *loss);
/* Node usage and similarity, as mpnas_space_node_users / mpnas_space_jaccard over the
 * model's paths. */
MPNAS_API mpnas_status mpnas_model_node_users(const mpnas_model *model, int32_t layer,
                                              int32_t op, int32_t *users);
MPNAS_API mpnas_status mpnas_model_jaccard(const mpnas_model *model, double *matrix,
                                           size_t cap);
/* Save the model (space, domains, paths, weights, per-domain statistics; no data, no
 * optimiser state) in the format of docs/MODEL-FORMAT.md, through a temporary file and
 * a rename. save_buffer: *size receives the byte count; buf NULL asks for it only. */
MPNAS_API mpnas_status mpnas_model_save(const mpnas_model *model, const char *path);
MPNAS_API mpnas_status mpnas_model_save_buffer(const mpnas_model *model, void *buf,
                                               size_t cap, size_t *size);
/* Load a saved model (ready for inference, evaluation and further training). The file
 * loader reads at most MPNAS_CONTEXT_MAX_FILE_BYTES (MPNAS_E_CORRUPT beyond it). */
MPNAS_API mpnas_status mpnas_model_load(mpnas_context *ctx, const char *path,
                                        mpnas_model **out);
MPNAS_API mpnas_status mpnas_model_load_buffer(mpnas_context *ctx, const void *data,
                                               size_t size, mpnas_model **out);
/* Export one domain's path as a standard ONNX model (opset 13; docs/EXPORT.md): the
 * domain's input normalisation, stem, layers, head and classifier, its BN statistics
 * folded into the convolutions. Input "input": float32 NCHW [N, C, H, W] (the space's
 * input size), raw pixel values as mpnas_predictor_run takes them (0..255 for 8-bit
 * images; the normalisation is inside the graph); output "logits": [N, classes]. One
 * file per domain. The model must be trained or loaded (MPNAS_E_STATE otherwise); what
 * ONNX cannot hold (a model of 2 GiB or more) is MPNAS_E_UNSUPPORTED. The file is
 * written through a temporary file and a rename, as mpnas_model_save. _buffer: *size
 * receives the byte count; buf NULL asks for it only (as mpnas_model_save_buffer). */
MPNAS_API mpnas_status mpnas_model_export_onnx(const mpnas_model *model, int32_t domain,
                                               const char *path);
MPNAS_API mpnas_status mpnas_model_export_onnx_buffer(const mpnas_model *model, int32_t domain,
                                                      void *buf, size_t cap, size_t *size);
/* Save / restore the complete training state (model + optimiser, ABDP, random streams,
 * step; not the data) to resume an interrupted training run exactly. A checkpoint that
 * is refused (MPNAS_E_INCOMPATIBLE, _CORRUPT, ...) leaves the model exactly as it was;
 * the loader reads at most MPNAS_CONTEXT_MAX_FILE_BYTES. */
MPNAS_API mpnas_status mpnas_model_save_checkpoint(const mpnas_model *model, const char *path);
MPNAS_API mpnas_status mpnas_model_load_checkpoint(mpnas_model *model, const char *path);
/* Load a model checkpoint from memory: `size` bytes of a file written by
 * mpnas_model_save_checkpoint, with the same checks and effects as
 * mpnas_model_load_checkpoint (the buffer is not bounded by MPNAS_CONTEXT_MAX_FILE_BYTES
 * and is not kept). */
MPNAS_API mpnas_status mpnas_model_load_checkpoint_buffer(mpnas_model *model, const void *data,
                                                          size_t size);

/* A predictor runs a model's domains on batches. It keeps its own workspace, which
 * grows to the largest batch seen and is then reused: after the first call of a given
 * batch size no call allocates. It also keeps its own copy of the model's pointwise
 * weights in the kernels' layout (about the model's size), made on the first run and
 * again after the model is trained or loaded into, or the context's ISA changes. One
 * predictor per thread; the model must outlive its predictors and must not be trained,
 * quantised (mpnas_model_quantize, _drop_float) or freed while they run. */
MPNAS_API mpnas_status mpnas_predictor_create(const mpnas_model *model, mpnas_predictor **out);
MPNAS_API void mpnas_predictor_free(mpnas_predictor *predictor);
/* Classify `count` images (NHWC, the space's input size, uint8 or float like the
 * training data; normalised with the domain's statistics) of one domain: writes
 * count x classes logits or probabilities (MPNAS_OUTPUT_*) into out[cap]. Float images
 * must be finite (MPNAS_E_INVALID_ARGUMENT naming the first image that is not). The
 * outputs are always finite: if the model produces a non-finite logit (its weights
 * overflow float) the call fails with MPNAS_E_CORRUPT naming the image, and out's
 * contents are then unspecified. */
MPNAS_API mpnas_status mpnas_predictor_run(mpnas_predictor *predictor, int32_t domain,
                                           int32_t dtype, const void *images, int64_t count,
                                           int32_t output, float *out, size_t cap);

/* ---- int8 inference (docs/QUANTIZATION.md) ---------------------------------------------
 * Post-training quantisation: the nodes' 1x1 and depthwise convolutions and the head's
 * 1x1 conv run in int8 (weights symmetric per output channel with the domain's BN folded
 * into the requantisation, 8-bit activations with one affine per tensor calibrated per
 * domain, int32 sums, the activation fused); the stem conv, squeeze-excite, pooling and
 * the classifiers stay float. A predictor runs either form (its precision). */
enum {
  MPNAS_PRECISION_FLOAT32 = 0, /* the float model (the default) */
  MPNAS_PRECISION_INT8 = 1     /* the int8 form (mpnas_model_quantize) */
};
/* Quantise a trained (or loaded) model, calibrating each domain's activation ranges on
 * calibration_images of its training images (evenly spaced; all of them if it has
 * fewer; 0 = the default 256, at most 65536): the domains' training data must be set
 * (mpnas_model_set_data; MPNAS_E_STATE otherwise, and for a model without weights or
 * with its float weights dropped). Replaces an earlier int8 form; training the model
 * again, or loading a checkpoint into it, drops the int8 form (quantise again). Layer
 * or head activations other than NONE, RELU, RELU6, HSWISH: MPNAS_E_UNSUPPORTED. A
 * quantised model saves as format version 2 with its int8 form (docs/MODEL-FORMAT.md). */
MPNAS_API mpnas_status mpnas_model_quantize(mpnas_model *model, int32_t calibration_images);
/* Make a quantised model int8 only (MPNAS_E_STATE if it is not quantised): saving then
 * writes no float weights (a deployment file about 4x smaller), predictors run int8,
 * mpnas_model_evaluate uses the int8 form; training, checkpoints, float predictors,
 * quantising again and the ONNX export fail with MPNAS_E_STATE. Cannot be undone. */
MPNAS_API mpnas_status mpnas_model_drop_float(mpnas_model *model);
/* A predictor's precision, MPNAS_PRECISION_*: FLOAT32 by default (INT8 for an int8-only
 * model). INT8 needs a quantised model, FLOAT32 its float weights (MPNAS_E_STATE
 * otherwise, here or at the next run if the model changed since). An int8 predictor
 * packs the int8 weights once for the context's kernels, as the float one does. */
MPNAS_API mpnas_status mpnas_predictor_set_precision(mpnas_predictor *predictor,
                                                     int32_t precision);
MPNAS_API mpnas_status mpnas_predictor_get_precision(const mpnas_predictor *predictor,
                                                     int32_t *precision);

/* ==== Parameter descriptions =============================================================
 * What every parameter of the set/get functions accepts, at run time (like zstd's
 * ZSTD_cParam_getBounds): bindings and tools read names, types, ranges and defaults here
 * instead of copying them. The answers come from the same tables the setters and the
 * file loaders check with. These functions take no handle: a failing call returns its
 * status (MPNAS_E_UNKNOWN_PARAMETER for an unknown handle kind or a parameter that kind
 * does not take, MPNAS_E_INVALID_ARGUMENT for a buffer too small) and records no
 * message, there being no context to hold one. */
enum { /* handle kinds: whose set/get functions take the parameter */
  MPNAS_HANDLE_CONTEXT = 1,      /* mpnas_context_set_int: MPNAS_CONTEXT_* */
  MPNAS_HANDLE_SPACE = 2,        /* mpnas_space_set_int: MPNAS_SPACE_* */
  MPNAS_HANDLE_SUPERNET = 3,     /* mpnas_supernet_set_*: MPNAS_SEARCH_*, MPNAS_ABDP_* */
  MPNAS_HANDLE_MODEL = 4,        /* mpnas_model_set_*: MPNAS_TRAIN_*, MPNAS_MODEL_*,
                                    MPNAS_ABDP_* */
  MPNAS_HANDLE_MODEL_DOMAIN = 5  /* mpnas_model_set_domain_int: MPNAS_DOMAIN_* */
};
enum { /* parameter types: which setter and getter take it */
  MPNAS_PARAM_INT = 0, /* *_set_int / *_get_int */
  MPNAS_PARAM_REAL = 1 /* *_set_double / *_get_double */
};
enum { /* parameter flags (bits) */
  MPNAS_PARAM_READ_ONLY = 1, /* get only; its lo, hi and default are NaN */
  MPNAS_PARAM_LO_OPEN = 2,   /* lo itself is refused: lo < value */
  MPNAS_PARAM_HI_OPEN = 4,   /* hi itself is refused: value < hi */
  MPNAS_PARAM_ENUM = 8,      /* the values are named constants (mpnas_param_names) */
  MPNAS_PARAM_ODD = 16       /* odd values only */
};

/* The parameter codes of a handle kind (MPNAS_HANDLE_*), in increasing order, into
 * params[cap]; *count (may be NULL) receives how many there are. params NULL with cap 0
 * asks for the count only. */
MPNAS_API mpnas_status mpnas_param_list(int32_t handle_kind, int32_t *params, size_t cap,
                                        size_t *count);
/* What parameter `param` of a handle kind accepts; any out-pointer may be NULL.
 *  type           MPNAS_PARAM_INT or MPNAS_PARAM_REAL;
 *  lo, hi         the range, both ends included unless flags say otherwise; whole numbers
 *                 for integers (exact up to 2^53: MPNAS_CONTEXT_SEED, any int64_t, gives
 *                 -2^63..2^63, the nearest doubles to its ends);
 *  default_value  what a new handle holds (a space: MPNAS_PRESET_EMPTY's value, which
 *                 the other presets change); NaN if it depends on other settings
 *                 (MPNAS_SEARCH_COST_BETA: the reward form's own);
 *  flags          MPNAS_PARAM_* bits.
 * A value within the bounds can still be refused by a rule they cannot express: an ISA
 * this CPU lacks (MPNAS_CONTEXT_ISA: mpnas_isa_supported), a setting locked once a search
 * or training has started (MPNAS_E_STATE). */
MPNAS_API mpnas_status mpnas_param_bounds(int32_t handle_kind, int32_t param, int32_t *type,
                                          double *lo, double *hi, double *default_value,
                                          int32_t *flags);
/* Names of parameter `param` of a handle kind (static strings; any out-pointer may be
 * NULL): its constant ("MPNAS_SEARCH_STEPS"); its short name, the constant without
 * "MPNAS_" and the handle's word (CONTEXT_, SPACE_, SEARCH_, TRAIN_, MODEL_, DOMAIN_),
 * in lower case ("steps"; ABDP's keep theirs: "abdp_tau"), as the Python wrapper names
 * it; and for an MPNAS_PARAM_ENUM parameter the common prefix of its values' constants
 * ("MPNAS_METHOD_"), else "". */
MPNAS_API mpnas_status mpnas_param_names(int32_t handle_kind, int32_t param, const char **name,
                                         const char **short_name, const char **values_prefix);

#ifdef __cplusplus
}
#endif
#endif /* MPNAS_H */
