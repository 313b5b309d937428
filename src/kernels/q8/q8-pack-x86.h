/* q8-pack-x86.h - the packed weight layout of the x86 int8 GEMMs (q8-gemm-x86.h's
 * layout, also taken by q8-vnni-avx512.c): int32 column sums for n rounded up to 16,
 * then per panel of 16 output channels and per group of Q8_KS k, 64 bytes, lane l
 * holding channel l's Q8_KS weights (bytes with VNNI, int16 without; zero past k or n).
 * The includer defines Q8_NAME, Q8_VNNI and Q8_KS first. */
#if !defined(Q8_KS) || !defined(Q8_VNNI)
#error "define Q8_NAME, Q8_VNNI and Q8_KS before including q8-pack-x86.h"
#endif

static int q8_panels(int n) { return (n + 15) / 16; }
static int q8_groups(int k) { return (k + Q8_KS - 1) / Q8_KS; }

size_t Q8_NAME(q8_gemm_packed_bytes)(int k, int n) {
  return (size_t)q8_panels(n) * 16 * sizeof(int32_t) + (size_t)q8_panels(n) * q8_groups(k) * 64;
}

void Q8_NAME(q8_gemm_pack)(int k, int n, const int8_t *w, void *packed) {
  const int nb = q8_panels(n), kq = q8_groups(k);
  int32_t *cs = packed;
  for (int j = 0; j < nb * 16; j++) {
    int32_t s = 0;
    for (int i = 0; j < n && i < k; i++) s += w[(size_t)i * n + j];
    cs[j] = s;
  }
  char *wb = (char *)packed + (size_t)nb * 16 * sizeof(int32_t);
  for (int b = 0; b < nb; b++)
    for (int q = 0; q < kq; q++)
      for (int l = 0; l < 16; l++)
        for (int s = 0; s < Q8_KS; s++) {
          const int col = 16 * b + l, row = q * Q8_KS + s;
          const int8_t v = (col < n && row < k) ? w[(size_t)row * n + col] : 0;
          char *at = wb + ((size_t)b * kq + q) * 64 + l * 4;
#if Q8_VNNI
          at[s] = (char)v;
#else
          const int16_t v16 = v;
          memcpy(at + 2 * s, &v16, 2);
#endif
        }
}
