/* serial.h - the container every file libmpnas writes goes through (model files, search
 * checkpoints), with CRC32, a sticky-error writer and reader, and file I/O that never
 * leaves a half-written file in place. The byte layout, the checks done on read and the
 * limits are in docs/FILE-CONTAINER.md; keep the two in step.
 *
 * Writing:
 *   mpnas__writer w;
 *   mpnas__writer_init(&w, ctx, &kind);
 *   mpnas__writer_begin_section(&w, "META");
 *   mpnas__writer_put_u32(&w, n); ...
 *   mpnas__writer_end_section(&w);
 *   mpnas_status s = mpnas__writer_to_file(&w, path);   (or _finish / _to_memory)
 *   mpnas__writer_free(&w);
 * Errors are sticky: after the first failure every put is a no-op, and the status comes
 * back from _finish/_to_file/_to_memory (the last-error message is set at the failure).
 *
 * Reading:
 *   mpnas__read_file(ctx, path, max_bytes, &buf, &len);        (or a caller buffer)
 *   mpnas__reader r;
 *   if (mpnas__reader_open(&r, ctx, &kind, buf, len) == MPNAS_OK &&
 *       mpnas__reader_section(&r, "META") == MPNAS_OK) {
 *     uint32_t n = mpnas__reader_get_count(&r, LIMIT, sizeof(float));
 *     ...
 *   }
 *   s = mpnas__reader_status(&r);  mpnas__free(ctx, buf);
 * Opening verifies the whole container (lengths, every CRC, padding), so after a
 * successful open a get_* can only fail because the content disagrees with what the
 * caller expects (a short section, a lying count); those failures are sticky too, the
 * getters then return 0 / zero-fill, and the message names the section and offset.
 *
 * Nothing here keeps global state; a reader allocates nothing and borrows its buffer. */
#ifndef MPNAS_SERIAL_H
#define MPNAS_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "common/rng.h"

#define MPNAS__SERIAL_HEADER_BYTES 32         /* file header */
#define MPNAS__SERIAL_SECTION_HEADER_BYTES 24 /* before each payload */
#define MPNAS__SERIAL_ALIGN 8                 /* payloads are zero-padded to this */
#define MPNAS__SERIAL_MAX_SECTIONS 1024       /* per file; keeps the duplicate check cheap */

/* One kind of file: a model file, a search checkpoint. Declared once, static const, by
 * the module that owns the format. */
typedef struct mpnas__file_kind {
  const char *magic;    /* exactly 8 bytes, e.g. "MPNASMDL" */
  const char *name;     /* for messages: "model", "search checkpoint" */
  uint32_t version;     /* written by writers; the newest version readers accept */
  uint32_t min_version; /* the oldest version readers accept */
} mpnas__file_kind;

/* CRC-32 (IEEE 802.3, as zlib's crc32): start with crc = 0 and feed the previous
 * result to continue, so crc32(crc32(0, a), b) == crc32(0, a || b). */
uint32_t mpnas__crc32(uint32_t crc, const void *data, size_t len);

/* IEEE 754 binary16 ("half"), in plain C (no F16C): float -> half rounds to nearest,
 * ties to even; magnitudes from 65520 up become infinity, below 2^-14 subnormal halves
 * (steps of 2^-24), at most 2^-25 zero (sign kept); NaN stays a (quiet) NaN. half ->
 * float is exact. mpnas__f16_round(v) is v rounded to the nearest half, as a float. */
uint16_t mpnas__f32_to_f16(float v);
float mpnas__f16_to_f32(uint16_t h);
float mpnas__f16_round(float v);
#define MPNAS__F16_MAX 65504.0f            /* the largest finite half */
#define MPNAS__F16_MIN_NORMAL 6.103515625e-5f /* 2^-14: below it halves lose precision */

/* ---- Writer ------------------------------------------------------------------------ */
typedef struct mpnas__writer {
  mpnas_context *ctx;
  const mpnas__file_kind *kind;
  unsigned char *buf; /* the whole file so far, from the context allocator */
  size_t len, cap;
  size_t section;     /* offset of the open section's header; SIZE_MAX when none */
  uint32_t sections;  /* closed sections */
  int finished;       /* header completed: no more puts */
  mpnas_status status; /* the first failure (sticky) */
} mpnas__writer;

/* Start a file of the given kind (version = kind->version). Never fails by itself: a
 * failure (no memory, NULL ctx) is recorded and reported by the finishing call. */
