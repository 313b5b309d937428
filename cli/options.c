/* options.c - the command line: one table of every option (which subcommands take it,
 * its help, whether it is part of a run's recorded settings), one parser for the command
 * line and for RUN/run.conf, which holds a search's recorded options one a line so that
 * `mpnas train RUN` and `--resume` rebuild the same supernet from the same data. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define ALL \
  (CMD_SEARCH | CMD_TRAIN | CMD_EVAL | CMD_PREDICT | CMD_INFO | CMD_FIGURES | CMD_PARAMS | CMD_EXPORT | \
   CMD_QUANTIZE)

enum {
  RECORDED = 1 /* part of a run's settings: written to run.conf by search (and train) */
};

typedef struct option_spec {
  const char *name;  /* without "--" */
  const char *value; /* the value's name in the help, NULL for a flag */
  unsigned commands; /* CMD_* bits of the subcommands that take it */
  unsigned flags;
  const char *help;
} option_spec;

/* Options with the same name for different subcommands have one entry each. */
static const option_spec OPTIONS[] = {
    {"domain", "NAME=PATH", CMD_SEARCH, RECORDED,
     "a domain: NAME (1..63 printable characters, no '=') and its images (a folder of "
     "class folders, with or without train/ and test/, or an IDX folder); repeat per domain"},
    {"domain", "NAME=PATH", CMD_EVAL, 0,
     "evaluate domain NAME on the test split of PATH (default: the run's domains)"},
    {"domain", "NAME=PATH", CMD_QUANTIZE, 0,
     "calibrate domain NAME on the training split of PATH (default: the run's domains)"},
    {"domain", "NAME", CMD_PREDICT, 0, "the model's domain to run (required)"},
    {"domain", "NAME", CMD_EXPORT, 0, "the model's domain to export as ONNX (with --onnx)"},
    {"onnx", "FILE", CMD_EXPORT, 0,
     "write the --domain's path as an ONNX model (docs/EXPORT.md)"},
    {"c-array", "FILE", CMD_EXPORT, 0,
     "write the model's bytes as a C array in a header, for mpnas_model_load_buffer"},
    {"out", "RUN", CMD_SEARCH, 0, "the run folder to create (or, with --resume, to continue)"},
    {"out", "FILE", CMD_QUANTIZE, 0, "the quantised model file to write (-o FILE; required)"},
    {"calibration", "N", CMD_QUANTIZE, 0,
     "training images per domain to calibrate the int8 ranges on (default 256)"},
    {"int8-only", NULL, CMD_QUANTIZE, 0,
     "write the int8 form alone, no float weights: a deployment file about 4x smaller that "
     "only predicts (docs/QUANTIZATION.md)"},
    {"int8", NULL, CMD_EVAL | CMD_PREDICT, 0,
     "run the model's int8 form (a model written by mpnas quantize)"},
    {"out", "PREFIX", CMD_FIGURES, 0,
     "write PREFIX-architecture.svg and PREFIX-jaccard.svg (default: next to the model)"},
    {"steps", "N", CMD_SEARCH, RECORDED, "search steps (the same as --set search.steps=N)"},
    {"train-steps", "N", CMD_SEARCH | CMD_TRAIN, RECORDED,
     "training steps of the model (--set train.steps=N)"},
    {"set", "KEY=VALUE", CMD_SEARCH, RECORDED,
     "any parameter by name, e.g. search.cost_beta=-0.2, train.optimizer=adam, "
     "space.input_height=64 (`mpnas params` lists them all)"},
    {"set", "KEY=VALUE", CMD_TRAIN, RECORDED,
     "a training or context parameter by name (train.*, context.*, domain.NAME.hflip)"},
    {"threads", "N", CMD_SEARCH | CMD_TRAIN | CMD_EVAL | CMD_PREDICT | CMD_QUANTIZE, RECORDED,
     "worker threads (--set context.threads=N; 0 = one per processor; default 1)"},
    {"seed", "S", CMD_SEARCH, RECORDED,
     "seed of every random choice, the test split's too (--set context.seed=S; default 0)"},
    {"seed", "S", CMD_EVAL | CMD_QUANTIZE, 0, "the seed of the test split (default: the run's)"},
    {"preset", "NAME", CMD_SEARCH | CMD_PARAMS, RECORDED,
     "the search space: 32px (default), mobilenet_v3, mbv2_9, empty"},
    {"test-fraction", "F", CMD_SEARCH, RECORDED,
     "share of each class held out as the test split of a domain without one "
     "(0..0.9, default 0.2; seeded)"},
    {"test-fraction", "F", CMD_EVAL | CMD_QUANTIZE, 0, "as for search (default: the run's)"},
    {"skip-bad", NULL, CMD_SEARCH | CMD_EVAL | CMD_PREDICT | CMD_QUANTIZE, RECORDED,
     "skip image files that cannot be read (and count them) instead of stopping"},
    {"resume", NULL, CMD_SEARCH | CMD_TRAIN, 0,
     "continue an interrupted run from its checkpoints with its recorded settings"},
    {"metrics", "FILE", CMD_SEARCH | CMD_TRAIN, 0,
     "also write the metrics JSON lines to FILE (- for stdout)"},
    {"every", "N", CMD_SEARCH | CMD_TRAIN, 0, "a metrics line per domain every N steps (default 10)"},
    {"classes", "FILE", CMD_EVAL | CMD_PREDICT | CMD_INFO | CMD_QUANTIZE, 0,
     "class names (default: classes.json next to the model)"},
    {"top", "K", CMD_PREDICT, 0, "classes printed per image (default 3; 0 = all)"},
    {"title", "TEXT", CMD_FIGURES, 0, "the figures' title"},
    {"names", NULL, CMD_PARAMS, 0, "only the names, one a line"},
    {"quiet", NULL, ALL, 0, "no progress, no tables: errors and the requested output only"},
    {"help", NULL, ALL, 0, "this help"},
};
#define NUM_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mpnas: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int cli_library_error(mpnas_context *ctx, mpnas_status st, const char *what) {
  const char *msg = mpnas_context_last_error(ctx);
  cli_error("%s: %s", what, msg[0] ? msg : mpnas_status_string(st));
  switch (st) { /* files the library could not use are the user's input, like data */
    case MPNAS_E_IO:
    case MPNAS_E_CORRUPT:
    case MPNAS_E_VERSION:
    case MPNAS_E_INCOMPATIBLE: return EXIT_DATA;
    case MPNAS_E_OUT_OF_RANGE:
    case MPNAS_E_UNKNOWN_PARAMETER: return EXIT_USAGE;
    default: return EXIT_LIBRARY;
  }
}

