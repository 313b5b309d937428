/* test_serial.c - the file container (src/common/serial.c, docs/FILE-CONTAINER.md):
 * CRC32, round trip of every type bit-exact, the exact bytes of a tiny file, writer
 * misuse and out-of-memory, reader checks (every prefix, every single-bit flip, magic,
 * versions, lying lengths and counts, missing sections) with an allocator that refuses
 * anything above 1 MiB, whole-file reads with a size limit, atomic replace and its
 * failure paths, and a replay of the bad-file corpus in tests/data/bad-files/.
 *
 * The corpus is made by this program: `test_serial --write-corpus DIR` writes every
 * generated bad file to DIR (run from the repository root with DIR =
 * tests/data/bad-files to refresh it); `test_serial --show-corpus` prints the reader's
 * message for each. A normal run checks the generated cases in memory
 * AND replays every *.bin in the directory, so files added by hand (say, from a fuzzer)
 * are replayed too. */
#define _XOPEN_SOURCE 700 /* setrlimit, mkdtemp, fchmod */

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_counting.h"
#include "check.h"
#include "common/serial.h"
#include "mpnas.h"

#ifndef CORPUS_DIR
#define CORPUS_DIR "tests/data/bad-files"
#endif

static const mpnas__file_kind TOY = {"MPNASTST", "test", 1, 1};
static const mpnas__file_kind TOY_V2 = {"MPNASTST", "test", 2, 2};
static const mpnas__file_kind TOY_CKP = {"MPNASCKP", "checkpoint", 1, 1};

/* ---- The counting allocator (alloc_counting.h), refusing any single block above a limit */
/* 1 MiB of payload plus the allocator's alignment overhead. */
#define MIB ((size_t)1 << 20)
#define LIMIT (MIB + 128)

static mpnas_context *new_ctx(alloc_counting *c) { return alloc_counting_context(c, LIMIT); }

/* ---- Blobs: test-owned byte buffers (plain malloc) -------------------------------- */
typedef struct {
  unsigned char *p;
  size_t n;
} blob;

static blob blob_copy(const void *p, size_t n) {
  blob b = {malloc(n ? n : 1), n};
  if (n) memcpy(b.p, p, n);
  return b;
}

/* Finish a writer into a blob and free the writer. */
static blob finish(mpnas__writer *w) {
  const unsigned char *data = NULL;
  size_t len = 0;
  mpnas_status s = mpnas__writer_finish(w, &data, &len);
  CHECK_EQ_INT(s, MPNAS_OK);
  blob b = blob_copy(data, s == MPNAS_OK ? len : 0);
  mpnas__writer_free(w);
  return b;
}

static uint32_t ld32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void st32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t ld64(const unsigned char *p) {
  return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}
static void st64(unsigned char *p, uint64_t v) {
  st32(p, (uint32_t)v);
  st32(p + 4, (uint32_t)(v >> 32));
}
static void fix_header_crc(blob *b) { st32(b->p + 28, mpnas__crc32(0, b->p, 28)); }
/* Recompute the CRC of the section whose header is at `off`, if its payload fits. */
static void fix_section_crc(blob *b, size_t off) {
  uint64_t len = ld64(b->p + off + 8);
  if (len > b->n - off - 24) return;
  uint32_t c = mpnas__crc32(0, b->p + off, 20);
  c = mpnas__crc32(c, b->p + off + 24, (size_t)len);
  st32(b->p + off + 20, c);
}

/* ---- The toy format the reader tests decode ----------------------------------------
 *   META: string name (< 64 bytes), i64 step, f64 learning rate
 *   WGTS: count n (<= 2^18), n floats
 * With name "toy" META's payload is 23 bytes (1 byte of padding): META's header is at
 * offset 32, WGTS's at 80. */
#define META_OFF 32
#define WGTS_OFF 80
static const float toy_weights[5] = {0.5f, -1.25f, 3.0f, 1e-30f, -0.0f};

static void toy_meta(mpnas__writer *w, const char *name) {
  mpnas__writer_begin_section(w, "META");
  mpnas__writer_put_string(w, name);
  mpnas__writer_put_i64(w, 7);
  mpnas__writer_put_f64(w, 0.5);
  mpnas__writer_end_section(w);
}
static void toy_wgts(mpnas__writer *w, uint32_t count, size_t actual) {
  mpnas__writer_begin_section(w, "WGTS");
  mpnas__writer_put_u32(w, count);
  for (size_t i = 0; i < actual; i++) mpnas__writer_put_f32(w, toy_weights[i % 5]);
  mpnas__writer_end_section(w);
}
static blob toy_good(mpnas_context *ctx) {
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, 5, 5);
  return finish(&w);
}

/* Decode a toy file the way a real loader would: counts checked before allocating. */
static mpnas_status toy_decode(mpnas_context *ctx, const unsigned char *data, size_t len) {
  mpnas__reader r;
  if (mpnas__reader_open(&r, ctx, &TOY, data, len) != MPNAS_OK) return r.status;
  char name[64];
  if (mpnas__reader_section(&r, "META") == MPNAS_OK) {
    mpnas__reader_get_string(&r, name, sizeof name);
    (void)mpnas__reader_get_i64(&r);
    (void)mpnas__reader_get_f64(&r);
    mpnas__reader_expect_end(&r);
  }
  if (mpnas__reader_section(&r, "WGTS") == MPNAS_OK) {
    uint32_t n = mpnas__reader_get_count(&r, 1u << 18, sizeof(float));
    if (mpnas__reader_status(&r) == MPNAS_OK) {
      float *w = mpnas__malloc(ctx, (size_t)n * sizeof(float));
      if (w == NULL) return MPNAS_E_NO_MEMORY;
      mpnas__reader_get_f32_array(&r, w, n);
      mpnas__free(ctx, w);
      mpnas__reader_expect_end(&r);
    }
  }
  return mpnas__reader_status(&r);
}

/* ---- CRC ------------------------------------------------------------------------- */
static uint32_t crc_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

