/* space.c - see space.h. */
#include "net/space.h"

#include <stddef.h>
#include <string.h>

#include "common/settings.h"
#include "data/domain_data.h"

/* MPNAS_SPACE_*: ranges and defaults (MPNAS_PRESET_EMPTY's values, the base of every
 * preset). The model file's SPCE section starts with the stored rows, in this order:
 * never reorder them. */
#define AT(member) offsetof(mpnas_space, member)
#define I32 MPNAS__SETTING_I32
static const mpnas__setting FIELDS[] = {
    MPNAS__INT(MPNAS_SPACE_INPUT_HEIGHT, "input_height", I32, AT(in_h), 1, 4096, 32),
    MPNAS__INT(MPNAS_SPACE_INPUT_WIDTH, "input_width", I32, AT(in_w), 1, 4096, 32),
    MPNAS__INT(MPNAS_SPACE_INPUT_CHANNELS, "input_channels", I32, AT(in_c), 1,
               MPNAS__MAX_IN_CHANNELS, 3),
    MPNAS__INT(MPNAS_SPACE_STEM_CHANNELS, "stem_channels", I32, AT(stem_c), 1, 4096, 16),
    MPNAS__INT_FLAGS(MPNAS_SPACE_STEM_KERNEL, "stem_kernel", I32, AT(stem_k), 1, 11, 3,
                     MPNAS_PARAM_ODD),
    MPNAS__INT(MPNAS_SPACE_STEM_STRIDE, "stem_stride", I32, AT(stem_s), 1, 2, 1),
    MPNAS__ENUM(MPNAS_SPACE_STEM_ACTIVATION, "stem_activation", AT(stem_act), MPNAS_ACT_NONE,
                MPNAS_ACT_HSIGMOID, MPNAS_ACT_RELU6, "MPNAS_ACT_"),
    MPNAS__INT(MPNAS_SPACE_HEAD_CHANNELS, "head_channels", I32, AT(head_c), 1, 8192, 256),
    MPNAS__ENUM(MPNAS_SPACE_HEAD_ACTIVATION, "head_activation", AT(head_act), MPNAS_ACT_NONE,
                MPNAS_ACT_HSIGMOID, MPNAS_ACT_RELU6, "MPNAS_ACT_"),
    MPNAS__ENUM(MPNAS_SPACE_SE_MODE, "se_mode", AT(se_mode), MPNAS_SE_NEVER, MPNAS_SE_ALWAYS,
                MPNAS_SE_NEVER, "MPNAS_SE_"),
    MPNAS__READ_ONLY(MPNAS_SPACE_NUM_STAGES, "num_stages", I32),
    MPNAS__READ_ONLY(MPNAS_SPACE_NUM_LAYERS, "num_layers", I32),
};
#undef AT
#undef I32

const mpnas__settings mpnas__space_settings = {FIELDS, sizeof FIELDS / sizeof FIELDS[0], "space"};

int32_t mpnas__space_num_layers(const mpnas_space *s) {
  int32_t n = 0;
  for (int32_t i = 0; i < s->nstages; i++) n += s->stages[i].layers;
  return n;
}

static void choices(const mpnas_space *s, const mpnas__stage *st, const int32_t **k,
                    int32_t *nk, const int32_t **e, int32_t *ne) {
  if (st->own_choices) {
    *k = st->kernels, *nk = st->nk, *e = st->expansions, *ne = st->ne;
  } else {
    *k = s->kernels, *nk = s->nk, *e = s->expansions, *ne = s->ne;
  }
}

mpnas__image_shape mpnas__space_image_shape(const mpnas_space *s) {
  mpnas__image_shape shape = {s->in_h, s->in_w, s->in_c};
  return shape;
}

mpnas__conv_geom mpnas__space_stem_geom(const mpnas_space *s) {
  mpnas__conv_geom g = {s->in_c, s->stem_c, s->stem_k, s->stem_s, s->stem_act};
  return g;
}

mpnas__conv_geom mpnas__space_head_geom(const mpnas_space *s) {
  int32_t h, w, c;
  mpnas__space_final(s, &h, &w, &c);
  mpnas__conv_geom g = {c, s->head_c, 1, 1, s->head_act};
  return g;
}

