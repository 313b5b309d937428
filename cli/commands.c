/* commands.c - the commands that use a trained model: eval, predict, info, figures; and
 * params. A MODEL argument is a model file or a run folder (its model.mpnas); the
 * model's folder may hold classes.json (class names) and run.conf (the run's domains,
 * seed and test fraction, which eval uses to find the same test split). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "svg_figures.h"

void cli_model_location(const char *arg, char *file, char *dir, size_t cap) {
  struct stat s;
  if (stat(arg, &s) == 0 && S_ISDIR(s.st_mode)) {
    snprintf(file, cap, "%s/model.mpnas", arg);
    snprintf(dir, cap, "%s", arg);
    return;
  }
  snprintf(file, cap, "%s", arg);
  const char *slash = strrchr(arg, '/');
  if (!slash) snprintf(dir, cap, ".");
  else snprintf(dir, cap, "%.*s", (int)(slash == arg ? 1 : slash - arg), arg);
}

int cli_run_settings(const cli_options *o, const char *dir, cli_options *run) {
  char conf[4200];
  cli_options_init(run, CMD_SEARCH);
  snprintf(conf, sizeof conf, "%s/run.conf", dir);
  int rc = 0;
  if (access(conf, R_OK) == 0) rc = cli_run_read(run, dir);
  for (int i = 0; rc == 0 && i < o->nsets && run->nsets < CLI_MAX_SETS; i++)
    run->sets[run->nsets++] = o->sets[i];
  return rc;
}

int cli_model_open(mpnas_context *ctx, const char *arg, mpnas_model **model, char *file, char *dir,
                   size_t cap) {
  cli_model_location(arg, file, dir, cap);
  mpnas_status st = mpnas_model_load(ctx, file, model);
  return st == MPNAS_OK ? 0 : cli_library_error(ctx, st, file);
}

int32_t cli_model_domain(const mpnas_model *model, const char *name) {
  int32_t n;
  char list[1024] = "";
  mpnas_model_num_domains(model, &n);
  for (int32_t d = 0; d < n; d++) {
    char dn[CLI_NAME_CAP];
    mpnas_model_domain_name(model, d, dn, sizeof dn, NULL);
    if (strcmp(dn, name) == 0) return d;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", d ? ", " : "", dn);
  }
  cli_error("the model has no domain %s (its domains: %s)", name, list);
  return -1;
}

/* A domain's class names from --classes FILE or classes.json beside the model; NULL when
 * there are none. A list that does not match the model's class count is an error. */
int cli_class_names(const cli_options *o, const mpnas_model *model, const char *dir, int32_t domain,
                    const char *name, char ***names) {
  char file[4096];
  int32_t count, classes;
  if (o->classes) snprintf(file, sizeof file, "%s", o->classes);
  else snprintf(file, sizeof file, "%s/classes.json", dir);
  int rc = cli_classes_read(file, name, names, &count);
  mpnas_model_domain_classes(model, domain, &classes);
  if (rc == 0 && *names && count != classes) {
    cli_error("%s: %d class names for domain %s, whose model has %d classes", file, (int)count, name,
              (int)classes);
    cli_names_free(*names, count);
    *names = NULL;
    rc = EXIT_DATA;
  }
  return rc;
}

void cli_input_spec(const mpnas_model *model, cli_data_spec *spec) {
  const mpnas_space *space;
  mpnas_model_space(model, &space);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_HEIGHT, &spec->height);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_WIDTH, &spec->width);
  mpnas_space_get_int(space, MPNAS_SPACE_INPUT_CHANNELS, &spec->channels);
}

int cli_open_context(const cli_options *o, mpnas_context **ctx) {
  if (mpnas_context_create(ctx) != MPNAS_OK) {
    cli_error("cannot create a context");
    return EXIT_LIBRARY;
  }
  return cli_params_apply(o, PARAMS_CONTEXT, *ctx, *ctx);
}

/* ---- eval --------------------------------------------------------------------------- */

/* Top-1 and mean cross-entropy through an int8 predictor (mpnas_model_evaluate runs the
 * float form of a model that has one). */
