/* test_model_io.c - the multi-path model's file format and checkpoints
 * (src/model/model_io.c, docs/MODEL-FORMAT.md): save / load round trips with
 * bit-identical predictions (file and memory buffer, the same bytes), checkpoint and
 * resume bit-identical to an uninterrupted run, checkpoints refused by a model they do
 * not belong to (changing nothing), argument and I/O errors, and the bad-model corpus in
 * tests/data/bad-models/ replayed with an allocator that refuses (and records) any block
 * above 64 MiB.
 *
 * The corpus is made by this program: `test_model_io --write-corpus DIR` writes every
 * generated bad file to DIR (run from the repository root with DIR =
 * tests/data/bad-models to refresh it); `test_model_io --show-corpus` prints the status
 * and message of each. A normal run checks the generated cases in memory (each with its
 * exact status) AND replays every *.bin in the directory, so files added by hand (say,
 * from a fuzzer) are replayed too. */
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc_counting.h"
#include "check.h"
#include "common/serial.h"
#include "mpnas.h"

#ifndef CORPUS_DIR
#define CORPUS_DIR "tests/data/bad-models"
#endif

/* The model format's container kind (for rebuilding files in the corpus generator). */
static const mpnas__file_kind MODEL_KIND = {"MPNASMDL", "model", 1, 1};

/* ---- The counting allocator (alloc_counting.h), refusing any single block above a limit */
#define MIB ((size_t)1 << 20)
#define LIMIT (64 * MIB)

static mpnas_context *new_ctx(alloc_counting *c, uint64_t seed) {
  mpnas_context *ctx = alloc_counting_context(c, LIMIT);
  if (ctx != NULL) mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, (int64_t)seed);
  return ctx;
}

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

/* Offset of the header of the section with this tag (0 if there is none). */
static size_t find_section(const blob *b, const char *tag) {
  size_t off = 32;
  while (off + 24 <= b->n) {
    uint64_t len = ld64(b->p + off + 8);
    if (memcmp(b->p + off, tag, 4) == 0) return off;
    off += 24 + (size_t)len + (size_t)((8 - len % 8) % 8);
  }
  return 0;
}
static void fix_section_crc(blob *b, size_t off) {
  uint64_t len = ld64(b->p + off + 8);
  uint32_t c = mpnas__crc32(0, b->p + off, 20);
  c = mpnas__crc32(c, b->p + off + 24, (size_t)len);
  st32(b->p + off + 20, c);
}
/* Payload offset of a field of a section. */
static size_t field(const blob *b, const char *tag, size_t at) { return find_section(b, tag) + 24 + at; }
static void patch32(blob *b, const char *tag, size_t at, uint32_t v) {
  st32(b->p + field(b, tag, at), v);
  fix_section_crc(b, find_section(b, tag));
}
static void patch64(blob *b, const char *tag, size_t at, uint64_t v) {
  st64(b->p + field(b, tag, at), v);
  fix_section_crc(b, find_section(b, tag));
}
static void patchf64(blob *b, const char *tag, size_t at, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  patch64(b, tag, at, u);
}

/* Re-emit a file section by section with the writer, replacing the payload of `tag`
 * (payload NULL: drop the section). */
static blob rebuild(mpnas_context *ctx, const blob *src, const char *tag, const void *payload,
                    size_t len) {
  mpnas__writer w;
  mpnas__writer_init(&w, ctx, &MODEL_KIND);
  size_t off = 32;
  while (off + 24 <= src->n) {
    uint64_t n = ld64(src->p + off + 8);
    char t[5] = {0};
    memcpy(t, src->p + off, 4);
    if (strcmp(t, tag) != 0) {
      mpnas__writer_begin_section(&w, t);
      mpnas__writer_put_bytes(&w, src->p + off + 24, (size_t)n);
      mpnas__writer_end_section(&w);
    } else if (payload != NULL) {
      mpnas__writer_begin_section(&w, t);
      mpnas__writer_put_bytes(&w, payload, len);
      mpnas__writer_end_section(&w);
    }
    off += 24 + (size_t)n + (size_t)((8 - n % 8) % 8);
  }
  const unsigned char *data = NULL;
  size_t size = 0;
  mpnas_status s = mpnas__writer_finish(&w, &data, &size);
  CHECK_EQ_INT(s, MPNAS_OK);
  blob b = blob_copy(data, s == MPNAS_OK ? size : 0);
  mpnas__writer_free(&w);
  return b;
}

/* A section's payload with `extra` bytes appended (zeros) or, if negative, removed. */
static blob resized(mpnas_context *ctx, const blob *src, const char *tag, long extra) {
  size_t off = find_section(src, tag);
  size_t n = (size_t)ld64(src->p + off + 8);
  size_t m = (size_t)((long)n + extra);
  unsigned char *p = calloc(m + 1, 1);
  memcpy(p, src->p + off + 24, n < m ? n : m);
  blob b = rebuild(ctx, src, tag, p, m);
  free(p);
  return b;
}

/* ---- Data and models -------------------------------------------------------------------- */
static uint32_t lcg(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return *s >> 8;
}

/* n images of h x w x c uint8 and labels 0..classes-1 from a seed. */
static void make_data(uint32_t seed, int n, int classes, size_t per, unsigned char *img,
                      int32_t *lab) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < (size_t)n * per; i++) img[i] = (unsigned char)lcg(&s);
  for (int i = 0; i < n; i++) lab[i] = (int32_t)(lcg(&s) % (uint32_t)classes);
}

/* The main test model: 16x16x3, stem 8, head 16, SE as a choice; stage 0 (16 ch, 2
 * layers, stride 2) with the default lists k {3,5} x e {2,3}; stage 1 (24 ch, 2 layers,
 * stride 2) with its own lists k {3} x e {1,2} (e = 1: no expansion conv). Ops per layer:
 * 8, 9 (zero first), 4, 5. Three domains whose paths overlap. */
#define H 16
#define W 16
#define C 3
#define PER ((size_t)H * W * C)
#define NL 4
#define ND 3
#define NTRAIN 40
static const int32_t PATHS[ND][NL] = {{0, 1, 0, 1}, {0, 3, 1, 0}, {1, 1, 2, 4}};
static const int32_t OTHER_PATHS[ND][NL] = {{0, 1, 0, 1}, {0, 3, 1, 0}, {1, 2, 2, 4}};
static const char *const NAMES[ND] = {"alpha", "beta", "gamma"};
static const int32_t CLASSES[ND] = {3, 4, 2};

