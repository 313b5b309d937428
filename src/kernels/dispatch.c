/* dispatch.c - choose a kernel table once, from the CPU's features and the request.
 *
 * An ISA (MPNAS_ISA_*) may have variants for optional instruction-set extensions: x86
 * AVX-VNNI ("avx2+vnni") and Arm's dot product ("neon+dotprod"), which only the int8
 * kernels use, and x86 AVX-512 ("avx512": the float GEMM, depthwise, batch norm and
 * activations in 512-bit registers, bit-identical to the AVX2 ones; "avx512+vnni": that
 * and AVX512-VNNI int8 kernels, which need CPUID's AVX512_VNNI, not AVX-VNNI). Asking for the ISA gives its best variant
 * this CPU runs; every variant of an ISA computes the same floats. mpnas__kernels_named
 * picks one table by name (the tests and benchmarks force each). */
#include <string.h>

#include "kernels/kernels.h"

#include "mpnas.h"

#if defined(MPNAS_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <cpuid.h>
#define MPNAS__X86_DETECT 1
#endif
#if defined(MPNAS_HAVE_NEON) && defined(__linux__)
#include <sys/auxv.h>
#endif

int mpnas__isa_available(int isa) {
  switch (isa) {
    case MPNAS_ISA_SCALAR:
      return 1;
    case MPNAS_ISA_AVX2:
#if defined(MPNAS__X86_DETECT)
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
      return 0;
#endif
    case MPNAS_ISA_NEON:
#if defined(MPNAS_HAVE_NEON)
      return 1; /* NEON is part of the aarch64 baseline */
#else
      return 0;
#endif
    default:
      return 0;
  }
}

/* AVX-VNNI: CPUID leaf 7 sub-leaf 1, EAX bit 4 (with AVX2 usable, which already means
 * the OS saves the ymm registers). */
#if defined(MPNAS_HAVE_AVX2)
static int have_avx_vnni(void) {
#if defined(MPNAS__X86_DETECT)
  unsigned a, b, c, d;
  if (!mpnas__isa_available(MPNAS_ISA_AVX2)) return 0;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 1, a, b, c, d);
  (void)b, (void)c, (void)d;
  return (a >> 4) & 1;
#else
  return 0;
#endif
}
#endif

/* AVX-512 F, DQ, BW and VL (CPUID leaf 7 sub-leaf 0, EBX bits 16, 17, 30, 31), and the
 * OS saving their state: CPUID.1 ECX bit 27 (OSXSAVE) says XGETBV may be used, and XCR0
 * must have the SSE, AVX, opmask, ZMM_Hi256 and Hi16_ZMM bits (1, 2, 5, 6, 7) set. */
#if defined(MPNAS_HAVE_AVX2)
static int have_avx512(void) {
#if defined(MPNAS__X86_DETECT)
  unsigned a, b, c, d;
  int ok = mpnas__isa_available(MPNAS_ISA_AVX2) && __get_cpuid_max(0, NULL) >= 7;
  if (ok) {
    __cpuid(1, a, b, c, d);
    ok = (c >> 27) & 1;
  }
  if (ok) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    ok = (lo & 0xe6u) == 0xe6u;
  }
  if (ok) {
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
    ok = (b & need) == need;
  }
  return ok;
#else
  return 0;
#endif
}
#endif

/* AVX512_VNNI: CPUID leaf 7 sub-leaf 0, ECX bit 11, on top of have_avx512(). */
#if defined(MPNAS_HAVE_AVX2)
static int have_avx512_vnni(void) {
#if defined(MPNAS__X86_DETECT)
  unsigned a, b, c, d;
  if (!have_avx512()) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  (void)a, (void)b, (void)d;
  return (c >> 11) & 1;
#else
  return 0;
#endif
}
#endif

/* SDOT/UDOT: Linux reports them as HWCAP_ASIMDDP (bit 20 of AT_HWCAP). */
#if defined(MPNAS_HAVE_NEON)
static int have_dotprod(void) {
#if defined(__linux__)
  return (getauxval(AT_HWCAP) >> 20) & 1;
#else
  return 0;
#endif
}
#endif

const mpnas__kernels *mpnas__kernels_for(int isa) {
  if (isa == MPNAS_ISA_AUTO) {
    if (mpnas__isa_available(MPNAS_ISA_NEON)) isa = MPNAS_ISA_NEON;
    else if (mpnas__isa_available(MPNAS_ISA_AVX2)) isa = MPNAS_ISA_AVX2;
    else isa = MPNAS_ISA_SCALAR;
  }
  if (!mpnas__isa_available(isa)) return NULL;
  switch (isa) {
#if defined(MPNAS_HAVE_AVX2)
    case MPNAS_ISA_AVX2:
      /* AVX-512 without AVX512_VNNI takes "avx512" (AVX2 int8 kernels) even with AVX-VNNI:
       * no such CPU is known */
      if (have_avx512()) return have_avx512_vnni() ? &mpnas__kernels_avx512_vnni : &mpnas__kernels_avx512;
      return have_avx_vnni() ? &mpnas__kernels_avx2_vnni : &mpnas__kernels_avx2;
#endif
#if defined(MPNAS_HAVE_NEON)
    case MPNAS_ISA_NEON:
      return have_dotprod() ? &mpnas__kernels_neon_dotprod : &mpnas__kernels_neon;
#endif
    default:
      return &mpnas__kernels_scalar;
  }
}

const mpnas__kernels *mpnas__kernels_named(const char *name) {
  const mpnas__kernels *all[] = {
    &mpnas__kernels_scalar,
#if defined(MPNAS_HAVE_AVX2)
    mpnas__isa_available(MPNAS_ISA_AVX2) ? &mpnas__kernels_avx2 : NULL,
    have_avx_vnni() ? &mpnas__kernels_avx2_vnni : NULL,
    have_avx512() ? &mpnas__kernels_avx512 : NULL,
    have_avx512_vnni() ? &mpnas__kernels_avx512_vnni : NULL,
#endif
#if defined(MPNAS_HAVE_NEON)
    &mpnas__kernels_neon,
    have_dotprod() ? &mpnas__kernels_neon_dotprod : NULL,
#endif
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i] != NULL && strcmp(all[i]->name, name) == 0) return all[i];
  return NULL;
}
