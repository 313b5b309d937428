/* gen_corpus.c - writes the fuzz targets' seed corpora: valid files from small models,
 * training checkpoints and search checkpoints with varied spaces and settings.
 *
 *   gen_corpus DIR   writes seed-NN.bin files into DIR/model, DIR/model_checkpoint and
 *                    DIR/search_checkpoint (the folders must exist)
 *
 * `make fuzz-corpus` runs it into tests/fuzz/corpus. The checkpoints come from the
 * handles of fuzz_setup.h (fz_model, fz_supernet), the only ones the checkpoint targets
 * load into; the model files from four small spaces. Files are a few KB each. */
#include <errno.h>

#include "fuzz_setup.h"
#include "model/model_quant.h" /* the int8 form's encoding, to write version-2 seeds */

static int failures;

#define OK(call)                                                                          \
  do {                                                                                    \
    mpnas_status st_ = (call);                                                            \
    if (st_ != MPNAS_OK) {                                                                \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                       \
              mpnas_context_last_error(ctx));                                             \
      failures++;                                                                         \
    }                                                                                     \
  } while (0)

static void write_file(const char *dir, const char *kind, int k, const void *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/seed-%02d.bin", dir, kind, k);
  FILE *f = fopen(path, "wb");
  if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    failures++;
  }
}

static void copy_file(const char *from, const char *dir, const char *kind, int k) {
  FILE *f = fopen(from, "rb");
  unsigned char *buf = malloc(1 << 20);
  size_t n = f != NULL && buf != NULL ? fread(buf, 1, 1 << 20, f) : 0;
  if (f != NULL) fclose(f);
  remove(from);
  if (n == 0) {
    fprintf(stderr, "cannot read %s\n", from);
    failures++;
  } else {
    write_file(dir, kind, k, buf, n);
  }
  free(buf);
}

/* ---- Model files: four small spaces -------------------------------------------------- */

/* v 0: the checkpoint targets' space with squeeze-excite as a choice; 1: 6x6x1, stride-2 5x5 stem, two stages, one
 * expansion list per stage, sigmoid head; 2: 7x5x2, 1x1 stem without activation,
 * squeeze-excite always, k {1, 3, 7}; 3: a fixed network (one op per layer). */
static mpnas_space *space_variant(mpnas_context *ctx, int v) {
  mpnas_space *sp = NULL;
  if (v == 0) {
    sp = fz_space(ctx);
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_CHOICE));
    return sp;
  }
  OK(mpnas_space_create(ctx, MPNAS_PRESET_EMPTY, &sp));
  if (sp == NULL) return NULL;
  if (v == 1) {
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 6));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, 6));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 3));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_KERNEL, 5));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_STRIDE, 2));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_ACTIVATION, MPNAS_ACT_RELU6));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 6));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, MPNAS_ACT_SIGMOID));
    const int32_t k[] = {3}, e1[] = {1, 3}, e2[] = {2};
    OK(mpnas_space_set_choices(sp, -1, k, 1, e1, 2));
    OK(mpnas_space_add_stage(sp, 4, 1, 1, MPNAS_ACT_RELU6, 0));
    OK(mpnas_space_add_stage(sp, 6, 2, 2, MPNAS_ACT_HSWISH, 1));
    OK(mpnas_space_set_choices(sp, 1, k, 1, e2, 1));
  } else if (v == 2) {
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 7));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, 5));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 2));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 2));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_KERNEL, 1));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_ACTIVATION, MPNAS_ACT_NONE));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 4));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, MPNAS_ACT_RELU));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_SE_MODE, MPNAS_SE_ALWAYS));
    const int32_t k[] = {1, 3, 7}, e[] = {2};
    OK(mpnas_space_set_choices(sp, -1, k, 3, e, 1));
    OK(mpnas_space_add_stage(sp, 3, 2, 1, MPNAS_ACT_HSIGMOID, 1));
  } else {
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_HEIGHT, 4));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_WIDTH, 4));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_INPUT_CHANNELS, 1));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_STEM_CHANNELS, 2));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_CHANNELS, 2));
    OK(mpnas_space_set_int(sp, MPNAS_SPACE_HEAD_ACTIVATION, MPNAS_ACT_NONE));
    const int32_t k[] = {3}, e[] = {1};
    OK(mpnas_space_set_choices(sp, -1, k, 1, e, 1));
    OK(mpnas_space_add_stage(sp, 2, 1, 2, MPNAS_ACT_RELU, 0));
  }
  return sp;
}

/* Divide every other head BN scale of m's folded inference form by 300: the head's
 * scales then span more than int8 codes hold within 1/64 of each channel's own scale. */
