/* idx.h - small, fully checked readers of uint8 arrays: the IDX files `make data` writes
 * (LeCun's format: bytes 00 00 08 <ndim>, each dimension as a big-endian int32, then the
 * data in C order) and NumPy's .npy files (numpy.save of a C-order uint8 array; labels
 * may also be any little-endian integer type, each value 0..255). Images are N x H x W
 * or N x H x W x C; labels N. Every size is checked against the file's length before
 * anything is allocated. */
#ifndef MPNAS_EXAMPLES_IDX_H
#define MPNAS_EXAMPLES_IDX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int ndim;
  int64_t dims[4];
  uint8_t *data; /* malloc'ed; free(data) */
} idx_array;

/* Returns 0 on success; on failure a message in err and a non-zero value. */
static int idx_read(const char *path, idx_array *out, char *err, size_t errcap) {
  out->data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errcap, "cannot open %s", path);
    return 1;
  }
  unsigned char head[4];
  int rc = 1;
  if (fread(head, 1, 4, f) != 4 || head[0] || head[1] || head[2] != 0x08 || head[3] < 1 ||
      head[3] > 4) {
    snprintf(err, errcap, "%s: not a uint8 IDX file with 1-4 dimensions", path);
    goto done;
  }
  out->ndim = head[3];
  int64_t total = 1;
  for (int i = 0; i < out->ndim; i++) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) {
      snprintf(err, errcap, "%s: truncated header", path);
      goto done;
    }
    out->dims[i] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
    if (out->dims[i] <= 0 || out->dims[i] > (1 << 28) || total > ((int64_t)1 << 34) / out->dims[i]) {
      snprintf(err, errcap, "%s: dimension %d = %lld is not sane", path, i, (long long)out->dims[i]);
      goto done;
    }
    total *= out->dims[i];
  }
  long header = 4 + 4L * out->ndim;
  if (fseek(f, 0, SEEK_END) != 0 || ftell(f) != header + total) {
    snprintf(err, errcap, "%s: file length does not match its dimensions", path);
    goto done;
  }
  fseek(f, header, SEEK_SET);
  out->data = malloc((size_t)total);
  if (!out->data || fread(out->data, 1, (size_t)total, f) != (size_t)total) {
    snprintf(err, errcap, "%s: cannot read %lld bytes", path, (long long)total);
    free(out->data);
    out->data = NULL;
    goto done;
  }
  rc = 0;
done:
  fclose(f);
  return rc;
}

/* The value of `key` in a .npy header dict ("'descr': '|u1', 'fortran_order': False,
 * 'shape': (3, 32, 32), }"): a pointer just past "'key':" and its spaces, or NULL. */
static inline const char *npy__field(const char *header, const char *key) {
  char quoted[32];
  snprintf(quoted, sizeof quoted, "'%s':", key);
  const char *p = strstr(header, quoted);
  if (!p) return NULL;
  for (p += strlen(quoted); *p == ' '; p++) continue;
  return p;
}

/* A .npy file of 1-4 dimensions: uint8 ('|u1'), or for labels (1 dimension) little-endian
 * integers of 1, 2, 4 or 8 bytes ('<i8', '<u2', ...) whose values are 0..255. Returns 0
 * on success; on failure a message in err and a non-zero value. */
static inline int npy_read(const char *path, idx_array *out, char *err, size_t errcap) {
  out->data = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errcap, "cannot open %.900s", path);
    return 1;
  }
  unsigned char head[10];
  char header[4096];
  int rc = 1;
  uint8_t *raw = NULL;
  if (fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) != 0 || head[6] != 1) {
    snprintf(err, errcap, "%.900s: not a version 1 .npy file", path);
    goto done;
  }
  size_t hlen = (size_t)head[8] | (size_t)head[9] << 8;
  if (hlen >= sizeof header || fread(header, 1, hlen, f) != hlen) {
    snprintf(err, errcap, "%.900s: truncated or oversized .npy header", path);
    goto done;
  }
  header[hlen] = 0;
  const char *descr = npy__field(header, "descr"), *order = npy__field(header, "fortran_order"),
             *shape = npy__field(header, "shape");
  if (!descr || !order || !shape || strncmp(order, "False", 5) != 0 || *shape != '(') {
    snprintf(err, errcap, "%.900s: a C-order array with descr and shape expected", path);
    goto done;
  }
  int64_t total = 1;
  out->ndim = 0;
  for (const char *p = shape + 1; *p && *p != ')';) {
    char *end;
    long long d = strtoll(p, &end, 10);
    if (end == p) break;
    if (out->ndim == 4 || d <= 0 || d > (1 << 28) || total > ((int64_t)1 << 34) / d) {
      snprintf(err, errcap, "%.900s: the shape is not 1-4 sane dimensions", path);
      goto done;
    }
    out->dims[out->ndim++] = d;
    total *= d;
    for (p = end; *p == ',' || *p == ' '; p++) continue;
  }
  /* '|u1' / '<u1' / '|i1': bytes; wider integers only for labels. */
  size_t width = 0;
  int is_signed = descr[2] == 'i';
  if ((descr[1] == '|' || descr[1] == '<') && (descr[2] == 'u' || descr[2] == 'i') &&
      descr[4] == '\'')
    width = (size_t)(descr[3] - '0');
  if (out->ndim < 1 || !(width == 1 || (out->ndim == 1 && (width == 2 || width == 4 ||
                                                           width == 8)))) {
    snprintf(err, errcap, "%.900s: uint8 images or integer labels expected (convert with "
             "numpy.asarray(a, dtype=numpy.uint8))", path);
    goto done;
  }
  long start = 10 + (long)hlen;
  if (fseek(f, 0, SEEK_END) != 0 || ftell(f) != start + total * (long)width) {
    snprintf(err, errcap, "%.900s: file length does not match its shape", path);
    goto done;
  }
  fseek(f, start, SEEK_SET);
  raw = malloc((size_t)total * width);
  if (!raw || fread(raw, width, (size_t)total, f) != (size_t)total) {
    snprintf(err, errcap, "%.900s: cannot read %lld values", path, (long long)total);
    goto done;
  }
  if (width > 1) { /* labels: narrow to bytes, each 0..255 */
    for (int64_t i = 0; i < total; i++) {
      uint64_t v = 0;
      for (size_t b = 0; b < width; b++) v |= (uint64_t)raw[(size_t)i * width + b] << (8 * b);
      int negative = is_signed && (v >> (8 * width - 1)) & 1;
      if (negative || v > 255) {
        snprintf(err, errcap, "%.900s: label %lld is outside 0..255", path, (long long)i);
        goto done;
      }
      raw[i] = (uint8_t)v;
    }
  }
  out->data = raw;
  raw = NULL;
  rc = 0;
done:
  free(raw);
  fclose(f);
  return rc;
}

/* PATH_NO_EXT.idx, or when that does not exist PATH_NO_EXT.npy. */
static inline int array_read(const char *path_no_ext, idx_array *out, char *err, size_t errcap) {
  char path[1100];
  snprintf(path, sizeof path, "%s.idx", path_no_ext);
  FILE *f = fopen(path, "rb");
  if (f) {
    fclose(f);
    return idx_read(path, out, err, errcap);
  }
  snprintf(path, sizeof path, "%s.npy", path_no_ext);
  f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errcap, "cannot open %.200s.idx or .npy", path_no_ext);
    return 1;
  }
  fclose(f);
  return npy_read(path, out, err, errcap);
}

#endif
