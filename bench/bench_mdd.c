/* bench_mdd.c - the paper's comparison, on MDD-6 or any 2..16 image domains: accuracy
 * against cost (unique parameters, total MACs) of every method, as a markdown table, a
 * CSV file and Pareto-front figures (`make bench-mdd`, long, not in CI; docs/RESULTS.md).
 *
 * Usage: bench_mdd [--data DIR] [--domains a,b,...] [--rows a,b,...|all] [--quick]
 *                  [--search-steps N] [--train-steps N] [--batch N] [--seeds N]
 *                  [--threads N] [--first-seed S] [--seeds-all N]
 *                  [--target-scales s,...] [--gammas g,...]
 *                  [--set NAME=VALUE ...] [--out FILE.md] [--csv FILE] [--figures DIR]
 *                  [--name NAME]
 *
 * Data: DIR/NAME/{train,test}-{images,labels}.idx for every domain NAME (the layout
 * `make data` writes, tools/data/README.md); defaults data/mdd6 and MDD-6's six domains
 * fmnist,mnist,letters,emoji,textures,icons. Images of any size and 1, 3 or 4 channels
 * (grey replicated, alpha dropped) are resampled to the space's input (32x32x3 for
 * MPNAS_PRESET_32PX; area average shrinking, bilinear enlarging: bench_data.h). Classes:
 * the training split's largest label + 1.
 *
 * Rows (--rows; every row trains from scratch with the same budget: --train-steps steps
 * of --batch images per domain, ABDP balanced sampling and no weighting signal, set
 * explicitly; seed s searches and trains with context seed s; seeds run from --first-seed
 * (default 0), and --seeds-all N gives every row N seeds, e.g. more seeds of a 1-seed row):
 *   independent    domain-independent NAS: each domain searched alone (own weights and
 *                  controller) and trained alone as its own model, params and MACs
 *                  summed; at each --target-scales s (default 0.6,1,1.6) x the default
 *                  cost target C0 (scale 1 = the library default, not set; C0 is the
 *                  reference path's cost, mean over the domains); 1 seed each
 *   single-path    single-path multi-head: the space's reference path for every domain,
 *                  no search, one joint model
 *   multi-head     multi-head NAS: one controller for all domains, one joint model
 *   mpnas          MPNAS with the library defaults (only MPNAS_SEARCH_STEPS and --set
 *                  are set); --seeds seeds
 *   mpnas-targets  MPNAS at the target scales other than 1; 1 seed each
 *   mpnas-sharing  MPNAS with MPNAS_SEARCH_SHARING_GAMMA at each of --gammas (default
 *                  0,0.3,1); 1 seed each
 *   random-macs    per seed s of `mpnas`, a uniformly random path per domain with MACs
 *                  within 10% of that domain's MPNAS path (does the search beat chance?)
 *   random-shared  random paths matched on each domain's MACs and on the model's unique
 *                  parameters (both within 10% of the seed's MPNAS model): the control
 *                  for a search that shares nodes. A domain reuses an op an earlier
 *                  domain chose in a layer with probability q, bisected until the
 *                  parameters match (random_paths); if nothing matches within the cap,
 *                  a warning and the closest draw
 *   mpnas-off, mpnas-loss, mpnas-kpi, mpnas-boost   the ABDP ablation: the `mpnas`
 *                  paths trained with ABDP off (proportional, weights 1) or balanced +
 *                  a weighting signal (only when asked for)
 *   all = independent,single-path,multi-head,mpnas,mpnas-targets,mpnas-sharing,
 *         random-macs,random-shared (the default)
 * --set NAME=VALUE (repeatable) sets MPNAS_SEARCH_NAME (case-insensitive, e.g.
 * sharing_gamma=0.3, valid_batch=256, cost=params, reward=mnas) on every MPNAS-method
 * search (mpnas, mpnas-targets, mpnas-sharing, the ABDP rows; so also the paths the
 * random controls match). A configuration two rows share (gamma 0 and `mpnas` seed 0)
 * runs once.
 *
 * Profiles: standard (the defaults): --search-steps 400 --train-steps 700 --batch 32
 * --seeds 3 --threads 2 --rows all (about 100 minutes on 2 cores for MDD-6). --quick:
 * --search-steps 150 --train-steps 300 --seeds 2 --target-scales 1 --rows
 * independent,single-path,multi-head,mpnas,random-macs,random-shared (options after
 * --quick override it).
 *
 * Replot: `bench_mdd --replot a.csv,b.csv [--out FILE.md] [--figures DIR] [--name NAME]`
 * reads earlier runs' --csv files (same domains) and writes one table and the two Pareto
 * figures of all their rows, a row = the lines with the same label (its seeds): for a
 * comparison run in parts.
 *
 * Outputs: the table on stdout and in --out (with the command line, date, machine and
 * data); --csv one line per (row, seed) with every number (top-1 as fractions; cost_target
 * 0 = the library's default) and every domain's path as text; --figures DIR:
 * NAME-pareto-params.svg and NAME-pareto-macs.svg (mean top-1 against unique parameters
 * and total MACs, one marker per row, bars = seed min..max; bench/pareto_svg.h) and the
 * architecture and Jaccard figures of the `mpnas` seed 0 model (NAME-architecture.svg,
 * NAME-jaccard.svg). NAME: --name, default "mdd6" for MDD-6's six domains, else "bench". */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_data.h"
#include "bench_util.h"
#include "mpnas.h"
#include "pareto_svg.h"
#include "svg_figures.h"

#define MAX_DOMAINS 16
#define MAX_SEEDS 8
#define MAX_LAYERS 64
#define MAX_ROWS 48
#define MAX_LIST 8         /* target scales, gammas */
#define MAX_SETS 32
#define MATCH 0.10         /* the random controls' tolerance (relative) */
#define MAX_TRIES 100000   /* draws of one domain's path (~0.05 s) before taking the closest */
#define KEY_CAP 1200

static const char *const MDD6 = "fmnist,mnist,letters,emoji,textures,icons";
static const char *const ALL_ROWS =
    "independent,single-path,multi-head,mpnas,mpnas-targets,mpnas-sharing,random-macs,"
    "random-shared";
static const char *const KNOWN_ROWS[] = {
    "independent", "single-path",   "multi-head", "mpnas",     "mpnas-targets",
    "mpnas-sharing", "random-macs", "random-shared", "mpnas-off", "mpnas-loss",
    "mpnas-kpi",     "mpnas-boost", NULL};

/* ---- Options ----------------------------------------------------------------------------- */

typedef struct options {
  int64_t search_steps, train_steps, batch, seeds, threads;
  const char *rows, *out, *csv, *figures, *data, *domains, *name, *replot;
  double scales[MAX_LIST], gammas[MAX_LIST];
  int num_scales, num_gammas;
  int64_t first_seed, seeds_all; /* seeds run: first_seed.. (seeds_all: every row's count) */
} options;
static options opt = {400, 700, 32, 3, 2, "all", NULL, NULL, NULL, "data/mdd6", NULL, NULL, NULL,
                      {0.6, 1, 1.6}, {0, 0.3, 1}, 3, 3, 0, 0};

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench_mdd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see the comment at the top of bench/bench_mdd.c)\n", stderr);
  va_end(ap);
  exit(2);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("\nbench_mdd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

#define OK(ctx, call, what)                                                          \
  do {                                                                               \
    if ((call) != MPNAS_OK) fail("%s: %s", what, mpnas_context_last_error(ctx));     \
  } while (0)

static int64_t parse_int(const char *key, const char *v, int64_t lo, int64_t hi) {
  char *end;
  long long x = strtoll(v, &end, 10);
  if (*v == 0 || *end != 0 || x < lo || x > hi)
    usage_error("%s: '%s' is not an integer in %lld..%lld", key, v, (long long)lo, (long long)hi);
  return x;
}

static double parse_real(const char *key, const char *v) {
  char *end;
  double x = strtod(v, &end);
  if (*v == 0 || *end != 0 || !isfinite(x)) usage_error("%s: '%s' is not a number", key, v);
  return x;
}

/* A comma-separated list of numbers >= lo into list[MAX_LIST]. */
static int parse_list(const char *key, const char *v, double lo, double *list) {
  char buf[256], *save = NULL;
  int n = 0;
  snprintf(buf, sizeof buf, "%s", v);
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (n == MAX_LIST) usage_error("%s: at most %d values", key, MAX_LIST);
    list[n] = parse_real(key, t);
    if (list[n] < lo) usage_error("%s: %g is below %g", key, list[n], lo);
    n++;
  }
  if (n == 0) usage_error("%s: no values", key);
  return n;
}