void mpnas__space_stem_out(const mpnas_space *s, int32_t *h, int32_t *w) {
  *h = mpnas__out_size_i(s->in_h, s->stem_s);
  *w = mpnas__out_size_i(s->in_w, s->stem_s);
}

void mpnas__space_layer(const mpnas_space *s, int32_t layer, mpnas__layer *l) {
  memset(l, 0, sizeof *l);
  int32_t h, w, c = s->stem_c;
  mpnas__space_stem_out(s, &h, &w);
  int32_t idx = 0;
  for (int32_t i = 0; i < s->nstages; i++) {
    const mpnas__stage *st = &s->stages[i];
    for (int32_t j = 0; j < st->layers; j++, idx++) {
      int32_t stride = j == 0 ? st->stride : 1;
      if (idx == layer) {
        const int32_t *k, *e;
        int32_t nk, ne;
        choices(s, st, &k, &nk, &e, &ne);
        l->stage = i;
        l->index_in_stage = j;
        l->cin = c;
        l->cout = st->cout;
        l->stride = stride;
        l->act = st->act;
        l->h = h;
        l->w = w;
        l->ho = mpnas__out_size_i(h, stride);
        l->wo = mpnas__out_size_i(w, stride);
        l->skippable = st->skippable && j > 0;
        l->has_se = s->se_mode != MPNAS_SE_NEVER;
        l->nops = (l->skippable ? 1 : 0) + nk * ne * (s->se_mode == MPNAS_SE_CHOICE ? 2 : 1);
        for (int32_t a = 0; a < nk; a++)
          if (k[a] > l->kmax) l->kmax = k[a];
        for (int32_t a = 0; a < ne; a++)
          if (e[a] > l->emax) l->emax = e[a];
        return;
      }
      h = mpnas__out_size_i(h, stride);
      w = mpnas__out_size_i(w, stride);
      c = st->cout;
    }
  }
}

mpnas__op mpnas__space_op(const mpnas_space *s, const mpnas__layer *l, int32_t op) {
  mpnas__op r = {0, 0, 0};
  if (l->skippable) {
    if (op == 0) return r;
    op--;
  }
  const mpnas__stage *st = &s->stages[l->stage];
  const int32_t *k, *e;
  int32_t nk, ne;
  choices(s, st, &k, &nk, &e, &ne);
  int32_t per_se = s->se_mode == MPNAS_SE_CHOICE ? 2 : 1;
  r.se = s->se_mode == MPNAS_SE_ALWAYS ? 1 : (per_se == 2 ? op % 2 : 0);
  op /= per_se;
  r.kernel = k[op % nk];
  r.expansion = e[op / nk];
  return r;
}

void mpnas__space_final(const mpnas_space *s, int32_t *h, int32_t *w, int32_t *c) {
  int32_t n = mpnas__space_num_layers(s);
  if (n == 0) {
    mpnas__space_stem_out(s, h, w);
    *c = s->stem_c;
    return;
  }
  mpnas__layer l;
  mpnas__space_layer(s, n - 1, &l);
  *h = l.ho;
  *w = l.wo;
  *c = l.cout;
}

static int32_t se_width(int32_t cmid) {
  int32_t se = cmid / 4 > 8 ? cmid / 4 : 8;
  return (se + 7) / 8 * 8; /* as mpnas__ib_geom_init */
}

mpnas__cost mpnas__op_cost(const mpnas__layer *l, mpnas__op op) {
  mpnas__cost c = {0, 0};
  if (op.kernel == 0) return c;
  int64_t cmid = (int64_t)l->cin * op.expansion;
  int64_t in_px = (int64_t)l->h * l->w, out_px = (int64_t)l->ho * l->wo;
  if (op.expansion != 1) {
    c.macs = mpnas__count_add(c.macs, in_px * l->cin * cmid);
    c.params += l->cin * cmid + 2 * cmid;
  }
  c.macs = mpnas__count_add(c.macs, out_px * cmid * op.kernel * op.kernel);
  c.params += cmid * op.kernel * op.kernel + 2 * cmid;
  if (op.se) {
    int64_t r = se_width((int32_t)cmid);
    c.macs = mpnas__count_add(c.macs, out_px * cmid + 2 * cmid * r); /* scaling + 2 FCs */
    c.params += 2 * cmid * r + r + cmid;
  }
  c.macs = mpnas__count_add(c.macs, out_px * cmid * l->cout);
  c.params += cmid * l->cout + 2 * (int64_t)l->cout;
  return c;
}

