/* domain_data.h - one domain's images as the host handed them in, its train/validation
 * split, its input normalisation and batch drawing (with optional augmentation).
 *
 * Shared by the search supernet and the multi-path model (through the multi-domain
 * trainer's domains, net/multidomain.h), so a domain's data is checked, split,
 * normalised and sampled the same way in both phases. */
#ifndef MPNAS_DOMAIN_DATA_H
#define MPNAS_DOMAIN_DATA_H

#include <stdint.h>

#include "common/common.h"
#include "common/rng.h"

#define MPNAS__NAME_MAX 64
#define MPNAS__MAX_IN_CHANNELS 64

/* A split's images as the host gave them (copied). */
typedef struct mpnas__dataset {
  int32_t dtype;   /* MPNAS_DTYPE_* */
  void *images;    /* count * H * W * C of uint8 or float */
  int32_t *labels;
  int64_t count;
} mpnas__dataset;

/* Image geometry (the space's input). */
typedef struct mpnas__image_shape {
  int32_t h, w, c;
} mpnas__image_shape;

/* The host's image layouts (MPNAS_DTYPE_*): uint8 or float, with every channel of the
 * space's input, or grey (one value per pixel, replicated into every channel). A dataset
 * keeps only the two full-channel ones. */
static inline int mpnas__dtype_valid(int32_t dtype) {
  return dtype >= MPNAS_DTYPE_U8 && dtype <= MPNAS_DTYPE_F32_GREY;
}
static inline int mpnas__dtype_grey(int32_t dtype) {
  return dtype == MPNAS_DTYPE_U8_GREY || dtype == MPNAS_DTYPE_F32_GREY;
}
/* MPNAS_DTYPE_U8 or MPNAS_DTYPE_F32: the element type. */
static inline int32_t mpnas__dtype_base(int32_t dtype) {
  return dtype == MPNAS_DTYPE_F32 || dtype == MPNAS_DTYPE_F32_GREY ? MPNAS_DTYPE_F32
                                                                    : MPNAS_DTYPE_U8;
}
static inline size_t mpnas__dtype_elem(int32_t dtype) {
  return mpnas__dtype_base(dtype) == MPNAS_DTYPE_F32 ? sizeof(float) : 1;
}
/* Values per host image of this layout. */
static inline size_t mpnas__dtype_values(int32_t dtype, mpnas__image_shape shape) {
  return (size_t)shape.h * shape.w * (mpnas__dtype_grey(dtype) ? 1 : (size_t)shape.c);
}

typedef struct mpnas__domain_data {
  mpnas__dataset train, valid; /* valid.count == 0: split off train at prepare */
  /* After prepare: indices of the train and validation images, into train or valid. */
  int64_t *train_idx, *valid_idx;
  int64_t ntrain, nvalid;
  const mpnas__dataset *valid_src; /* &train (split) or &valid */
  float mean[MPNAS__MAX_IN_CHANNELS], invstd[MPNAS__MAX_IN_CHANNELS]; /* from train */
  mpnas__rng rng;                  /* batch sampling and augmentation */
} mpnas__domain_data;

/* Check a domain name (1..MPNAS__NAME_MAX-1 printable ASCII characters, 0x20..0x7E) and
 * class count (2..65535); records the failure on ctx. */
mpnas_status mpnas__check_domain(mpnas_context *ctx, const char *name, int32_t classes);

/* Check and copy a host's images and labels into *ds (replacing what it held). */
mpnas_status mpnas__dataset_set(mpnas_context *ctx, mpnas__dataset *ds, const char *domain,
                                int32_t classes, mpnas__image_shape shape, int32_t dtype,
                                const void *images, const int32_t *labels, int64_t count);
/* Float images (MPNAS_DTYPE_F32 or _F32_GREY) must be finite: MPNAS_E_INVALID_ARGUMENT naming
 * the first image that is not (uint8 images always pass). */
mpnas_status mpnas__check_finite_images(mpnas_context *ctx, const char *domain,
                                        mpnas__image_shape shape, int32_t dtype,
                                        const void *images, int64_t count);
/* Copy one dataset into another (already checked). */
mpnas_status mpnas__dataset_clone(mpnas_context *ctx, mpnas__dataset *dst,
                                  const mpnas__dataset *src, mpnas__image_shape shape);
void mpnas__dataset_free(const mpnas_context *ctx, mpnas__dataset *ds);
/* Read pixel `at` of a dataset as a float. */
static inline float mpnas__dataset_pixel(const mpnas__dataset *d, size_t at) {
  return d->dtype == MPNAS_DTYPE_U8 ? (float)((const uint8_t *)d->images)[at]
                                    : ((const float *)d->images)[at];
}

/* Split (a seeded shuffle of the training images when no validation split was given:
 * floor(n * valid_fraction), at least 1, held out), compute the per-channel mean and
 * standard deviation of the training split, seed the sampling stream. `split_stream`
 * and `data_stream` are the rng stream ids. */
mpnas_status mpnas__domain_data_prepare(mpnas_context *ctx, mpnas__domain_data *dd,
                                        const char *name, mpnas__image_shape shape,
                                        double valid_fraction, uint64_t split_stream,
                                        uint64_t data_stream);
/* Free the copied images and the split (leaves an empty, reusable struct). */
void mpnas__domain_data_free(const mpnas_context *ctx, mpnas__domain_data *dd);
/* Free only the split (the state prepare builds). */
void mpnas__domain_data_unprepare(const mpnas_context *ctx, mpnas__domain_data *dd);

/* Augmentation of training batches. */
typedef struct mpnas__augment {
  int32_t pad;   /* random crop of the image padded by `pad` zeros (after normalising) */
  int32_t hflip; /* random horizontal flip with probability 1/2 */
} mpnas__augment;

/* Draw `batch` images uniformly with replacement from the train (valid = 0) or
 * validation split, normalised, into x [batch][H][W][C] and labels. `aug` NULL or all
 * zero: no augmentation (and the same random draws as before augmentation existed). */
void mpnas__domain_data_batch(mpnas__domain_data *dd, mpnas__image_shape shape, int valid,
                              int32_t batch, const mpnas__augment *aug, float *x,
                              int32_t *labels);
/* The same draws, keeping only images [lo, hi) of the batch (into x and labels from
 * their start): a data-parallel worker's share, its stream in step with the others'. */
void mpnas__domain_data_batch_share(mpnas__domain_data *dd, mpnas__image_shape shape,
                                    int valid, int32_t batch, int32_t lo, int32_t hi,
                                    const mpnas__augment *aug, float *x, int32_t *labels);
/* Normalise `count` host images (any MPNAS_DTYPE_*; grey ones replicated into every
 * channel) with the stored statistics into x [count][H][W][C]. */
void mpnas__normalise(const float *mean, const float *invstd, mpnas__image_shape shape,
                      int32_t dtype, const void *images, int64_t count, float *x);

#endif
