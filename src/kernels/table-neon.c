/* table-neon.c - the AArch64 NEON tables. NEON is baseline on every aarch64 CPU, so
 * "neon" needs no run-time check; "neon+dotprod" adds the SDOT int8 GEMM
 * (src/kernels/q8/q8-dotprod-neon.c) and is chosen when the kernel reports
 * HWCAP_ASIMDDP (dispatch.c). The two share every float kernel and the int8 depthwise;
 * their int8 GEMMs pack weights differently, so a model packed with one table must not
 * run with the other (the model keys its packing on the table). This file's existence
 * makes the Makefile define MPNAS_HAVE_NEON. */
#include "kernels/misc/misc.h"
#include "kernels/simd-neon.h"
#include "kernels/q8/q8-simd.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

/* The float kernels, the same in both tables. */
#define NEON_FLOAT_KERNELS \
    .dw_fwd = mpnas__f32_dwconv_fwd__neon, \
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__neon, \
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__neon, \
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__neon, \
    .gemm_pack = mpnas__f32_gemm_pack__neon, \
    .gemm = mpnas__f32_gemm_8x8__neon, \
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__neon, \
    .bn_stats = mpnas__f32_bn_stats__neon, \
    .bn_apply = mpnas__f32_bn_apply__neon, \
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__neon, \
    .bn_bwd_reduce_act = mpnas__f32_bn_bwd_reduce_act__neon, \
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__neon, \
    .act_fwd = mpnas__f32_act_fwd__neon, \
    .act_bwd = mpnas__f32_act_bwd__neon,

const mpnas__kernels mpnas__kernels_neon = {
    .name = "neon",
    .isa = MPNAS_ISA_NEON,
    NEON_FLOAT_KERNELS
    /* int8: src/kernels/q8/q8-neon.c */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__neon,
    .q8_gemm_pack = mpnas__q8_gemm_pack__neon,
    .q8_gemm = mpnas__q8_gemm__neon,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__neon,
};

const mpnas__kernels mpnas__kernels_neon_dotprod = {
    .name = "neon+dotprod",
    .isa = MPNAS_ISA_NEON,
    NEON_FLOAT_KERNELS
    /* int8: the GEMM of src/kernels/q8/q8-dotprod-neon.c, the NEON depthwise */
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__neon_dotprod,
    .q8_gemm_pack = mpnas__q8_gemm_pack__neon_dotprod,
    .q8_gemm = mpnas__q8_gemm__neon_dotprod,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__neon,
};