static mpnas_space *test_space(mpnas_context *ctx) {
  mpnas_space *sp = NULL;
  if (mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp) != MPNAS_OK) return NULL;
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, H);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, W);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, C);
  mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 8);
  mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 16);
  mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_CHOICE);
  const int32_t k[] = {3, 5}, e[] = {2, 3}, k1[] = {3}, e1[] = {1, 2};
  CHECK_EQ_INT(mpnas_space_set_choices(sp, -1, k, 2, e, 2), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_add_stage(sp, 16, 2, 2, MPNAS_ACT_RELU6, 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_add_stage(sp, 24, 2, 2, MPNAS_ACT_HSWISH, 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas_space_set_choices(sp, 1, k1, 1, e1, 2), MPNAS_OK);
  return sp;
}

/* A model of the test space with the given paths; data_salt changes domain 2's data. */
static mpnas_model *test_model(mpnas_context *ctx, const int32_t paths[ND][NL],
                               uint32_t data_salt) {
  mpnas_space *sp = test_space(ctx);
  mpnas_model *m = NULL;
  CHECK_EQ_INT(mpnas_model_create(ctx, sp, &m), MPNAS_OK);
  mpnas_space_free(sp);
  if (m == NULL) return NULL;
  unsigned char *img = malloc(NTRAIN * PER);
  int32_t lab[NTRAIN];
  for (int d = 0; d < ND; d++) {
    int32_t dom = -1;
    CHECK_EQ_INT(mpnas_model_add_domain(m, NAMES[d], CLASSES[d], paths[d], NL, &dom), MPNAS_OK);
    CHECK_EQ_INT(dom, d);
    make_data(100u + (uint32_t)d + (d == 2 ? data_salt : 0), NTRAIN, CLASSES[d], PER, img, lab);
    CHECK_EQ_INT(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, NTRAIN),
                 MPNAS_OK);
    if (d == 1) { /* an explicit validation split for one domain */
      make_data(200u, 12, CLASSES[d], PER, img, lab);
      CHECK_EQ_INT(mpnas_model_set_data(m, d, MPNAS_SPLIT_VALID, MPNAS_DTYPE_U8, img, lab, 12),
                   MPNAS_OK);
    }
  }
  free(img);
  CHECK_EQ_INT(mpnas_model_set_domain_int(m, 0, MPNAS_DOMAIN_HFLIP, 1), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 20), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 4), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 8), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 5), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_TRAIN_OPTIMIZER, MPNAS_OPTIMIZER_ADAM), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 0.01), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SAMPLE_PROPORTIONAL),
               MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, MPNAS_ABDP_SIGNAL_LOSS), MPNAS_OK);
  return m;
}

#define NTEST 7
static unsigned char test_images[NTEST * PER];

/* Logits and probabilities of every domain on the test images into out (NTEST x
 * classes x 2 per domain, domain after domain). Returns the floats written. */
static size_t predict_all(const mpnas_model *m, float *out) {
  mpnas_predictor *p = NULL;
  size_t k = 0;
  CHECK_EQ_INT(mpnas_predictor_create(m, &p), MPNAS_OK);
  if (p == NULL) return 0;
  for (int d = 0; d < ND; d++)
    for (int32_t o = MPNAS_OUTPUT_LOGITS; o <= MPNAS_OUTPUT_PROBABILITIES; o++) {
      size_t n = (size_t)NTEST * (size_t)CLASSES[d];
      CHECK_EQ_INT(mpnas_predictor_run(p, d, MPNAS_DTYPE_U8, test_images, NTEST, o, out + k, n),
                   MPNAS_OK);
      k += n;
    }
  mpnas_predictor_free(p);
  return k;
}

static blob save_blob(const mpnas_model *m) {
  size_t n = 0;
  CHECK_EQ_INT(mpnas_model_save_buffer(m, NULL, 0, &n), MPNAS_OK);
  blob b = {malloc(n ? n : 1), n};
  size_t n2 = 0;
  CHECK_EQ_INT(mpnas_model_save_buffer(m, b.p, n, &n2), MPNAS_OK);
  CHECK_EQ_INT(n2, n);
  return b;
}

