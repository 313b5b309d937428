/* pareto_svg.h - an accuracy-cost scatter plot with its Pareto front as plain SVG 1.1
 * (header-only, static inline, libc only; used by bench_mdd.c).
 *
 * Every point is one configuration: a marker at its mean, error bars from its lo..hi in
 * each axis (drawn when they differ from the mean), a label placed next to it where it
 * overlaps no marker and no label placed before (else where it overlaps least; labels
 * moved further away get a leader line).
 * A style gives a point its marker, colour and legend entry; points that share a curve
 * are joined in x order (e.g. one method at several cost targets). The Pareto front of
 * the means (lower cost, higher accuracy) is drawn as a grey staircase behind.
 *
 *    pareto_plot p = {title, x_label, y_label, styles, ns, curves, nc, points, np};
 *    pareto_svg_write(&p, "front.svg");     0 on success, 1 on an I/O error */
#ifndef MPNAS_BENCH_PARETO_SVG_H
#define MPNAS_BENCH_PARETO_SVG_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svg_figures.h" /* svg__text: the escaping both figure writers use */

enum { PARETO_CIRCLE, PARETO_SQUARE, PARETO_TRIANGLE, PARETO_DIAMOND, PARETO_STAR };

typedef struct pareto_style {
  const char *name;   /* legend entry */
  const char *colour; /* "#rrggbb" */
  int marker;         /* PARETO_* */
  double radius;      /* marker size in px */
} pareto_style;

typedef struct pareto_curve {
  const char *name, *colour; /* legend entry, line colour */
} pareto_curve;

typedef struct pareto_point {
  const char *label;
  double x, x_lo, x_hi, y, y_lo, y_hi;
  int style; /* index into the styles */
  int curve; /* index into the curves, -1: none */
} pareto_point;

typedef struct pareto_plot {
  const char *title, *x_label, *y_label;
  const pareto_style *styles;
  int num_styles;
  const pareto_curve *curves;
  int num_curves;
  const pareto_point *points;
  int num_points;
} pareto_plot;

/* Geometry: the plot area and the legend to its right. */
#define PARETO__W 1090
#define PARETO__H 560
#define PARETO__LEFT 80
#define PARETO__TOP 56
#define PARETO__PW 620
#define PARETO__PH 420
#define PARETO__FONT 11
#define PARETO__PI 3.14159265358979323846
#define PARETO__CHAR_W 6.2 /* average glyph width of an 11 px sans-serif label */

typedef struct pareto__axis {
  double lo, hi, step;
} pareto__axis;

typedef struct pareto__box {
  double x0, y0, x1, y1;
} pareto__box;

/* An axis over [lo, hi] padded by 8%, widened to whole ticks of a 1-2-5 step. */
static inline pareto__axis pareto__make_axis(double lo, double hi) {
  double pad = hi > lo ? 0.08 * (hi - lo) : (fabs(lo) > 0 ? 0.05 * fabs(lo) : 1.0);
  lo -= pad;
  hi += pad;
  double raw = (hi - lo) / 6, mag = pow(10, floor(log10(raw))), f = raw / mag;
  pareto__axis a;
  a.step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  a.lo = floor(lo / a.step) * a.step;
  a.hi = ceil(hi / a.step) * a.step;
  return a;
}

static inline double pareto__px(const pareto__axis *a, double v) {
  return PARETO__LEFT + (v - a->lo) / (a->hi - a->lo) * PARETO__PW;
}
static inline double pareto__py(const pareto__axis *a, double v) {
  return PARETO__TOP + PARETO__PH - (v - a->lo) / (a->hi - a->lo) * PARETO__PH;
}

