/* misc-avx512.c - the batch-norm and activation kernels of the "avx512" tables:
 * misc-x86.h at 16 lanes (zmm, AVX-512 F/VL/BW/DQ), bit-identical to misc-avx2.c (the
 * same code at 8 lanes; tests/test_kernels.c compares them with memcmp). */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"

#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h" /* mpnas__avx512_exp, mpnas__avx512_act */
#define MISC_NAME(f) f##__avx512
#include "kernels/misc/misc-x86.h"