/* Is `name` one of the comma-separated names of `list`? */
static int in_list(const char *list, const char *name) {
  size_t len = strlen(name);
  for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
    if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == 0)) return 1;
  return 0;
}

/* Is a row selected by --rows (where "all" stands for ALL_ROWS)? */
static int wanted(const char *row) {
  return in_list(opt.rows, row) || (in_list(opt.rows, "all") && in_list(ALL_ROWS, row));
}

static void check_rows(const char *rows) {
  char buf[512], *save = NULL;
  snprintf(buf, sizeof buf, "%s", rows);
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    int known = strcmp(t, "all") == 0;
    for (int i = 0; KNOWN_ROWS[i] && !known; i++) known = strcmp(t, KNOWN_ROWS[i]) == 0;
    if (!known) usage_error("--rows: unknown row '%s'", t);
  }
}

/* ---- --set: search parameters by name ---------------------------------------------------- */

static const char *const COST_NAMES[] = {"none", "macs", "params", "latency", NULL};
static const char *const REWARD_NAMES[] = {"abs", "mnas", NULL};

typedef struct search_param {
  const char *name;
  int32_t id;
  int real;                 /* 1: set_double, 0: set_int */
  const char *const *enums; /* lower-case names of the values 0, 1, ... (or NULL) */
} search_param;

static const search_param SEARCH_PARAMS[] = {
    {"steps", MPNAS_SEARCH_STEPS, 0, NULL},
    {"train_batch", MPNAS_SEARCH_TRAIN_BATCH, 0, NULL},
    {"valid_batch", MPNAS_SEARCH_VALID_BATCH, 0, NULL},
    {"warmup_fraction", MPNAS_SEARCH_WARMUP_FRACTION, 1, NULL},
    {"learning_rate", MPNAS_SEARCH_LEARNING_RATE, 1, NULL},
    {"momentum", MPNAS_SEARCH_MOMENTUM, 1, NULL},
    {"weight_decay", MPNAS_SEARCH_WEIGHT_DECAY, 1, NULL},
    {"label_smoothing", MPNAS_SEARCH_LABEL_SMOOTHING, 1, NULL},
    {"rl_learning_rate", MPNAS_SEARCH_RL_LEARNING_RATE, 1, NULL},
    {"rl_delay_fraction", MPNAS_SEARCH_RL_DELAY_FRACTION, 1, NULL},
    {"rl_ramp", MPNAS_SEARCH_RL_RAMP, 1, NULL},
    {"entropy_bonus", MPNAS_SEARCH_ENTROPY_BONUS, 1, NULL},
    {"cost", MPNAS_SEARCH_COST, 0, COST_NAMES},
    {"reward", MPNAS_SEARCH_REWARD, 0, REWARD_NAMES},
    {"cost_beta", MPNAS_SEARCH_COST_BETA, 1, NULL},
    {"cost_target", MPNAS_SEARCH_COST_TARGET, 1, NULL},
    {"sharing_gamma", MPNAS_SEARCH_SHARING_GAMMA, 1, NULL},
    {"validation_fraction", MPNAS_SEARCH_VALIDATION_FRACTION, 1, NULL},
};
#define NUM_SEARCH_PARAMS ((int)(sizeof SEARCH_PARAMS / sizeof SEARCH_PARAMS[0]))

typedef struct setting {
  const search_param *param;
  int64_t i;
  double d;
  char text[96]; /* NAME=VALUE as given */
} setting;
static setting sets[MAX_SETS];
static int num_sets;

static int same_name(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
  return b[n] == 0;
}

static void parse_set(const char *arg) {
  const char *eq = strchr(arg, '=');
  if (eq == NULL || eq == arg) usage_error("--set %s: expected NAME=VALUE", arg);
  size_t n = (size_t)(eq - arg);
  if (same_name(arg, "method", n) || same_name(arg, "step", n))
    usage_error("--set %s: %.*s is not settable here (the rows choose the method; step is "
                "read-only)", arg, (int)n, arg);
  if (num_sets == MAX_SETS) usage_error("--set: at most %d settings", MAX_SETS);
  setting *s = &sets[num_sets];
  for (int p = 0; p < NUM_SEARCH_PARAMS && !s->param; p++)
    if (same_name(arg, SEARCH_PARAMS[p].name, n)) s->param = &SEARCH_PARAMS[p];
  if (!s->param) usage_error("--set %s: unknown search parameter '%.*s'", arg, (int)n, arg);
  const char *v = eq + 1;
  char what[64];
  snprintf(what, sizeof what, "--set %s", s->param->name);
  snprintf(s->text, sizeof s->text, "%s=%s", s->param->name, v);
  num_sets++;
  if (s->param->real) {
    s->d = parse_real(what, v);
    return;
  }
  s->i = -1;
  for (int e = 0; s->param->enums && s->param->enums[e]; e++)
    if (same_name(v, s->param->enums[e], strlen(v))) s->i = e;
  if (s->i < 0 && s->param->enums && !isdigit((unsigned char)*v)) {
    char names[128] = "";
    for (int e = 0; s->param->enums[e]; e++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", e ? ", " : "",
               s->param->enums[e]);
    usage_error("%s: '%s' is not one of %s (or their numbers)", what, v, names);
  }
  if (s->i < 0) s->i = parse_int(what, v, INT32_MIN, INT32_MAX);
}

static mpnas_status apply_sets(mpnas_supernet *sn, const setting **failed) {
  for (int k = 0; k < num_sets; k++) {
    const setting *s = &sets[k];
    mpnas_status st = s->param->real ? mpnas_supernet_set_double(sn, s->param->id, s->d)
                                     : mpnas_supernet_set_int(sn, s->param->id, s->i);
    if (st != MPNAS_OK) {
      *failed = s;
      return st;
    }
  }
  return MPNAS_OK;
}

static void quick_profile(void) {
  opt.search_steps = 150;
  opt.train_steps = 300;
  opt.seeds = 2;
  opt.rows = "independent,single-path,multi-head,mpnas,random-macs,random-shared";
  opt.scales[0] = 1;
  opt.num_scales = 1;
}

static void parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
      puts("usage: bench_mdd [--data DIR] [--domains a,b,...] [--rows a,b,...|all] [--quick]\n"
           "  [--search-steps N] [--train-steps N] [--batch N] [--seeds N] [--threads N]\n"
           "  [--first-seed S] [--seeds-all N]\n"
           "  [--target-scales s,...] [--gammas g,...] [--set NAME=VALUE ...]\n"
           "  [--out FILE.md] [--csv FILE] [--figures DIR] [--name NAME]\n"
           "       bench_mdd --replot RUN.csv[,RUN.csv...] [--out FILE.md] [--figures DIR]\n"
           "  [--name NAME]   (one table and the Pareto figures from earlier runs' --csv)\n"
           "rows: independent single-path multi-head mpnas mpnas-targets mpnas-sharing\n"
           "  random-macs random-shared (= all) mpnas-off mpnas-loss mpnas-kpi mpnas-boost\n"
           "(details: the comment at the top of bench/bench_mdd.c)");
      exit(0);
    }
    if (!strcmp(k, "--quick")) {
      quick_profile();
      continue;
    }
    if (i + 1 >= argc) usage_error("unknown option or missing value: %s", k);
    const char *v = argv[++i];
    if (!strcmp(k, "--search-steps")) opt.search_steps = parse_int(k, v, 1, 100000000);
    else if (!strcmp(k, "--train-steps")) opt.train_steps = parse_int(k, v, 1, 100000000);
    else if (!strcmp(k, "--batch")) opt.batch = parse_int(k, v, 1, 4096);
    else if (!strcmp(k, "--seeds")) opt.seeds = parse_int(k, v, 1, MAX_SEEDS);
    else if (!strcmp(k, "--seeds-all")) opt.seeds_all = parse_int(k, v, 1, MAX_SEEDS);
    else if (!strcmp(k, "--first-seed")) opt.first_seed = parse_int(k, v, 0, 1000000);
    else if (!strcmp(k, "--threads")) opt.threads = parse_int(k, v, 0, 1024);
    else if (!strcmp(k, "--rows")) check_rows(opt.rows = v);
    else if (!strcmp(k, "--target-scales")) opt.num_scales = parse_list(k, v, 1e-6, opt.scales);
    else if (!strcmp(k, "--gammas")) opt.num_gammas = parse_list(k, v, 0, opt.gammas);
    else if (!strcmp(k, "--set")) parse_set(v);
    else if (!strcmp(k, "--data")) opt.data = v;
    else if (!strcmp(k, "--domains")) opt.domains = v;
    else if (!strcmp(k, "--out")) opt.out = v;
    else if (!strcmp(k, "--csv")) opt.csv = v;
    else if (!strcmp(k, "--figures")) opt.figures = v;
    else if (!strcmp(k, "--name")) opt.name = v;
    else if (!strcmp(k, "--replot")) opt.replot = v;
    else usage_error("unknown option %s", k);
  }
}

