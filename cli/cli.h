/* cli.h - the `mpnas` command: declarations shared by its files (docs/CLI.md).
 *
 *   main.c      the subcommands' table, help, dispatch
 *   options.c   the option table and parser; a run's recorded settings (RUN/run.conf)
 *   params.c    every library parameter by name (`--set key=value`), as the Python package (python/mpnas/)
 *   image.c     PNG / JPEG decoding (libpng, libjpeg when found at build time)
 *   data.c      a domain's images from a folder tree or IDX files, resized; splits
 *   classes.c   class names next to a model (classes.json), JSON text helpers
 *   progress.c  progress bar, metrics JSON lines, Ctrl-C
 *   pipeline.c  search and train: the whole pipeline into a run folder
 *   commands.c  eval, predict, info, figures, params
 *   export.c    export: a domain as ONNX, the model as a C array
 *   quantize.c  quantize: the model's int8 form, calibrated on the domains' training images
 *   files.c     the command's own files replaced whole (temporary file, then rename) */
#ifndef MPNAS_CLI_H
#define MPNAS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "mpnas.h"

/* Exit codes (docs/CLI.md, "Exit codes"). */
enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,       /* bad command line, unknown or refused setting */
  EXIT_DATA = 2,        /* input that cannot be used: images, IDX, folders, model files */
  EXIT_LIBRARY = 3,     /* any other failure of a libmpnas call */
  EXIT_INTERRUPTED = 128 /* + the signal number (SIGINT: 130), after a checkpoint */
};

#define CLI_MAX_DOMAINS 64
#define CLI_MAX_SETS 256
#define CLI_MAX_FILES 4096 /* predict: image files on one command line */
#define CLI_NAME_CAP 64    /* domain names: 1..63 characters (the library's limit) */

/* A file being replaced whole (files.c): cli_file_open gives a stream onto a temporary
 * file beside path (holding path's current content first when keep is 1; NULL with a
 * message on failure); cli_file_commit flushes it to disk and renames it over path (0,
 * or EXIT_DATA with a message, path unchanged); cli_file_abandon drops it. */
typedef struct cli_file {
  const char *path;
  FILE *file;
  char tmp[4200];
} cli_file;
FILE *cli_file_open(cli_file *cf, const char *path, int keep);
int cli_file_commit(cli_file *cf);
void cli_file_abandon(cli_file *cf);

/* Print "mpnas: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit code of a failed library call; prints "mpnas: WHAT: <last error>". */
int cli_library_error(mpnas_context *ctx, mpnas_status st, const char *what);

/* ---- Options (options.c) ------------------------------------------------------------ */
enum { /* subcommands, as bits of an option's `commands` mask */
  CMD_SEARCH = 1,
  CMD_TRAIN = 2,
  CMD_EVAL = 4,
  CMD_PREDICT = 8,
  CMD_INFO = 16,
  CMD_FIGURES = 32,
  CMD_PARAMS = 64,
  CMD_EXPORT = 128,
  CMD_QUANTIZE = 256
};

typedef struct cli_options {
  unsigned command;                   /* one CMD_* */
  const char *positional[CLI_MAX_FILES];
  int npositional;
  const char *domains[CLI_MAX_DOMAINS]; /* --domain values as given: NAME=PATH or NAME */
  int ndomains;
  const char *sets[CLI_MAX_SETS];     /* --set values "key=value", in order */
  int nsets;
  const char *preset;                 /* --preset (default "32px") */
  double test_fraction;               /* --test-fraction (default 0.2) */
  int skip_bad, resume, quiet, help, names;
  int int8, int8_only;                /* eval/predict --int8; quantize --int8-only */
  int64_t calibration;                /* quantize --calibration N (0: the library's 256) */
  const char *out, *metrics, *classes, *title;
  const char *onnx, *c_array;         /* export: --onnx FILE, --c-array FILE */
  int64_t every, top;
  char *owned[CLI_MAX_SETS];          /* strings made by the parser (--steps N as a --set) */
  int nowned;
  char *recorded;                     /* the text of a run.conf read in (values point in) */
} cli_options;

