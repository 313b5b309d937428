/* domain_data.c - see domain_data.h. */
#include "data/domain_data.h"

#include <math.h>
#include <string.h>

static size_t image_floats(mpnas__image_shape s) { return (size_t)s.h * s.w * s.c; }

mpnas_status mpnas__check_domain(mpnas_context *ctx, const char *name, int32_t classes) {
  if (name == NULL) return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "domain name is NULL");
  size_t len = 0; /* strnlen is POSIX, not C11 */
  while (len < MPNAS__NAME_MAX && name[len] != '\0') len++;
  if (len == 0 || len >= MPNAS__NAME_MAX)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "a domain name has 1..%d characters",
                       MPNAS__NAME_MAX - 1);
  /* Printable ASCII only (0x20..0x7E): names go into messages and files, and a byte
   * outside that range (a control character, UTF-8 or not) would reach them raw. */
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
      return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT,
                         "a domain name must be printable ASCII (byte 0x%02x at %zu)",
                         (unsigned)(unsigned char)name[i], i);
  if (classes < 2 || classes > 65535)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                       "domain \"%s\": num_classes must be 2..65535, got %d", name, (int)classes);
  return MPNAS_OK;
}

static size_t dataset_bytes(const mpnas__dataset *ds, mpnas__image_shape shape) {
  size_t elem = ds->dtype == MPNAS_DTYPE_U8 ? 1 : sizeof(float);
  return image_floats(shape) * elem * (size_t)ds->count;
}

/* Copy the host's images as the dataset keeps them: grey ones replicated into every
 * channel (so everything downstream sees one layout, and a saved checkpoint's data
 * checksum does not depend on how the host handed the images in). */
static void copy_images(void *dst, const void *src, int32_t dtype, mpnas__image_shape shape,
                        int64_t count, size_t bytes) {
  if (!mpnas__dtype_grey(dtype)) {
    memcpy(dst, src, bytes);
    return;
  }
  size_t elem = mpnas__dtype_elem(dtype), pixels = (size_t)shape.h * shape.w * (size_t)count;
  unsigned char *d = dst;
  const unsigned char *v = src;
  for (size_t p = 0; p < pixels; p++)
    for (int32_t c = 0; c < shape.c; c++, d += elem) memcpy(d, v + p * elem, elem);
}

static mpnas_status install(mpnas_context *ctx, mpnas__dataset *ds, int32_t dtype,
                            mpnas__image_shape shape, const void *images,
                            const int32_t *labels, int64_t count, size_t bytes) {
  void *img = mpnas__malloc(ctx, bytes);
  int32_t *lab = mpnas__malloc(ctx, sizeof(int32_t) * (size_t)count);
  if (!img || !lab) {
    mpnas__free(ctx, img);
    mpnas__free(ctx, lab);
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "copying %zu bytes of images", bytes);
  }
  copy_images(img, images, dtype, shape, count, bytes);
  memcpy(lab, labels, sizeof(int32_t) * (size_t)count);
  mpnas__dataset_free(ctx, ds);
  ds->dtype = mpnas__dtype_base(dtype);
  ds->images = img;
  ds->labels = lab;
  ds->count = count;
  return MPNAS_OK;
}

mpnas_status mpnas__dataset_set(mpnas_context *ctx, mpnas__dataset *ds, const char *domain,
                                int32_t classes, mpnas__image_shape shape, int32_t dtype,
                                const void *images, const int32_t *labels, int64_t count) {
  if (!mpnas__dtype_valid(dtype))
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                       "dtype must be MPNAS_DTYPE_U8, _F32, _U8_GREY or _F32_GREY, got %d",
                       (int)dtype);
  if (images == NULL || labels == NULL)
    return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT, "images or labels is NULL");
  if (count < 1 || count > INT32_MAX)
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "count must be 1..%d, got %lld", INT32_MAX,
                       (long long)count);
  for (int64_t i = 0; i < count; i++)
    if (labels[i] < 0 || labels[i] >= classes)
      return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE,
                         "domain \"%s\": label %d of image %lld is outside 0..%d", domain,
                         (int)labels[i], (long long)i, (int)classes - 1);
  size_t per = image_floats(shape), bytes; /* as kept: every channel */
  size_t elem = mpnas__dtype_elem(dtype);
  if (!mpnas__mul_size(per * elem, (size_t)count, &bytes))
    return mpnas__fail(ctx, MPNAS_E_OUT_OF_RANGE, "%lld images do not fit in memory",
                       (long long)count);
  mpnas_status st = mpnas__check_finite_images(ctx, domain, shape, dtype, images, count);
  if (st != MPNAS_OK) return st;
  return install(ctx, ds, dtype, shape, images, labels, count, bytes);
}

