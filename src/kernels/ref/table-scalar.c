/* table-scalar.c - the scalar ISA: the reference kernels. */
#include "kernels/misc/misc.h"
#include "kernels/ref/ref.h"
#include "mpnas.h"

const mpnas__kernels mpnas__kernels_scalar = {
    .name = "scalar",
    .isa = MPNAS_ISA_SCALAR,
    .dw_fwd = mpnas__f32_dwconv_fwd__ref,
    .dw_bwd_input = mpnas__f32_dwconv_bwd_input__ref,
    .dw_bwd_weight = mpnas__f32_dwconv_bwd_weight__ref,
    .gemm_packed_floats = mpnas__f32_gemm_packed_floats__ref,
    .gemm_pack = mpnas__f32_gemm_pack__ref,
    .gemm = mpnas__f32_gemm__ref,
    .gemm_bwd_weight = mpnas__f32_gemm_bwd_weight__ref,
    .bn_stats = mpnas__f32_bn_stats__ref,
    .bn_apply = mpnas__f32_bn_apply__ref,
    .bn_bwd_reduce = mpnas__f32_bn_bwd_reduce__ref,
    .bn_bwd_reduce_act = mpnas__f32_bn_bwd_reduce_act__ref,
    .bn_bwd_dx = mpnas__f32_bn_bwd_dx__ref,
    .act_fwd = mpnas__f32_act_fwd__ref,
    .act_bwd = mpnas__f32_act_bwd__ref,
    .q8_gemm_packed_bytes = mpnas__q8_gemm_packed_bytes__ref,
    .q8_gemm_pack = mpnas__q8_gemm_pack__ref,
    .q8_gemm = mpnas__q8_gemm__ref,
    .q8_dw_fwd = mpnas__q8_dwconv_fwd__ref,
};
