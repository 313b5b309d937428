/* svg_figures.h - the two figures of a multi-path search result as plain SVG 1.1 text
 * (header-only, static inline functions, no dependency beyond libc and the public API).
 *
 *  (a) the multi-path architecture, like the MPNAS paper's figure: the searchable layers
 *      as columns between a stem and a head, each layer's candidate ops as nodes in its
 *      column, every node coloured by its usage (shared by several domains / used by
 *      one / unused; `zero` is the dashed skip node), and each domain's path as a
 *      polyline in its own colour through the node it chose in every layer, with a
 *      legend of the domains;
 *  (b) the Jaccard similarity of the domains' node sets as a heat map with the value in
 *      every cell and the domain names on both axes.
 *
 *    svg_write_architecture(model, "arch.svg")         a model's figures, to files
 *    svg_write_jaccard(model, "jaccard.svg")
 *    svg_model_architecture(f, model, title)           the same to a FILE *, with a title
 *    svg_model_jaccard(f, model, title)
 *    svg_paths_architecture(f, space, paths, n, names, title)   any paths over a space,
 *                                                     paths[d * layers + l]
 *    svg_matrix_jaccard(f, matrix, n, names, title)    any matrix, matrix[a * n + b]
 *
 * Every function returns 0 on success, else an mpnas_status (< 0) of the failing library
 * call or 1 for an I/O or allocation failure. Names are XML-escaped. Used by
 * examples/figures.c and examples/quickstart.c; a search-only program can draw its
 * supernet's result with the last two. docs/FIGURES.md shows the figures. */
#ifndef MPNAS_EXAMPLES_SVG_FIGURES_H
#define MPNAS_EXAMPLES_SVG_FIGURES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpnas.h"

#define SVG_MAX_NAME 64

/* Colours: a domain palette (Tableau 10, then a generated sequence) and node usage. */
static inline void svg__domain_colour(int32_t d, char out[8]) {
  static const char *const palette[10] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                          "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                          "#9c755f", "#bab0ac"};
  if (d < 10) {
    memcpy(out, palette[d], 8);
    return;
  }
  /* beyond 10: golden-ratio hues at fixed saturation/value, converted to RGB */
  double h = (double)d * 0.618033988749895;
  h -= (double)(int64_t)h;
  double s = 0.65, v = 0.85, c = v * s, hp = h * 6.0;
  double hm = hp - 2.0 * (double)(int64_t)(hp / 2.0);
  double x = c * (1.0 - (hm - 1.0 < 0 ? 1.0 - hm : hm - 1.0)), m = v - c, r = 0, g = 0, b = 0;
  if (hp < 1) r = c, g = x;
  else if (hp < 2) r = x, g = c;
  else if (hp < 3) g = c, b = x;
  else if (hp < 4) g = x, b = c;
  else if (hp < 5) r = x, b = c;
  else r = c, b = x;
  snprintf(out, 8, "#%02x%02x%02x", (int)((r + m) * 255 + 0.5), (int)((g + m) * 255 + 0.5),
           (int)((b + m) * 255 + 0.5));
}

#define SVG__SHARED_FILL "#f4a259"
#define SVG__EXCLUSIVE_FILL "#a8d0e6"
#define SVG__UNUSED_FILL "#eeeeee"

/* Write text with &, <, >, " and ' escaped. */
static inline void svg__text(FILE *f, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '&': fputs("&amp;", f); break;
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '"': fputs("&quot;", f); break;
      case '\'': fputs("&apos;", f); break;
      default: fputc(*s, f);
    }
  }
}

static inline void svg__header(FILE *f, int width, int height) {
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"Helvetica, Arial, sans-serif\">\n"
          "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
          width, height, width, height, width, height);
}

static inline void svg__title(FILE *f, int x, const char *title) {
  if (title == NULL || title[0] == 0) return;
  fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"16\" font-weight=\"bold\">", x);
  svg__text(f, title);
  fputs("</text>\n", f);
}

/* A node's label as the path text writes it: "k5e3", "k3e6-se", "skip" for zero. */
static inline void svg__op_label(int32_t k, int32_t e, int32_t se, char out[24]) {
  if (k == 0) snprintf(out, 24, "skip");
  else snprintf(out, 24, "k%de%d%s", (int)k, (int)e, se ? "-se" : "");
}

