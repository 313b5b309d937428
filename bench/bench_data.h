/* bench_data.h - one image domain of IDX files as the library's input: uint8 RGB images
 * (NHWC) at a given height x width, and int32 labels (header-only, for bench_mdd.c).
 *
 * Layout: DIR/NAME/{train,test}-{images,labels}.idx, uint8 IDX as `make data` writes,
 * or the same names with .npy (numpy.save of uint8 arrays; labels of any integer type):
 * examples/idx.h. Images are N x H x W (grey) or N x H x W x C with C = 1 (grey),
 * 3 (RGB) or 4 (RGBA: alpha dropped); grey is replicated to the three channels. Any H, W
 * is accepted: images of another size are resampled per axis, by area average when an
 * axis shrinks (each output pixel the coverage-weighted mean of the input pixels under
 * it) and bilinearly when it grows (pixel centres aligned, edges clamped), then rounded.
 * Labels are IDX1, one byte per image. The class count is the training split's largest
 * label + 1 (at least 2); a test label outside it, or image and label counts that
 * differ, are refused with a message naming the file. */
#ifndef MPNAS_BENCH_DATA_H
#define MPNAS_BENCH_DATA_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

typedef struct bench_split {
  uint8_t *x;     /* n x height x width x 3 */
  int32_t *y;     /* n labels */
  int64_t n;
  int64_t src_h, src_w, src_c; /* the file's image size and channels */
} bench_split;