static void test_crc32(void) {
  CHECK_EQ_INT(mpnas__crc32(0, "123456789", 9), 0xcbf43926u); /* the standard check */
  CHECK_EQ_INT(mpnas__crc32(0, "", 0), 0);
  unsigned char buf[1000];
  uint32_t s = 12345;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((s = s * 1103515245u + 12345u) >> 24);
  /* Every table entry is exercised by 256 single bytes. */
  for (int b = 0; b < 256; b++) {
    unsigned char c = (unsigned char)b;
    CHECK_EQ_INT(mpnas__crc32(0, &c, 1), crc_bitwise(&c, 1));
  }
  CHECK_EQ_INT(mpnas__crc32(0, buf, sizeof buf), crc_bitwise(buf, sizeof buf));
  /* Chaining. */
  CHECK_EQ_INT(mpnas__crc32(mpnas__crc32(0, buf, 333), buf + 333, sizeof buf - 333),
               mpnas__crc32(0, buf, sizeof buf));
}

/* ---- Round trip ---------------------------------------------------------------------- */
static uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint64_t d2u(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}
static double u2d(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static void test_round_trip(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  const uint32_t fbits[] = {0x7fc00000u, 0x7fc12345u, 0xffc00001u, 0x80000000u, 0x00000000u,
                            0x7f800000u, 0xff800000u, 0x00000001u, 0x7f7fffffu, 0x3f800000u};
  const uint64_t dbits[] = {0x7ff8000000000001ull, 0xfff8000000000000ull,
                            0x8000000000000000ull, 0x7ff0000000000000ull,
                            0xfff0000000000000ull, 0x0000000000000001ull,
                            0x3ff0000000000000ull};
  /* Signalling NaNs go through the array path only: returning one in a float register
   * may quiet it on some ABIs (x87), which is not the container's doing. */
  const uint32_t abits[] = {0x7f800001u, 0xff800123u, 0x7fc00000u, 0x80000000u, 0x3f800000u};
  float arr[5];
  for (int i = 0; i < 5; i++) arr[i] = u2f(abits[i]);

  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "INTS");
  mpnas__writer_put_u8(&w, 0);
  mpnas__writer_put_u8(&w, 255);
  mpnas__writer_put_u32(&w, 0);
  mpnas__writer_put_u32(&w, UINT32_MAX);
  mpnas__writer_put_u32(&w, 0xdeadbeefu);
  mpnas__writer_put_i32(&w, INT32_MIN);
  mpnas__writer_put_i32(&w, INT32_MAX);
  mpnas__writer_put_i32(&w, -1);
  mpnas__writer_put_u64(&w, UINT64_MAX);
  mpnas__writer_put_u64(&w, 0x0123456789abcdefull);
  mpnas__writer_put_i64(&w, INT64_MIN);
  mpnas__writer_put_i64(&w, INT64_MAX);
  mpnas__writer_put_i64(&w, -2);
  mpnas__writer_end_section(&w);
  mpnas__writer_begin_section(&w, "FLTS");
  for (size_t i = 0; i < sizeof fbits / sizeof fbits[0]; i++)
    mpnas__writer_put_f32(&w, u2f(fbits[i]));
  for (size_t i = 0; i < sizeof dbits / sizeof dbits[0]; i++)
    mpnas__writer_put_f64(&w, u2d(dbits[i]));
  mpnas__writer_put_u32(&w, 5);
  mpnas__writer_put_f32_array(&w, arr, 5);
  mpnas__writer_end_section(&w);
  mpnas__writer_begin_section(&w, "STRS");
  mpnas__writer_put_string(&w, "");
  mpnas__writer_put_string(&w, "hello");
  mpnas__writer_put_string(&w, "\xc3\xa9t\xc3\xa9"); /* UTF-8 passes untouched */
  mpnas__writer_put_bytes(&w, "\x00\x01\x02", 3);
  mpnas__writer_put_bytes(&w, NULL, 0);
  mpnas__writer_end_section(&w);
  mpnas__writer_begin_section(&w, "EMPT"); /* an empty section is fine */
  mpnas__writer_end_section(&w);
  blob b = finish(&w);
  CHECK(b.n % 8 == 0);

  mpnas__reader r;
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(r.version, 1);
  CHECK_EQ_INT(r.sections, 4);
  CHECK(mpnas__reader_has_section(&r, "INTS"));
  CHECK(mpnas__reader_has_section(&r, "EMPT"));
  CHECK(!mpnas__reader_has_section(&r, "NONE"));
  CHECK(!mpnas__reader_has_section(&r, "INT"));

  /* Sections in another order than written. */
  CHECK_EQ_INT(mpnas__reader_section(&r, "STRS"), MPNAS_OK);
  char s[16];
  CHECK_EQ_INT(mpnas__reader_get_string(&r, s, sizeof s), 0);
  CHECK(strcmp(s, "") == 0);
  CHECK_EQ_INT(mpnas__reader_get_string(&r, s, sizeof s), 5);
  CHECK(strcmp(s, "hello") == 0);
  CHECK_EQ_INT(mpnas__reader_get_string(&r, s, 6), 5); /* exactly fits with the NUL */
  CHECK(strcmp(s, "\xc3\xa9t\xc3\xa9") == 0);
  const unsigned char *v = mpnas__reader_get_view(&r, 3);
  CHECK(v != NULL && v[0] == 0 && v[1] == 1 && v[2] == 2);
  CHECK_EQ_INT(mpnas__reader_remaining(&r), 0);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_OK);

  CHECK_EQ_INT(mpnas__reader_section(&r, "INTS"), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_remaining(&r), 2 + 4 * 6 + 8 * 5);
  CHECK_EQ_INT(mpnas__reader_get_u8(&r), 0);
  CHECK_EQ_INT(mpnas__reader_get_u8(&r), 255);
  CHECK_EQ_INT(mpnas__reader_get_u32(&r), 0);
  CHECK(mpnas__reader_get_u32(&r) == UINT32_MAX);
  CHECK(mpnas__reader_get_u32(&r) == 0xdeadbeefu);
  CHECK(mpnas__reader_get_i32(&r) == INT32_MIN);
  CHECK(mpnas__reader_get_i32(&r) == INT32_MAX);
  CHECK(mpnas__reader_get_i32(&r) == -1);
  CHECK(mpnas__reader_get_u64(&r) == UINT64_MAX);
  CHECK(mpnas__reader_get_u64(&r) == 0x0123456789abcdefull);
  CHECK(mpnas__reader_get_i64(&r) == INT64_MIN);
  CHECK(mpnas__reader_get_i64(&r) == INT64_MAX);
  CHECK(mpnas__reader_get_i64(&r) == -2);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_OK);

  CHECK_EQ_INT(mpnas__reader_section(&r, "FLTS"), MPNAS_OK);
  for (size_t i = 0; i < sizeof fbits / sizeof fbits[0]; i++) {
    uint32_t got = f2u(mpnas__reader_get_f32(&r));
    CHECK_MSG(got == fbits[i], "f32 %zu: 0x%08x != 0x%08x", i, (unsigned)got,
              (unsigned)fbits[i]);
  }
  for (size_t i = 0; i < sizeof dbits / sizeof dbits[0]; i++) {
    uint64_t got = d2u(mpnas__reader_get_f64(&r));
    CHECK_MSG(got == dbits[i], "f64 %zu: 0x%016llx", i, (unsigned long long)got);
  }
  uint32_t n = mpnas__reader_get_count(&r, 5, 4);
  CHECK_EQ_INT(n, 5);
  float back[5];
  mpnas__reader_get_f32_array(&r, back, n);
  CHECK(memcmp(back, arr, sizeof arr) == 0);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_OK);

  CHECK_EQ_INT(mpnas__reader_section(&r, "EMPT"), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_remaining(&r), 0);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_status(&r), MPNAS_OK);
  free(b.p);

  /* _to_memory hands the buffer over; the writer then refuses further use. */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "mem");
  unsigned char *mem = NULL;
  size_t len = 0;
  CHECK_EQ_INT(mpnas__writer_to_memory(&w, &mem, &len), MPNAS_OK);
  CHECK(mem != NULL && len > 32);
  mpnas__writer_put_u32(&w, 1);
  CHECK(mpnas__writer_status(&w) != MPNAS_OK);
  mpnas__writer_free(&w);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, mem, len), MPNAS_OK);
  mpnas__free(ctx, mem);

  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- The exact bytes: same file on every host ------------------------------------- */
