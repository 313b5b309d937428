/* fuzz_mutator.h - a libFuzzer custom mutator and crossover for libmpnas's file container
 * (docs/FILE-CONTAINER.md), included by each fuzz target.
 *
 * Every byte of a container is covered by a CRC, so a plain byte mutation almost never
 * gets past the container checks to the parser behind them. This mutator reads the
 * input as a header and a list of sections, changes one thing - a section's payload
 * (libFuzzer's own mutation, or an "interesting" 32/64-bit value at an aligned offset:
 * 0, -1, limits, NaN, infinities, huge floats), a section's length, the section list
 * (drop, duplicate, swap, rename a tag), a header or section field - and writes the
 * container again with correct lengths, padding and CRCs. One mutation in 20 is
 * libFuzzer's raw one with the CRCs left stale, so the container checks stay covered.
 * The crossover swaps in a section of the same tag from another input. */
#ifndef MPNAS_FUZZ_MUTATOR_H
#define MPNAS_FUZZ_MUTATOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/serial.h" /* mpnas__crc32 */

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed);

#define FZ_MAX_SECTIONS 64

typedef struct fz_section {
  uint8_t tag[4];
  uint32_t flags, reserved;
  const uint8_t *payload; /* into the parsed buffer, or a mutator's scratch */
  size_t len;
} fz_section;

typedef struct fz_file {
  uint8_t header[32]; /* magic, version, ...; count, length and CRC are rewritten */
  fz_section s[FZ_MAX_SECTIONS];
  size_t n;
} fz_file;

static uint32_t fz_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t fz_le64(const uint8_t *p) { return fz_le32(p) | (uint64_t)fz_le32(p + 4) << 32; }
static void fz_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void fz_put64(uint8_t *p, uint64_t v) {
  fz_put32(p, (uint32_t)v);
  fz_put32(p + 4, (uint32_t)(v >> 32));
}

/* The header and the sections that fit, in order (lenient: a broken tail is dropped).
 * 0 if there is not even a header. */
static int fz_parse(const uint8_t *d, size_t n, fz_file *f) {
  if (n < 32) return 0;
  memcpy(f->header, d, 32);
  f->n = 0;
  size_t off = 32;
  while (off + 24 <= n && f->n < FZ_MAX_SECTIONS) {
    uint64_t len = fz_le64(d + off + 8);
    if (len > n - off - 24) break;
    fz_section *s = &f->s[f->n++];
    memcpy(s->tag, d + off, 4);
    s->flags = fz_le32(d + off + 4);
    s->reserved = fz_le32(d + off + 16);
    s->payload = d + off + 24;
    s->len = (size_t)len;
    off += 24 + (size_t)len + (size_t)((8 - len % 8) % 8);
  }
  return 1;
}

/* Write f into out[cap] with every length, padding and CRC right; 0 if it does not fit. */
static size_t fz_build(const fz_file *f, uint8_t *out, size_t cap) {
  size_t total = 32;
  for (size_t i = 0; i < f->n; i++) total += 24 + f->s[i].len + (8 - f->s[i].len % 8) % 8;
  if (total > cap) return 0;
  /* Payloads may point into out (an in-place mutation): build in a copy. */
  uint8_t *b = malloc(total);
  if (b == NULL) return 0;
  memcpy(b, f->header, 32);
  fz_put32(b + 12, (uint32_t)f->n);
  fz_put64(b + 16, (uint64_t)total);
  size_t off = 32;
  for (size_t i = 0; i < f->n; i++) {
    const fz_section *s = &f->s[i];
    uint8_t *h = b + off;
    memcpy(h, s->tag, 4);
    fz_put32(h + 4, s->flags);
    fz_put64(h + 8, (uint64_t)s->len);
    fz_put32(h + 16, s->reserved);
    if (s->len > 0) memcpy(h + 24, s->payload, s->len);
    size_t pad = (8 - s->len % 8) % 8;
    memset(h + 24 + s->len, 0, pad);
    fz_put32(h + 20, mpnas__crc32(mpnas__crc32(0, h, 20), h + 24, s->len));
    off += 24 + s->len + pad;
  }
  fz_put32(b + 28, mpnas__crc32(0, b, 28));
  memcpy(out, b, total);
  free(b);
  return total;
}