mpnas_status mpnas__check_finite_images(mpnas_context *ctx, const char *domain,
                                        mpnas__image_shape shape, int32_t dtype,
                                        const void *images, int64_t count) {
  if (mpnas__dtype_base(dtype) != MPNAS_DTYPE_F32) return MPNAS_OK;
  size_t per = mpnas__dtype_values(dtype, shape);
  const float *v = images;
  for (size_t i = 0; i < per * (size_t)count; i++)
    if (!isfinite(v[i]))
      return mpnas__fail(ctx, MPNAS_E_INVALID_ARGUMENT,
                         "domain \"%s\": image %lld has a non-finite value (%g at element %zu "
                         "of the image)",
                         domain, (long long)(i / per), (double)v[i], i % per);
  return MPNAS_OK;
}

mpnas_status mpnas__dataset_clone(mpnas_context *ctx, mpnas__dataset *dst,
                                  const mpnas__dataset *src, mpnas__image_shape shape) {
  if (src->count == 0) {
    mpnas__dataset_free(ctx, dst);
    return MPNAS_OK;
  }
  return install(ctx, dst, src->dtype, shape, src->images, src->labels, src->count,
                 dataset_bytes(src, shape));
}

void mpnas__dataset_free(const mpnas_context *ctx, mpnas__dataset *ds) {
  mpnas__free(ctx, ds->images);
  mpnas__free(ctx, ds->labels);
  *ds = (mpnas__dataset){0};
}

void mpnas__domain_data_unprepare(const mpnas_context *ctx, mpnas__domain_data *dd) {
  mpnas__free(ctx, dd->train_idx);
  mpnas__free(ctx, dd->valid_idx);
  dd->train_idx = dd->valid_idx = NULL;
  dd->ntrain = dd->nvalid = 0;
  dd->valid_src = NULL;
}

void mpnas__domain_data_free(const mpnas_context *ctx, mpnas__domain_data *dd) {
  mpnas__domain_data_unprepare(ctx, dd);
  mpnas__dataset_free(ctx, &dd->train);
  mpnas__dataset_free(ctx, &dd->valid);
}

mpnas_status mpnas__domain_data_prepare(mpnas_context *ctx, mpnas__domain_data *dd,
                                        const char *name, mpnas__image_shape shape,
                                        double valid_fraction, uint64_t split_stream,
                                        uint64_t data_stream) {
  mpnas__domain_data_unprepare(ctx, dd);
  int64_t n = dd->train.count;
  int split = dd->valid.count == 0;
  int64_t nvalid = split ? (int64_t)floor((double)n * valid_fraction) : dd->valid.count;
  if (split && nvalid < 1) nvalid = 1;
  int64_t ntrain = split ? n - nvalid : n;
  if (ntrain < 1)
    return mpnas__fail(ctx, MPNAS_E_STATE,
                       "domain \"%s\" has %lld training images: too few to hold out a "
                       "validation split (give one with MPNAS_SPLIT_VALID)",
                       name, (long long)n);
  dd->train_idx = mpnas__malloc(ctx, sizeof(int64_t) * (size_t)ntrain);
  dd->valid_idx = mpnas__malloc(ctx, sizeof(int64_t) * (size_t)nvalid);
  if (!dd->train_idx || !dd->valid_idx)
    return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating domain \"%s\"", name);
  if (split) {
    /* A seeded shuffle of the training images; the first nvalid are held out. */
    int64_t *perm = mpnas__malloc(ctx, sizeof(int64_t) * (size_t)n);
    if (!perm) return mpnas__fail(ctx, MPNAS_E_NO_MEMORY, "allocating a split");
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    mpnas__rng rng;
    mpnas__rng_seed(&rng, ctx->seed, split_stream);
    for (int64_t i = n - 1; i > 0; i--) {
      int64_t j = (int64_t)(((uint64_t)mpnas__rng_u32(&rng) << 32 | mpnas__rng_u32(&rng)) %
                            (uint64_t)(i + 1));
      int64_t t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    memcpy(dd->valid_idx, perm, sizeof(int64_t) * (size_t)nvalid);
    memcpy(dd->train_idx, perm + nvalid, sizeof(int64_t) * (size_t)ntrain);
    mpnas__free(ctx, perm);
    dd->valid_src = &dd->train;
  } else {
    for (int64_t i = 0; i < ntrain; i++) dd->train_idx[i] = i;
    for (int64_t i = 0; i < nvalid; i++) dd->valid_idx[i] = i;
    dd->valid_src = &dd->valid;
  }
  dd->ntrain = ntrain;
  dd->nvalid = nvalid;

  /* Per-channel mean and standard deviation over the training split. */
  int32_t c = shape.c;
  size_t px = (size_t)shape.h * shape.w;
  double sum[MPNAS__MAX_IN_CHANNELS] = {0}, sq[MPNAS__MAX_IN_CHANNELS] = {0};
  for (int64_t i = 0; i < ntrain; i++) {
    size_t base = (size_t)dd->train_idx[i] * px * (size_t)c;
    for (size_t p = 0; p < px; p++)
      for (int32_t ch = 0; ch < c; ch++) {
        double v = mpnas__dataset_pixel(&dd->train, base + p * (size_t)c + (size_t)ch);
        sum[ch] += v;
        sq[ch] += v * v;
      }
  }
  double count = (double)ntrain * (double)px;
  for (int32_t ch = 0; ch < c; ch++) {
    double mean = sum[ch] / count, var = sq[ch] / count - mean * mean;
    dd->mean[ch] = (float)mean;
    dd->invstd[ch] = (float)(1.0 / sqrt(var > 1e-12 ? var : 1e-12));
    if (var < 1e-12) dd->invstd[ch] = 1.0f; /* a constant channel: only centre it */
  }
  mpnas__rng_seed(&dd->rng, ctx->seed, data_stream);
  return MPNAS_OK;
}

