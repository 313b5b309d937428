/* table-avx2.c - the AVX2+FMA kernel tables (x86-64; chosen at run time, dispatch.c):
 * "avx2" when the CPU has AVX2 and FMA, "avx2+vnni" when it also has AVX-VNNI. They
 * share every float kernel; the VNNI table's int8 kernels are those of
 * src/kernels/q8/q8-vnni-avx2.c, whose GEMM packs its weights differently, so a model packed with
 * one table must not be run with the other (the model keys its packing on the table). */
#include "kernels/misc/misc.h"
#include "kernels/simd-avx2.h"
#include "kernels/q8/q8-simd.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

/* The float kernels, the same in both tables. */
#define AVX2_FLOAT_KERNELS \
    .dw_fwd = mpnas__f32_dwconv_fwd__avx2, \
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__avx2, \
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__avx2, \
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__avx2, \
    .gemm_pack = mpnas__f32_gemm_pack__avx2, \
    .gemm = mpnas__f32_gemm__avx2, \
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__avx2, \
    .bn_stats = mpnas__f32_bn_stats__avx2, \
    .bn_apply = mpnas__f32_bn_apply__avx2, \
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__avx2, \
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__avx2, \
    .act_fwd = mpnas__f32_act_fwd__avx2, \
    .act_bwd = mpnas__f32_act_bwd__avx2,

const mpnas__kernels mpnas__kernels_avx2 = {
    .name = "avx2",
    .isa = MPNAS_ISA_AVX2,
    AVX2_FLOAT_KERNELS
    /* int8: src/kernels/q8/q8-avx2.c */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx2,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx2,
    .q8_gemm = mpnas__q8_gemm__avx2,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx2,
};

const mpnas__kernels mpnas__kernels_avx2_vnni = {
    .name = "avx2+vnni",
    .isa = MPNAS_ISA_AVX2,
    AVX2_FLOAT_KERNELS
    /* int8: src/kernels/q8/q8-vnni-avx2.c */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__avx2_vnni,
    .q8_gemm_pack = mpnas__q8_gemm_pack__avx2_vnni,
    .q8_gemm = mpnas__q8_gemm__avx2_vnni,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__avx2_vnni,
};