static inline void pareto__marker(FILE *f, int marker, double x, double y, double r,
                                  const char *colour) {
  const char *paint = "stroke=\"#222222\" stroke-width=\"1\" fill-opacity=\"0.9\"";
  switch (marker) {
    case PARETO_SQUARE:
      fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" %s/>\n",
              x - r * 0.85, y - r * 0.85, 1.7 * r, 1.7 * r, colour, paint);
      return;
    case PARETO_TRIANGLE:
      fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" %s/>\n", x,
              y - r * 1.1, x + r, y + r * 0.75, x - r, y + r * 0.75, colour, paint);
      return;
    case PARETO_DIAMOND:
      fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" %s/>\n",
              x, y - r * 1.2, x + r, y, x, y + r * 1.2, x - r, y, colour, paint);
      return;
    case PARETO_STAR:
      fprintf(f, "<polygon points=\"");
      for (int i = 0; i < 10; i++) {
        double a = -PARETO__PI / 2 + i * PARETO__PI / 5, rr = i % 2 ? r * 0.45 : r * 1.15;
        fprintf(f, "%.1f,%.1f ", x + rr * cos(a), y + rr * sin(a));
      }
      fprintf(f, "\" fill=\"%s\" %s/>\n", colour, paint);
      return;
    default:
      fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" %s/>\n", x, y, r, colour,
              paint);
  }
}

static inline void pareto__axes(FILE *f, const pareto_plot *p, const pareto__axis *ax,
                                const pareto__axis *ay) {
  fprintf(f, "<g font-size=\"%d\" fill=\"#333333\">\n", PARETO__FONT);
  for (double v = ax->lo; v <= ax->hi + ax->step / 2; v += ax->step) {
    double x = pareto__px(ax, v);
    int dec = ax->step >= 1 ? 0 : (int)ceil(-log10(ax->step) - 1e-9);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e4e4e4\"/>"
               "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*f</text>\n",
            x, PARETO__TOP, x, PARETO__TOP + PARETO__PH + 5, x, PARETO__TOP + PARETO__PH + 19,
            dec, v);
  }
  for (double v = ay->lo; v <= ay->hi + ay->step / 2; v += ay->step) {
    double y = pareto__py(ay, v);
    int dec = ay->step >= 1 ? 0 : (int)ceil(-log10(ay->step) - 1e-9);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
               "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
            PARETO__LEFT - 5, y, PARETO__LEFT + PARETO__PW, y, PARETO__LEFT - 8, y + 4, dec, v);
  }
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#555555\"/>\n",
          PARETO__LEFT, PARETO__TOP, PARETO__PW, PARETO__PH);
  fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">", PARETO__LEFT + PARETO__PW / 2,
          PARETO__TOP + PARETO__PH + 42);
  svg__text(f, p->x_label);
  fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\" "
             "transform=\"rotate(-90 %d %d)\">",
          22, PARETO__TOP + PARETO__PH / 2, 22, PARETO__TOP + PARETO__PH / 2);
  svg__text(f, p->y_label);
  fprintf(f, "</text>\n<text x=\"%d\" y=\"30\" font-size=\"16\" font-weight=\"bold\">", PARETO__LEFT);
  svg__text(f, p->title);
  fputs("</text>\n</g>\n", f);
}

/* By cost, then by accuracy descending (so a point is never on the front behind an
 * equally cheap, more accurate one). */
static inline int pareto__by_x(const void *a, const void *b) {
  const pareto_point *p = *(const pareto_point *const *)a, *q = *(const pareto_point *const *)b;
  if (p->x != q->x) return (p->x > q->x) - (p->x < q->x);
  return (p->y < q->y) - (p->y > q->y);
}

/* Everything drawn needs the axes and the points in x order; the labels also need what
 * they should not cover (obstacles, each with a weight). */
typedef struct pareto__scene {
  const pareto_plot *p;
  pareto__axis ax, ay;
  const pareto_point **sorted;
  double *vx, *vy; /* a polyline's vertices (pixels), at most 2 n + 1 */
  pareto__box *obst;
  double *weight;
  int num_obst, cap_obst;
} pareto__scene;

static inline void pareto__block(pareto__scene *sc, pareto__box b, double weight) {
  if (sc->num_obst == sc->cap_obst) {
    int cap = sc->cap_obst ? 2 * sc->cap_obst : 256;
    pareto__box *o = realloc(sc->obst, sizeof *o * (size_t)cap);
    if (o) sc->obst = o;
    double *w = realloc(sc->weight, sizeof *w * (size_t)cap);
    if (w) sc->weight = w;
    if (!o || !w) return; /* labels then just avoid less */
    sc->cap_obst = cap;
  }
  sc->obst[sc->num_obst] = b;
  sc->weight[sc->num_obst++] = weight;
}