static void spread_head_scales(mpnas_model *m) {
  mpnas__conv_geom hg = mpnas__space_head_geom(&m->space);
  int32_t D = m->ndomains;
  for (int32_t d = 0; d < D; d++) {
    float *scale = m->affine + m->affine_off[(size_t)(3 * m->nnodes + 1) * D + d];
    for (int c = 0; c < hg.cout; c += 2) scale[c] /= 300.0f;
  }
}

/* Model file k: space k % 4, 1..3 domains, settings varied with k. quant: 1 quantised
 * (QNT8), 2 int8 only (no PARW / PARB), 3 quantised after every other head BN scale was
 * divided by 300, so that version 3 stores the head's scales as halves rather than codes
 * (step +0; docs/MODEL-FORMAT.md); spaces 0 and 3 only (the others' sigmoid activations
 * have no int8 form). version: of a quantised file, 3 (QNT8's floats as halves, what
 * quantising gives) or 2 (full floats, as earlier writers wrote). */
static void model_file(const char *dir, int k, int quant, int version) {
  mpnas_context *ctx = fz_context();
  mpnas_space *sp = space_variant(ctx, k % 4);
  mpnas_model *m = NULL;
  OK(mpnas_model_create(ctx, sp, &m));
  if (m == NULL) return;
  int64_t L = 0, h = 0, w = 0, c = 0;
  mpnas_space_get_int(sp, MPNAS_SPACE_NUM_LAYERS, &L);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_HEIGHT, &h);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_WIDTH, &w);
  mpnas_space_get_int(sp, MPNAS_SPACE_INPUT_CHANNELS, &c);
  size_t per = (size_t)(h * w * c);
  int domains = 1 + k % 3;
  unsigned char *images = malloc(8 * per);
  int32_t labels[8], path[16];
  for (int d = 0; d < domains; d++) {
    char name[16];
    snprintf(name, sizeof name, "dom %d", d);
    int32_t classes = 2 + (d * 3 + k) % 9;
    for (int32_t l = 0; l < (int32_t)L; l++) {
      int32_t ops = 1;
      mpnas_space_num_ops(sp, l, &ops);
      path[l] = (d * 3 + l * 5 + k) % ops;
    }
    OK(mpnas_model_add_domain(m, name, classes, path, (size_t)L, NULL));
    fz_data(500u + (uint32_t)(k * 8 + d), 8, per, classes, images, labels);
    OK(mpnas_model_set_data(m, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, images, labels, 8));
    if ((k + d) % 3 == 0) OK(mpnas_model_set_domain_int(m, d, MPNAS_DOMAIN_HFLIP, 1));
  }
  free(images);
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, 2 + k % 3));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, 2 + k % 3));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_BATCH, 2));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_VALID_EVERY, 1 + k % 2));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_OPTIMIZER, k % 3));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_AUGMENT_PAD, k % 3));
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, (k / 3) % 4));
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, (k / 2) % 2));
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 0.02 * (1 + k % 4)));
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_LABEL_SMOOTHING, 0.05 * (k % 3)));
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_VALIDATION_FRACTION, 0.25));
  OK(mpnas_model_train(m, 0, NULL, NULL, 0));
  if (quant == 3) { /* reloaded, so that the folded form is current; its data set again */
    size_t n = 0;
    OK(mpnas_model_save_buffer(m, NULL, 0, &n));
    unsigned char *buf = malloc(n);
    mpnas_model *l = NULL;
    OK(mpnas_model_save_buffer(m, buf, n, &n));
    OK(mpnas_model_load_buffer(ctx, buf, n, &l));
    free(buf);
    if (l != NULL) {
      unsigned char *im = malloc(8 * per);
      for (int d = 0; d < domains; d++) {
        int32_t classes = 2 + (d * 3 + k) % 9;
        fz_data(500u + (uint32_t)(k * 8 + d), 8, per, classes, im, labels);
        OK(mpnas_model_set_data(l, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, im, labels, 8));
      }
      free(im);
      mpnas_model_free(m);
      m = l;
      spread_head_scales(m);
    }
  }
  if (quant) OK(mpnas_model_quantize(m, 8));
  if (quant == 3)
    for (int32_t d = 0; d < m->ndomains; d++)
      if (m->quant == NULL || m->quant->doms[d].head.a_step != 0.0f) {
        fprintf(stderr, "model %d: domain %d's head scales are not stored as halves\n", k, d);
        failures++;
      }
  if (quant == 2) OK(mpnas_model_drop_float(m));
  if (quant && version == 2 && m->quant != NULL) m->quant->half = 0;
  size_t n = 0;
  OK(mpnas_model_save_buffer(m, NULL, 0, &n));
  unsigned char *buf = malloc(n);
  OK(mpnas_model_save_buffer(m, buf, n, &n));
  write_file(dir, "model", k, buf, n);
  free(buf);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