static void test_exact_bytes(void) {
  /* Computed independently (Python struct + zlib.crc32) from docs/FILE-CONTAINER.md. */
  static const unsigned char expected[80] =
      "\x4d\x50\x4e\x41\x53\x54\x53\x54\x01\x00\x00\x00\x01\x00\x00\x00"
      "\x50\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x45\x30\x9a\xae"
      "\x41\x42\x43\x44\x00\x00\x00\x00\x11\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x00\x00\x36\xcb\x87\x4c\x04\x03\x02\x01\x00\x00\x80\x3f"
      "\xfe\xff\xff\xff\xff\xff\xff\xff\xab\x00\x00\x00\x00\x00\x00\x00";
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "ABCD");
  mpnas__writer_put_u32(&w, 0x01020304u);
  mpnas__writer_put_f32(&w, 1.0f);
  mpnas__writer_put_i64(&w, -2);
  mpnas__writer_put_u8(&w, 0xab);
  mpnas__writer_end_section(&w);
  const unsigned char *d1, *d2;
  size_t n1, n2;
  CHECK_EQ_INT(mpnas__writer_finish(&w, &d1, &n1), MPNAS_OK);
  CHECK_EQ_INT(mpnas__writer_finish(&w, &d2, &n2), MPNAS_OK); /* idempotent */
  CHECK(d1 == d2 && n1 == n2);
  blob b = finish(&w);
  CHECK_EQ_INT(b.n, sizeof expected);
  if (b.n == sizeof expected) {
    for (size_t i = 0; i < b.n; i++)
      CHECK_MSG(b.p[i] == expected[i], "byte %zu: 0x%02x, expected 0x%02x", i, b.p[i],
                expected[i]);
  }
  free(b.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Writer misuse and out-of-memory ---------------------------------------------- */
static void test_writer_misuse(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  mpnas__writer w;
  const unsigned char *data;
  size_t len;

  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_put_u32(&w, 1); /* outside any section */
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  CHECK(strstr(mpnas_context_last_error(ctx), "outside") != NULL);
  /* Sticky: later calls change nothing, the first message stays. */
  mpnas__writer_begin_section(&w, "OKAY");
  mpnas__writer_put_u32(&w, 1);
  mpnas__writer_end_section(&w);
  CHECK_EQ_INT(mpnas__writer_finish(&w, &data, &len), MPNAS_E_INTERNAL);
  CHECK(data == NULL && len == 0);
  CHECK(strstr(mpnas_context_last_error(ctx), "outside") != NULL);
  mpnas__writer_free(&w);

  const char *bad_tags[] = {"ABC", "ABCDE", "AB D", "AB\tD", "", "\177ABC"};
  for (size_t i = 0; i < sizeof bad_tags / sizeof bad_tags[0]; i++) {
    mpnas__writer_init(&w, ctx, &TOY);
    mpnas__writer_begin_section(&w, bad_tags[i]);
    CHECK_MSG(mpnas__writer_status(&w) == MPNAS_E_INTERNAL, "tag %zu accepted", i);
    mpnas__writer_free(&w);
  }
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, NULL);
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, ctx, &TOY); /* nested */
  mpnas__writer_begin_section(&w, "AAAA");
  mpnas__writer_begin_section(&w, "BBBB");
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, ctx, &TOY); /* end without begin */
  mpnas__writer_end_section(&w);
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, ctx, &TOY); /* duplicate tag, after another section */
  toy_meta(&w, "x");
  toy_wgts(&w, 1, 1);
  mpnas__writer_begin_section(&w, "META");
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  CHECK(strstr(mpnas_context_last_error(ctx), "twice") != NULL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, ctx, &TOY); /* finish with a section open */
  mpnas__writer_begin_section(&w, "AAAA");
  CHECK_EQ_INT(mpnas__writer_finish(&w, &data, &len), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, ctx, &TOY); /* a section after finish */
  CHECK_EQ_INT(mpnas__writer_finish(&w, &data, &len), MPNAS_OK);
  CHECK_EQ_INT(len, 32); /* a file with no sections is just the header */
  mpnas__writer_begin_section(&w, "AAAA");
  CHECK_EQ_INT(mpnas__writer_status(&w), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas__writer_init(&w, NULL, &TOY); /* no context */
  CHECK_EQ_INT(mpnas__writer_finish(&w, &data, &len), MPNAS_E_INTERNAL);
  mpnas__writer_free(&w);

  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_writer_out_of_memory(void) {
  /* Fail the n-th allocation for every n until a write succeeds: each failure is
   * NO_MEMORY, and nothing leaks. 40000 floats make the buffer grow several times. */
  enum { N = 40000 };
  float *big = malloc(N * sizeof(float));
  for (int i = 0; i < N; i++) big[i] = (float)i;
  int succeeded = 0;
  for (long n = 1; n < 50 && !succeeded; n++) {
    alloc_counting c;
    mpnas_context *ctx = new_ctx(&c);
    c.fail_at = c.total + n;
    mpnas__writer w;
    mpnas__writer_init(&w, ctx, &TOY);
    mpnas__writer_begin_section(&w, "BIGG");
    mpnas__writer_put_f32_array(&w, big, N);
    mpnas__writer_end_section(&w);
    toy_meta(&w, "after");
    const unsigned char *data;
    size_t len;
    mpnas_status s = mpnas__writer_finish(&w, &data, &len);
    if (s == MPNAS_OK) {
      succeeded = 1;
      mpnas__reader r;
      CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, data, len), MPNAS_OK);
    } else {
      CHECK_EQ_INT(s, MPNAS_E_NO_MEMORY);
      CHECK_EQ_INT(mpnas_context_last_status(ctx), MPNAS_E_NO_MEMORY);
    }
    mpnas__writer_free(&w);
    mpnas_context_free(ctx);
    CHECK_EQ_INT(c.live, 0);
  }
  CHECK(succeeded);
  free(big);
}