/* A line as small boxes every 5 px. */
static inline void pareto__block_line(pareto__scene *sc, double x0, double y0, double x1, double y1,
                                      double weight) {
  int steps = 1 + (int)(hypot(x1 - x0, y1 - y0) / 5);
  for (int k = 0; k <= steps; k++) {
    double x = x0 + (x1 - x0) * k / steps, y = y0 + (y1 - y0) * k / steps;
    pareto__box b = {x - 2.5, y - 2.5, x + 2.5, y + 2.5};
    pareto__block(sc, b, weight);
  }
}

static inline void pareto__polyline(FILE *f, pareto__scene *sc, int n, const char *attrs) {
  fprintf(f, "<polyline fill=\"none\" %s points=\"", attrs);
  for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", sc->vx[i], sc->vy[i]);
  fputs("\"/>\n", f);
  for (int i = 0; i + 1 < n; i++)
    pareto__block_line(sc, sc->vx[i], sc->vy[i], sc->vx[i + 1], sc->vy[i + 1], 1);
}

/* The non-dominated means (no other point as cheap or cheaper and as accurate or more,
 * one of them strictly) as a staircase, extended to the right edge. */
static inline void pareto__front(FILE *f, pareto__scene *sc) {
  double best = -HUGE_VAL;
  int n = 0;
  for (int i = 0; i < sc->p->num_points; i++) {
    const pareto_point *q = sc->sorted[i];
    if (!(q->y > best)) continue;
    double x = pareto__px(&sc->ax, q->x);
    if (n > 0) sc->vx[n] = x, sc->vy[n++] = pareto__py(&sc->ay, best);
    sc->vx[n] = x, sc->vy[n++] = pareto__py(&sc->ay, q->y);
    best = q->y;
  }
  sc->vx[n] = PARETO__LEFT + PARETO__PW, sc->vy[n] = sc->vy[n - 1], n++;
  pareto__polyline(f, sc, n, "stroke=\"#9a9a9a\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\"");
}

static inline void pareto__curves(FILE *f, pareto__scene *sc) {
  for (int c = 0; c < sc->p->num_curves; c++) {
    int n = 0;
    for (int i = 0; i < sc->p->num_points; i++) {
      const pareto_point *q = sc->sorted[i];
      if (q->curve == c) sc->vx[n] = pareto__px(&sc->ax, q->x), sc->vy[n++] = pareto__py(&sc->ay, q->y);
    }
    char attrs[64];
    snprintf(attrs, sizeof attrs, "stroke=\"%s\" stroke-width=\"2\"", sc->p->curves[c].colour);
    if (n > 1) pareto__polyline(f, sc, n, attrs);
  }
}

static inline void pareto__error_bars(FILE *f, pareto__scene *sc) {
  fputs("<g stroke=\"#444444\" stroke-width=\"1\">\n", f);
  for (int i = 0; i < sc->p->num_points; i++) {
    const pareto_point *q = &sc->p->points[i];
    double x = pareto__px(&sc->ax, q->x), y = pareto__py(&sc->ay, q->y);
    if (q->x_hi > q->x_lo) {
      double a = pareto__px(&sc->ax, q->x_lo), b = pareto__px(&sc->ax, q->x_hi);
      fprintf(f, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fv6M%.1f %.1fv6\"/>\n", a, y, b, a, y - 3, b, y - 3);
      pareto__block_line(sc, a, y, b, y, 1);
    }
    if (q->y_hi > q->y_lo) {
      double a = pareto__py(&sc->ay, q->y_lo), b = pareto__py(&sc->ay, q->y_hi);
      fprintf(f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh6M%.1f %.1fh6\"/>\n", x, a, b, x - 3, a, x - 3, b);
      pareto__block_line(sc, x, a, x, b, 1);
    }
  }
  fputs("</g>\n", f);
}