/* A message into err (vsnprintf: long paths are cut, never overflow). */
static inline void bench__error(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void bench__error(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* Resampling weights of one axis: output o reads input first[o] .. first[o]+count[o]-1
 * with weights w[o * max + k]. */
typedef struct bench_taps {
  int64_t max;
  int64_t *first, *count;
  float *w;
} bench_taps;

static inline void bench_taps_free(bench_taps *t) {
  free(t->first);
  free(t->count);
  free(t->w);
}

/* Area average (out < in) or bilinear (out >= in) weights from `in` to `out` pixels. */
static inline int bench_taps_make(int64_t in, int64_t out, bench_taps *t) {
  double scale = (double)in / (double)out;
  t->max = out < in ? (int64_t)ceil(scale) + 1 : 2;
  t->first = malloc(sizeof(int64_t) * (size_t)out);
  t->count = malloc(sizeof(int64_t) * (size_t)out);
  t->w = calloc((size_t)(out * t->max), sizeof(float));
  if (!t->first || !t->count || !t->w) return 1;
  for (int64_t o = 0; o < out; o++) {
    float *w = t->w + o * t->max;
    if (out < in) { /* the input interval [lo, hi) this pixel covers */
      double lo = (double)o * scale, hi = (double)(o + 1) * scale;
      t->first[o] = (int64_t)floor(lo);
      t->count[o] = 0;
      for (int64_t i = t->first[o]; (double)i < hi && i < in; i++) {
        double a = lo > (double)i ? lo : (double)i, b = hi < (double)(i + 1) ? hi : (double)(i + 1);
        w[t->count[o]++] = (float)((b - a) / scale);
      }
    } else { /* bilinear between the two nearest input centres */
      double x = ((double)o + 0.5) * scale - 0.5;
      x = x < 0 ? 0 : x > (double)(in - 1) ? (double)(in - 1) : x;
      t->first[o] = (int64_t)floor(x);
      t->count[o] = t->first[o] + 1 < in ? 2 : 1;
      w[0] = (float)(1.0 - (x - (double)t->first[o]));
      w[1] = 1.0f - w[0];
    }
  }
  return 0;
}

/* One image: src (h x w x c bytes) to dst (oh x ow x 3 bytes); tmp holds h x ow x 3
 * floats. Channels: 1 replicated, 3 as is, 4 without alpha. */
static inline void bench_resample(const uint8_t *src, int64_t h, int64_t w, int64_t c,
                                  const bench_taps *tx, const bench_taps *ty, int64_t oh,
                                  int64_t ow, float *tmp, uint8_t *dst) {
  for (int64_t r = 0; r < h; r++)
    for (int64_t o = 0; o < ow; o++)
      for (int ch = 0; ch < 3; ch++) {
        float s = 0;
        for (int64_t k = 0; k < tx->count[o]; k++)
          s += tx->w[o * tx->max + k] * src[(r * w + tx->first[o] + k) * c + (c == 1 ? 0 : ch)];
        tmp[(r * ow + o) * 3 + ch] = s;
      }
  for (int64_t o = 0; o < oh; o++)
    for (int64_t x = 0; x < ow * 3; x++) {
      float s = 0;
      for (int64_t k = 0; k < ty->count[o]; k++)
        s += ty->w[o * ty->max + k] * tmp[(ty->first[o] + k) * ow * 3 + x];
      s = s < 0 ? 0 : s > 255 ? 255 : s;
      dst[o * ow * 3 + x] = (uint8_t)lrintf(s);
    }
}

/* Read DIR/NAME/WHICH-images.idx and -labels.idx into s at oh x ow x 3. Returns 0, or 1
 * with a message in err. */
static inline int bench_load_split(const char *dir, const char *name, const char *which,
                                   int64_t oh, int64_t ow, bench_split *s, char *err,
                                   size_t errcap) {
  char ipath[1024], lpath[1024];
  idx_array im = {0}, lb = {0};
  bench_taps tx = {0}, ty = {0};
  float *tmp = NULL;
  int rc = 1;
  memset(s, 0, sizeof *s);
  snprintf(ipath, sizeof ipath, "%s/%s/%s-images", dir, name, which); /* .idx or .npy */
  snprintf(lpath, sizeof lpath, "%s/%s/%s-labels", dir, name, which);
  if (array_read(ipath, &im, err, errcap) != 0 || array_read(lpath, &lb, err, errcap) != 0)
    goto done;
  int64_t c = im.ndim == 4 ? im.dims[3] : 1;
  if (im.ndim < 3 || (c != 1 && c != 3 && c != 4)) {
    bench__error(err, errcap, "%s: images must be N x H x W or N x H x W x C with C = 1, 3 or 4",
                 ipath);
    goto done;
  }
  if (lb.ndim != 1 || lb.dims[0] != im.dims[0]) {
    bench__error(err, errcap, "%s: %lld labels (1 dimension expected) for %lld images in %s", lpath,
             (long long)(lb.ndim == 1 ? lb.dims[0] : -1), (long long)im.dims[0], ipath);
    goto done;
  }
  s->n = im.dims[0];
  s->src_h = im.dims[1];
  s->src_w = im.dims[2];
  s->src_c = c;
  s->x = malloc((size_t)(s->n * oh * ow * 3));
  s->y = malloc(sizeof(int32_t) * (size_t)s->n);
  tmp = malloc(sizeof(float) * (size_t)(s->src_h * ow * 3));
  if (!s->x || !s->y || !tmp || bench_taps_make(s->src_w, ow, &tx) ||
      bench_taps_make(s->src_h, oh, &ty)) {
    bench__error(err, errcap, "%s: out of memory", ipath);
    goto done;
  }
  size_t in_size = (size_t)(s->src_h * s->src_w * c), out_size = (size_t)(oh * ow * 3);
  for (int64_t i = 0; i < s->n; i++) {
    bench_resample(im.data + (size_t)i * in_size, s->src_h, s->src_w, c, &tx, &ty, oh, ow, tmp,
                   s->x + (size_t)i * out_size);
    s->y[i] = lb.data[i];
  }
  rc = 0;
done:
  if (rc != 0) {
    free(s->x);
    free(s->y);
    s->x = NULL;
    s->y = NULL;
  }
  bench_taps_free(&tx);
  bench_taps_free(&ty);
  free(tmp);
  free(im.data);
  free(lb.data);
  return rc;
}

static inline void bench_split_free(bench_split *s) {
  free(s->x);
  free(s->y);
  memset(s, 0, sizeof *s);
}

/* Classes of a domain: the train split's largest label + 1; checks it is >= 2 and that
 * every test label is below it. Returns the count, or 0 with a message in err. */
static inline int32_t bench_classes(const char *dir, const char *name, const bench_split *train,
                                    const bench_split *test, char *err, size_t errcap) {
  int32_t classes = 0;
  for (int64_t i = 0; i < train->n; i++)
    if (train->y[i] + 1 > classes) classes = train->y[i] + 1;
  if (classes < 2) {
    bench__error(err, errcap, "%s/%s/train-labels.idx: %d class(es), a domain needs at least 2",
                 dir, name, (int)classes);
    return 0;
  }
  for (int64_t i = 0; i < test->n; i++)
    if (test->y[i] >= classes) {
      bench__error(err, errcap,
               "%s/%s/test-labels.idx: label %d of image %lld is outside the %d classes of the "
               "training split (labels 0..%d)",
               dir, name, (int)test->y[i], (long long)i, (int)classes, (int)classes - 1);
      return 0;
    }
  return classes;
}

#endif