static mpnas_status evaluate_int8(const mpnas_model *model, int32_t d, const cli_images *im,
                                  double *top1, double *loss) {
  enum { CHUNK = 256 };
  int32_t classes;
  mpnas_model_domain_classes(model, d, &classes);
  mpnas_predictor *p = NULL;
  float *logits = malloc(sizeof(float) * (size_t)classes * CHUNK);
  if (logits == NULL) return MPNAS_E_NO_MEMORY;
  mpnas_status st = mpnas_predictor_create(model, &p);
  if (st == MPNAS_OK) st = mpnas_predictor_set_precision(p, MPNAS_PRECISION_INT8);
  cli_data_spec spec = {0};
  cli_input_spec(model, &spec);
  size_t pixels = (size_t)(spec.height * spec.width * spec.channels);
  int64_t right = 0;
  double sum = 0;
  for (int64_t first = 0; st == MPNAS_OK && first < im->n; first += CHUNK) {
    int64_t n = im->n - first < CHUNK ? im->n - first : CHUNK;
    st = mpnas_predictor_run(p, d, MPNAS_DTYPE_U8, im->x + pixels * (size_t)first, n,
                             MPNAS_OUTPUT_LOGITS, logits, (size_t)classes * CHUNK);
    for (int64_t i = 0; st == MPNAS_OK && i < n; i++) {
      const float *r = logits + (size_t)i * (size_t)classes;
      int32_t best = 0;
      for (int32_t k = 1; k < classes; k++) best = r[k] > r[best] ? k : best;
      double z = 0;
      for (int32_t k = 0; k < classes; k++) z += exp((double)r[k] - (double)r[best]);
      int32_t y = im->y[first + i];
      right += best == y;
      sum += log(z) - ((double)r[y] - (double)r[best]);
    }
  }
  mpnas_predictor_free(p);
  free(logits);
  if (st == MPNAS_OK) {
    *top1 = (double)right / (double)im->n;
    *loss = sum / (double)im->n;
  }
  return st;
}

/* One domain's test split, evaluated: a table row. */
static int eval_domain(mpnas_context *ctx, const mpnas_model *model, const char *dir, const cli_options *o,
                       const char *arg, cli_data_spec spec) {
  cli_domain dom;
  char **names = NULL;
  double top1, loss;
  memset(&dom, 0, sizeof dom);
  if (cli_domain_arg(arg, dom.name, &dom.path)) return EXIT_USAGE;
  if (!dom.path) {
    cli_error("--domain %s: NAME=PATH expected", arg);
    return EXIT_USAGE;
  }
  int32_t d = cli_model_domain(model, dom.name), classes;
  if (d < 0) return EXIT_USAGE;
  mpnas_model_domain_classes(model, d, &classes);
  int rc = cli_class_names(o, model, dir, d, dom.name, &names);
  if (rc) return rc;
  spec.known_classes = names;
  spec.known_count = classes;
  rc = cli_data_load(&dom, &spec, 0);
  if (rc == 0 && dom.classes != classes) {
    cli_error("domain %s: %s has %d classes, the model's domain %d", dom.name, dom.path, (int)dom.classes,
              (int)classes);
    rc = EXIT_DATA;
  }
  if (rc == 0 && dom.test.n == 0) {
    cli_error("domain %s: %s has no test images (no test/ folder or test IDX files, and a test "
              "fraction of 0)",
              dom.name, dom.path);
    rc = EXIT_DATA;
  }
  mpnas_status st = MPNAS_OK;
  if (rc == 0 && o->int8) st = evaluate_int8(model, d, &dom.test, &top1, &loss);
  else if (rc == 0)
    st = mpnas_model_evaluate(model, d, MPNAS_DTYPE_U8, dom.test.x, dom.test.y, dom.test.n, &top1, &loss);
  if (rc == 0 && st != MPNAS_OK)
    rc = cli_library_error(ctx, st, "evaluating");
  if (rc == 0)
    printf("%-16s %7lld %7.2f%% %7.3f%s\n", dom.name, (long long)dom.test.n, 100.0 * top1, loss,
           dom.skipped ? "  (bad files skipped)" : "");
  cli_names_free(names, classes);
  cli_domain_free(&dom);
  return rc;
}

