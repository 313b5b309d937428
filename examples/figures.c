/* figures.c - the two figures of a multi-path model as SVG files.
 *
 *   PREFIX-architecture.svg  the multi-path architecture: the searchable layers as
 *                            columns, each layer's candidate ops as nodes coloured by
 *                            usage (shared by several domains / exclusive / unused;
 *                            dashed: the skip op), each domain's path as a polyline in
 *                            its own colour, a legend of the domains (as in the MPNAS
 *                            paper's figure);
 *   PREFIX-jaccard.svg       the Jaccard similarity of the domains' node sets as a heat
 *                            map with the values in the cells.
 *
 * From a saved model (mpnas_model_load), or from paths given on the command line over the
 * 32 px preset's space (MPNAS_PRESET_32PX: 10 layers, ops zero / k{3,5,7}e{3,6}):
 *
 *   figures MODEL_FILE [--out PREFIX] [--title TEXT]
 *   figures --paths NAME="k3e3 k5e6 zero ..." [NAME="..." ...] [--out PREFIX] [--title TEXT]
 *
 * PREFIX defaults to "mpnas" (files in the current directory). The drawing lives in
 * examples/svg_figures.h (header-only, public API only) so other programs can call it.
 * Build: make examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnas.h"
#include "svg_figures.h"

#define MAX_DOMAINS 64

static void usage(void) {
  fprintf(stderr,
          "usage: figures MODEL_FILE [--out PREFIX] [--title TEXT]\n"
          "       figures --paths NAME=\"PATH TEXT\" [NAME=\"PATH TEXT\" ...] [--out PREFIX] [--title TEXT]\n"
          "  (path text as in \"k3e3 k5e6 zero k7e3 ...\", one op per layer of the 32px preset)\n");
}

static FILE *open_out(const char *prefix, const char *suffix, char *name, size_t cap) {
  snprintf(name, cap, "%s-%s.svg", prefix, suffix);
  FILE *f = fopen(name, "w");
  if (f == NULL) fprintf(stderr, "figures: cannot write %s\n", name);
  return f;
}

static int finish(FILE *f, const char *name, int rc, mpnas_context *ctx) {
  if (fclose(f) != 0 && rc == 0) rc = 1;
  if (rc < 0) fprintf(stderr, "figures: %s: %s\n", name, mpnas_context_last_error(ctx));
  else if (rc > 0) fprintf(stderr, "figures: writing %s failed\n", name);
  else printf("wrote %s\n", name);
  return rc;
}

int main(int argc, char **argv) {
  const char *prefix = "mpnas", *title = NULL, *model_file = NULL;
  const char *specs[MAX_DOMAINS];
  int nspecs = 0, paths_mode = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) prefix = argv[++i];
    else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc) title = argv[++i];
    else if (strcmp(argv[i], "--paths") == 0) paths_mode = 1;
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage();
      return 0;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "figures: unknown option or missing value: %s\n", argv[i]);
      usage();
      return 1;
    } else if (paths_mode) {
      if (nspecs == MAX_DOMAINS) {
        fprintf(stderr, "figures: at most %d paths\n", MAX_DOMAINS);
        return 1;
      }
      specs[nspecs++] = argv[i];
    } else if (!model_file) model_file = argv[i];
    else {
      usage();
      return 1;
    }
  }
  if (paths_mode ? (nspecs == 0 || model_file != NULL) : model_file == NULL) {
    usage();
    return 1;
  }

  mpnas_context *ctx = NULL;
  if (mpnas_context_create(&ctx) != MPNAS_OK) return 1;
  char arch_name[1024], jac_name[1024];
  int rc = 1;
  mpnas_status st;

  if (!paths_mode) {
    mpnas_model *model = NULL;
    if ((st = mpnas_model_load(ctx, model_file, &model)) != MPNAS_OK) {
      fprintf(stderr, "figures: %s: %s\n", model_file, mpnas_context_last_error(ctx));
      mpnas_context_free(ctx);
      return 1;
    }
    FILE *f = open_out(prefix, "architecture", arch_name, sizeof arch_name);
    if (f) rc = finish(f, arch_name, svg_model_architecture(f, model, title ? title : "Multi-path architecture"), ctx);
    if (rc == 0 && (f = open_out(prefix, "jaccard", jac_name, sizeof jac_name)) != NULL)
      rc = finish(f, jac_name,
                  svg_model_jaccard(f, model, title ? title : "Jaccard similarity of the domains' node sets"), ctx);
    else if (rc == 0)
      rc = 1;
    mpnas_model_free(model);
    mpnas_context_free(ctx);
    return rc == 0 ? 0 : 1;
  }

  /* --paths: NAME=TEXT over the 32 px preset */
  mpnas_space *space = NULL;
  char names[MAX_DOMAINS][SVG_MAX_NAME];
  const char *name_ptrs[MAX_DOMAINS];
  int32_t *paths = NULL;
  double *jac = NULL;
  int64_t layers;
  if (mpnas_space_create(ctx, MPNAS_PRESET_32PX, &space) != MPNAS_OK ||
      mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers) != MPNAS_OK)
    goto fail;
  paths = malloc(sizeof(int32_t) * (size_t)layers * (size_t)nspecs);
  jac = malloc(sizeof(double) * (size_t)nspecs * (size_t)nspecs);
  if (!paths || !jac) goto fail;
  for (int d = 0; d < nspecs; d++) {
    const char *eq = strchr(specs[d], '=');
    size_t len = eq ? (size_t)(eq - specs[d]) : 0;
    if (eq == NULL || len == 0 || len >= SVG_MAX_NAME) {
      fprintf(stderr, "figures: expected NAME=\"PATH TEXT\" (a name of 1..63 characters), got %s\n", specs[d]);
      goto fail;
    }
    memcpy(names[d], specs[d], len);
    names[d][len] = 0;
    name_ptrs[d] = names[d];
    if (mpnas_space_parse_path(space, eq + 1, paths + (size_t)d * (size_t)layers, (size_t)layers) != MPNAS_OK) {
      fprintf(stderr, "figures: %s: %s\n", names[d], mpnas_context_last_error(ctx));
      goto fail;
    }
  }
  if (mpnas_space_jaccard(space, paths, (size_t)nspecs, (size_t)layers, jac,
                          (size_t)nspecs * (size_t)nspecs) != MPNAS_OK) {
    fprintf(stderr, "figures: %s\n", mpnas_context_last_error(ctx));
    goto fail;
  }
  FILE *f = open_out(prefix, "architecture", arch_name, sizeof arch_name);
  if (!f) goto fail;
  rc = finish(f, arch_name,
              svg_paths_architecture(f, space, paths, nspecs, name_ptrs, title ? title : "Multi-path architecture"), ctx);
  if (rc != 0 || (f = open_out(prefix, "jaccard", jac_name, sizeof jac_name)) == NULL) {
    rc = 1;
    goto fail;
  }
  rc = finish(f, jac_name,
              svg_matrix_jaccard(f, jac, nspecs, name_ptrs, title ? title : "Jaccard similarity of the domains' node sets"),
              ctx);
fail:
  free(paths);
  free(jac);
  mpnas_space_free(space);
  mpnas_context_free(ctx);
  return rc == 0 ? 0 : 1;
}