/* ---- The domains and the space ----------------------------------------------------------- */

typedef struct domain {
  char name[64];
  int32_t classes;
  bench_split train, test;
} domain;
static domain dom[MAX_DOMAINS];
static int num_domains;

static mpnas_context *ctx0;     /* for the space and cost queries */
static mpnas_space *the_space;  /* MPNAS_PRESET_32PX */
static int64_t num_layers;
static int32_t nops[MAX_LAYERS];     /* ops per layer */
static int32_t ref_path[MAX_LAYERS]; /* the space's reference path (the default C0's) */

static mpnas_context *new_context(uint64_t seed) {
  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) fail("cannot create a context");
  OK(ctx, mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, opt.threads), "threads");
  OK(ctx, mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, (int64_t)seed), "seed");
  return ctx;
}

static void parse_domains(void) {
  char buf[1024], *save = NULL;
  snprintf(buf, sizeof buf, "%s", opt.domains);
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (num_domains == MAX_DOMAINS) usage_error("--domains: at most %d domains", MAX_DOMAINS);
    if (strlen(t) > 63) usage_error("--domains: name '%s' is longer than 63 characters", t);
    for (int d = 0; d < num_domains; d++)
      if (!strcmp(dom[d].name, t)) usage_error("--domains: '%s' given twice", t);
    snprintf(dom[num_domains++].name, sizeof dom[0].name, "%s", t);
  }
  if (num_domains < 2) usage_error("--domains: at least 2 domains are needed, got %d", num_domains);
}

static void load_domains(void) {
  int64_t h, w;
  OK(ctx0, mpnas_space_get_int(the_space, MPNAS_SPACE_INPUT_HEIGHT, &h), "input height");
  OK(ctx0, mpnas_space_get_int(the_space, MPNAS_SPACE_INPUT_WIDTH, &w), "input width");
  for (int d = 0; d < num_domains; d++) {
    char err[1024];
    domain *m = &dom[d];
    fprintf(stderr, "loading %s/%s\n", opt.data, m->name);
    if (bench_load_split(opt.data, m->name, "train", h, w, &m->train, err, sizeof err) ||
        bench_load_split(opt.data, m->name, "test", h, w, &m->test, err, sizeof err) ||
        (m->classes = bench_classes(opt.data, m->name, &m->train, &m->test, err, sizeof err)) == 0)
      fail("%s%s", err, strcmp(opt.data, "data/mdd6") == 0 ? " (run `make data` first?)" : "");
  }
}

static void free_domains(void) {
  for (int d = 0; d < num_domains; d++) {
    bench_split_free(&dom[d].train);
    bench_split_free(&dom[d].test);
  }
}

/* The space, its ops per layer and its reference path: the fixed path of a single-path
 * supernet, which is also the path whose cost is the library's default target C0. */
static void setup_space(void) {
  ctx0 = new_context(0);
  OK(ctx0, mpnas_space_create(ctx0, MPNAS_PRESET_32PX, &the_space), "space");
  OK(ctx0, mpnas_space_get_int(the_space, MPNAS_SPACE_NUM_LAYERS, &num_layers), "layers");
  if (num_layers > MAX_LAYERS)
    fail("the space has %lld layers, at most %d here", (long long)num_layers, MAX_LAYERS);
  for (int32_t l = 0; l < num_layers; l++)
    OK(ctx0, mpnas_space_num_ops(the_space, l, &nops[l]), "ops");
  mpnas_supernet *sn = NULL;
  OK(ctx0, mpnas_supernet_create(ctx0, the_space, &sn), "supernet");
  OK(ctx0, mpnas_supernet_add_domain(sn, "x", 2, NULL), "domain");
  OK(ctx0, mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, MPNAS_METHOD_SINGLE_PATH), "method");
  OK(ctx0, mpnas_supernet_path(sn, 0, ref_path, (size_t)num_layers), "reference path");
  const setting *bad = NULL; /* check every --set value once, before any work */
  if (apply_sets(sn, &bad) != MPNAS_OK)
    usage_error("--set %s: %s", bad->text, mpnas_context_last_error(ctx0));
  mpnas_supernet_free(sn);
}

/* MACs and parameters of domain d's path (its own classifier included). */
static void path_cost(const int32_t *path, int d, int64_t *macs, int64_t *params) {
  OK(ctx0, mpnas_space_path_cost(the_space, path, (size_t)num_layers, dom[d].classes, macs, params),
     "path cost");
}

/* The reference path's MACs or parameters (unit MPNAS_COST_MACS or _PARAMS), the mean
 * over the domains. */
static double reference_cost(int64_t unit) {
  double sum = 0;
  for (int d = 0; d < num_domains; d++) {
    int64_t macs, params;
    path_cost(ref_path, d, &macs, &params);
    sum += (double)(unit == MPNAS_COST_PARAMS ? params : macs);
  }
  return sum / num_domains;
}

/* ---- Configurations, results, the search and the training -------------------------------- */

typedef enum { PATHS_SEARCH, PATHS_REFERENCE, PATHS_RANDOM } path_source;

typedef struct config {
  path_source source;
  int32_t method;    /* PATHS_SEARCH: MPNAS_METHOD_* */
  int use_set;       /* apply --set (the MPNAS-method rows) */
  double scale;      /* cost target = scale x C0; 1: the library default (not set) */
  double gamma;      /* MPNAS_SEARCH_SHARING_GAMMA; < 0: not set */
  int match_params;  /* PATHS_RANDOM: also match the unique parameters */
  int separate;      /* each domain trained alone as its own model */
  int32_t sampling, signal; /* ABDP of the training */
  int seeds;
  int keep;          /* keep seed 0's model for the architecture figures */
} config;

/* The `mpnas` row's search: the paths the random controls match. */
static const config MPNAS_DEFAULT = {PATHS_SEARCH, MPNAS_METHOD_MPNAS, 1, 1.0, -1.0, 0, 0,
                                     MPNAS_ABDP_SAMPLE_BALANCED, MPNAS_ABDP_SIGNAL_NONE, 1, 1};

typedef struct result {
  double top1[MAX_DOMAINS], mean, jaccard, search_s, train_s;
  double target, gamma; /* the search's MPNAS_SEARCH_COST_TARGET (0: default), gamma */
  int64_t params, macs;
  int32_t paths[MAX_DOMAINS * MAX_LAYERS];
} result;

static mpnas_model *figure_model;  /* `mpnas` seed 0, for the architecture figures */
static mpnas_context *figure_ctx;

static int32_t search_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  (void)sn;
  fprintf(stderr, "\r    %s: search %lld/%lld      ", (const char *)user, (long long)step,
          (long long)total);
  return 0;
}
static int32_t train_progress(void *user, mpnas_model *m, int64_t step, int64_t total) {
  (void)m;
  fprintf(stderr, "\r    %s: train %lld/%lld       ", (const char *)user, (long long)step,
          (long long)total);
  return 0;
}

/* Notes printed under the table (random controls' matches, reused results). */
static char notes[128][320];
static int num_notes;
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
  if (num_notes == 128) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(notes[num_notes++], sizeof notes[0], fmt, ap);
  va_end(ap);
}

/* Results already computed, by a key describing everything that determines them: a
 * search (its effective settings read back from the supernet, and the seed) and a run
 * (the search's key and the training settings). A configuration that two rows share
 * (e.g. gamma 0 of the sharing sweep and `mpnas` seed 0) runs once. */
typedef struct cache_entry {
  char key[KEY_CAP], origin[96];
  result r;
} cache_entry;
static cache_entry *cache;
static int cache_len, cache_cap;