/* The architecture figure. `model` non-NULL: node usage from mpnas_model_node_users,
 * else from mpnas_space_node_users over `paths`. */
static inline int svg__architecture(FILE *f, const mpnas_space *space, const mpnas_model *model,
                             const int32_t *paths, int32_t nd, const char *const *names,
                             const char *title) {
  int64_t layers64;
  mpnas_status st = mpnas_space_get_int(space, MPNAS_SPACE_NUM_LAYERS, &layers64);
  if (st != MPNAS_OK) return st;
  int32_t layers = (int32_t)layers64, max_ops = 1;
  for (int32_t l = 0; l < layers; l++) {
    int32_t n;
    if ((st = mpnas_space_num_ops(space, l, &n)) != MPNAS_OK) return st;
    if (n > max_ops) max_ops = n;
  }
  /* geometry */
  const int node_w = 64, node_h = 24, gap = 12, col_w = 96, left = 40, top = 60;
  const int stem_x = left, first_x = left + col_w; /* column centres: x + node_w / 2 */
  const int head_x = first_x + layers * col_w;
  const int column_h = max_ops * node_h + (max_ops - 1) * gap;
  const int legend_y = top + column_h + 50;
  size_t longest = 1;
  for (int32_t d = 0; d < nd; d++)
    if (strlen(names[d]) > longest) longest = strlen(names[d]);
  const int legend_col = 40 + 7 * (int)longest > 170 ? 40 + 7 * (int)longest : 170;
  int width = head_x + node_w + left;
  if (width < 3 * 215 + 2 * left) width = 3 * 215 + 2 * left;
  if (width < legend_col + 2 * left) width = legend_col + 2 * left;
  const int per_row = (width - 2 * left) / legend_col;
  const int legend_rows = (nd + per_row - 1) / per_row + 1;
  const int height = legend_y + legend_rows * 22 + 20;
  const int mid_y = top + column_h / 2;

  /* node centre y of (layer, op): each column's ops centred vertically */
  int32_t *nops = malloc(sizeof(int32_t) * (size_t)(layers > 0 ? layers : 1));
  if (nops == NULL) return 1;
  for (int32_t l = 0; l < layers; l++) mpnas_space_num_ops(space, l, &nops[l]);
#define SVG__NODE_Y(l, op)                                                              \
  (top + (column_h - (nops[l] * node_h + (nops[l] - 1) * gap)) / 2 + (op) * (node_h + gap) + \
   node_h / 2)

  svg__header(f, width, height);
  svg__title(f, left, title);
  fprintf(f, "<g font-size=\"11\" text-anchor=\"middle\" fill=\"#444444\">\n");
  fprintf(f, "<text x=\"%d\" y=\"%d\">stem</text>\n", stem_x + node_w / 2, top - 14);
  for (int32_t l = 0; l < layers; l++)
    fprintf(f, "<text x=\"%d\" y=\"%d\">layer %d</text>\n", first_x + l * col_w + node_w / 2,
            top - 14, (int)l + 1);
  fprintf(f, "<text x=\"%d\" y=\"%d\">head</text>\n</g>\n", head_x + node_w / 2, top - 14);

  /* paths first (under the nodes), each offset a little so overlapping ones show */
  fprintf(f, "<g fill=\"none\" stroke-width=\"2.5\" stroke-linejoin=\"round\" stroke-opacity=\"0.85\">\n");
  for (int32_t d = 0; d < nd; d++) {
    char colour[8];
    svg__domain_colour(d, colour);
    double off = nd > 1 ? ((double)d - (double)(nd - 1) / 2.0) * (double)(node_h - 8) / (double)(nd - 1) : 0.0;
    fprintf(f, "<polyline stroke=\"%s\" points=\"%d,%.1f", colour, stem_x + node_w / 2,
            (double)mid_y + off);
    for (int32_t l = 0; l < layers; l++) {
      int32_t op = paths[(size_t)d * (size_t)layers + (size_t)l];
      if (op < 0 || op >= nops[l]) op = 0;
      int cx = first_x + l * col_w;
      double y = (double)SVG__NODE_Y(l, op) + off;
      fprintf(f, " %d,%.1f %d,%.1f", cx, y, cx + node_w, y);
    }
    fprintf(f, " %d,%.1f\"><title>", head_x + node_w / 2, (double)mid_y + off);
    svg__text(f, names[d]);
    fputs("</title></polyline>\n", f);
  }
  fputs("</g>\n", f);

  /* nodes */
  fprintf(f, "<g font-size=\"11\" text-anchor=\"middle\">\n");
  fprintf(f,
          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"5\" fill=\"%s\" stroke=\"#555555\"/>"
          "<text x=\"%d\" y=\"%d\">stem</text>\n",
          stem_x, mid_y - node_h / 2, node_w, node_h, SVG__SHARED_FILL, stem_x + node_w / 2, mid_y + 4);
  fprintf(f,
          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"5\" fill=\"%s\" stroke=\"#555555\"/>"
          "<text x=\"%d\" y=\"%d\">head</text>\n",
          head_x, mid_y - node_h / 2, node_w, node_h, SVG__SHARED_FILL, head_x + node_w / 2, mid_y + 4);
  int shared = 0, exclusive = 0, unused = 0;
  for (int32_t l = 0; l < layers; l++) {
    for (int32_t op = 0; op < nops[l]; op++) {
      int32_t k, e, se, users = 0;
      if ((st = mpnas_space_op_info(space, l, op, &k, &e, &se)) != MPNAS_OK) goto fail;
      char label[24];
      svg__op_label(k, e, se, label);
      int x = first_x + l * col_w, y = SVG__NODE_Y(l, op) - node_h / 2;
      if (k == 0) { /* zero: the skip node */
        int chosen = 0;
        for (int32_t d = 0; d < nd; d++) chosen += paths[(size_t)d * (size_t)layers + (size_t)l] == op;
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"12\" fill=\"#ffffff\" "
                "fill-opacity=\"0.85\" stroke=\"#888888\" stroke-dasharray=\"4,3\"/>"
                "<text x=\"%d\" y=\"%d\" fill=\"#666666\" font-style=\"italic\">%s<title>skip: "
                "%d domain(s)</title></text>\n",
                x, y, node_w, node_h, x + node_w / 2, y + node_h / 2 + 4, label, chosen);
        continue;
      }
      if (model != NULL)
        st = mpnas_model_node_users(model, l, op, &users);
      else
        st = mpnas_space_node_users(space, paths, (size_t)nd, (size_t)layers, l, op, &users);
      if (st != MPNAS_OK) goto fail;
      const char *fill = users >= 2 ? SVG__SHARED_FILL : users == 1 ? SVG__EXCLUSIVE_FILL : SVG__UNUSED_FILL;
      const char *stroke = users >= 1 ? "#333333" : "#bbbbbb";
      const char *ink = users >= 1 ? "#111111" : "#999999";
      if (users >= 2) shared++;
      else if (users == 1) exclusive++;
      else unused++;
      fprintf(f,
              "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"5\" fill=\"%s\" "
              "fill-opacity=\"0.9\" stroke=\"%s\"/>"
              "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s<title>layer %d %s: %d domain(s)</title></text>\n",
              x, y, node_w, node_h, fill, stroke, x + node_w / 2, y + node_h / 2 + 4, ink, label,
              (int)l + 1, label, (int)users);
    }
  }
  fputs("</g>\n", f);

  /* legend: usage, then the domains, as many per row as fit */
  fprintf(f, "<g font-size=\"12\">\n");
  const char *usage_fill[3] = {SVG__SHARED_FILL, SVG__EXCLUSIVE_FILL, SVG__UNUSED_FILL};
  const char *usage_name[3] = {"shared (2+ domains)", "exclusive (1 domain)", "unused"};
  int usage_count[3] = {shared, exclusive, unused};
  for (int i = 0; i < 3; i++) {
    int x = left + i * 215;
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"22\" height=\"14\" rx=\"3\" fill=\"%s\" stroke=\"#555555\"/>"
            "<text x=\"%d\" y=\"%d\">%s: %d</text>\n",
            x, legend_y - 11, usage_fill[i], x + 28, legend_y, usage_name[i], usage_count[i]);
  }
  for (int32_t d = 0; d < nd; d++) {
    char colour[8];
    svg__domain_colour(d, colour);
    int x = left + (d % per_row) * legend_col, y = legend_y + 22 * (1 + d / per_row);
    fprintf(f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>"
            "<text x=\"%d\" y=\"%d\">",
            x, y - 4, x + 22, y - 4, colour, x + 28, y);
    svg__text(f, names[d]);
    fputs("</text>\n", f);
  }
  fputs("</g>\n</svg>\n", f);
