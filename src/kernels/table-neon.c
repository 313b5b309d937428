/* table-neon.c - the AArch64 NEON ISA (baseline on every aarch64 CPU, so dispatch.c
 * needs no run-time check). Its existence makes the Makefile define MPNAS_HAVE_NEON. */
#include "kernels/misc/misc.h"
#include "kernels/simd-neon.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

const mpnas__kernels mpnas__kernels_neon = {
    .name = "neon",
    .isa = MPNAS_ISA_NEON,
    .dw_fwd = mpnas__f32_dwconv_fwd__neon,
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__neon,
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__neon,
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__neon,
    .gemm_pack = mpnas__f32_gemm_pack__neon,
    .gemm = mpnas__f32_gemm_8x8__neon,
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__neon,
    .bn_stats = mpnas__f32_bn_stats__neon,
    .bn_apply = mpnas__f32_bn_apply__neon,
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__neon,
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__neon,
    .act_fwd = mpnas__f32_act_fwd__neon,
    .act_bwd = mpnas__f32_act_bwd__neon,
    /* int8: the reference until the SIMD kernels land. */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__ref,
    .q8_gemm_pack = mpnas__q8_gemm_pack__ref,
    .q8_gemm = mpnas__q8_gemm__ref,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__ref,
};