static inline void pareto__markers(FILE *f, pareto__scene *sc) {
  for (int i = 0; i < sc->p->num_points; i++) {
    const pareto_point *q = &sc->p->points[i];
    const pareto_style *s = &sc->p->styles[q->style];
    double x = pareto__px(&sc->ax, q->x), y = pareto__py(&sc->ay, q->y);
    pareto__marker(f, s->marker, x, y, s->radius, s->colour);
    pareto__box b = {x - s->radius, y - s->radius, x + s->radius, y + s->radius};
    pareto__block(sc, b, 3);
  }
}

static inline double pareto__overlap(const pareto__box *a, const pareto__box *b) {
  double w = fmin(a->x1, b->x1) - fmax(a->x0, b->x0), h = fmin(a->y1, b->y1) - fmax(a->y0, b->y0);
  return w > 0 && h > 0 ? w * h : 0;
}

/* The box of a label of `len` characters with its anchor at (x, y): anchor 0 start,
 * 1 middle, 2 end. */
static inline pareto__box pareto__label_box(double x, double y, size_t len, int anchor) {
  double w = PARETO__CHAR_W * (double)len, x0 = x - (anchor == 1 ? w / 2 : anchor == 2 ? w : 0);
  pareto__box b = {x0, y - PARETO__FONT + 2, x0 + w, y + 3};
  return b;
}

/* How bad a label box is: what it covers (markers and labels 3x, lines 1x) and what
 * leaves the plot area (3x). */
static inline double pareto__label_cost(const pareto__scene *sc, const pareto__box *b) {
  pareto__box area = {PARETO__LEFT + 2, PARETO__TOP + 2, PARETO__LEFT + PARETO__PW - 2,
                      PARETO__TOP + PARETO__PH - 2};
  double cost = 3 * ((b->x1 - b->x0) * (b->y1 - b->y0) - pareto__overlap(b, &area));
  for (int k = 0; k < sc->num_obst; k++) cost += sc->weight[k] * pareto__overlap(b, &sc->obst[k]);
  return cost;
}

/* Every label at the first candidate offset that covers nothing drawn and stays inside
 * the plot, else at the candidate with the least cost; far ones get a leader line. */
static inline void pareto__labels(FILE *f, pareto__scene *sc) {
  static const double cand[][3] = {{9, 4, 0},   {-9, 4, 2},   {0, -11, 1},  {0, 19, 1},
                                   {9, -8, 0},  {9, 16, 0},   {-9, -8, 2},  {-9, 16, 2},
                                   {12, -20, 0}, {12, 28, 0}, {-12, -20, 2}, {-12, 28, 2},
                                   {14, -32, 0}, {14, 40, 0}, {-14, -32, 2}, {-14, 40, 2}};
  const int nc = (int)(sizeof cand / sizeof cand[0]);
  fprintf(f, "<g font-size=\"%d\" fill=\"#111111\">\n", PARETO__FONT);
  for (int i = 0; i < sc->p->num_points; i++) {
    const pareto_point *q = &sc->p->points[i];
    double x = pareto__px(&sc->ax, q->x), y = pareto__py(&sc->ay, q->y), best_cost = HUGE_VAL;
    double r = sc->p->styles[q->style].radius - 5; /* bigger markers push labels out */
    size_t len = strlen(q->label);
    int best = 0;
    for (int c = 0; c < nc && best_cost > 0; c++) {
      double dx = cand[c][0] + (cand[c][0] > 0 ? r : cand[c][0] < 0 ? -r : 0);
      double dy = cand[c][1] + (cand[c][1] > 4 ? r : cand[c][1] < 0 ? -r : 0);
      pareto__box b = pareto__label_box(x + dx, y + dy, len, (int)cand[c][2]);
      double cost = pareto__label_cost(sc, &b);
      if (cost < best_cost) best_cost = cost, best = c;
    }
    double lx = x + cand[best][0] + (cand[best][0] > 0 ? r : cand[best][0] < 0 ? -r : 0);
    double ly = y + cand[best][1] + (cand[best][1] > 4 ? r : cand[best][1] < 0 ? -r : 0);
    pareto__block(sc, pareto__label_box(lx, ly, len, (int)cand[best][2]), 3);
    if (best >= 8)
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999999\"/>\n", x, y,
              lx, ly - 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", lx, ly,
            cand[best][2] == 0 ? "start" : cand[best][2] == 1 ? "middle" : "end");
    svg__text(f, q->label);
    fputs("</text>\n", f);
  }
  fputs("</g>\n", f);
}

