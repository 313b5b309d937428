/* act-ref.c - the reference definition of each activation and its derivative. */
#include <math.h>

#include "kernels/kernels.h"

static float relu6(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }

float mpnas__act_apply(int act, float x) {
  switch (act) {
    case MPNAS__ACT_RELU: return x > 0.0f ? x : 0.0f;
    case MPNAS__ACT_RELU6: return relu6(x);
    case MPNAS__ACT_HSWISH: return x * relu6(x + 3.0f) * (1.0f / 6.0f);
    case MPNAS__ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case MPNAS__ACT_HSIGMOID: return relu6(x + 3.0f) * (1.0f / 6.0f);
    default: return x;
  }
}

float mpnas__act_grad(int act, float x) {
  switch (act) {
    case MPNAS__ACT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case MPNAS__ACT_RELU6: return (x > 0.0f && x < 6.0f) ? 1.0f : 0.0f;
    case MPNAS__ACT_HSWISH:
      if (x <= -3.0f) return 0.0f;
      if (x >= 3.0f) return 1.0f;
      return (2.0f * x + 3.0f) * (1.0f / 6.0f);
    case MPNAS__ACT_SIGMOID: {
      float s = 1.0f / (1.0f + expf(-x));
      return s * (1.0f - s);
    }
    case MPNAS__ACT_HSIGMOID: return (x > -3.0f && x < 3.0f) ? (1.0f / 6.0f) : 0.0f;
    default: return 1.0f;
  }
}

void mpnas__dw_shape_init(mpnas__dw_shape *s, int h, int w, int c, int k, int stride) {
  s->h = h;
  s->w = w;
  s->c = c;
  s->k = k;
  s->stride = stride;
  s->ho = (h + stride - 1) / stride;
  s->wo = (w + stride - 1) / stride;
  s->pad = k / 2;
}