void cli_options_init(cli_options *o, unsigned command) {
  memset(o, 0, sizeof *o);
  o->command = command;
  o->preset = "32px";
  o->test_fraction = -1; /* not given: 0.2, or the run's */
  o->every = 10;
  o->top = 3;
}

static const option_spec *find_option(const char *name, unsigned command) {
  for (size_t i = 0; i < NUM_OPTIONS; i++)
    if (strcmp(OPTIONS[i].name, name) == 0 && (OPTIONS[i].commands & command)) return &OPTIONS[i];
  return NULL;
}

/* A whole-string integer / real, else a usage message. */
static int parse_int(const char *opt, const char *s, int64_t lo, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *end || v < lo) {
    cli_error("--%s %s: an integer >= %lld expected", opt, s, (long long)lo);
    return EXIT_USAGE;
  }
  *out = v;
  return 0;
}

static int parse_fraction(const char *opt, const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v >= 0 && v <= 0.9)) {
    cli_error("--%s %s: a number from 0 to 0.9 expected", opt, s);
    return EXIT_USAGE;
  }
  *out = v;
  return 0;
}

/* A shorthand (--steps N) as the --set it stands for; the string is owned by o. */
static int add_set(cli_options *o, const char *key, const char *value) {
  if (o->nsets == CLI_MAX_SETS) {
    cli_error("at most %d --set options", CLI_MAX_SETS);
    return EXIT_USAGE;
  }
  size_t len = strlen(key) + strlen(value) + 2;
  char *s = malloc(len);
  if (!s) {
    cli_error("out of memory");
    return EXIT_LIBRARY;
  }
  snprintf(s, len, "%s=%s", key, value);
  o->owned[o->nowned++] = s;
  o->sets[o->nsets++] = s;
  return 0;
}

