/* q8-vnni-avx2.c - int8 kernels with AVX-VNNI (_mm256_dpbusd_avx_epi32: four u8 x s8
 * products added into each int32 lane in one instruction, no intermediate saturation):
 * the pointwise GEMM (q8-gemm-x86.h) and the depthwise forward (below). The only file
 * built with -mavxvnni (Makefile); its table, mpnas__kernels_avx2_vnni (table-avx2.c),
 * is chosen only when CPUID reports AVX-VNNI (dispatch.c). */
#include <stdint.h>
#include <string.h>

#include "kernels/q8/q8-avx2.h"
#include "kernels/q8/q8-simd.h"

#define Q8_VNNI 1
#define Q8_NAME(f) mpnas__##f##__avx2_vnni
#include "kernels/q8/q8-gemm-x86.h"

#include "kernels/q8/q8-dw-vnni-x86.h"