/* ---- Checkpoints of fz_model and fz_supernet --------------------------------------------- */

static void model_checkpoint(const char *dir, int k) {
  mpnas_context *ctx = fz_context();
  mpnas_space *sp = fz_space(ctx);
  mpnas_model *m = fz_model(ctx, sp);
  if (m == NULL) {
    failures++;
    return;
  }
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_OPTIMIZER, k % 3));
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, k % 4));
  OK(mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, (k / 4) % 2));
  OK(mpnas_model_set_int(m, MPNAS_TRAIN_AUGMENT_PAD, k % 3));
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_LABEL_SMOOTHING, 0.1 * (k % 2)));
  OK(mpnas_model_set_double(m, MPNAS_TRAIN_LEARNING_RATE, 0.01 * (1 + k % 5)));
  if (k % 5 == 4) OK(mpnas_model_set_double(m, MPNAS_TRAIN_VALIDATION_FRACTION, 0.5));
  if (k >= 6) OK(mpnas_model_set_domain_int(m, k % 2, MPNAS_DOMAIN_HFLIP, 1));
  OK(mpnas_model_train(m, 1 + k % 4, NULL, NULL, 0)); /* step 4 is the end */
  const char *tmp = "/tmp/mpnas-gen-corpus.ckpt";
  OK(mpnas_model_save_checkpoint(m, tmp));
  copy_file(tmp, dir, "model_checkpoint", k);
  mpnas_model_free(m);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

static void search_checkpoint(const char *dir, int k) {
  mpnas_context *ctx = fz_context();
  mpnas_space *sp = fz_space(ctx);
  mpnas_supernet *sn = fz_supernet(ctx, sp);
  if (sn == NULL) {
    failures++;
    return;
  }
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, k % 4));
  OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_REWARD, (k / 4) % 2));
  OK(mpnas_supernet_set_int(sn, MPNAS_ABDP_SIGNAL, (k / 2) % 4));
  OK(mpnas_supernet_set_int(sn, MPNAS_ABDP_SAMPLING, k % 2));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_ENTROPY_BONUS, 0.01 * (k % 3)));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, 0.5 * (k % 3)));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, k % 2 ? 0.0 : 0.25));
  OK(mpnas_supernet_set_double(sn, MPNAS_SEARCH_WARMUP_FRACTION, k % 3 ? 0.0 : 0.25));
  if (k % 4 == 3) {
    int32_t path[FZ_LAYERS] = {2, 4};
    OK(mpnas_supernet_set_fixed_path(sn, path, FZ_LAYERS));
  }
  if (k % 6 == 5) { /* the latency cost, with a table (the loader refuses it without) */
    size_t count = 0;
    double table[64];
    OK(mpnas_supernet_latency_table(sn, NULL, 0, &count));
    for (size_t i = 0; i < count && i < 64; i++) table[i] = 1e-5 * (double)(1 + i % 7);
    OK(mpnas_supernet_set_latency_table(sn, table, count));
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, MPNAS_COST_LATENCY));
  } else {
    OK(mpnas_supernet_set_int(sn, MPNAS_SEARCH_COST, k % 3));
  }
  OK(mpnas_supernet_search(sn, 1 + k % 4, NULL, NULL, 0));
  const char *tmp = "/tmp/mpnas-gen-corpus.ckpt";
  OK(mpnas_supernet_save_checkpoint(sn, tmp));
  copy_file(tmp, dir, "search_checkpoint", k);
  mpnas_supernet_free(sn);
  mpnas_space_free(sp);
  mpnas_context_free(ctx);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR (writes DIR/model, DIR/model_checkpoint, "
                    "DIR/search_checkpoint)\n", argv[0]);
    return 2;
  }
  for (int k = 0; k < 12; k++) {
    model_file(argv[1], k, 0, 1);
    model_checkpoint(argv[1], k);
    search_checkpoint(argv[1], k);
  }
  model_file(argv[1], 12, 1, 2); /* quantised: the QNT8 section (space 0, SE as a choice) */
  model_file(argv[1], 15, 2, 2); /* int8 only (space 3) */
  model_file(argv[1], 16, 1, 3); /* the same two with QNT8's floats as halves */
  model_file(argv[1], 19, 2, 3);
  model_file(argv[1], 20, 3, 3); /* quantised, the head's BN scales as halves */
  printf("wrote 41 files to %s/{model,model_checkpoint,search_checkpoint}%s\n", argv[1],
         failures ? " (with failures)" : "");
  return failures != 0;
}