static int blob_equal(blob a, blob b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

static blob read_whole(const char *path) {
  blob b = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (f == NULL) return b;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  b.p = malloc(n > 0 ? (size_t)n : 1);
  b.n = fread(b.p, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static int write_whole(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return 0;
  int ok = fwrite(p, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

static char tmpdir[64];
static char *tmp_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", tmpdir, name);
  return buf;
}

/* ---- Round trips --------------------------------------------------------------------- */
static void check_same_model(const mpnas_model *a, const mpnas_model *b) {
  int32_t na = 0, nb = 0;
  mpnas_model_num_domains(a, &na);
  mpnas_model_num_domains(b, &nb);
  CHECK_EQ_INT(na, nb);
  for (int32_t d = 0; d < na && d < nb; d++) {
    char x[64], y[64];
    int32_t ca = 0, cb = 0, pa[NL], pb[NL];
    CHECK_EQ_INT(mpnas_model_domain_name(a, d, x, sizeof x, NULL), MPNAS_OK);
    CHECK_EQ_INT(mpnas_model_domain_name(b, d, y, sizeof y, NULL), MPNAS_OK);
    CHECK(strcmp(x, y) == 0);
    mpnas_model_domain_classes(a, d, &ca);
    mpnas_model_domain_classes(b, d, &cb);
    CHECK_EQ_INT(ca, cb);
    CHECK_EQ_INT(mpnas_model_path(a, d, pa, NL), MPNAS_OK);
    CHECK_EQ_INT(mpnas_model_path(b, d, pb, NL), MPNAS_OK);
    CHECK(memcmp(pa, pb, sizeof pa) == 0);
  }
  const int32_t ip[] = {MPNAS_TRAIN_STEPS,       MPNAS_TRAIN_BATCH,   MPNAS_TRAIN_OPTIMIZER,
                        MPNAS_TRAIN_VALID_EVERY, MPNAS_MODEL_PARAMS,  MPNAS_MODEL_NUM_NODES,
                        MPNAS_MODEL_MACS,        MPNAS_ABDP_SAMPLING, MPNAS_ABDP_SIGNAL};
  for (size_t i = 0; i < sizeof ip / sizeof ip[0]; i++) {
    int64_t va = -1, vb = -2;
    mpnas_model_get_int(a, ip[i], &va);
    mpnas_model_get_int(b, ip[i], &vb);
    CHECK_MSG(va == vb, "parameter %d: %lld vs %lld", (int)ip[i], (long long)va, (long long)vb);
  }
  double la = 0, lb = 1;
  mpnas_model_get_double(a, MPNAS_TRAIN_LEARNING_RATE, &la);
  mpnas_model_get_double(b, MPNAS_TRAIN_LEARNING_RATE, &lb);
  CHECK(la == lb);
  static float pa[4096], pb[4096];
  size_t n = predict_all(a, pa);
  CHECK_EQ_INT(predict_all(b, pb), n);
  CHECK(n > 0 && memcmp(pa, pb, sizeof(float) * n) == 0);
  for (int d = 0; d < ND; d++) {
    int32_t lab[NTEST];
    for (int i = 0; i < NTEST; i++) lab[i] = i % CLASSES[d];
    double t1a = -1, t1b = -2, lsa = -1, lsb = -2;
    CHECK_EQ_INT(mpnas_model_evaluate(a, d, MPNAS_DTYPE_U8, test_images, lab, NTEST, &t1a, &lsa),
                 MPNAS_OK);
    CHECK_EQ_INT(mpnas_model_evaluate(b, d, MPNAS_DTYPE_U8, test_images, lab, NTEST, &t1b, &lsb),
                 MPNAS_OK);
    CHECK(t1a == t1b && lsa == lsb);
  }
}

static void test_round_trip_file(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 7);
  mpnas_model *m = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(m, 0, NULL, NULL, 0), MPNAS_OK);
  char path[128];
  tmp_path(path, sizeof path, "model.bin");
  CHECK_EQ_INT(mpnas_model_save(m, path), MPNAS_OK);
  mpnas_model *l = NULL;
  CHECK_EQ_INT(mpnas_model_load(ctx, path, &l), MPNAS_OK);
  if (l != NULL) {
    check_same_model(m, l);
    /* A loaded model saves to the very same bytes. */
    blob a = save_blob(m), b = save_blob(l);
    CHECK(blob_equal(a, b));
    /* And the file is those bytes too. */
    blob f = read_whole(path);
    CHECK(blob_equal(a, f));
    free(a.p), free(b.p), free(f.p);
    int64_t step = -1;
    CHECK_EQ_INT(mpnas_model_get_int(l, MPNAS_TRAIN_STEP, &step), MPNAS_OK);
    CHECK_EQ_INT(step, 0);
    /* Saving to the same path again replaces the file atomically (no temp left). */
    CHECK_EQ_INT(mpnas_model_save(l, path), MPNAS_OK);
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    int temps = 0;
    while (dir && (e = readdir(dir)) != NULL) temps += strstr(e->d_name, ".tmp.") != NULL;
    if (dir) closedir(dir);
    CHECK_EQ_INT(temps, 0);
  }
  mpnas_model_free(l);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_round_trip_buffer(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 7);
  mpnas_model *m = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(m, 0, NULL, NULL, 0), MPNAS_OK);
  size_t n = 0, n2 = 0;
  CHECK_EQ_INT(mpnas_model_save_buffer(m, NULL, 0, &n), MPNAS_OK);
  CHECK(n > 32 && n % 8 == 0);
  unsigned char *buf = malloc(n);
  /* Too small: the size is still reported. */
  CHECK_EQ_INT(mpnas_model_save_buffer(m, buf, n - 1, &n2), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(n2, n);
  CHECK(strstr(mpnas_context_last_error(ctx), "bytes") != NULL);
  CHECK_EQ_INT(mpnas_model_save_buffer(m, buf, n, &n2), MPNAS_OK);
  CHECK(memcmp(buf, "MPNASMDL", 8) == 0);
  mpnas_model *l = NULL;
  CHECK_EQ_INT(mpnas_model_load_buffer(ctx, buf, n, &l), MPNAS_OK);
  if (l != NULL) check_same_model(m, l);
  /* The file is the buffer's bytes. */
  char path[128];
  tmp_path(path, sizeof path, "buffer.bin");
  CHECK_EQ_INT(mpnas_model_save(m, path), MPNAS_OK);
  blob f = read_whole(path);
  CHECK(f.n == n && memcmp(f.p, buf, n) == 0);
  free(f.p);
  /* A loaded model trains on (with new data it is prepared again). */
  if (l != NULL) {
    unsigned char *img = malloc(NTRAIN * PER);
    int32_t lab[NTRAIN];
    for (int d = 0; d < ND; d++) {
      make_data(300u + (uint32_t)d, NTRAIN, CLASSES[d], PER, img, lab);
      CHECK_EQ_INT(mpnas_model_set_data(l, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, NTRAIN),
                   MPNAS_OK);
    }
    free(img);
    CHECK_EQ_INT(mpnas_model_set_int(l, MPNAS_TRAIN_STEPS, 3), MPNAS_OK);
    CHECK_EQ_INT(mpnas_model_train(l, 0, NULL, NULL, 0), MPNAS_OK);
  }
  mpnas_model_free(l);
  free(buf);
  mpnas_model_free(m);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Checkpoints ------------------------------------------------------------------------ */
static void test_checkpoint_resume(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 11);
  char ckpt[128], ckpt2[128];
  tmp_path(ckpt, sizeof ckpt, "ckpt.bin");
  tmp_path(ckpt2, sizeof ckpt2, "ckpt2.bin");

  /* Uninterrupted: 20 steps. */
  mpnas_model *full = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(full, 0, NULL, NULL, 0), MPNAS_OK);
  blob want = save_blob(full);

  /* Interrupted at 10: checkpoint, then go on in the same model. */
  mpnas_model *a = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(a, 10, NULL, NULL, 0), MPNAS_OK);
  int64_t step = 0;
  mpnas_model_get_int(a, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 10);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(a, ckpt), MPNAS_OK);
  blob at10 = save_blob(a);
  CHECK_EQ_INT(mpnas_model_train(a, 0, NULL, NULL, 0), MPNAS_OK);
  blob got = save_blob(a);
  CHECK_MSG(blob_equal(got, want), "continuing after a checkpoint differs");
  free(got.p);

  /* Resumed in a fresh model made the same way. */
  mpnas_model *b = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(b, ckpt), MPNAS_OK);
  mpnas_model_get_int(b, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 10);
  got = save_blob(b);
  CHECK_MSG(blob_equal(got, at10), "the restored model differs from the one checkpointed");
  free(got.p);
  /* A checkpoint of the restored state is the same file. */
  CHECK_EQ_INT(mpnas_model_save_checkpoint(b, ckpt2), MPNAS_OK);
  blob c1 = read_whole(ckpt), c2 = read_whole(ckpt2);
  CHECK(c1.n > 0 && blob_equal(c1, c2));
  free(c1.p), free(c2.p);
  CHECK_EQ_INT(mpnas_model_train(b, 0, NULL, NULL, 0), MPNAS_OK);
  got = save_blob(b);
  CHECK_MSG(blob_equal(got, want), "training resumed from a checkpoint differs from an "
                                   "uninterrupted run");
  free(got.p);
  double s1 = -1, s2 = -2;
  for (int d = 0; d < ND; d++) {
    const int32_t stats[] = {MPNAS_STAT_TRAIN_LOSS, MPNAS_STAT_VALID_ACCURACY,
                             MPNAS_STAT_LOSS_WEIGHT, MPNAS_STAT_BATCH_IMAGES};
    for (int i = 0; i < 4; i++) {
      mpnas_model_domain_stat(full, d, stats[i], &s1);
      mpnas_model_domain_stat(b, d, stats[i], &s2);
      CHECK_MSG(s1 == s2, "domain %d stat %d: %g vs %g", d, (int)stats[i], s1, s2);
    }
  }

  /* Back in time: loading the step-10 checkpoint into the finished model. */
  CHECK_EQ_INT(mpnas_model_load_checkpoint(a, ckpt), MPNAS_OK);
  mpnas_model_get_int(a, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 10);
  CHECK_EQ_INT(mpnas_model_train(a, 0, NULL, NULL, 0), MPNAS_OK);
  got = save_blob(a);
  CHECK_MSG(blob_equal(got, want), "resuming a finished model from step 10 differs");
  free(got.p);

  /* A checkpoint is a model file too: mpnas_model_load reads it (no training state). */
  mpnas_model *l = NULL;
  CHECK_EQ_INT(mpnas_model_load(ctx, ckpt, &l), MPNAS_OK);
  if (l != NULL) {
    got = save_blob(l);
    CHECK(blob_equal(got, at10));
    free(got.p);
  }
  mpnas_model_free(l);

  /* From memory (mpnas_model_load_checkpoint_buffer): the same as from the file. */
  mpnas_model *fb = test_model(ctx, PATHS, 0);
  blob mem = read_whole(ckpt);
  CHECK_EQ_INT(mpnas_model_load_checkpoint_buffer(fb, mem.p, mem.n), MPNAS_OK);
  got = save_blob(fb);
  CHECK_MSG(blob_equal(got, at10), "the model restored from a buffer differs");
  free(got.p);
  CHECK_EQ_INT(mpnas_model_train(fb, 0, NULL, NULL, 0), MPNAS_OK);
  got = save_blob(fb);
  CHECK_MSG(blob_equal(got, want), "training resumed from a buffer differs");
  free(got.p);
  CHECK_EQ_INT(mpnas_model_load_checkpoint_buffer(fb, mem.p, mem.n - 8), MPNAS_E_CORRUPT);
  CHECK(strstr(mpnas_context_last_error(ctx), "model checkpoint buffer") != NULL);
  CHECK_EQ_INT(mpnas_model_load_checkpoint_buffer(fb, NULL, mem.n), MPNAS_E_INVALID_ARGUMENT);
  free(mem.p);
  mpnas_model_free(fb);

  free(want.p), free(at10.p);
  mpnas_model_free(full);
  mpnas_model_free(a);
  mpnas_model_free(b);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static void test_checkpoint_incompatible(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 11);
  char ckpt[128], plain[128];
  tmp_path(ckpt, sizeof ckpt, "ckpt-inc.bin");
  tmp_path(plain, sizeof plain, "plain.bin");
  mpnas_model *a = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(a, 10, NULL, NULL, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(a, ckpt), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save(a, plain), MPNAS_OK);
  int64_t step = -1;

  /* Different paths, untouched model: refused, still not built or prepared. */
  mpnas_model *p = test_model(ctx, OTHER_PATHS, 0);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(p, ckpt), MPNAS_E_INCOMPATIBLE);
  CHECK(strstr(mpnas_context_last_error(ctx), "path") != NULL);
  CHECK(strstr(mpnas_context_last_error(ctx), "ckpt-inc.bin") != NULL);
  mpnas_model_get_int(p, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 0);
  mpnas_predictor *pred = NULL;
  CHECK_EQ_INT(mpnas_predictor_create(p, &pred), MPNAS_E_STATE); /* no weights yet */
  CHECK_EQ_INT(mpnas_model_set_int(p, MPNAS_TRAIN_STEPS, 20), MPNAS_OK); /* not locked */
  CHECK_EQ_INT(mpnas_model_train(p, 2, NULL, NULL, 0), MPNAS_OK);

  /* Different data in one domain, model part-trained: refused, nothing changed. */
  mpnas_model *d = test_model(ctx, PATHS, 77);
  CHECK_EQ_INT(mpnas_model_train(d, 5, NULL, NULL, 0), MPNAS_OK);
  blob before = save_blob(d);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(d, ckpt), MPNAS_E_INCOMPATIBLE);
  CHECK(strstr(mpnas_context_last_error(ctx), "data") != NULL);
  blob after = save_blob(d);
  CHECK(blob_equal(before, after));
  mpnas_model_get_int(d, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 5);
  free(before.p), free(after.p);

  /* A plain model file is not a checkpoint. */
  mpnas_model *q = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(q, plain), MPNAS_E_INCOMPATIBLE);
  /* Another context seed: the validation split would differ. */
  alloc_counting c2;
  mpnas_context *ctx2 = new_ctx(&c2, 12);
  mpnas_model *s = test_model(ctx2, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(s, ckpt), MPNAS_E_INCOMPATIBLE);
  CHECK(strstr(mpnas_context_last_error(ctx2), "SEED") != NULL);
  mpnas_model_free(s);
  /* Another space. */
  mpnas_space *sp = test_space(ctx2);
  mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 24);
  mpnas_model *o = NULL;
  CHECK_EQ_INT(mpnas_model_create(ctx2, sp, &o), MPNAS_OK);
  mpnas_space_free(sp);
  for (int k = 0; k < ND && o; k++)
    mpnas_model_add_domain(o, NAMES[k], CLASSES[k], PATHS[k], NL, NULL);
  mpnas_context_set_int(ctx2, MPNAS_CONTEXT_SEED, 11);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(o, ckpt), MPNAS_E_INCOMPATIBLE);
  CHECK(strstr(mpnas_context_last_error(ctx2), "space") != NULL);
  mpnas_model_free(o);
  /* Other domain names / counts. */
  mpnas_space *sp2 = test_space(ctx2);
  CHECK_EQ_INT(mpnas_model_create(ctx2, sp2, &o), MPNAS_OK);
  mpnas_space_free(sp2);
  mpnas_model_add_domain(o, "alpha", 3, PATHS[0], NL, NULL);
  mpnas_model_add_domain(o, "beta", 4, PATHS[1], NL, NULL);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(o, ckpt), MPNAS_E_INCOMPATIBLE);
  mpnas_model_add_domain(o, "delta", 2, PATHS[2], NL, NULL);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(o, ckpt), MPNAS_E_INCOMPATIBLE);
  mpnas_model_free(o);
  mpnas_context_free(ctx2);
  CHECK_EQ_INT(c2.live, 0);

  mpnas_model_free(q);
  mpnas_model_free(d);
  mpnas_model_free(p);
  mpnas_model_free(a);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* Corrupt checkpoints: the model file part is checked like a model file; the training
 * state on top. Each refused with MPNAS_E_CORRUPT and the (prepared) model unchanged. */
