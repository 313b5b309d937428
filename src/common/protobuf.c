/* protobuf.c - see protobuf.h. */
#include "common/protobuf.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

void mpnas__proto_init(mpnas__proto *pb, mpnas_context *ctx) {
  memset(pb, 0, sizeof *pb);
  pb->ctx = ctx;
}

void mpnas__proto_free(mpnas__proto *pb) {
  mpnas__free(pb->ctx, pb->buf);
  pb->buf = NULL;
  pb->len = pb->cap = 0;
}

static int too_big(mpnas__proto *pb) {
  if (pb->status == MPNAS_OK)
    pb->status = mpnas__fail(pb->ctx, MPNAS_E_UNSUPPORTED,
                             "the output would reach 2 GiB, protobuf's limit for one message "
                             "(ONNX external data files are not written)");
  return 0;
}

/* Room for n more bytes; 0 (and the status set) if there is none. */
static int reserve(mpnas__proto *pb, size_t n) {
  if (pb->status != MPNAS_OK) return 0;
  if (n > MPNAS__PROTO_MAX_BYTES - pb->len) return too_big(pb);
  if (pb->len + n <= pb->cap) return 1;
  size_t cap = pb->cap ? pb->cap : 4096;
  while (cap < pb->len + n) cap *= 2;
  unsigned char *b = mpnas__malloc(pb->ctx, cap);
  if (b == NULL) {
    pb->status = mpnas__fail(pb->ctx, MPNAS_E_NO_MEMORY, "allocating %zu bytes for an ONNX model", cap);
    return 0;
  }
  if (pb->len) memcpy(b, pb->buf, pb->len);
  mpnas__free(pb->ctx, pb->buf);
  pb->buf = b;
  pb->cap = cap;
  return 1;
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Encode v at p (room checked by the caller); returns the bytes written. */
static size_t varint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

static void put_varint(mpnas__proto *pb, uint64_t v) {
  if (reserve(pb, 10)) pb->len += varint_put(pb->buf + pb->len, v);
}

static void put_key(mpnas__proto *pb, uint32_t field, unsigned wire) {
  put_varint(pb, ((uint64_t)field << 3) | wire);
}

void mpnas__proto_int(mpnas__proto *pb, uint32_t field, int64_t value) {
  put_key(pb, field, WIRE_VARINT);
  put_varint(pb, (uint64_t)value);
}

static void put_u32_le(unsigned char *p, uint32_t u) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

void mpnas__proto_float(mpnas__proto *pb, uint32_t field, float value) {
  put_key(pb, field, WIRE_FIXED32);
  if (!reserve(pb, 4)) return;
  uint32_t u;
  memcpy(&u, &value, 4);
  put_u32_le(pb->buf + pb->len, u);
  pb->len += 4;
}

void mpnas__proto_bytes(mpnas__proto *pb, uint32_t field, const void *data, size_t len) {
  put_key(pb, field, WIRE_LEN);
  put_varint(pb, len);
  if (!reserve(pb, len)) return;
  if (len) memcpy(pb->buf + pb->len, data, len);
  pb->len += len;
}

void mpnas__proto_string(mpnas__proto *pb, uint32_t field, const char *s) {
  mpnas__proto_bytes(pb, field, s, strlen(s));
}

void mpnas__proto_floats_le(mpnas__proto *pb, uint32_t field, const float *v, size_t count) {
  put_key(pb, field, WIRE_LEN);
  if (count > MPNAS__PROTO_MAX_BYTES / 4) {
    too_big(pb);
    return;
  }
  put_varint(pb, 4 * count);
  if (!reserve(pb, 4 * count)) return;
  for (size_t i = 0; i < count; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    put_u32_le(pb->buf + pb->len + 4 * i, u);
  }
  pb->len += 4 * count;
}

void mpnas__proto_begin(mpnas__proto *pb, uint32_t field) {
  put_key(pb, field, WIRE_LEN);
  if (pb->status != MPNAS_OK) return;
  if (pb->depth == MPNAS__PROTO_MAX_DEPTH) {
    pb->status = mpnas__fail(pb->ctx, MPNAS_E_INTERNAL, "protobuf messages nested too deep");
    return;
  }
  pb->open[pb->depth++] = pb->len;
}

void mpnas__proto_end(mpnas__proto *pb) {
  if (pb->status != MPNAS_OK) return;
  if (pb->depth == 0) {
    pb->status = mpnas__fail(pb->ctx, MPNAS_E_INTERNAL, "protobuf message ended twice");
    return;
  }
  size_t start = pb->open[--pb->depth], body = pb->len - start, n = varint_size(body);
  if (!reserve(pb, n)) return;
  memmove(pb->buf + start + n, pb->buf + start, body);
  varint_put(pb->buf + start, body);
  pb->len += n;
}

mpnas_status mpnas__proto_finish(mpnas__proto *pb, unsigned char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  if (pb->status == MPNAS_OK && pb->depth != 0)
    pb->status = mpnas__fail(pb->ctx, MPNAS_E_INTERNAL, "a protobuf message was left open");
  if (pb->status != MPNAS_OK) {
    mpnas__proto_free(pb);
    return pb->status;
  }
  *data = pb->buf;
  *len = pb->len;
  pb->buf = NULL;
  pb->len = pb->cap = 0;
  return MPNAS_OK;
}