/* How many points use style s (curve < 0) or curve c. */
static inline int pareto__count(const pareto_plot *p, int s, int c) {
  int n = 0;
  for (int i = 0; i < p->num_points; i++)
    n += c < 0 ? p->points[i].style == s : p->points[i].curve == c;
  return n;
}

/* The styles and curves the points use, the front, the error bars. */
static inline void pareto__legend(FILE *f, const pareto_plot *p) {
  int x = PARETO__LEFT + PARETO__PW + 24, y = PARETO__TOP + 10;
  fprintf(f, "<g font-size=\"12\" fill=\"#111111\">\n");
  for (int s = 0; s < p->num_styles; s++) {
    if (pareto__count(p, s, -1) == 0) continue;
    pareto__marker(f, p->styles[s].marker, x + 10, y - 4, p->styles[s].radius, p->styles[s].colour);
    fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 26, y);
    svg__text(f, p->styles[s].name);
    fputs("</text>\n", f);
    y += 22;
  }
  for (int c = 0; c < p->num_curves; c++) {
    if (pareto__count(p, -1, c) < 2) continue;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/><text x=\"%d\" y=\"%d\">",
            x, y - 4, x + 20, y - 4, p->curves[c].colour, x + 26, y);
    svg__text(f, p->curves[c].name);
    fputs("</text>\n", f);
    y += 22;
  }
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#9a9a9a\" stroke-width=\"1.5\" "
             "stroke-dasharray=\"6,4\"/><text x=\"%d\" y=\"%d\">Pareto front of the means</text>\n",
          x, y - 4, x + 20, y - 4, x + 26, y);
  y += 22;
  fprintf(f, "<path d=\"M%d %dH%dM%d %dv6M%d %dv6\" stroke=\"#444444\"/><text x=\"%d\" y=\"%d\">"
             "error bars: seed min..max</text>\n</g>\n",
          x, y - 4, x + 20, x, y - 7, x + 20, y - 7, x + 26, y);
}

static inline int pareto_svg_write(const pareto_plot *p, const char *file) {
  if (p->num_points < 1) return 1;
  pareto__scene sc;
  memset(&sc, 0, sizeof sc);
  sc.p = p;
  double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL;
  size_t n = (size_t)p->num_points;
  sc.sorted = malloc(sizeof *sc.sorted * n);
  sc.vx = malloc(sizeof(double) * (2 * n + 1));
  sc.vy = malloc(sizeof(double) * (2 * n + 1));
  FILE *f = sc.sorted && sc.vx && sc.vy ? fopen(file, "w") : NULL;
  if (f == NULL) {
    free(sc.sorted), free(sc.vx), free(sc.vy);
    return 1;
  }
  for (int i = 0; i < p->num_points; i++) {
    const pareto_point *q = &p->points[i];
    x0 = fmin(x0, fmin(q->x, q->x_lo)), x1 = fmax(x1, fmax(q->x, q->x_hi));
    y0 = fmin(y0, fmin(q->y, q->y_lo)), y1 = fmax(y1, fmax(q->y, q->y_hi));
    sc.sorted[i] = q;
  }
  qsort(sc.sorted, n, sizeof *sc.sorted, pareto__by_x);
  sc.ax = pareto__make_axis(x0, x1);
  sc.ay = pareto__make_axis(y0, y1);
  fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
             "version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
          PARETO__W, PARETO__H, PARETO__W, PARETO__H, PARETO__W, PARETO__H);
  pareto__axes(f, p, &sc.ax, &sc.ay);
  pareto__front(f, &sc);
  pareto__curves(f, &sc);
  pareto__error_bars(f, &sc);
  pareto__markers(f, &sc);
  pareto__labels(f, &sc);
  pareto__legend(f, p);
  fputs("</svg>\n", f);
  free(sc.sorted), free(sc.vx), free(sc.vy), free(sc.obst), free(sc.weight);
  int bad = ferror(f);
  return (fclose(f) != 0 || bad) ? 1 : 0;
}

#endif