/* One option with its value (NULL for a flag). */
static int apply_option(cli_options *o, const option_spec *spec, const char *v) {
  const char *n = spec->name;
  int64_t i64;
  if (strcmp(n, "domain") == 0) {
    if (o->ndomains == CLI_MAX_DOMAINS) {
      cli_error("at most %d domains", CLI_MAX_DOMAINS);
      return EXIT_USAGE;
    }
    o->domains[o->ndomains++] = v;
    return 0;
  }
  if (strcmp(n, "set") == 0) {
    if (o->nsets == CLI_MAX_SETS) {
      cli_error("at most %d --set options", CLI_MAX_SETS);
      return EXIT_USAGE;
    }
    o->sets[o->nsets++] = v;
    return 0;
  }
  if (strcmp(n, "steps") == 0) return add_set(o, "search.steps", v);
  if (strcmp(n, "train-steps") == 0) return add_set(o, "train.steps", v);
  if (strcmp(n, "threads") == 0) return add_set(o, "context.threads", v);
  if (strcmp(n, "seed") == 0) return add_set(o, "context.seed", v);
  if (strcmp(n, "preset") == 0) {
    if (cli_preset_code(v) < 0) {
      cli_error("--preset %s: one of 32px, mobilenet_v3, mbv2_9, empty expected", v);
      return EXIT_USAGE;
    }
    o->preset = v;
    return 0;
  }
  if (strcmp(n, "test-fraction") == 0) return parse_fraction(n, v, &o->test_fraction);
  if (strcmp(n, "every") == 0) {
    if (parse_int(n, v, 1, &i64)) return EXIT_USAGE;
    o->every = i64;
    return 0;
  }
  if (strcmp(n, "top") == 0) return parse_int(n, v, 0, &o->top);
  if (strcmp(n, "calibration") == 0) return parse_int(n, v, 0, &o->calibration);
  if (strcmp(n, "out") == 0) o->out = v;
  else if (strcmp(n, "metrics") == 0) o->metrics = v;
  else if (strcmp(n, "classes") == 0) o->classes = v;
  else if (strcmp(n, "title") == 0) o->title = v;
  else if (strcmp(n, "onnx") == 0) o->onnx = v;
  else if (strcmp(n, "c-array") == 0) o->c_array = v;
  else if (strcmp(n, "skip-bad") == 0) o->skip_bad = 1;
  else if (strcmp(n, "resume") == 0) o->resume = 1;
  else if (strcmp(n, "quiet") == 0) o->quiet = 1;
  else if (strcmp(n, "names") == 0) o->names = 1;
  else if (strcmp(n, "int8") == 0) o->int8 = 1;
  else if (strcmp(n, "int8-only") == 0) o->int8_only = 1;
  else if (strcmp(n, "help") == 0) o->help = 1;
  return 0;
}

/* Every --set must name a parameter this subcommand may change: `mpnas train` trains
 * the paths a search found, so it cannot change what shaped them. (The other commands
 * have no --set; their --threads and --seed are context settings.) */
static int check_set_tables(const cli_options *o) {
  for (int i = 0; o->command == CMD_TRAIN && i < o->nsets; i++) {
    int t = cli_params_table_of(o->sets[i]);
    if (t == PARAMS_SPACE || t == PARAMS_SEARCH) {
      cli_error("--set %s: a setting of the search, which mpnas train cannot change "
                "(a new mpnas search can)",
                o->sets[i]);
      return EXIT_USAGE;
    }
    if (t == PARAMS_CONTEXT && cli_params_is(o->sets[i], "seed")) {
      cli_error("--set %s: the seed also chose the search's test split, which mpnas train "
                "keeps (another seed would move searched images into the test split; a new "
                "mpnas search can use it)",
                o->sets[i]);
      return EXIT_USAGE;
    }
  }
  return cli_params_check(o);
}