/* ---- Reader: every prefix, every bit ------------------------------------------------ */
static void test_every_prefix(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  blob b = toy_good(ctx);
  CHECK_EQ_INT(toy_decode(ctx, b.p, b.n), MPNAS_OK);
  for (size_t n = 0; n < b.n; n++) {
    /* An exact-size copy so the sanitizer sees any read past the prefix. */
    unsigned char *p = malloc(n ? n : 1);
    memcpy(p, b.p, n);
    mpnas_context_clear_error(ctx);
    mpnas_status s = toy_decode(ctx, p, n);
    CHECK_MSG(s == MPNAS_E_CORRUPT, "prefix of %zu bytes: status %d", n, (int)s);
    CHECK_MSG(strlen(mpnas_context_last_error(ctx)) > 0, "prefix %zu: no message", n);
    free(p);
  }
  free(b.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
  CHECK(c.largest <= LIMIT);
}

static void test_every_bit_flip(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  blob b = toy_good(ctx);
  mpnas__reader r;
  for (size_t i = 0; i < b.n; i++) {
    for (int bit = 0; bit < 8; bit++) {
      b.p[i] ^= (unsigned char)(1u << bit);
      /* Opening alone must catch it: every byte is under a CRC or checked. */
      mpnas_status s = mpnas__reader_open(&r, ctx, &TOY, b.p, b.n);
      CHECK_MSG(s == MPNAS_E_CORRUPT || s == MPNAS_E_VERSION,
                "flip of byte %zu bit %d not detected (status %d)", i, bit, (int)s);
      b.p[i] ^= (unsigned char)(1u << bit);
    }
  }
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  free(b.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Reader: magic, versions, sections, lying counts -------------------------------- */
static void test_magic_and_version(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  mpnas__reader r;
  const char *msg;

  static const char junk[] = "GIF89a this is not a libmpnas file, just some bytes";
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, junk, sizeof junk), MPNAS_E_CORRUPT);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "not a libmpnas test file") != NULL, "%s", msg);

  /* Another kind of libmpnas file: a checkpoint handed to the model loader. */
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY_CKP);
  blob ckp = finish(&w);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, ckp.p, ckp.n), MPNAS_E_CORRUPT);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "MPNASCKP") != NULL && strstr(msg, "another kind") != NULL, "%s",
            msg);
  free(ckp.p);

  /* Newer: both numbers in the message. */
  mpnas__writer_init(&w, ctx, &TOY_V2);
  toy_meta(&w, "v2");
  blob v2 = finish(&w);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, v2.p, v2.n), MPNAS_E_VERSION);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "version 2") != NULL && strstr(msg, "up to 1") != NULL, "%s", msg);
  /* ...even when a newer version changed the rest of the header (CRC no longer ours). */
  v2.p[20] ^= 0x55;
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, v2.p, v2.n), MPNAS_E_VERSION);
  free(v2.p);

  /* Older than the reader's minimum. */
  blob v1 = toy_good(ctx);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY_V2, v1.p, v1.n), MPNAS_E_VERSION);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "version 1") != NULL && strstr(msg, "older") != NULL, "%s", msg);

  /* A failed open makes every later call a no-op with the same status. */
  CHECK(!mpnas__reader_has_section(&r, "META"));
  CHECK_EQ_INT(mpnas__reader_section(&r, "META"), MPNAS_E_VERSION);
  CHECK_EQ_INT(mpnas__reader_get_u32(&r), 0);
  CHECK_EQ_INT(mpnas__reader_remaining(&r), 0);

  /* NULL buffer, empty buffer, NULL context (allowed: status only). */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, NULL, 10), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, NULL, 0), MPNAS_E_CORRUPT);
  CHECK_EQ_INT(mpnas__reader_open(&r, NULL, &TOY, v1.p, v1.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "NOPE"), MPNAS_E_CORRUPT);
  free(v1.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_section_errors(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  mpnas__reader r;
  const char *msg;
  blob b = toy_good(ctx);

  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "MISS"), MPNAS_E_CORRUPT);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "no 'MISS' section") != NULL, "%s", msg);

  /* Reading past the end of a section names the section and the offsets. */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  float w6[6] = {1, 1, 1, 1, 1, 1};
  (void)mpnas__reader_get_u32(&r);
  mpnas__reader_get_f32_array(&r, w6, 6);
  CHECK_EQ_INT(mpnas__reader_status(&r), MPNAS_E_CORRUPT);
  for (int i = 0; i < 6; i++) CHECK(w6[i] == 0.0f); /* zero-filled, not stale */
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "'WGTS'") != NULL && strstr(msg, "offset 4") != NULL &&
                strstr(msg, "file offset 108") != NULL,
            "%s", msg);
  CHECK_EQ_INT(mpnas__reader_get_u8(&r), 0); /* sticky */
  CHECK(mpnas__reader_get_view(&r, 0) == NULL);

  /* Counts: over the limit, and within the limit but more than the bytes left. */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_get_count(&r, 4, 4), 0);
  CHECK_EQ_INT(mpnas__reader_status(&r), MPNAS_E_CORRUPT);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "count 5") != NULL && strstr(msg, "limit of 4") != NULL, "%s", msg);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_get_count(&r, 100, 8), 0); /* 5 x 8 > 20 bytes */
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "20 bytes remain") != NULL, "%s", msg);
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_get_count(&r, 5, 4), 5); /* exactly right */

  /* A string longer than the caller's buffer. */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "META"), MPNAS_OK);
  char small[3] = "zz";
  CHECK_EQ_INT(mpnas__reader_get_string(&r, small, sizeof small), 0);
  CHECK(small[0] == '\0');
  CHECK_EQ_INT(mpnas__reader_status(&r), MPNAS_E_CORRUPT);

  /* Left-over bytes. */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  (void)mpnas__reader_get_u32(&r);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_E_CORRUPT);

  /* A get before any section is selected is a caller bug. */
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, b.p, b.n), MPNAS_OK);
  (void)mpnas__reader_get_u32(&r);
  CHECK_EQ_INT(mpnas__reader_status(&r), MPNAS_E_INTERNAL);

  free(b.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- The bad-file corpus ------------------------------------------------------------- */
typedef struct {
  const char *name;
  blob b;
} bad_file;

static blob patched(mpnas_context *ctx, size_t at, const void *bytes, size_t n, int fix) {
  blob b = toy_good(ctx);
  memcpy(b.p + at, bytes, n);
  if (fix == 1) fix_header_crc(&b);
  if (fix == 2) fix_section_crc(&b, at < WGTS_OFF ? META_OFF : WGTS_OFF);
  return b;
}

static blob header_u32(mpnas_context *ctx, size_t at, uint32_t v) {
  unsigned char x[4];
  st32(x, v);
  return patched(ctx, at, x, 4, 1);
}

static blob header_u64(mpnas_context *ctx, size_t at, uint64_t v) {
  unsigned char x[8];
  st64(x, v);
  return patched(ctx, at, x, 8, 1);
}

static blob section_u32(mpnas_context *ctx, size_t at, uint32_t v) {
  unsigned char x[4];
  st32(x, v);
  return patched(ctx, at, x, 4, 2);
}

static blob flipped(mpnas_context *ctx, size_t at) {
  blob b = toy_good(ctx);
  b.p[at] ^= 0x10;
  return b;
}

static blob truncated(mpnas_context *ctx, size_t keep) {
  blob b = toy_good(ctx);
  b.n = keep;
  return b;
}

/* Every bad file the generator makes. Each must give a non-OK status; the comment
 * after each says which check catches it. */
static size_t make_corpus(mpnas_context *ctx, bad_file *out) {
  size_t k = 0;
  mpnas__writer w;
  blob b;
#define ADD(nm, expr) (out[k].name = (nm), out[k].b = (expr), k++)
  ADD("empty.bin", blob_copy("", 0));                               /* no magic */
  ADD("three-bytes.bin", blob_copy("MPN", 3));                      /* truncated */
  ADD("magic-only.bin", blob_copy("MPNASTST", 8));                  /* truncated */
  ADD("wrong-magic.bin", patched(ctx, 0, "\x89PNG\r\n\x1a\n", 8, 0)); /* magic */
  ADD("other-kind.bin", patched(ctx, 0, "MPNASCKP", 8, 1));         /* magic */
  ADD("newer-version.bin", header_u32(ctx, 8, 2));                  /* version */
  ADD("older-version.bin", header_u32(ctx, 8, 0));                  /* version */
  ADD("truncated-header.bin", truncated(ctx, 20));                  /* length */
  ADD("truncated-section.bin", truncated(ctx, 122));                /* total length */
  ADD("truncated-padding.bin", truncated(ctx, 79));                 /* total length */
  ADD("header-crc.bin", flipped(ctx, 29));                          /* header CRC */
  ADD("header-field-flip.bin", flipped(ctx, 12));                   /* header CRC */
  ADD("section-crc.bin", flipped(ctx, 110));                        /* section CRC */
  ADD("section-tag-flip.bin", flipped(ctx, WGTS_OFF + 1));          /* section CRC */
  ADD("total-length-lie.bin", header_u64(ctx, 16, 136));            /* total length */
  ADD("total-length-absurd.bin", header_u64(ctx, 16, UINT64_MAX));  /* total length */
  b = toy_good(ctx);
  b.p = realloc(b.p, b.n + 8);
  memset(b.p + b.n, 0, 8);
  b.n += 8;
  ADD("trailing-data.bin", b);                                      /* total length */
  b = toy_good(ctx);
  b.p = realloc(b.p, b.n + 24);
  memset(b.p + b.n, 0, 24);
  b.n += 24;
  st64(b.p + 16, b.n);
  fix_header_crc(&b);
  ADD("trailing-zero-section.bin", b);             /* walk ends before the end */
  ADD("section-count-lie.bin", header_u32(ctx, 12, 3));             /* walk */
  ADD("section-count-short.bin", header_u32(ctx, 12, 1));           /* walk */
  ADD("section-count-absurd.bin", header_u32(ctx, 12, UINT32_MAX)); /* limit */
  ADD("header-reserved.bin", header_u32(ctx, 24, 1));               /* reserved */
  b = toy_good(ctx);
  st64(b.p + WGTS_OFF + 8, (uint64_t)1 << 62);
  ADD("section-length-absurd.bin", b);                              /* bounds */
  b = toy_good(ctx);
  st64(b.p + WGTS_OFF + 8, UINT64_MAX);
  ADD("section-length-max.bin", b);                                 /* bounds */
  b = toy_good(ctx);
  st64(b.p + META_OFF + 8, 31);
  fix_section_crc(&b, META_OFF);
  ADD("section-length-lie.bin", b);               /* walk: WGTS header misplaced */
  ADD("section-flags.bin", section_u32(ctx, META_OFF + 4, 1));      /* flags */
  ADD("section-reserved.bin", section_u32(ctx, META_OFF + 16, 1));  /* reserved */
  ADD("bad-tag.bin", section_u32(ctx, META_OFF, 0x41002d4du));      /* tag bytes */
  ADD("duplicate-section.bin", patched(ctx, WGTS_OFF, "META", 4, 2)); /* unique tags */
  ADD("bad-padding.bin", patched(ctx, META_OFF + 24 + 23, "\x01", 1, 0)); /* padding */

  /* Valid containers whose content lies: caught by the get_* checks. */
  mpnas__writer_init(&w, ctx, &TOY);
  ADD("no-sections.bin", finish(&w));                               /* missing META */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  ADD("missing-section.bin", finish(&w));                           /* missing WGTS */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, UINT32_MAX, 5);
  ADD("absurd-count.bin", finish(&w));                              /* count limit */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, 1000, 5);
  ADD("count-lies.bin", finish(&w));                                /* count vs bytes */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, (1u << 18) + 1, 5);
  ADD("count-over-limit.bin", finish(&w));                          /* count limit */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, 4, 5);
  ADD("extra-bytes.bin", finish(&w));                               /* expect_end */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "toy");
  toy_wgts(&w, 6, 5);
  ADD("short-array.bin", finish(&w));                               /* count vs bytes */
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "META");
  mpnas__writer_put_u32(&w, 0xfffffff0u);
  mpnas__writer_put_bytes(&w, "toy", 3);
  mpnas__writer_end_section(&w);
  toy_wgts(&w, 5, 5);
  ADD("string-length-lie.bin", finish(&w));                         /* string limit */
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "META");
  mpnas__writer_put_u32(&w, 40);
  mpnas__writer_put_bytes(&w, "toy", 3);
  mpnas__writer_end_section(&w);
  toy_wgts(&w, 5, 5);
  ADD("string-past-end.bin", finish(&w));                           /* section end */
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "a name that is far too long for the sixty-four byte buffer of the toy");
  toy_wgts(&w, 5, 5);
  ADD("string-too-long.bin", finish(&w));                           /* string limit */
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "META");
  mpnas__writer_put_u32(&w, 5);
  mpnas__writer_put_bytes(&w, "ab\0cd", 5);
  mpnas__writer_put_i64(&w, 7);
  mpnas__writer_put_f64(&w, 0.5);
  mpnas__writer_end_section(&w);
  toy_wgts(&w, 5, 5);
  ADD("string-with-nul.bin", finish(&w));                           /* NUL byte */
  mpnas__writer_init(&w, ctx, &TOY);
  mpnas__writer_begin_section(&w, "META");
  mpnas__writer_put_string(&w, "toy");
  mpnas__writer_put_i64(&w, 7);
  mpnas__writer_end_section(&w);
  toy_wgts(&w, 5, 5);
  ADD("short-section.bin", finish(&w));                             /* section end */