static const cache_entry *cache_find(const char *key) {
  for (int i = 0; i < cache_len; i++)
    if (!strcmp(cache[i].key, key)) return &cache[i];
  return NULL;
}

static void cache_put(const char *key, const char *origin, const result *r) {
  if (cache_len == cache_cap) {
    cache_cap = cache_cap ? 2 * cache_cap : 32;
    cache = realloc(cache, sizeof *cache * (size_t)cache_cap);
    if (!cache) fail("out of memory");
  }
  cache_entry *e = &cache[cache_len++];
  snprintf(e->key, sizeof e->key, "%s", key);
  snprintf(e->origin, sizeof e->origin, "%s", origin);
  e->r = *r;
}

/* "search seed=S method=M steps=N ...": every search parameter as the supernet has it. */
static void search_key(mpnas_context *ctx, const mpnas_supernet *sn, uint64_t seed, char *key) {
  int64_t method;
  OK(ctx, mpnas_supernet_get_int(sn, MPNAS_SEARCH_METHOD, &method), "method");
  int n = snprintf(key, KEY_CAP, "search seed=%llu method=%lld", (unsigned long long)seed,
                   (long long)method);
  for (int p = 0; p < NUM_SEARCH_PARAMS && n < KEY_CAP; p++) {
    const search_param *q = &SEARCH_PARAMS[p];
    double d = 0;
    int64_t i = 0;
    OK(ctx, q->real ? mpnas_supernet_get_double(sn, q->id, &d)
                    : mpnas_supernet_get_int(sn, q->id, &i), q->name);
    n += q->real ? snprintf(key + n, (size_t)(KEY_CAP - n), " %s=%.17g", q->name, d)
                 : snprintf(key + n, (size_t)(KEY_CAP - n), " %s=%lld", q->name, (long long)i);
  }
}

/* The cost of the reference path under the latency table (measured now if not yet). */
static double reference_latency(mpnas_context *ctx, mpnas_supernet *sn) {
  size_t count = 0;
  OK(ctx, mpnas_supernet_latency_table(sn, NULL, 0, &count), "latency table");
  double *t = malloc(sizeof(double) * count), c0;
  if (!t) fail("out of memory");
  OK(ctx, mpnas_supernet_latency_table(sn, t, count, &count), "latency table");
  c0 = t[0];
  for (int32_t l = 0, offset = 1; l < num_layers; offset += nops[l], l++)
    c0 += t[offset + ref_path[l]];
  free(t);
  return c0;
}

/* C0, the cost target the scales multiply: a --set cost_target if given, else what the
 * library takes by default (src/search/search.c, target_cost): the reference path's cost
 * in the supernet's cost unit. The library takes it per domain, with the domain's own
 * classifier; one target serves all domains here, so C0 is the mean over the domains
 * (the classifiers differ by < 1% of the MACs; by up to ~10% of the parameters). */
static double base_target(mpnas_context *ctx, mpnas_supernet *sn) {
  double set;
  int64_t unit;
  OK(ctx, mpnas_supernet_get_double(sn, MPNAS_SEARCH_COST_TARGET, &set), "target");
  OK(ctx, mpnas_supernet_get_int(sn, MPNAS_SEARCH_COST, &unit), "cost");
  if (set > 0) return set;
  return unit == MPNAS_COST_LATENCY ? reference_latency(ctx, sn) : reference_cost(unit);
}

static void configure_search(mpnas_context *ctx, mpnas_supernet *sn, const config *c) {
  OK(ctx, mpnas_supernet_set_int(sn, MPNAS_SEARCH_METHOD, c->method), "method");
  OK(ctx, mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, opt.search_steps), "steps");
  const setting *bad;
  if (c->use_set) OK(ctx, apply_sets(sn, &bad), "--set");
  if (c->gamma >= 0)
    OK(ctx, mpnas_supernet_set_double(sn, MPNAS_SEARCH_SHARING_GAMMA, c->gamma), "gamma");
  if (c->scale != 1) {
    double target = c->scale * base_target(ctx, sn);
    OK(ctx, mpnas_supernet_set_double(sn, MPNAS_SEARCH_COST_TARGET, target), "target");
  }
}

/* Search with configuration c and seed (or take the cached result of the same search):
 * r->paths, search_s, target, gamma; key receives the search's key. */
static void search_paths(const config *c, uint64_t seed, const char *label, result *r, char *key) {
  mpnas_context *ctx = new_context(seed);
  mpnas_supernet *sn = NULL;
  OK(ctx, mpnas_supernet_create(ctx, the_space, &sn), "supernet");
  for (int d = 0; d < num_domains; d++)
    OK(ctx, mpnas_supernet_add_domain(sn, dom[d].name, dom[d].classes, NULL), "domain");
  configure_search(ctx, sn, c);
  OK(ctx, mpnas_supernet_get_double(sn, MPNAS_SEARCH_COST_TARGET, &r->target), "target");
  OK(ctx, mpnas_supernet_get_double(sn, MPNAS_SEARCH_SHARING_GAMMA, &r->gamma), "gamma");
  search_key(ctx, sn, seed, key);
  const cache_entry *hit = cache_find(key);
  if (hit) {
    memcpy(r->paths, hit->r.paths, sizeof r->paths);
    r->search_s = hit->r.search_s;
  } else {
    for (int d = 0; d < num_domains; d++)
      OK(ctx, mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, dom[d].train.x,
                                      dom[d].train.y, dom[d].train.n), "data");
    double t0 = bench_now();
    OK(ctx, mpnas_supernet_search(sn, 0, search_progress, (void *)label, 25), "search");
    r->search_s = bench_now() - t0;
    for (int d = 0; d < num_domains; d++)
      OK(ctx, mpnas_supernet_path(sn, d, r->paths + d * num_layers, (size_t)num_layers), "path");
    cache_put(key, label, r);
  }
  mpnas_supernet_free(sn);
  mpnas_context_free(ctx);
}

/* A model over the domains `which` (n of them) with their paths, no data yet. */
static mpnas_model *build_model(mpnas_context *ctx, const int *which, int n, const int32_t *paths) {
  mpnas_model *m = NULL;
  OK(ctx, mpnas_model_create(ctx, the_space, &m), "model");
  for (int i = 0; i < n; i++) {
    int d = which[i];
    OK(ctx, mpnas_model_add_domain(m, dom[d].name, dom[d].classes, paths + d * num_layers,
                                   (size_t)num_layers, NULL), "domain");
  }
  return m;
}

static int all_domains[MAX_DOMAINS];

/* Unique parameters of the joint model of every domain's path, as it reports them. */
static int64_t model_params(const int32_t *paths) {
  mpnas_model *m = build_model(ctx0, all_domains, num_domains, paths);
  int64_t p;
  OK(ctx0, mpnas_model_get_int(m, MPNAS_MODEL_PARAMS, &p), "params");
  mpnas_model_free(m);
  return p;
}

/* Train one model over the domains `which` with r->paths; adds its test top-1 per domain,
 * params, MACs and training time to r. keep: keep the model for the figures. */
static void train_model(const config *c, uint64_t seed, const int *which, int n, const char *label,
                        int keep, result *r) {
  mpnas_context *ctx = new_context(seed);
  mpnas_model *m = build_model(ctx, which, n, r->paths);
  for (int i = 0; i < n; i++) {
    const bench_split *s = &dom[which[i]].train;
    OK(ctx, mpnas_model_set_data(m, i, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, s->x, s->y, s->n),
       "data");
  }
  OK(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_STEPS, opt.train_steps), "steps");
  OK(ctx, mpnas_model_set_int(m, MPNAS_TRAIN_BATCH, opt.batch), "batch");
  OK(ctx, mpnas_model_set_int(m, MPNAS_ABDP_SAMPLING, c->sampling), "sampling");
  OK(ctx, mpnas_model_set_int(m, MPNAS_ABDP_SIGNAL, c->signal), "signal");
  double t0 = bench_now();
  OK(ctx, mpnas_model_train(m, 0, train_progress, (void *)label, 25), "train");
  r->train_s += bench_now() - t0;
  for (int i = 0; i < n; i++) {
    const bench_split *s = &dom[which[i]].test;
    OK(ctx, mpnas_model_evaluate(m, i, MPNAS_DTYPE_U8, s->x, s->y, s->n, &r->top1[which[i]], NULL),
       "evaluate");
  }
  int64_t p, macs;
  OK(ctx, mpnas_model_get_int(m, MPNAS_MODEL_PARAMS, &p), "params");
  OK(ctx, mpnas_model_get_int(m, MPNAS_MODEL_MACS, &macs), "macs");
  r->params += p;
  r->macs += macs;
  OK(ctx, mpnas_model_clear_data(m), "clear");
  if (keep) { /* freed at the end of main */
    figure_model = m;
    figure_ctx = ctx;
  } else {
    mpnas_model_free(m);
    mpnas_context_free(ctx);
  }
}

