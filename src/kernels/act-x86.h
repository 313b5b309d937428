/* act-x86.h - the vector exp and the activations of kernels.h, written once for both x86
 * widths with the operations of vec-x86.h: simd-avx2.h includes it at 8 lanes
 * (mpnas__avx2_exp, mpnas__avx2_act), misc/misc-avx512.c at 16 (mpnas__avx512_...).
 * Every lane goes through the same operations in the same order at both widths, so the
 * results match bit for bit (max/min keep their operand order, so NaN and -0 do too).
 * Needs MPNAS_AVX2_INLINE (simd-avx2.h). */

/* exp(x) for x in [-87.3, 88.3] (clamped): 2^n * p(r), r = x - n ln2 in [-ln2/2, ln2/2],
 * p the degree-6 Taylor polynomial (truncation ~1.2e-7 relative). */
MPNAS_AVX2_INLINE V_F V_FN(exp)(V_F x) {
  x = V_MIN(V_MAX(x, V_SET1(-87.3f)), V_SET1(88.3f));
  V_F n = V_RINT(V_MUL(x, V_SET1(1.44269504088896341f)));
  /* ln2 split in two so n * ln2_hi is exact */
  V_F r = V_FNMA(n, V_SET1(0.693359375f), x);
  r = V_FNMA(n, V_SET1(-2.12194440e-4f), r);
  V_F p = V_SET1(1.0f / 720.0f);
  p = V_FMA(p, r, V_SET1(1.0f / 120.0f));
  p = V_FMA(p, r, V_SET1(1.0f / 24.0f));
  p = V_FMA(p, r, V_SET1(1.0f / 6.0f));
  p = V_FMA(p, r, V_SET1(0.5f));
  p = V_FMA(p, r, V_SET1(1.0f));
  p = V_FMA(p, r, V_SET1(1.0f));
  return V_MUL(p, V_POW2I(n));
}

/* The activation of kernels.h. `act` is the same for a whole call, so the switch is a
 * well-predicted branch (or folds away where act is a constant). */
MPNAS_AVX2_INLINE V_F V_FN(act)(int act, V_F v) {
  const V_F zero = V_ZERO(), six = V_SET1(6.0f);
  switch (act) {
    case MPNAS__ACT_RELU: return V_MAX(v, zero);
    case MPNAS__ACT_RELU6: return V_MIN(V_MAX(v, zero), six);
    case MPNAS__ACT_HSWISH: {
      V_F r = V_MIN(V_MAX(V_ADD(v, V_SET1(3.0f)), zero), six);
      return V_MUL(V_MUL(v, r), V_SET1(1.0f / 6.0f));
    }
    case MPNAS__ACT_SIGMOID: {
      V_F e = V_FN(exp)(V_SUB(zero, v));
      return V_DIV(V_SET1(1.0f), V_ADD(V_SET1(1.0f), e));
    }
    case MPNAS__ACT_HSIGMOID: {
      V_F r = V_MIN(V_MAX(V_ADD(v, V_SET1(3.0f)), zero), six);
      return V_MUL(r, V_SET1(1.0f / 6.0f));
    }
    default: return v;
  }
}
