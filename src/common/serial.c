/* serial.c - the file container (docs/FILE-CONTAINER.md): CRC32, writer, reader. The
 * files themselves (whole-file read, atomic replace) are in file.c.
 *
 * Portability: plain C11; every multi-byte value is assembled byte by byte, so the file
 * is the same on any host. */
#include "common/serial.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Floats are stored as their IEEE-754 bit patterns. */
_Static_assert(sizeof(float) == 4, "float must be 32-bit IEEE-754");
_Static_assert(sizeof(double) == 8, "double must be 64-bit IEEE-754");

/* ---- CRC-32 ---------------------------------------------------------------------------
 * Reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF. The table is const
 * data (generated once by the bitwise definition; tests/test_serial.c re-derives it), so
 * there is nothing to initialise and no shared mutable state. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

uint32_t mpnas__crc32(uint32_t crc, const void *data, size_t len) {
  const unsigned char *p = data;
  crc = ~crc;
  for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}

/* ---- Little-endian encoding, byte by byte ------------------------------------------ */
static void store_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}
static void store_u64(unsigned char *p, uint64_t v) {
  store_u32(p, (uint32_t)v);
  store_u32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t load_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t load_u64(const unsigned char *p) {
  return (uint64_t)load_u32(p) | (uint64_t)load_u32(p + 4) << 32;
}

/* Offsets inside the file header and a section header (docs/FILE-CONTAINER.md). */
enum {
  HDR_MAGIC = 0,
  HDR_VERSION = 8,
  HDR_SECTIONS = 12,
  HDR_TOTAL = 16,
  HDR_RESERVED = 24,
  HDR_CRC = 28, /* CRC of bytes [0, 28) */
  SEC_TAG = 0,
  SEC_FLAGS = 4,
  SEC_LENGTH = 8,
  SEC_RESERVED = 16,
  SEC_CRC = 20 /* CRC of bytes [0, 20) of the section header, then the payload */
};

static size_t pad_of(uint64_t n) {
  return (size_t)((MPNAS__SERIAL_ALIGN - n % MPNAS__SERIAL_ALIGN) % MPNAS__SERIAL_ALIGN);
}

/* Printable, non-space ASCII: tags show up readably in a hex dump. */
static int tag_byte_ok(unsigned char c) { return c > 0x20 && c < 0x7f; }

static int tag_ok(const char *tag) {
  if (tag == NULL) return 0;
  for (int i = 0; i < 4; i++)
    if (!tag_byte_ok((unsigned char)tag[i])) return 0;
  return tag[4] == '\0';
}

static uint32_t section_crc(const unsigned char *header, const unsigned char *payload,
                            size_t len) {
  return mpnas__crc32(mpnas__crc32(0, header, SEC_CRC), payload, len);
}

/* ---- Writer ------------------------------------------------------------------------ */
static void writer_fail(mpnas__writer *w, mpnas_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void writer_fail(mpnas__writer *w, mpnas_status status, const char *fmt, ...) {
  if (w->status != MPNAS_OK) return; /* keep the first failure's message */
  char msg[MPNAS__ERROR_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  w->status = mpnas__fail(w->ctx, status, "writing a %s file: %s",
                          w->kind != NULL && w->kind->name != NULL ? w->kind->name : "",
                          msg);
}

/* Make room for n more bytes; 0 (and a sticky failure) if that is impossible. */
static int writer_reserve(mpnas__writer *w, size_t n) {
  if (w->status != MPNAS_OK) return 0;
  if (n <= w->cap - w->len) return 1;
  if (n > SIZE_MAX - w->len) {
    writer_fail(w, MPNAS_E_NO_MEMORY, "file would exceed the address space");
    return 0;
  }
  size_t need = w->len + n;
  size_t cap = w->cap < 4096 ? 4096 : w->cap;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  /* The context allocator has no realloc: copy into a fresh block. */
  unsigned char *grown = mpnas__malloc(w->ctx, cap);
  if (grown == NULL) {
    writer_fail(w, MPNAS_E_NO_MEMORY, "cannot grow the buffer to %zu bytes", cap);
    return 0;
  }
  if (w->len > 0) memcpy(grown, w->buf, w->len);
  mpnas__free(w->ctx, w->buf);
  w->buf = grown;
  w->cap = cap;
  return 1;
}

/* Space for n payload bytes in the open section, or NULL. */
static unsigned char *writer_space(mpnas__writer *w, size_t n) {
  if (w->status != MPNAS_OK) return NULL;
  if (w->section == SIZE_MAX) {
    writer_fail(w, MPNAS_E_INTERNAL, "a value was written outside any section");
    return NULL;
  }
  if (!writer_reserve(w, n)) return NULL;
  unsigned char *p = w->buf + w->len;
  w->len += n;
  return p;
}

void mpnas__writer_init(mpnas__writer *w, mpnas_context *ctx, const mpnas__file_kind *kind) {
  memset(w, 0, sizeof *w);
  w->ctx = ctx;
  w->kind = kind;
  w->section = SIZE_MAX;
  w->status = MPNAS_OK;
  if (ctx == NULL || kind == NULL || kind->magic == NULL || strlen(kind->magic) != 8) {
    w->status = mpnas__fail(ctx, MPNAS_E_INTERNAL, "writer started without a context or "
                                                   "with a bad file kind");
    return;
  }
  if (!writer_reserve(w, MPNAS__SERIAL_HEADER_BYTES)) return;
  /* The header is completed by _finish; zeros until then. */
  memset(w->buf, 0, MPNAS__SERIAL_HEADER_BYTES);
  memcpy(w->buf + HDR_MAGIC, kind->magic, 8);
  store_u32(w->buf + HDR_VERSION, kind->version);
  w->len = MPNAS__SERIAL_HEADER_BYTES;
}

void mpnas__writer_free(mpnas__writer *w) {
  if (w == NULL) return;
  if (w->buf != NULL) mpnas__free(w->ctx, w->buf);
  w->buf = NULL;
  w->len = w->cap = 0;
}

void mpnas__writer_begin_section(mpnas__writer *w, const char *tag) {
  if (w->status != MPNAS_OK) return;
  if (w->finished) {
    writer_fail(w, MPNAS_E_INTERNAL, "section started after the file was finished");
    return;
  }
  if (!tag_ok(tag)) {
    writer_fail(w, MPNAS_E_INTERNAL, "a section tag must be 4 printable characters");
    return;
  }
  if (w->section != SIZE_MAX) {
    writer_fail(w, MPNAS_E_INTERNAL, "section '%s' started inside another section", tag);
    return;
  }
  if (w->sections >= MPNAS__SERIAL_MAX_SECTIONS) {
    writer_fail(w, MPNAS_E_INTERNAL, "more than %d sections", MPNAS__SERIAL_MAX_SECTIONS);
    return;
  }
  /* Tags are unique so that a reader's lookup is unambiguous. */
  size_t off = MPNAS__SERIAL_HEADER_BYTES;
  for (uint32_t i = 0; i < w->sections; i++) {
    if (memcmp(w->buf + off + SEC_TAG, tag, 4) == 0) {
      writer_fail(w, MPNAS_E_INTERNAL, "section '%s' written twice", tag);
      return;
    }
    uint64_t plen = load_u64(w->buf + off + SEC_LENGTH);
    off += MPNAS__SERIAL_SECTION_HEADER_BYTES + (size_t)plen + pad_of(plen);
  }
  if (!writer_reserve(w, MPNAS__SERIAL_SECTION_HEADER_BYTES)) return;
  unsigned char *h = w->buf + w->len;
  memset(h, 0, MPNAS__SERIAL_SECTION_HEADER_BYTES);
  memcpy(h + SEC_TAG, tag, 4);
  w->section = w->len;
  w->len += MPNAS__SERIAL_SECTION_HEADER_BYTES;
}

void mpnas__writer_end_section(mpnas__writer *w) {
  if (w->status != MPNAS_OK) return;
  if (w->section == SIZE_MAX) {
    writer_fail(w, MPNAS_E_INTERNAL, "end of a section that was not started");
    return;
  }
  size_t start = w->section + MPNAS__SERIAL_SECTION_HEADER_BYTES;
  size_t plen = w->len - start;
  size_t pad = pad_of(plen);
  if (!writer_reserve(w, pad)) return;
  memset(w->buf + w->len, 0, pad);
  w->len += pad;
  unsigned char *h = w->buf + w->section;
  store_u64(h + SEC_LENGTH, (uint64_t)plen);
  store_u32(h + SEC_CRC, section_crc(h, w->buf + start, plen));
  w->section = SIZE_MAX;
  w->sections++;
}

void mpnas__writer_put_u8(mpnas__writer *w, uint8_t v) {
  unsigned char *p = writer_space(w, 1);
  if (p != NULL) p[0] = v;
}

void mpnas__writer_put_u32(mpnas__writer *w, uint32_t v) {
  unsigned char *p = writer_space(w, 4);
  if (p != NULL) store_u32(p, v);
}

void mpnas__writer_put_i32(mpnas__writer *w, int32_t v) {
  uint32_t u;
  memcpy(&u, &v, 4); /* two's complement by definition of int32_t */
  mpnas__writer_put_u32(w, u);
}

void mpnas__writer_put_u64(mpnas__writer *w, uint64_t v) {
  unsigned char *p = writer_space(w, 8);
  if (p != NULL) store_u64(p, v);
}

void mpnas__writer_put_i64(mpnas__writer *w, int64_t v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  mpnas__writer_put_u64(w, u);
}

void mpnas__writer_put_f32(mpnas__writer *w, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  mpnas__writer_put_u32(w, u);
}

void mpnas__writer_put_f64(mpnas__writer *w, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  mpnas__writer_put_u64(w, u);
}

void mpnas__writer_put_bytes(mpnas__writer *w, const void *data, size_t len) {
  unsigned char *p = writer_space(w, len);
  if (p != NULL && len > 0) memcpy(p, data, len);
}

void mpnas__writer_put_string(mpnas__writer *w, const char *s) {
  if (w->status != MPNAS_OK) return;
  size_t n = s != NULL ? strlen(s) : 0;
  if (n > UINT32_MAX) {
    writer_fail(w, MPNAS_E_OUT_OF_RANGE, "a string of %zu bytes is longer than 4 GiB", n);
    return;
  }
  mpnas__writer_put_u32(w, (uint32_t)n);
  mpnas__writer_put_bytes(w, s, n);
}

/* ---- IEEE binary16 ------------------------------------------------------------------------ */

uint16_t mpnas__f32_to_f16(float v) {
  uint32_t x;
  memcpy(&x, &v, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* infinity stays one; NaN becomes the quiet NaN */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: rounds past 65504 */
  uint32_t h, rem, half;
  if (ax >= 0x38800000u) { /* a normal half: rebias the exponent (127 - 15), drop 13 bits */
    uint32_t r = ax - 0x38000000u;
    h = r >> 13;
    rem = r & 0x1fffu;
    half = 0x1000u;
  } else if (ax <= 0x33000000u) { /* <= 2^-25: the tie at 2^-25 goes to the even zero */
    return sign;
  } else { /* a subnormal half: the value in steps of 2^-24 */
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u, shift = 126u - (ax >> 23);
    h = mant >> shift;
    rem = mant & ((1u << shift) - 1u);
    half = 1u << (shift - 1u);
  }
  /* A carry out of the mantissa steps the exponent up, which is the right result. */
  if (rem > half || (rem == half && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

float mpnas__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
  if (e == 0x1fu) {
    x = sign | 0x7f800000u | (m << 13);
  } else if (e != 0) {
    x = sign | ((e + 112u) << 23) | (m << 13);
  } else { /* zero or subnormal: m x 2^-24, exact in float */
    float f = (float)m * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

float mpnas__f16_round(float v) { return mpnas__f16_to_f32(mpnas__f32_to_f16(v)); }

void mpnas__writer_put_f16_array(mpnas__writer *w, const float *v, size_t count) {
  if (w->status != MPNAS_OK) return;
  size_t bytes;
  if (!mpnas__mul_size(count, 2, &bytes)) {
    writer_fail(w, MPNAS_E_NO_MEMORY, "an array of %zu halves exceeds the address space",
                count);
    return;
  }
  unsigned char *p = writer_space(w, bytes);
  if (p == NULL) return;
  for (size_t i = 0; i < count; i++) {
    uint16_t u = mpnas__f32_to_f16(v[i]);
    p[2 * i] = (unsigned char)(u & 0xffu);
    p[2 * i + 1] = (unsigned char)(u >> 8);
  }
}

void mpnas__writer_put_f32_array(mpnas__writer *w, const float *v, size_t count) {
  if (w->status != MPNAS_OK) return;
  size_t bytes;
  if (!mpnas__mul_size(count, 4, &bytes)) {
    writer_fail(w, MPNAS_E_NO_MEMORY, "an array of %zu floats exceeds the address space",
                count);
    return;
  }
  unsigned char *p = writer_space(w, bytes);
  if (p == NULL) return;
  for (size_t i = 0; i < count; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    store_u32(p + 4 * i, u);
  }
}

void mpnas__writer_put_rng(mpnas__writer *w, const mpnas__rng *rng) {
  mpnas__writer_put_u64(w, rng->state);
  mpnas__writer_put_u64(w, rng->inc);
}

mpnas_status mpnas__writer_status(const mpnas__writer *w) { return w->status; }

mpnas_status mpnas__writer_finish(mpnas__writer *w, const unsigned char **data,
                                  size_t *len) {
  if (data != NULL) *data = NULL;
  if (len != NULL) *len = 0;
  if (w->status != MPNAS_OK) return w->status;
  if (w->section != SIZE_MAX) {
    writer_fail(w, MPNAS_E_INTERNAL, "file finished while a section is still open");
    return w->status;
  }
  if (!w->finished) {
    store_u32(w->buf + HDR_SECTIONS, w->sections);
    store_u64(w->buf + HDR_TOTAL, (uint64_t)w->len);
    store_u32(w->buf + HDR_RESERVED, 0);
    store_u32(w->buf + HDR_CRC, mpnas__crc32(0, w->buf, HDR_CRC));
    w->finished = 1;
  }
  if (data != NULL) *data = w->buf;
  if (len != NULL) *len = w->len;
  return MPNAS_OK;
}

mpnas_status mpnas__writer_to_memory(mpnas__writer *w, unsigned char **data, size_t *len) {
  *data = NULL;
  *len = 0;
  mpnas_status s = mpnas__writer_finish(w, NULL, NULL);
  if (s != MPNAS_OK) return s;
  *data = w->buf;
  *len = w->len;
  w->buf = NULL; /* handed over: _free must not release it */
  w->len = w->cap = 0;
  w->status = MPNAS_E_STATE; /* any later use of this writer is a bug: make it visible */
  return MPNAS_OK;
}

/* ---- Reader ------------------------------------------------------------------------ */
static const char *kind_name(const mpnas__reader *r) {
  return r->kind != NULL && r->kind->name != NULL ? r->kind->name : "";
}

static mpnas_status reader_fail(mpnas__reader *r, mpnas_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static mpnas_status reader_fail(mpnas__reader *r, mpnas_status status, const char *fmt,
                                ...) {
  if (r->status != MPNAS_OK) return r->status; /* keep the first failure's message */
  char msg[MPNAS__ERROR_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->status = mpnas__fail(r->ctx, status, "reading a %s file: %s", kind_name(r), msg);
  return r->status;
}

/* Validate one section header at data[off] (the file header has been checked, so
 * off <= len). On success *next is the offset of the following section. */
static mpnas_status check_section(mpnas__reader *r, uint32_t index, size_t off,
                                  size_t *next) {
  const unsigned char *h = r->data + off;
  size_t left = r->len - off;
  if (left < MPNAS__SERIAL_SECTION_HEADER_BYTES)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "section %u of %u: its header at offset %zu runs past the end of "
                       "the file (%zu bytes left)",
                       (unsigned)index + 1, (unsigned)r->sections, off, left);
  left -= MPNAS__SERIAL_SECTION_HEADER_BYTES;
  uint64_t plen = load_u64(h + SEC_LENGTH);
  if (plen > left || pad_of(plen) > left - (size_t)plen)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "section %u of %u at offset %zu: a payload of %llu bytes runs past "
                       "the end of the file (%zu bytes left)",
                       (unsigned)index + 1, (unsigned)r->sections, off,
                       (unsigned long long)plen, left);
  const unsigned char *payload = h + MPNAS__SERIAL_SECTION_HEADER_BYTES;
  uint32_t stored = load_u32(h + SEC_CRC);
  uint32_t actual = section_crc(h, payload, (size_t)plen);
  if (stored != actual)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "section %u of %u at offset %zu: checksum mismatch (stored 0x%08x, "
                       "computed 0x%08x)",
                       (unsigned)index + 1, (unsigned)r->sections, off, (unsigned)stored,
                       (unsigned)actual);
  /* The CRC matched, so what follows was written this way on purpose. */
  for (int i = 0; i < 4; i++)
    if (!tag_byte_ok(h[SEC_TAG + i]))
      return reader_fail(r, MPNAS_E_CORRUPT,
                         "section %u at offset %zu: invalid tag bytes %02x %02x %02x %02x",
                         (unsigned)index + 1, off, h[0], h[1], h[2], h[3]);
  uint32_t flags = load_u32(h + SEC_FLAGS);
  if (flags != 0)
    return reader_fail(r, MPNAS_E_VERSION,
                       "section '%.4s' uses flags 0x%08x that this build of libmpnas does "
                       "not know",
                       (const char *)h, (unsigned)flags);
  if (load_u32(h + SEC_RESERVED) != 0)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "section '%.4s' at offset %zu: reserved field is not zero",
                       (const char *)h, off);
  size_t pad = pad_of(plen);
  for (size_t i = 0; i < pad; i++)
    if (payload[plen + i] != 0)
      return reader_fail(r, MPNAS_E_CORRUPT,
                         "section '%.4s' at offset %zu: padding byte %zu is not zero",
                         (const char *)h, off, i);
  *next = off + MPNAS__SERIAL_SECTION_HEADER_BYTES + (size_t)plen + pad;
  return MPNAS_OK;
}

/* The file header of r's buffer: magic, version, length, CRC (steps 1-3 of
 * docs/FILE-CONTAINER.md's checks on read). */
static mpnas_status check_header(mpnas__reader *r, mpnas_context *ctx,
                                 const mpnas__file_kind *kind, const void *data, size_t len) {
  memset(r, 0, sizeof *r);
  r->ctx = ctx;
  r->kind = kind;
  r->data = data;
  r->len = len;
  r->status = MPNAS_OK;
  if (kind == NULL || kind->magic == NULL || strlen(kind->magic) != 8)
    return reader_fail(r, MPNAS_E_INTERNAL, "reader opened with a bad file kind");
  if (data == NULL && len > 0)
    return reader_fail(r, MPNAS_E_INVALID_ARGUMENT, "NULL buffer of %zu bytes", len);
  const unsigned char *p = r->data;
  const char *name = kind_name(r);

  /* Magic first: a file of some other kind gets the most useful message. */
  if (len < 8 || memcmp(p + HDR_MAGIC, kind->magic, 8) != 0) {
    if (len >= 8 && memcmp(p, "MPNAS", 5) == 0 && tag_byte_ok(p[5]) && tag_byte_ok(p[6]) &&
        tag_byte_ok(p[7]))
      return reader_fail(r, MPNAS_E_CORRUPT,
                         "not a libmpnas %s file: it is another kind of libmpnas file "
                         "(magic '%.8s', expected '%.8s')",
                         name, (const char *)p, kind->magic);
    if (len < 8 && len > 0 && memcmp(p, kind->magic, len) == 0)
      return reader_fail(r, MPNAS_E_CORRUPT,
                         "truncated: %zu bytes, shorter than the %d-byte header", len,
                         MPNAS__SERIAL_HEADER_BYTES);
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "not a libmpnas %s file (%zu bytes, first bytes are not '%.8s')",
                       name, len, kind->magic);
  }
  /* The version sits at a fixed offset in every version, so a newer file is reported
   * as newer even if a later version changed the rest of the header. */
  if (len < HDR_VERSION + 4)
    return reader_fail(r, MPNAS_E_CORRUPT, "truncated: %zu bytes, shorter than the %d-byte "
                       "header", len, MPNAS__SERIAL_HEADER_BYTES);
  uint32_t version = load_u32(p + HDR_VERSION);
  if (version > kind->version)
    return reader_fail(r, MPNAS_E_VERSION,
                       "format version %u is newer than this build of libmpnas reads (up "
                       "to %u); a newer libmpnas is needed",
                       (unsigned)version, (unsigned)kind->version);
  if (version < kind->min_version)
    return reader_fail(r, MPNAS_E_VERSION,
                       "format version %u is older than this build of libmpnas reads "
                       "(%u to %u)",
                       (unsigned)version, (unsigned)kind->min_version,
                       (unsigned)kind->version);
  if (len < MPNAS__SERIAL_HEADER_BYTES)
    return reader_fail(r, MPNAS_E_CORRUPT, "truncated: %zu bytes, shorter than the %d-byte "
                       "header", len, MPNAS__SERIAL_HEADER_BYTES);
  uint32_t stored = load_u32(p + HDR_CRC);
  uint32_t actual = mpnas__crc32(0, p, HDR_CRC);
  if (stored != actual)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "header checksum mismatch (stored 0x%08x, computed 0x%08x)",
                       (unsigned)stored, (unsigned)actual);
  r->version = version;
  return MPNAS_OK;
}

mpnas_status mpnas__reader_declared_length(mpnas_context *ctx, const mpnas__file_kind *kind,
                                           const void *data, size_t len, uint64_t *total) {
  mpnas__reader r;
  *total = 0;
  if (check_header(&r, ctx, kind, data, len) != MPNAS_OK) return r.status;
  *total = load_u64(r.data + HDR_TOTAL);
  return MPNAS_OK;
}

mpnas_status mpnas__reader_open(mpnas__reader *r, mpnas_context *ctx,
                                const mpnas__file_kind *kind, const void *data,
                                size_t len) {
  if (check_header(r, ctx, kind, data, len) != MPNAS_OK) return r->status;
  const unsigned char *p = r->data;
  uint32_t version = r->version;
  r->version = 0; /* set again once the whole container checks out */
  uint64_t total = load_u64(p + HDR_TOTAL);
  if (total > len)
    return reader_fail(r, MPNAS_E_CORRUPT, "truncated: the header says %llu bytes, got %zu",
                       (unsigned long long)total, len);
  if (total < len)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "%zu bytes of trailing data after the %llu bytes the header "
                       "declares",
                       len - (size_t)total, (unsigned long long)total);
  if (load_u32(p + HDR_RESERVED) != 0)
    return reader_fail(r, MPNAS_E_CORRUPT, "reserved header field is not zero");
  r->sections = load_u32(p + HDR_SECTIONS);
  if (r->sections > MPNAS__SERIAL_MAX_SECTIONS)
    return reader_fail(r, MPNAS_E_CORRUPT, "%u sections, more than the limit of %d",
                       (unsigned)r->sections, MPNAS__SERIAL_MAX_SECTIONS);

  size_t off = MPNAS__SERIAL_HEADER_BYTES;
  for (uint32_t i = 0; i < r->sections; i++) {
    size_t next = 0;
    if (check_section(r, i, off, &next) != MPNAS_OK) return r->status;
    /* Unique tags: a lookup must not depend on which duplicate it meets first. */
    size_t prev = MPNAS__SERIAL_HEADER_BYTES;
    for (uint32_t j = 0; j < i; j++) {
      if (memcmp(p + prev + SEC_TAG, p + off + SEC_TAG, 4) == 0)
        return reader_fail(r, MPNAS_E_CORRUPT, "section '%.4s' appears twice",
                           (const char *)(p + off));
      uint64_t plen = load_u64(p + prev + SEC_LENGTH);
      prev += MPNAS__SERIAL_SECTION_HEADER_BYTES + (size_t)plen + pad_of(plen);
    }
    off = next;
  }
  if (off != len)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "%zu bytes after the last of the %u sections the header declares",
                       len - off, (unsigned)r->sections);
  r->version = version;
  return MPNAS_OK;
}

/* Offset of the section tagged `tag`, or 0 if none (0 is never a section offset). */
static size_t find_section(const mpnas__reader *r, const char *tag) {
  if (r->status != MPNAS_OK || r->data == NULL || !tag_ok(tag)) return 0;
  size_t off = MPNAS__SERIAL_HEADER_BYTES;
  for (uint32_t i = 0; i < r->sections; i++) {
    if (memcmp(r->data + off + SEC_TAG, tag, 4) == 0) return off;
    uint64_t plen = load_u64(r->data + off + SEC_LENGTH);
    off += MPNAS__SERIAL_SECTION_HEADER_BYTES + (size_t)plen + pad_of(plen);
  }
  return 0;
}

int mpnas__reader_has_section(const mpnas__reader *r, const char *tag) {
  return find_section(r, tag) != 0;
}

mpnas_status mpnas__reader_section(mpnas__reader *r, const char *tag) {
  if (r->status != MPNAS_OK) return r->status;
  size_t off = find_section(r, tag);
  if (off == 0)
    return reader_fail(r, MPNAS_E_CORRUPT, "no '%.4s' section", tag != NULL ? tag : "");
  r->payload = r->data + off + MPNAS__SERIAL_SECTION_HEADER_BYTES;
  r->payload_len = (size_t)load_u64(r->data + off + SEC_LENGTH);
  r->payload_offset = off + MPNAS__SERIAL_SECTION_HEADER_BYTES;
  r->pos = 0;
  memcpy(r->tag, tag, 4);
  r->tag[4] = '\0';
  return MPNAS_OK;
}

size_t mpnas__reader_remaining(const mpnas__reader *r) {
  if (r->status != MPNAS_OK || r->payload == NULL) return 0;
  return r->payload_len - r->pos;
}

mpnas_status mpnas__reader_expect_end(mpnas__reader *r) {
  if (r->status != MPNAS_OK) return r->status;
  if (r->payload == NULL)
    return reader_fail(r, MPNAS_E_INTERNAL, "no section selected");
  if (r->pos != r->payload_len)
    return reader_fail(r, MPNAS_E_CORRUPT,
                       "section '%s': %zu unexpected bytes after offset %zu (file offset "
                       "%zu)",
                       r->tag, r->payload_len - r->pos, r->pos, r->payload_offset + r->pos);
  return MPNAS_OK;
}

mpnas_status mpnas__reader_status(const mpnas__reader *r) { return r->status; }

/* The next n bytes of the section, or NULL (and a sticky failure naming the place). */
static const unsigned char *reader_take(mpnas__reader *r, size_t n, const char *what) {
  if (r->status != MPNAS_OK) return NULL;
  if (r->payload == NULL) {
    reader_fail(r, MPNAS_E_INTERNAL, "read of %s before selecting a section", what);
    return NULL;
  }
  size_t left = r->payload_len - r->pos;
  if (n > left) {
    reader_fail(r, MPNAS_E_CORRUPT,
                "section '%s' ends too early: %s needs %zu bytes at offset %zu, %zu left "
                "(file offset %zu)",
                r->tag, what, n, r->pos, left, r->payload_offset + r->pos);
    return NULL;
  }
  const unsigned char *p = r->payload + r->pos;
  r->pos += n;
  return p;
}

uint8_t mpnas__reader_get_u8(mpnas__reader *r) {
  const unsigned char *p = reader_take(r, 1, "a u8");
  return p != NULL ? p[0] : 0;
}

uint32_t mpnas__reader_get_u32(mpnas__reader *r) {
  const unsigned char *p = reader_take(r, 4, "a 32-bit value");
  return p != NULL ? load_u32(p) : 0;
}

int32_t mpnas__reader_get_i32(mpnas__reader *r) {
  uint32_t u = mpnas__reader_get_u32(r);
  int32_t v;
  memcpy(&v, &u, 4);
  return v;
}

uint64_t mpnas__reader_get_u64(mpnas__reader *r) {
  const unsigned char *p = reader_take(r, 8, "a 64-bit value");
  return p != NULL ? load_u64(p) : 0;
}

int64_t mpnas__reader_get_i64(mpnas__reader *r) {
  uint64_t u = mpnas__reader_get_u64(r);
  int64_t v;
  memcpy(&v, &u, 8);
  return v;
}

float mpnas__reader_get_f32(mpnas__reader *r) {
  uint32_t u = mpnas__reader_get_u32(r);
  float v;
  memcpy(&v, &u, 4);
  return v;
}

double mpnas__reader_get_f64(mpnas__reader *r) {
  uint64_t u = mpnas__reader_get_u64(r);
  double v;
  memcpy(&v, &u, 8);
  return v;
}

void mpnas__reader_get_bytes(mpnas__reader *r, void *dst, size_t len) {
  const unsigned char *p = reader_take(r, len, "a byte string");
  if (len == 0) return;
  if (p != NULL)
    memcpy(dst, p, len);
  else
    memset(dst, 0, len);
}

const unsigned char *mpnas__reader_get_view(mpnas__reader *r, size_t len) {
  return reader_take(r, len, "a byte string");
}

size_t mpnas__reader_get_string(mpnas__reader *r, char *dst, size_t cap) {
  if (cap > 0) dst[0] = '\0';
  size_t at = r->pos;
  uint32_t n = mpnas__reader_get_u32(r);
  if (r->status != MPNAS_OK) return 0;
  if (cap == 0 || n > cap - 1) {
    reader_fail(r, MPNAS_E_CORRUPT,
                "section '%s': the string at offset %zu claims %u bytes, more than the "
                "limit of %zu",
                r->tag, at, (unsigned)n, cap > 0 ? cap - 1 : 0);
    return 0;
  }
  const unsigned char *p = reader_take(r, n, "a string");
  if (p == NULL) return 0;
  if (n > 0 && memchr(p, 0, n) != NULL) {
    reader_fail(r, MPNAS_E_CORRUPT, "section '%s': the string at offset %zu holds a NUL "
                "byte", r->tag, at);
    return 0;
  }
  if (n > 0) memcpy(dst, p, n);
  dst[n] = '\0';
  return n;
}

void mpnas__reader_get_f16_array(mpnas__reader *r, float *dst, size_t count) {
  size_t bytes = 0;
  const unsigned char *p = NULL;
  if (!mpnas__mul_size(count, 2, &bytes))
    reader_fail(r, MPNAS_E_CORRUPT, "section '%s': an array of %zu halves is impossible",
                r->tag, count);
  else
    p = reader_take(r, bytes, "a half array");
  if (p == NULL) {
    if (count > 0 && bytes / 2 == count) memset(dst, 0, sizeof(float) * count);
    return;
  }
  for (size_t i = 0; i < count; i++)
    dst[i] = mpnas__f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

void mpnas__reader_get_f32_array(mpnas__reader *r, float *dst, size_t count) {
  size_t bytes = 0;
  const unsigned char *p = NULL;
  if (!mpnas__mul_size(count, 4, &bytes))
    reader_fail(r, MPNAS_E_CORRUPT, "section '%s': an array of %zu floats is impossible",
                r->tag, count);
  else
    p = reader_take(r, bytes, "a float array");
  if (p == NULL) {
    if (count > 0 && bytes / 4 == count) memset(dst, 0, bytes);
    return;
  }
  for (size_t i = 0; i < count; i++) {
    uint32_t u = load_u32(p + 4 * i);
    memcpy(&dst[i], &u, 4);
  }
}

void mpnas__reader_get_rng(mpnas__reader *r, mpnas__rng *rng) {
  rng->state = mpnas__reader_get_u64(r);
  rng->inc = mpnas__reader_get_u64(r);
}

uint32_t mpnas__reader_get_count(mpnas__reader *r, uint32_t max, size_t min_element_bytes) {
  size_t at = r->pos;
  uint32_t n = mpnas__reader_get_u32(r);
  if (r->status != MPNAS_OK) return 0;
  if (n > max) {
    reader_fail(r, MPNAS_E_CORRUPT,
                "section '%s': count %u at offset %zu exceeds the limit of %u (file "
                "offset %zu)",
                r->tag, (unsigned)n, at, (unsigned)max, r->payload_offset + at);
    return 0;
  }
  size_t left = r->payload_len - r->pos;
  if (min_element_bytes > 0 && n > left / min_element_bytes) {
    reader_fail(r, MPNAS_E_CORRUPT,
                "section '%s': count %u at offset %zu needs at least %zu bytes per "
                "element but only %zu bytes remain (file offset %zu)",
                r->tag, (unsigned)n, at, min_element_bytes, left, r->payload_offset + at);
    return 0;
  }
  return n;
}
