/* protobuf.h - a small writer of the Protocol Buffers wire format: enough to emit a
 * message tree (varints, 32-bit floats, length-delimited bytes and nested messages)
 * into one growing buffer, for the ONNX export (model/model_onnx.c).
 *
 * A nested message's length precedes its contents on the wire but is known only at its
 * end, so _begin remembers where the contents start and _end moves them right by the
 * length's size and writes the length in front. Nesting is shallow (ONNX needs three
 * levels), so the moves cost a few copies of the data at most.
 *
 * Failures are sticky: after the first (allocation, more than MPNAS__PROTO_MAX_DEPTH open
 * messages, a message of 2 GiB or more, which protobuf parsers refuse) every call does
 * nothing and mpnas__proto_finish returns the status, recorded on the context. */
#ifndef MPNAS_PROTOBUF_H
#define MPNAS_PROTOBUF_H

#include "common/common.h"

#define MPNAS__PROTO_MAX_DEPTH 8
#define MPNAS__PROTO_MAX_BYTES ((size_t)INT32_MAX) /* protobuf's limit for one message */

typedef struct mpnas__proto {
  mpnas_context *ctx;
  unsigned char *buf;
  size_t len, cap;
  size_t open[MPNAS__PROTO_MAX_DEPTH]; /* where each open message's contents start */
  int depth;
  mpnas_status status;
} mpnas__proto;

void mpnas__proto_init(mpnas__proto *pb, mpnas_context *ctx);
void mpnas__proto_free(mpnas__proto *pb);
/* Field `field` as a varint (int32, int64, enum; negative values as 10-byte varints,
 * as protobuf encodes them). */
void mpnas__proto_int(mpnas__proto *pb, uint32_t field, int64_t value);
/* Field `field` as a 32-bit float (wire type 5). */
void mpnas__proto_float(mpnas__proto *pb, uint32_t field, float value);
/* Field `field` as length-delimited bytes / a NUL-terminated string. */
void mpnas__proto_bytes(mpnas__proto *pb, uint32_t field, const void *data, size_t len);
void mpnas__proto_string(mpnas__proto *pb, uint32_t field, const char *s);
/* Field `field` as `count` floats, little-endian, in one bytes field (ONNX raw_data). */
void mpnas__proto_floats_le(mpnas__proto *pb, uint32_t field, const float *v, size_t count);
/* A nested message in field `field`: its fields go between _begin and _end. */
void mpnas__proto_begin(mpnas__proto *pb, uint32_t field);
void mpnas__proto_end(mpnas__proto *pb);
/* The finished bytes (every message closed): *data is handed over (free it with
 * mpnas__free) and the writer is left empty. On failure nothing is handed over. */
mpnas_status mpnas__proto_finish(mpnas__proto *pb, unsigned char **data, size_t *len);

#endif