#undef SVG__NODE_Y
  free(nops);
  return ferror(f) ? 1 : 0;
fail:
  free(nops);
  return st;
}

/* (a) from a space, D paths (paths[d * layers + l]) and D names. */
static inline int svg_paths_architecture(FILE *f, const mpnas_space *space, const int32_t *paths,
                                  int32_t num_domains, const char *const *names,
                                  const char *title) {
  return svg__architecture(f, space, NULL, paths, num_domains, names, title);
}

/* (b) the heat map of a D x D matrix (row-major) with D names. */
static inline int svg_matrix_jaccard(FILE *f, const double *matrix, int32_t n, const char *const *names,
                             const char *title) {
  const int cell = 56, top = 60;
  size_t longest = 1;
  for (int32_t i = 0; i < n; i++)
    if (strlen(names[i]) > longest) longest = strlen(names[i]);
  const int label_w = 16 + (int)longest * 7; /* room for the row names */
  const int left = 20 + label_w, header_h = 10 + (int)((double)longest * 7 * 0.72);
  const int grid_y = top + header_h;
  const int bar_x = left + n * cell + 30;
  /* the last column's slanted name reaches ~0.72 x its length to the right */
  int width = bar_x + 80, height = grid_y + n * cell + 40;
  if (width < left + n * cell + header_h + 20) width = left + n * cell + header_h + 20;
  if (height < grid_y + 160 + 40) height = grid_y + 200;
  svg__header(f, width, height);
  svg__title(f, 20, title);
  fprintf(f, "<g font-size=\"12\">\n");
  for (int32_t i = 0; i < n; i++) {
    /* row names right-aligned at the left, column names slanted above */
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, grid_y + i * cell + cell / 2 + 4);
    svg__text(f, names[i]);
    fputs("</text>\n", f);
    int cx = left + i * cell + cell / 2;
    fprintf(f, "<text x=\"%d\" y=\"%d\" transform=\"rotate(-45 %d %d)\">", cx, grid_y - 8, cx, grid_y - 8);
    svg__text(f, names[i]);
    fputs("</text>\n", f);
  }
  for (int32_t a = 0; a < n; a++)
    for (int32_t b = 0; b < n; b++) {
      double v = matrix[(size_t)a * (size_t)n + (size_t)b];
      double t = v < 0 ? 0 : v > 1 ? 1 : v;
      /* white (0) to dark blue (1): #ffffff -> #08306b */
      int r = (int)(255 + (8 - 255) * t + 0.5), g = (int)(255 + (48 - 255) * t + 0.5),
          bl = (int)(255 + (107 - 255) * t + 0.5);
      int x = left + b * cell, y = grid_y + a * cell;
      fprintf(f,
              "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\" "
              "stroke=\"#ffffff\"/><text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\">%.2f</text>\n",
              x, y, cell, cell, r, g, bl, x + cell / 2, y + cell / 2 + 4, t > 0.55 ? "#ffffff" : "#111111", v);
    }
  /* colour scale */
  fprintf(f,
          "<defs><linearGradient id=\"jaccard-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
          "<stop offset=\"0\" stop-color=\"#ffffff\"/><stop offset=\"1\" stop-color=\"#08306b\"/>"
          "</linearGradient></defs>\n"
          "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"160\" fill=\"url(#jaccard-scale)\" stroke=\"#888888\"/>\n"
          "<text x=\"%d\" y=\"%d\">1.0</text><text x=\"%d\" y=\"%d\">0.5</text><text x=\"%d\" y=\"%d\">0.0</text>\n"
          "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#444444\">Jaccard</text>\n",
          bar_x, grid_y, bar_x + 22, grid_y + 5, bar_x + 22, grid_y + 84, bar_x + 22, grid_y + 164,
          bar_x - 6, grid_y - 10);
  fputs("</g>\n</svg>\n", f);
  return ferror(f) ? 1 : 0;
}

