/* test_trainer.c - known answers of multi-domain training: tiny seeded searches and
 * model trainings whose files must come out the same, bit for bit, release after
 * release, unless a change means to alter the results.
 *
 * Each scenario searches a tiny space for a few steps, saves the search checkpoint,
 * derives the model from it, trains it a few steps and saves the model checkpoint and
 * the model file; the CRC-32 of each file is compared with the value recorded when the
 * scenario was written. One scenario runs the defaults (BALANCED sampling, no loss
 * weights, SGD); the other exercises the rest of the weight step (PROPORTIONAL sampling,
 * an adaptive signal, augmentation with flips, Adam, validation every other step).
 *
 * The runs use the reference kernels (MPNAS_ISA_SCALAR): their arithmetic is plain C,
 * compiled without FMA on x86-64, so gcc and clang, sanitizer and OpenMP-free builds all
 * give the same bits there (the AVX2 kernels do not: clang contracts a * b + c into FMA
 * where gcc does not). The CRCs were recorded on x86-64 (glibc) and are asserted there;
 * elsewhere they are printed only, as a compiler may contract the reference kernels'
 * arithmetic on a target with FMA in its base ISA (the aarch64 gcc cross build of make
 * test-neon gave the x86-64 values when this was written). On every platform the files
 * must not depend on the thread count. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mpnas.h"

#define OKC(call) CHECK_MSG((call) == MPNAS_OK, "%s failed: %s", #call, mpnas_context_last_error(ctx))

#if defined(__x86_64__)
#define ASSERT_KNOWN_ANSWERS 1
#else
#define ASSERT_KNOWN_ANSWERS 0
#endif

/* CRC-32 (IEEE) of a file's bytes, without the library version a model file records
 * (META's writer version and so META's section CRC: docs/MODEL-FORMAT.md), so a
 * release does not change the answer; 0 if the file cannot be read. */
static uint32_t file_crc(const char *path) {
  static unsigned char buf[1 << 20];
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (n >= 8 && memcmp(buf, "MPNASMDL", 8) == 0)
    for (size_t at = 32; at + 24 <= n;) {
      uint64_t len = 0;
      for (int i = 7; i >= 0; i--) len = len << 8 | buf[at + 8 + (size_t)i];
      if (memcmp(buf + at, "META", 4) == 0 && at + 32 <= n) {
        memset(buf + at + 20, 0, 4);     /* section CRC */
        memset(buf + at + 24 + 4, 0, 4); /* the writer version, after u32 contents */
        break;
      }
      at += 24 + (size_t)((len + 7) / 8 * 8);
    }
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    crc ^= buf[i];
    for (int k = 0; k < 8; k++) crc = crc & 1u ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
  }
  return crc ^ 0xffffffffu;
}

/* Images 10x10x1: noise plus a bright bar whose orientation is the class (0: row,
 * 1: column, 2: diagonal), at a random place. */
#define SIDE 10
static void make_images(int domain, int n, uint8_t *img, int32_t *lab) {
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(domain + 1);
  for (int i = 0; i < n; i++) {
    uint8_t *p = img + (size_t)i * SIDE * SIDE;
    for (int k = 0; k < SIDE * SIDE; k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      p[k] = (uint8_t)((s >> 40) % 60);
    }
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    int cls = (int)((s >> 33) % (uint64_t)(2 + domain % 2)), at = 2 + (int)((s >> 20) % 6);
    for (int t = 0; t < 6; t++) {
      int y = cls == 0 ? at : 2 + t, x = cls == 1 ? at : 2 + t;
      p[y * SIDE + x] = 250;
    }
    lab[i] = cls;
  }
}

/* A tiny space: stem 4 channels, one stage of two layers (8 channels, stride 2, the
 * second skippable) choosing k3 or k5 at expansion 2, head 8. */
static mpnas_space *tiny_space(mpnas_context *ctx) {
  mpnas_space *sp = NULL;
  OKC(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, SIDE));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, SIDE));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 4));
  OKC(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 8));
  OKC(mpnas_space_add_stage(sp, 8, 2, 2, MPNAS_ACT_HSWISH, 1));
  const int32_t k[] = {3, 5}, e[] = {2};
  OKC(mpnas_space_set_choices(sp, -1, k, 2, e, 1));
  return sp;
}

typedef struct scenario {
  const char *name;
  int32_t sampling, signal, optimizer, augment_pad, hflip;
  uint32_t search_crc, checkpoint_crc, model_crc; /* recorded on x86-64 */
} scenario;

