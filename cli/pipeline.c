/* pipeline.c - `mpnas search` and `mpnas train`: the whole pipeline of
 * examples/quickstart.c into a run folder.
 *
 *   data -> space -> supernet -> search -> RUN/search.ckpt -> multi-path model (from the
 *   supernet's paths) -> training -> test top-1 per domain -> RUN/model.mpnas,
 *   RUN/classes.json, RUN/architecture.svg, RUN/jaccard.svg
 *
 * `mpnas train RUN` runs the same pipeline from the finished search checkpoint, so the
 * model is derived exactly as the search derived it; `--resume` loads whichever
 * checkpoints a run has (RUN/search.ckpt, RUN/train.ckpt) into objects built the same way
 * from the same recorded settings and data, and the library continues them bit-identically. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "svg_figures.h"

typedef struct pipeline {
  cli_options *o;     /* the run's settings (recorded, then the command line's) */
  const char *run;
  int train_only;     /* mpnas train: the search must be finished */
  const char *resume_hint; /* the command that continues this run */
  const cli_options *record; /* mpnas train's new settings, recorded once they apply */
  mpnas_context *ctx;
  mpnas_space *space;
  mpnas_supernet *sn;
  mpnas_model *model;
  cli_domain doms[CLI_MAX_DOMAINS];
  int32_t nd;
  cli_progress progress;
} pipeline;

static void run_file(const pipeline *p, const char *name, char *out, size_t cap) {
  snprintf(out, cap, "%s/%s", p->run, name);
}

static int file_exists(const char *path) {
  struct stat s;
  return stat(path, &s) == 0;
}