int cli_eval(cli_options *o) {
  char file[4096], dir[4096];
  if (o->npositional != 1) {
    cli_error("mpnas eval MODEL: one model (file or run folder) expected (see mpnas eval --help)");
    return EXIT_USAGE;
  }
  cli_model_location(o->positional[0], file, dir, sizeof file);
  cli_options run;
  int rc = cli_run_settings(o, dir, &run);
  const char *const *domains = o->ndomains ? o->domains : run.domains;
  int ndomains = o->ndomains ? o->ndomains : run.ndomains;
  if (rc == 0 && ndomains == 0) {
    cli_error("no domain to evaluate: give --domain NAME=PATH (%s has no run.conf)", dir);
    rc = EXIT_USAGE;
  }
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  if (rc == 0) rc = cli_open_context(&run, &ctx);
  if (rc == 0) rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (rc == 0) {
    cli_data_spec spec = {0};
    int64_t seed;
    cli_input_spec(model, &spec);
    mpnas_context_get_int(ctx, MPNAS_CONTEXT_SEED, &seed);
    spec.seed = (uint64_t)seed;
    spec.test_fraction = o->test_fraction >= 0 ? o->test_fraction : run.test_fraction >= 0 ? run.test_fraction : 0.2;
    spec.skip_bad = o->skip_bad || run.skip_bad;
    spec.quiet = o->quiet;
    printf("%-16s %7s %8s %7s\n", "domain", "images", "top-1", "loss");
    for (int i = 0; rc == 0 && i < ndomains; i++) rc = eval_domain(ctx, model, dir, o, domains[i], spec);
  }
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  cli_options_free(&run);
  return rc;
}

/* ---- predict ------------------------------------------------------------------------ */

#define PREDICT_BATCH 32

/* "FILE<TAB>class p<TAB>class p ..." for one image's probabilities, most probable first. */
static void print_prediction(const char *file, const float *prob, int32_t classes, char **names, int64_t top) {
  int32_t shown = top > 0 && top < classes ? (int32_t)top : classes;
  uint8_t *used = calloc((size_t)classes, 1);
  printf("%s", file);
  for (int32_t k = 0; used && k < shown; k++) {
    int32_t best = -1;
    for (int32_t c = 0; c < classes; c++)
      if (!used[c] && (best < 0 || prob[c] > prob[best])) best = c;
    used[best] = 1;
    if (names) printf("\t%s %.4f", names[best], (double)prob[best]);
    else printf("\t%d %.4f", (int)best, (double)prob[best]);
  }
  printf("\n");
  free(used);
}

/* Decode, run and print up to PREDICT_BATCH files. */
static int predict_batch(mpnas_context *ctx, mpnas_predictor *pred, int32_t domain, int32_t classes,
                         char **names, const cli_options *o, const cli_data_spec *spec, const char **files,
                         int n, uint8_t *images, float *probs, int *skipped) {
  size_t pixels = (size_t)(spec->height * spec->width * spec->channels);
  const char *ok[PREDICT_BATCH];
  int count = 0;
  for (int i = 0; i < n; i++) {
    char err[4200];
    if (cli_data_load_file(files[i], spec, images + pixels * (size_t)count, err, sizeof err)) {
      if (!o->skip_bad) {
        cli_error("%s (--skip-bad skips such files)", err);
        return EXIT_DATA;
      }
      cli_error("skipped %s", err);
      (*skipped)++;
      continue;
    }
    ok[count++] = files[i];
  }
  if (count == 0) return 0;
  mpnas_status st = mpnas_predictor_run(pred, domain, MPNAS_DTYPE_U8, images, count, MPNAS_OUTPUT_PROBABILITIES,
                                        probs, (size_t)count * (size_t)classes);
  if (st != MPNAS_OK) return cli_library_error(ctx, st, "predicting");
  for (int i = 0; i < count; i++) print_prediction(ok[i], probs + (size_t)i * (size_t)classes, classes, names, o->top);
  return 0;
}