/* Run a scenario on `threads` threads; the files' CRCs into crc[3]. */
static void run(const scenario *s, int threads, uint32_t crc[3]) {
  mpnas_context *ctx = NULL;
  CHECK_EQ_INT(mpnas_context_create(&ctx), MPNAS_OK);
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 12));
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads));
  OKC(mpnas_context_set_int(ctx, MPNAS_CONTEXT_ISA, MPNAS_ISA_SCALAR));
  mpnas_space *sp = tiny_space(ctx);
  mpnas_supernet *sn = NULL;
  OKC(mpnas_supernet_create(ctx, sp, &sn));
  const int sizes[3] = {40, 70, 25};
  uint8_t img[70 * SIDE * SIDE];
  int32_t lab[70];
  for (int d = 0; d < 3; d++) {
    char name[16];
    snprintf(name, sizeof name, "domain%d", d);
    int32_t id = -1;
    OKC(mpnas_supernet_add_domain(sn, name, 2 + d % 2, &id));
    make_images(d, sizes[d], img, lab);
    OKC(mpnas_supernet_set_data(sn, id, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, img, lab, sizes[d]));
  }
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, 6));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, 4));
  OKC(mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, 6));
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_WARMUP_FRACTION, 0.34));
  OKC(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, 0.34));
  OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, s->sampling));
  OKC(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, s->signal));
  OKC(mpnas_supernet_search(sn, 0, NULL, NULL, 0));
  char path[3][128];
  for (int i = 0; i < 3; i++)
    snprintf(path[i], sizeof path[i], "/tmp/mpnas-test-trainer-%ld-%d", (long)getpid(), i);
  OKC(mpnas_supernet_save_checkpoint(sn, path[0]));

  mpnas_model *m = NULL;
  OKC(mpnas_model_create_from_supernet(sn, &m));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 6));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 5));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 7));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 2));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_OPTIMIZER, s->optimizer));
  OKC(mpnas_model_set_int(m, MPNAS_TRAIN_AUGMENT_PAD, s->augment_pad));
  OKC(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE,
                             s->optimizer == MPNAS_OPTIMIZER_ADAM ? 0.01 : 0.1));
  OKC(mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, s->sampling));
  OKC(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, s->signal));
  OKC(mpnas_model_set_domain_int(m, 1, MPNAS_DOMAIN_HFLIP, s->hflip));
  OKC(mpnas_model_train(m, 0, NULL, NULL, 0));
  OKC(mpnas_model_save_checkpoint(m, path[1]));
  OKC(mpnas_model_save(m, path[2]));
  for (int i = 0; i < 3; i++) {
    crc[i] = file_crc(path[i]);
    remove(path[i]);
  }
  mpnas_model_free(m);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* Recorded anew when the sharing term became each domain's share of the joint model's
 * parameters (it changes the search's rewards, so its paths and controllers; the second
 * scenario's paths stayed, so its model files did too). The search checkpoints' CRCs
 * again on 2026-12-05, when they gained the SEED section (0x5f7f60ec and 0x0d176921
 * before; the model checkpoints and files, so the searches, unchanged). All six again
 * on 2026-12-05 (evening), when the depthwise and pointwise weight gradients came to be
 * summed over fixed chunks of images or rows (partials added in order) rather than in
 * one sum over all of them (0x09eceb3e 0x0dc28fe7 0xd2b8e9d2, 0x7fe357d1 0x1b0d412b
 * 0x7c3ca0ef before). */
static const scenario scenarios[] = {
    {"defaults", MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, MPNAS_OPTIMIZER_SGD, 0, 0,
     0x9694bcd0u, 0xba1621fdu, 0x1e636e4au},
    {"abdp, augmentation, Adam", MPNAS_ABDP_SAMPLE_PROPORTIONAL, MPNAS_ABDP_SIGNAL_LOSS,
     MPNAS_OPTIMIZER_ADAM, 2, 1, 0x1ad8dca7u, 0xc38afdf2u, 0x5df8840bu},
};

static void test_known_answers(void) {
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
    const scenario *s = &scenarios[i];
    uint32_t one[3], two[3], three[3];
    run(s, 1, one);
    run(s, 2, two);   /* two domains at once, the third on both threads */
    run(s, 3, three); /* all three at once: out of domain order where one is larger */
    printf("    %s: search checkpoint %08x, model checkpoint %08x, model file %08x\n", s->name,
           (unsigned)one[0], (unsigned)one[1], (unsigned)one[2]);
    for (int f = 0; f < 3; f++)
      CHECK_MSG(one[f] == two[f] && one[f] == three[f], "%s: file %d differs with 2 or 3 threads",
                s->name, f);
    if (ASSERT_KNOWN_ANSWERS) {
      CHECK_EQ_INT(one[0], s->search_crc);
      CHECK_EQ_INT(one[1], s->checkpoint_crc);
      CHECK_EQ_INT(one[2], s->model_crc);
    }
  }
}

int main(void) {
  RUN(test_known_answers);
  return check_finish();
}