/* ---- The random controls ----------------------------------------------------------------- */

static uint32_t rand_u32(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (uint32_t)(*s >> 33);
}
static double rand_unit(uint64_t *s) { return rand_u32(s) / 2147483648.0; }

static double rel_err(double value, double target) { return fabs(value / target - 1); }

/* The distinct ops the domains before d use in layer l, into used; their count. */
static int32_t earlier_ops(const int32_t *paths, int d, int64_t l, int32_t *used) {
  int32_t n = 0;
  for (int e = 0; e < d; e++) {
    int32_t op = paths[e * num_layers + l], seen = 0;
    for (int k = 0; k < n; k++) seen |= used[k] == op;
    if (!seen) used[n++] = op;
  }
  return n;
}

/* One domain's path: in each layer, with probability q an op an earlier domain uses in
 * that layer (uniformly among those ops, if any), else a uniform op; redrawn until its
 * MACs are within MATCH of `target` (at most MAX_TRIES draws, else the closest). Returns
 * the relative MACs error. */
static double draw_domain(uint64_t *s, double q, const int32_t *paths, int d, int64_t target,
                          int32_t *path) {
  int32_t used[MAX_LAYERS][MAX_DOMAINS], nused[MAX_LAYERS], cand[MAX_LAYERS];
  for (int64_t l = 0; l < num_layers; l++) nused[l] = earlier_ops(paths, d, l, used[l]);
  double best = HUGE_VAL;
  for (int tries = 0; tries < MAX_TRIES && best > MATCH; tries++) {
    for (int64_t l = 0; l < num_layers; l++)
      cand[l] = nused[l] > 0 && rand_unit(s) < q ? used[l][rand_u32(s) % (uint32_t)nused[l]]
                                                 : (int32_t)(rand_u32(s) % (uint32_t)nops[l]);
    int64_t macs, params;
    path_cost(cand, d, &macs, &params);
    double err = rel_err((double)macs, (double)target);
    if (err < best) {
      best = err;
      memcpy(path, cand, sizeof(int32_t) * (size_t)num_layers);
    }
  }
  return best;
}

/* Every domain's path at reuse probability q, in domain order; the worst MACs error. */
static double draw_paths(uint64_t *s, double q, const int64_t *macs_target, int32_t *paths) {
  double worst = 0;
  for (int d = 0; d < num_domains; d++)
    worst = fmax(worst, draw_domain(s, q, paths, d, macs_target[d], paths + d * num_layers));
  return worst;
}

typedef struct match {
  double q, macs_err, params_err;
  int64_t params, params_target;
} match;

/* Random paths matching `ref` (the MPNAS paths): every domain's MACs within MATCH, and
 * with match_params the joint model's unique parameters too. For the latter the reuse
 * probability q is bisected on [0, 1] (more reuse, fewer unique parameters), 8 draws per
 * q, 12 values of q at most; the closest draw is kept (score: the larger relative error
 * of the two). Seeded, deterministic. */
static match random_paths(uint64_t seed, const int32_t *ref, int match_params, int32_t *out) {
  int64_t macs_target[MAX_DOMAINS], unused;
  for (int d = 0; d < num_domains; d++)
    path_cost(ref + d * num_layers, d, &macs_target[d], &unused);
  uint64_t s = 0x9e3779b97f4a7c15ull * (seed + 1) + (uint64_t)match_params;
  match best = {0, HUGE_VAL, HUGE_VAL, 0, model_params(ref)};
  double lo = 0, hi = 1, best_score = HUGE_VAL;
  int32_t cand[MAX_DOMAINS * MAX_LAYERS];
  for (int round = 0; round < (match_params ? 12 : 1) && best_score > MATCH; round++) {
    double q = round == 0 ? 0 : (lo + hi) / 2, sum = 0;
    for (int k = 0; k < (match_params ? 8 : 1) && best_score > MATCH; k++) {
      match m = {q, draw_paths(&s, q, macs_target, cand), 0, model_params(cand),
                 best.params_target};
      m.params_err = (double)m.params / (double)m.params_target - 1;
      double score = match_params ? fmax(m.macs_err, fabs(m.params_err)) : m.macs_err;
      if (score < best_score) {
        best_score = score;
        best = m;
        memcpy(out, cand, sizeof(int32_t) * (size_t)(num_domains * num_layers));
      }
      sum += m.params_err;
    }
    if (sum > 0) lo = q; /* too many unique parameters: share more */
    else hi = q;
  }
  return best;
}

/* A random control's paths for seed: matched to the `mpnas` row's search of that seed. */
static void random_control(const config *c, uint64_t seed, const char *label, result *r) {
  result ref;
  char key[KEY_CAP];
  memset(&ref, 0, sizeof ref);
  search_paths(&MPNAS_DEFAULT, seed, "mpnas (for the random control)", &ref, key);
  match m = random_paths(seed, ref.paths, c->match_params, r->paths);
  int ok = m.macs_err <= MATCH && (!c->match_params || fabs(m.params_err) <= MATCH);
  char q[48] = "", text[300];
  if (c->match_params) snprintf(q, sizeof q, "reuse probability q = %.3f; ", m.q);
  snprintf(text, sizeof text,
           "%s: %sunique params %.3f M against MPNAS's %.3f M (%+.1f%%), worst domain MACs "
           "error %.1f%%%s", label, q, (double)m.params / 1e6,
           (double)m.params_target / 1e6, 100 * m.params_err, 100 * m.macs_err,
           ok ? "" : " - nothing within the tolerance found: the closest draw is used");
  note("%s%s", ok ? "" : "**WARNING** ", text);
  if (!ok) fprintf(stderr, "\nbench_mdd: warning: %s\n", text);
}

/* ---- One configuration, one seed: paths, training, summary ------------------------------- */

static void summarise(result *r) {
  r->mean = 0;
  for (int d = 0; d < num_domains; d++) r->mean += r->top1[d] / num_domains;
  double jac[MAX_DOMAINS * MAX_DOMAINS], sum = 0;
  OK(ctx0, mpnas_space_jaccard(the_space, r->paths, (size_t)num_domains, (size_t)num_layers, jac,
                               MAX_DOMAINS * MAX_DOMAINS), "jaccard");
  for (int a = 0; a < num_domains; a++)
    for (int b = 0; b < num_domains; b++)
      if (a != b) sum += jac[a * num_domains + b];
  r->jaccard = sum / (num_domains * (num_domains - 1));
}

/* The one helper every row runs: the paths (searched, the reference path, or a random
 * control), then training from scratch (one joint model, or one model per domain), test
 * top-1 per domain, the mean and the mean off-diagonal Jaccard of the paths' node sets
 * (mpnas_space_jaccard: for a joint model the same as mpnas_model_jaccard). */
static void run(const config *c, uint64_t seed, const char *label, result *r) {
  char key[KEY_CAP] = "";
  memset(r, 0, sizeof *r);
  if (c->source == PATHS_SEARCH) search_paths(c, seed, label, r, key);
  else if (c->source == PATHS_RANDOM) random_control(c, seed, label, r);
  else
    for (int d = 0; d < num_domains; d++)
      memcpy(r->paths + d * num_layers, ref_path, sizeof(int32_t) * (size_t)num_layers);
  if (key[0]) {
    size_t n = strlen(key);
    snprintf(key + n, KEY_CAP - n, " | run sampling=%d signal=%d separate=%d", (int)c->sampling,
             (int)c->signal, c->separate);
    const cache_entry *hit = cache_find(key);
    if (hit) {
      *r = hit->r;
      note("%s: the same search and training as %s: its result is reused, not rerun.", label,
           hit->origin);
      return;
    }
  }
  int keep = c->keep && seed == 0 && opt.figures && !figure_model;
  if (c->separate)
    for (int d = 0; d < num_domains; d++) train_model(c, seed, &d, 1, label, 0, r);
  else
    train_model(c, seed, all_domains, num_domains, label, keep, r);
  summarise(r);
  if (key[0]) cache_put(key, label, r);
}