#undef ADD
  return k;
}
#define CORPUS_MAX 64

static void test_corpus_generated(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  CHECK(n <= CORPUS_MAX);
  for (size_t i = 0; i < n; i++) {
    /* Exact-size copy, so a read past the end is a sanitizer error. */
    blob b = blob_copy(files[i].b.p, files[i].b.n);
    mpnas_context_clear_error(ctx);
    mpnas_status s = toy_decode(ctx, b.p, b.n);
    CHECK_MSG(s == MPNAS_E_CORRUPT || s == MPNAS_E_VERSION, "%s: status %d",
              files[i].name, (int)s);
    CHECK_MSG(strlen(mpnas_context_last_error(ctx)) > 0, "%s: no message", files[i].name);
    free(b.p);
    free(files[i].b.p);
  }
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
  CHECK_MSG(c.largest <= LIMIT, "largest allocation %zu", c.largest);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_corpus_replay(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  bad_file files[CORPUS_MAX];
  size_t expected = make_corpus(ctx, files);
  DIR *d = opendir(CORPUS_DIR);
  CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", CORPUS_DIR);
  size_t replayed = 0;
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!has_suffix(e->d_name, ".bin")) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%.256s", CORPUS_DIR, e->d_name);
      unsigned char *data = NULL;
      size_t len = 0;
      mpnas_status s = mpnas__read_file(ctx, path, MIB, &data, &len);
      CHECK_MSG(s == MPNAS_OK, "%.256s: read status %d", e->d_name, (int)s);
      if (s == MPNAS_OK) {
        s = toy_decode(ctx, data, len);
        CHECK_MSG(s != MPNAS_OK, "%.256s decoded without error", e->d_name);
        mpnas__free(ctx, data);
      }
      replayed++;
    }
    closedir(d);
  }
  /* Every generated case must be in the directory (refresh it with --write-corpus). */
  for (size_t i = 0; i < expected; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, files[i].name);
    struct stat st;
    CHECK_MSG(stat(path, &st) == 0, "%s is missing from the corpus", files[i].name);
    free(files[i].b.p);
  }
  CHECK(replayed >= expected);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
  CHECK_MSG(c.largest <= LIMIT, "largest allocation %zu", c.largest);
}