mpnas__cost mpnas__stem_cost(const mpnas_space *s) {
  int32_t h, w;
  mpnas__space_stem_out(s, &h, &w);
  int64_t kk = (int64_t)s->stem_k * s->stem_k * s->in_c * s->stem_c;
  mpnas__cost c = {(int64_t)h * w * kk, kk + 2 * (int64_t)s->stem_c};
  return c;
}

mpnas__cost mpnas__head_cost(const mpnas_space *s) {
  int32_t h, w, ch;
  mpnas__space_final(s, &h, &w, &ch);
  mpnas__cost c = {(int64_t)h * w * ch * s->head_c,
                   (int64_t)ch * s->head_c + 2 * (int64_t)s->head_c};
  return c;
}

mpnas__cost mpnas__classifier_cost(const mpnas_space *s, int32_t classes) {
  mpnas__cost c = {(int64_t)s->head_c * classes, (int64_t)s->head_c * classes + classes};
  return c;
}

mpnas__cost mpnas__path_cost(const mpnas_space *s, const int32_t *path, int32_t classes) {
  mpnas__cost total = mpnas__stem_cost(s), part = mpnas__head_cost(s);
  total.macs = mpnas__count_add(total.macs, part.macs);
  total.params += part.params;
  part = mpnas__classifier_cost(s, classes);
  total.macs = mpnas__count_add(total.macs, part.macs);
  total.params += part.params;
  int32_t n = mpnas__space_num_layers(s);
  for (int32_t i = 0; i < n; i++) {
    mpnas__layer l;
    mpnas__space_layer(s, i, &l);
    part = mpnas__op_cost(&l, mpnas__space_op(s, &l, path[i]));
    total.macs = mpnas__count_add(total.macs, part.macs);
    total.params += part.params;
  }
  return total;
}

void mpnas__space_reference_path(const mpnas_space *s, int32_t *path) {
  int32_t n = mpnas__space_num_layers(s);
  for (int32_t i = 0; i < n; i++) {
    mpnas__layer l;
    mpnas__space_layer(s, i, &l);
    const int32_t *k, *e;
    int32_t nk, ne;
    choices(s, &s->stages[l.stage], &k, &nk, &e, &ne);
    int32_t per_se = s->se_mode == MPNAS_SE_CHOICE ? 2 : 1;
    int32_t op = ((ne - 1) / 2 * nk + nk / 2) * per_se;
    path[i] = op + (l.skippable ? 1 : 0);
  }
}

int mpnas__space_path_valid(const mpnas_space *s, const int32_t *path) {
  int32_t n = mpnas__space_num_layers(s);
  for (int32_t i = 0; i < n; i++) {
    mpnas__layer l;
    mpnas__space_layer(s, i, &l);
    if (path[i] < 0 || path[i] >= l.nops) return 0;
  }
  return 1;
}

/* FNV-1a over the description's integers, in a fixed order (not the struct's bytes,
 * whose padding and unused list slots are not part of the description). */