/* ---- The rows ---------------------------------------------------------------------------- */

enum { STYLE_INDEPENDENT, STYLE_MPNAS, STYLE_VARIANT, STYLE_JOINT, STYLE_RANDOM };
enum { CURVE_INDEPENDENT, CURVE_MPNAS };

typedef struct row {
  const char *group; /* the --rows name */
  char label[96], short_label[48];
  int style, curve; /* the Pareto figures' marker and curve (-1: none) */
  config cfg;
  int n;
  result r[MAX_SEEDS];
} row;
static row rows[MAX_ROWS];
static int num_rows;

/* A row group's marker and curve in the Pareto figures. */
static void group_style(const char *group, int *style, int *curve) {
  *curve = -1;
  if (!strcmp(group, "independent")) {
    *style = STYLE_INDEPENDENT;
    *curve = CURVE_INDEPENDENT;
  } else if (!strcmp(group, "mpnas")) {
    *style = STYLE_MPNAS;
    *curve = CURVE_MPNAS;
  } else if (!strcmp(group, "mpnas-targets")) {
    *style = STYLE_VARIANT;
    *curve = CURVE_MPNAS;
  } else if (!strcmp(group, "single-path") || !strcmp(group, "multi-head")) {
    *style = STYLE_JOINT;
  } else if (!strncmp(group, "random-", 7)) {
    *style = STYLE_RANDOM;
  } else {
    *style = STYLE_VARIANT;
  }
}

static row *add_row(const char *group, config c, const char *short_label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static row *add_row(const char *group, config c, const char *short_label, const char *fmt, ...) {
  if (num_rows == MAX_ROWS) fail("more than %d rows", MAX_ROWS);
  row *w = &rows[num_rows++];
  w->group = group;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->label, sizeof w->label, fmt, ap);
  va_end(ap);
  snprintf(w->short_label, sizeof w->short_label, "%s", short_label);
  w->cfg = c;
  group_style(group, &w->style, &w->curve);
  return w;
}

static config searched(int32_t method, int use_set, double scale, double gamma, int seeds) {
  config c = {PATHS_SEARCH, method, use_set, scale, gamma, 0, 0, MPNAS_ABDP_SAMPLE_BALANCED,
              MPNAS_ABDP_SIGNAL_NONE, seeds, 0};
  return c;
}

static void plan_independent_and_joint(void) {
  char s[48];
  for (int i = 0; i < opt.num_scales && wanted("independent"); i++) {
    config c = searched(MPNAS_METHOD_INDEPENDENT, 0, opt.scales[i], -1, 1);
    c.separate = 1;
    snprintf(s, sizeof s, "indep. x%g", opt.scales[i]);
    add_row("independent", c, s,
            "domain-independent NAS (separate models), target %gC0%s", opt.scales[i],
            opt.scales[i] == 1 ? " (default)" : "");
  }
  if (wanted("single-path")) {
    config c = searched(0, 0, 1, -1, 1);
    c.source = PATHS_REFERENCE;
    add_row("single-path", c, "single-path",
            "single-path multi-head (reference path)");
  }
  if (wanted("multi-head"))
    add_row("multi-head", searched(MPNAS_METHOD_MULTI_HEAD, 0, 1, -1, 1), "multi-head",
            "multi-head NAS");
}

static void plan_mpnas(void) {
  char s[48];
  if (wanted("mpnas")) {
    row *w = add_row("mpnas", MPNAS_DEFAULT, "MPNAS", "MPNAS (library defaults)");
    w->cfg.seeds = (int)opt.seeds;
  }
  for (int i = 0; i < opt.num_scales && wanted("mpnas-targets"); i++) {
    if (opt.scales[i] == 1) continue;
    snprintf(s, sizeof s, "MPNAS x%g", opt.scales[i]);
    add_row("mpnas-targets", searched(MPNAS_METHOD_MPNAS, 1, opt.scales[i], -1, 1), s,
            "MPNAS, target %gC0", opt.scales[i]);
  }
  for (int i = 0; i < opt.num_gammas && wanted("mpnas-sharing"); i++) {
    snprintf(s, sizeof s, "MPNAS g=%g", opt.gammas[i]);
    add_row("mpnas-sharing", searched(MPNAS_METHOD_MPNAS, 1, 1, opt.gammas[i], 1), s,
            "MPNAS, sharing gamma %g", opt.gammas[i]);
  }
}

static void plan_controls(void) {
  config c = searched(0, 0, 1, -1, (int)opt.seeds);
  c.source = PATHS_RANDOM;
  if (wanted("random-macs"))
    add_row("random-macs", c, "random (MACs)", "random paths, MACs matched");
  c.match_params = 1;
  if (wanted("random-shared"))
    add_row("random-shared", c, "random (MACs+params)",
            "random paths, MACs and unique params matched");
  static const struct {
    const char *row, *label, *short_label;
    int32_t sampling, signal;
  } abdp[] = {
      {"mpnas-off", "MPNAS, ABDP off (proportional, w = 1)", "ABDP off",
       MPNAS_ABDP_SAMPLE_PROPORTIONAL, MPNAS_ABDP_SIGNAL_NONE},
      {"mpnas-loss", "MPNAS, ABDP balanced + loss", "ABDP loss", MPNAS_ABDP_SAMPLE_BALANCED,
       MPNAS_ABDP_SIGNAL_LOSS},
      {"mpnas-kpi", "MPNAS, ABDP balanced + kpi", "ABDP kpi", MPNAS_ABDP_SAMPLE_BALANCED,
       MPNAS_ABDP_SIGNAL_KPI},
      {"mpnas-boost", "MPNAS, ABDP balanced + boost", "ABDP boost", MPNAS_ABDP_SAMPLE_BALANCED,
       MPNAS_ABDP_SIGNAL_BOOST}};
  for (size_t k = 0; k < sizeof abdp / sizeof abdp[0]; k++) {
    if (!wanted(abdp[k].row)) continue;
    config a = MPNAS_DEFAULT;
    a.seeds = (int)opt.seeds;
    a.keep = 0;
    a.sampling = abdp[k].sampling;
    a.signal = abdp[k].signal;
    add_row(abdp[k].row, a, abdp[k].short_label, "%s", abdp[k].label);
  }
}

/* ---- Output ------------------------------------------------------------------------------ */

static FILE *md_file, *csv_file;

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (md_file) {
    va_start(ap, fmt);
    vfprintf(md_file, fmt, ap);
    va_end(ap);
    fflush(md_file);
  }
  fflush(stdout);
}

enum { F_MEAN = MAX_DOMAINS, F_JACCARD, F_PARAMS, F_MACS, F_SEARCH, F_TRAIN };

static double field(const result *r, int f) {
  switch (f) {
    case F_MEAN: return r->mean;
    case F_JACCARD: return r->jaccard;
    case F_PARAMS: return (double)r->params;
    case F_MACS: return (double)r->macs;
    case F_SEARCH: return r->search_s;
    case F_TRAIN: return r->train_s;
    default: return r->top1[f];
  }
}

typedef struct spread {
  double mean, lo, hi;
} spread;

static spread over_seeds(const row *w, int f) {
  spread s = {0, HUGE_VAL, -HUGE_VAL};
  for (int i = 0; i < w->n; i++) {
    double v = field(&w->r[i], f);
    s.mean += v / w->n;
    s.lo = fmin(s.lo, v);
    s.hi = fmax(s.hi, v);
  }
  return s;
}

/* A table cell: value x scale, with (min-max) over the seeds when asked and they vary. */
static void cell(const row *w, int f, double scale, int decimals, int range) {
  spread s = over_seeds(w, f);
  char a[32], b[32];
  snprintf(a, sizeof a, "%.*f", decimals, s.lo * scale);
  snprintf(b, sizeof b, "%.*f", decimals, s.hi * scale);
  if (range && w->n > 1 && strcmp(a, b) != 0)
    emit(" %.*f (%s-%s) |", decimals, s.mean * scale, a, b);
  else
    emit(" %.*f |", decimals, s.mean * scale);
}