static void test_checkpoint_corrupt(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 11);
  char ckpt[128], bad[128];
  tmp_path(ckpt, sizeof ckpt, "ckpt-bad.bin");
  tmp_path(bad, sizeof bad, "ckpt-bad-variant.bin");
  mpnas_model *a = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(a, 6, NULL, NULL, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(a, ckpt), MPNAS_OK);
  blob good = read_whole(ckpt);
  mpnas_model *m = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(m, 3, NULL, NULL, 0), MPNAS_OK);
  blob before = save_blob(m);
  size_t trst_abdp = 40 + 84 * ND; /* TRST: the ABDP state's count */
  for (int k = 0; k < 8; k++) {
    blob b = blob_copy(good.p, good.n);
    blob r = {NULL, 0};
    mpnas_status want = MPNAS_E_CORRUPT;
    switch (k) {
      case 0: patch64(&b, "TRST", 8, 21); break;                   /* step > steps */
      case 1: patch64(&b, "TRST", 8, (uint64_t)-1); break;         /* step < 0 */
      case 2: patch32(&b, "TRST", (uint32_t)trst_abdp, 1000000); break; /* ABDP count */
      case 3: patch32(&b, "TRST", (uint32_t)trst_abdp, 3); break;  /* ABDP count short */
      case 4: r = resized(ctx, &b, "PARS", -8); break;             /* slots short */
      case 5: r = rebuild(ctx, &b, "TRST", NULL, 0); break;        /* no TRST */
      case 6: patch64(&b, "TRST", 32, 2); break;                   /* even rng inc */
      default: b.p[find_section(&b, "PARS") + 30] ^= 1; break;     /* CRC */
    }
    if (r.p != NULL) {
      free(b.p);
      b = r;
    }
    CHECK(write_whole(bad, b.p, b.n));
    mpnas_status s = mpnas_model_load_checkpoint(m, bad);
    CHECK_MSG(s == want, "case %d: status %d (%s)", k, (int)s, mpnas_context_last_error(ctx));
    free(b.p);
  }
  blob after = save_blob(m);
  CHECK(blob_equal(before, after));
  int64_t step = -1;
  mpnas_model_get_int(m, MPNAS_TRAIN_STEP, &step);
  CHECK_EQ_INT(step, 3);
  CHECK_MSG(c.largest <= LIMIT, "largest allocation %zu", c.largest);
  free(before.p), free(after.p), free(good.p);
  mpnas_model_free(m);
  mpnas_model_free(a);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- Arguments, states and I/O ------------------------------------------------------------ */
