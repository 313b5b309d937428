/* mpnas_mpi.c - the libmpnas pipeline (search, then training of the multi-path model) as a
 * data-parallel MPI job: one process per worker, each handing its context an all-reduce
 * callback over MPI_COMM_WORLD (mpnas_context_set_collective). The library itself knows
 * nothing of MPI; this file is the whole integration. docs/SCALING.md has the figures.
 *
 *   mpirun -np 2 build/examples/mpnas_mpi            (as root: --allow-run-as-root)
 *
 * Every worker builds the same data (the embedded procedural set, examples/synthetic.h),
 * the same settings and seed: the library keeps their random streams in step, each
 * worker runs its share of every batch, and weights, paths and controllers come out
 * identical on all of them. Rank 0 alone prints and writes files.
 *
 * Options (all optional):
 *   --search-steps N   search steps (default 100)       --train-steps N  (default 200)
 *   --threads N        threads per worker (default 1)   --out DIR        (default out)
 *   --train-batch N    search training images per domain per step (default 16, global)
 *   --valid-batch N    search validation images per domain per step (default 32, global)
 *   --rl-delay F       fraction of the search before the controllers learn (default: the
 *                      library's); tests/test_mpi.sh holds them still with 0.999
 *   --stop-at N        stop the search after step N; rank 0 saves DIR/search.ckpt; exit
 *   --resume FILE      load a search checkpoint (written at any world size) first
 *   --verify           checksums of every worker's search checkpoint and model, compared
 *                      across workers; rank 0 writes DIR/paths.txt, the domains' training
 *                      losses at the end of the search (DIR/search-losses.txt) and of the
 *                      training (DIR/train-losses.txt), and the test logits
 *                      (DIR/logits.txt), for tests/test_mpi.sh
 * Build: make examples (only when mpicc is found). */
#define _POSIX_C_SOURCE 200809L /* mkdir */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mpnas.h"
#include "synthetic.h"

#define PER_DOMAIN 2000
#define TEST_IMAGES 64

static int rank, world;

/* The collective hook: sum in place over every worker. MPI counts are int: large
 * buffers go in pieces. */
static int32_t allreduce(void *user, void *buf, int64_t count, int32_t dtype) {
  MPI_Comm comm = *(MPI_Comm *)user;
  MPI_Datatype t = dtype == MPNAS_COLLECTIVE_F32   ? MPI_FLOAT
                   : dtype == MPNAS_COLLECTIVE_F64 ? MPI_DOUBLE
                                                   : MPI_INT64_T;
  size_t size = dtype == MPNAS_COLLECTIVE_F32 ? 4 : 8;
  char *p = buf;
  while (count > 0) {
    int n = count > (1 << 30) ? (1 << 30) : (int)count;
    int rc = MPI_Allreduce(MPI_IN_PLACE, p, n, t, MPI_SUM, comm);
    if (rc != MPI_SUCCESS) return rc;
    p += (size_t)n * size;
    count -= n;
  }
  return 0;
}

static int fail(mpnas_context *ctx, const char *what) {
  fprintf(stderr, "mpnas_mpi (rank %d): %s: %s\n", rank, what, mpnas_context_last_error(ctx));
  MPI_Abort(MPI_COMM_WORLD, 1);
  return 1;
}

