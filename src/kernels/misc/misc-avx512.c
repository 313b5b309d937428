/* misc-avx512.c - the batch-norm and activation kernels of the "avx512" tables:
 * misc-x86.h at 16 lanes (zmm, AVX-512 F/VL/BW/DQ), bit-identical to misc-avx2.c (the
 * same code at 8 lanes; tests/test_kernels.c compares them).
 *
 * What zmm buys (bench_misc --kernels; docs/PERFORMANCE.md, "AVX-512 BN and
 * activations"): sigmoid 1.5-2.2x (the vector exp is compute), bn_bwd_reduce 1.2-1.4x
 * and bn_stats 1.05-1.15x (half the accumulator chains per 32-channel group; since
 * then whole groups go two or three side by side, misc-x86.h), and up to 1.8x for any
 * pass whose operands sit in L2. The other passes streaming from L3 or
 * memory are bandwidth-bound: no difference the benchmark can resolve. */
#include <string.h>

#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"

#define VEC_LANES 16
#include "kernels/vec-x86.h"
#include "kernels/act-x86.h" /* mpnas__avx512_exp, mpnas__avx512_act */
#define MISC_NAME(f) f##__avx512
#include "kernels/misc/misc-x86.h"