static void test_errors(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 1);
  mpnas_model *m = test_model(ctx, PATHS, 0);
  mpnas_model *l = (mpnas_model *)&c; /* must be overwritten with NULL */
  char path[128], missing[160];
  tmp_path(path, sizeof path, "errors.bin");
  snprintf(missing, sizeof missing, "%s/no-such-dir/model.bin", tmpdir);
  size_t n = 0;
  unsigned char buf[64];

  /* NULL arguments. */
  CHECK_EQ_INT(mpnas_model_save(NULL, path), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_save(m, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_save_buffer(NULL, NULL, 0, &n), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_save_buffer(m, NULL, 0, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load(NULL, path, &l), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load(ctx, NULL, &l), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load(ctx, path, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load_buffer(NULL, buf, sizeof buf, &l), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load_buffer(ctx, NULL, 0, &l), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load_buffer(ctx, buf, sizeof buf, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(NULL, path), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(m, NULL), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(NULL, path), MPNAS_E_INVALID_ARGUMENT);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(m, NULL), MPNAS_E_INVALID_ARGUMENT);

  /* Nothing to save before training. */
  CHECK_EQ_INT(mpnas_model_save(m, path), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_save_buffer(m, NULL, 0, &n), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(m, path), MPNAS_E_STATE);
  struct stat st;
  CHECK(stat(path, &st) != 0); /* nothing written */

  /* Missing files and directories. */
  l = (mpnas_model *)&c;
  CHECK_EQ_INT(mpnas_model_load(ctx, missing, &l), MPNAS_E_IO);
  CHECK(l == NULL);
  CHECK(strstr(mpnas_context_last_error(ctx), "no-such-dir") != NULL);
  CHECK_EQ_INT(mpnas_model_load_checkpoint(m, missing), MPNAS_E_IO);
  CHECK_EQ_INT(mpnas_model_train(m, 2, NULL, NULL, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save(m, missing), MPNAS_E_IO);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(m, missing), MPNAS_E_IO);
  /* A directory is not a model file. */
  CHECK(mpnas_model_load(ctx, tmpdir, &l) != MPNAS_OK);

  /* A loaded model has no training state: no checkpoint until it trains again. */
  CHECK_EQ_INT(mpnas_model_save(m, path), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_load(ctx, path, &l), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(l, path), MPNAS_E_STATE);
  mpnas_model_free(l);
  /* Nor after its data is cleared. */
  CHECK_EQ_INT(mpnas_model_clear_data(m), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(m, path), MPNAS_E_STATE);
  CHECK_EQ_INT(mpnas_model_save(m, path), MPNAS_OK);

  mpnas_model_free(m);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* ---- The bad-model corpus ---------------------------------------------------------------- */

/* The corpus base: a tiny model (8x8x1, stem 2, one stage of 2 layers with 4 channels,
 * k {3} x e {1,2}, head 4, domains "d0" (2 classes) and "d1" (3 classes)) trained 2 steps. Small, so the
 * committed files stay small. SPCE offsets below follow docs/MODEL-FORMAT.md. */
static blob tiny_model_file(mpnas_context *ctx) {
  blob out = {NULL, 0};
  mpnas_space *sp = NULL;
  mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp);
  if (sp == NULL) return out;
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 8);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, 8);
  mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1);
  mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 2);
  mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 4);
  const int32_t k[] = {3}, e[] = {1, 2};
  mpnas_space_set_choices(sp, -1, k, 1, e, 2);
  mpnas_space_add_stage(sp, 4, 2, 2, MPNAS_ACT_RELU, 1);
  mpnas_model *m = NULL;
  mpnas_model_create(ctx, sp, &m);
  mpnas_space_free(sp);
  if (m == NULL) return out;
  const int32_t p0[] = {0, 2}, p1[] = {1, 0};
  mpnas_model_add_domain(m, "d0", 2, p0, 2, NULL);
  mpnas_model_add_domain(m, "d1", 3, p1, 2, NULL);
  unsigned char img[12 * 64];
  int32_t lab[12];
  for (int d = 0; d < 2; d++) {
    make_data(900u + (uint32_t)d, 12, 2 + d, 64, img, lab);
    mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, 12);
  }
  mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 2);
  mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 2);
  mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 2);
  CHECK_EQ_INT(mpnas_model_train(m, 0, NULL, NULL, 0), MPNAS_OK);
  mpnas_model_clear_data(m);
  out = save_blob(m);
  mpnas_model_free(m);
  return out;
}

