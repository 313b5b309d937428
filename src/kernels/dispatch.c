/* dispatch.c - choose a kernel table once, from the CPU's features and the request. */
#include "kernels/kernels.h"

#include "mpnas.h"

int mpnas__isa_available(int isa) {
  switch (isa) {
    case MPNAS_ISA_SCALAR:
      return 1;
    case MPNAS_ISA_AVX2:
#if defined(MPNAS_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
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
      return &mpnas__kernels_avx2;
#endif
#if defined(MPNAS_HAVE_NEON)
    case MPNAS_ISA_NEON:
      return &mpnas__kernels_neon;
#endif
    default:
      return &mpnas__kernels_scalar;
  }
}