/* A model's domain names, paths and space (arrays malloc'ed; free with svg__free_model). */
typedef struct {
  int32_t n, layers;
  const mpnas_space *space;
  int32_t *paths;
  char (*names)[SVG_MAX_NAME];
  const char **name_ptrs;
} svg__model_info;

static inline void svg__free_model(svg__model_info *m) {
  free(m->paths);
  free(m->names);
  free(m->name_ptrs);
}

static inline int svg__read_model(const mpnas_model *model, svg__model_info *m) {
  memset(m, 0, sizeof *m);
  mpnas_status st;
  int64_t layers;
  if ((st = mpnas_model_num_domains(model, &m->n)) != MPNAS_OK ||
      (st = mpnas_model_space(model, &m->space)) != MPNAS_OK ||
      (st = mpnas_space_get_int(m->space, MPNAS_SPACE_NUM_LAYERS, &layers)) != MPNAS_OK)
    return st;
  m->layers = (int32_t)layers;
  size_t n = (size_t)(m->n > 0 ? m->n : 1);
  m->paths = malloc(sizeof(int32_t) * n * (size_t)(m->layers > 0 ? m->layers : 1));
  m->names = malloc(sizeof *m->names * n);
  m->name_ptrs = malloc(sizeof *m->name_ptrs * n);
  if (!m->paths || !m->names || !m->name_ptrs) {
    svg__free_model(m);
    return 1;
  }
  for (int32_t d = 0; d < m->n; d++) {
    if ((st = mpnas_model_domain_name(model, d, m->names[d], SVG_MAX_NAME, NULL)) != MPNAS_OK ||
        (st = mpnas_model_path(model, d, m->paths + (size_t)d * (size_t)m->layers,
                               (size_t)m->layers)) != MPNAS_OK) {
      svg__free_model(m);
      return st;
    }
    m->name_ptrs[d] = m->names[d];
  }
  return 0;
}