typedef struct {
  const char *name;
  mpnas_status want;
  blob b;
} bad_file;

/* Offsets (payload) in the tiny model's sections. */
#define META_CONTENTS 0
#define META_LAYERS 8
#define META_DOMAINS 12
#define META_NODES 16
#define META_PARAMS 20
#define SPCE_STEM_K 16
#define SPCE_SE_MODE 36
#define SPCE_NSTAGES 60 /* after 10 i32, nk = 1 + 1 kernel, ne = 2 + 2 expansions */
#define SPCE_STAGE0_LAYERS 68
#define DOMS_D0_NAME 8        /* count, length of "d0", then the name */
#define DOMS_D0_CLASSES 10
#define DOMS_D0_PATH 26       /* after classes, hflip and the i64 BN update count */
#define DOMS_D0_INVSTD 38     /* after path (2) and mean (1 channel) */
#define DOMS_D1_NAME 46       /* d0 takes 4 + 2 + 4 + 4 + 8 + 8 + 4 + 4 = 38 bytes from 4,
                                 then d1's name length (4 bytes) */
#define CONF_LR 28            /* after i64 steps and 5 i32 */

static size_t make_corpus(mpnas_context *ctx, bad_file *out) {
  size_t k = 0;
  blob base = tiny_model_file(ctx), b;
  if (base.n == 0) return 0;
#define COPY() blob_copy(base.p, base.n)
#define ADD(nm, st, expr) (out[k].name = (nm), out[k].want = (st), out[k].b = (expr), k++)
  const mpnas_status BAD = MPNAS_E_CORRUPT;
  /* The container. */
  ADD("empty.bin", BAD, blob_copy("", 0));
  b = COPY(), b.n = 20;
  ADD("truncated-header.bin", BAD, b);
  b = COPY(), b.n = find_section(&base, "META") + 30;
  ADD("truncated-meta.bin", BAD, b);
  b = COPY(), b.n = find_section(&base, "PARW") + 24 + 40;
  ADD("truncated-weights.bin", BAD, b);
  b = COPY(), b.n = base.n - 1;
  ADD("truncated-last-byte.bin", BAD, b);
  b = COPY(), memcpy(b.p, "\x89PNG\r\n\x1a\n", 8);
  ADD("wrong-magic.bin", BAD, b);
  b = COPY(), memcpy(b.p, "MPNASCKP", 8), fix_header_crc(&b);
  ADD("search-checkpoint-magic.bin", BAD, b);
  b = COPY(), st32(b.p + 8, 99), fix_header_crc(&b);
  ADD("version-99.bin", MPNAS_E_VERSION, b);
  b = COPY(), st32(b.p + 8, 0), fix_header_crc(&b);
  ADD("version-0.bin", MPNAS_E_VERSION, b);
  b = COPY(), b.p[13] ^= 0x40;
  ADD("flip-header.bin", BAD, b);
  static const char *const tags[] = {"META", "SPCE", "DOMS", "CONF", "PARW", "PARB"};
  static const char *const flips[] = {"flip-meta.bin", "flip-space.bin", "flip-domains.bin",
                                      "flip-config.bin", "flip-weights.bin", "flip-stats.bin"};
  for (int i = 0; i < 6; i++) {
    b = COPY(), b.p[field(&b, tags[i], 5)] ^= 0x01;
    ADD(flips[i], BAD, b);
  }
  b = COPY(), st64(b.p + find_section(&b, "PARW") + 8, (uint64_t)1 << 40);
  ADD("section-length-2e40.bin", BAD, b);
  b = COPY(), st32(b.p + find_section(&b, "CONF") + 4, 1), fix_section_crc(&b, find_section(&b, "CONF"));
  ADD("section-flags.bin", MPNAS_E_VERSION, b);
  b = rebuild(ctx, &base, "PARB", NULL, 0);
  ADD("missing-stats.bin", BAD, b);
  b = rebuild(ctx, &base, "DOMS", NULL, 0);
  ADD("missing-domains.bin", BAD, b);
  /* Absurd sizes. */
  b = COPY(), patch32(&b, "DOMS", 0, 1000000);
  ADD("domain-count-1e6.bin", BAD, b);
  b = COPY(), patch32(&b, "META", META_DOMAINS, 1000000);
  ADD("meta-domains-1e6.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_STAGE0_LAYERS, 65);
  ADD("layers-65.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_STAGE0_LAYERS, 64);
  ADD("layers-64-paths-short.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_NSTAGES, 33);
  ADD("stages-33.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_NSTAGES, 0xffffffffu);
  ADD("stages-4e9.bin", BAD, b);
  b = COPY(), patch64(&b, "META", META_PARAMS, (uint64_t)1 << 40);
  ADD("params-2e40.bin", BAD, b);
  b = COPY(), patch64(&b, "META", META_PARAMS, ld64(base.p + field(&base, "META", META_PARAMS)) + 16);
  ADD("params-length-mismatch.bin", BAD, b);
  {
    /* PARW and META agree with each other, not with the layout. */
    uint64_t n = ld64(base.p + field(&base, "META", META_PARAMS));
    blob t = resized(ctx, &base, "PARW", 64);
    patch64(&t, "META", META_PARAMS, n + 16);
    ADD("params-more-than-layout.bin", BAD, t);
    t = resized(ctx, &base, "PARW", -64);
    patch64(&t, "META", META_PARAMS, n - 16);
    ADD("params-fewer-than-layout.bin", BAD, t);
    t = resized(ctx, &base, "PARW", -(long)(4 * n - 4));
    patch64(&t, "META", META_PARAMS, 1);
    ADD("params-one.bin", BAD, t);
  }
  b = COPY(), patch32(&b, "META", META_NODES, 7); /* the paths use 3 */
  ADD("nodes-lie.bin", BAD, b);
  b = COPY(), patch32(&b, "META", META_LAYERS, 3);
  ADD("layers-lie.bin", BAD, b);
  /* Values. */
  b = COPY(), patch32(&b, "META", META_CONTENTS, 7);
  ADD("unknown-contents.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_STEM_K, 4);
  ADD("even-stem-kernel.bin", BAD, b);
  b = COPY(), patch32(&b, "SPCE", SPCE_SE_MODE, 3);
  ADD("se-mode-3.bin", BAD, b);
  b = COPY(), patch32(&b, "DOMS", DOMS_D0_CLASSES, 1);
  ADD("classes-1.bin", BAD, b);
  b = COPY(), patch32(&b, "DOMS", DOMS_D0_PATH, 99);
  ADD("path-op-99.bin", BAD, b);
  b = COPY(), patch32(&b, "DOMS", DOMS_D0_PATH, (uint32_t)-1);
  ADD("path-op-negative.bin", BAD, b);
  b = COPY(), b.p[field(&b, "DOMS", DOMS_D1_NAME + 1)] = '0', fix_section_crc(&b, find_section(&b, "DOMS"));
  ADD("duplicate-name.bin", BAD, b);
  b = COPY(), b.p[field(&b, "DOMS", DOMS_D0_NAME)] = '\n', fix_section_crc(&b, find_section(&b, "DOMS"));
  ADD("control-char-name.bin", BAD, b);
  b = COPY(), b.p[field(&b, "DOMS", DOMS_D0_NAME)] = (unsigned char)0xc3,
  b.p[field(&b, "DOMS", DOMS_D0_NAME + 1)] = (unsigned char)0xa9,
  fix_section_crc(&b, find_section(&b, "DOMS")); /* "\xc3\xa9" = é: UTF-8, not ASCII */
  ADD("utf8-name.bin", BAD, b);
  b = COPY(), b.p[field(&b, "DOMS", DOMS_D0_NAME + 1)] = (unsigned char)0xff,
  fix_section_crc(&b, find_section(&b, "DOMS")); /* not UTF-8 either */
  ADD("invalid-utf8-name.bin", BAD, b);
  b = COPY(), patch32(&b, "DOMS", DOMS_D0_INVSTD, 0);
  ADD("invstd-zero.bin", BAD, b);
  b = COPY(), patch32(&b, "DOMS", DOMS_D0_INVSTD, 0x7fc00000u);
  ADD("invstd-nan.bin", BAD, b);
  b = resized(ctx, &base, "DOMS", 4);
  ADD("domains-extra-bytes.bin", BAD, b);
  b = COPY(), patchf64(&b, "CONF", CONF_LR, -1.0);
  ADD("negative-learning-rate.bin", BAD, b);
  b = COPY(), patch32(&b, "PARW", 0, 0x7fc00000u);
  ADD("nan-weight.bin", BAD, b);
  b = COPY();
  {
    size_t off = find_section(&b, "PARB");
    uint64_t n = ld64(b.p + off + 8);
    for (uint64_t i = 0; i < n / 4; i++) st32(b.p + off + 24 + 4 * i, 0xbf800000u); /* -1 */
    fix_section_crc(&b, off);
  }
  ADD("negative-variance.bin", BAD, b);
#undef ADD
#undef COPY
  free(base.p);
  return k;
}
#define CORPUS_MAX 64

static void test_corpus_generated(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  CHECK(n >= 40 && n <= CORPUS_MAX);
  c.largest = 0;
  for (size_t i = 0; i < n; i++) {
    /* Exact-size copy, so a read past the end is a sanitizer error. */
    blob b = blob_copy(files[i].b.p, files[i].b.n);
    mpnas_context_clear_error(ctx);
    mpnas_model *m = (mpnas_model *)&c;
    mpnas_status s = mpnas_model_load_buffer(ctx, b.p, b.n, &m);
    CHECK_MSG(s == files[i].want, "%s: status %d, expected %d (%s)", files[i].name, (int)s,
              (int)files[i].want, mpnas_context_last_error(ctx));
    CHECK_MSG(m == NULL, "%s: *out not NULL", files[i].name);
    CHECK_MSG(strlen(mpnas_context_last_error(ctx)) > 0, "%s: no message", files[i].name);
    free(b.p);
    free(files[i].b.p);
  }
  CHECK_MSG(c.largest <= LIMIT, "an allocation of %zu bytes was attempted", c.largest);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static int has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_corpus_replay(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  bad_file files[CORPUS_MAX];
  size_t expected = make_corpus(ctx, files);
  c.largest = 0;
  DIR *d = opendir(CORPUS_DIR);
  CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", CORPUS_DIR);
  size_t replayed = 0;
  if (d != NULL) {
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (!has_suffix(e->d_name, ".bin")) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%.256s", CORPUS_DIR, e->d_name);
      mpnas_model *m = NULL;
      mpnas_status s = mpnas_model_load(ctx, path, &m);
      CHECK_MSG(s != MPNAS_OK, "%.256s loaded without error", e->d_name);
      CHECK_MSG(s != MPNAS_E_IO && s != MPNAS_E_INTERNAL && s != MPNAS_E_NO_MEMORY,
                "%.256s: status %d (%s)", e->d_name, (int)s, mpnas_context_last_error(ctx));
      CHECK_MSG(strstr(mpnas_context_last_error(ctx), e->d_name) != NULL,
                "%.256s: the message does not name the file: %s", e->d_name,
                mpnas_context_last_error(ctx));
      for (size_t i = 0; i < expected; i++)
        if (strcmp(files[i].name, e->d_name) == 0)
          CHECK_MSG(s == files[i].want, "%s: status %d, expected %d", files[i].name, (int)s,
                    (int)files[i].want);
      mpnas_model_free(m);
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
  CHECK_MSG(c.largest <= LIMIT, "an allocation of %zu bytes was attempted", c.largest);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* Every truncation and a byte flip every few bytes of a valid file: each is caught by
 * the container (lengths, CRCs) with MPNAS_E_CORRUPT or MPNAS_E_VERSION. */
static void test_truncations_and_flips(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  blob base = tiny_model_file(ctx);
  CHECK(base.n > 0);
  mpnas_model *m = NULL;
  CHECK_EQ_INT(mpnas_model_load_buffer(ctx, base.p, base.n, &m), MPNAS_OK);
  mpnas_model_free(m);
  c.largest = 0;
  for (size_t n = 0; n < base.n; n++) {
    blob b = blob_copy(base.p, n);
    mpnas_status s = mpnas_model_load_buffer(ctx, b.p, b.n, &m);
    CHECK_MSG(s == MPNAS_E_CORRUPT, "prefix of %zu bytes: status %d", n, (int)s);
    free(b.p);
  }
  for (size_t i = 0; i < base.n; i += 3) {
    blob b = blob_copy(base.p, base.n);
    b.p[i] ^= (unsigned char)(1u << (i % 8));
    mpnas_status s = mpnas_model_load_buffer(ctx, b.p, b.n, &m);
    CHECK_MSG(s == MPNAS_E_CORRUPT || s == MPNAS_E_VERSION, "flip at %zu: status %d", i, (int)s);
    if (s == MPNAS_OK) mpnas_model_free(m);
    free(b.p);
  }
  CHECK_MSG(c.largest <= LIMIT, "an allocation of %zu bytes was attempted", c.largest);
  free(base.p);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

/* Every allocation of a load, a save and a checkpoint load failing in turn: a clean
 * MPNAS_E_NO_MEMORY, nothing leaked, and the model still usable afterwards. */
static void test_out_of_memory(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  blob base = tiny_model_file(ctx);
  mpnas_model *m = NULL;
  int ok = 0;
  for (long k = 1; k < 10000 && !ok; k++) {
    long live = c.live;
    c.fail_at = c.total + k;
    mpnas_status s = mpnas_model_load_buffer(ctx, base.p, base.n, &m);
    c.fail_at = 0;
    ok = s == MPNAS_OK;
    CHECK_MSG(ok || s == MPNAS_E_NO_MEMORY, "load, allocation %ld failing: status %d", k, (int)s);
    if (!ok) CHECK_MSG(m == NULL && c.live == live, "load, allocation %ld failing: leaked", k);
  }
  CHECK(ok);
  ok = 0;
  for (long k = 1; k < 10000 && !ok && m != NULL; k++) {
    long live = c.live;
    size_t n = 0;
    c.fail_at = c.total + k;
    mpnas_status s = mpnas_model_save_buffer(m, NULL, 0, &n);
    c.fail_at = 0;
    ok = s == MPNAS_OK;
    CHECK_MSG(ok || s == MPNAS_E_NO_MEMORY, "save, allocation %ld failing: status %d", k, (int)s);
    CHECK_MSG(c.live == live, "save, allocation %ld failing: leaked", k);
  }
  CHECK(ok);
  mpnas_model_free(m);
  free(base.p);

  /* Checkpoint load into a prepared model. */
  char ckpt[128];
  tmp_path(ckpt, sizeof ckpt, "ckpt-oom.bin");
  mpnas_model *a = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(a, 4, NULL, NULL, 0), MPNAS_OK);
  CHECK_EQ_INT(mpnas_model_save_checkpoint(a, ckpt), MPNAS_OK);
  mpnas_model *b = test_model(ctx, PATHS, 0);
  CHECK_EQ_INT(mpnas_model_train(b, 1, NULL, NULL, 0), MPNAS_OK);
  ok = 0;
  for (long k = 1; k < 10000 && !ok; k++) {
    long live = c.live;
    c.fail_at = c.total + k;
    mpnas_status s = mpnas_model_load_checkpoint(b, ckpt);
    c.fail_at = 0;
    ok = s == MPNAS_OK;
    CHECK_MSG(ok || s == MPNAS_E_NO_MEMORY, "checkpoint, allocation %ld failing: status %d", k,
              (int)s);
    if (!ok) CHECK_MSG(c.live == live, "checkpoint, allocation %ld failing: leaked", k);
  }
  CHECK(ok);
  blob x = save_blob(a), y = save_blob(b);
  CHECK(blob_equal(x, y));
  free(x.p), free(y.p);
  mpnas_model_free(a);
  mpnas_model_free(b);
  mpnas_context_free(ctx);
  CHECK_EQ_INT(c.live, 0);
}

static int write_corpus(const char *dir) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  int failed = n == 0;
  for (size_t i = 0; i < n; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    if (!write_whole(path, files[i].b.p, files[i].b.n)) failed = 1;
    free(files[i].b.p);
  }
  mpnas_context_free(ctx);
  printf("wrote %zu files to %s%s\n", n, dir, failed ? " (with errors)" : "");
  return failed;
}

static int show_corpus(void) {
  alloc_counting c;
  mpnas_context *ctx = new_ctx(&c, 5);
  bad_file files[CORPUS_MAX];
  size_t n = make_corpus(ctx, files);
  for (size_t i = 0; i < n; i++) {
    mpnas_model *m = NULL;
    mpnas_context_clear_error(ctx);
    mpnas_status s = mpnas_model_load_buffer(ctx, files[i].b.p, files[i].b.n, &m);
    printf("%-32s %3d  %s\n", files[i].name, (int)s, mpnas_context_last_error(ctx));
    mpnas_model_free(m);
    free(files[i].b.p);
  }
  mpnas_context_free(ctx);
  return 0;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0) return write_corpus(argv[2]);
  if (argc == 2 && strcmp(argv[1], "--show-corpus") == 0) return show_corpus();
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mpnas-model-io-XXXXXX");
  if (mkdtemp(tmpdir) == NULL) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  make_data(4242u, NTEST, 256, PER, test_images, (int32_t[NTEST]){0});
  RUN(test_round_trip_file);
  RUN(test_round_trip_buffer);
  RUN(test_checkpoint_resume);
  RUN(test_checkpoint_incompatible);
  RUN(test_checkpoint_corrupt);
  RUN(test_errors);
  RUN(test_corpus_generated);
  RUN(test_corpus_replay);
  RUN(test_truncations_and_flips);
  RUN(test_out_of_memory);
  remove_tree(tmpdir);
  return check_finish();
}
