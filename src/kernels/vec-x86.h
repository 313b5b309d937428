/* vec-x86.h - the float-vector operations of the width-generic x86 kernel headers
 * (act-x86.h, misc/misc-x86.h), for the width chosen by VEC_LANES before including it:
 * 8 (AVX2+FMA, ymm, masks are vectors of all-ones lanes) or 16 (AVX-512 F/VL/BW/DQ, zmm,
 * masks are __mmask16). Each operation is the same IEEE operation at both widths, so a
 * kernel written with them gives the same bits per lane at 8 and 16 lanes. No include
 * guard: include vec-x86-end.h to drop the names before including it again. */
#if VEC_LANES == 8
#define V_F __m256
#define V_TAILMASK __m256i /* lanes [0, n) of a row's last vector */
#define V_CMPMASK __m256   /* the result of a comparison */
#define V_TAIL(n) mpnas__avx2_tail_mask(n)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADM(p, m) _mm256_maskload_ps((p), (m)) /* masked-off lanes read 0 */
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_STOREM(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(x) _mm256_set1_ps(x)
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_MIN(a, b) _mm256_min_ps((a), (b))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))   /* a * b + c */
#define V_FNMA(a, b, c) _mm256_fnmadd_ps((a), (b), (c)) /* c - a * b */
#define V_RINT(x) _mm256_round_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* 2^n for integral n in [-126, 127]: n + 127 in the exponent field */
#define V_POW2I(n) \
  _mm256_castsi256_ps(_mm256_slli_epi32( \
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define V_CMP(a, b, pred) _mm256_cmp_ps((a), (b), (pred))
#define V_CMP_AND(m1, m2) _mm256_and_ps((m1), (m2))
#define V_KEEP(m, v) _mm256_and_ps((m), (v))                /* v where m, else +0 */
#define V_BLEND(a, b, m) _mm256_blendv_ps((a), (b), (m))    /* b where m, else a */
#define V_FN(f) mpnas__avx2_##f
#elif VEC_LANES == 16
#define V_F __m512
#define V_TAILMASK __mmask16
#define V_CMPMASK __mmask16
#define V_TAIL(n) ((__mmask16)((1u << (n)) - 1u)) /* n in 0..16 */
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(x) _mm512_set1_ps(x)
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_MIN(a, b) _mm512_min_ps((a), (b))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_FNMA(a, b, c) _mm512_fnmadd_ps((a), (b), (c))
#define V_RINT(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define V_POW2I(n) \
  _mm512_castsi512_ps(_mm512_slli_epi32( \
      _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define V_CMP(a, b, pred) _mm512_cmp_ps_mask((a), (b), (pred))
#define V_CMP_AND(m1, m2) ((__mmask16)((m1) & (m2)))
#define V_KEEP(m, v) _mm512_maskz_mov_ps((m), (v))
#define V_BLEND(a, b, m) _mm512_mask_blend_ps((m), (a), (b))
#define V_FN(f) mpnas__avx512_##f
#else
#error "vec-x86.h: define VEC_LANES as 8 or 16"
#endif
