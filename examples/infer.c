/* infer.c - classify images with a saved multi-path model.
 *
 * Loads a model file (mpnas_model_load), picks one of its domains by name, and runs that
 * domain's path on images from an IDX file (examples/idx.h: N x H x W grey or
 * N x H x W x C; grey is replicated to the model's channels, as the quickstart does) or,
 * without one, on images drawn from the embedded procedural generator
 * (examples/synthetic.h). Prints each image's top-1 class (and its label when known),
 * with --logits / --probabilities the model's outputs as %.9g (exactly reproducible:
 * the Python test compares them with the wrapper's), then the accuracy and the library's
 * own mpnas_model_evaluate figures when labels are given.
 *
 * Usage:
 *   infer MODEL DOMAIN [IMAGES.idx [LABELS.idx]] [options]
 * Options:
 *   --logits           print every image's logits
 *   --probabilities    print every image's softmax probabilities
 *   --count N          at most N images (default: all of the IDX file; 16 synthetic)
 *   --synthetic NAME   generator domain to draw from (shapes, gratings, colours, counts;
 *                      default: DOMAIN itself when it is one of those)
 *   --start I          first synthetic image index (default 1000000, beyond any training
 *                      range); --seed S the generator's seed (default 7, the quickstart's)
 *   --batch B          images per predictor call (default 64)
 *   --threads T        worker threads (default 1)
 *   --quiet            only the summary lines
 * Output lines: "image I: top1 C[ label L][ logits: v v ...][ probabilities: v v ...]",
 * then "accuracy: A (k/n)" and "evaluate: top1 T loss X" with labels.
 * Exit status: 0 on success, 1 on a usage or library error.
 * Build: make examples (build/<config>/examples/infer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"
#include "mpnas.h"
#include "synthetic.h"

static void usage(void) {
  fprintf(stderr,
          "usage: infer MODEL DOMAIN [IMAGES.idx [LABELS.idx]] [--logits] [--probabilities]\n"
          "             [--count N] [--synthetic NAME] [--start I] [--seed S] [--batch B]\n"
          "             [--threads T] [--quiet]\n");
}

static int lib_fail(mpnas_context *ctx, const char *what, mpnas_status st) {
  const char *msg = mpnas_context_last_error(ctx);
  fprintf(stderr, "infer: %s: %s\n", what, msg[0] ? msg : mpnas_status_string(st));
  return 1;
}

int main(int argc, char **argv) {
  const char *model_file = NULL, *domain_name = NULL, *images_file = NULL, *labels_file = NULL;
  const char *syn_name = NULL;
  int show_logits = 0, show_probs = 0, quiet = 0;
  long long count_opt = -1, start = 1000000, seed = 7, batch = 64, threads = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(a, "--logits") == 0) show_logits = 1;
    else if (strcmp(a, "--probabilities") == 0) show_probs = 1;
    else if (strcmp(a, "--quiet") == 0) quiet = 1;
    else if (strcmp(a, "--count") == 0 && has_value) count_opt = atoll(argv[++i]);
    else if (strcmp(a, "--synthetic") == 0 && has_value) syn_name = argv[++i];
    else if (strcmp(a, "--start") == 0 && has_value) start = atoll(argv[++i]);
    else if (strcmp(a, "--seed") == 0 && has_value) seed = atoll(argv[++i]);
    else if (strcmp(a, "--batch") == 0 && has_value) batch = atoll(argv[++i]);
    else if (strcmp(a, "--threads") == 0 && has_value) threads = atoll(argv[++i]);
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage();
      return 0;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "infer: unknown option or missing value: %s\n", a);
      usage();
      return 1;
    } else if (!model_file) model_file = a;
    else if (!domain_name) domain_name = a;
    else if (!images_file) images_file = a;
    else if (!labels_file) labels_file = a;
    else {
      usage();
      return 1;
    }
  }
  if (!model_file || !domain_name || batch < 1 || threads < 0) {
    usage();
    return 1;
  }

  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  mpnas_predictor *pred = NULL;
  uint8_t *images = NULL;
  int32_t *labels = NULL;
  float *out = NULL;
  int rc = 1;
  mpnas_status st;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  if ((st = mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads)) != MPNAS_OK) {
    rc = lib_fail(ctx, "threads", st);
    goto done;
  }
  if ((st = mpnas_model_load(ctx, model_file, &model)) != MPNAS_OK) {
    rc = lib_fail(ctx, model_file, st);
    goto done;
  }

  /* The domain, its classes and the model's input size. */
  int32_t ndomains, domain = -1, classes;
  mpnas_model_num_domains(model, &ndomains);
  char names[512] = "";
  for (int32_t d = 0; d < ndomains; d++) {
    char name[64];
    mpnas_model_domain_name(model, d, name, sizeof name, NULL);
    if (strcmp(name, domain_name) == 0) domain = d;
    if (strlen(names) + strlen(name) + 3 < sizeof names) {
      if (d) strcat(names, ", ");
      strcat(names, name);
    }
  }
  if (domain < 0) {
    fprintf(stderr, "infer: the model has no domain \"%s\" (domains: %s)\n", domain_name, names);
    goto done;
  }
  mpnas_model_domain_classes(model, domain, &classes);
  const mpnas_space *space;
  int64_t h, w, c;
  mpnas_model_space(model, &space);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_HEIGHT, &h);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_WIDTH, &w);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_CHANNELS, &c);
  size_t pixels = (size_t)(h * w * c);

  /* The images: an IDX file, or the embedded generator. */
  int64_t n = 0;
  int have_labels = 0;
  if (images_file) {
    char err[256];
    idx_array im;
    if (idx_read(images_file, &im, err, sizeof err) != 0) {
      fprintf(stderr, "infer: %s\n", err);
      goto done;
    }
    int64_t fc = im.ndim == 4 ? im.dims[3] : 1;
    if ((im.ndim != 3 && im.ndim != 4) || im.dims[1] != h || im.dims[2] != w || (fc != c && fc != 1)) {
      fprintf(stderr, "infer: %s: images of %lldx%lldx%lld expected (or grey %lldx%lld)\n",
              images_file, (long long)h, (long long)w, (long long)c, (long long)h, (long long)w);
      free(im.data);
      goto done;
    }
    n = im.dims[0];
    if (count_opt >= 0 && count_opt < n) n = count_opt;
    images = malloc(pixels * (size_t)(n > 0 ? n : 1));
    if (!images) {
      free(im.data);
      goto done;
    }
    for (int64_t i = 0; i < n; i++) /* grey replicated to every channel */
      for (size_t p = 0; p < (size_t)(h * w); p++)
        for (int64_t k = 0; k < c; k++)
          images[(size_t)i * pixels + p * (size_t)c + (size_t)k] =
              im.data[((size_t)i * (size_t)(h * w) + p) * (size_t)fc + (fc == 1 ? 0 : (size_t)k)];
    free(im.data);
    if (labels_file) {
      idx_array lb;
      if (idx_read(labels_file, &lb, err, sizeof err) != 0) {
        fprintf(stderr, "infer: %s\n", err);
        goto done;
      }
      if (lb.ndim != 1 || lb.dims[0] < n) {
        fprintf(stderr, "infer: %s: %lld labels expected\n", labels_file, (long long)n);
        free(lb.data);
        goto done;
      }
      labels = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
      if (!labels) {
        free(lb.data);
        goto done;
      }
      for (int64_t i = 0; i < n; i++) labels[i] = lb.data[i];
      free(lb.data);
      have_labels = 1;
    }
  } else {
    int syn = -1;
    const char *want = syn_name ? syn_name : domain_name;
    for (int d = 0; d < SYN_DOMAINS; d++)
      if (strcmp(SYN_NAMES[d], want) == 0) syn = d;
    if (syn < 0) {
      fprintf(stderr, "infer: no IDX file given and \"%s\" is not a generator domain "
                      "(shapes, gratings, colours, counts; pick one with --synthetic)\n", want);
      goto done;
    }
    if (h != SYN_SIZE || w != SYN_SIZE || c != SYN_CHANNELS) {
      fprintf(stderr, "infer: the generator makes 32x32x3 images; the model takes %lldx%lldx%lld\n",
              (long long)h, (long long)w, (long long)c);
      goto done;
    }
    if (SYN_CLASSES[syn] > classes) {
      fprintf(stderr, "infer: generator domain %s has %d classes, model domain %s only %d\n",
              SYN_NAMES[syn], SYN_CLASSES[syn], domain_name, (int)classes);
      goto done;
    }
    n = count_opt >= 0 ? count_opt : 16;
    images = malloc(pixels * (size_t)(n > 0 ? n : 1));
    labels = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!images || !labels) goto done;
    for (int64_t i = 0; i < n; i++)
      labels[i] = syn_image(syn, (uint64_t)(start + i), (uint64_t)seed, images + (size_t)i * pixels);
    have_labels = 1;
  }
  if (!quiet)
    printf("model: %s (%d domains: %s); domain %s (index %d, %d classes); %lld images of %lldx%lldx%lld\n",
           model_file, (int)ndomains, names, domain_name, (int)domain, (int)classes, (long long)n,
           (long long)h, (long long)w, (long long)c);

  /* Classify in batches. */
  if ((st = mpnas_predictor_create(model, &pred)) != MPNAS_OK) {
    rc = lib_fail(ctx, "predictor", st);
    goto done;
  }
  /* logits always (top-1 is their argmax); probabilities too when asked for */
  out = malloc(sizeof(float) * (size_t)batch * (size_t)classes * 2);
  if (!out) goto done;
  float *probs = out + (size_t)batch * (size_t)classes;
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += batch) {
    int64_t b = n - first < batch ? n - first : batch;
    const uint8_t *x = images + (size_t)first * pixels;
    size_t cap = (size_t)b * (size_t)classes;
    if ((st = mpnas_predictor_run(pred, domain, MPNAS_DTYPE_U8, x, b, MPNAS_OUTPUT_LOGITS, out,
                                  cap)) != MPNAS_OK ||
        (show_probs && (st = mpnas_predictor_run(pred, domain, MPNAS_DTYPE_U8, x, b,
                                                 MPNAS_OUTPUT_PROBABILITIES, probs, cap)) != MPNAS_OK)) {
      rc = lib_fail(ctx, "mpnas_predictor_run", st);
      goto done;
    }
    for (int64_t i = 0; i < b; i++) {
      const float *row = out + (size_t)i * (size_t)classes;
      int32_t top = 0;
      for (int32_t k = 1; k < classes; k++)
        if (row[k] > row[top]) top = k;
      if (have_labels && top == labels[first + i]) correct++;
      if (quiet) continue;
      printf("image %lld: top1 %d", (long long)(first + i), (int)top);
      if (have_labels) printf(" label %d", (int)labels[first + i]);
      if (show_logits) {
        printf(" logits:");
        for (int32_t k = 0; k < classes; k++) printf(" %.9g", (double)row[k]);
      }
      if (show_probs) {
        printf(" probabilities:");
        for (int32_t k = 0; k < classes; k++) printf(" %.9g", (double)probs[(size_t)i * (size_t)classes + (size_t)k]);
      }
      printf("\n");
    }
  }
  if (have_labels && n > 0) {
    double top1, loss;
    printf("accuracy: %.4f (%lld/%lld)\n", (double)correct / (double)n, (long long)correct, (long long)n);
    st = mpnas_model_evaluate(model, domain, MPNAS_DTYPE_U8, images, labels, n, &top1, &loss);
    if (st != MPNAS_OK) {
      rc = lib_fail(ctx, "mpnas_model_evaluate", st);
      goto done;
    }
    printf("evaluate: top1 %.4f loss %.4f\n", top1, loss);
  }
  rc = 0;
done:
  free(out);
  free(images);
  free(labels);
  mpnas_predictor_free(pred);
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}
