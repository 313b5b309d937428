/* synthetic.h - the embedded default data: a procedural multi-domain image set that
 * needs no download, so the quickstart runs offline on a fresh machine.
 *
 * Four visually distinct domains, all 32x32x3 uint8 NHWC, each with learnable labels:
 *   shapes   - a filled circle, square, triangle or cross (4 classes), random size,
 *              place, grey level, on a noisy background;
 *   gratings - a sinusoidal grating at 0, 45, 90 or 135 degrees (4 classes), random
 *              frequency and phase;
 *   colours  - a soft blob whose hue is one of 6 hue bins (6 classes), random
 *              saturation, place and size;
 *   counts   - 1 to 5 small dots (5 classes) scattered without overlap.
 * Every image is a pure function of (domain, index, seed): a split is reproducible and
 * train/test never overlap when they use different index ranges. */
#ifndef MPNAS_EXAMPLES_SYNTHETIC_H
#define MPNAS_EXAMPLES_SYNTHETIC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define SYN_SIZE 32
#define SYN_CHANNELS 3
#define SYN_DOMAINS 4
#define SYN_PIXELS (SYN_SIZE * SYN_SIZE * SYN_CHANNELS)

static const char *const SYN_NAMES[SYN_DOMAINS] = {"shapes", "gratings", "colours", "counts"};
static const int SYN_CLASSES[SYN_DOMAINS] = {4, 4, 6, 5};

typedef struct {
  uint64_t s;
} syn_rng;
static uint32_t syn_u32(syn_rng *r) {
  r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
  uint64_t x = r->s;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (uint32_t)x;
}
static float syn_unit(syn_rng *r) { return (float)(syn_u32(r) >> 8) / 16777216.0f; }

static void syn_hsv(float h, float s, float v, float rgb[3]) {
  float c = v * s, hp = h * 6.0f, x = c * (1.0f - fabsf(fmodf(hp, 2.0f) - 1.0f)), m = v - c;
  float r = 0, g = 0, b = 0;
  if (hp < 1) r = c, g = x;
  else if (hp < 2) r = x, g = c;
  else if (hp < 3) g = c, b = x;
  else if (hp < 4) g = x, b = c;
  else if (hp < 5) r = x, b = c;
  else r = c, b = x;
  rgb[0] = r + m, rgb[1] = g + m, rgb[2] = b + m;
}

static uint8_t syn_clamp(float v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f); }

/* Image `index` of `domain` into out[SYN_PIXELS]; returns its label. */
static int syn_image(int domain, uint64_t index, uint64_t seed, uint8_t *out) {
  syn_rng r = {seed * 0x9E3779B97F4A7C15ULL + (uint64_t)domain * 0x632BE59BD9B4E019ULL + index};
  syn_u32(&r);
  int label = (int)(syn_u32(&r) % (uint32_t)SYN_CLASSES[domain]);
  float img[SYN_SIZE][SYN_SIZE][3];
  for (int y = 0; y < SYN_SIZE; y++)
    for (int x = 0; x < SYN_SIZE; x++)
      for (int c = 0; c < 3; c++) img[y][x][c] = 60.0f + 40.0f * syn_unit(&r);
  const float pi = 3.14159265f;
  if (domain == 0) { /* shapes */
    float cx = 10 + 12 * syn_unit(&r), cy = 10 + 12 * syn_unit(&r), rad = 5 + 4 * syn_unit(&r);
    float level = 170 + 80 * syn_unit(&r);
    for (int y = 0; y < SYN_SIZE; y++)
      for (int x = 0; x < SYN_SIZE; x++) {
        float dx = (float)x - cx, dy = (float)y - cy;
        int in = 0;
        if (label == 0) in = dx * dx + dy * dy <= rad * rad;
        else if (label == 1) in = fabsf(dx) <= rad * 0.85f && fabsf(dy) <= rad * 0.85f;
        else if (label == 2) in = dy <= rad * 0.8f && dy >= -rad && fabsf(dx) <= (dy + rad) * 0.6f;
        else in = (fabsf(dx) <= rad * 0.3f && fabsf(dy) <= rad) || (fabsf(dy) <= rad * 0.3f && fabsf(dx) <= rad);
        if (in)
          for (int c = 0; c < 3; c++) img[y][x][c] = level;
      }
  } else if (domain == 1) { /* gratings */
    float angle = (float)label * pi / 4.0f + 0.15f * (syn_unit(&r) - 0.5f);
    float freq = 0.25f + 0.35f * syn_unit(&r), phase = 2 * pi * syn_unit(&r);
    float amp = 50 + 50 * syn_unit(&r);
    for (int y = 0; y < SYN_SIZE; y++)
      for (int x = 0; x < SYN_SIZE; x++) {
        float t = ((float)x * cosf(angle) + (float)y * sinf(angle)) * freq + phase;
        for (int c = 0; c < 3; c++) img[y][x][c] += amp * sinf(t);
      }
  } else if (domain == 2) { /* colours */
    float hue = ((float)label + 0.15f + 0.7f * syn_unit(&r)) / 6.0f, rgb[3];
    syn_hsv(hue, 0.6f + 0.4f * syn_unit(&r), 0.7f + 0.3f * syn_unit(&r), rgb);
    float cx = 8 + 16 * syn_unit(&r), cy = 8 + 16 * syn_unit(&r), rad = 6 + 6 * syn_unit(&r);
    for (int y = 0; y < SYN_SIZE; y++)
      for (int x = 0; x < SYN_SIZE; x++) {
        float d2 = ((float)x - cx) * ((float)x - cx) + ((float)y - cy) * ((float)y - cy);
        float w = expf(-d2 / (2 * rad * rad));
        for (int c = 0; c < 3; c++) img[y][x][c] = img[y][x][c] * (1 - w) + 255.0f * rgb[c] * w;
      }
  } else { /* counts */
    int dots = label + 1, placed = 0, tries = 0;
    float px[5], py[5];
    while (placed < dots && tries < 1000) {
      tries++;
      float x = 3 + 26 * syn_unit(&r), y = 3 + 26 * syn_unit(&r);
      int ok = 1;
      for (int i = 0; i < placed; i++)
        if ((x - px[i]) * (x - px[i]) + (y - py[i]) * (y - py[i]) < 36) ok = 0;
      if (!ok) continue;
      px[placed] = x, py[placed] = y, placed++;
      for (int yy = 0; yy < SYN_SIZE; yy++)
        for (int xx = 0; xx < SYN_SIZE; xx++)
          if (((float)xx - x) * ((float)xx - x) + ((float)yy - y) * ((float)yy - y) <= 4.0f)
            for (int c = 0; c < 3; c++) img[yy][xx][c] = 230;
    }
  }
  for (int y = 0; y < SYN_SIZE; y++)
    for (int x = 0; x < SYN_SIZE; x++)
      for (int c = 0; c < 3; c++)
        out[(y * SYN_SIZE + x) * 3 + c] = syn_clamp(img[y][x][c] + 12.0f * (syn_unit(&r) - 0.5f));
  return label;
}

#endif