/* The files to classify: the arguments after the model, a folder standing for its files
 * (cli_folder_files: regular files, not hidden, sorted; not its sub-folders). *owned
 * holds the paths made here; the caller frees *files, each of *owned and *owned. */
static int predict_files(const cli_options *o, const char ***files, int64_t *count, char ***owned,
                         int64_t *nowned) {
  int64_t cap = o->npositional, n = 0;
  const char **list = malloc(sizeof(char *) * (size_t)cap);
  *files = list, *owned = NULL, *nowned = 0;
  if (!list) return EXIT_LIBRARY;
  for (int i = 1; i < o->npositional; i++) {
    const char *arg = o->positional[i];
    struct stat st;
    if (stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) { /* a file (or an error, said later) */
      list[n++] = arg;
      continue;
    }
    char **paths;
    int64_t k = cli_folder_files(arg, &paths);
    if (k < 0) {
      int why = errno; /* before cli_error's own calls */
      cli_error("%s: cannot read the folder: %s", arg, strerror(why));
      return why == ENOMEM ? EXIT_LIBRARY : EXIT_DATA;
    }
    if (k == 0) {
      cli_error("%s: a folder without files", arg);
      return EXIT_DATA;
    }
    cap += k;
    const char **grown = realloc(list, sizeof(char *) * (size_t)cap);
    char **mine = realloc(*owned, sizeof(char *) * (size_t)(*nowned + k));
    if (grown) *files = list = grown;
    if (mine) *owned = mine;
    if (!grown || !mine) {
      for (int64_t j = 0; j < k; j++) free(paths[j]);
      free(paths);
      return EXIT_LIBRARY;
    }
    for (int64_t j = 0; j < k; j++) list[n++] = mine[(*nowned)++] = paths[j];
    free(paths);
  }
  *count = n;
  return 0;
}

int cli_predict(cli_options *o) {
  char file[4096], dir[4096], name[CLI_NAME_CAP];
  const char *path;
  if (o->npositional < 2 || o->ndomains != 1) {
    cli_error("mpnas predict MODEL --domain NAME FILE|DIR...: a model, one domain and image files (or folders) expected");
    return EXIT_USAGE;
  }
  if (cli_domain_arg(o->domains[0], name, &path)) return EXIT_USAGE;
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  mpnas_predictor *pred = NULL;
  char **names = NULL;
  uint8_t *images = NULL;
  float *probs = NULL;
  int32_t domain = -1, classes = 0;
  int skipped = 0;
  const char **files = NULL;
  char **owned = NULL;
  int64_t count = 0, nowned = 0;
  int rc = predict_files(o, &files, &count, &owned, &nowned);
  if (rc == 0) rc = cli_open_context(o, &ctx);
  if (rc == 0) rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (rc == 0 && (domain = cli_model_domain(model, name)) < 0) rc = EXIT_USAGE;
  if (rc == 0) {
    mpnas_model_domain_classes(model, domain, &classes);
    rc = cli_class_names(o, model, dir, domain, name, &names);
  }
  cli_data_spec spec = {0};
  mpnas_status st;
  if (rc == 0) {
    cli_input_spec(model, &spec);
    images = malloc((size_t)(spec.height * spec.width * spec.channels) * PREDICT_BATCH);
    probs = malloc(sizeof(float) * (size_t)classes * PREDICT_BATCH);
    if (!images || !probs) rc = EXIT_LIBRARY;
    else if ((st = mpnas_predictor_create(model, &pred)) != MPNAS_OK) rc = cli_library_error(ctx, st, "predictor");
    else if (o->int8 && (st = mpnas_predictor_set_precision(pred, MPNAS_PRECISION_INT8)) != MPNAS_OK)
      rc = cli_library_error(ctx, st, "--int8");
  }
  if (rc == 0 && !names && !o->quiet)
    cli_error("no class names for domain %s (no %s): classes are shown by number", name,
              o->classes ? o->classes : "classes.json beside the model");
  for (int64_t first = 0; rc == 0 && first < count; first += PREDICT_BATCH) {
    int n = count - first < PREDICT_BATCH ? (int)(count - first) : PREDICT_BATCH;
    rc = predict_batch(ctx, pred, domain, classes, names, o, &spec, files + first, n, images, probs,
                       &skipped);
  }
  if (rc == 0 && skipped) cli_error("%d bad file%s skipped", skipped, skipped == 1 ? "" : "s");
  for (int64_t i = 0; i < nowned; i++) free(owned[i]);
  free(owned);
  free(files);
  free(images);
  free(probs);
  cli_names_free(names, classes);
  mpnas_predictor_free(pred);
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}