static uint32_t fz_next(uint32_t *state) { /* xorshift32 */
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x ? x : 0x9e3779b9u;
}

/* Overwrite an aligned 4- or 8-byte value of p[0, len) with one that sits on a boundary
 * a parser has to check. */
static void fz_interesting(uint8_t *p, size_t len, uint32_t *rng) {
  static const uint32_t V32[] = {
      0u, 1u, 2u, 3u, 7u, 0xffffffffu, 0xfffffffeu, 0x7fffffffu, 0x80000000u, 64u, 65u,
      4096u, 4097u, 65535u, 65536u, 0x7fc00000u /* NaN */, 0x7f800000u /* inf */,
      0xff800000u /* -inf */, 0x80000000u /* -0 */, 0x7f7fffffu /* FLT_MAX */,
      0x7f3c0000u /* 2.5e38 */, 0x00000001u /* denormal */, 0x3f800000u /* 1 */,
      0xbf800000u /* -1 */, 0x3f000000u /* 0.5 */, 0x42c80000u /* 100 */};
  static const uint64_t V64[] = {
      0u, 1u, 0xffffffffffffffffu, 0x7fffffffffffffffu, 0x8000000000000000u,
      (uint64_t)1 << 32, (uint64_t)1 << 53, 100000000u, 100000001u,
      0x7ff8000000000000u /* NaN */, 0x7ff0000000000000u /* inf */,
      0xfff0000000000000u /* -inf */, 0x7fefffffffffffffu /* DBL_MAX */,
      0x7e37e43c8800759cu /* 1e300 */, 0x3ff0000000000000u /* 1 */,
      0xbff0000000000000u /* -1 */, 0x3fe0000000000000u /* 0.5 */,
      0x3feccccccccccccdu /* 0.9 */, 0x3fefffffffffffffu /* just below 1 */,
      0x4059000000000000u /* 100 */, 0x0000000000000001u /* denormal */};
  size_t width = fz_next(rng) % 2 ? 8 : 4;
  if (len < width) return;
  size_t at = (size_t)fz_next(rng) % (len - width + 1);
  if (fz_next(rng) % 4 != 0) at -= at % 4; /* mostly aligned: that is where fields are */
  uint32_t r = fz_next(rng);
  if (width == 4) {
    uint32_t v = fz_le32(p + at);
    switch (r % 4) {
      case 0: v += 1 + fz_next(rng) % 16; break;
      case 1: v -= 1 + fz_next(rng) % 16; break;
      default: v = V32[fz_next(rng) % (sizeof V32 / sizeof V32[0])]; break;
    }
    fz_put32(p + at, v);
  } else {
    uint64_t v = fz_le64(p + at);
    switch (r % 4) {
      case 0: v += 1 + fz_next(rng) % 16; break;
      case 1: v -= 1 + fz_next(rng) % 16; break;
      default: v = V64[fz_next(rng) % (sizeof V64 / sizeof V64[0])]; break;
    }
    fz_put64(p + at, v);
  }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed) {
  uint32_t rng = seed | 1u;
  fz_file f;
  if (fz_next(&rng) % 20 == 0 || !fz_parse(data, size, &f) || f.n == 0)
    return LLVMFuzzerMutate(data, size, max_size); /* raw: the CRCs stay stale */
  /* A copy of the input: payloads point into it while `data` is rewritten. */
  uint8_t *copy = malloc(max_size > size ? max_size : size);
  if (copy == NULL) return LLVMFuzzerMutate(data, size, max_size);
  memcpy(copy, data, size);
  fz_parse(copy, size, &f);
  size_t k = fz_next(&rng) % f.n, other = fz_next(&rng) % f.n;
  fz_section *s = &f.s[k];
  uint8_t *scratch = NULL;
  size_t room = max_size > size ? max_size - size : 0; /* bytes a payload may grow by */
  uint32_t what = fz_next(&rng) % 100;
  if (what < 70) { /* the payload of one section */
    scratch = malloc(s->len + room + 8);
    if (scratch != NULL) {
      memcpy(scratch, s->payload, s->len);
      if (what < 35 && s->len + room > 0)
        s->len = LLVMFuzzerMutate(scratch, s->len, s->len + room);
      else
        for (uint32_t i = 1 + fz_next(&rng) % 3; i > 0; i--) fz_interesting(scratch, s->len, &rng);
      s->payload = scratch;
    }
  } else if (what < 78) { /* its length: cut or grow (zeros or repeated bytes) */
    size_t delta = 1 + fz_next(&rng) % 16;
    if (fz_next(&rng) % 2 && s->len >= delta) {
      s->len -= delta;
    } else if (delta <= room && (scratch = malloc(s->len + delta)) != NULL) {
      memcpy(scratch, s->payload, s->len);
      for (size_t i = 0; i < delta; i++)
        scratch[s->len + i] = s->len > 0 && fz_next(&rng) % 2 ? scratch[i % s->len] : 0;
      s->len += delta;
      s->payload = scratch;
    }
  } else if (what < 84) { /* the section list */
    switch (fz_next(&rng) % 4) {
      case 0: /* drop */
        memmove(&f.s[k], &f.s[k + 1], sizeof f.s[0] * (f.n - k - 1));
        f.n--;
        break;
      case 1: /* duplicate (the reader must refuse a repeated tag) */
        if (f.n < FZ_MAX_SECTIONS) f.s[f.n++] = *s;
        break;
      case 2: { /* swap */
        fz_section t = f.s[k];
        f.s[k] = f.s[other];
        f.s[other] = t;
        break;
      }
      default: /* rename: another section's tag, or one byte changed */
        if (fz_next(&rng) % 2) memcpy(s->tag, f.s[other].tag, 4);
        else s->tag[fz_next(&rng) % 4] = (uint8_t)(0x20 + fz_next(&rng) % 0x60);
        break;
    }
  } else if (what < 88) { /* the fields the container reserves */
    if (fz_next(&rng) % 2) s->flags = 1u << (fz_next(&rng) % 32);
    else s->reserved = fz_next(&rng);
  } else if (what < 92) { /* the header: version or reserved */
    if (fz_next(&rng) % 2) fz_put32(f.header + 8, fz_le32(f.header + 8) + (fz_next(&rng) % 2 ? 1 : -1));
    else fz_put32(f.header + 24, fz_next(&rng));
  } else { /* one payload takes another's bytes (e.g. counts from elsewhere) */
    const fz_section *o = &f.s[other];
    if (o->len > 0 && s->len > 0) {
      scratch = malloc(s->len);
      if (scratch != NULL) {
        memcpy(scratch, s->payload, s->len);
        size_t n = 1 + fz_next(&rng) % 16, from = fz_next(&rng) % o->len, to = fz_next(&rng) % s->len;
        for (size_t i = 0; i < n && from + i < o->len && to + i < s->len; i++)
          scratch[to + i] = o->payload[from + i];
        s->payload = scratch;
      }
    }
  }
  size_t out = fz_build(&f, data, max_size);
  free(scratch);
  if (out == 0) { /* too large: back to the input and a raw mutation */
    memcpy(data, copy, size);
    out = LLVMFuzzerMutate(data, size, max_size);
  }
  free(copy);
  return out;
}

size_t LLVMFuzzerCustomCrossOver(const uint8_t *data1, size_t size1, const uint8_t *data2,
                                 size_t size2, uint8_t *out, size_t max_out_size,
                                 unsigned int seed) {
  uint32_t rng = seed | 1u;
  fz_file a, b;
  if (!fz_parse(data1, size1, &a) || !fz_parse(data2, size2, &b) || a.n == 0 || b.n == 0)
    return 0; /* nothing to combine: libFuzzer moves on */
  /* Sections of the same tag from the second input replace the first's, each with
   * probability 1/2 (at least one is tried). */
  size_t start = fz_next(&rng) % a.n;
  for (size_t i = 0; i < a.n; i++) {
    fz_section *s = &a.s[(start + i) % a.n];
    if (i > 0 && fz_next(&rng) % 2) continue;
    for (size_t j = 0; j < b.n; j++)
      if (memcmp(s->tag, b.s[j].tag, 4) == 0) {
        s->payload = b.s[j].payload;
        s->len = b.s[j].len;
        break;
      }
  }
  return fz_build(&a, out, max_out_size);
}

#endif