/* Copy image `i` of src into dst normalised, cropped at (dy, dx) from the image padded
 * by zeros (after normalising: the padding is the mean colour) and optionally mirrored.
 * Pixel by pixel with the channels inside, the stored type's loop chosen once per image
 * (a validation batch is millions of values, drawn while no other work runs). */
static void put_image(const mpnas__domain_data *dd, mpnas__image_shape s,
                      const mpnas__dataset *src, int64_t i, int dy, int dx, int flip,
                      float *dst) {
  const int c = s.c;
  const size_t base = (size_t)i * image_floats(s);
  const uint8_t *u8 = src->dtype == MPNAS_DTYPE_U8 ? (const uint8_t *)src->images + base : NULL;
  const float *f32 = u8 ? NULL : (const float *)src->images + base;
  const float *mean = dd->mean, *invstd = dd->invstd;
  for (int y = 0; y < s.h; y++)
    for (int x = 0; x < s.w; x++) {
      int sy = y + dy, sx0 = x + dx;
      int sx = flip ? s.w - 1 - sx0 : sx0;
      float *o = dst + ((size_t)y * s.w + x) * c;
      if (sy < 0 || sy >= s.h || sx0 < 0 || sx0 >= s.w) {
        for (int ch = 0; ch < c; ch++) o[ch] = 0.0f;
        continue;
      }
      size_t at = ((size_t)sy * s.w + sx) * c;
      if (u8)
        for (int ch = 0; ch < c; ch++) o[ch] = ((float)u8[at + ch] - mean[ch]) * invstd[ch];
      else
        for (int ch = 0; ch < c; ch++) o[ch] = (f32[at + ch] - mean[ch]) * invstd[ch];
    }
}

void mpnas__domain_data_batch(mpnas__domain_data *dd, mpnas__image_shape shape, int valid,
                              int32_t batch, const mpnas__augment *aug, float *x,
                              int32_t *labels) {
  mpnas__domain_data_batch_share(dd, shape, valid, batch, 0, batch, aug, x, labels);
}

void mpnas__domain_data_batch_share(mpnas__domain_data *dd, mpnas__image_shape shape,
                                    int valid, int32_t batch, int32_t lo, int32_t hi,
                                    const mpnas__augment *aug, float *x, int32_t *labels) {
  const mpnas__dataset *src = valid ? dd->valid_src : &dd->train;
  const int64_t *idx = valid ? dd->valid_idx : dd->train_idx;
  int64_t n = valid ? dd->nvalid : dd->ntrain;
  size_t per = image_floats(shape);
  int pad = aug ? aug->pad : 0, hflip = aug ? aug->hflip : 0;
  for (int32_t b = 0; b < batch; b++) {
    /* Uniform with replacement: the state is two words, trivial to checkpoint. */
    uint64_t r = (uint64_t)mpnas__rng_u32(&dd->rng) << 32 | mpnas__rng_u32(&dd->rng);
    int64_t i = idx[r % (uint64_t)n];
    int dy = 0, dx = 0, flip = 0;
    if (pad > 0) {
      uint32_t span = 2u * (uint32_t)pad + 1u;
      dy = (int)(mpnas__rng_u32(&dd->rng) % span) - pad;
      dx = (int)(mpnas__rng_u32(&dd->rng) % span) - pad;
    }
    if (hflip) flip = (int)(mpnas__rng_u32(&dd->rng) & 1u);
    if (b < lo || b >= hi) continue; /* another worker's image: only its draws */
    put_image(dd, shape, src, i, dy, dx, flip, x + (size_t)(b - lo) * per);
    labels[b - lo] = src->labels[i];
  }
}

void mpnas__normalise(const float *mean, const float *invstd, mpnas__image_shape shape,
                      int32_t dtype, const void *images, int64_t count, float *x) {
  mpnas__dataset view = {mpnas__dtype_base(dtype), (void *)(uintptr_t)images, NULL, count};
  size_t total = image_floats(shape) * (size_t)count;
  size_t c = (size_t)shape.c, grey = (size_t)mpnas__dtype_grey(dtype);
  for (size_t p = 0; p < total; p++) {
    size_t ch = p % c;
    x[p] = (mpnas__dataset_pixel(&view, grey ? p / c : p) - mean[ch]) * invstd[ch];
  }
}
