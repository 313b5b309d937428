/* progress.c - what a search or a training shows while it runs, and how it stops.
 *
 * The library calls back after every step (every = 1, so that Ctrl-C stops within one
 * step); the callback redraws the progress bar when stderr is a terminal and, every
 * `--every` steps and at the end, writes one metrics JSON line per domain. SIGINT and
 * SIGTERM only set a flag: the callback then returns non-zero, the library stops with
 * MPNAS_E_CANCELLED between two steps, and the caller saves a checkpoint. */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static volatile sig_atomic_t caught;
static struct sigaction saved_int, saved_term; /* what cli_signals_restore puts back */

static void on_signal(int sig) { caught = sig; }

void cli_signals_catch(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
  sigemptyset(&sa.sa_mask);
  /* Installed even where the shell had SIGINT ignored (a background job): the checkpoint
   * is what the signal asks for. */
  sigaction(SIGINT, &sa, &saved_int);
  sigaction(SIGTERM, &sa, &saved_term);
}

void cli_signals_restore(void) {
  sigaction(SIGINT, &saved_int, NULL);
  sigaction(SIGTERM, &saved_term, NULL);
}

int cli_signal_caught(void) { return caught; }

double cli_now(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One domain's figures at a step. */
typedef struct figures {
  double loss, accuracy, weight, reward, cost;
} figures;

static void metrics_line(const cli_progress *p, int64_t step, int64_t total, int32_t d,
                         const figures *f) {
  for (int k = 0; k < 2; k++) {
    FILE *out = p->metrics[k];
    if (!out) continue;
    fprintf(out, "{\"phase\": \"%s\", \"step\": %lld, \"total\": %lld, \"domain\": ", p->phase,
            (long long)step, (long long)total);
    cli_json_string(out, p->doms[d].name);
    fputs(", \"loss\": ", out);
    cli_json_number(out, f->loss);
    fputs(", \"accuracy\": ", out);
    cli_json_number(out, f->accuracy);
    fputs(", \"weight\": ", out);
    cli_json_number(out, f->weight);
    if (strcmp(p->phase, "search") == 0) {
      fputs(", \"reward\": ", out);
      cli_json_number(out, f->reward);
      fputs(", \"cost\": ", out);
      cli_json_number(out, f->cost);
    }
    fprintf(out, ", \"seconds\": %.3f}\n", cli_now() - p->start);
    fflush(out);
  }
}

/* "\r  search [#####.......]   40/120   12s  acc 0.50 0.62" on stderr. */
static void draw_bar(const cli_progress *p, int64_t step, int64_t total, const figures *f) {
  int width = 24, filled = (int)(width * step / (total > 0 ? total : 1));
  fprintf(stderr, "\r  %-6s [%.*s%.*s] %6lld/%lld %5.0fs  acc", p->phase, filled,
          "########################", width - filled, "........................", (long long)step,
          (long long)total, cli_now() - p->start);
  for (int32_t d = 0; d < p->domains && d < 8; d++) {
    if (f[d].accuracy == f[d].accuracy) fprintf(stderr, " %.2f", f[d].accuracy);
    else fputs(" -", stderr);
  }
  fputs(step == total ? "\n" : "   ", stderr);
  fflush(stderr);
}

/* The bar at every step (a step can take seconds), the metrics every `every` steps. */
static int32_t report(cli_progress *p, int64_t step, int64_t total, const figures *f) {
  if (p->bar) draw_bar(p, step, total, f);
  if (step % p->every == 0 || step == total)
    for (int32_t d = 0; d < p->domains; d++) metrics_line(p, step, total, d, &f[d]);
  if (caught && p->bar) fputc('\n', stderr);
  return caught != 0;
}

int32_t cli_search_progress(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  cli_progress *p = user;
  figures f[CLI_MAX_DOMAINS];
  for (int32_t d = 0; d < p->domains; d++) {
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_TRAIN_LOSS, &f[d].loss);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_VALID_ACCURACY, &f[d].accuracy);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_LOSS_WEIGHT, &f[d].weight);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_REWARD, &f[d].reward);
    mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_COST, &f[d].cost);
  }
  return report(p, step, total, f);
}

int32_t cli_train_progress(void *user, mpnas_model *model, int64_t step, int64_t total) {
  cli_progress *p = user;
  figures f[CLI_MAX_DOMAINS];
  for (int32_t d = 0; d < p->domains; d++) {
    mpnas_model_domain_stat(model, d, MPNAS_STAT_TRAIN_LOSS, &f[d].loss);
    mpnas_model_domain_stat(model, d, MPNAS_STAT_VALID_ACCURACY, &f[d].accuracy);
    mpnas_model_domain_stat(model, d, MPNAS_STAT_LOSS_WEIGHT, &f[d].weight);
  }
  return report(p, step, total, f);
}

void cli_progress_test(const cli_progress *p, const char *domain, int64_t images, double top1,
                       double loss) {
  for (int k = 0; k < 2; k++) {
    FILE *out = p->metrics[k];
    if (!out) continue;
    fputs("{\"phase\": \"test\", \"domain\": ", out);
    cli_json_string(out, domain);
    fprintf(out, ", \"images\": %lld, \"top1\": ", (long long)images);
    cli_json_number(out, top1);
    fputs(", \"loss\": ", out);
    cli_json_number(out, loss);
    fputs("}\n", out);
    fflush(out);
  }
}