static void print_row(const row *w) {
  emit("| %s | %d |", w->label, w->n);
  for (int f = 0; f < num_domains; f++) cell(w, f, 100, 1, 1);
  cell(w, F_MEAN, 100, 1, 1);
  cell(w, F_JACCARD, 1, 2, 1);
  cell(w, F_PARAMS, 1e-6, 3, 1);
  cell(w, F_MACS, 1e-6, 1, 1);
  cell(w, F_SEARCH, 1, 0, 0);
  cell(w, F_TRAIN, 1, 0, 0);
  emit("\n");
}

static void csv_text(const char *s) {
  fputc('"', csv_file);
  for (; *s; s++) {
    if (*s == '"') fputc('"', csv_file);
    fputc(*s, csv_file);
  }
  fputc('"', csv_file);
}

static void csv_header(void) {
  fputs("group,row,label,seed,target_scale,cost_target,sharing_gamma,abdp_sampling,abdp_signal",
        csv_file);
  for (int d = 0; d < num_domains; d++) fprintf(csv_file, ",top1_%s", dom[d].name);
  fputs(",mean_top1,mean_jaccard,unique_params,total_macs,search_s,train_s", csv_file);
  for (int d = 0; d < num_domains; d++) fprintf(csv_file, ",path_%s", dom[d].name);
  fputc('\n', csv_file);
}

/* One line per seed: top-1 as fractions, the paths as text ("k5e3 zero ..."). */
static void csv_row(const row *w) {
  for (int i = 0; i < w->n && csv_file; i++) {
    const result *r = &w->r[i];
    fprintf(csv_file, "%s,", w->group);
    csv_text(w->short_label);
    fputc(',', csv_file);
    csv_text(w->label);
    fprintf(csv_file, ",%lld,%g,%.10g,%.10g,%d,%d", (long long)(opt.first_seed + i),
            w->cfg.scale, r->target, r->gamma, (int)w->cfg.sampling, (int)w->cfg.signal);
    for (int d = 0; d < num_domains; d++) fprintf(csv_file, ",%.6f", r->top1[d]);
    fprintf(csv_file, ",%.6f,%.6f,%lld,%lld,%.3f,%.3f", r->mean, r->jaccard, (long long)r->params,
            (long long)r->macs, r->search_s, r->train_s);
    for (int d = 0; d < num_domains; d++) {
      char text[1024];
      OK(ctx0, mpnas_space_path_string(the_space, r->paths + d * num_layers, (size_t)num_layers,
                                       text, sizeof text, NULL), "path text");
      fputc(',', csv_file);
      csv_text(text);
    }
    fputc('\n', csv_file);
  }
  if (csv_file) fflush(csv_file);
}

static void print_command(int argc, char **argv) {
  emit("Command: `");
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    int plain = *a != 0;
    for (const char *p = a; *p; p++) plain &= isalnum((unsigned char)*p) || strchr("-_=.,/:+", *p);
    if (plain) emit("%s%s", i ? " " : "", a);
    else emit("%s'%s'", i ? " " : "", a);
  }
  emit("`  \n");
}

static void print_machine(void) {
  char line[512], cpu[256] = "unknown CPU";
  FILE *f = fopen("/proc/cpuinfo", "r");
  while (f && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) == 0 && colon) {
      snprintf(cpu, sizeof cpu, "%s", colon + 2);
      cpu[strcspn(cpu, "\n")] = 0;
      break;
    }
  }
  if (f) fclose(f);
  int64_t isa = 0, omp = 0;
  mpnas_context_get_int(ctx0, MPNAS_CONTEXT_ISA_ACTIVE, &isa);
  mpnas_context_get_int(ctx0, MPNAS_CONTEXT_OPENMP, &omp);
  time_t t = time(NULL);
  char date[64];
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
  emit("Date: %s  \nMachine: %s, %ld logical CPUs; %lld thread(s) (--threads), %s kernels%s  \n",
       date, cpu, sysconf(_SC_NPROCESSORS_ONLN), (long long)opt.threads,
       isa == MPNAS_ISA_AVX2 ? "AVX2" : isa == MPNAS_ISA_NEON ? "NEON" : "scalar",
       omp ? ", OpenMP" : "");
}

static void print_header(int argc, char **argv, const char *name) {
  emit("## Multi-domain comparison: %s\n\n", name);
  print_command(argc, argv);
  print_machine();
  int64_t h, w;
  mpnas_space_get_int(the_space, MPNAS_SPACE_INPUT_HEIGHT, &h);
  mpnas_space_get_int(the_space, MPNAS_SPACE_INPUT_WIDTH, &w);
  emit("Data: `%s`, %d domains at %lldx%lldx3 (train / test images, classes, file format):",
       opt.data, num_domains, (long long)h, (long long)w);
  for (int d = 0; d < num_domains; d++) {
    const domain *m = &dom[d];
    emit(" %s %lld / %lld, %d, %lldx%lldx%lld%s", m->name, (long long)m->train.n,
         (long long)m->test.n, (int)m->classes, (long long)m->train.src_h,
         (long long)m->train.src_w, (long long)m->train.src_c, d + 1 < num_domains ? ";" : ".");
  }
  emit(" Grey images replicated to 3 channels, alpha dropped; other sizes resampled (area "
       "average shrinking, bilinear enlarging).  \n");
  emit("Budget: search %lld steps; every row trains from scratch for %lld steps of %lld images per "
       "domain, ABDP balanced, no weighting signal (except the ABDP rows).  \n",
       (long long)opt.search_steps, (long long)opt.train_steps, (long long)opt.batch);
  emit("Cost targets: C0 = the reference path's cost in the search's unit, mean over the domains "
       "(%.2f M MACs, %.3f M parameters); scales", reference_cost(MPNAS_COST_MACS) / 1e6,
       reference_cost(MPNAS_COST_PARAMS) / 1e6);
  for (int i = 0; i < opt.num_scales; i++) emit(" %g", opt.scales[i]);
  emit("; sharing gammas");
  for (int i = 0; i < opt.num_gammas; i++) emit(" %g", opt.gammas[i]);
  emit(".  \n");
  emit("Search settings (--set, MPNAS-method rows):");
  for (int k = 0; k < num_sets; k++) emit(" %s", sets[k].text);
  emit("%s  \n", num_sets ? "" : " none (library defaults)");
  emit("Top-1 in %% on the test split (seeds > 1: mean (min-max)); Jaccard: mean off-diagonal "
       "Jaccard of the domains' node sets; params: unique parameters in millions; MACs: summed "
       "over the domains' paths, millions; times: wall seconds.\n\n");
  emit("| method | seeds |");
  for (int d = 0; d < num_domains; d++) emit(" %s |", dom[d].name);
  emit(" mean | Jaccard | params (M) | MACs (M) | search s | train s |\n|---|---|");
  for (int d = 0; d < num_domains; d++) emit("---|");
  emit("---|---|---|---|---|---|\n");
}

/* ---- Figures ----------------------------------------------------------------------------- */

/* A path as the markdown file (in its own directory) links to it. */
static const char *relative_to_out(const char *path) {
  if (!opt.out) return path;
  const char *slash = strrchr(opt.out, '/');
  size_t n = slash ? (size_t)(slash - opt.out) + 1 : 0;
  return strncmp(path, opt.out, n) == 0 ? path + n : path;
}

static int pareto_figure(const char *file, int f, const char *x_label, const char *title) {
  static const pareto_style styles[] = {
      {"domain-independent NAS (separate models)", "#4e79a7", PARETO_CIRCLE, 5},
      {"MPNAS, library defaults", "#e15759", PARETO_STAR, 9},
      {"MPNAS: other targets, gamma, ABDP", "#f28e2b", PARETO_SQUARE, 5},
      {"one path for all (single-path, multi-head)", "#79706e", PARETO_TRIANGLE, 6},
      {"random paths (matched controls)", "#59a14f", PARETO_DIAMOND, 6}};
  static const pareto_curve curves[] = {{"domain-independent NAS over cost targets", "#4e79a7"},
                                        {"MPNAS over cost targets", "#f28e2b"}};
  pareto_point pts[MAX_ROWS];
  for (int i = 0; i < num_rows; i++) {
    spread x = over_seeds(&rows[i], f), y = over_seeds(&rows[i], F_MEAN);
    pareto_point p = {rows[i].short_label, x.mean / 1e6, x.lo / 1e6, x.hi / 1e6,
                      100 * y.mean,        100 * y.lo,   100 * y.hi, rows[i].style, rows[i].curve};
    pts[i] = p;
  }
  pareto_plot plot = {title, x_label, "mean test top-1 over the domains (%)", styles, 5, curves, 2,
                      pts, num_rows};
  return pareto_svg_write(&plot, file);
}