/* ---- info --------------------------------------------------------------------------- */

/* Nodes by usage: shared by several domains, exclusive to one, unused. */
static void node_usage(const mpnas_model *model, const mpnas_space *space, int64_t layers, int *shared,
                       int *exclusive, int *unused) {
  *shared = *exclusive = *unused = 0;
  for (int32_t l = 0; l < layers; l++) {
    int32_t nops;
    mpnas_space_num_ops(space, l, &nops);
    for (int32_t op = 0; op < nops; op++) {
      int32_t k, e, se, users;
      mpnas_space_op_info(space, l, op, &k, &e, &se);
      if (k == 0) continue; /* `zero` is not a node */
      mpnas_model_node_users(model, l, op, &users);
      *shared += users >= 2;
      *exclusive += users == 1;
      *unused += users == 0;
    }
  }
}

static void info_domains(const cli_options *o, const mpnas_model *model, const mpnas_space *space, int64_t layers,
                         const char *dir, int32_t nd) {
  int32_t *path = malloc(sizeof(int32_t) * (size_t)layers);
  printf("\n%-16s %7s %8s %8s  %s\n", "domain", "classes", "MMAC", "kparams", "path");
  for (int32_t d = 0; path && d < nd; d++) {
    char name[CLI_NAME_CAP], text[8192], **names = NULL;
    int32_t classes;
    double macs, params;
    mpnas_model_domain_name(model, d, name, sizeof name, NULL);
    mpnas_model_domain_classes(model, d, &classes);
    mpnas_model_domain_stat(model, d, MPNAS_STAT_MACS, &macs);
    mpnas_model_domain_stat(model, d, MPNAS_STAT_PARAMS, &params);
    mpnas_model_path(model, d, path, (size_t)layers);
    if (mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL) != MPNAS_OK) text[0] = 0;
    printf("%-16s %7d %8.2f %8.1f  %s\n", name, (int)classes, macs / 1e6, params / 1e3, text);
    if (cli_class_names(o, model, dir, d, name, &names) == 0 && names) {
      printf("%-16s classes:", "");
      for (int32_t c = 0; c < classes; c++) printf(" %s", names[c]);
      printf("\n");
    }
    cli_names_free(names, classes);
  }
  free(path);
}

static void info_jaccard(const mpnas_model *model, int32_t nd) {
  double *jac = malloc(sizeof(double) * (size_t)nd * (size_t)nd);
  if (!jac || mpnas_model_jaccard(model, jac, (size_t)nd * (size_t)nd) != MPNAS_OK) {
    free(jac);
    return;
  }
  printf("\nJaccard similarity of the domains' node sets:\n%-16s", "");
  for (int32_t b = 0; b < nd; b++) printf(" %6d", (int)b);
  printf("\n");
  for (int32_t a = 0; a < nd; a++) {
    char name[CLI_NAME_CAP];
    mpnas_model_domain_name(model, a, name, sizeof name, NULL);
    printf("%2d %-13.13s", (int)a, name);
    for (int32_t b = 0; b < nd; b++) printf(" %6.2f", jac[a * nd + b]);
    printf("\n");
  }
  free(jac);
}