/* Parse argv[first..argc-1] for `command` into o (o zeroed and defaulted by the caller
 * with cli_options_init). Returns EXIT_OK or EXIT_USAGE (message printed). */
void cli_options_init(cli_options *o, unsigned command);
int cli_options_parse(cli_options *o, int argc, char **argv, int first);
/* Print the options `command` accepts, one a line with its help. */
void cli_options_help(unsigned command);
/* True if o has an option that belongs to a run's recorded settings. */
int cli_options_has_recorded(const cli_options *o);
/* RUN/run.conf: write o's recorded options (domain paths made absolute); append those of
 * a later `mpnas train RUN`; read them back into o (before the command line's). */
int cli_run_write(const cli_options *o, const char *run, int append);
int cli_run_read(cli_options *o, const char *run);
void cli_options_free(cli_options *o);
/* The value of the first `--domain NAME...`'s NAME into name (cap CLI_NAME_CAP) and its
 * PATH (after '=', or NULL). Returns 0, or EXIT_USAGE with a message. */
int cli_domain_arg(const char *arg, char *name, const char **path);

/* ---- Parameters (params.c) ---------------------------------------------------------- */
enum { PARAMS_CONTEXT, PARAMS_SPACE, PARAMS_SEARCH, PARAMS_TRAIN, PARAMS_DOMAIN };
/* Check that every --set names a writable parameter and has a value of its type. */
int cli_params_check(const cli_options *o);
/* The table a --set belongs to (PARAMS_*), or -1 if unknown. */
int cli_params_table_of(const char *set);
/* Whether a --set names the parameter `name` (e.g. "seed"), whatever key form it uses. */
int cli_params_is(const char *set, const char *name);
/* Apply every --set of one table, in order, to its handle (mpnas_context,
 * mpnas_space, mpnas_supernet or mpnas_model; the model for PARAMS_DOMAIN too). A value
 * the library refuses: its message, EXIT_USAGE. */
int cli_params_apply(const cli_options *o, int table, void *handle, mpnas_context *ctx);
/* `mpnas params`: every parameter with its type, default and values. */
int cli_params_list(const char *preset, int names_only);
/* The preset's code for a name ("32px", ...), or -1. */
int cli_preset_code(const char *name);

/* ---- Images (image.c) --------------------------------------------------------------- */
/* The formats this build decodes, e.g. "PNG JPEG" ("" without libpng and libjpeg), and
 * those it lacks. */
const char *cli_image_formats(void);
const char *cli_image_missing_formats(void);
/* Decode an image file to 8-bit pixels, h x w x c with c = 1 (grey), 3 (RGB) or 4 (RGBA).
 * Returns 0 (*pixels malloc'ed), or 1 with a message in err. */
int cli_image_decode(const char *path, uint8_t **pixels, int64_t *h, int64_t *w, int64_t *c,
                     char *err, size_t cap);

/* ---- Data (data.c) ------------------------------------------------------------------ */
typedef struct cli_images {
  uint8_t *x; /* n x H x W x C (the space's input) */
  int32_t *y;
  int64_t n;
} cli_images;

typedef struct cli_domain {
  char name[CLI_NAME_CAP];
  const char *path;
  int32_t classes;
  char **class_names; /* classes entries (folder names, or "0", "1", ... for IDX) */
  cli_images train, test;
  int64_t skipped;    /* bad files skipped (--skip-bad) */
} cli_domain;

/* What the loaders need: the input size, the split and the bad-file policy. */
typedef struct cli_data_spec {
  int64_t height, width, channels;
  double test_fraction;
  uint64_t seed;
  int skip_bad, quiet;
  char **known_classes; /* eval: the model's class names (labels by name), or NULL */
  int32_t known_count;
} cli_data_spec;

/* Load a domain from dom->path: its train and test splits (train_too = 0: the test
 * split only). Returns 0 or EXIT_DATA (message printed). */
int cli_data_load(cli_domain *dom, const cli_data_spec *spec, int train_too);
void cli_domain_free(cli_domain *dom);
/* The files of a folder as paths "dir/name": its regular files, hidden ones (".name")
 * left out, sorted by name - the rule for a class folder. *paths and each path are
 * malloc'ed. Returns the count, or -1 with errno set. */