static void write_figures(const char *name) {
  char params[1024], macs[1024], arch[1024], jac[1024], title[256];
  mkdir(opt.figures, 0777); /* one level; an existing directory is fine */
  snprintf(params, sizeof params, "%s/%s-pareto-params.svg", opt.figures, name);
  snprintf(macs, sizeof macs, "%s/%s-pareto-macs.svg", opt.figures, name);
  snprintf(arch, sizeof arch, "%s/%s-architecture.svg", opt.figures, name);
  snprintf(jac, sizeof jac, "%s/%s-jaccard.svg", opt.figures, name);
  snprintf(title, sizeof title, "%s: accuracy against unique parameters", name);
  int bad = num_rows && pareto_figure(params, F_PARAMS, "unique parameters (millions)", title);
  snprintf(title, sizeof title, "%s: accuracy against total MACs", name);
  const char *macs_label = "MACs summed over the domains' paths (millions per image)";
  bad |= num_rows && pareto_figure(macs, F_MACS, macs_label, title);
  if (num_rows && !bad)
    emit("\nPareto fronts: ![accuracy against parameters](%s) ![accuracy against MACs](%s)\n",
         relative_to_out(params), relative_to_out(macs));
  if (figure_model && !svg_write_architecture(figure_model, arch) &&
      !svg_write_jaccard(figure_model, jac))
    emit("\nMPNAS (library defaults), seed 0: ![architecture](%s) ![jaccard](%s)\n",
         relative_to_out(arch), relative_to_out(jac));
  else if (figure_model)
    bad = 1;
  else if (!opt.replot)
    emit("\n(No architecture figures: the `mpnas` row did not run.)\n");
  if (bad) fprintf(stderr, "bench_mdd: could not write every figure into %s\n", opt.figures);
}

/* ---- Main -------------------------------------------------------------------------------- */

static int is_mdd6(void) {
  if (num_domains != 6) return 0;
  for (int d = 0; d < num_domains; d++)
    if (!in_list(MDD6, dom[d].name)) return 0;
  return 1;
}

static void run_rows(void) {
  for (int i = 0; i < num_rows; i++) {
    row *w = &rows[i];
    if (opt.seeds_all) w->cfg.seeds = (int)opt.seeds_all;
    for (int s = 0; s < w->cfg.seeds; s++) {
      char label[128];
      int64_t seed = opt.first_seed + s;
      snprintf(label, sizeof label, "%s, seed %lld", w->label, (long long)seed);
      run(&w->cfg, (uint64_t)seed, label, &w->r[s]);
    }
    w->n = w->cfg.seeds;
    fprintf(stderr, "\r%*s\r", 100, "");
    print_row(w);
    csv_row(w);
  }
}

/* ---- Replot: one table and the figures from earlier runs' CSV files ------------------------ */

/* Splits one CSV line in place into at most cap fields (quoted fields may hold commas and
 * "" for a quote); returns the number of fields. */
static int csv_split(char *line, char **field, int cap) {
  int n = 0;
  char *r = line;
  while (n < cap) {
    char *w = r;
    field[n++] = w;
    int quoted = *r == '"';
    if (quoted) r++;
    for (; *r && (quoted || (*r != ',' && *r != '\n')); r++) {
      if (quoted && *r == '"') {
        if (r[1] != '"') {
          quoted = 0;
          continue;
        }
        r++;
      }
      *w++ = *r;
    }
    int more = *r == ',';
    *w = '\0';
    if (!more) break;
    r++;
  }
  return n;
}

/* Rows, by label in the order first seen, from files "a.csv,b.csv"; every file must have
 * the same domains as the first. */
static void replot_read(const char *files) {
  static char groups[MAX_ROWS][32];
  char list[4096], line[16384], *field[16 + 2 * MAX_DOMAINS + 8];
  snprintf(list, sizeof list, "%s", files);
  for (char *file = strtok(list, ","); file; file = strtok(NULL, ",")) {
    FILE *f = fopen(file, "r");
    if (!f) fail("cannot read %s", file);
    if (!fgets(line, sizeof line, f)) fail("%s: empty", file);
    int nf = csv_split(line, field, (int)(sizeof field / sizeof field[0])), nd = 0;
    for (int k = 0; k < nf; k++) {
      if (strncmp(field[k], "top1_", 5)) continue;
      if (num_domains && strcmp(dom[nd].name, field[k] + 5))
        fail("%s: domain %s where the first file has %s", file, field[k] + 5, dom[nd].name);
      snprintf(dom[nd++].name, sizeof dom[0].name, "%s", field[k] + 5);
    }
    if (nd < 1 || nd > MAX_DOMAINS || nf != 15 + 2 * nd) fail("%s: not a bench_mdd --csv file", file);
    num_domains = nd;
    while (fgets(line, sizeof line, f)) {
      if (csv_split(line, field, nf + 1) != nf) fail("%s: a line without %d fields", file, nf);
      row *w = NULL;
      for (int i = 0; i < num_rows && !w; i++)
        if (!strcmp(rows[i].label, field[2])) w = &rows[i];
      if (!w) {
        snprintf(groups[num_rows], sizeof groups[0], "%s", field[0]);
        config none = {0};
        w = add_row(groups[num_rows], none, field[1], "%s", field[2]);
      }
      if (w->n == MAX_SEEDS) fail("%s: more than %d seeds of %s", file, MAX_SEEDS, w->label);
      result *r = &w->r[w->n++];
      const char *const *v = (const char *const *)field + 9 + nd;
      for (int d = 0; d < nd; d++) r->top1[d] = atof(field[9 + d]);
      r->mean = atof(v[0]);
      r->jaccard = atof(v[1]);
      r->params = atoll(v[2]);
      r->macs = atoll(v[3]);
      r->search_s = atof(v[4]);
      r->train_s = atof(v[5]);
    }
    fclose(f);
  }
}

static int replot(int argc, char **argv) {
  replot_read(opt.replot);
  const char *name = opt.name ? opt.name : "bench";
  if (opt.out && !(md_file = fopen(opt.out, "w"))) fail("cannot write %s", opt.out);
  print_command(argc, argv);
  emit("Rows from: %s (each row: mean (min-max) over the seeds found).\n\n| method | seeds |",
       opt.replot);
  for (int d = 0; d < num_domains; d++) emit(" %s |", dom[d].name);
  emit(" mean | Jaccard | params (M) | MACs (M) | search s | train s |\n|---|---|");
  for (int d = 0; d < num_domains; d++) emit("---|");
  emit("---|---|---|---|---|---|\n");
  for (int i = 0; i < num_rows; i++) print_row(&rows[i]);
  if (opt.figures) write_figures(name);
  if (md_file) fclose(md_file);
  return 0;
}

int main(int argc, char **argv) {
  double start = bench_now();
  opt.domains = MDD6;
  parse_args(argc, argv);
  if (opt.replot) return replot(argc, argv);
  check_rows(opt.rows);
  parse_domains();
  setup_space();
  load_domains();
  for (int d = 0; d < num_domains; d++) all_domains[d] = d;
  const char *name = opt.name ? opt.name : is_mdd6() ? "mdd6" : "bench";
  if (opt.out && !(md_file = fopen(opt.out, "w"))) fail("cannot write %s", opt.out);
  if (opt.csv && !(csv_file = fopen(opt.csv, "w"))) fail("cannot write %s", opt.csv);
  plan_independent_and_joint();
  plan_mpnas();
  plan_controls();
  print_header(argc, argv, name);
  if (csv_file) csv_header();
  run_rows();
  if (num_notes) emit("\nNotes:\n\n");
  for (int i = 0; i < num_notes; i++) emit("- %s\n", notes[i]);
  if (wanted("independent"))
    emit("\nDomain-independent NAS: params and MACs are the sums over the separate models; its "
         "Jaccard compares the paths' node sets, though separate models share no weights.\n");
  emit("\nTotal wall time: %.1f min.\n", (bench_now() - start) / 60);
  if (opt.figures) write_figures(name);
  mpnas_model_free(figure_model);
  mpnas_context_free(figure_ctx);
  if (md_file) fclose(md_file);
  if (csv_file) fclose(csv_file);
  free(cache);
  free_domains();
  mpnas_space_free(the_space);
  mpnas_context_free(ctx0);
  return 0;
}