int cli_options_parse(cli_options *o, int argc, char **argv, int first) {
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0) a = "--help";
    if (strcmp(a, "-o") == 0) a = "--out";
    if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
      if (o->npositional == CLI_MAX_FILES) {
        cli_error("at most %d file arguments", CLI_MAX_FILES);
        return EXIT_USAGE;
      }
      o->positional[o->npositional++] = a;
      continue;
    }
    /* --name VALUE or --name=VALUE */
    char name[32];
    const char *eq = strchr(a + 2, '='), *value = NULL;
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, a + 2, len);
    name[len] = 0;
    const option_spec *spec = find_option(name, o->command);
    if (!spec) {
      cli_error("unknown option %s (see --help)", a);
      return EXIT_USAGE;
    }
    if (spec->value) {
      if (eq) value = eq + 1;
      else if (i + 1 < argc) value = argv[++i];
      else {
        cli_error("--%s needs a value: --%s %s", name, name, spec->value);
        return EXIT_USAGE;
      }
    } else if (eq) {
      cli_error("--%s takes no value", name);
      return EXIT_USAGE;
    }
    int rc = apply_option(o, spec, value);
    if (rc) return rc;
  }
  return o->help ? 0 : check_set_tables(o);
}

/* Text in lines of at most 80 columns, the first after `column` characters already
 * printed, the others indented to it. */
static void print_wrapped(const char *text, int column) {
  int at = column;
  while (*text) {
    size_t word = strcspn(text, " ");
    if (at > column && at + 1 + (int)word > 80) {
      printf("\n%*s", column, "");
      at = column;
    } else if (at > column) {
      putchar(' ');
      at++;
    }
    printf("%.*s", (int)word, text);
    at += (int)word;
    text += word;
    while (*text == ' ') text++;
  }
  putchar('\n');
}

void cli_options_help(unsigned command) {
  printf("options:\n");
  for (size_t i = 0; i < NUM_OPTIONS; i++) {
    const option_spec *s = &OPTIONS[i];
    if (!(s->commands & command)) continue;
    char head[64];
    snprintf(head, sizeof head, "--%s%s%s", s->name, s->value ? " " : "", s->value ? s->value : "");
    printf("  %-22s ", head);
    print_wrapped(s->help, 25);
  }
}

int cli_options_has_recorded(const cli_options *o) {
  return o->ndomains > 0 || o->nsets > 0 || o->skip_bad || o->test_fraction >= 0 ||
         strcmp(o->preset, "32px") != 0;
}

/* ---- run.conf ---------------------------------------------------------------------------
 * One option a line, "name value" or "name" for a flag, the search's first then those of
 * later `mpnas train` calls; read back in that order, so a later line wins. */

#define RUN_CONF "run.conf"

static int put_line(FILE *f, const char *name, const char *value) {
  if (value && strpbrk(value, "\n\r")) {
    cli_error("--%s %s: a value with a line break cannot be recorded in %s", name, value, RUN_CONF);
    return EXIT_USAGE;
  }
  fprintf(f, "%s%s%s\n", name, value ? " " : "", value ? value : "");
  return 0;
}

/* A domain's line, its path made absolute (a run is used from any folder later). */
static int put_domain(FILE *f, const char *arg) {
  char name[CLI_NAME_CAP], abs[PATH_MAX], line[PATH_MAX + CLI_NAME_CAP + 2];
  const char *path;
  if (cli_domain_arg(arg, name, &path)) return EXIT_USAGE;
  if (!path) {
    cli_error("--domain %s: NAME=PATH expected", arg);
    return EXIT_USAGE;
  }
  if (!realpath(path, abs)) {
    cli_error("--domain %s: %s", arg, strerror(errno));
    return EXIT_DATA;
  }
  snprintf(line, sizeof line, "%s=%s", name, abs);
  return put_line(f, "domain", line);
}

