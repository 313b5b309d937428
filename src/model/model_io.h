/* model_io.h - what the model file (model_io.c) shares with the training checkpoint
 * (model_checkpoint.c), which is a model file with two more sections
 * (docs/MODEL-FORMAT.md): the file kind, META, the parsed header sections, the array
 * sections' checks and the messages that name the file. Private to src/model/. */
#ifndef MPNAS_MODEL_IO_H
#define MPNAS_MODEL_IO_H

#include "common/serial.h"
#include "model/model.h"

/* Readers take versions 1 to 3; quantised models are written as 3 (QNT8's floats as
 * halves) or 2 (full floats: loaded from version 2, or values outside half's range),
 * the rest (and every checkpoint) as 1. */
extern const mpnas__file_kind mpnas__model_kind, mpnas__model_kind_v1;

/* META.contents */
#define MPNAS__CONTENTS_MODEL 0u
#define MPNAS__CONTENTS_CHECKPOINT 1u
#define MPNAS__CONTENTS_INT8 2u /* version >= 2: the int8 form alone, no float weights */

typedef struct mpnas__model_meta {
  uint32_t contents, writer_version;
  int32_t nlayers, ndomains, nnodes;
  uint64_t params, buffers;
} mpnas__model_meta;

/* A domain as DOMS holds it. */
typedef struct mpnas__file_domain {
  char name[MPNAS__NAME_MAX];
  int32_t classes, hflip;
  int64_t bn_updates;
  int32_t path[MPNAS__MAX_LAYERS];
  float mean[MPNAS__MAX_IN_CHANNELS], invstd[MPNAS__MAX_IN_CHANNELS];
} mpnas__file_domain;

/* Everything a file holds except the big arrays, read and checked. */
typedef struct mpnas__model_parsed {
  mpnas__model_meta h;
  mpnas_space space;
  mpnas__file_domain *doms; /* [h.ndomains] */
  mpnas__train_config cfg;
} mpnas__model_parsed;

static inline int mpnas__in_range(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

/* A failure naming the file (`where`). */
mpnas_status mpnas__model_bad(mpnas_context *ctx, mpnas_status st, const char *where,
                              const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Make sure the last error since `mark` names the file. */
mpnas_status mpnas__model_annotate(mpnas_context *ctx, mpnas_status st, uint64_t mark,
                                   const char *where);

/* Little-endian float arrays as the file holds them. */
void mpnas__decode_f32(float *dst, const unsigned char *src, size_t n);
size_t mpnas__first_non_finite(const unsigned char *src, size_t n);

/* Writing: META SPCE DOMS CONF PARW PARB (QNT8) of a model file, or of a checkpoint
 * (with_state: META.contents 1, no QNT8), after checking the model can be saved so. */
mpnas_status mpnas__model_put_file(mpnas__writer *w, const mpnas_model *m, int with_state);

/* Reading: open the container and read META, SPCE, DOMS, CONF (and check them). */
mpnas_status mpnas__model_parse(mpnas_context *ctx, mpnas__reader *r, const void *data,
                                size_t size, const char *where, mpnas__model_parsed *p);
int mpnas__model_space_same(const mpnas_space *a, const mpnas_space *b);
/* Select a section holding exactly `count` floats (times `arrays`) and borrow them. */
const unsigned char *mpnas__model_float_section(mpnas_context *ctx, mpnas__reader *r,
                                                const char *tag, uint64_t count, int arrays,
                                                const char *where, mpnas_status *st);
/* META's sizes against the layout: a lower bound before building, exact after. */
mpnas_status mpnas__model_check_bound(mpnas_context *ctx, const mpnas_model *m,
                                      const mpnas__model_meta *h, const char *where);
mpnas_status mpnas__model_check_layout(mpnas_context *ctx, const mpnas_model *m,
                                       const mpnas__model_meta *h, const char *where);
/* Weights finite; statistics finite, variances >= 0. */
mpnas_status mpnas__model_check_values(mpnas_context *ctx, const mpnas_model *m,
                                       const unsigned char *w, const unsigned char *b,
                                       const char *where);
/* A file's domain settings (hflip, BN updates, input normalisation) into the model's. */
void mpnas__file_domain_apply(mpnas__domain *dm, const mpnas__file_domain *f, int32_t in_c);

#endif