/* (a) from a model (node usage through mpnas_model_node_users). */
static inline int svg_model_architecture(FILE *f, const mpnas_model *model, const char *title) {
  svg__model_info m;
  int rc = svg__read_model(model, &m);
  if (rc != 0) return rc;
  rc = svg__architecture(f, m.space, model, m.paths, m.n, m.name_ptrs, title);
  svg__free_model(&m);
  return rc;
}

/* (b) from a model (mpnas_model_jaccard). */
static inline int svg_model_jaccard(FILE *f, const mpnas_model *model, const char *title) {
  svg__model_info m;
  int rc = svg__read_model(model, &m);
  if (rc != 0) return rc;
  double *jac = malloc(sizeof(double) * (size_t)(m.n > 0 ? m.n * m.n : 1));
  if (jac == NULL) rc = 1;
  else if ((rc = mpnas_model_jaccard(model, jac, (size_t)m.n * (size_t)m.n)) == MPNAS_OK)
    rc = svg_matrix_jaccard(f, jac, m.n, m.name_ptrs, title);
  free(jac);
  svg__free_model(&m);
  return rc;
}

/* (a) and (b) of a model, each to a file. */
static inline int svg_write_architecture(const mpnas_model *model, const char *file) {
  FILE *f = fopen(file, "w");
  if (f == NULL) return 1;
  int rc = svg_model_architecture(f, model, "Multi-path architecture");
  if (fclose(f) != 0 && rc == 0) rc = 1;
  return rc;
}

static inline int svg_write_jaccard(const mpnas_model *model, const char *file) {
  FILE *f = fopen(file, "w");
  if (f == NULL) return 1;
  int rc = svg_model_jaccard(f, model, "Jaccard similarity of the domains' node sets");
  if (fclose(f) != 0 && rc == 0) rc = 1;
  return rc;
}

#endif