int64_t cli_folder_files(const char *dir, char ***paths);
/* One image file decoded and resized to the spec's input (dst: H x W x C bytes). */
int cli_data_load_file(const char *path, const cli_data_spec *spec, uint8_t *dst, char *err,
                       size_t cap);

/* ---- Class names and JSON (classes.c) ----------------------------------------------- */
/* Write s as a JSON string (quoted, escaped). */
void cli_json_string(FILE *f, const char *s);
/* Write a number, or null when it is not finite. */
void cli_json_number(FILE *f, double v);
/* RUN/classes.json: {"domain": ["class", ...], ...}. */
int cli_classes_write(const char *file, const cli_domain *doms, int n);
/* The class names of one domain from such a file: *names malloc'ed (*count entries), or
 * *names NULL when the file or the domain is not there. Returns 0, or EXIT_DATA for a
 * malformed file. */
int cli_classes_read(const char *file, const char *domain, char ***names, int32_t *count);
void cli_names_free(char **names, int32_t count);

/* ---- Progress (progress.c) ---------------------------------------------------------- */
typedef struct cli_progress {
  const char *phase;   /* "search" or "train" */
  double start;
  int bar;             /* draw the bar (stderr is a terminal and not --quiet) */
  int64_t every;       /* metrics every N steps */
  int32_t domains;
  const cli_domain *doms;  /* their names */
  FILE *metrics[2];    /* JSON lines go to each non-NULL one */
} cli_progress;

double cli_now(void);
/* Catch SIGINT and SIGTERM: the next progress call stops the run (a second signal
 * kills at once). cli_signal_caught: the signal caught, 0 if none. */
void cli_signals_catch(void);
void cli_signals_restore(void);
int cli_signal_caught(void);
/* The library's progress callbacks (user: a cli_progress). */
int32_t cli_search_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total);
int32_t cli_train_progress(void *user, mpnas_model *model, int64_t step, int64_t total);
/* A test result as a metrics line. */
void cli_progress_test(const cli_progress *p, const char *domain, int64_t images, double top1,
                       double loss);

/* ---- Commands ----------------------------------------------------------------------- */
int cli_search(cli_options *o);
int cli_train(cli_options *o);
int cli_eval(cli_options *o);
int cli_predict(cli_options *o);
int cli_info(cli_options *o);
int cli_figures(cli_options *o);
int cli_params(cli_options *o);
int cli_export(cli_options *o);
int cli_quantize(cli_options *o);

/* A model by file, or by run folder (RUN/model.mpnas); file receives the model file's
 * path and dir its folder. Returns 0 or the exit code (message printed). */
int cli_model_open(mpnas_context *ctx, const char *arg, mpnas_model **model, char *file,
                   char *dir, size_t cap);
/* The index of the model's domain `name`, or -1 with a message listing the domains. */
int32_t cli_model_domain(const mpnas_model *model, const char *name);
/* The settings of the run in `dir` (its run.conf, if any: domains, seed, test fraction),
 * then o's --set after them, into run. Returns 0 or the exit code (message printed). */
int cli_run_settings(const cli_options *o, const char *dir, cli_options *run);
/* The model file and its folder for a MODEL argument (a file, or a run folder). */
void cli_model_location(const char *arg, char *file, char *dir, size_t cap);
/* A context with the context settings (--threads, --seed, --set context.*) of o. */
int cli_open_context(const cli_options *o, mpnas_context **ctx);
/* The input size the model's space takes, into spec. */
void cli_input_spec(const mpnas_model *model, cli_data_spec *spec);
/* A domain's class names from --classes FILE or classes.json beside the model (NULL when
 * there are none); a list not matching the model's class count is EXIT_DATA. */
int cli_class_names(const cli_options *o, const mpnas_model *model, const char *dir, int32_t domain,
                    const char *name, char ***names);

/* Write the two SVG figures of a model as PREFIX-architecture.svg, PREFIX-jaccard.svg. */
int cli_write_figures(mpnas_context *ctx, const mpnas_model *model, const char *prefix,
                      const char *title, int quiet);

#endif
