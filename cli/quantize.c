/* quantize.c - `mpnas quantize MODEL -o OUT`: the model's int8 form (docs/QUANTIZATION.md).
 * Calibration needs each domain's training images: the run's domains (run.conf beside
 * the model, read as eval reads it) or --domain NAME=PATH, loaded with the run's seed and
 * test fraction so that the training split is the one the model was trained on. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Load domain `arg`'s training split and hand it to the model for calibration. */
static int calibration_data(mpnas_context *ctx, mpnas_model *model, const char *dir,
                            const cli_options *o, const char *arg, cli_data_spec spec) {
  cli_domain dom;
  char **names = NULL;
  memset(&dom, 0, sizeof dom);
  if (cli_domain_arg(arg, dom.name, &dom.path)) return EXIT_USAGE;
  if (!dom.path) {
    cli_error("--domain %s: NAME=PATH expected", arg);
    return EXIT_USAGE;
  }
  int32_t d = cli_model_domain(model, dom.name), classes = 0;
  if (d < 0) return EXIT_USAGE;
  mpnas_model_domain_classes(model, d, &classes);
  int rc = cli_class_names(o, model, dir, d, dom.name, &names);
  spec.known_classes = names;
  spec.known_count = classes;
  if (rc == 0) rc = cli_data_load(&dom, &spec, 1);
  if (rc == 0 && dom.classes != classes) {
    cli_error("domain %s: %s has %d classes, the model's domain %d", dom.name, dom.path,
              (int)dom.classes, (int)classes);
    rc = EXIT_DATA;
  }
  if (rc == 0 && dom.train.n == 0) {
    cli_error("domain %s: %s has no training images to calibrate on", dom.name, dom.path);
    rc = EXIT_DATA;
  }
  mpnas_status st;
  if (rc == 0 && (st = mpnas_model_set_data(model, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8,
                                            dom.train.x, dom.train.y, dom.train.n)) != MPNAS_OK)
    rc = cli_library_error(ctx, st, "calibration images");
  if (rc == 0 && !o->quiet)
  {
    int64_t want = o->calibration > 0 ? o->calibration : 256; /* the library's default */
    printf("domain %s: calibrating on %lld of %lld training images\n", dom.name,
           (long long)(want < dom.train.n ? want : dom.train.n), (long long)dom.train.n);
  }
  cli_names_free(names, classes);
  cli_domain_free(&dom);
  return rc;
}

static long long file_size(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 ? (long long)s.st_size : -1;
}

int cli_quantize(cli_options *o) {
  char file[4096], dir[4096];
  if (o->npositional != 1 || o->out == NULL) {
    cli_error("mpnas quantize MODEL -o OUT: one model (file or run folder) and an output file "
              "expected (see mpnas quantize --help)");
    return EXIT_USAGE;
  }
  if (o->calibration > 65536) {
    cli_error("--calibration %lld: at most 65536 images", (long long)o->calibration);
    return EXIT_USAGE;
  }
  cli_model_location(o->positional[0], file, dir, sizeof file);
  cli_options run;
  int rc = cli_run_settings(o, dir, &run);
  const char *const *domains = o->ndomains ? o->domains : run.domains;
  int ndomains = o->ndomains ? o->ndomains : run.ndomains;
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  int32_t nd = 0;
  if (rc == 0) rc = cli_open_context(&run, &ctx);
  if (rc == 0) rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (rc == 0) mpnas_model_num_domains(model, &nd);
  for (int i = 0; rc == 0 && i < ndomains; i++) { /* names given twice */
    char name[CLI_NAME_CAP], other[CLI_NAME_CAP];
    const char *path;
    if (cli_domain_arg(domains[i], name, &path)) rc = EXIT_USAGE;
    for (int k = 0; rc == 0 && k < i; k++)
      if (cli_domain_arg(domains[k], other, &path) == 0 && strcmp(name, other) == 0) {
        cli_error("--domain %s: two domains named %s", domains[i], name);
        rc = EXIT_USAGE;
      }
  }
  if (rc == 0 && ndomains != nd) {
    cli_error("the model has %d domains, %d given to calibrate on: give --domain NAME=PATH for "
              "each (%s has no run.conf, or it names other domains)",
              (int)nd, ndomains, dir);
    rc = EXIT_USAGE;
  }
  if (rc == 0) {
    cli_data_spec spec = {0};
    int64_t seed;
    cli_input_spec(model, &spec);
    mpnas_context_get_int(ctx, MPNAS_CONTEXT_SEED, &seed);
    spec.seed = (uint64_t)seed;
    spec.test_fraction = o->test_fraction >= 0 ? o->test_fraction : run.test_fraction >= 0 ? run.test_fraction : 0.2;
    spec.skip_bad = o->skip_bad || run.skip_bad;
    spec.quiet = o->quiet;
    for (int i = 0; rc == 0 && i < ndomains; i++)
      rc = calibration_data(ctx, model, dir, o, domains[i], spec);
  }
  mpnas_status st;
  if (rc == 0 && (st = mpnas_model_quantize(model, (int32_t)o->calibration)) != MPNAS_OK)
    rc = cli_library_error(ctx, st, "quantizing");
  if (rc == 0 && o->int8_only && (st = mpnas_model_drop_float(model)) != MPNAS_OK)
    rc = cli_library_error(ctx, st, "--int8-only");
  if (rc == 0 && (st = mpnas_model_save(model, o->out)) != MPNAS_OK)
    rc = cli_library_error(ctx, st, o->out);
  if (rc == 0 && !o->quiet)
    printf("wrote %s: %lld bytes (%s; the float model file %s: %lld bytes)\n", o->out,
           file_size(o->out), o->int8_only ? "int8 only" : "float and int8", file,
           file_size(file));
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  cli_options_free(&run);
  return rc;
}