int cli_run_write(const cli_options *o, const char *run, int append) {
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/%s", run, RUN_CONF);
  cli_file cf; /* replaced whole: a run whose run.conf is cut short would not resume */
  FILE *f = cli_file_open(&cf, file, append);
  if (!f) return EXIT_DATA;
  int rc = 0;
  if (!append) {
    fprintf(f, "# mpnas run settings: the options of `mpnas search`, then those of later\n"
               "# `mpnas train` calls, one a line (read back by mpnas train and --resume)\n");
    rc = put_line(f, "preset", o->preset);
    for (int i = 0; !rc && i < o->ndomains; i++) rc = put_domain(f, o->domains[i]);
    char fraction[32]; /* the shortest text that reads back as the same number */
    double tf = o->test_fraction >= 0 ? o->test_fraction : 0.2;
    snprintf(fraction, sizeof fraction, "%.15g", tf);
    if (strtod(fraction, NULL) != tf) snprintf(fraction, sizeof fraction, "%.17g", tf);
    if (!rc) rc = put_line(f, "test-fraction", fraction);
    if (!rc && o->skip_bad) rc = put_line(f, "skip-bad", NULL);
  }
  for (int i = 0; !rc && i < o->nsets; i++) rc = put_line(f, "set", o->sets[i]);
  if (rc != 0) {
    cli_file_abandon(&cf);
    return rc;
  }
  return cli_file_commit(&cf);
}

int cli_run_read(cli_options *o, const char *run) {
  char file[PATH_MAX];
  snprintf(file, sizeof file, "%s/%s", run, RUN_CONF);
  FILE *f = fopen(file, "rb");
  if (!f) {
    cli_error("%s is not a run folder (no %s: %s)", run, RUN_CONF, strerror(errno));
    return EXIT_DATA;
  }
  /* The whole file in one buffer kept by o: the options' values point into it. */
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  o->recorded = size >= 0 ? malloc((size_t)size + 1) : NULL;
  if (!o->recorded || fread(o->recorded, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    cli_error("cannot read %s", file);
    return EXIT_DATA;
  }
  fclose(f);
  o->recorded[size] = 0;
  unsigned command = o->command;
  o->command = CMD_SEARCH; /* the recorded options are a search's */
  int rc = 0, line = 0;
  for (char *s = o->recorded, *next; !rc && s && *s; s = next) {
    line++;
    next = strchr(s, '\n');
    if (next) *next++ = 0;
    if (s[0] == '#' || s[0] == 0) continue;
    char *value = strchr(s, ' ');
    if (value) *value++ = 0;
    const option_spec *spec = find_option(s, CMD_SEARCH);
    if (!spec || !(spec->flags & RECORDED) || !spec->value != !value) {
      cli_error("%s, line %d: not a recorded option: %s", file, line, s);
      rc = EXIT_DATA;
    } else {
      rc = apply_option(o, spec, value);
    }
  }
  o->command = command;
  return rc;
}

void cli_options_free(cli_options *o) {
  for (int i = 0; i < o->nowned; i++) free(o->owned[i]);
  free(o->recorded);
  o->nowned = 0;
  o->recorded = NULL;
}

int cli_domain_arg(const char *arg, char *name, const char **path) {
  const char *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  if (len == 0 || len >= CLI_NAME_CAP) {
    cli_error("--domain %s: a name of 1..%d characters expected", arg, CLI_NAME_CAP - 1);
    return EXIT_USAGE;
  }
  for (size_t i = 0; i < len; i++)
    if (arg[i] < 0x20 || arg[i] > 0x7e) { /* the library's rule, refused here as a usage error */
      cli_error("--domain %s: a domain name is printable ASCII", arg);
      return EXIT_USAGE;
    }
  memcpy(name, arg, len);
  name[len] = 0;
  *path = eq ? eq + 1 : NULL;
  return 0;
}