/* FNV-1a of a file's bytes (0 if it cannot be read). */
static uint64_t file_hash(const char *path) {
  FILE *f = fopen(path, "rb");
  uint64_t h = 1469598103934665603ull;
  int c;
  if (!f) return 0;
  while ((c = getc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
  fclose(f);
  return h;
}

/* Every worker's hash of `what`, compared on rank 0. Returns 1 if all are equal. */
static int same_everywhere(uint64_t h, const char *what) {
  uint64_t *all = malloc(sizeof(uint64_t) * (size_t)world);
  MPI_Gather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  int same = 1;
  for (int r = 1; r < world && rank == 0; r++) same &= all[r] == all[0];
  MPI_Bcast(&same, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (rank == 0)
    printf("%s: %s on all %d workers (%016llx)\n", what, same ? "identical" : "DIFFERENT", world,
           (unsigned long long)all[0]);
  free(all);
  return same;
}

typedef struct {
  int64_t stop_at;
} search_state;

static int32_t on_search(void *user, mpnas_supernet *sn, int64_t step, int64_t total) {
  (void)sn;
  search_state *s = user;
  if (rank == 0 && (step % 20 == 0 || step == total)) {
    printf("  search step %lld/%lld\n", (long long)step, (long long)total);
    fflush(stdout);
  }
  return s->stop_at > 0 && step >= s->stop_at; /* the same answer on every worker */
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm comm = MPI_COMM_WORLD;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN); /* failures reach the hook's return */
  int64_t search_steps = 100, train_steps = 200, threads = 1, train_batch = 16, valid_batch = 32;
  int64_t stop_at = 0;
  const char *out_dir = "out", *resume = NULL;
  int verify = 0;
  double rl_delay = -1.0; /* < 0: the library's default */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--verify") == 0) { verify = 1; continue; }
    if (v == NULL) { fprintf(stderr, "mpnas_mpi: %s needs a value\n", a); return 2; }
    i++;
    if (strcmp(a, "--search-steps") == 0) search_steps = atoll(v);
    else if (strcmp(a, "--train-steps") == 0) train_steps = atoll(v);
    else if (strcmp(a, "--threads") == 0) threads = atoll(v);
    else if (strcmp(a, "--train-batch") == 0) train_batch = atoll(v);
    else if (strcmp(a, "--valid-batch") == 0) valid_batch = atoll(v);
    else if (strcmp(a, "--stop-at") == 0) stop_at = atoll(v);
    else if (strcmp(a, "--rl-delay") == 0) rl_delay = atof(v);
    else if (strcmp(a, "--resume") == 0) resume = v;
    else if (strcmp(a, "--out") == 0) out_dir = v;
    else { fprintf(stderr, "mpnas_mpi: unknown option %s\n", a); return 2; }
  }

  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  if (mpnas_context_set_int(ctx, MPNAS_CONTEXT_THREADS, threads) != MPNAS_OK ||
      mpnas_context_set_int(ctx, MPNAS_CONTEXT_SEED, 1) != MPNAS_OK ||
      mpnas_context_set_collective(ctx, allreduce, &comm, rank, world) != MPNAS_OK)
    return fail(ctx, "context");
  if (rank == 0) {
    printf("libmpnas %s: %d worker(s) x %lld thread(s), embedded data set (%d domains)\n",
           mpnas_version_string(), world, (long long)threads, SYN_DOMAINS);
    mkdir(out_dir, 0777);
  }

  /* The same data on every worker. */
  static uint8_t train_x[SYN_DOMAINS][PER_DOMAIN * SYN_PIXELS], test_x[SYN_DOMAINS][TEST_IMAGES * SYN_PIXELS];
  static int32_t train_y[SYN_DOMAINS][PER_DOMAIN], test_y[SYN_DOMAINS][TEST_IMAGES];
  for (int d = 0; d < SYN_DOMAINS; d++) {
    for (int i = 0; i < PER_DOMAIN; i++) {
      train_y[d][i] = syn_image(d, (uint64_t)i, 7, train_x[d] + (size_t)i * SYN_PIXELS);
    }
    for (int i = 0; i < TEST_IMAGES; i++)
      test_y[d][i] = syn_image(d, 1000000u + (uint64_t)i, 7, test_x[d] + (size_t)i * SYN_PIXELS);
  }

  /* Search. */
  mpnas_space *space = NULL;
  mpnas_supernet *sn = NULL;
  if (mpnas_space_create(ctx, MPNAS_PRESET_32PX, &space) != MPNAS_OK) return fail(ctx, "space");
  if (mpnas_supernet_create(ctx, space, &sn) != MPNAS_OK) return fail(ctx, "supernet");
  for (int32_t d = 0; d < SYN_DOMAINS; d++)
    if (mpnas_supernet_add_domain(sn, SYN_NAMES[d], SYN_CLASSES[d], NULL) != MPNAS_OK ||
        mpnas_supernet_set_data(sn, d, MPNAS_SPLIT_TRAIN, MPNAS_DTYPE_U8, train_x[d], train_y[d],
                                PER_DOMAIN) != MPNAS_OK)
      return fail(ctx, "adding a domain");
  if (mpnas_supernet_set_int(sn, MPNAS_SEARCH_STEPS, search_steps) != MPNAS_OK ||
      mpnas_supernet_set_int(sn, MPNAS_SEARCH_TRAIN_BATCH, train_batch) != MPNAS_OK ||
      mpnas_supernet_set_int(sn, MPNAS_SEARCH_VALID_BATCH, valid_batch) != MPNAS_OK ||
      (rl_delay >= 0.0 &&
       mpnas_supernet_set_double(sn, MPNAS_SEARCH_RL_DELAY_FRACTION, rl_delay) != MPNAS_OK))
    return fail(ctx, "search settings");
  if (resume != NULL && mpnas_supernet_load_checkpoint(sn, resume) != MPNAS_OK)
    return fail(ctx, "loading the checkpoint");
  char file[512];
  search_state ss = {stop_at};
  double t0 = MPI_Wtime();
  mpnas_status st = mpnas_supernet_search(sn, 0, on_search, &ss, 1);
  double search_seconds = MPI_Wtime() - t0;
  if (st == MPNAS_E_CANCELLED) { /* --stop-at: a checkpoint, from rank 0 only */
    snprintf(file, sizeof file, "%s/search.ckpt", out_dir);
    if (rank == 0 && mpnas_supernet_save_checkpoint(sn, file) != MPNAS_OK) return fail(ctx, "saving");
    if (rank == 0) printf("stopped at step %lld: checkpoint %s\n", (long long)stop_at, file);
    mpnas_supernet_free(sn);
    mpnas_space_free(space);
    mpnas_context_free(ctx);
    MPI_Finalize();
    return 0;
  }
  if (st != MPNAS_OK) return fail(ctx, "search");
  if (verify) { /* every worker's checkpoint, hashed (workers' own files, then removed) */
    snprintf(file, sizeof file, "%s/search.rank%d.ckpt", out_dir, rank);
    if (mpnas_supernet_save_checkpoint(sn, file) != MPNAS_OK) return fail(ctx, "saving");
    uint64_t h = file_hash(file);
    remove(file);
    if (!same_everywhere(h, "search state (checkpoint)")) return 3;
  }
  int64_t layers;
  mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers);
  int32_t path[64];
  FILE *paths = NULL;
  if (verify && rank == 0) {
    snprintf(file, sizeof file, "%s/paths.txt", out_dir);
    paths = fopen(file, "w");
  }
  for (int32_t d = 0; d < SYN_DOMAINS && rank == 0; d++) {
    char text[512];
    mpnas_supernet_path(sn, d, path, (size_t)layers);
    mpnas_space_path_string(space, path, (size_t)layers, text, sizeof text, NULL);
    printf("%-9s %s\n", SYN_NAMES[d], text);
    if (paths) fprintf(paths, "%s %s\n", SYN_NAMES[d], text);
  }
  if (paths) { /* the search's last training losses, for a comparison across world sizes */
    snprintf(file, sizeof file, "%s/search-losses.txt", out_dir);
    FILE *f = fopen(file, "w");
    for (int32_t d = 0; d < SYN_DOMAINS && f; d++) {
      double loss;
      mpnas_supernet_domain_stat(sn, d, MPNAS_STAT_TRAIN_LOSS, &loss);
      fprintf(f, "%.9g\n", loss);
    }
    if (f) fclose(f);
  }
  if (paths) fclose(paths);

  /* Training of the multi-path model. */
  mpnas_model *model = NULL;
  if (mpnas_model_create_from_supernet(sn, &model) != MPNAS_OK) return fail(ctx, "deriving the model");
  mpnas_supernet_free(sn);
  if (mpnas_model_set_int(model, MPNAS_TRAIN_STEPS, train_steps) != MPNAS_OK)
    return fail(ctx, "training settings");
  t0 = MPI_Wtime();
  if (mpnas_model_train(model, 0, NULL, NULL, 0) != MPNAS_OK) return fail(ctx, "training");
  double train_seconds = MPI_Wtime() - t0;
  if (rank == 0) {
    printf("\n%-9s %8s\n", "domain", "top-1");
    for (int32_t d = 0; d < SYN_DOMAINS; d++) {
      double top1, loss;
      if (mpnas_model_evaluate(model, d, MPNAS_DTYPE_U8, test_x[d], test_y[d], TEST_IMAGES, &top1,
                               &loss) != MPNAS_OK)
        return fail(ctx, "evaluating");
      printf("%-9s %7.1f%%\n", SYN_NAMES[d], 100.0 * top1);
    }
    printf("\nsearch %.2f s (%.3f steps/s), training %.2f s (%.3f steps/s)\n", search_seconds,
           (double)search_steps / search_seconds, train_seconds, (double)train_steps / train_seconds);
    snprintf(file, sizeof file, "%s/mpnas_mpi.mpnas", out_dir);
    if (mpnas_model_clear_data(model) != MPNAS_OK || mpnas_model_save(model, file) != MPNAS_OK)
      return fail(ctx, "saving the model");
    printf("model saved to %s\n", file);
  }
  if (verify) {
    size_t size = 0;
    mpnas_model_save_buffer(model, NULL, 0, &size);
    unsigned char *buf = malloc(size);
    if (!buf || mpnas_model_save_buffer(model, buf, size, &size) != MPNAS_OK) return fail(ctx, "saving");
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) h = (h ^ buf[i]) * 1099511628211ull;
    free(buf);
    if (!same_everywhere(h, "trained model")) return 3;
    if (rank == 0) { /* training losses and test logits, for a comparison across world sizes */
      snprintf(file, sizeof file, "%s/train-losses.txt", out_dir);
      FILE *f = fopen(file, "w");
      for (int32_t d = 0; d < SYN_DOMAINS && f; d++) {
        double loss;
        mpnas_model_domain_stat(model, d, MPNAS_STAT_TRAIN_LOSS, &loss);
        fprintf(f, "%.9g\n", loss);
      }
      if (f) fclose(f);
      snprintf(file, sizeof file, "%s/logits.txt", out_dir);
      f = fopen(file, "w");
      mpnas_predictor *pr = NULL;
      if (!f || mpnas_predictor_create(model, &pr) != MPNAS_OK) return fail(ctx, "logits");
      float logits[TEST_IMAGES * 8];
      for (int32_t d = 0; d < SYN_DOMAINS; d++) {
        if (mpnas_predictor_run(pr, d, MPNAS_DTYPE_U8, test_x[d],
                                TEST_IMAGES, MPNAS_OUTPUT_LOGITS,
                                logits, sizeof logits / sizeof logits[0]) != MPNAS_OK)
          return fail(ctx, "logits");
        for (int i = 0; i < TEST_IMAGES * SYN_CLASSES[d]; i++) fprintf(f, "%.9g\n", logits[i]);
      }
      mpnas_predictor_free(pr);
      fclose(f);
    }
  }
  mpnas_model_free(model);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  MPI_Finalize();
  return 0;
}