static int write_corpus(const char *dir) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  int failed = 0;
  for (size_t i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(files[i].b.p, 1, files[i].b.n, f) != files[i].b.n) failed = 1;
    if (f != NULL && fclose(f) != 0) failed = 1;
    free(files[i].b.p);
  }
  mpnas_context_free(ctx);
  printf("wrote %zu files to %s%s\n", n, dir, failed ? " (with errors)" : "");
  return failed;
}

/* ---- Files ------------------------------------------------------------------------ */
static char tmpdir[64];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mpnas-serial-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) tmpdir[0] = '\0';
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
      chmod(path, 0700);
      remove_tree(path);
    } else {
      unlink(path);
    }
  }
  closedir(d);
  rmdir(dir);
}

/* Number of directory entries other than . and .. ; those containing ".tmp." too. */
static int count_entries(const char *dir, int *temps) {
  int n = 0;
  *temps = 0;
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    n++;
    if (strstr(e->d_name, ".tmp.") != NULL) (*temps)++;
  }
  closedir(d);
  return n;
}

static int file_equals(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  unsigned char *buf = malloc(len + 1);
  size_t got = fread(buf, 1, len + 1, f);
  fclose(f);
  int same = got == len && memcmp(buf, data, len) == 0;
  free(buf);
  return same;
}

