/* idx.h - a small, fully checked reader of the uint8 IDX files `make data` writes
 * (LeCun's format: bytes 00 00 08 <ndim>, each dimension as a big-endian int32, then the
 * data in C order). Images are N x H x W (IDX3) or N x H x W x C; labels N (IDX1).
 * Every size is checked against the file's length before anything is allocated. */
#ifndef MPNAS_EXAMPLES_IDX_H
#define MPNAS_EXAMPLES_IDX_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