static void say(const pipeline *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const pipeline *p, const char *fmt, ...) {
  if (p->o->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

/* ---- Setting up: context, space, supernet, data ----------------------------------
 * Every setting is applied (so checked by the library) before any image is read: a
 * typo should not wait for a large folder to load. */

/* The training and per-domain settings on a scratch model of the same space and domain
 * names (the real model exists only after the search). */
static int check_train_settings(pipeline *p) {
  mpnas_model *m = NULL;
  int64_t layers;
  int32_t path[4096] = {0}; /* op 0 of every layer: any valid path will do */
  mpnas_status st = mpnas_model_create(p->ctx, p->space, &m);
  int rc = st == MPNAS_OK ? 0 : cli_library_error(p->ctx, st, "the model");
  mpnas_space_get_int(p->space, MPNAS_SPACE_NUM_LAYERS, &layers);
  for (int32_t d = 0; rc == 0 && d < p->nd && layers <= 4096; d++)
    if ((st = mpnas_model_add_domain(m, p->doms[d].name, 2, path, (size_t)layers, NULL)) != MPNAS_OK)
      rc = cli_library_error(p->ctx, st, p->doms[d].name);
  if (rc == 0) rc = cli_params_apply(p->o, PARAMS_TRAIN, m, p->ctx);
  if (rc == 0) rc = cli_params_apply(p->o, PARAMS_DOMAIN, m, p->ctx);
  mpnas_model_free(m);
  return rc;
}

/* The --domain NAME=PATH arguments: names, unique. */
static int domain_names(pipeline *p) {
  const cli_options *o = p->o;
  if (o->ndomains == 0) {
    cli_error("no domain: give one --domain NAME=PATH or more");
    return EXIT_USAGE;
  }
  for (int i = 0; i < o->ndomains; i++) {
    cli_domain *d = &p->doms[i];
    if (cli_domain_arg(o->domains[i], d->name, &d->path)) return EXIT_USAGE;
    if (!d->path) {
      cli_error("--domain %s: NAME=PATH expected", o->domains[i]);
      return EXIT_USAGE;
    }
    for (int k = 0; k < i; k++)
      if (strcmp(p->doms[k].name, d->name) == 0) {
        cli_error("--domain %s: two domains named %s", o->domains[i], d->name);
        return EXIT_USAGE;
      }
  }
  p->nd = o->ndomains;
  return 0;
}

/* Each domain's images, then into the supernet. */
static int load_domains(pipeline *p) {
  cli_data_spec spec = {0};
  int64_t seed;
  int rc;
  mpnas_space_get_int(p->space, MPNAS_SPACE_INPUT_HEIGHT, &spec.height);
  mpnas_space_get_int(p->space, MPNAS_SPACE_INPUT_WIDTH, &spec.width);
  mpnas_space_get_int(p->space, MPNAS_SPACE_INPUT_CHANNELS, &spec.channels);
  mpnas_context_get_int(p->ctx, MPNAS_CONTEXT_SEED, &seed);
  if (spec.channels != 1 && spec.channels != 3) {
    cli_error("the space takes %lld channels; this command feeds images of 1 or 3", (long long)spec.channels);
    return EXIT_USAGE;
  }
  spec.seed = (uint64_t)seed;
  spec.test_fraction = p->o->test_fraction >= 0 ? p->o->test_fraction : 0.2;
  spec.skip_bad = p->o->skip_bad;
  spec.quiet = p->o->quiet;
  for (int32_t i = 0; i < p->nd; i++) {
    cli_domain *d = &p->doms[i];
    mpnas_status st;
    if ((rc = cli_data_load(d, &spec, 1)) != 0) return rc;
    say(p, "domain %s: %d classes, %lld training and %lld test images at %lldx%lldx%lld from %s", d->name,
        (int)d->classes, (long long)d->train.n, (long long)d->test.n, (long long)spec.height,
        (long long)spec.width, (long long)spec.channels, d->path);
    if (d->skipped) say(p, " (%lld bad file%s skipped)", (long long)d->skipped, d->skipped == 1 ? "" : "s");
    say(p, "\n");
    if ((st = mpnas_supernet_add_domain(p->sn, d->name, d->classes, NULL)) != MPNAS_OK ||
        (st = mpnas_supernet_set_data(p->sn, i, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, d->train.x, d->train.y,
                                      d->train.n)) != MPNAS_OK) {
      char what[96];
      snprintf(what, sizeof what, "domain %s", d->name);
      return cli_library_error(p->ctx, st, what);
    }
  }
  return 0;
}

static int setup(pipeline *p) {
  cli_options *o = p->o;
  mpnas_status st;
  int rc;
  if ((rc = cli_params_check(o)) != 0 || (rc = domain_names(p)) != 0) return rc;
  if ((st = mpnas_context_create(&p->ctx)) != MPNAS_OK) return EXIT_LIBRARY;
  if ((rc = cli_params_apply(o, PARAMS_CONTEXT, p->ctx, p->ctx)) != 0) return rc;
  if ((st = mpnas_space_create(p->ctx, cli_preset_code(o->preset), &p->space)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "the search space");
  if ((rc = cli_params_apply(o, PARAMS_SPACE, p->space, p->ctx)) != 0) return rc;
  if ((st = mpnas_supernet_create(p->ctx, p->space, &p->sn)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "the supernet");
  if ((rc = cli_params_apply(o, PARAMS_SEARCH, p->sn, p->ctx)) != 0 || (rc = check_train_settings(p)) != 0)
    return rc;
  return load_domains(p);
}

/* ---- Metrics files ---------------------------------------------------------------- */

/* RUN/NAME.jsonl of this phase (appended to when resuming) and --metrics FILE. */
static int open_metrics(pipeline *p, const char *phase, int append) {
  char file[4096];
  snprintf(file, sizeof file, "%s/%s.jsonl", p->run, phase);
  if (p->progress.metrics[0]) fclose(p->progress.metrics[0]);
  p->progress.metrics[0] = fopen(file, append ? "a" : "w");
  if (!p->progress.metrics[0]) {
    cli_error("cannot write %s: %s", file, strerror(errno));
    return EXIT_DATA;
  }
  const char *extra = p->o->metrics;
  if (extra && !p->progress.metrics[1]) {
    p->progress.metrics[1] = strcmp(extra, "-") == 0 ? stdout : fopen(extra, p->o->resume ? "a" : "w");
    if (!p->progress.metrics[1]) {
      cli_error("cannot write %s: %s", extra, strerror(errno));
      return EXIT_DATA;
    }
  }
  p->progress.phase = phase;
  p->progress.start = cli_now();
  return 0;
}

/* The run stopped at a signal: a checkpoint, and how to go on. */
static int interrupted(pipeline *p, mpnas_status st_save, const char *phase, const char *file,
                       int64_t step, int64_t total) {
  if (st_save != MPNAS_OK) return cli_library_error(p->ctx, st_save, "saving the checkpoint");
  cli_error("interrupted at %s step %lld of %lld; checkpoint saved to %s\n"
            "resume with: %s",
            phase, (long long)step, (long long)total, file, p->resume_hint);
  return EXIT_INTERRUPTED + cli_signal_caught();
}

/* ---- Search ----------------------------------------------------------------------- */

static int search(pipeline *p) {
  char ckpt[4096];
  int64_t step, steps;
  mpnas_status st;
  int rc;
  run_file(p, "search.ckpt", ckpt, sizeof ckpt);
  if ((p->o->resume || p->train_only) && file_exists(ckpt) &&
      (st = mpnas_supernet_load_checkpoint(p->sn, ckpt)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "resuming the search");
  mpnas_supernet_get_int(p->sn, MPNAS_SEARCH_STEP, &step);
  mpnas_supernet_get_int(p->sn, MPNAS_SEARCH_STEPS, &steps);
  if (p->train_only && step < steps) {
    cli_error("the search of %s is not finished (step %lld of %lld): "
              "mpnas search --resume --out %s finishes it, and trains",
              p->run, (long long)step, (long long)steps, p->run);
    return EXIT_USAGE;
  }
  if (step < steps) {
    if ((rc = open_metrics(p, "search", step > 0)) != 0) return rc;
    say(p, "search: %lld steps%s, %d domains\n", (long long)steps, step ? " (resumed)" : "", (int)p->nd);
    st = mpnas_supernet_search(p->sn, 0, cli_search_progress, &p->progress, 1);
    mpnas_supernet_get_int(p->sn, MPNAS_SEARCH_STEP, &step);
    if (st == MPNAS_E_CANCELLED && cli_signal_caught())
      return interrupted(p, mpnas_supernet_save_checkpoint(p->sn, ckpt), "search", ckpt, step, steps);
    if (st != MPNAS_OK) return cli_library_error(p->ctx, st, "search");
    if ((st = mpnas_supernet_save_checkpoint(p->sn, ckpt)) != MPNAS_OK)
      return cli_library_error(p->ctx, st, "saving the search");
    say(p, "search: done in %.1f s\n", cli_now() - p->progress.start);
  }
  return 0;
}

/* ---- Training --------------------------------------------------------------------- */

static int train(pipeline *p) {
  char ckpt[4096];
  int64_t step, steps;
  mpnas_status st;
  int rc;
  if ((st = mpnas_model_create_from_supernet(p->sn, &p->model)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "deriving the model");
  mpnas_supernet_free(p->sn); /* the model has its own copy of the data */
  p->sn = NULL;
  if ((rc = cli_params_apply(p->o, PARAMS_TRAIN, p->model, p->ctx)) != 0 ||
      (rc = cli_params_apply(p->o, PARAMS_DOMAIN, p->model, p->ctx)) != 0)
    return rc;
  if (p->record && (rc = cli_run_write(p->record, p->run, 1)) != 0) return rc; /* for --resume */
  run_file(p, "train.ckpt", ckpt, sizeof ckpt);
  if (p->o->resume && file_exists(ckpt) && (st = mpnas_model_load_checkpoint(p->model, ckpt)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "resuming the training");
  mpnas_model_get_int(p->model, MPNAS_TRAIN_STEP, &step);
  mpnas_model_get_int(p->model, MPNAS_TRAIN_STEPS, &steps);
  if ((rc = open_metrics(p, "train", step > 0)) != 0) return rc;
  say(p, "training the multi-path model: %lld steps%s\n", (long long)steps, step ? " (resumed)" : "");
  st = mpnas_model_train(p->model, 0, cli_train_progress, &p->progress, 1);
  mpnas_model_get_int(p->model, MPNAS_TRAIN_STEP, &step);
  if (st == MPNAS_E_CANCELLED && cli_signal_caught())
    return interrupted(p, mpnas_model_save_checkpoint(p->model, ckpt), "training", ckpt, step, steps);
  if (st != MPNAS_OK) return cli_library_error(p->ctx, st, "training");
  say(p, "training: done in %.1f s\n", cli_now() - p->progress.start);
  return 0;
}

/* ---- Results ---------------------------------------------------------------------- */

static void print_paths(const pipeline *p) {
  const mpnas_space *space;
  int64_t layers;
  mpnas_model_space(p->model, &space);
  mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
  int32_t path[4096];
  printf("\n%-16s %s\n", "domain", "path");
  for (int32_t d = 0; d < p->nd && layers <= 4096; d++) {
    char text[4096];
    mpnas_model_path(p->model, d, path, (size_t)layers);
    mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL);
    printf("%-16s %s\n", p->doms[d].name, text);
  }
}

/* Test top-1 per domain: a table on stdout, a metrics line each. */
static int evaluate(pipeline *p) {
  int quiet = p->o->quiet;
  if (!quiet) {
    print_paths(p);
    printf("\n%-16s %7s %7s %6s %8s %8s %7s %7s\n", "domain", "classes", "train", "test", "MMAC",
           "kparams", "top-1", "loss");
  }
  for (int32_t d = 0; d < p->nd; d++) {
    const cli_domain *dom = &p->doms[d];
    double top1 = 0.0 / 0.0, loss = 0.0 / 0.0, macs, params;
    mpnas_status st;
    if (dom->test.n > 0 &&
        (st = mpnas_model_evaluate(p->model, d, MPNAS_DTYPE_U8, dom->test.x, dom->test.y, dom->test.n,
                                   &top1, &loss)) != MPNAS_OK)
      return cli_library_error(p->ctx, st, "evaluating");
    mpnas_model_domain_stat(p->model, d, MPNAS_STAT_MACS, &macs);
    mpnas_model_domain_stat(p->model, d, MPNAS_STAT_PARAMS, &params);
    cli_progress_test(&p->progress, dom->name, dom->test.n, top1, loss);
    if (quiet) continue;
    printf("%-16s %7d %7lld %6lld %8.2f %8.1f", dom->name, (int)dom->classes, (long long)dom->train.n,
           (long long)dom->test.n, macs / 1e6, params / 1e3);
    if (dom->test.n > 0) printf(" %6.1f%% %7.3f\n", 100.0 * top1, loss);
    else printf(" %7s %7s\n", "-", "-");
  }
  return 0;
}

/* The model, its class names and figures into the run; the training checkpoint goes. */
static int save(pipeline *p) {
  char file[4096], ckpt[4096], prefix[4096];
  mpnas_status st;
  int rc;
  run_file(p, "model.mpnas", file, sizeof file);
  if ((st = mpnas_model_clear_data(p->model)) != MPNAS_OK || (st = mpnas_model_save(p->model, file)) != MPNAS_OK)
    return cli_library_error(p->ctx, st, "saving the model");
  run_file(p, "classes.json", ckpt, sizeof ckpt);
  if ((rc = cli_classes_write(ckpt, p->doms, p->nd)) != 0) return rc;
  snprintf(prefix, sizeof prefix, "%s/", p->run);
  if ((rc = cli_write_figures(p->ctx, p->model, prefix, NULL, 1)) != 0) return rc;
  run_file(p, "train.ckpt", ckpt, sizeof ckpt);
  remove(ckpt);
  int64_t params, nodes;
  mpnas_model_get_int(p->model, MPNAS_MODEL_PARAMS, &params);
  mpnas_model_get_int(p->model, MPNAS_MODEL_NUM_NODES, &nodes);
  if (!p->o->quiet)
    printf("\nmodel: %s (%lld unique parameters, %lld nodes); class names: %s/classes.json; "
           "figures: %sarchitecture.svg, %sjaccard.svg\n",
           file, (long long)params, (long long)nodes, p->run, prefix, prefix);
  return 0;
}

/* --resume of a run that has its model and no training checkpoint: nothing is left to
 * do (a model exists only after a finished search; a stopped training leaves train.ckpt). */
static int complete(const char *run) {
  char model[4096], ckpt[4096];
  snprintf(model, sizeof model, "%s/model.mpnas", run);
  snprintf(ckpt, sizeof ckpt, "%s/train.ckpt", run);
  if (!file_exists(model) || file_exists(ckpt)) return 0;
  cli_error("%s is complete (%s): nothing to resume; mpnas train %s trains its model again", run, model,
            run);
  return 1;
}

static int run_pipeline(cli_options *o, const char *run, int train_only, const char *hint,
                        const cli_options *record) {
  if (o->resume && complete(run)) return EXIT_OK;
  pipeline p;
  memset(&p, 0, sizeof p);
  p.o = o;
  p.record = record;
  p.run = run;
  p.train_only = train_only;
  p.resume_hint = hint;
  p.progress.bar = !o->quiet && isatty(2);
  p.progress.every = o->every;
  p.progress.doms = p.doms;
  /* Caught from before the images are read: a signal while they load stops there (no
   * checkpoint yet: a new search then leaves no run behind, see forget_unstarted). */
  cli_signals_catch();
  int rc = setup(&p);
  p.progress.domains = p.nd;
  if (rc == 0 && cli_signal_caught()) rc = EXIT_INTERRUPTED + cli_signal_caught();
  if (rc > EXIT_INTERRUPTED && rc < EXIT_INTERRUPTED + 64)
    cli_error("interrupted while reading the images (signal %d): nothing saved", rc - EXIT_INTERRUPTED);
  if (rc == 0) {
    rc = search(&p);
    if (rc == 0) rc = train(&p);
  }
  cli_signals_restore();
  if (rc == 0) rc = evaluate(&p);
  if (rc == 0) rc = save(&p);
  for (int k = 0; k < 2; k++)
    if (p.progress.metrics[k] && p.progress.metrics[k] != stdout) fclose(p.progress.metrics[k]);
  mpnas_model_free(p.model);
  mpnas_supernet_free(p.sn);
  mpnas_space_free(p.space);
  mpnas_context_free(p.ctx);
  for (int32_t d = 0; d < p.nd; d++) cli_domain_free(&p.doms[d]);
  return rc;
}

/* The options only the command line gives (display, output) into the run's. */
static void take_display_options(cli_options *run, const cli_options *o) {
  run->quiet = o->quiet;
  run->metrics = o->metrics;
  run->every = o->every;
  run->resume = o->resume;
}

/* Whether a folder has no entries (or cannot be listed: then mkdir's EEXIST stands for
 * a file of that name, which cli_run_write reports). */
static int folder_is_empty(const char *path) {
  DIR *dir = opendir(path);
  if (!dir) return 1;
  const struct dirent *e;
  int empty = 1;
  while (empty && (e = readdir(dir)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
  closedir(dir);
  return empty;
}

/* A new search that failed before its first checkpoint (a typo in a path, a bad image)
 * leaves no run behind, so that the same command can simply be run again. */
static void forget_unstarted(const char *run) {
  char file[4096];
  snprintf(file, sizeof file, "%s/search.ckpt", run);
  if (file_exists(file)) return;
  const char *ours[] = {"run.conf", "search.jsonl"};
  for (int i = 0; i < 2; i++) {
    snprintf(file, sizeof file, "%s/%s", run, ours[i]);
    remove(file);
  }
  rmdir(run); /* only if empty: it may have held files of the user's */
}

int cli_search(cli_options *o) {
  char conf[4096], hint[4200];
  if (!o->out || o->npositional) {
    cli_error(o->out ? "unexpected argument %s (see mpnas search --help)"
                     : "--out RUN is required (the run folder to write)",
              o->npositional ? o->positional[0] : "");
    return EXIT_USAGE;
  }
  snprintf(conf, sizeof conf, "%s/run.conf", o->out);
  snprintf(hint, sizeof hint, "mpnas search --resume --out %s", o->out);
  if (o->resume) {
    if (cli_options_has_recorded(o)) {
      cli_error("--resume continues %s with its recorded settings (%s): give no --domain, --set, "
                "--steps or other settings with it",
                o->out, conf);
      return EXIT_USAGE;
    }
    cli_options run;
    cli_options_init(&run, CMD_SEARCH);
    int rc = cli_run_read(&run, o->out);
    take_display_options(&run, o);
    if (rc == 0) rc = run_pipeline(&run, o->out, 0, hint, NULL);
    cli_options_free(&run);
    return rc;
  }
  if (file_exists(conf)) {
    cli_error("%s already holds a run: continue it with --resume, or choose another --out", o->out);
    return EXIT_USAGE;
  }
  if (o->ndomains == 0) {
    cli_error("no domain: give one --domain NAME=PATH or more");
    return EXIT_USAGE;
  }
  if (mkdir(o->out, 0777) != 0) {
    if (errno != EEXIST) {
      cli_error("cannot create %s: %s", o->out, strerror(errno));
      return EXIT_DATA;
    }
    /* A run writes model.mpnas, search.jsonl, classes.json, ... and removes its files if
     * it fails before its first checkpoint: in a folder of the user's, that would
     * overwrite or delete their files. */
    if (!folder_is_empty(o->out)) {
      cli_error("--out %s: the folder exists and is not empty (and holds no run to "
                "--resume): give a new or empty folder",
                o->out);
      return EXIT_USAGE;
    }
  }
  int rc = cli_run_write(o, o->out, 0);
  if (rc != 0) {
    remove(conf); /* not a run after all */
    rmdir(o->out);
    return rc;
  }
  /* Run from what was recorded, exactly as --resume will. */
  cli_options run;
  cli_options_init(&run, CMD_SEARCH);
  rc = cli_run_read(&run, o->out);
  take_display_options(&run, o);
  if (rc == 0) rc = run_pipeline(&run, o->out, 0, hint, NULL);
  cli_options_free(&run);
  forget_unstarted(o->out);
  return rc;
}

int cli_train(cli_options *o) {
  char hint[4200];
  if (o->npositional != 1) {
    cli_error("mpnas train RUN: one run folder expected (see mpnas train --help)");
    return EXIT_USAGE;
  }
  const char *run_dir = o->positional[0];
  if (o->resume && o->nsets) {
    cli_error("--resume continues the training with its recorded settings: give no --set, "
              "--train-steps or --threads with it");
    return EXIT_USAGE;
  }
  snprintf(hint, sizeof hint, "mpnas train %s --resume", run_dir);
  cli_options run;
  cli_options_init(&run, CMD_SEARCH);
  int rc = cli_run_read(&run, run_dir);
  for (int i = 0; rc == 0 && i < o->nsets; i++) { /* after the recorded ones: they win */
    if (run.nsets == CLI_MAX_SETS) {
      cli_error("at most %d --set options in a run", CLI_MAX_SETS);
      rc = EXIT_USAGE;
    } else {
      run.sets[run.nsets++] = o->sets[i];
    }
  }
  take_display_options(&run, o);
  if (rc == 0) rc = run_pipeline(&run, run_dir, 1, hint, o->nsets ? o : NULL);
  cli_options_free(&run);
  return rc;
}
