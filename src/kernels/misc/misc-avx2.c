/* misc-avx2.c - the batch-norm and activation kernels of the "avx2" tables: misc-x86.h
 * at 8 lanes (ymm, AVX2+FMA). */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"

#define VEC_LANES 8
#include "kernels/vec-x86.h"
#define MISC_NAME(f) f##__avx2
#include "kernels/misc/misc-x86.h"