static void test_read_file(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  make_tmpdir();
  CHECK(tmpdir[0] != '\0');
  char path[256];
  unsigned char *data;
  size_t len;

  /* Exactly at the limit: fine. One byte over: refused, and nothing that size was
   * ever asked of the allocator. */
  snprintf(path, sizeof path, "%s/big", tmpdir);
  size_t big = 2 * MIB;
  unsigned char *content = malloc(big);
  for (size_t i = 0; i < big; i++) content[i] = (unsigned char)(i * 7);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, content, big), MPNAS_OK);
  c.largest = 0;
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_E_CORRUPT);
  CHECK(data == NULL && len == 0);
  CHECK(c.largest < 4096);
  CHECK(strstr(mpnas_context_last_error(ctx), "limit") != NULL);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, content, MIB), MPNAS_OK);
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_OK);
  CHECK(len == MIB && memcmp(data, content, MIB) == 0);
  mpnas__free(ctx, data);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, content, MIB + 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_E_CORRUPT);
  free(content);

  /* Empty file: read fine (the reader then says it is too short). */
  snprintf(path, sizeof path, "%s/empty", tmpdir);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, NULL, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_OK);
  CHECK(data != NULL && len == 0);
  CHECK_EQ_INT(toy_decode(ctx, data, len), MPNAS_E_CORRUPT);
  mpnas__free(ctx, data);

  /* Missing file, a directory, empty path. */
  snprintf(path, sizeof path, "%s/does-not-exist", tmpdir);
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_E_IO);
  CHECK(strstr(mpnas_context_last_error(ctx), strerror(ENOENT)) != NULL);
  CHECK(strstr(mpnas_context_last_error(ctx), "does-not-exist") != NULL);
  CHECK_EQ_INT(mpnas__read_file(ctx, tmpdir, MIB, &data, &len), MPNAS_E_IO);
  CHECK_EQ_INT(mpnas__read_file(ctx, "", MIB, &data, &len), MPNAS_E_INVALID_ARGUMENT);

  /* A non-regular file is read in chunks, still bounded: /dev/zero never ends. */
  c.largest = 0;
  CHECK_EQ_INT(mpnas__read_file(ctx, "/dev/zero", 100000, &data, &len), MPNAS_E_CORRUPT);
  CHECK(c.largest <= 100001 + 128);

  remove_tree(tmpdir);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_atomic_write(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  make_tmpdir();
  CHECK(tmpdir[0] != '\0');
  char path[256];
  snprintf(path, sizeof path, "%s/model.mpnas", tmpdir);
  int temps;

  /* New file, through the writer. */
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "first");
  CHECK_EQ_INT(mpnas__writer_to_file(&w, path), MPNAS_OK);
  mpnas__writer_free(&w);
  CHECK_EQ_INT(count_entries(tmpdir, &temps), 1);
  CHECK_EQ_INT(temps, 0);
  unsigned char *data;
  size_t len;
  CHECK_EQ_INT(mpnas__read_file(ctx, path, MIB, &data, &len), MPNAS_OK);
  mpnas__reader r;
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, data, len), MPNAS_OK);
  char name[16];
  CHECK_EQ_INT(mpnas__reader_section(&r, "META"), MPNAS_OK);
  mpnas__reader_get_string(&r, name, sizeof name);
  CHECK(strcmp(name, "first") == 0);
  mpnas__free(ctx, data);

  /* Replace it: new content, same permissions, still no temp files. */
  CHECK(chmod(path, 0640) == 0);
  blob b = toy_good(ctx);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, b.p, b.n), MPNAS_OK);
  CHECK(file_equals(path, b.p, b.n));
  struct stat st;
  CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
  CHECK_EQ_INT(count_entries(tmpdir, &temps), 1);
  CHECK_EQ_INT(temps, 0);

  /* A stale temp file of a crashed writer with our pid is stepped over, not reused. */
  char stale[300];
  snprintf(stale, sizeof stale, "%s.tmp.%ld.0", path, (long)getpid());
  FILE *f = fopen(stale, "wb");
  CHECK(f != NULL);
  if (f) fclose(f);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, "abc", 3), MPNAS_OK);
  CHECK(file_equals(path, "abc", 3));
  CHECK(file_equals(stale, "", 0));
  unlink(stale);

  /* A relative path (the directory sync uses "."). */
  char cwd[512];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(tmpdir) == 0);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, "relative", "xy", 2), MPNAS_OK);
  CHECK(chdir(cwd) == 0);
  char rel[300];
  snprintf(rel, sizeof rel, "%s/relative", tmpdir);
  CHECK(file_equals(rel, "xy", 2));

  free(b.p);
  remove_tree(tmpdir);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_atomic_write_failures(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  make_tmpdir();
  CHECK(tmpdir[0] != '\0');
  char path[256], dir[256];
  int temps;
  const char *msg;
  blob old = toy_good(ctx);

  /* A directory that does not exist. */
  snprintf(path, sizeof path, "%s/no-such-dir/model", tmpdir);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, old.p, old.n), MPNAS_E_IO);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, strerror(ENOENT)) != NULL && strstr(msg, "no-such-dir") != NULL,
            "%s", msg);

  /* The target is a directory: the rename fails after the data was written; the temp
   * file must go and the directory must stay. */
  snprintf(dir, sizeof dir, "%s/target-dir", tmpdir);
  CHECK(mkdir(dir, 0700) == 0);
  snprintf(path, sizeof path, "%s/target-dir/keep", tmpdir);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, "k", 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, dir, old.p, old.n), MPNAS_E_IO);
  msg = mpnas_context_last_error(ctx);
  CHECK_MSG(strstr(msg, "rename") != NULL && strstr(msg, "unchanged") != NULL, "%s", msg);
  CHECK(file_equals(path, "k", 1));
  CHECK_EQ_INT(count_entries(tmpdir, &temps), 1);
  CHECK_EQ_INT(temps, 0);

  /* A write that fails half-way (file size limit => EFBIG): the old file is intact and
   * no temp file is left. Works as root too, unlike permissions. */
  snprintf(path, sizeof path, "%s/model", tmpdir);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, old.p, old.n), MPNAS_OK);
  size_t big_n = 256 * 1024;
  unsigned char *big = calloc(big_n, 1);
  struct rlimit saved, small;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
  small = saved;
  small.rlim_cur = 4096;
  if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
    mpnas_status s = mpnas__write_file_atomic(ctx, path, big, big_n);
    setrlimit(RLIMIT_FSIZE, &saved);
    CHECK_EQ_INT(s, MPNAS_E_IO);
    msg = mpnas_context_last_error(ctx);
    CHECK_MSG(strstr(msg, strerror(EFBIG)) != NULL && strstr(msg, "write") != NULL, "%s",
              msg);
    CHECK(file_equals(path, old.p, old.n));
    CHECK_EQ_INT(count_entries(tmpdir, &temps), 2);
    CHECK_EQ_INT(temps, 0);
  } else {
    printf("    (setrlimit failed: write-failure case skipped)\n");
  }
  signal(SIGXFSZ, prev);
  free(big);

  /* An unwritable directory (permissions do not stop root, so only as a normal user;
   * the cases above cover the same clean-up paths either way). */
  snprintf(dir, sizeof dir, "%s/read-only", tmpdir);
  CHECK(mkdir(dir, 0700) == 0);
  snprintf(path, sizeof path, "%s/read-only/model", tmpdir);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, old.p, old.n), MPNAS_OK);
  CHECK(chmod(dir, 0500) == 0);
  if (geteuid() != 0) {
    CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, "new", 3), MPNAS_E_IO);
    msg = mpnas_context_last_error(ctx);
    CHECK_MSG(strstr(msg, strerror(EACCES)) != NULL, "%s", msg);
    CHECK(file_equals(path, old.p, old.n));
    CHECK_EQ_INT(count_entries(dir, &temps), 1);
    CHECK_EQ_INT(temps, 0);
  } else {
    /* As root: /proc refuses new files whatever the permissions. */
    CHECK_EQ_INT(mpnas__write_file_atomic(ctx, "/proc/self/mpnas-test", "x", 1),
                 MPNAS_E_IO);
  }
  chmod(dir, 0700);

  /* Bad arguments. */
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, "", "x", 1), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas__write_file_atomic(ctx, path, NULL, 1), MPNAS_E_INVALID_ARGUMENT);

  free(old.p);
  remove_tree(tmpdir);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_large_file_round_trip(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  c.limit = 0; /* this one is about size, not limits */
  make_tmpdir();
  char path[256];
  snprintf(path, sizeof path, "%s/large", tmpdir);
  enum { N = 300000 };
  float *v = malloc(N * sizeof(float)), *back = malloc(N * sizeof(float));
  uint32_t s = 1;
  for (int i = 0; i < N; i++) v[i] = u2f(s = s * 1664525u + 1013904223u); /* any bits */
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &TOY);
  toy_meta(&w, "large");
  mpnas__writer_begin_section(&w, "WGTS");
  mpnas__writer_put_u32(&w, N);
  mpnas__writer_put_f32_array(&w, v, N);
  mpnas__writer_end_section(&w);
  CHECK_EQ_INT(mpnas__writer_to_file(&w, path), MPNAS_OK);
  mpnas__writer_free(&w);
  unsigned char *data;
  size_t len;
  CHECK_EQ_INT(mpnas__read_file(ctx, path, 4 * MIB, &data, &len), MPNAS_OK);
  mpnas__reader r;
  CHECK_EQ_INT(mpnas__reader_open(&r, ctx, &TOY, data, len), MPNAS_OK);
  CHECK_EQ_INT(mpnas__reader_section(&r, "WGTS"), MPNAS_OK);
  uint32_t n = mpnas__reader_get_count(&r, N, 4);
  CHECK_EQ_INT(n, N);
  mpnas__reader_get_f32_array(&r, back, n);
  CHECK(memcmp(v, back, N * sizeof(float)) == 0);
  CHECK_EQ_INT(mpnas__reader_expect_end(&r), MPNAS_OK);
  mpnas__free(ctx, data);
  free(v);
  free(back);
  remove_tree(tmpdir);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* Print what the reader says about each generated bad file (to review the messages). */
static int show_corpus(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  for (size_t i = 0; i < n; i++) {
    mpnas_context_clear_error(ctx);
    mpnas_status s = toy_decode(ctx, files[i].b.p, files[i].b.n);
    printf("%-28s %3d  %s\n", files[i].name, (int)s, mpnas_context_last_error(ctx));
    free(files[i].b.p);
  }
  mpnas_context_free(ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
  if (argc == 2 && strcmp(argv[1], "--show-corpus") == 0) return show_corpus();
  RUN(test_crc32);
  RUN(test_round_trip);
  RUN(test_exact_bytes);
  RUN(test_writer_misuse);
  RUN(test_writer_out_of_memory);
  RUN(test_every_prefix);
  RUN(test_every_bit_flip);
  RUN(test_magic_and_version);
  RUN(test_section_errors);
  RUN(test_corpus_generated);
  RUN(test_corpus_replay);
  RUN(test_read_file);
  RUN(test_atomic_write);
  RUN(test_atomic_write_failures);
  RUN(test_large_file_round_trip);
  return check_finish();
}