static uint64_t fnv(uint64_t h, int64_t v) {
  for (int i = 0; i < 8; i++) {
    h ^= (uint64_t)(v >> (8 * i)) & 0xffu;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t mpnas__space_fingerprint(const mpnas_space *s) {
  uint64_t h = 14695981039346656037ULL;
  int32_t head[] = {s->in_h,  s->in_w,     s->in_c,   s->stem_c, s->stem_k,
                    s->stem_s, s->stem_act, s->head_c, s->head_act, s->se_mode,
                    s->nstages};
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) h = fnv(h, head[i]);
  for (int32_t i = 0; i < s->nstages; i++) {
    const mpnas__stage *st = &s->stages[i];
    const int32_t *k, *e;
    int32_t nk, ne;
    choices(s, st, &k, &nk, &e, &ne);
    h = fnv(h, st->cout);
    h = fnv(h, st->layers);
    h = fnv(h, st->stride);
    h = fnv(h, st->act);
    h = fnv(h, st->skippable);
    h = fnv(h, nk);
    for (int32_t a = 0; a < nk; a++) h = fnv(h, k[a]);
    h = fnv(h, ne);
    for (int32_t a = 0; a < ne; a++) h = fnv(h, e[a]);
  }
  return h;
}

void mpnas__space_add_stage(mpnas_space *s, int32_t cout, int32_t layers, int32_t stride,
                            int32_t act, int32_t skippable) {
  mpnas__stage *st = &s->stages[s->nstages++];
  memset(st, 0, sizeof *st);
  st->cout = cout;
  st->layers = layers;
  st->stride = stride;
  st->act = act;
  st->skippable = skippable;
}

static void fixed_choice(mpnas_space *s, int32_t k, int32_t e) {
  mpnas__stage *st = &s->stages[s->nstages - 1];
  st->own_choices = 1;
  st->nk = st->ne = 1;
  st->kernels[0] = k;
  st->expansions[0] = e;
}

void mpnas__space_preset(mpnas_space *s, int32_t preset) {
  mpnas_context *ctx = s->ctx;
  memset(s, 0, sizeof *s);
  s->ctx = ctx;
  mpnas__settings_default(&mpnas__space_settings, s);
  s->nk = 3;
  s->kernels[0] = 3, s->kernels[1] = 5, s->kernels[2] = 7;
  s->ne = 2;
  s->expansions[0] = 3, s->expansions[1] = 6;
  switch (preset) {
    case MPNAS_PRESET_32PX:
      mpnas__space_add_stage(s, 24, 2, 2, MPNAS_ACT_RELU6, 1);
      mpnas__space_add_stage(s, 40, 3, 2, MPNAS_ACT_HSWISH, 1);
      mpnas__space_add_stage(s, 80, 3, 2, MPNAS_ACT_HSWISH, 1);
      mpnas__space_add_stage(s, 96, 2, 1, MPNAS_ACT_HSWISH, 1);
      s->head_act = MPNAS_ACT_HSWISH;
      break;
    case MPNAS_PRESET_MOBILENET_V3:
      /* TuNAS's MobileNetV3-like space: filters 16-24-40-80-112-160, head 960. */
      s->in_h = s->in_w = 224;
      s->stem_s = 2;
      s->stem_act = MPNAS_ACT_HSWISH;
      s->head_c = 960;
      s->head_act = MPNAS_ACT_HSWISH;
      s->se_mode = MPNAS_SE_CHOICE;
      mpnas__space_add_stage(s, 16, 1, 1, MPNAS_ACT_RELU, 0);
      fixed_choice(s, 3, 1);
      mpnas__space_add_stage(s, 24, 4, 2, MPNAS_ACT_RELU, 1);
      mpnas__space_add_stage(s, 40, 4, 2, MPNAS_ACT_RELU, 1);
      mpnas__space_add_stage(s, 80, 4, 2, MPNAS_ACT_HSWISH, 1);
      mpnas__space_add_stage(s, 112, 4, 1, MPNAS_ACT_HSWISH, 1);
      mpnas__space_add_stage(s, 160, 4, 2, MPNAS_ACT_HSWISH, 1);
      break;
    case MPNAS_PRESET_MBV2_9:
      /* BENCHMARKS.md's reference network: (t, c, n, s, k) per stage. */
      s->stem_c = 32;
      s->head_c = 320;
      {
        static const int32_t t[6][5] = {{1, 16, 1, 1, 3}, {6, 24, 2, 1, 3},
                                        {6, 32, 2, 2, 5}, {6, 64, 2, 2, 3},
                                        {6, 96, 1, 1, 7}, {6, 160, 1, 2, 5}};
        for (int i = 0; i < 6; i++) {
          mpnas__space_add_stage(s, t[i][1], t[i][2], t[i][3], MPNAS_ACT_RELU6, 0);
          fixed_choice(s, t[i][4], t[i][0]);
        }
      }
      break;
    default: /* MPNAS_PRESET_EMPTY */
      break;
  }
}