void mpnas__writer_init(mpnas__writer *w, mpnas_context *ctx, const mpnas__file_kind *kind);
/* Release the buffer (unless handed over by _to_memory). Safe on a failed writer. */
void mpnas__writer_free(mpnas__writer *w);

/* Open / close a section. `tag` is exactly 4 printable non-space ASCII characters,
 * unique within the file. Nesting, duplicates and bad tags are MPNAS_E_INTERNAL. */
void mpnas__writer_begin_section(mpnas__writer *w, const char *tag);
void mpnas__writer_end_section(mpnas__writer *w);

/* Append little-endian values to the open section. Floats keep their exact bit pattern
 * (NaN payloads, -0.0, infinities). */
void mpnas__writer_put_u8(mpnas__writer *w, uint8_t v);
void mpnas__writer_put_u32(mpnas__writer *w, uint32_t v);
void mpnas__writer_put_i32(mpnas__writer *w, int32_t v);
void mpnas__writer_put_u64(mpnas__writer *w, uint64_t v);
void mpnas__writer_put_i64(mpnas__writer *w, int64_t v);
void mpnas__writer_put_f32(mpnas__writer *w, float v);
void mpnas__writer_put_f64(mpnas__writer *w, double v);
/* Raw bytes, no length prefix. */
void mpnas__writer_put_bytes(mpnas__writer *w, const void *data, size_t len);
/* u32 byte length + the bytes of a NUL-terminated string (the NUL is not stored). */
void mpnas__writer_put_string(mpnas__writer *w, const char *s);
/* `count` floats, no count prefix (write one with put_u32 if the reader needs it). */
void mpnas__writer_put_f32_array(mpnas__writer *w, const float *v, size_t count);
/* `count` floats as IEEE binary16 (2 bytes each, mpnas__f32_to_f16): exact only for
 * values that are already binary16 values (mpnas__f16_round). */
void mpnas__writer_put_f16_array(mpnas__writer *w, const float *v, size_t count);
/* A random stream's state: u64 state, u64 inc (every file format stores streams so). */
void mpnas__writer_put_rng(mpnas__writer *w, const mpnas__rng *rng);

/* The first failure so far, MPNAS_OK if none. */
mpnas_status mpnas__writer_status(const mpnas__writer *w);
/* Complete the header (section count, total length, CRC); then *data / *len view the
 * file, valid until mpnas__writer_free. A section still open is MPNAS_E_INTERNAL.
 * Calling it again returns the same view. */
mpnas_status mpnas__writer_finish(mpnas__writer *w, const unsigned char **data,
                                  size_t *len);
/* Finish and hand the buffer over: the caller frees *data with mpnas__free(ctx, ...). */
mpnas_status mpnas__writer_to_memory(mpnas__writer *w, unsigned char **data, size_t *len);
/* Finish and write to `path` with mpnas__write_file_atomic. */
mpnas_status mpnas__writer_to_file(mpnas__writer *w, const char *path);

/* ---- Reader ------------------------------------------------------------------------ */
typedef struct mpnas__reader {
  mpnas_context *ctx; /* may be NULL: then failures are only returned, not recorded */
  const mpnas__file_kind *kind;
  const unsigned char *data; /* the caller's buffer (borrowed) */
  size_t len;
  uint32_t version;  /* read-only: the file's format version, after a successful open */
  uint32_t sections; /* read-only: the file's section count */
  const unsigned char *payload; /* the selected section, NULL before _section */
  size_t payload_len, pos;      /* its size and the read position within it */
  size_t payload_offset;        /* its position in the file, for messages */
  char tag[5];                  /* its tag, NUL-terminated */
  mpnas_status status;          /* the first failure (sticky) */
} mpnas__reader;

/* Check the whole container in data[0, len): magic (MPNAS_E_CORRUPT "not a libmpnas
 * <name> file"), version (MPNAS_E_VERSION, naming both numbers), header CRC, lengths,
 * every section's bounds, CRC, tag, flags and padding, unique tags. Allocates nothing;
 * the buffer must outlive the reader. */
mpnas_status mpnas__reader_open(mpnas__reader *r, mpnas_context *ctx,
                                const mpnas__file_kind *kind, const void *data, size_t len);