int cli_info(cli_options *o) {
  char file[4096], dir[4096];
  if (o->npositional != 1) {
    cli_error("mpnas info MODEL: one model (file or run folder) expected");
    return EXIT_USAGE;
  }
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  int rc = cli_open_context(o, &ctx);
  if (rc == 0) rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (rc == 0) {
    const mpnas_space *space;
    int64_t layers, h, w, c, params, macs, nodes;
    int32_t nd;
    int shared, exclusive, unused;
    double separate = 0;
    mpnas_model_space(model, &space);
    mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
    mpnas_space_get_int(space, MPNAS_SPACE_INPUT_HEIGHT, &h);
    mpnas_space_get_int(space, MPNAS_SPACE_INPUT_WIDTH, &w);
    mpnas_space_get_int(space, MPNAS_SPACE_INPUT_CHANNELS, &c);
    mpnas_model_get_int(model, MPNAS_MODEL_PARAMS, &params);
    mpnas_model_get_int(model, MPNAS_MODEL_MACS, &macs);
    mpnas_model_get_int(model, MPNAS_MODEL_NUM_NODES, &nodes);
    mpnas_model_num_domains(model, &nd);
    for (int32_t d = 0; d < nd; d++) {
      double p;
      mpnas_model_domain_stat(model, d, MPNAS_STAT_PARAMS, &p);
      separate += p;
    }
    node_usage(model, space, layers, &shared, &exclusive, &unused);
    printf("model: %s\n", file);
    printf("input: %lldx%lldx%lld; %lld searchable layers; %d domain%s\n", (long long)h, (long long)w,
           (long long)c, (long long)layers, (int)nd, nd == 1 ? "" : "s");
    printf("parameters: %lld unique (separate per-domain models: %.0f); MACs: %.2f M over all domains\n",
           (long long)params, separate, (double)macs / 1e6);
    printf("nodes: %lld (%d shared, %d exclusive; %d of the space unused)\n", (long long)nodes, shared, exclusive,
           unused);
    info_domains(o, model, space, layers, dir, nd);
    info_jaccard(model, nd);
  }
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}

/* ---- figures ------------------------------------------------------------------------ */

static int write_svg(mpnas_context *ctx, const mpnas_model *model, const char *file, int jaccard,
                     const char *title, int quiet) {
  cli_file cf;
  FILE *f = cli_file_open(&cf, file, 0);
  if (!f) return EXIT_DATA;
  int rc = jaccard ? svg_model_jaccard(f, model, title ? title : "Jaccard similarity of the domains' node sets")
                   : svg_model_architecture(f, model, title ? title : "Multi-path architecture");
  if (rc != 0) cli_file_abandon(&cf);
  if (rc < 0) return cli_library_error(ctx, rc, file);
  if (rc > 0) {
    cli_error("writing %s failed", file);
    return EXIT_DATA;
  }
  if ((rc = cli_file_commit(&cf)) != 0) return rc;
  if (!quiet) printf("wrote %s\n", file);
  return 0;
}

int cli_write_figures(mpnas_context *ctx, const mpnas_model *model, const char *prefix, const char *title,
                      int quiet) {
  char file[4200];
  snprintf(file, sizeof file, "%sarchitecture.svg", prefix);
  int rc = write_svg(ctx, model, file, 0, title, quiet);
  snprintf(file, sizeof file, "%sjaccard.svg", prefix);
  return rc ? rc : write_svg(ctx, model, file, 1, title, quiet);
}

int cli_figures(cli_options *o) {
  char file[4096], dir[4096], prefix[4200];
  if (o->npositional != 1) {
    cli_error("mpnas figures MODEL: one model (file or run folder) expected");
    return EXIT_USAGE;
  }
  mpnas_context *ctx = NULL;
  mpnas_model *model = NULL;
  int rc = cli_open_context(o, &ctx);
  if (rc == 0) rc = cli_model_open(ctx, o->positional[0], &model, file, dir, sizeof file);
  if (o->out) snprintf(prefix, sizeof prefix, "%s-", o->out);
  else snprintf(prefix, sizeof prefix, "%s/", dir);
  if (rc == 0) rc = cli_write_figures(ctx, model, prefix, o->title, o->quiet);
  mpnas_model_free(model);
  mpnas_context_free(ctx);
  return rc;
}

/* ---- params ------------------------------------------------------------------------- */

int cli_params(cli_options *o) {
  if (o->npositional) {
    cli_error("mpnas params takes no arguments");
    return EXIT_USAGE;
  }
  return cli_params_list(o->preset, o->names);
}
