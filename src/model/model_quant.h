/* model_quant.h - the model's int8 form (docs/QUANTIZATION.md): post-training
 * quantisation, its state, the int8 forward and the QNT8 file section.
 *
 * What is int8: every node's expand, depthwise and project convolutions and the head's
 * 1x1 conv (weights symmetric per output channel, activations per-tensor affine, int32
 * sums, BN and the activation fused into the requantising epilogue, the residual added
 * there too). What stays float: the stem conv (3 input channels: tiny, and its input is
 * the float image), squeeze-excite (a per-image gate, dequantised and requantised
 * around it), the global pool and the classifiers (computed in float from int8-stored
 * weights).
 *
 * Weights stay shared between domains, as the float nodes are: per-output-channel
 * quantisation commutes with BN's per-channel scale, so folding domain d's BN into the
 * weights and quantising gives the same integers for every domain; domain d's BN lives
 * in its epilogue's multiplier and bias. Activation ranges differ per domain (so do BN
 * statistics): each (domain, tensor) has its own calibrated affine. */
#ifndef MPNAS_MODEL_QUANT_H
#define MPNAS_MODEL_QUANT_H

#include "common/serial.h"
#include "model/model.h"
#include "tensor/ops_q8.h"

#define MPNAS__QUANT_DEFAULT_IMAGES 256
#define MPNAS__QUANT_MAX_IMAGES 65536

/* One conv of one domain's path. */
typedef struct mpnas__qconv {
  float *a, *b;       /* domain's folded BN: scale (x the weight scale when folded: */
                      /* mpnas__quant.half) and shift [c] (stored in the file) */
  float *mult, *bias; /* the epilogue: input scale * weight scale * a, and b (derived) */
  mpnas__qparams out; /* the output tensor's affine (calibrated) */
  /* mpnas__quant.half: a and b are int8 codes times these per-tensor steps (halves). */
  float a_step, b_step;
} mpnas__qconv;

typedef struct mpnas__qlayer { /* a path's layer in one domain (unused for zero ops) */
  mpnas__qconv exp, dw, proj;
  mpnas__qparams se_out;
} mpnas__qlayer;

typedef struct mpnas__qnode { /* shared: a node's int8 weights */
  int8_t *exp, *dw, *proj;    /* [cin][cmid] (NULL without expand), [k][k][cmid], [cmid][cout] */
  float *exp_s, *dw_s, *proj_s; /* per output channel (1 when folded: mpnas__quant.half) */
  float *se_w1, *se_b1, *se_w2, *se_b2; /* float, NULL without SE */
} mpnas__qnode;

typedef struct mpnas__qdomain {
  /* The classifier computes in float; its weights are stored int8 per class (symmetric,
   * like the convs') and fc_w holds them dequantised: the file's largest float part
   * otherwise (head channels x classes per domain). */
  int8_t *fc_q;  /* [head_c][classes] */
  float *fc_s;   /* [classes] */
  float *fc_w, *fc_b;
  mpnas__qconv stem, head; /* stem: a, b, out (its conv runs in float: mult unused) */
  mpnas__qlayer *layers;   /* [nlayers] */
} mpnas__qdomain;

typedef struct mpnas__quant {
  mpnas__arena store;   /* every array below */
  int32_t calibration;  /* images per domain asked for */
  /* 1: the weight scales are folded into each domain's BN scale a (all 1), each BN
   * scale and shift array is int8 codes x a half step, every other stored float (not
   * the derived ones) a binary16 value, as QNT8 holds them (format version 3); 0: full
   * floats (version 2: a version-2 file loaded, or a form that does not fit). */
  int half;
  float *stem_w;        /* float [k][k][in_c][stem_c] */
  mpnas__qnode *nodes;  /* [nnodes] */
  int8_t *head;         /* [head_cin][head_c] */
  float *head_s;
  mpnas__qdomain *doms; /* [ndomains] */
} mpnas__quant;

/* Quantise m (built, float weights, each domain's training images present): calibrate
 * on up to `images` training images per domain (evenly spaced), replacing any earlier
 * int8 form. */
mpnas_status mpnas__model_quantize(mpnas_model *m, int32_t images);
/* Dropping the int8 form: mpnas__model_quant_free (model.h). */

/* A predictor's int8 weights packed for one kernel table (as mpnas__model_packed). */
typedef struct mpnas__quant_packed {
  const mpnas__kernels *k; /* NULL: nothing packed */
  uint64_t generation;     /* m->quant_generation it was packed at */
  mpnas__arena store;
  const void **exp, **proj, *head;
} mpnas__quant_packed;
void mpnas__quant_packed_init(mpnas__quant_packed *pk, const mpnas_context *ctx);
void mpnas__quant_packed_free(mpnas__quant_packed *pk);
/* Pack unless current; MPNAS_E_NO_MEMORY leaves pk empty. m must be quantised. */
mpnas_status mpnas__quant_pack(const mpnas_model *m, const mpnas__engine *eng,
                               mpnas__quant_packed *pk);
/* Logits of n normalised images of domain d through the int8 form; pk current
 * (mpnas__quant_pack with the engine the context gives now). */
mpnas_status mpnas__model_infer_q8(const mpnas_model *m, mpnas__arena *ws, int32_t d, int n,
                                   const float *x, float *logits,
                                   const mpnas__quant_packed *pk);

/* The QNT8 section's payload (docs/MODEL-FORMAT.md) into an open section, its floats as
 * halves if m->quant->half; and read from the selected section into m (built, domains
 * set), every value checked; half: the file's floats are halves (version 3). */
void mpnas__quant_write(mpnas__writer *w, const mpnas_model *m);
mpnas_status mpnas__quant_read(mpnas__reader *r, mpnas_model *m, int half, const char *where);

#endif