/* 1 if the (successfully opened) file has a section with this tag, else 0. */
int mpnas__reader_has_section(const mpnas__reader *r, const char *tag);
/* Select a section and read from its start. Missing: sticky MPNAS_E_CORRUPT. */
mpnas_status mpnas__reader_section(mpnas__reader *r, const char *tag);
/* Unread bytes in the selected section (0 after a failure). */
size_t mpnas__reader_remaining(const mpnas__reader *r);
/* Sticky MPNAS_E_CORRUPT unless the selected section has been read to its end. */
mpnas_status mpnas__reader_expect_end(mpnas__reader *r);
/* The first failure so far, MPNAS_OK if none. */
mpnas_status mpnas__reader_status(const mpnas__reader *r);

/* Values from the selected section; past its end: sticky MPNAS_E_CORRUPT, result 0. */
uint8_t mpnas__reader_get_u8(mpnas__reader *r);
uint32_t mpnas__reader_get_u32(mpnas__reader *r);
int32_t mpnas__reader_get_i32(mpnas__reader *r);
uint64_t mpnas__reader_get_u64(mpnas__reader *r);
int64_t mpnas__reader_get_i64(mpnas__reader *r);
float mpnas__reader_get_f32(mpnas__reader *r);
double mpnas__reader_get_f64(mpnas__reader *r);
/* Copy `len` raw bytes (zero-filled on failure). */
void mpnas__reader_get_bytes(mpnas__reader *r, void *dst, size_t len);
/* Borrow `len` raw bytes in place (no copy); NULL on failure. */
const unsigned char *mpnas__reader_get_view(mpnas__reader *r, size_t len);
/* A string written by put_string into dst[0, cap) with a NUL; returns its length.
 * Longer than cap - 1, past the section, or holding a NUL byte: sticky
 * MPNAS_E_CORRUPT and dst = "". */
size_t mpnas__reader_get_string(mpnas__reader *r, char *dst, size_t cap);
/* Exactly `count` floats into caller memory (zero-filled on failure). */
void mpnas__reader_get_f32_array(mpnas__reader *r, float *dst, size_t count);
/* Exactly `count` binary16 values widened to float (exact; zero-filled on failure). */
void mpnas__reader_get_f16_array(mpnas__reader *r, float *dst, size_t count);
/* A random stream written by mpnas__writer_put_rng (check it with mpnas__rng_valid). */
void mpnas__reader_get_rng(mpnas__reader *r, mpnas__rng *rng);
/* An element count (u32) read from the file, before allocating for it: it must be
 * <= max AND count * min_element_bytes must fit in the bytes left in the section, so
 * a lying count fails here instead of causing a huge allocation. 0 on failure. */
uint32_t mpnas__reader_get_count(mpnas__reader *r, uint32_t max, size_t min_element_bytes);

/* The total length the file header at data[0, len) declares, after checking what
 * mpnas__reader_open checks first (magic, version, header CRC; len >= 32): lets a file
 * reader bound its read by the file's own header. */
mpnas_status mpnas__reader_declared_length(mpnas_context *ctx, const mpnas__file_kind *kind,
                                           const void *data, size_t len, uint64_t *total);

/* ---- Files ------------------------------------------------------------------------- */
/* Read a whole file into a new buffer (free with mpnas__free(ctx, *data)). A file
 * larger than max_bytes is refused with MPNAS_E_CORRUPT before anything is allocated
 * for it; open/read failures are MPNAS_E_IO with the errno text. */
mpnas_status mpnas__read_file(mpnas_context *ctx, const char *path, size_t max_bytes,
                              unsigned char **data, size_t *len);
/* Read a file of `kind` (what the loaders use): as mpnas__read_file with the context's
 * MPNAS_CONTEXT_MAX_FILE_BYTES as the limit, and the header checked as soon as its 32
 * bytes have arrived (a wrong magic, version or header CRC fails then), after which the
 * length it declares (at most the limit) bounds the read: a pipe or device that never
 * ends, or streams something else, costs one small read, and a pipe is read up to that
 * length only (its writer need not close it). */
mpnas_status mpnas__read_container(mpnas_context *ctx, const char *path,
                                   const mpnas__file_kind *kind, unsigned char **data,
                                   size_t *len);
/* Replace `path` atomically: write "<path>.tmp.<pid>.<n>" (created exclusively, in the
 * same directory), fsync it, rename it over `path`, then fsync the directory (best
 * effort). On any failure the temporary file is removed, `path` is left exactly as it
 * was, and the result is MPNAS_E_IO with the errno text in the last-error message. An
 * existing file's permission bits are kept. */
mpnas_status mpnas__write_file_atomic(mpnas_context *ctx, const char *path,
                                      const void *data, size_t len);

#endif
